import type { DataArray } from '@journeyapps/wa-sqlite/src/FacadeVFS.js';
import * as VFS from '@journeyapps/wa-sqlite/src/VFS.js';

/** A temp file, transient db, sub-journal or journal: lives in memory, never on the replica. */
export class MemoryFile {
  private data = new Uint8Array(0);
  private size = 0;

  read(dst: DataArray, offset: number): number {
    const available = Math.max(0, Math.min(dst.length, this.size - offset));
    if (available > 0) dst.set(this.data.subarray(offset, offset + available));
    if (available < dst.length) {
      dst.fill(0, available);
      return VFS.SQLITE_IOERR_SHORT_READ;
    }
    return VFS.SQLITE_OK;
  }

  write(src: DataArray, offset: number): number {
    const end = offset + src.length;
    if (end > this.data.length) {
      const grown = new Uint8Array(Math.max(end, this.data.length * 2, 4096));
      grown.set(this.data.subarray(0, this.size));
      this.data = grown;
    }
    this.data.set(src.subarray(), offset);
    this.size = Math.max(this.size, end);
    return VFS.SQLITE_OK;
  }

  truncate(size: number): number {
    if (size < this.size) this.data.fill(0, size, this.size);
    if (size > this.data.length) {
      const grown = new Uint8Array(size);
      grown.set(this.data.subarray(0, this.size));
      this.data = grown;
    }
    this.size = size;
    return VFS.SQLITE_OK;
  }

  get byteLength(): number {
    return this.size;
  }
}
