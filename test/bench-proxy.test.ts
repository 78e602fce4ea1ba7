import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LatencyProxy, startLatencyProxy } from '../bench/proxy.js';

/** An echo server on loopback: every byte comes straight back. */
async function startEcho(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Sends `payload` and resolves with the ms from connect() until all of it came back. */
function roundTrip(port: number, payload: Buffer): Promise<{ ms: number; echoed: Buffer }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    let received = 0;
    const socket = net.connect(port, '127.0.0.1', () => socket.write(payload));
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      if (received >= payload.length) {
        const ms = performance.now() - started;
        socket.destroy();
        resolve({ ms, echoed: Buffer.concat(chunks) });
      }
    });
    socket.on('error', reject);
  });
}

describe('bench latency proxy', () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  const proxies: LatencyProxy[] = [];
  beforeAll(async () => {
    echo = await startEcho();
  });
  afterAll(async () => {
    for (const p of proxies) await p.close();
    await echo.close();
  });

  it('adds the handshake round trip plus one round trip per exchange, and keeps bytes intact', async () => {
    // A long round trip, so that one round more or less stands out from a loaded machine's timer
    // delays (which only ever add).
    const proxy = await startLatencyProxy({ target: { host: '127.0.0.1', port: echo.port }, rttMs: 200 });
    proxies.push(proxy);
    const payload = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
    const { ms, echoed } = await roundTrip(proxy.port, payload);
    expect(echoed.equals(payload)).toBe(true);
    // handshake (200) + there and back (200); a third round would make it 600
    expect(ms).toBeGreaterThanOrEqual(399);
    expect(ms).toBeLessThan(600);
    expect(proxy.stats()).toEqual({ connections: 1, bytesUp: 5000, bytesDown: 5000 });
    // The accept time, for telling which request of a bench run paid a handshake.
    expect(proxy.connectionTimes()).toHaveLength(1);
    proxy.resetStats();
    expect(proxy.connectionTimes()).toEqual([]);
  });

  it('leaves out of connectionTimes a connection opened ahead of need (first bytes a round trip later)', async () => {
    // A connection counts as "used at once" when its first bytes come within 0.75 round trips of
    // its accept: with 400 ms that holds for the first connection however loaded the machine is,
    // and the preconnected one sends only after a whole exchange elsewhere (2 x 400 ms).
    const proxy = await startLatencyProxy({ target: { host: '127.0.0.1', port: echo.port }, rttMs: 400 });
    proxies.push(proxy);
    const idle = net.connect(proxy.port, '127.0.0.1');
    await new Promise<void>((r) => idle.once('connect', () => r()));
    // Held back by events, not a clock: the preconnected socket sends only after a whole exchange
    // on another connection (which takes its own handshake plus a round trip, 800 ms here).
    await roundTrip(proxy.port, Buffer.from('used at once'));
    const echoed = new Promise<void>((r) => idle.once('data', () => r()));
    idle.write('used later');
    await echoed;
    idle.destroy();
    expect(proxy.stats().connections).toBe(2);
    expect(proxy.connectionTimes()).toHaveLength(1);
  });

  it('limits bandwidth per direction', async () => {
    const proxy = await startLatencyProxy({
      target: { host: '127.0.0.1', port: echo.port },
      rttMs: 0,
      bandwidthBytesPerSec: 1_000_000,
    });
    proxies.push(proxy);
    const payload = Buffer.alloc(200_000, 7);
    const { ms, echoed } = await roundTrip(proxy.port, payload);
    expect(echoed.equals(payload)).toBe(true);
    // 200 kB at 1 MB/s takes 200 ms each way; the two directions overlap as the echo streams back
    expect(ms).toBeGreaterThanOrEqual(195);
    // Far below sending the two directions one after the other at a crawl (a loose bound: timers
    // on a loaded machine only add).
    expect(ms).toBeLessThan(2000);
  });
});
