import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeLtxFile, initZstd, pageDigestsObjectName } from '../src/ltx/index.js';
import { Replica } from '../src/replica/replica.js';
import { restore } from '../src/replica/restore.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileInfo } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { seededRandom } from '../src/util/random.js';
import { formatTxid } from '../src/util/txid.js';
import { withPageDigests } from '../src/writer/page-digests-client.js';
import { defined } from './support/defined.js';
import { TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

// Single-bit flips in replica files, read the four ways a reader can: cold (a fresh replica),
// warm (the same replica again, cache filled), hydrated (the background download, then reads)
// and restore. The oracle is the database image better-sqlite3 left on disk at that TXID: an
// answer is right when every page equals it, or a typed error naming the flipped object.

await initZstd();

const SEED = Number(process.env.LTXVFS_CORRUPTION_SEED ?? 20261202);
console.log(`[corruption] seed ${SEED} (LTXVFS_CORRUPTION_SEED=${SEED} repeats this run)`);
const FLIPS_PER_LEVEL = 104;

type Place = 'header' | 'page data' | 'index' | 'trailer';
const PLACES: Place[] = ['header', 'page data', 'index', 'trailer'];
type Mode = 'cold' | 'warm' | 'hydrated' | 'restore';
type Outcome = 'caught' | 'unchanged' | 'WRONG';

let tmp: TempDir;
let primary: TestPrimary;
let image: Uint8Array;
const files = new Map<string, LtxFileInfo>();

function file(name: string): LtxFileInfo {
  return defined(files.get(name), name);
}

function fileName(f: LtxFileInfo): string {
  return `${formatTxid(f.minTxid)}-${formatTxid(f.maxTxid)}.ltx`;
}

function regions(bytes: Uint8Array): Record<Place, [number, number]> {
  const decoded = decodeLtxFile(bytes);
  const last = defined(decoded.pages[decoded.pages.length - 1], 'last page');
  const pagesEnd = last.offset + last.size;
  return {
    header: [0, 100],
    'page data': [100, pagesEnd],
    index: [pagesEnd, bytes.length - 16],
    trailer: [bytes.length - 16, bytes.length],
  };
}

/** A replica directory holding `members`, one of them (`victim`) with bit `bit` of byte `at` flipped. */
function replicaWithFlip(
  dir: string,
  members: LtxFileInfo[],
  victim: LtxFileInfo,
  at: number,
  bit: number,
  source = 'source',
): void {
  rmSync(dir, { recursive: true, force: true });
  for (const f of members) {
    // The page digests the writer left beside an object come along (they are never flipped here).
    const digests = pageDigestsObjectName(f);
    if (existsSync(join(tmp.dir, source, digests))) {
      mkdirSync(dirname(join(dir, digests)), { recursive: true });
      copyFileSync(join(tmp.dir, source, digests), join(dir, digests));
    }
    const from = join(tmp.dir, source, 'ltx', String(f.level), fileName(f));
    mkdirSync(join(dir, 'ltx', String(f.level)), { recursive: true });
    const to = join(dir, 'ltx', String(f.level), fileName(f));
    if (f !== victim) copyFileSync(from, to);
    else {
      const bytes = new Uint8Array(readFileSync(from));
      bytes[at] = (bytes[at] ?? 0) ^ (1 << bit);
      writeFileSync(to, bytes);
    }
  }
}

function judgeError(err: unknown, victim: LtxFileInfo): Outcome {
  const name = `${formatTxid(victim.minTxid)}-${formatTxid(victim.maxTxid)}`;
  if (isLtxvfsError(err) && err.message.includes(name)) return 'caught';
  throw new Error(`not a typed error naming ${name}: ${err instanceof Error ? err.stack : String(err)}`);
}

async function readAllPages(replica: Replica): Promise<Uint8Array> {
  const view = replica.acquireLatest();
  try {
    const pages: Uint8Array[] = [];
    for (let p = 1; p <= view.pageCount; p++) pages.push(await view.readPage(p));
    return Buffer.concat(pages);
  } finally {
    view.release();
  }
}

function compare(bytes: Uint8Array): Outcome {
  return Buffer.compare(Buffer.from(bytes), Buffer.from(image)) === 0 ? 'unchanged' : 'WRONG';
}

function hydrationEnd(replica: Replica): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      const s = replica.hydration();
      if (s.state === 'done' || s.state === 'error') {
        replica.off('hydration', check);
        resolve();
      }
    };
    replica.on('hydration', check);
    check();
  });
}

/** Every way of reading one flipped replica; what each gave. */
async function readFlipped(dir: string, victim: LtxFileInfo): Promise<Record<Mode, Outcome>> {
  const out = {} as Record<Mode, Outcome>;
  const client = openReplicaClient(dir);
  try {
    let replica: Replica | undefined;
    try {
      replica = await Replica.open(client, { pollIntervalMs: 0 });
    } catch (err) {
      out.cold = judgeError(err, victim);
      out.warm = out.cold;
    }
    if (replica !== undefined) {
      for (const mode of ['cold', 'warm'] as const) {
        try {
          out[mode] = compare(await readAllPages(replica));
        } catch (err) {
          out[mode] = judgeError(err, victim);
        }
      }
      await replica.close();
    }
    const hydratePath = join(dir, '..', 'hydrated.db');
    for (const suffix of ['', '.tmp', '.ltxvfs-hydration.json'])
      rmSync(`${hydratePath}${suffix}`, { force: true });
    let hydrating: Replica | undefined;
    try {
      hydrating = await Replica.open(client, { pollIntervalMs: 0, hydratePath });
    } catch (err) {
      out.hydrated = judgeError(err, victim);
    }
    if (hydrating !== undefined) {
      await hydrationEnd(hydrating);
      const status = hydrating.hydration();
      if (status.state === 'error') {
        // The download refused the object; reads then come from the store, as cold reads do.
        const name = `${formatTxid(victim.minTxid)}-${formatTxid(victim.maxTxid)}`;
        if (status.errorCode === undefined || !status.error?.includes(name))
          throw new Error(`hydration failed without naming ${name}: ${status.errorCode} ${status.error}`);
        out.hydrated = 'caught';
      } else {
        const file = compare(readFileSync(hydratePath));
        let served: Outcome;
        try {
          served = compare(await readAllPages(hydrating));
        } catch (err) {
          served = judgeError(err, victim);
        }
        out.hydrated = file === 'WRONG' || served === 'WRONG' ? 'WRONG' : served;
      }
      await hydrating.close();
    }
    const outPath = join(dir, '..', 'restored.db');
    rmSync(outPath, { force: true });
    try {
      await restore({ client, outPath });
      out.restore = compare(readFileSync(outPath));
    } catch (err) {
      out.restore = judgeError(err, victim);
    }
  } finally {
    await client.close();
  }
  return out;
}

/** Every page of the latest view in a random order (random reads, no sequential read-ahead). */
async function readPagesShuffled(replica: Replica, random: () => number): Promise<Uint8Array> {
  const view = replica.acquireLatest();
  try {
    const order = Array.from({ length: view.pageCount }, (_, i) => i + 1);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [defined(order[j], 'j'), defined(order[i], 'i')];
    }
    const pages = new Array<Uint8Array>(view.pageCount);
    for (const p of order) pages[p - 1] = await view.readPage(p);
    return Buffer.concat(pages);
  } finally {
    view.release();
  }
}

/** Cold (a fresh replica) and warm (the same again, cache filled) random reads of a flipped replica. */
async function readFlippedRandomly(
  dir: string,
  victim: LtxFileInfo,
  random: () => number,
  messages: string[],
): Promise<Record<'cold' | 'warm', Outcome>> {
  const out = {} as Record<'cold' | 'warm', Outcome>;
  const client = openReplicaClient(dir);
  try {
    let replica: Replica;
    try {
      replica = await Replica.open(client, { pollIntervalMs: 0, readAhead: false });
    } catch (err) {
      out.cold = judgeError(err, victim);
      out.warm = out.cold;
      return out;
    }
    try {
      for (const mode of ['cold', 'warm'] as const) {
        try {
          out[mode] = compare(await readPagesShuffled(replica, random));
        } catch (err) {
          out[mode] = judgeError(err, victim);
          messages.push(err instanceof Error ? err.message : String(err));
        }
      }
    } finally {
      await replica.close();
    }
  } finally {
    await client.close();
  }
  return out;
}

type Tally = Map<string, Record<Outcome, number>>;

function count(tally: Tally, place: Place, mode: Mode, outcome: Outcome): void {
  const key = `${place}|${mode}`;
  const row = tally.get(key) ?? { caught: 0, unchanged: 0, WRONG: 0 };
  row[outcome]++;
  tally.set(key, row);
}

function table(title: string, tally: Tally): string {
  const lines = [`${title}`, '| place flipped | cold | warm | hydrated | restore |', '|---|---|---|---|---|'];
  for (const place of PLACES) {
    const cells = (['cold', 'warm', 'hydrated', 'restore'] as Mode[]).map((mode) => {
      const r = tally.get(`${place}|${mode}`);
      if (r === undefined) return '-';
      return `${r.caught} caught, ${r.unchanged} same${r.WRONG > 0 ? `, **${r.WRONG} wrong**` : ''}`;
    });
    lines.push(`| ${place} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

async function flipRun(
  label: string,
  members: LtxFileInfo[],
  victims: LtxFileInfo[],
  flips: number,
  random: () => number,
): Promise<Tally> {
  const tally: Tally = new Map();
  const dir = join(tmp.dir, label, 'replica');
  for (let i = 0; i < flips; i++) {
    const victim = defined(victims[Math.floor(random() * victims.length)], 'victim');
    const bytes = new Uint8Array(
      readFileSync(join(tmp.dir, 'source', 'ltx', String(victim.level), fileName(victim))),
    );
    const place = defined(PLACES[i % PLACES.length], 'place');
    const [from, to] = regions(bytes)[place];
    const at = from + Math.floor(random() * (to - from));
    const bit = Math.floor(random() * 8);
    replicaWithFlip(dir, members, victim, at, bit);
    const got = await readFlipped(dir, victim);
    for (const mode of Object.keys(got) as Mode[]) count(tally, place, mode, got[mode]);
  }
  return tally;
}

/** Deterministic incompressible text, so a table of `rows` rows makes an object of a known size. */
function noise(random: () => number, n: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(random() * alphabet.length)];
  return s;
}

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-corruption-');
  const client = openReplicaClient(join(tmp.dir, 'source'));
  primary = new TestPrimary(client, tmp.dir);
  const random = seededRandom(SEED);
  const db = primary.db;
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= 60; id++) insert.run(id, noise(random, 150));
  })();
  const l0: LtxFileInfo[] = [await primary.sync()];
  db.prepare('UPDATE t SET v = ? WHERE id = 7').run(noise(random, 150));
  l0.push(await primary.sync());
  db.prepare('INSERT INTO t (id, v) VALUES (?, ?)').run(61, noise(random, 150));
  l0.push(await primary.sync());
  files.set('L0', defined(l0[0]));
  files.set('L0b', defined(l0[1]));
  files.set('L0c', defined(l0[2]));
  files.set('L1', await primary.compact(1, l0));
  files.set('L9', await primary.snapshot());
  image = defined(primary.images.get(3), 'image 3');
  // A Litestream-style replica with an object too big to be read whole (> 64 KiB).
  db.transaction(() => {
    for (let id = 62; id <= 1200; id++) insert.run(id, noise(random, 150));
  })();
  await primary.sync();
  files.set('bigL9', await primary.snapshot());
  db.prepare('UPDATE t SET v = ? WHERE id = 500').run(noise(random, 150));
  files.set('bigL0', await primary.sync());
  await client.close();
  await buildDigestedReplica();
}, 60_000);

/** An ltxvfs-written replica (page digests beside its large objects): big L0, L1 and L9 objects. */
const digested = new Map<string, LtxFileInfo>();
let digestedPrimary: TestPrimary;

async function buildDigestedReplica(): Promise<void> {
  const client = withPageDigests(openReplicaClient(join(tmp.dir, 'digested')));
  mkdirSync(join(tmp.dir, 'digested-primary'), { recursive: true });
  digestedPrimary = new TestPrimary(client, join(tmp.dir, 'digested-primary'));
  const random = seededRandom(SEED + 10);
  const db = digestedPrimary.db;
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= 900; id++) insert.run(id, noise(random, 150));
  })();
  const l0 = [await digestedPrimary.sync()];
  db.prepare('UPDATE t SET v = ? WHERE id = 300').run(noise(random, 150));
  l0.push(await digestedPrimary.sync());
  db.transaction(() => {
    for (let id = 901; id <= 1300; id++) insert.run(id, noise(random, 150));
  })();
  l0.push(await digestedPrimary.sync());
  digested.set('L1', await digestedPrimary.compact(1, l0));
  digested.set('L9', await digestedPrimary.snapshot());
  db.prepare('UPDATE t SET v = ? WHERE id = 1000').run(noise(random, 150));
  digested.set('L0', await digestedPrimary.sync());
  await client.close();
}

afterAll(async () => {
  digestedPrimary?.close();
  primary?.close();
  await tmp?.cleanup();
});

describe('single-bit flips in replica objects', () => {
  it(`objects of every level that are read whole (L0, L1, L9), ${FLIPS_PER_LEVEL} flips each: zero wrong pages cold, warm, hydrated, restored`, async () => {
    const random = seededRandom(SEED + 1);
    const l0 = [file('L0'), file('L0b'), file('L0c')];
    for (const f of [...l0, file('L1'), file('L9')]) expect(f.size).toBeLessThanOrEqual(64 * 1024);
    const runs: Array<[string, LtxFileInfo[], LtxFileInfo[]]> = [
      ['L0', l0, l0],
      ['L1', [file('L1')], [file('L1')]],
      ['L9', [file('L9')], [file('L9')]],
    ];
    for (const [label, members, victims] of runs) {
      const tally = await flipRun(label, members, victims, FLIPS_PER_LEVEL, random);
      console.log(table(`[corruption] ${label} objects (read whole), seed ${SEED}:`, tally));
      for (const [key, r] of tally) expect(r.WRONG, `${label} ${key}`).toBe(0);
    }
  }, 600_000);

  it('an object too big to be read whole (no page digests, as Litestream writes it): hydration and restore never give wrong pages; what random reads catch is reported', async () => {
    const random = seededRandom(SEED + 2);
    const big = file('bigL9');
    const latest = file('bigL0');
    expect(big.size).toBeGreaterThan(64 * 1024);
    image = defined(primary.images.get(latest.maxTxid), 'latest image');
    const tally = await flipRun('big', [big, latest], [big], 104, random);
    console.log(table(`[corruption] a ${big.size}-byte L9 snapshot (random reads), seed ${SEED}:`, tally));
    for (const place of PLACES) {
      for (const mode of ['hydrated', 'restore'] as const)
        expect(tally.get(`${place}|${mode}`)?.WRONG ?? 0, `${place} ${mode}`).toBe(0);
    }
  }, 600_000);
});

describe('single-bit flips in large objects of a replica ltxvfs wrote (page digests beside them)', () => {
  it('>= 100 flips in page data of big L1 and L9 objects, random reads cold and warm: zero wrong pages, every flip caught or harmless', async () => {
    const random = seededRandom(SEED + 3);
    const l1 = defined(digested.get('L1'), 'L1');
    const l9 = defined(digested.get('L9'), 'L9');
    const l0 = defined(digested.get('L0'), 'L0');
    for (const f of [l1, l9]) {
      expect(f.size, `${fileName(f)} is too big to be read whole`).toBeGreaterThan(64 * 1024);
      expect(existsSync(join(tmp.dir, 'digested', pageDigestsObjectName(f))), 'its digests exist').toBe(true);
    }
    const runs: Array<[string, LtxFileInfo[], LtxFileInfo, number]> = [
      ['L1', [l1], l1, l1.maxTxid],
      ['L9', [l9, l0], l9, l0.maxTxid],
    ];
    const messages: string[] = [];
    for (const [label, members, victim, txid] of runs) {
      image = defined(digestedPrimary.images.get(txid), `image ${txid}`);
      const bytes = new Uint8Array(
        readFileSync(join(tmp.dir, 'digested', 'ltx', String(victim.level), fileName(victim))),
      );
      const [from, to] = regions(bytes)['page data'];
      const tally: Tally = new Map();
      const dir = join(tmp.dir, `digested-${label}`, 'replica');
      for (let i = 0; i < FLIPS_PER_LEVEL; i++) {
        const at = from + Math.floor(random() * (to - from));
        replicaWithFlip(dir, members, victim, at, Math.floor(random() * 8), 'digested');
        const got = await readFlippedRandomly(dir, victim, random, messages);
        for (const mode of ['cold', 'warm'] as const) count(tally, 'page data', mode, got[mode]);
      }
      console.log(
        table(
          `[corruption] ${label} ${victim.size}-byte object with page digests (random reads), seed ${SEED}:`,
          tally,
        ),
      );
      for (const [key, r] of tally) {
        expect(r.WRONG, `${label} ${key}`).toBe(0);
        expect(r.caught, `${label} ${key}: flips are caught`).toBeGreaterThan(FLIPS_PER_LEVEL / 2);
      }
    }
    // The digests did the catching where the frame still decoded (not only the LZ4 structure).
    expect(messages.some((m) => m.includes('do not match its digest'))).toBe(true);
  }, 600_000);

  it('the unflipped replica reads back equal to the primary, with the digests in use', async () => {
    const l9 = defined(digested.get('L9'), 'L9');
    const l0 = defined(digested.get('L0'), 'L0');
    image = defined(digestedPrimary.images.get(l0.maxTxid), 'latest image');
    const dir = join(tmp.dir, 'digested-clean', 'replica');
    replicaWithFlip(dir, [l9, l0], l0, 0, 0, 'digested');
    // Undo the flip replicaWithFlip made in the small L0: copy it back whole.
    copyFileSync(join(tmp.dir, 'digested', 'ltx', '0', fileName(l0)), join(dir, 'ltx', '0', fileName(l0)));
    const client = openReplicaClient(dir);
    const lines: string[] = [];
    try {
      const replica = await Replica.open(client, {
        pollIntervalMs: 0,
        readAhead: false,
        logger: (l) => lines.push(l),
      });
      try {
        expect(compare(await readPagesShuffled(replica, seededRandom(SEED + 4)))).toBe('unchanged');
      } finally {
        await replica.close();
      }
    } finally {
      await client.close();
    }
    expect(lines.filter((l) => /page digests|digests\//.test(l))).toEqual([]);
  });
});
