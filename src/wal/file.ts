import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { WalSource } from './source.js';

/**
 * A WalSource over an open file descriptor: the only I/O edge of src/wal. Reads are positional
 * (pread), so a WAL that grows or shrinks while it is read just gives longer or shorter reads.
 */
export class FileWalSource implements WalSource {
  private fd: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
  }

  size(): number {
    return fstatSync(this.fd).size;
  }

  read(offset: number, length: number): Uint8Array {
    // not zero-filled: every byte returned was read (WAL scans read many MB per sync)
    const out = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return done === length ? out : out.subarray(0, done);
  }

  /** Device and inode of the open file: a WAL replaced under a path has another identity. */
  identity(): { dev: number; ino: number } {
    const st = fstatSync(this.fd);
    return { dev: st.dev, ino: st.ino };
  }

  close(): void {
    closeSync(this.fd);
  }
}
