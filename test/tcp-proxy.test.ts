/**
 * The fault proxy itself (test/support/tcp-proxy.ts), against a local HTTP server whose answer
 * is known byte for byte: each mode does what the fault suites rely on, and the counters say so.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy } from './support/tcp-proxy.js';

const BODY = Buffer.alloc(256 * 1024, 7);
let server: http.Server;
let proxy: FaultProxy;

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': BODY.length, connection: 'close' });
    res.end(BODY);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  proxy = await startFaultProxy({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
});
afterAll(async () => {
  await proxy.close();
  await new Promise<void>((r) => server.close(() => r()));
});

interface Outcome {
  status?: number;
  received: number;
  error?: string;
}

function get(): Promise<Outcome> {
  return new Promise((resolve) => {
    let received = 0;
    let status: number | undefined;
    const req = http.get(`${proxy.endpoint}/x`, { agent: false }, (res) => {
      status = res.statusCode;
      res.on('data', (d: Buffer) => {
        received += d.length;
      });
      res.on('end', () => resolve({ status, received }));
      res.on('error', (err: NodeJS.ErrnoException) =>
        resolve({ status, received, error: err.code ?? err.message }),
      );
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ status, received, error: err.code ?? err.message }),
    );
  });
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('fault proxy', () => {
  it('pass forwards everything and counts the response bytes', async () => {
    proxy.setMode({ kind: 'pass' });
    const before = proxy.stats();
    const r = await get();
    expect(r).toEqual({ status: 200, received: BODY.length });
    const after = proxy.stats();
    expect(after.connections - before.connections).toBe(1);
    // headers + body came back through the proxy
    expect(after.bytesDown - before.bytesDown).toBeGreaterThan(BODY.length);
  });

  it('blackhole holds a request until the mode changes, then it completes', async () => {
    proxy.setMode({ kind: 'blackhole' });
    const before = proxy.stats();
    let done = false;
    const pending = get().then((r) => {
      done = true;
      return r;
    });
    await until('the request to be held', () => proxy.stats().heldChunks > before.heldChunks);
    expect(done).toBe(false);
    expect(proxy.stats().bytesUp).toBe(before.bytesUp); // not one byte reached the server
    proxy.setMode({ kind: 'pass' });
    expect(await pending).toEqual({ status: 200, received: BODY.length });
  });

  it('cut resets every open connection', async () => {
    proxy.setMode({ kind: 'blackhole' });
    const before = proxy.stats();
    const pending = get();
    await until('the request to be held', () => proxy.stats().heldChunks > before.heldChunks);
    expect(proxy.cut()).toBe(1);
    const r = await pending;
    expect(r.error).toBe('ECONNRESET');
    expect(proxy.stats().cutConnections - before.cutConnections).toBe(1);
    proxy.setMode({ kind: 'pass' });
  });

  it('reset sends exactly afterBytes of the response, then RST', async () => {
    proxy.setMode({ kind: 'reset', afterBytes: 1000 });
    const before = proxy.stats();
    const r = await get();
    expect(r.error).toBe('ECONNRESET');
    expect(r.received).toBeLessThan(BODY.length);
    const after = proxy.stats();
    expect(after.bytesDown - before.bytesDown).toBe(1000);
    expect(after.resetConnections - before.resetConnections).toBe(1);
    proxy.setMode({ kind: 'pass' });
  });

  it('slow delays every chunk', async () => {
    proxy.setMode({ kind: 'slow', delayMs: 150 });
    const started = performance.now();
    const r = await get();
    expect(r).toEqual({ status: 200, received: BODY.length });
    // at least the request chunk and one response chunk waited
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    proxy.setMode({ kind: 'pass' });
  });
});
