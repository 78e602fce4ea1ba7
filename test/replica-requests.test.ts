import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replica, type ReplicaOptions } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileInfo, ReplicaClient } from '../src/storage/types.js';
import { LtxvfsError } from '../src/util/errors.js';
import { defined } from './support/defined.js';
import { TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * Request counts, asserted on the storage client's counters (the file backend counts the same
 * operations S3 would see). The replica: TXID 1 is a ~12 MiB snapshot of poorly compressible rows,
 * then three small L0 files.
 */
let tmp: TempDir;
let client: ReplicaClient;
let primary: TestPrimary;
let snapshotFile: LtxFileInfo;
const MiB = 1024 * 1024;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-replica-req-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
  primary = new TestPrimary(client, tmp.dir);
  primary.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = primary.db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  primary.db.transaction(() => {
    for (let id = 1; id <= 40_000; id++) insert.run(id, randomBytes(150).toString('base64'));
  })();
  snapshotFile = await primary.sync();
  for (let i = 0; i < 3; i++) {
    primary.db.prepare('UPDATE t SET v = ? WHERE id = ?').run(`small change ${i}`, 1000 * (i + 1));
    await primary.sync();
  }
}, 60_000);

afterAll(async () => {
  primary.close();
  await client.close();
  await tmp.cleanup();
});

async function openFresh(options: ReplicaOptions = {}): Promise<Replica> {
  client.resetStats();
  // This fixture has no manifest; manifest: false keeps the missing manifest's GETs out of the counts.
  return Replica.open(client, { pollIntervalMs: 0, manifest: false, ...options });
}

/** Pages that only the snapshot holds (so a read goes to that one object). */
function snapshotOnlyPages(): number[] {
  const changed = new Set<number>();
  const images = [...primary.images.values()];
  const pageSize = primary.pageSize;
  for (let i = 1; i < images.length; i++) {
    const a = images[i - 1];
    const b = images[i];
    for (let p = 0; p * pageSize < defined(b).length; p++) {
      if (
        Buffer.compare(
          defined(a).subarray(p * pageSize, (p + 1) * pageSize),
          defined(b).subarray(p * pageSize, (p + 1) * pageSize),
        ) !== 0
      )
        changed.add(p + 1);
    }
  }
  const out: number[] = [];
  const pages = defined(images[images.length - 1]).length / pageSize;
  for (let p = 1; p <= pages; p++) if (!changed.has(p)) out.push(p);
  return out;
}

describe('Replica request counts', () => {
  it('the fixture has a multi-MiB snapshot', () => {
    expect(snapshotFile.size).toBeGreaterThan(8 * MiB);
  });

  it('opening costs one LIST of the whole replica, one range GET per planned file (the last file is small, so no header read), one of the snapshot front and one of its page digests (none here: a Litestream-style replica)', async () => {
    const replica = await openFresh();
    const s = client.stats();
    expect(s.list).toBe(1);
    expect(s.get).toBe(6);
    await replica.close();
  });

  it('the front of the base snapshot comes with the open: its first pages cost no GET', async () => {
    const replica = await openFresh();
    const view = replica.acquireLatest();
    const image = defined(primary.images.get(4));
    client.resetStats();
    // Page 1 and the table's first leaves lie in the first 128 KiB (frames in page order).
    const front = snapshotOnlyPages().filter((p) => p <= 8);
    expect(front.length).toBeGreaterThan(3);
    for (const pgno of front) {
      const page = await view.readPage(pgno);
      expect(Buffer.compare(page, image.subarray((pgno - 1) * 4096, pgno * 4096)), `page ${pgno}`).toBe(0);
    }
    expect(client.stats().get).toBe(0);
    view.release();
    await replica.close();
  });

  it('a plan ending in a large file needs one 100-byte header read (its index tail is already cached)', async () => {
    const replica = await openFresh();
    client.resetStats();
    const view = await replica.acquireAt({ txid: 1 });
    expect(client.stats().get).toBe(1);
    expect(client.stats().bytesRead).toBe(100);
    expect(view.txid).toBe(1);
    view.release();
    await replica.close();
  });

  it('a cold random page costs exactly one GET; a repeat costs none', async () => {
    const replica = await openFresh();
    const view = replica.acquireLatest();
    const candidates = snapshotOnlyPages();
    const picks = [
      candidates[Math.floor(candidates.length / 2)],
      candidates[217], // past the snapshot front the open read
      candidates[candidates.length - 5],
    ];
    for (const pgno of picks) {
      client.resetStats();
      const page = await view.readPage(defined(pgno));
      expect(client.stats().get).toBe(1);
      const image = defined(primary.images.get(4));
      expect(Buffer.compare(page, image.subarray((defined(pgno) - 1) * 4096, defined(pgno) * 4096))).toBe(0);
    }
    client.resetStats();
    for (const pgno of picks) await view.readPage(defined(pgno));
    expect(client.stats().get).toBe(0);
    expect(view.readPageSync(defined(picks[0]))).toBeDefined();
    view.release();
    await replica.close();
  });

  for (const [code, askedAgain] of [
    ['STORAGE_ACCESS_DENIED', false],
    ['STORAGE_UNREACHABLE', true],
  ] as const) {
    it(`page digests the store refuses with ${code}: rows still come, one warning, ${askedAgain ? 'asked again on a later read' : 'asked no more'}`, async () => {
      let digestGets = 0;
      const refusing: ReplicaClient = Object.create(client, {
        readObject: {
          value: async (name: string) => {
            if (!name.startsWith('ltxvfs/digests/')) return client.readObject(name);
            digestGets++;
            throw new LtxvfsError(code, `refused ${name}`);
          },
        },
      });
      const lines: string[] = [];
      const replica = await Replica.open(refusing, {
        pollIntervalMs: 0,
        manifest: false,
        readAhead: false,
        logger: (line) => lines.push(line),
      });
      const view = replica.acquireLatest();
      const image = defined(primary.images.get(4));
      const candidates = snapshotOnlyPages();
      const picks = [
        candidates[217],
        candidates[Math.floor(candidates.length / 2)],
        candidates[candidates.length - 5],
      ];
      const atOpen = digestGets;
      for (const pgno of picks) {
        const page = await view.readPage(defined(pgno));
        expect(Buffer.compare(page, image.subarray((defined(pgno) - 1) * 4096, defined(pgno) * 4096))).toBe(
          0,
        );
      }
      expect(atOpen).toBe(1);
      expect(digestGets - atOpen).toBe(askedAgain ? picks.length : 1);
      expect(lines.filter((l) => l.includes('could not be read'))).toHaveLength(1);
      view.release();
      await replica.close();
    });
  }

  it('a sequential scan of the snapshot costs at most one GET per 4 MiB plus a small constant', async () => {
    const replica = await openFresh();
    const view = replica.acquireLatest();
    client.resetStats();
    const pages = snapshotOnlyPages();
    for (const pgno of pages) await view.readPage(pgno);
    const s = client.stats();
    const limit = Math.ceil(snapshotFile.size / (4 * MiB)) + 8;
    console.log(
      `sequential scan: ${pages.length} pages, ${s.get} GETs, ${s.bytesRead} bytes (object ${snapshotFile.size} bytes)`,
    );
    expect(s.get).toBeLessThanOrEqual(limit);
    expect(s.bytesRead).toBeLessThanOrEqual(snapshotFile.size + 4 * MiB);
    view.release();
    await replica.close();
  });

  it('sequential read-ahead is pipelined: the next chunk is in flight while the current one is read', async () => {
    // Each range GET is answered only once the next one has been asked for (or after HOLD_MS):
    // a reader that pipelines asks for the next chunk while this one is on its way, so its GETs
    // overlap however slow the machine is; one that awaits each GET before the next never
    // overlaps (every GET then waits out HOLD_MS). No clock decides the outcome.
    const HOLD_MS = 2_000;
    let inFlight = 0;
    let maxInFlight = 0;
    let gets = 0;
    let overlapped = 0;
    let held: Array<() => void> = [];
    const slow: ReplicaClient = Object.create(client, {
      readRange: {
        value: async (file: LtxFileInfo, offset: number, length: number) => {
          gets++;
          if (inFlight > 0) overlapped++;
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          const earlier = held;
          held = [];
          try {
            const answered = new Promise<void>((resolve) => {
              held.push(resolve);
              setTimeout(resolve, HOLD_MS);
            });
            for (const release of earlier) release();
            await answered;
            return await client.readRange(file, offset, length);
          } finally {
            inFlight--;
          }
        },
      },
    });
    const replica = await Replica.open(slow, { pollIntervalMs: 0, maxReadAheadBytes: MiB, manifest: false });
    const view = replica.acquireLatest();
    const image = defined(primary.images.get(4));
    const pages = snapshotOnlyPages();
    gets = 0;
    overlapped = 0;
    maxInFlight = 0;
    // Like the VFS: the synchronous path first, a wait only when the page is neither cached nor local.
    for (const pgno of pages) {
      const page = view.readPageSync(pgno) ?? (await view.readPage(pgno));
      expect(Buffer.compare(page, image.subarray((pgno - 1) * 4096, pgno * 4096))).toBe(0);
    }
    console.log(
      `pipelined scan: ${pages.length} pages, ${gets} GETs, ${overlapped} while another GET was in flight, max ${maxInFlight} at once`,
    );
    const chunks = Math.ceil(snapshotFile.size / MiB);
    expect(gets).toBeLessThanOrEqual(chunks + 8);
    // Without pipelining the reader awaits each GET before it can miss on the next chunk, so no
    // two GETs ever overlap. With it, every chunk after the ramp-up (first page, 128 KiB, the first
    // background chunk) is requested while the previous one is still on its way.
    expect(maxInFlight).toBe(2);
    expect(overlapped).toBeGreaterThanOrEqual(gets - 3);
    view.release();
    await replica.close();
  });

  it('random misses in the middle of a scan do not reset its read-ahead', async () => {
    const replica = await openFresh();
    const view = replica.acquireLatest();
    client.resetStats();
    const pages = snapshotOnlyPages();
    const far = pages.slice(-200);
    let random = 0;
    for (const [i, pgno] of pages.slice(0, -200).entries()) {
      await view.readPage(pgno);
      if (i % 100 === 50) {
        await view.readPage(defined(far[random++ * 7]));
      }
    }
    const limit = Math.ceil(snapshotFile.size / (4 * MiB)) + 8 + random;
    expect(client.stats().get).toBeLessThanOrEqual(limit);
    view.release();
    await replica.close();
  });

  it('without coalescing and read-ahead the same scan costs one GET per page (the baseline)', async () => {
    const replica = await openFresh({ coalesce: false, readAhead: false });
    const view = replica.acquireLatest();
    client.resetStats();
    // Past the snapshot front the open read (those pages are already cached).
    const pages = snapshotOnlyPages().slice(200, 700);
    for (const pgno of pages) await view.readPage(pgno);
    expect(client.stats().get).toBe(500);
    view.release();
    await replica.close();
  });

  it('concurrent reads of adjacent pages are coalesced into one GET and de-duplicated', async () => {
    const replica = await openFresh({ readAhead: false });
    const view = replica.acquireLatest();
    const pages = snapshotOnlyPages();
    // A run of consecutive page numbers held by the snapshot.
    const start = pages.findIndex((p, i) => i > 100 && pages[i + 31] === p + 31);
    const run = pages.slice(start, start + 32);
    client.resetStats();
    const got = await Promise.all([...run, ...run].map((p) => view.readPage(p)));
    expect(client.stats().get).toBe(1);
    const image = defined(primary.images.get(4));
    run.forEach((p, i) => {
      expect(Buffer.compare(defined(got[i]), image.subarray((p - 1) * 4096, p * 4096))).toBe(0);
    });
    view.release();
    await replica.close();
  });

  it('ten views of one replica cause no more LIST requests than the one poller', async () => {
    const replica = await openFresh();
    client.resetStats();
    const views = Array.from({ length: 10 }, () => replica.acquireLatest());
    await Promise.all(views.map((v) => v.readPage(1)));
    // Ten connections asking to poll at once share one poll.
    await Promise.all(views.map(() => replica.poll()));
    expect(client.stats().list).toBe(1);
    for (const v of views) v.release();
    await replica.close();
  });

  it('background polling: LIST count follows the poll interval, not the number of views', async () => {
    const replica = await openFresh({ pollIntervalMs: 100 });
    client.resetStats();
    const started = Date.now();
    const views = Array.from({ length: 10 }, () => replica.acquireLatest());
    // Until three polls happened (a count; a loaded machine only makes them later), reading
    // through ten views all along. The bound: at most one LIST per interval elapsed, plus one.
    while (client.stats().list < 3 && Date.now() - started < 30_000) {
      await Promise.all(views.map((v, i) => v.readPage(1 + i)));
      await new Promise((r) => setTimeout(r, 10));
    }
    const elapsed = Date.now() - started;
    expect(client.stats().list).toBeGreaterThanOrEqual(3);
    expect(client.stats().list).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1);
    for (const v of views) v.release();
    await replica.close();
  });
});
