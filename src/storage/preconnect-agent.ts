import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Spare connections nobody took are closed after this long (servers close idle ones anyway). */
const SPARE_IDLE_MS = 4_000;

/** Where the SDK will connect, as a URL origin. */
export interface Origin {
  protocol: 'http:' | 'https:';
  host: string;
  port: number;
}

type ConnectionOptions = { host?: string | null; hostname?: string | null; port?: number | string | null };
type Callback = (err: Error | null, socket: Duplex) => void;

/**
 * A keep-alive agent that can open connections before any request needs them: preconnect()
 * starts TCP (and TLS) handshakes to one origin in the background, and the agent hands those
 * sockets out first when it next needs a new connection to that origin, so a round of parallel
 * requests after a LIST does not pay a handshake round trip each. Sockets nobody took are
 * closed after a few seconds. Nothing is sent on them until a real request uses them.
 */
export interface PreconnectAgent {
  /** What the SDK's request handler takes (httpAgent or httpsAgent, by the origin's protocol). */
  handlerOptions: { httpAgent: HttpAgent } | { httpsAgent: HttpsAgent };
  preconnect(sockets: number): void;
}

export function makePreconnectAgent(origin: Origin): PreconnectAgent {
  const Base = origin.protocol === 'https:' ? HttpsAgent : HttpAgent;
  const spare: Socket[] = [];
  const made = new Base({ keepAlive: true, maxSockets: 50 });
  const agent = made as unknown as HttpAgent & {
    createConnection(options: ConnectionOptions, callback?: Callback): Duplex;
  };
  const open = agent.createConnection.bind(agent);
  const sameOrigin = (o: ConnectionOptions): boolean =>
    (o.hostname ?? o.host) === origin.host && Number(o.port ?? 0) === origin.port;
  agent.createConnection = (options: ConnectionOptions, callback?: Callback): Duplex => {
    if (sameOrigin(options)) {
      while (spare.length > 0) {
        const socket = spare.shift();
        if (socket !== undefined && !socket.destroyed) {
          socket.removeAllListeners('error');
          socket.removeAllListeners('timeout');
          socket.setTimeout(0);
          socket.ref();
          return socket;
        }
      }
    }
    return open(options, callback);
  };
  const preconnect = (sockets: number): void => {
    const idle = Object.values(agent.freeSockets).reduce((n, list) => n + (list?.length ?? 0), 0);
    for (let i = spare.length + idle; i < sockets; i++) {
      const options = { host: origin.host, port: origin.port, servername: origin.host };
      const socket = open(options) as Socket;
      // A failed early connection is simply not used; the request makes its own.
      socket.on('error', () => socket.destroy());
      socket.setTimeout(SPARE_IDLE_MS, () => {
        const at = spare.indexOf(socket);
        if (at >= 0) spare.splice(at, 1);
        socket.destroy();
      });
      socket.unref();
      spare.push(socket);
    }
  };
  return {
    handlerOptions: made instanceof HttpsAgent ? { httpsAgent: made } : { httpAgent: made },
    preconnect,
  };
}
