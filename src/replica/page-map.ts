import type { PageIndexColumns, PageIndexEntry } from '../ltx/index.js';
import type { LtxFileInfo } from '../storage/types.js';
import { LtxvfsError } from '../util/errors.js';
import { formatTxid } from '../util/txid.js';

/** The page index of one LTX object, in the compact form the page map shares between versions. */
export interface FileIndex {
  readonly file: LtxFileInfo;
  /** Identity of the object; cache keys and "same bytes" checks use it. */
  readonly key: string;
  readonly pgnos: Uint32Array;
  readonly offsets: Float64Array;
  readonly sizes: Uint32Array;
  /** Database size after this file, or +Infinity when its header was not read (no truncation). */
  readonly commit: number;
}

export interface PageLocation {
  readonly index: FileIndex;
  /** Position in index.pgnos / offsets / sizes. */
  readonly entry: number;
}

export function fileKey(file: { level: number; minTxid: number; maxTxid: number }): string {
  return `L${file.level}/${formatTxid(file.minTxid)}-${formatTxid(file.maxTxid)}`;
}

/** Columns are taken as they are (not copied); entry objects are packed into new columns. */
export function makeFileIndex(
  file: LtxFileInfo,
  entries: readonly PageIndexEntry[] | PageIndexColumns,
  commit: number,
): FileIndex {
  if (!Array.isArray(entries)) {
    const { pgnos, offsets, sizes } = entries as PageIndexColumns;
    return { file, key: fileKey(file), pgnos, offsets, sizes, commit };
  }
  const list = entries as readonly PageIndexEntry[];
  const n = list.length;
  const pgnos = new Uint32Array(n);
  const offsets = new Float64Array(n);
  const sizes = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const e = list[i];
    if (e === undefined) continue;
    pgnos[i] = e.pgno;
    offsets[i] = e.offset;
    sizes[i] = e.size;
  }
  return { file, key: fileKey(file), pgnos, offsets, sizes, commit };
}

/*
 * Column reads of one entry. Entries come from findEntry or from a loop over the index, so one out
 * of range is a bug in ltxvfs: it fails here, by name, instead of as NaN arithmetic later.
 */
export function entryPgno(index: FileIndex, entry: number): number {
  return column(index, index.pgnos[entry], entry);
}

export function entryOffset(index: FileIndex, entry: number): number {
  return column(index, index.offsets[entry], entry);
}

export function entrySize(index: FileIndex, entry: number): number {
  return column(index, index.sizes[entry], entry);
}

/** Byte offset just past the frame of `entry`. */
export function entryEnd(index: FileIndex, entry: number): number {
  return entryOffset(index, entry) + entrySize(index, entry);
}

function column(index: FileIndex, value: number | undefined, entry: number): number {
  if (value === undefined)
    throw new LtxvfsError(
      'INTERNAL',
      `internal error: entry ${entry} of the page index of ${index.key} (${index.pgnos.length} entries)`,
    );
  return value;
}

export function findEntry(index: FileIndex, pgno: number): number {
  const p = index.pgnos;
  let lo = 0;
  let hi = p.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    // biome-ignore lint/style/noNonNullAssertion: lo <= mid <= hi < p.length; the hot lookup path
    const v = p[mid]!;
    if (v === pgno) return mid;
    if (v < pgno) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Flat pgno -> (file, entry) arrays: the compacted bottom of a page map. */
interface Base {
  readonly files: FileIndex[];
  readonly slot: Int32Array;
  readonly entry: Int32Array;
  /** Largest pgno the arrays may answer for. */
  readonly limit: number;
}

const EMPTY_BASE: Base = { files: [], slot: new Int32Array(1).fill(-1), entry: new Int32Array(1), limit: 0 };

/** Above this many overlay layers a new version folds them into a fresh base. */
const MAX_LAYERS = 24;

/**
 * pgno -> location of the newest frame of that page, for one TXID. Immutable: a newer TXID is a
 * new PageMap sharing the base and the older layers, so versions cost O(changed pages) and old
 * versions stay valid for views that pinned them.
 */
export class PageMap {
  private constructor(
    private readonly base: Base,
    /** Oldest first. */
    private readonly layers: readonly FileIndex[],
    readonly commit: number,
  ) {}

  /** Files applied in order (oldest first); commit is the database size after the last one. */
  static build(files: readonly FileIndex[], commit: number): PageMap {
    return new PageMap(EMPTY_BASE, [], 0).apply(files, commit);
  }

  apply(files: readonly FileIndex[], commit: number): PageMap {
    const layers = [...this.layers, ...files];
    if (layers.length <= MAX_LAYERS) return new PageMap(this.base, layers, commit);
    return new PageMap(foldBase(this.base, layers), [], commit);
  }

  lookup(pgno: number): PageLocation | undefined {
    if (pgno < 1 || pgno > this.commit) return undefined;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      // biome-ignore lint/style/noNonNullAssertion: i is inside layers; the hot lookup path
      const layer = this.layers[i]!;
      if (pgno > layer.commit) return undefined;
      const entry = findEntry(layer, pgno);
      if (entry >= 0) return { index: layer, entry };
    }
    if (pgno > this.base.limit) return undefined;
    // The base arrays have limit + 1 entries, and every slot >= 0 names one of base.files.
    const slot = this.base.slot[pgno] ?? -1;
    const index = this.base.files[slot];
    if (index === undefined) return undefined;
    // biome-ignore lint/style/noNonNullAssertion: pgno <= limit, entry has limit + 1 entries
    return { index, entry: this.base.entry[pgno]! };
  }

  /** Every object this map may read from. */
  files(): FileIndex[] {
    return [...new Set([...this.base.files, ...this.layers])];
  }
}

function foldBase(base: Base, layers: readonly FileIndex[]): Base {
  let limit = base.limit;
  for (const layer of layers) {
    const top = layer.pgnos.at(-1) ?? 0;
    limit = Math.min(Math.max(limit, top), layer.commit);
  }
  const slot = new Int32Array(limit + 1).fill(-1);
  const entry = new Int32Array(limit + 1);
  const n = Math.min(base.limit, limit);
  slot.set(base.slot.subarray(0, n + 1));
  entry.set(base.entry.subarray(0, n + 1));
  const files: FileIndex[] = [];
  const slotOf = new Map<FileIndex, number>();
  const remap = base.files.map((f) => {
    slotOf.set(f, files.length);
    files.push(f);
    return files.length - 1;
  });
  for (let p = 1; p <= n; p++) {
    const old = slot[p] ?? -1;
    if (old >= 0) slot[p] = remap[old] ?? -1;
  }
  let live = n;
  for (const layer of layers) {
    if (layer.commit < live) {
      slot.fill(-1, layer.commit + 1, live + 1);
      live = layer.commit;
    }
    let s = slotOf.get(layer);
    if (s === undefined) {
      s = files.length;
      files.push(layer);
      slotOf.set(layer, s);
    }
    const pg = layer.pgnos;
    for (let i = 0; i < pg.length; i++) {
      // biome-ignore lint/style/noNonNullAssertion: i < pg.length; one read per page of every layer
      const p = pg[i]!;
      if (p > limit) break;
      slot[p] = s;
      entry[p] = i;
      if (p > live) live = p;
    }
  }
  // Files no page points at any more need not be kept alive by the base.
  const used = new Set<number>();
  for (let p = 1; p <= limit; p++) {
    const s = slot[p] ?? -1;
    if (s >= 0) used.add(s);
  }
  if (used.size === files.length) return { files, slot, entry, limit };
  const compact: FileIndex[] = [];
  const renumber = new Int32Array(files.length).fill(-1);
  files.forEach((f, i) => {
    if (used.has(i)) {
      renumber[i] = compact.length;
      compact.push(f);
    }
  });
  for (let p = 1; p <= limit; p++) {
    const s = slot[p] ?? -1;
    if (s >= 0) slot[p] = renumber[s] ?? -1;
  }
  return { files: compact, slot, entry, limit };
}
