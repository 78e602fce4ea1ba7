import {
  type DecodedLtxFile,
  decodeLtxFile,
  decodeManifest,
  HOT_PAGES_OBJECT,
  inlineIndexBytes,
  isManifestFresh,
  MANIFEST_OBJECT,
  type Manifest,
} from '../ltx/index.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { isLtxvfsError } from '../util/errors.js';
import { formatTxid } from '../util/txid.js';
import type { Listing } from './extend.js';
import type { IndexLoader, LoadedFile } from './index-loader.js';

/** The manifest as a reader uses it: its listing, and its ETag for the next conditional GET. */
export interface ManifestState {
  manifest: Manifest;
  etag: string;
  listing: Listing;
}

/** The hot pages beside a trusted manifest: usable, absent or replaced meanwhile, or corrupt. */
export type HotPagesLook = { kind: 'ok'; hot?: DecodedLtxFile } | { kind: 'corrupt'; why: string };

export type ManifestLook =
  /** `hotPages` settles on its own (never rejects): the caller may start its next round first. */
  | { kind: 'ok'; state: ManifestState; hotPages: Promise<HotPagesLook> }
  | { kind: 'unchanged' }
  /** Use the LIST path; `why` is logged (absent = no manifest at all, nothing to warn about). */
  | { kind: 'fallback'; why?: string };

/**
 * One round: GET of the manifest (conditional when `etag` is known) and, when asked, GET of the
 * hot pages beside it. Anything that makes the manifest untrustworthy (missing, corrupt,
 * truncated, foreign, older than its staleness bound, hot pages that do not decode) is a fallback
 * to the LIST path, never an error: the listing is always the truth.
 */
export async function lookAtManifest(
  client: ReplicaClient,
  options: { etag?: string; withHotPages: boolean; now?: number },
): Promise<ManifestLook> {
  // Both GETs leave together; the answer waits only for the manifest (the hot pages are the
  // bigger object), so the indexes it points at can be asked for while they still arrive.
  const hotRead = options.withHotPages
    ? client.readObject(HOT_PAGES_OBJECT).catch(() => null)
    : Promise.resolve(null);
  const object = await client.readObjectIfChanged(MANIFEST_OBJECT, options.etag);
  if (object === 'unchanged') return { kind: 'unchanged' };
  if (object === null) return { kind: 'fallback' };
  let manifest: Manifest;
  try {
    manifest = decodeManifest(object.data, `${client.url} ${MANIFEST_OBJECT}`);
  } catch (err) {
    return { kind: 'fallback', why: err instanceof Error ? err.message : String(err) };
  }
  const now = options.now ?? Date.now();
  if (!isManifestFresh(manifest, now)) {
    return {
      kind: 'fallback',
      why: `${client.url} ${MANIFEST_OBJECT} is stale (written ${new Date(manifest.writtenAt).toISOString()}, bound ${manifest.staleAfterMs} ms): its writer stopped or another writer took over`,
    };
  }
  const state: ManifestState = { manifest, etag: object.etag, listing: listingOf(manifest) };
  const expected = options.withHotPages ? manifest.hot : null;
  const hotPages =
    expected === null
      ? Promise.resolve<HotPagesLook>({ kind: 'ok' })
      : hotRead.then((hotObject): HotPagesLook => {
          if (hotObject === null) return { kind: 'ok' };
          try {
            const hot = decodeLtxFile(hotObject.data);
            // Replaced between the two GETs: the manifest of the next poll names it; open without it.
            if (hot.header.maxTxid !== expected.txid || hot.header.pageSize !== manifest.pageSize)
              return { kind: 'ok' };
            return { kind: 'ok', hot };
          } catch (err) {
            return {
              kind: 'corrupt',
              why: `${client.url} ${HOT_PAGES_OBJECT} is corrupt: ${err instanceof Error ? err.message : String(err)}`,
            };
          }
        });
  return { kind: 'ok', state, hotPages };
}

/** Index loads the manifest makes cheap: carried indexes cost nothing, others one exact GET each. */
export function loadFromManifest(
  loader: IndexLoader,
  state: ManifestState,
  files: readonly LtxFileInfo[],
): Promise<LoadedFile[]> {
  const byKey = new Map(
    state.manifest.files.map((f) => [`${f.level}/${f.minTxid}-${f.maxTxid}@${f.size}`, f]),
  );
  return Promise.all(
    files.map((file) => {
      const m = byKey.get(`${file.level}/${file.minTxid}-${file.maxTxid}@${file.size}`);
      if (m === undefined) return loader.load(file, false);
      return loader.loadKnown(file, {
        indexOffset: m.indexOffset,
        commit: m.commit,
        index: inlineIndexBytes(m),
      });
    }),
  );
}

/** The manifest entry of a file (header facts a reader would otherwise GET). */
export function manifestEntry(
  state: ManifestState,
  file: LtxFileInfo,
): Manifest['files'][number] | undefined {
  return state.manifest.files.find(
    (f) =>
      f.level === file.level &&
      f.minTxid === file.minTxid &&
      f.maxTxid === file.maxTxid &&
      f.size === file.size,
  );
}

export function isVanished(err: unknown): boolean {
  return isLtxvfsError(err, 'STORAGE_NOT_FOUND');
}

export function describeManifest(m: Manifest): string {
  return `manifest generation ${m.generation} of writer ${m.writer.id} (${m.writer.host}) at TXID ${formatTxid(m.txid)}`;
}

function listingOf(m: Manifest): Listing {
  const out: Listing = new Map();
  for (const f of m.files) {
    const info: LtxFileInfo = {
      level: f.level,
      minTxid: f.minTxid,
      maxTxid: f.maxTxid,
      size: f.size,
      createdAt: new Date(f.timestamp),
    };
    const list = out.get(f.level);
    if (list === undefined) out.set(f.level, [info]);
    else list.push(info);
  }
  return out;
}
