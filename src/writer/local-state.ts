import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { formatLtxFileName, parseLtxFileName } from '../ltx/names.js';
import { writeAllSync, writeFileAtomicSync } from '../util/atomic-file.js';
import { LtxvfsError } from '../util/errors.js';
import type { Txid } from '../util/txid.js';
import type { DbFingerprint } from './continuity.js';

/** Where the next incremental sync continues in the WAL. */
export interface WalCursor {
  salt1: number;
  salt2: number;
  checkpointSeq: number;
  /** Frame boundary just after the last frame copied into an L0 file. */
  offset: number;
  /** Cumulative WAL checksum at `offset` (from the frame before it). */
  checksum1: number;
  checksum2: number;
}

/** What survives a restart: the TXID sequence and the WAL position it corresponds to. */
export interface WriterState {
  version: 1;
  /** Last TXID staged locally (its L0 file was written, fsynced and renamed). */
  txid: Txid;
  pageSize: number;
  /** Database size in pages at `txid`. */
  commit: number;
  /** null: there was no WAL at `txid` (everything was in the database file). */
  wal: WalCursor | null;
  db: { dev: number; ino: number };
  /** The database file when this state was read (before its pages were); absent in old states. */
  file?: DbFingerprint;
}

const STATE_FILE = 'state.json';
const L0_DIR = join('ltx', '0');

/**
 * The replicator's directory beside the database, `.<db>-ltxvfs/` (as Litestream keeps
 * `.<db>-litestream/`): `state.json` and staged L0 files in `ltx/0/`. Every write is temp file,
 * fsync, rename, fsync of the directory, so a crash leaves either the old or the new version.
 *
 * Order of truth: an L0 file is staged first, then state.json names its TXID. A staged file
 * beyond state.txid is the leftover of a crash between the two and is discarded on load.
 */
export class LocalState {
  readonly dir: string;
  readonly l0Dir: string;

  constructor(readonly dbPath: string) {
    this.dir = join(dirname(dbPath), `.${basename(dbPath)}-ltxvfs`);
    this.l0Dir = join(this.dir, L0_DIR);
  }

  ensure(): void {
    mkdirSync(this.l0Dir, { recursive: true });
  }

  load(): WriterState | null {
    let text: string;
    try {
      text = readFileSync(join(this.dir, STATE_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new LtxvfsError(
        'WRITER_DB',
        `cannot read ${join(this.dir, STATE_FILE)}: ${(err as Error).message}`,
      );
    }
    try {
      const state = JSON.parse(text) as WriterState;
      if (state.version !== 1 || !Number.isSafeInteger(state.txid) || state.txid < 0)
        throw new Error('bad fields');
      return state;
    } catch {
      // Unreadable state cannot be trusted; the caller resumes from the replica with a snapshot.
      return null;
    }
  }

  save(state: WriterState): void {
    this.writeAtomic(join(this.dir, STATE_FILE), [
      new TextEncoder().encode(`${JSON.stringify(state, null, 1)}\n`),
    ]);
  }

  l0Path(txid: Txid): string {
    return join(this.l0Dir, formatLtxFileName(txid, txid));
  }

  /** Staged L0 TXIDs, ascending. */
  listStaged(): Txid[] {
    let names: string[];
    try {
      names = readdirSync(this.l0Dir);
    } catch {
      return [];
    }
    const out: Txid[] = [];
    for (const name of names) {
      const range = parseLtxFileName(name);
      if (range && range.minTxid === range.maxTxid) out.push(range.minTxid);
    }
    return out.sort((a, b) => a - b);
  }

  readStaged(txid: Txid): Uint8Array {
    return new Uint8Array(readFileSync(this.l0Path(txid)));
  }

  /** Bytes of a staged L0 file (0 when it is gone). */
  stagedSize(txid: Txid): number {
    try {
      return statSync(this.l0Path(txid)).size;
    } catch {
      return 0;
    }
  }

  removeStaged(txid: Txid): void {
    rmSync(this.l0Path(txid), { force: true });
  }

  /** Writes an L0 file from chunks produced on the fly; returns its size. */
  stageL0(txid: Txid, chunks: Iterable<Uint8Array>): number {
    return this.writeAtomic(this.l0Path(txid), chunks);
  }

  /** Removes temp files and staged files a crash left beyond `txid`. */
  discardBeyond(txid: Txid): void {
    for (const t of this.listStaged()) if (t > txid) this.removeStaged(t);
    for (const name of safeReaddir(this.l0Dir))
      if (name.endsWith('.tmp')) rmSync(join(this.l0Dir, name), { force: true });
  }

  private writeAtomic(path: string, chunks: Iterable<Uint8Array>): number {
    return writeFileAtomicSync(path, (fd) => {
      let size = 0;
      for (const chunk of chunks) {
        writeAllSync(fd, chunk);
        size += chunk.length;
      }
      return size;
    });
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
