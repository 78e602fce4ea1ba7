import { LtxvfsError } from '../../src/util/errors.js';
import { formatTxid, type Txid } from '../../src/util/txid.js';
import type { HydrationStatus, ReplicaSource, ReplicaView } from '../../vfs/replica-port.js';
import { defined } from './defined.js';

/**
 * In-memory stand-in for src/replica's Replica, for unit tests of VFS logic only: each TXID is
 * the full bytes of a real SQLite database file (written by better-sqlite3).
 */
export class MemoryReplica implements ReplicaSource {
  private readonly states: Array<{ txid: Txid; bytes: Uint8Array; timestamp: Date }> = [];
  /** Views currently held, by TXID. */
  readonly held = new Map<Txid, number>();
  /** When false, readPageSync always misses, forcing the VFS's async path. */
  syncHits = true;
  /** Pages read through readPage (the "network"). */
  asyncReads = 0;
  /** Makes every readPage of these pages fail, as a vanished object would. */
  failPages = new Set<number>();

  push(txid: Txid, bytes: Uint8Array, timestamp = new Date()): void {
    this.states.push({ txid, bytes, timestamp });
  }

  acquireLatest(): ReplicaView {
    const state = this.states.at(-1);
    if (!state) throw new LtxvfsError('REPLICA_EMPTY', 'memory replica holds no TXID yet');
    return this.view(state);
  }

  async acquireAt(target: { txid?: Txid; timestamp?: Date }): Promise<ReplicaView> {
    await new Promise((resolve) => setTimeout(resolve, 1));
    const candidates = this.states.filter((s) =>
      target.txid !== undefined
        ? s.txid <= target.txid
        : s.timestamp.getTime() <= defined(target.timestamp).getTime(),
    );
    const state = candidates.at(-1);
    const newest = this.states.at(-1);
    if (!state || (target.txid !== undefined && newest && target.txid > newest.txid)) {
      const range = this.states.length
        ? `${formatTxid(defined(this.states[0]).txid)}..${formatTxid(defined(newest).txid)}`
        : 'none';
      const what =
        target.txid !== undefined
          ? `TXID ${formatTxid(target.txid)}`
          : `time ${defined(target.timestamp).toISOString()}`;
      throw new LtxvfsError('TXID_NOT_AVAILABLE', `${what} is not available (replica holds ${range})`);
    }
    return this.view(state);
  }

  lagSeconds(): number {
    return 0.25;
  }

  static readonly hydrationOff: HydrationStatus = {
    state: 'off',
    txid: 0,
    pagesDone: 0,
    pagesTotal: 0,
    bytesDownloaded: 0,
  };
  /** What hydration() reports; tests set it to check the PRAGMA text. */
  hydrationStatus: HydrationStatus = MemoryReplica.hydrationOff;

  hydration(): HydrationStatus {
    return this.hydrationStatus;
  }

  private view(state: { txid: Txid; bytes: Uint8Array; timestamp: Date }): ReplicaView {
    const pageSize = new DataView(state.bytes.buffer, state.bytes.byteOffset).getUint16(16) || 65536;
    const pageCount = state.bytes.length / pageSize;
    const page = (pgno: number) => state.bytes.slice((pgno - 1) * pageSize, pgno * pageSize);
    this.held.set(state.txid, (this.held.get(state.txid) ?? 0) + 1);
    let released = false;
    return {
      txid: state.txid,
      pageSize,
      pageCount,
      timestamp: state.timestamp,
      readPage: async (pgno) => {
        await new Promise((resolve) => setImmediate(resolve));
        this.asyncReads++;
        if (this.failPages.has(pgno)) {
          throw new LtxvfsError('STORAGE_NOT_FOUND', `page ${pgno}: object memory://0000/gone.ltx not found`);
        }
        return page(pgno);
      },
      readPageSync: (pgno) => (this.syncHits && !this.failPages.has(pgno) ? page(pgno) : undefined),
      release: () => {
        if (released) throw new Error(`view ${state.txid} released twice`);
        released = true;
        this.held.set(state.txid, defined(this.held.get(state.txid)) - 1);
      },
    };
  }
}
