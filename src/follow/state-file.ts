import { readFileSync } from 'node:fs';
import type { LtxFileInfo } from '../storage/types.js';
import { writeAllSync, writeFileAtomicSync } from '../util/atomic-file.js';
import { formatTxid, type Txid } from '../util/txid.js';

/** The file beside a followed database that says where it is (resume point and status). */
export function followStatePath(path: string): string {
  return `${path}.ltxvfs-follow.json`;
}

/** A file identified the way the listing shows it: a same-named file of a new lineage differs. */
export interface FileMark {
  level: number;
  minTxid: Txid;
  maxTxid: Txid;
  size: number;
  createdAt: string;
}

export interface FollowPosition {
  txid: Txid;
  /** The change counter page 1 holds at this TXID (normally the TXID mod 2^32). */
  counter: number;
  pageSize: number;
  commit: number;
  /** The last file applied (the next poll checks it is still there). */
  anchor: FileMark;
}

export type FollowState = 'restoring' | 'following' | 'replanning' | 'stalled' | 'closed';

export interface FollowStateFile {
  format: 'ltxvfs-follow-1';
  url: string;
  position: FollowPosition;
  /** Written before an apply starts; the file is at `position` or at `pending`, never between. */
  pending?: FollowPosition;
  state: FollowState;
  /** For people and monitors (not used to resume). */
  txidHex: string;
  newestTxid: Txid;
  lagTxids: number;
  lagSeconds: number;
  applies: number;
  replans: number;
  lastReplanReason?: string;
  lastError?: string;
  updatedAt: string;
}

export function markOf(file: LtxFileInfo): FileMark {
  return {
    level: file.level,
    minTxid: file.minTxid,
    maxTxid: file.maxTxid,
    size: file.size,
    createdAt: file.createdAt.toISOString(),
  };
}

export function sameFile(mark: FileMark, file: LtxFileInfo): boolean {
  return (
    mark.level === file.level &&
    mark.minTxid === file.minTxid &&
    mark.maxTxid === file.maxTxid &&
    mark.size === file.size &&
    mark.createdAt === file.createdAt.toISOString()
  );
}

export function readFollowState(path: string): FollowStateFile | undefined {
  let parsed: Partial<FollowStateFile>;
  try {
    parsed = JSON.parse(readFileSync(followStatePath(path), 'utf8')) as Partial<FollowStateFile>;
  } catch {
    return undefined;
  }
  if (parsed.format !== 'ltxvfs-follow-1' || typeof parsed.url !== 'string' || !isPosition(parsed.position)) {
    return undefined;
  }
  if (parsed.pending !== undefined && !isPosition(parsed.pending)) return undefined;
  return parsed as FollowStateFile;
}

export function writeFollowState(path: string, state: FollowStateFile): void {
  const text = `${JSON.stringify({ ...state, txidHex: formatTxid(state.position.txid) }, null, 2)}\n`;
  writeFileAtomicSync(followStatePath(path), (fd) => writeAllSync(fd, Buffer.from(text), 0));
}

function isPosition(p: unknown): p is FollowPosition {
  if (typeof p !== 'object' || p === null) return false;
  const q = p as Partial<FollowPosition>;
  const a = q.anchor as Partial<FileMark> | undefined;
  return (
    Number.isSafeInteger(q.txid) &&
    Number.isSafeInteger(q.counter) &&
    Number.isSafeInteger(q.pageSize) &&
    Number.isSafeInteger(q.commit) &&
    a !== undefined &&
    Number.isSafeInteger(a.level) &&
    Number.isSafeInteger(a.minTxid) &&
    Number.isSafeInteger(a.maxTxid) &&
    Number.isSafeInteger(a.size) &&
    typeof a.createdAt === 'string'
  );
}
