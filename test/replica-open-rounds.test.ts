import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replica } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { createLtx } from '../vfs/index.js';
import { TestPrimary } from './support/replica-fixture.js';
import { recordRequests, rounds } from './support/request-rounds.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * Sequential rounds of the LIST path (a replica without a manifest, as Litestream writes it),
 * counted from the order of request starts and ends, so the count is the same on any machine.
 * The replica: a ~8 MiB snapshot at TXID 1 (a small table first, so its root page 2 sits in the
 * snapshot's front; then 40,000 rows), and two small L0 files, the second changing that page 2.
 */
let tmp: TempDir;
let raw: ReplicaClient;
let primary: TestPrimary;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-open-rounds-');
  raw = openReplicaClient(join(tmp.dir, 'replica'));
  primary = new TestPrimary(raw, tmp.dir);
  primary.db.exec('CREATE TABLE small (k INTEGER PRIMARY KEY, v TEXT)');
  primary.db.exec("INSERT INTO small VALUES (1, 'snapshot')");
  primary.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = primary.db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  primary.db.transaction(() => {
    for (let id = 1; id <= 40_000; id++) insert.run(id, randomBytes(120).toString('base64'));
  })();
  await primary.sync();
  primary.db.prepare('UPDATE t SET v = ? WHERE id = ?').run('changed', 20_000);
  await primary.sync();
  primary.db.prepare("UPDATE small SET v = 'after the snapshot' WHERE k = 1").run();
  await primary.sync();
}, 60_000);

afterAll(async () => {
  primary.close();
  await raw.close();
  await tmp.cleanup();
});

describe('opening by listing', () => {
  it('3 rounds: the manifest look, one LIST (connections opened meanwhile), then every index tail and the snapshot front together', async () => {
    const rec = recordRequests(raw);
    const replica = await Replica.open(rec.client, { pollIntervalMs: 0 });
    expect(rounds(rec.requests)).toEqual([
      ['readObject', 'readObjectIfChanged'],
      ['listAll'],
      // Index tails and the snapshot front, with (a readObject) the snapshot's page digests.
      ['readObject', 'readRange', 'readRange', 'readRange', 'readRange'],
    ]);
    // Preconnecting is asked for before the LIST is sent (so the sockets open while it runs).
    expect(rec.events.indexOf('preconnect 6')).toBeGreaterThanOrEqual(0);
    expect(rec.events.indexOf('preconnect 6')).toBeLessThan(rec.events.indexOf('listAll start'));
    await replica.close();
  });

  it('manifest: false (a replica known to have none) skips the manifest look: 2 rounds, the LIST first, and a point lookup in 4', async () => {
    const rec = recordRequests(raw);
    const ltx = await createLtx({ instances: 1 });
    try {
      await ltx.registerReplica('app', rec.client, { pollIntervalMs: 0, manifest: false });
      expect(rounds(rec.requests)).toEqual([
        ['listAll'],
        ['readObject', 'readRange', 'readRange', 'readRange', 'readRange'],
      ]);
      // No manifest look (its GET is the conditional one); the one readObject is the snapshot's
      // page digests, in the round after the LIST, so it cannot be the hot pages.
      expect(rec.requests.filter((r) => r.op === 'readObjectIfChanged')).toEqual([]);
      const conn = await ltx.open('file:app?vfs=ltx');
      const sql = 'SELECT v FROM t WHERE id = ?';
      expect(await conn.get(sql, [31_337])).toEqual(primary.db.prepare(sql).get(31_337));
      expect(rounds(rec.requests).length).toBe(4);
      await conn.close();
    } finally {
      await ltx.close();
    }
  });

  it('a point lookup after the open: 5 rounds in all (open 3, interior, leaf); a front page a later file changed comes from that file', async () => {
    const rec = recordRequests(raw);
    const ltx = await createLtx({ instances: 1 });
    try {
      await ltx.registerReplica('app', rec.client, { pollIntervalMs: 0 });
      const conn = await ltx.open('file:app?vfs=ltx');
      const sql = 'SELECT v FROM t WHERE id = ?';
      expect(await conn.get(sql, [31_337])).toEqual(primary.db.prepare(sql).get(31_337));
      const all = rounds(rec.requests);
      expect(all.length).toBe(5);
      expect(
        all
          .slice(0, 3)
          .flat()
          .filter((op) => op === 'listAll'),
      ).toEqual(['listAll']);
      expect(await conn.get('SELECT v FROM small WHERE k = 1')).toEqual({ v: 'after the snapshot' });
      expect(await conn.get(sql, [20_000])).toEqual({ v: 'changed' });
      await conn.close();
    } finally {
      await ltx.close();
    }
  });
});
