import { formatTxid, type Txid } from '../util/txid.js';
import { PENDING_BYTE } from './constants.js';

/**
 * The facts of Litestream's replica layout that every room shares (superfly/ltx keeps them in
 * one place too): how an LTX file is named, which levels exist, and where SQLite's lock page is.
 */

/** Litestream's LTX file name; other widths or uppercase hex are not LTX names and are ignored. */
export const LTX_NAME_PATTERN = /^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$/;

/** Litestream uses levels 0..9; 9 holds full snapshots `1-<N>`. */
export const MAX_LEVEL = 9;
export const SNAPSHOT_LEVEL = 9;
/** The highest compaction level (1..8 merge the level below). */
export const MAX_COMPACTION_LEVEL = 8;

/** `<min as 16 hex>-<max as 16 hex>.ltx` */
export function formatLtxFileName(minTxid: Txid, maxTxid: Txid): string {
  return `${formatTxid(minTxid)}-${formatTxid(maxTxid)}.ltx`;
}

/** TXIDs of an LTX file name, or null when the name is not one (so listings can skip it). */
export function parseLtxFileName(name: string): { minTxid: Txid; maxTxid: Txid } | null {
  const [, min, max] = LTX_NAME_PATTERN.exec(name) ?? [];
  if (min === undefined || max === undefined) return null;
  const minTxid = BigInt(`0x${min}`);
  const maxTxid = BigInt(`0x${max}`);
  if (minTxid > maxTxid || maxTxid > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { minTxid: Number(minTxid), maxTxid: Number(maxTxid) };
}

/** `level L <min>-<max>.ltx`: how messages name a file of a replica. */
export function describeLtxFile(file: { level: number; minTxid: Txid; maxTxid: Txid }): string {
  return `level ${file.level} ${formatLtxFileName(file.minTxid, file.maxTxid)}`;
}

/** Page number of SQLite's lock page for a page size (never stored in an LTX file). */
export function lockPgno(pageSize: number): number {
  return Math.floor(PENDING_BYTE / pageSize) + 1;
}

/**
 * Whether a file starting at `nextMinTxid` continues a chain that has reached `prevMaxTxid`: it
 * touches or overlaps the end (an LTX file holds the newest version of every page it changed, so
 * applying it over a state inside its range yields the state at its max).
 */
export function isContiguous(prevMaxTxid: Txid, nextMinTxid: Txid): boolean {
  return nextMinTxid <= prevMaxTxid + 1;
}
