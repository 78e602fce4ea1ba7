import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeLtxFile,
  encodePageIndex,
  litestreamHeader,
  PAGE_INDEX_TAIL_ESTIMATE,
  type PageIndexEntry,
  pageIndexTailLength,
  parsePageIndexColumns,
} from '../src/ltx/index.js';
import { IndexLoader } from '../src/replica/index-loader.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const PAGE_SIZE = 4096;

/** A snapshot whose pages compress to ~1.6 KiB each: its page index is far over 64 KiB. */
function bigSnapshot(pages: number): { bytes: Uint8Array; timestamp: number } {
  const timestamp = Date.UTC(2026, 0, 1);
  const header = litestreamHeader({ pageSize: PAGE_SIZE, commit: pages, minTxid: 1, maxTxid: 1, timestamp });
  const noise = randomBytes(1600 * 64);
  function* pageData(): Generator<{ pgno: number; data: Uint8Array }> {
    for (let pgno = 1; pgno <= pages; pgno++) {
      const data = new Uint8Array(PAGE_SIZE);
      data.set(noise.subarray((pgno % 64) * 1600, (pgno % 64) * 1600 + 1600));
      new DataView(data.buffer).setUint32(0, pgno);
      yield { pgno, data };
    }
  }
  return { bytes: encodeLtxFile(header, pageData()), timestamp };
}

describe('page index columns', () => {
  it('parse into typed columns equal to the entries that were encoded', () => {
    const entries: PageIndexEntry[] = [];
    let offset = 100;
    for (let pgno = 1; pgno <= 5000; pgno++) {
      // Sizes and offsets crossing the 1-, 2-, 3- and 4-byte uvarint boundaries, a gap in pgnos.
      const size = 7 + ((pgno * 7919) % 20_000);
      entries.push({ pgno: pgno < 2500 ? pgno : pgno + 100_000, offset, size });
      offset += size;
    }
    const index = encodePageIndex(entries);
    const tail = new Uint8Array(6 + index.length + 16);
    tail.set(index, 6);
    tail[tail.length - 8] = 0x80; // file checksum bit 63
    const parsed = parsePageIndexColumns(tail.subarray(6), offset + tail.length);
    if (parsed.kind !== 'ok') throw new Error('expected the whole index');
    expect(parsed.indexSize).toBe(index.length);
    expect(Array.from(parsed.columns.pgnos)).toEqual(entries.map((e) => e.pgno));
    expect(Array.from(parsed.columns.offsets)).toEqual(entries.map((e) => e.offset));
    expect(Array.from(parsed.columns.sizes)).toEqual(entries.map((e) => e.size));
  });

  it('bytes between the index terminator and the size field are LTX_BAD_INDEX', () => {
    const entries: PageIndexEntry[] = [{ pgno: 1, offset: 100, size: 50 }];
    const index = encodePageIndex(entries);
    // The same entries, then two stray bytes after the terminator, with the size field counting them.
    const padded = new Uint8Array(index.length + 2);
    padded.set(index.subarray(0, index.length - 8));
    new DataView(padded.buffer).setBigUint64(padded.length - 8, BigInt(index.length - 8 + 2));
    const tail = new Uint8Array(6 + padded.length + 16);
    tail.set(padded, 6);
    tail[tail.length - 8] = 0x80;
    // Frames end at 150, the terminator takes 6 bytes: the index starts at 156.
    const fileSize = 150 + tail.length;
    expect(() => parsePageIndexColumns(tail.subarray(6), fileSize)).toThrow(
      expect.objectContaining({ code: 'LTX_BAD_INDEX', message: expect.stringContaining('page index ends') }),
    );
  });

  it('tail length: at least the fixed estimate, at most the object, grows with size and the previous index', () => {
    expect(pageIndexTailLength(1000)).toBe(1000);
    expect(pageIndexTailLength(1024 * 1024)).toBe(PAGE_INDEX_TAIL_ESTIMATE);
    // A 1 GiB snapshot of 266k pages has a ~2.5 MiB index: one read must cover it.
    expect(pageIndexTailLength(1024 * 1024 * 1024)).toBeGreaterThan(2.6 * 1024 * 1024);
    expect(pageIndexTailLength(10 * 1024 * 1024, 500_000)).toBeGreaterThan(500_000);
  });
});

describe('IndexLoader reads a big snapshot index in one request', () => {
  let tmp: TempDir;
  let client: ReplicaClient;
  let indexBytes = 0;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-page-index-');
    client = openReplicaClient(join(tmp.dir, 'replica'));
    const { bytes, timestamp } = bigSnapshot(12_000);
    const parsed = parsePageIndexColumns(bytes, bytes.length);
    if (parsed.kind !== 'ok') throw new Error('fixture index');
    indexBytes = parsed.indexSize;
    await client.writeFile({ level: 9, minTxid: 1, maxTxid: 1 }, bytes, { timestamp: new Date(timestamp) });
  }, 60_000);

  afterAll(async () => {
    await client.close();
    await tmp.cleanup();
  });

  it('the fixture index is bigger than the old fixed 64 KiB tail', () => {
    expect(indexBytes).toBeGreaterThan(PAGE_INDEX_TAIL_ESTIMATE);
  });

  it('one GET loads all 12,000 entries', async () => {
    const [file] = await client.listFiles(9);
    if (file === undefined) throw new Error('no snapshot listed');
    client.resetStats();
    const loaded = await new IndexLoader(client).load(file, false);
    expect(client.stats().get).toBe(1);
    expect(loaded.index.pgnos.length).toBe(12_000);
    expect(loaded.index.pgnos[11_999]).toBe(12_000);
  });
});
