import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Replica, type ReplicaView } from '../src/replica/replica.js';
import { restore } from '../src/replica/restore.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { fillTable, TestPrimary } from './support/replica-fixture.js';
import { createTestBucket, describeS3 } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

// Time targets on S3 come from the LTX header timestamps, not LastModified. Every file here is a
// late upload: its header says 2026-01-01 + TXID seconds (the primary's commit time), its
// LastModified is the moment of this test run, as after an outage and catch-up. The expected
// state is the primary's image at the TXID whose commit time is the newest <= the target.

async function readImage(view: ReplicaView): Promise<Buffer> {
  const pages: Uint8Array[] = [];
  for (let p = 1; p <= view.pageCount; p++) pages.push(await view.readPage(p));
  return Buffer.concat(pages);
}

describeS3('time targets on S3 with late uploads', () => {
  let tmp: TempDir;
  let client: ReplicaClient;
  let primary: TestPrimary;
  const TXIDS = 24;
  /** A binary search over at most TXIDS + 1 file boundaries. */
  const HEADER_PROBES = Math.ceil(Math.log2(TXIDS + 1)) + 1;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-time-s3-');
    ({ client } = await createTestBucket('time'));
    primary = new TestPrimary(client, tmp.dir);
    for (let i = 1; i <= TXIDS; i++) {
      fillTable(primary.db, 20, 50, i * 100);
      await primary.sync();
    }
    // An L1 compaction output over TXIDs 9..16 (header time of TXID 16, uploaded now).
    await primary.compact(
      1,
      primary.files.filter((f) => f.level === 0 && f.minTxid >= 9 && f.maxTxid <= 16),
    );
  }, 60_000);

  afterAll(async () => {
    primary?.close();
    await client?.close();
    await tmp?.cleanup();
  });

  it('query (Replica.acquireAt) and restore --timestamp give the primary state at that time, reading O(log n) headers', async () => {
    const replica = await Replica.open(client, { pollIntervalMs: 0 });
    try {
      for (const txid of [1, 5, 12, 16, 23, TXIDS]) {
        const at = new Date(primary.clock + txid * 1000 + 500);
        client.resetStats();
        const view = await replica.acquireAt({ timestamp: at });
        const planning = client.stats();
        expect(view.txid, `state at ${at.toISOString()}`).toBe(txid);
        // One LIST, then a binary search over the file boundaries: log2(files) + 1 header reads
        // plus the tails of the planned files (no HEAD or GET per file of the listing).
        expect(planning.list).toBe(1);
        expect(planning.head).toBe(0);
        expect(planning.get).toBeLessThanOrEqual(view.txid + HEADER_PROBES);
        expect(Buffer.compare(await readImage(view), Buffer.from(primary.images.get(txid) ?? []))).toBe(0);
        view.release();

        client.resetStats();
        const out = join(tmp.dir, `restored-${txid}.db`);
        const result = await restore({ client, outPath: out, timestamp: at, force: true });
        expect(result.txid).toBe(txid);
        const stats = client.stats();
        expect(stats.list).toBe(1);
        expect(stats.head).toBe(0);
        // The planned files (one GET each, they are small) plus the header search.
        expect(stats.get).toBeLessThanOrEqual(result.files.length + HEADER_PROBES);
      }
    } finally {
      await replica.close();
    }
  });
});
