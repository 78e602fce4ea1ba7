import { LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { xxh32 } from './xxh32.js';

/**
 * The ltxvfs manifest: one small object (`PATH/ltxvfs/manifest.json`, outside every level prefix,
 * so Litestream never lists it) that tells a reader everything it needs to open a replica without
 * listing it. Written by the ltxvfs writer only after every file it names exists; readers that
 * find it missing, stale, corrupt or naming a file that is gone fall back to listing.
 *
 * The bytes are JSON: `{"manifest":{...},"xxh32":"<8 hex>"}`, the checksum over the exact JSON
 * text of the `manifest` member, so a flipped or truncated byte is caught even where the JSON
 * still parses.
 */
export const MANIFEST_FORMAT = 'ltxvfs-manifest';
export const MANIFEST_VERSION = 1;
/** Object names under the replica path. */
export const MANIFEST_OBJECT = 'ltxvfs/manifest.json';
export const HOT_PAGES_OBJECT = 'ltxvfs/hot.ltx';

export interface ManifestFile {
  level: number;
  minTxid: Txid;
  maxTxid: Txid;
  /** Object size in bytes. */
  size: number;
  /** LTX header timestamp, ms since the epoch. */
  timestamp: number;
  /** Database size in pages after this file (header Commit). */
  commit: number;
  /** Where the page index starts and how long it is, size field included, up to the trailer. */
  indexOffset: number;
  indexSize: number;
  /** The page index bytes themselves (base64), for files whose index is small. */
  index?: string;
}

export interface ManifestHotPages {
  /** Object name under the replica path. */
  object: string;
  /** The TXID whose database state the pages are from. */
  txid: Txid;
  size: number;
  pages: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  /** Who wrote it: a random ID per writer process, and a human hint. */
  writer: { id: string; host: string; pid: number };
  /** Increases by one on every write by the same writer. */
  generation: number;
  /** Newest TXID the files reach. */
  txid: Txid;
  pageSize: number;
  /** When it was written (writer clock, ms since the epoch). */
  writtenAt: number;
  /**
   * The writer rewrites the manifest at least this often while it runs; readers treat one older
   * than writtenAt + staleAfterMs (by their clock) as abandoned and list instead.
   */
  staleAfterMs: number;
  /** Current files of every level, each level in ascending TXID order. */
  files: ManifestFile[];
  hot: ManifestHotPages | null;
}

/** Page indexes up to this many bytes are carried inside the manifest. */
export const MANIFEST_INLINE_INDEX_MAX = 16 * 1024;

export function encodeManifest(m: Manifest): Uint8Array {
  validateManifest(m);
  const body = JSON.stringify(m);
  const check = xxh32(new TextEncoder().encode(body)).toString(16).padStart(8, '0');
  return new TextEncoder().encode(`{"manifest":${body},"xxh32":"${check}"}\n`);
}

/** Parses and checks a manifest; anything wrong is one MANIFEST_INVALID error saying what. */
export function decodeManifest(bytes: Uint8Array, source = 'manifest'): Manifest {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes).trimEnd();
  const prefix = '{"manifest":';
  const m = /,"xxh32":"([0-9a-f]{8})"}$/.exec(text);
  if (!text.startsWith(prefix) || m === null || m[1] === undefined) {
    throw invalid(source, 'not a manifest envelope (truncated or foreign)');
  }
  const body = text.slice(prefix.length, m.index);
  const actual = xxh32(new TextEncoder().encode(body)).toString(16).padStart(8, '0');
  if (actual !== m[1]) throw invalid(source, `checksum ${actual} does not match ${m[1]}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    throw invalid(source, `not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  validateManifest(parsed, source);
  return parsed;
}

/** Throws MANIFEST_INVALID unless `m` is a well-formed manifest of this version. */
export function validateManifest(m: unknown, source = 'manifest'): asserts m is Manifest {
  const fail = (why: string): never => {
    throw invalid(source, why);
  };
  if (typeof m !== 'object' || m === null) fail('not an object');
  const o = m as Record<string, unknown>;
  if (o.format !== MANIFEST_FORMAT) fail(`format is ${JSON.stringify(o.format)}`);
  if (o.version !== MANIFEST_VERSION) fail(`version ${JSON.stringify(o.version)} is not supported`);
  const w = o.writer as Record<string, unknown> | undefined;
  if (typeof w !== 'object' || w === null || typeof w.id !== 'string' || w.id === '') fail('no writer id');
  if (typeof w?.host !== 'string' || !isCount(w?.pid)) fail('writer host/pid missing');
  for (const k of ['generation', 'txid', 'pageSize', 'writtenAt', 'staleAfterMs'] as const) {
    if (!isCount(o[k])) fail(`${k} is not a non-negative integer`);
  }
  if (!Array.isArray(o.files)) fail('files is not a list');
  const files = o.files as unknown[];
  let maxTxid = 0;
  const lastOfLevel = new Map<number, [number, number]>();
  for (const [i, f] of files.entries()) {
    const what = `files[${i}]`;
    if (typeof f !== 'object' || f === null) fail(`${what} is not an object`);
    const e = f as Record<string, unknown>;
    for (const k of [
      'level',
      'minTxid',
      'maxTxid',
      'size',
      'timestamp',
      'commit',
      'indexOffset',
      'indexSize',
    ] as const) {
      if (!isCount(e[k])) fail(`${what}.${k} is not a non-negative integer`);
    }
    const level = e.level as number;
    const min = e.minTxid as number;
    const max = e.maxTxid as number;
    if (level > 9) fail(`${what} has level ${level}`);
    if (min < 1 || max < min) fail(`${what} has TXIDs ${min}..${max}`);
    if ((e.indexOffset as number) + (e.indexSize as number) > (e.size as number)) {
      fail(`${what} places its index past the end of the object`);
    }
    // Ascending (minTxid, maxTxid): snapshots of L9 all start at TXID 1.
    const prev = lastOfLevel.get(level);
    if (prev !== undefined && (min < prev[0] || (min === prev[0] && max <= prev[1]))) {
      fail(`${what} is out of order in level ${level}`);
    }
    lastOfLevel.set(level, [min, max]);
    if (e.index !== undefined && (typeof e.index !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(e.index))) {
      fail(`${what}.index is not base64`);
    }
    maxTxid = Math.max(maxTxid, max);
  }
  if (files.length > 0 && maxTxid !== o.txid) {
    fail(`txid ${formatTxid(o.txid as number)} but the files reach ${formatTxid(maxTxid)}`);
  }
  if (o.hot !== null) {
    const h = o.hot as Record<string, unknown> | undefined;
    if (typeof h !== 'object' || h === null || typeof h.object !== 'string') fail('hot is not an object');
    if (!isCount(h?.txid) || !isCount(h?.size) || !isCount(h?.pages)) fail('hot txid/size/pages missing');
    if ((h?.txid as number) > (o.txid as number)) fail('hot pages are newer than the manifest');
  }
}

/** The decoded page index bytes a manifest carries for a file, or undefined. */
export function inlineIndexBytes(f: ManifestFile): Uint8Array | undefined {
  if (f.index === undefined) return undefined;
  return new Uint8Array(Buffer.from(f.index, 'base64'));
}

/**
 * Whether a reader at `nowMs` should trust the manifest: written within its own staleness bound.
 * A manifest from the future (clock skew) counts as fresh.
 */
export function isManifestFresh(m: Manifest, nowMs: number): boolean {
  return nowMs - m.writtenAt <= m.staleAfterMs;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function invalid(source: string, why: string): LtxvfsError {
  return new LtxvfsError('MANIFEST_INVALID', `${source} is invalid: ${why}`);
}
