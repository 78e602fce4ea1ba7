/**
 * A store that accepts connections and never answers (issue 10, defect 2): every S3 request is
 * bounded, so `ltxvfs ls` and the client fail with STORAGE_UNREACHABLE instead of hanging (on
 * the old code requestTimeout only warned and there was no inactivity timeout: both hung).
 */
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReplicaClient } from '../src/storage/index.js';

const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
let server: Server;
let port = 0;
let accepted = 0;
const sockets: Socket[] = [];
beforeAll(async () => {
  server = createServer((socket) => {
    accepted++;
    sockets.push(socket); // read nothing, answer nothing
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  port = address.port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const env = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_REGION: 'us-east-1' };

describe('a black-holed S3 endpoint', () => {
  it('a client with a 500 ms inactivity timeout fails with STORAGE_UNREACHABLE within seconds', async () => {
    process.env.AWS_ACCESS_KEY_ID ??= 'x';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'y';
    const before = accepted;
    const client = openReplicaClient(`s3://bucket/db?endpoint=http://127.0.0.1:${port}`, {
      requestTimeoutMs: 500,
    });
    const started = Date.now();
    const outcome = await Promise.race([
      client.levels().then(
        () => 'answered',
        (err: { code?: string }) => err.code ?? 'no code',
      ),
      new Promise((resolve) => setTimeout(() => resolve('still hanging after 15 s'), 15_000)),
    ]);
    expect(outcome).toBe('STORAGE_UNREACHABLE');
    expect(accepted - before).toBeGreaterThanOrEqual(2); // retried like any network error
    expect(Date.now() - started).toBeLessThan(15_000);
    await client.close();
  }, 20_000);

  it('ltxvfs ls fails with STORAGE_UNREACHABLE in bounded time (default timeouts)', async () => {
    const child = spawn(process.execPath, [cli, 'ls', `s3://bucket/db?endpoint=http://127.0.0.1:${port}`], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still hanging after 40 s');
      }, 40_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c ?? 'signal');
      });
    });
    expect(code).not.toBe(0);
    expect(code).not.toBe('still hanging after 40 s');
    expect(stderr).toContain('STORAGE_UNREACHABLE');
    expect(stderr).toContain(`127.0.0.1:${port}`);
  }, 45_000);
});
