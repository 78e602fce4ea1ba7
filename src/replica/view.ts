import { LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import type { PageReader } from './page-reader.js';
import type { ReplicaView } from './port.js';
import type { Version } from './version.js';

/**
 * The versions open views hold, counted. The hydrator moves its file to a newer TXID only when no
 * view pins an older one, so a release may unblock it (`onRelease`).
 */
export class Pins {
  private readonly counts = new Map<Version, number>();

  constructor(private readonly onRelease: () => void) {}

  add(version: Version): void {
    this.counts.set(version, (this.counts.get(version) ?? 0) + 1);
  }

  remove(version: Version): void {
    const n = (this.counts.get(version) ?? 0) - 1;
    if (n > 0) this.counts.set(version, n);
    else this.counts.delete(version);
    this.onRelease();
  }

  oldestTxid(): Txid | undefined {
    let oldest: Txid | undefined;
    for (const v of this.counts.keys()) if (oldest === undefined || v.txid < oldest) oldest = v.txid;
    return oldest;
  }
}

/** A pinned version and the reader of its pages. */
export class View implements ReplicaView {
  private released = false;

  constructor(
    private readonly reader: PageReader,
    private readonly version: Version,
    private readonly pins: Pins,
  ) {
    pins.add(version);
  }

  get txid(): Txid {
    return this.version.txid;
  }

  get pageSize(): number {
    return this.version.pageSize;
  }

  get pageCount(): number {
    return this.version.commit;
  }

  get timestamp(): Date {
    return this.version.timestamp;
  }

  readPage(pgno: number): Promise<Uint8Array> {
    if (this.released) return Promise.reject(this.releasedError());
    return this.reader.readPage(this.version, pgno);
  }

  readPageSync(pgno: number): Uint8Array | undefined {
    if (this.released) throw this.releasedError();
    if (pgno < 1 || pgno > this.version.commit) return undefined;
    return this.reader.readPageSync(this.version, pgno);
  }

  readPageIntoSync(pgno: number, within: number, length: number, dst: Uint8Array, at: number): boolean {
    if (this.released) throw this.releasedError();
    if (pgno < 1 || pgno > this.version.commit) return false;
    return this.reader.readPageIntoSync(this.version, pgno, within, length, dst, at);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.pins.remove(this.version);
  }

  private releasedError(): LtxvfsError {
    return new LtxvfsError('BAD_ARGUMENT', `view of TXID ${formatTxid(this.version.txid)} was released`);
  }
}
