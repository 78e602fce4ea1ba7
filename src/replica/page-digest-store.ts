import { LRUCache } from 'lru-cache';
import { decodePageDigests, layoutDigest, pageDigestsObjectName } from '../ltx/index.js';
import type { ReplicaClient, SmallObject } from '../storage/types.js';
import { isLtxvfsError } from '../util/errors.js';
import type { FileIndex } from './page-map.js';

/** Digest objects kept per replica (a few per large object touched; 4 bytes per page each). */
const MAX_CACHED_DIGESTS = 128;

/**
 * The page digests of large objects (src/ltx/page-digests.ts), fetched once per object on its
 * first random read, in the same round as that read (never a round of its own). An object
 * without usable digests (Litestream wrote it, or the digests are damaged or describe another
 * object) is read with the structural checks alone: that is logged once, never an error, since
 * the digests are an addition to the replica format, not part of it.
 */
export class PageDigestStore {
  private readonly cache = new LRUCache<string, Promise<Uint32Array | null>>({ max: MAX_CACHED_DIGESTS });
  private warnedMissing = false;
  private warnedUnreadable = false;

  constructor(
    private readonly client: ReplicaClient,
    private readonly log: (line: string) => void,
  ) {}

  /** The digest of every page of `index` in entry order, or null when the object has none usable. */
  get(index: FileIndex): Promise<Uint32Array | null> {
    const key = cacheKeyOf(index);
    let pending = this.cache.get(key);
    if (pending === undefined) {
      pending = this.fetch(index, key);
      this.cache.set(key, pending);
    }
    return pending;
  }

  /**
   * The digests object of `index`'s file as read by someone else in an earlier round (the open
   * reads the base snapshot's with its front bytes): `undefined` = that read failed, ask later.
   */
  adopt(index: FileIndex, object: SmallObject | null | undefined): Promise<Uint32Array | null> {
    if (object === undefined) return this.get(index);
    const key = cacheKeyOf(index);
    const known = this.cache.get(key);
    if (known !== undefined) return known;
    const checked = Promise.resolve(this.check(index, object));
    this.cache.set(key, checked);
    return checked;
  }

  private async fetch(index: FileIndex, key: string): Promise<Uint32Array | null> {
    const name = pageDigestsObjectName(index.file);
    let object: SmallObject | null;
    try {
      object = await this.client.readObject(name);
    } catch (err) {
      // The store did not answer: read without digests now, ask again on a later read. Any other
      // refusal (a read-only policy without s3:ListBucket answers 403 for a missing key) is an
      // answer: no digests, asked once.
      if (isLtxvfsError(err, 'STORAGE_UNREACHABLE')) this.cache.delete(key);
      if (!this.warnedUnreadable) {
        this.warnedUnreadable = true;
        this.log(
          `warning: ${this.client.url} ${name} could not be read (${err instanceof Error ? err.message : String(err)}); reads of ${index.key} get structural checks only`,
        );
      }
      return null;
    }
    return this.check(index, object);
  }

  private check(index: FileIndex, object: SmallObject | null): Uint32Array | null {
    const name = pageDigestsObjectName(index.file);
    if (object === null) {
      if (!this.warnedMissing) {
        this.warnedMissing = true;
        this.log(
          `note: ${this.client.url} has no page digests for ${index.key} (written by Litestream or an older ltxvfs): random reads of large objects get structural checks only`,
        );
      }
      return null;
    }
    try {
      const d = decodePageDigests(object.data, `${this.client.url} ${name}`);
      const { file } = index;
      const same =
        d.level === file.level &&
        d.minTxid === file.minTxid &&
        d.maxTxid === file.maxTxid &&
        d.objectSize === file.size &&
        d.digests.length === index.pgnos.length &&
        d.layout === layoutDigest(index.pgnos, index.offsets, index.sizes);
      if (!same) {
        this.log(
          `warning: ${this.client.url} ${name} describes another object than ${index.key} (${file.size} bytes, ${index.pgnos.length} pages); its random reads get structural checks only`,
        );
        return null;
      }
      return d.digests;
    } catch (err) {
      this.log(
        `warning: ${err instanceof Error ? err.message : String(err)}; random reads of ${index.key} get structural checks only`,
      );
      return null;
    }
  }
}

function cacheKeyOf(index: FileIndex): string {
  return `${index.key}@${index.file.size}`;
}
