import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replica, type ReplicaView } from '../src/replica/replica.js';
import { restore } from '../src/replica/restore.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import type { Txid } from '../src/util/txid.js';
import { Replicator } from '../src/writer/index.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * End to end with the real writer: a WAL-mode primary replicated by the Replicator; the replica's
 * pages at each TXID must equal the primary's own image at that moment (better-sqlite3's
 * serialize(), which reads through SQLite's pager and so includes the WAL) and what restore()
 * writes for that TXID.
 */
async function readImage(view: ReplicaView): Promise<Buffer> {
  const pages: Uint8Array[] = [];
  for (let p = 1; p <= view.pageCount; p++) pages.push(await view.readPage(p));
  return Buffer.concat(pages);
}

describe('Replica reading what the Replicator writes', () => {
  let tmp: TempDir;
  let client: ReplicaClient;
  let db: Database.Database;
  let replicator: Replicator;
  const images = new Map<Txid, Buffer>();

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-replica-writer-');
    client = openReplicaClient(join(tmp.dir, 'replica'));
    const dbPath = join(tmp.dir, 'app.db');
    db = new Database(dbPath);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT, n REAL)');
    replicator = new Replicator({ dbPath, replica: client, syncIntervalMs: 3_600_000, lease: false });
    await replicator.start();
    const insert = db.prepare('INSERT OR REPLACE INTO kv (k, v, n) VALUES (?, ?, ?)');
    for (let round = 0; round < 6; round++) {
      db.transaction(() => {
        for (let i = 0; i < 400; i++)
          insert.run((i * 37 + round * 11) % 2000, `r${round}-${i}`.repeat(5), i / 3);
      })();
      if (round === 3) db.exec('DELETE FROM kv WHERE k % 3 = 0');
      const { txid } = await replicator.sync();
      images.set(txid, Buffer.from(db.serialize()));
    }
  }, 60_000);

  afterAll(async () => {
    await replicator?.stop();
    db?.close();
    await client?.close();
    await tmp?.cleanup();
  });

  it('every synced TXID reads back as the primary image and as restore() writes it', async () => {
    const replica = await Replica.open(client, { pollIntervalMs: 0 });
    expect(replica.acquireLatest().txid).toBe(Math.max(...images.keys()));
    for (const [txid, image] of images) {
      const view = await replica.acquireAt({ txid });
      const got = await readImage(view);
      view.release();
      expect(Buffer.compare(got, image), `TXID ${txid} vs primary`).toBe(0);
      const out = join(tmp.dir, `restored-${txid}.db`);
      await restore({ client, outPath: out, txid });
      expect(Buffer.compare(got, readFileSync(out)), `TXID ${txid} vs restore`).toBe(0);
    }
    await replica.close();
  });
});
