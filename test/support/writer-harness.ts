import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { decodeLtxFile } from '../../src/ltx/index.js';
import { restore } from '../../src/replica/restore.js';
import type { ReplicaClient } from '../../src/storage/types.js';
import type { Replicator } from '../../src/writer/index.js';

/** An application process writing the primary: better-sqlite3 in a child, or the sqlite3 shell. */
export interface App {
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

export async function startNodeApp(
  dbPath: string,
  pageSize?: number,
): Promise<App & { child: ChildProcess }> {
  const child = fork(join(import.meta.dirname, 'writer-app.mjs'), [dbPath, String(pageSize ?? '')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 0;
  const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`app exited early (${code})`)));
  });
  child.on('message', (m: { id: number; ok?: boolean; error?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(m.error));
    else p.resolve();
  });
  const send = (msg: object) =>
    new Promise<void>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      child.send({ id, ...msg });
    });
  return {
    child,
    exec: (sql) => send({ sql }),
    close: async () => {
      await send({ close: true }).catch(() => undefined);
      child.kill();
    },
  };
}

/** The sqlite3 command-line shell as the application (one long-lived process). */
export function sqliteShellAvailable(): boolean {
  const r = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' });
  return r.status === 0;
}

export async function startShellApp(dbPath: string, pageSize?: number): Promise<App> {
  const child = spawn('sqlite3', ['-batch', '-bail', dbPath], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  let seq = 0;
  const exec = (sql: string) =>
    new Promise<void>((resolve, reject) => {
      const marker = `__done_${seq++}__`;
      const timer = setInterval(() => {
        if (err) {
          clearInterval(timer);
          reject(new Error(`sqlite3: ${err}`));
        } else if (out.includes(marker)) {
          clearInterval(timer);
          out = '';
          resolve();
        }
      }, 2);
      child.stdin.write(`${sql.trim().replace(/;?$/, ';')}\n.print ${marker}\n`);
    });
  await exec(
    `PRAGMA busy_timeout=5000; ${pageSize ? `PRAGMA page_size=${pageSize};` : ''} PRAGMA journal_mode=WAL`,
  );
  return {
    exec,
    close: async () => {
      child.stdin.end('.quit\n');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/**
 * The primary's database image as SQLite itself defines it: copy the database file and its WAL,
 * let SQLite checkpoint the copy, and read the file.
 */
export function primaryImage(dbPath: string, scratchDir: string): Buffer {
  mkdirSync(scratchDir, { recursive: true });
  const copy = join(scratchDir, `image-${Math.random().toString(36).slice(2)}.db`);
  copyFileSync(dbPath, copy);
  if (existsSync(`${dbPath}-wal`)) copyFileSync(`${dbPath}-wal`, `${copy}-wal`);
  const db = new Database(copy);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const bytes = readFileSync(copy);
  rmSync(copy, { force: true });
  rmSync(`${copy}-wal`, { force: true });
  rmSync(`${copy}-shm`, { force: true });
  return bytes;
}

/** Every L0 file in the replica passes full verification and has Litestream's header shape. */
export async function verifyL0Files(
  client: ReplicaClient,
): Promise<Map<number, ReturnType<typeof decodeLtxFile>>> {
  const out = new Map<number, ReturnType<typeof decodeLtxFile>>();
  const files = await client.listFiles(0);
  for (const f of files) {
    const decoded = decodeLtxFile(await client.readFile(f), { verify: true });
    expect(decoded.header.flags).toBe(2);
    expect(decoded.header.preApplyChecksum).toBe(0n);
    expect(decoded.trailer.postApplyChecksum).toBe(0n);
    expect(decoded.header.nodeId).toBe(0n);
    expect(decoded.header.minTxid).toBe(f.minTxid);
    expect(decoded.header.maxTxid).toBe(f.maxTxid);
    out.set(f.minTxid, decoded);
  }
  const first = out.get(1);
  if (first) {
    const pgnos = first.pages.map((p) => p.pgno);
    expect(pgnos).toEqual(expectedFullPages(first.header.commit, first.header.pageSize));
  }
  return out;
}

export function expectedFullPages(commit: number, pageSize: number): number[] {
  const lock = Math.floor(0x40000000 / pageSize) + 1;
  const out: number[] = [];
  for (let p = 1; p <= commit; p++) if (p !== lock) out.push(p);
  return out;
}

/** Restores every recorded TXID and compares with the recorded image; integrity_check on each. */
export async function expectRestoresMatch(
  client: ReplicaClient,
  images: Map<number, Buffer>,
  scratchDir: string,
): Promise<void> {
  mkdirSync(scratchDir, { recursive: true });
  for (const [txid, image] of images) {
    const out = join(scratchDir, `restore-${txid}.db`);
    await restore({ client, outPath: out, txid, force: true });
    const got = readFileSync(out);
    if (!got.equals(image)) {
      const pageSize = image.readUInt16BE(16) === 1 ? 65536 : image.readUInt16BE(16);
      let firstDiff = -1;
      for (let i = 0; i < Math.min(got.length, image.length); i++) {
        if (got[i] !== image[i]) {
          firstDiff = i;
          break;
        }
      }
      throw new Error(
        `TXID ${txid}: restored ${got.length} bytes, primary image ${image.length} bytes; first difference at byte ${firstDiff} (page ${Math.floor(firstDiff / pageSize) + 1})`,
      );
    }
    const db = new Database(out);
    expect(db.pragma('integrity_check', { simple: true }), `TXID ${txid}`).toBe('ok');
    db.close();
    rmSync(out, { force: true });
  }
}

export function writeTextFile(path: string, text: string): void {
  writeFileSync(path, text);
}

/** Records the primary image after each replicator sync. */
export async function syncAndRecord(
  replicator: Replicator,
  dbPath: string,
  scratchDir: string,
  images: Map<number, Buffer>,
): Promise<number> {
  const { txid } = await replicator.sync();
  images.set(txid, primaryImage(dbPath, scratchDir));
  return txid;
}
