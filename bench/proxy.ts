import net from 'node:net';

/**
 * A TCP proxy that makes a loopback S3 server look like one across a network: every chunk waits
 * half the round-trip time in each direction, a new connection pays one extra round trip (the
 * TCP handshake the loopback hides), and an optional bandwidth limit is shared by all connections
 * in each direction, like one link. Ordering per connection is kept, and a slow link pauses the
 * sending socket instead of buffering without bound.
 */
export interface ProxyOptions {
  /** Where to forward, e.g. `{ host: '127.0.0.1', port: 7480 }`. */
  target: { host: string; port: number };
  /** Round-trip time to inject, in milliseconds (default 20). */
  rttMs?: number;
  /** Link bandwidth in bytes per second per direction; 0 or undefined = unlimited. */
  bandwidthBytesPerSec?: number;
  /** Port to listen on (default: any free port). */
  listenPort?: number;
}

export interface ProxyStats {
  connections: number;
  bytesUp: number;
  bytesDown: number;
}

export interface LatencyProxy {
  /** `http://127.0.0.1:<port>`: use it as the S3 endpoint. */
  readonly endpoint: string;
  readonly port: number;
  stats(): ProxyStats;
  /**
   * When (performance.now()) each connection since the last resetStats() was accepted, for those a
   * request was waiting for: its first bytes came within 3/4 of a round trip of the accept. A
   * connection opened ahead of need (a preconnect) carries its first request a round or more
   * later and is left out: it cost no round trip of its own.
   */
  connectionTimes(): number[];
  resetStats(): void;
  close(): Promise<void>;
}

/** Pause a sender once this many bytes wait in one direction of one connection. */
const HIGH_WATER_BYTES = 1 << 20;

/** One direction of the shared link: transmissions queue behind each other at the bandwidth. */
class Link {
  private busyUntil = 0;
  constructor(private readonly bytesPerMs: number) {}

  /** When a chunk of `bytes` handed over now has left the sender (ms, performance.now()). */
  transmitDone(now: number, bytes: number): number {
    if (this.bytesPerMs <= 0) return now;
    const start = Math.max(now, this.busyUntil);
    this.busyUntil = start + bytes / this.bytesPerMs;
    return this.busyUntil;
  }
}

/** Delivers chunks of one connection in one direction, each at its due time, in order. */
class DelayedPipe {
  private readonly queue: Array<{ due: number; chunk: Buffer }> = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private notBefore: number;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly link: Link,
    private readonly oneWayMs: number,
    startDelayMs: number,
    private readonly count: (bytes: number) => void,
  ) {
    this.notBefore = performance.now() + startDelayMs;
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => {
      this.ended = true;
      this.schedule();
    });
  }

  private push(chunk: Buffer): void {
    const now = performance.now();
    const sent = this.link.transmitDone(Math.max(now, this.notBefore), chunk.length);
    const due = Math.max(sent + this.oneWayMs, this.notBefore);
    this.queue.push({ due, chunk });
    this.queuedBytes += chunk.length;
    this.count(chunk.length);
    if (this.queuedBytes > HIGH_WATER_BYTES) this.from.pause();
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    const head = this.queue[0];
    if (!head) {
      if (this.ended && !this.to.destroyed) this.to.end();
      return;
    }
    const wait = Math.max(0, head.due - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  private flush(): void {
    const now = performance.now();
    for (let head = this.queue[0]; head !== undefined && head.due <= now + 0.5; head = this.queue[0]) {
      this.queue.shift();
      const { chunk } = head;
      this.queuedBytes -= chunk.length;
      if (!this.to.destroyed) this.to.write(chunk);
    }
    if (this.queuedBytes <= HIGH_WATER_BYTES / 2 && this.from.isPaused()) this.from.resume();
    this.schedule();
  }

  destroy(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

export async function startLatencyProxy(options: ProxyOptions): Promise<LatencyProxy> {
  const rttMs = options.rttMs ?? 20;
  const oneWayMs = rttMs / 2;
  const bytesPerMs = (options.bandwidthBytesPerSec ?? 0) / 1000;
  const up = new Link(bytesPerMs);
  const down = new Link(bytesPerMs);
  let stats: ProxyStats = { connections: 0, bytesUp: 0, bytesDown: 0 };
  let accepted: Array<{ at: number; firstData?: number }> = [];
  const open = new Set<net.Socket>();

  // Half-open on both sides: each direction ends on its own once its queue has drained.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    stats.connections++;
    const record: { at: number; firstData?: number } = { at: performance.now() };
    accepted.push(record);
    client.once('data', () => {
      record.firstData = performance.now();
    });
    client.setNoDelay(true);
    const upstream = net.connect({
      port: options.target.port,
      host: options.target.host,
      allowHalfOpen: true,
    });
    upstream.setNoDelay(true);
    open.add(client);
    open.add(upstream);
    // The handshake the loopback skips: the first request can leave only after one round trip.
    const toServer = new DelayedPipe(client, upstream, up, oneWayMs, rttMs, (n) => {
      stats.bytesUp += n;
    });
    const toClient = new DelayedPipe(upstream, client, down, oneWayMs, 0, (n) => {
      stats.bytesDown += n;
    });
    const teardown = () => {
      toServer.destroy();
      toClient.destroy();
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.on('close', () => open.delete(client));
    upstream.on('close', () => open.delete(upstream));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listenPort ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy: no TCP address');
  const port = address.port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    stats: () => ({ ...stats }),
    connectionTimes: () =>
      accepted
        .filter((c) => c.firstData !== undefined && c.firstData - c.at <= Math.max(rttMs * 0.75, 5))
        .map((c) => c.at),
    resetStats: () => {
      stats = { connections: 0, bytesUp: 0, bytesDown: 0 };
      accepted = [];
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        open.clear();
        server.close(() => resolve());
      }),
  };
}
