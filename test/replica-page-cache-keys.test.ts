/**
 * The page cache's numeric keys (issue 14: no `key#pgno` string per page read). Keys must keep the
 * meaning the strings had: two indexes of one object share its cached pages (no second request),
 * and an object rewritten under the same name with other pages never answers with the old ones.
 * Contents are the bytes the test wrote; requests are counted by the storage client.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLtxFile } from '../bench/support/ltx-images.js';
import { IndexLoader } from '../src/replica/index-loader.js';
import { PageFetcher } from '../src/replica/page-fetcher.js';
import { findEntry, type PageLocation } from '../src/replica/page-map.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileInfo, ReplicaClient } from '../src/storage/types.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const PAGE = 4096;
let tmp: TempDir;
let client: ReplicaClient;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-cache-keys-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
});

afterAll(async () => {
  await client?.close();
  await tmp?.cleanup();
});

function page(fill: number): Uint8Array {
  return new Uint8Array(PAGE).fill(fill);
}

async function write(pages: Array<[number, number]>): Promise<LtxFileInfo> {
  return writeLtxFile(
    client,
    { level: 1, minTxid: 2, maxTxid: 3 },
    {
      pageSize: PAGE,
      commit: 8,
      timestamp: Date.UTC(2026, 0, 1),
      pages: pages.map(([pgno, fill]) => ({ pgno, data: page(fill) })),
    },
  );
}

function fetcher(): PageFetcher {
  return new PageFetcher(client, {
    cacheBytes: 1 << 20,
    coalesce: false,
    readAhead: false,
    maxReadAheadBytes: 0,
  });
}

/** The location of `pgno` in `file` through a fresh index (a new FileIndex, as after a re-plan). */
async function locate(file: LtxFileInfo, pgno: number): Promise<PageLocation> {
  const [loaded] = await new IndexLoader(client).loadAll([file], new Set());
  if (loaded === undefined) throw new Error(`no index for ${file.level}/${file.minTxid}-${file.maxTxid}`);
  const entry = findEntry(loaded.index, pgno);
  if (entry < 0) throw new Error(`page ${pgno} is not in the file`);
  return { index: loaded.index, entry };
}

function gets(): number {
  return client.stats().get;
}

describe('page cache keys', () => {
  it('two indexes of one object share its cached pages; a rewrite with other pages is never answered from the old ones', async () => {
    const first = await write([
      [2, 0x22],
      [3, 0x33],
    ]);
    const pages = fetcher();
    const firstIndex = await locate(first, 3);
    const secondIndex = await locate(first, 3);
    expect(secondIndex.index).not.toBe(firstIndex.index);
    let before = gets();
    expect(await pages.read(firstIndex, PAGE)).toEqual(page(0x33));
    expect(gets()).toBe(before + 1);
    // The other index of the same object finds the page in the cache: no request.
    before = gets();
    expect(await pages.read(secondIndex, PAGE)).toEqual(page(0x33));
    expect(pages.cached(secondIndex)).toEqual(page(0x33));
    expect(gets()).toBe(before);

    // The same name, now holding pages 1, 2 and 3 with other bytes.
    await client.deleteFiles([first]);
    const rewritten = await write([
      [1, 0x11],
      [2, 0x44],
      [3, 0x55],
    ]);
    for (const [pgno, fill] of [
      [3, 0x55],
      [2, 0x44],
      [1, 0x11],
    ] as const) {
      const loc = await locate(rewritten, pgno);
      // Not cached yet, or cached from the rewritten object (a neighbour's read): never the old bytes.
      expect([undefined, page(fill)]).toContainEqual(pages.cached(loc));
      expect(await pages.read(loc, PAGE)).toEqual(page(fill));
    }
  });
});
