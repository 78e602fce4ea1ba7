import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeManifest, MANIFEST_OBJECT } from '../src/ltx/index.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { Replicator } from '../src/writer/index.js';
import { createLtx } from '../vfs/index.js';
import { recordRequests, roundNumbers } from './support/request-rounds.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * A view opened from the manifest reads no page of the small L0 files at open (their indexes are
 * carried), so a scan meets their pages one by one. The first miss in one of them fetches the
 * others in the same round: one round for all of them, not one stall each. The replica: a
 * snapshot (with hot pages) of 40,000 rows, then three L0 files each changing a row far apart.
 * Rounds come from request start/end order (deterministic); rows are checked against
 * better-sqlite3 on the primary.
 */
let tmp: TempDir;
let client: ReplicaClient;
let db: Database.Database;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-manifest-scan-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
  const dbPath = join(tmp.dir, 'app.db');
  db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= 40_000; id++) insert.run(id, randomBytes(120).toString('base64'));
  })();
  const writer = new Replicator({ dbPath, replica: client, syncIntervalMs: 3_600_000, lease: false });
  await writer.start();
  await writer.sync();
  db.prepare('UPDATE t SET v = ? WHERE id = ?').run('before the snapshot', 1);
  await writer.sync();
  await writer.takeSnapshot();
  for (const id of [5_000, 20_000, 35_000]) {
    db.prepare('UPDATE t SET v = ? WHERE id = ?').run(`changed ${id}`, id);
    await writer.sync();
  }
  await writer.stop();
}, 60_000);

afterAll(async () => {
  db?.close();
  await client?.close();
  await tmp?.cleanup();
});

describe('a scan of a view opened from the manifest', () => {
  it('fetches the three small L0 files in one round, at the first miss in one of them', async () => {
    const object = await client.readObject(MANIFEST_OBJECT);
    if (object === null) throw new Error('no manifest');
    const manifest = decodeManifest(object.data);
    const l0 = manifest.files.filter((f) => f.level === 0 && f.minTxid > (manifest.hot?.txid ?? 0));
    expect(l0).toHaveLength(3);
    expect(l0.every((f) => f.index !== undefined)).toBe(true); // carried: no read at open

    const rec = recordRequests(client);
    const ltx = await createLtx({ instances: 1 });
    try {
      await ltx.registerReplica('app', rec.client, { pollIntervalMs: 0 });
      expect(rec.requests.filter((r) => r.file?.startsWith('L0/'))).toEqual([]);
      const conn = await ltx.open('file:app?vfs=ltx');
      const sql =
        'SELECT count(*) AS n, sum(length(v)) AS s, group_concat(v) FILTER (WHERE v LIKE ?) AS c FROM t';
      expect(await conn.get(sql, ['changed%'])).toEqual(db.prepare(sql).get('changed%'));
      const round = roundNumbers(rec.requests);
      const l0Reads = rec.requests.filter((r) => r.file?.startsWith('L0/'));
      expect(l0Reads.map((r) => r.file).sort()).toEqual(l0.map((f) => `L0/${f.minTxid}-${f.maxTxid}`).sort());
      expect(new Set(l0Reads.map((r) => round.get(r))).size).toBe(1);
      await conn.close();
    } finally {
      await ltx.close();
    }
  });
});
