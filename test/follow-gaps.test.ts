/**
 * The follower (Node API, in process) when the replica does not simply grow: L0 files compacted
 * and deleted behind it, a gap nothing bridges, nothing restorable at all, and a replica started
 * over from TXID 1 by a new primary. Expected bytes are the database images better-sqlite3 wrote
 * on the primary (rollback journal mode, so the file is the image after each commit).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Follower, type ReplanEvent } from '../src/follow/index.js';
import { followStatePath } from '../src/follow/state-file.js';
import { FileReplicaClient } from '../src/storage/index.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { fillTable, TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

let tmp: TempDir;
let client: FileReplicaClient;
let primary: TestPrimary;
let follower: Follower;
let followed: string;
const logs: string[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-follow-gaps-');
  client = new FileReplicaClient(join(tmp.dir, 'replica'));
  primary = new TestPrimary(client, tmp.dir);
  fillTable(primary.db, 400, 120);
  await primary.sync();
  followed = join(tmp.dir, 'followed.db');
  follower = await Follower.start(client, followed, { log: (l) => logs.push(l), intervalMs: 20 });
});

afterAll(async () => {
  await follower?.close();
  primary?.close();
  await client?.close();
  await tmp?.cleanup();
});

/** The followed file is the image but for the counters the follower sets in page 1 (24-27, 92-95). */
function expectFollowedEquals(image: Uint8Array | undefined): void {
  if (image === undefined) throw new Error('no image');
  const bytes = new Uint8Array(readFileSync(followed));
  expect(bytes.length).toBe(image.length);
  const mask = (b: Uint8Array) => {
    const c = b.slice();
    c.fill(0, 24, 28);
    c.fill(0, 92, 96);
    return Buffer.from(c);
  };
  expect(Buffer.compare(mask(bytes), mask(image))).toBe(0);
  expect(bytes[18]).toBe(1);
  const db = new Database(followed, { readonly: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  } finally {
    db.close();
  }
}

function change(sql: string): void {
  primary.db.exec(sql);
}

function stateFile(): {
  position: { txid: number };
  state: string;
  replans: number;
  lastReplanReason?: string;
} {
  return JSON.parse(readFileSync(followStatePath(followed), 'utf8'));
}

describe('follower across gaps', () => {
  it('starts at the latest TXID with a state file beside the file', () => {
    expect(follower.txid).toBe(1);
    expectFollowedEquals(primary.images.get(1));
    expect(stateFile().position.txid).toBe(1);
  });

  it('continues across levels when the L0 files it stood on were compacted and deleted, without a re-plan', async () => {
    const l0: typeof primary.files = [];
    for (let i = 0; i < 4; i++) {
      change(`UPDATE t SET v = 'gen-${i}-' || v WHERE id % 5 = ${i}`);
      l0.push(await primary.sync());
    }
    await primary.compact(1, l0);
    await primary.remove(primary.files.filter((f) => f.level === 0));
    await follower.poll();
    expect(follower.txid).toBe(5);
    expect(follower.status().replans).toBe(0);
    expectFollowedEquals(primary.images.get(5));
  });

  it('re-plans from the newest snapshot when files are missing behind it, and logs why', async () => {
    const added = [];
    for (let i = 0; i < 3; i++) {
      fillTable(primary.db, 50, 300, 1000 + i * 50);
      added.push(await primary.sync());
    }
    await primary.snapshot();
    await primary.remove(added.slice(0, 2));
    const replans: ReplanEvent[] = [];
    follower.on('replan', (e: ReplanEvent) => replans.push(e));
    await follower.poll();
    expect(replans).toHaveLength(1);
    expect(replans[0]?.reason).toMatch(/no files continue TXID 0000000000000005/);
    expect(logs.some((l) => l.includes('re-planning') && l.includes('no files continue'))).toBe(true);
    expect(follower.txid).toBe(8);
    expectFollowedEquals(primary.images.get(8));
    expect(stateFile().replans).toBe(1);
  });

  it('names the error when nothing restorable remains, keeps the file whole, and recovers when a snapshot appears', async () => {
    change("UPDATE t SET v = 'nine' WHERE id = 1");
    const nine = await primary.sync();
    change("UPDATE t SET v = 'ten' WHERE id = 2");
    await primary.sync();
    await primary.remove([
      nine,
      ...primary.files.filter((f) => f.level === 9 || f.level === 1 || f.maxTxid <= 8),
    ]);
    const err = await follower.poll().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isLtxvfsError(err, 'LTX_NOT_CONTIGUOUS')).toBe(true);
    expect(follower.txid).toBe(8);
    expectFollowedEquals(primary.images.get(8));

    // The background loop says so once, then recovers by itself once the replica is whole again.
    const before = logs.length;
    const recovered = new Promise<ReplanEvent>((resolve) => follower.once('replan', resolve));
    const logged = new Promise<void>((resolve) => {
      const onLog = (line: string) => {
        if (line.includes('LTX_NOT_CONTIGUOUS')) {
          follower.off('log', onLog);
          resolve();
        }
      };
      follower.on('log', onLog);
    });
    follower.on('error', () => {});
    follower.run();
    await logged;
    expect(stateFile().state).toBe('stalled');
    await primary.snapshot();
    const event = await recovered;
    expect(event.txid).toBe(10);
    expectFollowedEquals(primary.images.get(10));
    expect(logs.slice(before).filter((l) => l.includes('LTX_NOT_CONTIGUOUS'))).toHaveLength(1);
  });
});

describe('follower when a new primary restarts the replica from TXID 1', () => {
  it('re-plans when the replica is behind the file (a new lineage)', async () => {
    await follower.close();
    follower = await Follower.start(client, followed, { log: (l) => logs.push(l) });
    expect(follower.txid).toBe(10);
    await client.deleteFiles(await allFiles());
    mkdirSync(join(tmp.dir, 'p2'));
    const fresh = new TestPrimary(client, join(tmp.dir, 'p2'), {});
    try {
      fresh.clock += 86_400_000;
      fillTable(fresh.db, 150, 50);
      await fresh.sync();
      fresh.db.exec("UPDATE t SET v = 'lineage-2' WHERE id < 20");
      await fresh.sync();
      const replan = new Promise<ReplanEvent>((resolve) => follower.once('replan', resolve));
      await follower.poll();
      const event = await replan;
      expect(event.reason).toMatch(/new lineage/);
      expect(follower.txid).toBe(2);
      expectFollowedEquals(fresh.images.get(2));
    } finally {
      fresh.close();
    }
  });

  it('re-plans when the new lineage already passed the file with files of the same names', async () => {
    await client.deleteFiles(await allFiles());
    mkdirSync(join(tmp.dir, 'p3'));
    const fresh = new TestPrimary(client, join(tmp.dir, 'p3'), {});
    try {
      fresh.clock += 2 * 86_400_000;
      fillTable(fresh.db, 150, 50, 7);
      await fresh.sync();
      for (let i = 0; i < 3; i++) {
        fresh.db.exec(`UPDATE t SET v = 'lineage-3-${i}' WHERE id % 3 = ${i}`);
        await fresh.sync();
      }
      const replan = new Promise<ReplanEvent>((resolve) => follower.once('replan', resolve));
      await follower.poll();
      expect((await replan).reason).toMatch(/rewritten .* new lineage/);
      expect(follower.txid).toBe(4);
      expectFollowedEquals(fresh.images.get(4));
    } finally {
      fresh.close();
    }
  });
});

async function allFiles() {
  const out = [];
  for (const level of await client.levels()) out.push(...(await client.listFiles(level)));
  return out;
}

describe('follower and a reader that keeps its read transaction open', () => {
  it('fails the apply with SQLITE_BUSY after the busy timeout, leaves the file whole, and applies once the reader is done', async () => {
    const dir = join(tmp.dir, 'busy');
    mkdirSync(dir);
    const busyClient = new FileReplicaClient(join(dir, 'replica'));
    const p = new TestPrimary(busyClient, dir);
    const path = join(dir, 'followed.db');
    try {
      fillTable(p.db, 100, 80);
      await p.sync();
      const f = await Follower.start(busyClient, path, { busyTimeoutMs: 50 });
      try {
        const reader = new Database(path);
        reader.exec('BEGIN');
        expect((reader.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(100);
        fillTable(p.db, 100, 80, 101);
        await p.sync();
        const err = await f.poll().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(String(err)).toMatch(/locked|busy/i);
        expect(f.txid).toBe(1);
        // Still inside its transaction, the reader sees the state it started with.
        expect((reader.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(100);
        reader.exec('COMMIT');
        await f.poll();
        expect(f.txid).toBe(2);
        expect((reader.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(200);
        reader.close();
      } finally {
        await f.close();
      }
    } finally {
      p.close();
      await busyClient.close();
    }
  });
});
