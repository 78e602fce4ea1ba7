/**
 * registerReplica(..., { hydratePath, followHydrated: true }): once hydration completes, the file
 * is handed to a Follower, so better-sqlite3 can read it (here, in the same process) while it
 * keeps up with the replica; a second registration resumes following without hydrating again.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplyEvent } from '../src/follow/index.js';
import { followStatePath } from '../src/follow/state-file.js';
import { FileReplicaClient } from '../src/storage/index.js';
import { createLtx } from '../vfs/index.js';
import { fillTable, TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

let tmp: TempDir;
let client: FileReplicaClient;
let primary: TestPrimary;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-follow-hydrated-');
  client = new FileReplicaClient(join(tmp.dir, 'replica'));
  primary = new TestPrimary(client, tmp.dir);
  fillTable(primary.db, 2000, 150);
  await primary.sync();
});

afterAll(async () => {
  primary?.close();
  await client?.close();
  await tmp?.cleanup();
});

function count(db: Database.Database): number {
  return (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
}

describe('followHydrated', () => {
  it('hands the hydrated file to a follower that better-sqlite3 can read while it updates', async () => {
    const hydratePath = join(tmp.dir, 'hydrated.db');
    const ltx = await createLtx({ instances: 1 });
    try {
      await ltx.registerReplica('h.db', client, { hydratePath, followHydrated: true, pollIntervalMs: 50 });
      const follower = await ltx.followerOf('h.db');
      expect(follower?.txid).toBe(1);
      const reader = new Database(hydratePath);
      expect(count(reader)).toBe(2000);
      expect(reader.pragma('journal_mode', { simple: true })).toBe('delete');
      const applied = new Promise<ApplyEvent>((resolve) => follower?.once('apply', resolve));
      fillTable(primary.db, 500, 150, 2001);
      await primary.sync();
      expect((await applied).txid).toBe(2);
      expect(count(reader)).toBe(2500);
      expect(reader.pragma('integrity_check', { simple: true })).toBe('ok');
      reader.close();
      const vfs = await ltx.open('file:h.db?vfs=ltx');
      expect(await vfs.get('SELECT count(*) AS n FROM t')).toEqual({ n: 2500 });
      await vfs.close();
      expect(JSON.parse(readFileSync(followStatePath(hydratePath), 'utf8')).position.txid).toBe(2);
    } finally {
      await ltx.close();
    }
  });

  it('a second registration resumes following the file without hydrating it again', async () => {
    primary.db.exec("UPDATE t SET v = 'again' WHERE id % 4 = 0");
    await primary.sync();
    const hydratePath = join(tmp.dir, 'hydrated.db');
    const ltx = await createLtx({ instances: 1 });
    try {
      const replica = await ltx.registerReplica('h.db', client, { hydratePath, followHydrated: true });
      expect('hydration' in replica ? replica.hydration().state : 'off').toBe('off');
      const follower = await ltx.followerOf('h.db');
      await follower?.poll();
      expect(follower?.txid).toBe(3);
      const reader = new Database(hydratePath, { readonly: true });
      expect((reader.prepare("SELECT count(*) AS n FROM t WHERE v = 'again'").get() as { n: number }).n).toBe(
        625,
      );
      reader.close();
    } finally {
      await ltx.close();
    }
  });
});
