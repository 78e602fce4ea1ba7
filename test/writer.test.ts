import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileReplicaClient } from '../src/storage/index.js';
import { Replicator } from '../src/writer/index.js';
import { makeTempDir, type TempDir } from './support/tmp.js';
import { expectRestoresMatch, startNodeApp, syncAndRecord, verifyL0Files } from './support/writer-harness.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-writer-');
});
afterAll(() => tmp.cleanup());

describe('replicator smoke', () => {
  it('replicates a few transactions from another process; every TXID restores byte-identical', async () => {
    const dbPath = join(tmp.dir, 'smoke.db');
    const app = await startNodeApp(dbPath, 4096);
    await app.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    const client = new FileReplicaClient(join(tmp.dir, 'smoke-replica'));
    const rep = new Replicator({ dbPath, replica: client, syncIntervalMs: 3_600_000 });
    await rep.start();
    const images = new Map<number, Buffer>();
    try {
      await syncAndRecord(rep, dbPath, join(tmp.dir, 'scratch'), images);
      for (let i = 0; i < 5; i++) {
        await app.exec(
          `WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ${i * 20 + 1}) INSERT INTO t(v) SELECT hex(randomblob(300)) FROM s`,
        );
        await syncAndRecord(rep, dbPath, join(tmp.dir, 'scratch'), images);
      }
    } finally {
      await rep.stop();
      await app.close();
    }
    expect([...images.keys()]).toEqual([1, 2, 3, 4, 5, 6]);
    await verifyL0Files(client);
    await expectRestoresMatch(client, images, join(tmp.dir, 'restores'));
  });
});
