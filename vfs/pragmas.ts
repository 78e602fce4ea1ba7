import { LtxvfsError } from '../src/util/errors.js';
import { parseTxid, type Txid } from '../src/util/txid.js';
import type { HydrationStatus } from './replica-port.js';
import { parseTimeTarget } from './time-target.js';

/** The PRAGMAs the ltx VFS answers itself (through SQLITE_FCNTL_PRAGMA). */
export type LtxPragma = 'txid' | 'time' | 'lag' | 'hydration';

const NAMES: Record<string, LtxPragma> = {
  ltx_txid: 'txid',
  litestream_txid: 'txid',
  ltx_time: 'time',
  litestream_time: 'time',
  ltx_lag: 'lag',
  litestream_lag: 'lag',
  ltx_hydration: 'hydration',
  litestream_hydration_progress: 'hydration',
};

export function ltxPragmaKind(name: string): LtxPragma | undefined {
  return NAMES[name.toLowerCase()];
}

/** What a PRAGMA statement asks for. */
export type PragmaRequest =
  | { kind: 'read' }
  | { kind: 'latest' }
  | { kind: 'txid'; txid: Txid }
  | { kind: 'time'; at: Date };

/** Parses `PRAGMA <name> [= value]`; `value` is null for a read. Throws BAD_ARGUMENT. */
export function parsePragmaRequest(name: string, value: string | null, now?: Date): PragmaRequest {
  if (value === null) return { kind: 'read' };
  const kind = ltxPragmaKind(name);
  const v = value.trim();
  if (kind === 'txid' || kind === 'time') {
    if (/^latest$/i.test(v)) return { kind: 'latest' };
    if (kind === 'txid') return { kind: 'txid', txid: parseTxid(v) };
    return { kind: 'time', at: parseTimeTarget(v, now) };
  }
  throw new LtxvfsError('BAD_ARGUMENT', `PRAGMA ${name} is read-only`);
}

/** e.g. `running 45.0% (1234/2741 pages) at TXID 0000000000000012`, or `off`. */
export function formatHydration(status: HydrationStatus, formatTxid: (t: Txid) => string): string {
  if (status.state === 'off') return 'off';
  const percent = status.pagesTotal > 0 ? (100 * status.pagesDone) / status.pagesTotal : 0;
  const progress = `${percent.toFixed(1)}% (${status.pagesDone}/${status.pagesTotal} pages) at TXID ${formatTxid(status.txid)}`;
  return status.state === 'error'
    ? `error ${progress}: ${status.error ?? 'unknown error'}`
    : `${status.state} ${progress}`;
}
