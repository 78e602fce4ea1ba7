import { LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { PAGE_INDEX_TAIL_ESTIMATE } from './constants.js';
import { LtxStreamDecoder } from './decoder.js';
import { xxh32 } from './xxh32.js';

/**
 * Page digests: a small sidecar object per large LTX object an ltxvfs writer uploads, holding one
 * xxh32 per page of the decoded page bytes. Litestream's LZ4-block pages carry no checksum of
 * their own and a random read of a large object cannot check the whole-file CRC-64, so without
 * this a flipped bit inside a block can decode to a wrong page. The sidecar lives under
 * `ltxvfs/digests/` (outside every level prefix, which Litestream never lists), is written before
 * its LTX object and deleted after it, so a reader that finds the object finds its digests.
 *
 * Layout (big-endian, like LTX): magic `LTXVFSPD`, version u32, level u32, minTxid u64,
 * maxTxid u64, size of the LTX object u64, its file checksum (trailer) u64, page count u32,
 * layout digest u32 (xxh32 over the page index: pgno u32, offset u64, size u32 per entry), then
 * one u32 per page in page-index order, then an xxh32 of everything before it.
 */
export const PAGE_DIGESTS_MAGIC = 'LTXVFSPD';
export const PAGE_DIGESTS_VERSION = 1;
const HEADER_BYTES = 8 + 4 + 4 + 8 + 8 + 8 + 8 + 4 + 4;
const CHECK_BYTES = 4;

/**
 * Objects above this size get digests: smaller ones are read whole by the reader and checked
 * against their CRC-64, which covers every byte already.
 */
export const PAGE_DIGESTS_MIN_OBJECT_SIZE = PAGE_INDEX_TAIL_ESTIMATE;

/** Name (under the replica path) of the digests of one LTX object. */
export function pageDigestsObjectName(file: { level: number; minTxid: Txid; maxTxid: Txid }): string {
  return `ltxvfs/digests/L${file.level}/${formatTxid(file.minTxid)}-${formatTxid(file.maxTxid)}`;
}

/** The LTX object a digests object describes, and one digest per page. */
export interface PageDigests {
  level: number;
  minTxid: Txid;
  maxTxid: Txid;
  /** Size in bytes of the LTX object. */
  objectSize: number;
  /** CRC-64 file checksum from its trailer. */
  fileChecksum: bigint;
  /** xxh32 over its page index (layoutDigest()): a different object under the same name differs. */
  layout: number;
  /** pageDigest() of every page, in page-index order. */
  digests: Uint32Array;
}

/** The digest of one decoded page. */
export function pageDigest(page: Uint8Array): number {
  return xxh32(page);
}

/** xxh32 over the page index columns (pgno u32, offset u64, size u32 per entry, big-endian). */
export function layoutDigest(
  pgnos: ArrayLike<number>,
  offsets: ArrayLike<number>,
  sizes: ArrayLike<number>,
): number {
  const n = pgnos.length;
  const bytes = new Uint8Array(n * 16);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) {
    view.setUint32(i * 16, pgnos[i] ?? 0);
    view.setBigUint64(i * 16 + 4, BigInt(offsets[i] ?? 0));
    view.setUint32(i * 16 + 12, sizes[i] ?? 0);
  }
  return xxh32(bytes);
}

export function encodePageDigests(d: PageDigests): Uint8Array {
  for (const [name, v] of [
    ['level', d.level],
    ['minTxid', d.minTxid],
    ['maxTxid', d.maxTxid],
    ['objectSize', d.objectSize],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new LtxvfsError('LTX_ENCODE', `page digests: ${name} ${v} is not a non-negative integer`);
  }
  const bytes = new Uint8Array(HEADER_BYTES + 4 * d.digests.length + CHECK_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(PAGE_DIGESTS_MAGIC), 0);
  view.setUint32(8, PAGE_DIGESTS_VERSION);
  view.setUint32(12, d.level);
  view.setBigUint64(16, BigInt(d.minTxid));
  view.setBigUint64(24, BigInt(d.maxTxid));
  view.setBigUint64(32, BigInt(d.objectSize));
  view.setBigUint64(40, d.fileChecksum);
  view.setUint32(48, d.digests.length);
  view.setUint32(52, d.layout >>> 0);
  for (let i = 0; i < d.digests.length; i++) view.setUint32(HEADER_BYTES + 4 * i, d.digests[i] ?? 0);
  const end = bytes.length - CHECK_BYTES;
  view.setUint32(end, xxh32(bytes, 0, 0, end));
  return bytes;
}

/** Parses and checks a digests object; anything wrong is one PAGE_DIGESTS_INVALID naming `source`. */
export function decodePageDigests(bytes: Uint8Array, source = 'page digests'): PageDigests {
  const bad = (why: string): LtxvfsError => new LtxvfsError('PAGE_DIGESTS_INVALID', `${source}: ${why}`);
  if (bytes.length < HEADER_BYTES + CHECK_BYTES) throw bad(`${bytes.length} bytes is too short`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== PAGE_DIGESTS_MAGIC) throw bad('bad magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8);
  if (version !== PAGE_DIGESTS_VERSION) throw bad(`unsupported version ${version}`);
  const count = view.getUint32(48);
  const expected = HEADER_BYTES + 4 * count + CHECK_BYTES;
  if (bytes.length !== expected) throw bad(`${bytes.length} bytes where ${count} pages need ${expected}`);
  const end = bytes.length - CHECK_BYTES;
  if (view.getUint32(end) !== xxh32(bytes, 0, 0, end)) throw bad('checksum mismatch');
  const big = (at: number, name: string): number => {
    const v = view.getBigUint64(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${name} ${v} is out of range`);
    return Number(v);
  };
  const minTxid = big(16, 'minTxid');
  const maxTxid = big(24, 'maxTxid');
  if (minTxid > maxTxid) throw bad(`minTxid ${formatTxid(minTxid)} > maxTxid ${formatTxid(maxTxid)}`);
  const digests = new Uint32Array(count);
  for (let i = 0; i < count; i++) digests[i] = view.getUint32(HEADER_BYTES + 4 * i);
  return {
    level: view.getUint32(12),
    minTxid,
    maxTxid,
    objectSize: big(32, 'objectSize'),
    fileChecksum: view.getBigUint64(40),
    layout: view.getUint32(52),
    digests,
  };
}

/**
 * The digests of an LTX object from its bytes, streamed (one frame and one chunk in memory): the
 * object is decoded and verified in full (file checksum included) on the way, so digests are
 * only ever made of pages that are what the object says.
 */
export async function computePageDigests(
  level: number,
  chunks: AsyncIterable<Uint8Array>,
  objectSize: number,
): Promise<PageDigests> {
  const decoder = new LtxStreamDecoder(chunks);
  const header = await decoder.header();
  const byPgno = new Map<number, number>();
  for await (const page of decoder.pages()) byPgno.set(page.pgno, pageDigest(page.data));
  const { trailer, index } = await decoder.trailer();
  const digests = new Uint32Array(index.length);
  for (let i = 0; i < index.length; i++) {
    const entry = index[i];
    const digest = entry === undefined ? undefined : byPgno.get(entry.pgno);
    if (digest === undefined)
      throw new LtxvfsError('LTX_BAD_INDEX', `page index entry ${i} names a page the object does not hold`);
    digests[i] = digest;
  }
  return {
    level,
    minTxid: header.minTxid,
    maxTxid: header.maxTxid,
    objectSize,
    fileChecksum: trailer.fileChecksum,
    layout: layoutDigest(
      index.map((e) => e.pgno),
      index.map((e) => e.offset),
      index.map((e) => e.size),
    ),
    digests,
  };
}
