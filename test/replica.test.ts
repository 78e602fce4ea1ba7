import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initZstd } from '../src/ltx/index.js';
import { Replica, type ReplicaView } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { formatTxid } from '../src/util/txid.js';
import { defined, flipByte } from './support/defined.js';
import { resealLtxFile } from './support/ltx-reseal.js';
import { fillTable, TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

async function readImage(view: ReplicaView): Promise<Buffer> {
  const pages: Uint8Array[] = [];
  for (let p = 1; p <= view.pageCount; p++) pages.push(await view.readPage(p));
  return Buffer.concat(pages);
}

async function expectImage(view: ReplicaView, image: Uint8Array | undefined): Promise<void> {
  expect(image).toBeDefined();
  const got = await readImage(view);
  expect(got.length).toBe(defined(image).length);
  expect(Buffer.compare(got, defined(image))).toBe(0);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isLtxvfsError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  return err as Error;
}

let tmp: TempDir;
let client: ReplicaClient;
let primary: TestPrimary;
const open: Replica[] = [];

async function openReplica(options: Parameters<typeof Replica.open>[1] = {}): Promise<Replica> {
  const r = await Replica.open(client, { pollIntervalMs: 0, ...options });
  open.push(r);
  return r;
}

/** Six TXIDs: a table, inserts, updates, deletes, an index. */
async function sixTxids(): Promise<void> {
  fillTable(primary.db, 300);
  await primary.sync();
  fillTable(primary.db, 200, 100, 301);
  await primary.sync();
  primary.db.exec("UPDATE t SET v = 'changed-' || id WHERE id % 7 = 0");
  await primary.sync();
  primary.db.exec('DELETE FROM t WHERE id % 5 = 0');
  await primary.sync();
  primary.db.exec('CREATE INDEX t_v ON t (v)');
  await primary.sync();
  primary.db.exec("INSERT INTO t (v) VALUES ('last')");
  await primary.sync();
}

beforeEach(async () => {
  tmp = await makeTempDir('ltxvfs-replica-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
  primary = new TestPrimary(client, tmp.dir);
});

afterEach(async () => {
  for (const r of open.splice(0)) await r.close();
  primary.close();
  await client.close();
  await tmp.cleanup();
});

describe('Replica on a file replica', () => {
  it('reads the database image at the latest and every historical TXID', async () => {
    await sixTxids();
    const replica = await openReplica();
    const latest = replica.acquireLatest();
    expect(latest.txid).toBe(6);
    expect(latest.pageSize).toBe(4096);
    expect(latest.pageCount * 4096).toBe(defined(primary.images.get(6)).length);
    expect(latest.timestamp.getTime()).toBe(primary.clock + 6000);
    await expectImage(latest, primary.images.get(6));
    latest.release();
    for (let txid = 1; txid <= 6; txid++) {
      const view = await replica.acquireAt({ txid });
      expect(view.txid).toBe(txid);
      await expectImage(view, primary.images.get(txid));
      view.release();
    }
  });

  it('resolves a time target to the newest TXID at or before it', async () => {
    await sixTxids();
    const replica = await openReplica();
    const view = await replica.acquireAt({ timestamp: new Date(primary.clock + 3500) });
    expect(view.txid).toBe(3);
    await expectImage(view, primary.images.get(3));
    view.release();
  });

  it('a TXID outside what the replica holds is TXID_NOT_AVAILABLE naming it and the range', async () => {
    await sixTxids();
    const replica = await openReplica();
    const err = await expectCode(replica.acquireAt({ txid: 99 }), 'TXID_NOT_AVAILABLE');
    expect(err.message).toContain(formatTxid(99));
    expect(err.message).toContain(formatTxid(6));
    await expectCode(replica.acquireAt({ timestamp: new Date(primary.clock) }), 'TXID_NOT_AVAILABLE');
  });

  it('an empty replica is REPLICA_EMPTY', async () => {
    await expectCode(Replica.open(client, { pollIntervalMs: 0 }), 'REPLICA_EMPTY');
  });

  it('follows new files: a new view sees them, an old view keeps its TXID', async () => {
    await sixTxids();
    const replica = await openReplica({ cacheBytes: 4096 * 4 });
    const old = replica.acquireLatest();
    const updates: number[] = [];
    replica.on('update', (txid: number) => updates.push(txid));
    fillTable(primary.db, 400, 100, 1000);
    await primary.sync();
    primary.db.exec("UPDATE t SET v = 'again' WHERE id < 50");
    await primary.sync();
    expect(replica.acquireLatest().txid).toBe(6);
    expect(await replica.poll()).toBe(8);
    expect(updates).toEqual([8]);
    const fresh = replica.acquireLatest();
    expect(fresh.txid).toBe(8);
    await expectImage(fresh, primary.images.get(8));
    await expectImage(old, primary.images.get(6));
    old.release();
    fresh.release();
    expect(replica.lagSeconds()).toBeLessThan(5);
  });

  it('background polling picks up a new file within a few intervals', async () => {
    await sixTxids();
    const replica = await openReplica({ pollIntervalMs: 50 });
    primary.db.exec("INSERT INTO t (v) VALUES ('polled')");
    await primary.sync();
    const deadline = Date.now() + 3000;
    while (replica.acquireLatest().txid !== 7 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const view = replica.acquireLatest();
    expect(view.txid).toBe(7);
    await expectImage(view, primary.images.get(7));
    view.release();
  });

  it('survives compaction and retention: views re-plan, a truly gone TXID is a named error', async () => {
    await sixTxids();
    const replica = await openReplica({ cacheBytes: 0 });
    const at4 = await replica.acquireAt({ txid: 4 });
    const at6 = replica.acquireLatest();
    // Compact L0 1..6 into L1, take a snapshot at 6, delete the L0 files (keep none).
    const l0 = primary.files.filter((f) => f.level === 0);
    await primary.compact(1, l0);
    await primary.remove(l0);
    await expectImage(at6, primary.images.get(6));
    const err = await expectCode(readImage(at4), 'STORAGE_NOT_FOUND');
    expect(err.message).toMatch(/0000000000000001-0000000000000001|0000000000000004-0000000000000004/);
    expect(err.message).toContain(`TXID ${formatTxid(4)} is no longer available`);
    at4.release();
    at6.release();
    // The poller continues from 6 through L0 files that follow the compacted range.
    primary.db.exec("INSERT INTO t (v) VALUES ('after compaction')");
    await primary.sync();
    expect(await replica.poll()).toBe(7);
    const at7 = replica.acquireLatest();
    await expectImage(at7, primary.images.get(7));
    at7.release();
  });

  it('a view re-plans onto a snapshot when the files it planned are deleted', async () => {
    await sixTxids();
    const replica = await openReplica({ cacheBytes: 0 });
    const view = replica.acquireLatest();
    await primary.snapshot();
    await primary.remove(primary.files.filter((f) => f.level === 0));
    await expectImage(view, primary.images.get(6));
    view.release();
  });

  it('the poller bridges L0 files deleted after compaction, including an L1 file straddling its position', async () => {
    await sixTxids();
    const replica = await openReplica({ cacheBytes: 0 });
    for (let i = 0; i < 4; i++) {
      primary.db.exec(`INSERT INTO t (v) VALUES ('gap ${i}')`);
      await primary.sync();
    }
    // L1 4..9 straddles the replica's position 6; L0 5..9 vanish, L0 10 follows.
    const l0 = primary.files.filter((f) => f.level === 0);
    await primary.compact(
      1,
      l0.filter((f) => f.minTxid >= 4 && f.maxTxid <= 9),
    );
    await primary.remove(l0.filter((f) => f.minTxid >= 5 && f.maxTxid <= 9));
    primary.db.exec("INSERT INTO t (v) VALUES ('tip')");
    await primary.sync();
    expect(await replica.poll()).toBe(11);
    const view = replica.acquireLatest();
    await expectImage(view, primary.images.get(11));
    view.release();
  });

  it('a poll whose second LIST no longer holds the files the first one saw stays put (no TypeError), then catches up', async () => {
    await sixTxids();
    let race = true;
    // The first LIST (L0 from the position) sees a file not starting at position+1; before the
    // second LIST (all levels) compaction + retention removed everything beyond the position.
    const racing: ReplicaClient = new Proxy(client, {
      get(target, prop, receiver) {
        if (prop === 'listFiles') {
          return async (level: number, options?: Parameters<ReplicaClient['listFiles']>[1]) => {
            const files = await target.listFiles(level, options);
            return race ? files.filter((f) => f.minTxid !== 7) : files;
          };
        }
        if (prop === 'listAll') {
          return async () => {
            const files = await target.listAll();
            return race ? files.filter((f) => f.maxTxid <= 6) : files;
          };
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const replica = await Replica.open(racing, { pollIntervalMs: 0, cacheBytes: 0 });
    open.push(replica);
    expect(replica.acquireLatest().txid).toBe(6);
    primary.db.exec("INSERT INTO t (v) VALUES ('seven')");
    await primary.sync();
    primary.db.exec("INSERT INTO t (v) VALUES ('eight')");
    await primary.sync();
    for (let i = 0; i < 3; i++) expect(await replica.poll()).toBe(6);
    race = false;
    expect(await replica.poll()).toBe(8);
    const view = replica.acquireLatest();
    await expectImage(view, primary.images.get(8));
    view.release();
  });

  it('follows a shrinking and regrowing database', async () => {
    fillTable(primary.db, 3000, 200);
    await primary.sync();
    const replica = await openReplica();
    const big = replica.acquireLatest();
    primary.db.exec('DELETE FROM t WHERE id > 100');
    primary.db.exec('VACUUM');
    await primary.sync();
    await replica.poll();
    const small = replica.acquireLatest();
    expect(small.pageCount).toBeLessThan(big.pageCount);
    expect(small.pageCount * 4096).toBe(defined(primary.images.get(2)).length);
    await expectImage(small, primary.images.get(2));
    fillTable(primary.db, 500, 300, 5000);
    await primary.sync();
    await replica.poll();
    const regrown = replica.acquireLatest();
    await expectImage(regrown, primary.images.get(3));
    await expectImage(big, primary.images.get(1));
    for (const v of [big, small, regrown]) v.release();
  });

  it('a corrupted object is REPLICA_CORRUPT naming the object and page; never wrong bytes', async () => {
    fillTable(primary.db, 500);
    const file = await primary.sync();
    const path = join(tmp.dir, 'replica', 'ltx', '0', `${formatTxid(1)}-${formatTxid(1)}.ltx`);
    const bytes = new Uint8Array(readFileSync(path));
    // Page 3's frame header claims another page number.
    const replica = await openReplica({ cacheBytes: 0, readAhead: false });
    expect(file.size).toBe(bytes.length);
    const frame3 = findFrame(bytes, 3);
    flipByte(bytes, frame3 + 3, 0x40);
    writeFileSync(path, bytes);
    const view = replica.acquireLatest();
    // The object is small, so it is read whole and its file checksum fails before page 3 decodes.
    const err = await expectCode(view.readPage(3), 'REPLICA_CORRUPT');
    expect(err.message).toContain(`L0/${formatTxid(1)}-${formatTxid(1)}`);
    // A truncated object: the index promises bytes the object no longer has.
    writeFileSync(path, bytes.subarray(0, frame3 + 4));
    await expectCode(view.readPage(5), 'REPLICA_CORRUPT');
    view.release();
  });

  it('a header whose commit disagrees with the pages is REPLICA_CORRUPT naming the file, not a malformed image', async () => {
    await sixTxids();
    const path = join(tmp.dir, 'replica', 'ltx', '0', `${formatTxid(6)}-${formatTxid(6)}.ltx`);
    const original = new Uint8Array(readFileSync(path));
    const commit = new DataView(original.buffer).getUint32(12);
    expect(commit * 4096).toBe(primary.images.get(6)?.length);
    const lieAbout = (lie: number): void => {
      const edited = new Uint8Array(original);
      new DataView(edited.buffer).setUint32(12, lie);
      // A consistent file with a wrong commit (a writer's bug): its file checksum matches.
      writeFileSync(path, resealLtxFile(original, edited));
    };
    // One page more than the pages say: only page 1's own size field can tell.
    lieAbout(commit + 1);
    const replica = await openReplica({ cacheBytes: 0 });
    const view = replica.acquireLatest();
    expect(view.pageCount).toBe(commit + 1);
    const err = await expectCode(view.readPage(1), 'REPLICA_CORRUPT');
    expect(err.message).toContain(`L0/${formatTxid(6)}-${formatTxid(6)}`);
    expect(err.message).toContain(`${commit + 1} pages`);
    expect(err.message).toContain(`page 1 says ${commit}`);
    view.release();
    // One page less, with that page in the file: the small object is checked whole when its index
    // is read, so the open already fails, naming it.
    lieAbout(commit - 1);
    const opening = await expectCode(openReplica({ cacheBytes: 0 }), 'REPLICA_CORRUPT');
    expect(opening.message).toContain(`L0/${formatTxid(6)}-${formatTxid(6)}`);
    expect(opening.message).toContain(`beyond commit ${commit - 1}`);
  });

  it('objects vanishing under an open replica are a named error', async () => {
    await sixTxids();
    const replica = await openReplica({ cacheBytes: 0 });
    const view = replica.acquireLatest();
    await primary.remove(primary.files);
    const err = await expectCode(view.readPage(2), 'STORAGE_NOT_FOUND');
    expect(err.message).toMatch(/000000000000000\d-000000000000000\d\.ltx/);
    expect(err.message).toContain(`TXID ${formatTxid(6)} is no longer available`);
    view.release();
  });

  it('reads pages of a legacy LZ4-frame replica and 512-byte pages', async () => {
    primary.close();
    client = openReplicaClient(join(tmp.dir, 'legacy'));
    primary = new TestPrimary(client, join(tmp.dir), { pageSize: 512, encoding: 'lz4-frame' });
    primary.db.exec('PRAGMA page_size = 512');
    fillTable(primary.db, 200);
    await primary.sync();
    primary.db.exec("UPDATE t SET v = 'x' WHERE id < 20");
    await primary.sync();
    const replica = await openReplica();
    const view = replica.acquireLatest();
    expect(view.pageSize).toBe(512);
    await expectImage(view, primary.images.get(2));
    view.release();
  });

  it('reads pages of a zstd-encoded replica', async () => {
    await initZstd();
    primary.close();
    client = openReplicaClient(join(tmp.dir, 'zstd'));
    primary = new TestPrimary(client, join(tmp.dir), { encoding: 'zstd' });
    fillTable(primary.db, 300);
    await primary.sync();
    const replica = await openReplica();
    const view = replica.acquireLatest();
    await expectImage(view, primary.images.get(1));
    view.release();
  });

  it('a released view refuses reads', async () => {
    await sixTxids();
    const replica = await openReplica();
    const view = replica.acquireLatest();
    view.release();
    await expectCode(view.readPage(1), 'BAD_ARGUMENT');
  });
});

/** Offset of the frame of `pgno` in an LTX file, by walking the index via the decoder. */
function findFrame(bytes: Uint8Array, pgno: number): number {
  // The index lives before the 16-byte trailer: uvarint triples, terminator, u64 size.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = Number(view.getBigUint64(bytes.length - 24));
  let at = bytes.length - 24 - size;
  const uvarint = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[at++];
      value += (defined(b) & 0x7f) * 2 ** shift;
      if (defined(b) < 0x80) return value;
      shift += 7;
    }
  };
  for (;;) {
    const p = uvarint();
    if (p === 0) throw new Error(`page ${pgno} not in index`);
    const offset = uvarint();
    uvarint();
    if (p === pgno) return offset;
  }
}
