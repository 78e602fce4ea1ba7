import net from 'node:net';
import { defined } from './defined.js';

/**
 * A TCP proxy for fault injection, steered by the test while it runs. Put it between a client and
 * the real S3 server (RGW) and switch its mode:
 *  - `pass`: forward both ways;
 *  - `blackhole`: accept connections but forward nothing either way (new and open connections
 *    alike): bytes wait, as in a network that drops every packet; when the mode changes back,
 *    the waiting bytes flow on, as TCP retransmission would deliver them;
 *  - `slow`: every chunk waits `delayMs`, and each direction is throttled to `bytesPerSec`;
 *  - `reset`: each connection is reset (RST) once `afterBytes` bytes of response went through it
 *    (only the first `times` connections that get that far, if given; then it passes).
 * `cut()` resets every open connection at once, in any mode. Counts connections and bytes, and
 * what it did, so a test can assert that a fault really hit a request.
 */
export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'blackhole' }
  | { kind: 'slow'; delayMs: number; bytesPerSec?: number }
  | { kind: 'reset'; afterBytes: number; times?: number };

export interface FaultProxyStats {
  connections: number;
  /** Client to server, and server to client, bytes forwarded. */
  bytesUp: number;
  bytesDown: number;
  /** Connections reset by `cut()` and by `reset` mode. */
  cutConnections: number;
  resetConnections: number;
  /** Chunks that had to wait for a black hole to end (or were dropped when it never did). */
  heldChunks: number;
  open: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  readonly port: number;
  mode(): ProxyMode;
  setMode(mode: ProxyMode): void;
  /** Resets (RST) every open connection now; returns how many. */
  cut(): number;
  stats(): FaultProxyStats;
  close(): Promise<void>;
}

const HIGH_WATER_BYTES = 1 << 20;

class Connection {
  private readonly queues: { up: Buffer[]; down: Buffer[] } = { up: [], down: [] };
  private readonly pumping = { up: false, down: false };
  private readonly ended = { up: false, down: false };
  private downBytes = 0;
  closed = false;

  constructor(
    private readonly client: net.Socket,
    private readonly upstream: net.Socket,
    private readonly proxy: ProxyCore,
  ) {
    client.on('data', (chunk: Buffer) => this.push('up', chunk));
    upstream.on('data', (chunk: Buffer) => this.push('down', chunk));
    client.on('end', () => this.end('up'));
    upstream.on('end', () => this.end('down'));
    const gone = () => this.destroy(false);
    client.on('error', gone);
    upstream.on('error', gone);
    client.on('close', gone);
    upstream.on('close', gone);
  }

  /** The proxy's mode changed: waiting chunks may move now. */
  wake(): void {
    this.pump('up');
    this.pump('down');
  }

  destroy(reset: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (reset) {
      this.client.resetAndDestroy();
      this.upstream.resetAndDestroy();
    } else {
      this.client.destroy();
      this.upstream.destroy();
    }
    this.proxy.forget(this);
  }

  private source(dir: 'up' | 'down'): net.Socket {
    return dir === 'up' ? this.client : this.upstream;
  }

  private sink(dir: 'up' | 'down'): net.Socket {
    return dir === 'up' ? this.upstream : this.client;
  }

  private push(dir: 'up' | 'down', chunk: Buffer): void {
    const queue = this.queues[dir];
    queue.push(chunk);
    if (queue.reduce((n, c) => n + c.length, 0) > HIGH_WATER_BYTES) this.source(dir).pause();
    this.pump(dir);
  }

  private end(dir: 'up' | 'down'): void {
    this.ended[dir] = true;
    this.pump(dir);
  }

  /** Moves queued chunks of one direction on, one at a time, as the mode allows. */
  private pump(dir: 'up' | 'down'): void {
    if (this.pumping[dir] || this.closed) return;
    this.pumping[dir] = true;
    void this.drain(dir).finally(() => {
      this.pumping[dir] = false;
    });
  }

  private async drain(dir: 'up' | 'down'): Promise<void> {
    const queue = this.queues[dir];
    while (!this.closed && queue.length > 0) {
      const mode = this.proxy.current;
      if (mode.kind === 'blackhole') {
        this.proxy.counters.heldChunks++;
        return; // wake() resumes when the mode changes
      }
      let chunk = defined(queue[0]);
      if (mode.kind === 'slow') {
        const throttle = mode.bytesPerSec ? (chunk.length / mode.bytesPerSec) * 1000 : 0;
        await sleep(mode.delayMs + throttle);
        if (this.closed || this.proxy.current.kind === 'blackhole') continue;
      }
      queue.shift();
      if (dir === 'down' && mode.kind === 'reset' && this.proxy.mayReset(mode)) {
        const room = mode.afterBytes - this.downBytes;
        if (chunk.length >= room) {
          this.proxy.resetsInMode++;
          chunk = chunk.subarray(0, Math.max(0, room));
          if (chunk.length > 0) this.forward(dir, chunk);
          this.proxy.counters.resetConnections++;
          // Let the partial body leave before the RST, as a reset mid-body does.
          this.client.write(Buffer.alloc(0), () => this.destroy(true));
          return;
        }
      }
      this.forward(dir, chunk);
      if (queue.reduce((n, c) => n + c.length, 0) <= HIGH_WATER_BYTES / 2) this.source(dir).resume();
    }
    if (!this.closed && queue.length === 0 && this.ended[dir]) this.sink(dir).end();
  }

  private forward(dir: 'up' | 'down', chunk: Buffer): void {
    if (dir === 'up') this.proxy.counters.bytesUp += chunk.length;
    else {
      this.proxy.counters.bytesDown += chunk.length;
      this.downBytes += chunk.length;
    }
    const sink = this.sink(dir);
    if (!sink.destroyed) sink.write(chunk);
  }
}

class ProxyCore {
  current: ProxyMode = { kind: 'pass' };
  readonly open = new Set<Connection>();
  readonly counters = {
    connections: 0,
    bytesUp: 0,
    bytesDown: 0,
    cutConnections: 0,
    resetConnections: 0,
    heldChunks: 0,
  };

  /** Resets done since the mode was set (for `times`). */
  resetsInMode = 0;

  mayReset(mode: { times?: number }): boolean {
    return mode.times === undefined || this.resetsInMode < mode.times;
  }

  forget(c: Connection): void {
    this.open.delete(c);
  }
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const core = new ProxyCore();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    core.counters.connections++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    upstream.setNoDelay(true);
    core.open.add(new Connection(client, upstream, core));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fault proxy: no TCP address');
  const port = address.port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    mode: () => core.current,
    setMode(mode) {
      core.current = mode;
      core.resetsInMode = 0;
      for (const c of core.open) c.wake();
    },
    cut() {
      const all = [...core.open];
      for (const c of all) c.destroy(true);
      core.counters.cutConnections += all.length;
      return all.length;
    },
    stats: () => ({ ...core.counters, open: core.open.size }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of [...core.open]) c.destroy(false);
        server.close(() => resolve());
      }),
  };
}

/** `host`/`port` of an http(s) endpoint URL. */
export function endpointTarget(endpoint: string): { host: string; port: number } {
  const url = new URL(endpoint);
  return { host: url.hostname, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
