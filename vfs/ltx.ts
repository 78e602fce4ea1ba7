import { existsSync, rmSync } from 'node:fs';
import * as SQLite from '@journeyapps/wa-sqlite';
import { Follower } from '../src/follow/follower.js';
import { followStatePath } from '../src/follow/state-file.js';
import { hydrationSidecarPath } from '../src/replica/hydrator.js';
import type { HydrationStatus } from '../src/replica/port.js';
import { type ReplicaOptions as BaseReplicaOptions, Replica } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { LtxvfsError } from '../src/util/errors.js';
import { LtxDatabase, type PooledInstance, translateError } from './database.js';
import { LocalFastPath, type SyncInstance } from './local-fast-path.js';
import { LtxVfs, splitUri } from './ltx-vfs.js';
import { instantiateWaSqlite } from './module.js';
import { Mutex } from './mutex.js';
import { ReplicaMap } from './registry.js';
import type { ReplicaSource } from './replica-port.js';
import { Stepper } from './stepper.js';

export interface LtxOptions {
  /** wa-sqlite module instances (each runs one call at a time); default 4, created on demand. */
  instances?: number;
  /** SQLite page cache per connection in KiB (PRAGMA cache_size = -N); default 8192. */
  cacheSizeKiB?: number;
  /**
   * Run plain queries of connections that follow the latest TXID on wa-sqlite's synchronous build
   * while every page they read is local (hydrated or cached), falling back to the waiting build on
   * the first page that is not; see README "Warm reads". Default true; LTXVFS_FAST_PATH=0 turns it
   * off (to compare).
   */
  fastPath?: boolean;
  logger?: (line: string) => void;
}

export interface OpenOptions {
  /** Pin the connection to this TXID (same as `&txid=` in the URI). */
  txid?: number | string;
  /** Pin the connection to the state at this time: a Date, ISO text, or '-5 minutes'. */
  timestamp?: Date | string;
}

export interface ReplicaOptions extends BaseReplicaOptions {
  /**
   * With hydratePath: once the file is complete, keep it current as a followed file (src/follow)
   * that other SQLite clients (better-sqlite3 in this process, any other process) can read while
   * it updates; see `followerOf(name)`. Needs better-sqlite3.
   */
  followHydrated?: boolean;
}

interface OwnedReplica {
  replica: Replica;
  client?: ReplicaClient;
  follower?: Follower;
  following?: Promise<void>;
  followed?: (follower: Follower) => void;
}

/** How a replica is given to registerReplica. */
export type ReplicaInput = string | ReplicaClient | ReplicaSource;

const OPEN_FLAGS = SQLite.SQLITE_OPEN_READONLY | SQLite.SQLITE_OPEN_URI;
/** SQLite page cache of each fast-path connection, in KiB (SQLite's default). */
const FAST_PATH_CACHE_KIB = 2048;

/** Loads wa-sqlite and returns the entry point of the Node API. */
export async function createLtx(options: LtxOptions = {}): Promise<Ltx> {
  const ltx = new Ltx(options);
  await ltx.ready();
  return ltx;
}

/**
 * Registered replicas plus a small pool of wa-sqlite instances. Connections are spread over the
 * instances; each connection stays on its instance. All connections to one replica share one
 * Replica (one page map, cache and poller).
 */
export class Ltx {
  private readonly registry = new ReplicaMap();
  /** Replicas this object opened (and therefore closes). */
  private readonly owned = new Map<string, OwnedReplica>();
  private readonly instances: PooledInstance[] = [];
  private creating: Promise<PooledInstance> | undefined;
  private pendingInstances = 0;
  private readonly databases = new Set<LtxDatabase>();
  private readonly maxInstances: number;
  private closed = false;
  /** The plain-build module the fast paths share, created with the first one. */
  private syncInstance: Promise<SyncInstance> | undefined;

  constructor(private readonly options: LtxOptions = {}) {
    this.maxInstances = Math.max(1, options.instances ?? 4);
  }

  /** Creates the first module instance (so the first open is quick). */
  async ready(): Promise<void> {
    if (this.instances.length === 0) await this.addInstance();
  }

  /**
   * Registers a replica under `name` (used as `file:<name>?vfs=ltx`; with or without ".db").
   * `source` is a replica URL (`s3://bucket/path`, `file:///dir`, a directory), a ReplicaClient,
   * or an already opened Replica.
   */
  async registerReplica(
    name: string,
    source: ReplicaInput,
    options: ReplicaOptions = {},
  ): Promise<Replica | ReplicaSource> {
    this.assertOpen();
    if (!/^[^?#/\\\0]+$/.test(name)) {
      throw new LtxvfsError(
        'BAD_ARGUMENT',
        `invalid replica name "${name}": no '/', '?', '#' or '\\' allowed`,
      );
    }
    if (this.registry.get(name))
      throw new LtxvfsError('BAD_ARGUMENT', `a replica is already registered as "${name}"`);
    let replica: ReplicaSource;
    if (isReplicaSource(source)) {
      replica = source;
    } else {
      const client = typeof source === 'string' ? openReplicaClient(source) : source;
      try {
        const handOver = options.followHydrated === true && options.hydratePath !== undefined;
        const followedBefore = handOver && existsSync(followStatePath(options.hydratePath ?? ''));
        const opened = await Replica.open(client, {
          logger: this.options.logger,
          ...options,
          ...(followedBefore ? { hydratePath: undefined } : {}),
        });
        const owned: OwnedReplica = {
          replica: opened,
          client: typeof source === 'string' ? client : undefined,
        };
        this.owned.set(name, owned);
        replica = opened;
        if (handOver && options.hydratePath !== undefined) {
          await this.followHydrated(owned, client, options.hydratePath, followedBefore);
        }
      } catch (err) {
        if (typeof source === 'string') await client.close().catch(() => undefined);
        throw err;
      }
    }
    this.registry.add(name, replica);
    return replica;
  }

  /**
   * followHydrated: once hydration is complete, the file is handed to a Follower (src/follow),
   * which keeps it current under SQLite's locks so other SQLite clients can read it; a file
   * handed over before is resumed by the Follower directly, without hydrating again.
   */
  private async followHydrated(
    owned: OwnedReplica,
    client: ReplicaClient,
    path: string,
    followedBefore: boolean,
  ): Promise<void> {
    const log = (line: string) => this.options.logger?.(line);
    if (followedBefore) {
      owned.follower = await Follower.start(client, path, { log });
      owned.follower.run();
      return;
    }
    let started = false;
    const handOver = async () => {
      if (started) return;
      started = true;
      const released = await owned.replica.releaseHydratedFile();
      if (released === undefined) {
        log(`${path}: hydration did not finish; it is not followed`);
        return;
      }
      rmSync(hydrationSidecarPath(path), { force: true });
      owned.follower = await Follower.adopt(client, path, released.txid, { log });
      owned.follower.run();
      owned.followed?.(owned.follower);
    };
    const onStatus = (status: HydrationStatus) => {
      if (status.state !== 'done') return;
      owned.replica.off('hydration', onStatus);
      owned.following = handOver().catch((err: unknown) => log(`${path}: could not follow: ${String(err)}`));
    };
    owned.replica.on('hydration', onStatus);
    onStatus(owned.replica.hydration());
  }

  /**
   * The Follower that keeps a replica's hydrated file current (registered with followHydrated),
   * once hydration handed the file over.
   */
  async followerOf(name: string): Promise<Follower | undefined> {
    const canonical = this.registry.canonicalName(name);
    const owned = canonical === undefined ? undefined : this.owned.get(canonical);
    if (owned === undefined) return undefined;
    if (owned.follower !== undefined) return owned.follower;
    return new Promise((resolve) => {
      owned.followed = resolve;
    });
  }

  /** The replica registered under `name` (or its ".db" twin). */
  replica(name: string): ReplicaSource | undefined {
    const canonical = this.registry.canonicalName(name);
    return canonical === undefined ? undefined : this.registry.get(canonical);
  }

  /** Closes the connections that use it, then the replica if this object opened it. */
  async unregisterReplica(name: string): Promise<void> {
    const canonical = this.registry.canonicalName(name);
    if (canonical === undefined) return;
    this.registry.delete(canonical);
    const owned = this.owned.get(canonical);
    this.owned.delete(canonical);
    if (owned) {
      await owned.following;
      await owned.follower?.close();
      await owned.replica.close();
      await owned.client?.close();
    }
  }

  /**
   * Opens a read-only connection: `file:<name>?vfs=ltx` follows the latest TXID,
   * `file:<name>?vfs=ltx&txid=N` (or `&time=<ISO or relative>`) stays on one state.
   * A bare registered name is accepted too.
   */
  async open(uri: string, options: OpenOptions = {}): Promise<LtxDatabase> {
    this.assertOpen();
    const fullUri = this.normalizeUri(uri, options);
    const instance = await this.reserveInstance();
    try {
      const { handle, pinnedTo } = await instance.mutex.run(async () => {
        instance.vfs.clearLastError();
        try {
          const db = await instance.sqlite3.open_v2(fullUri, OPEN_FLAGS);
          // Temp tables and sorter spills stay in memory; a larger page cache than SQLite's
          // 2 MB default saves trips into the replica for repeated pages.
          await instance.sqlite3.exec(
            db,
            `PRAGMA temp_store = MEMORY; PRAGMA cache_size = -${Math.max(64, this.options.cacheSizeKiB ?? 8192)}`,
          );
          // A pinned URI (txid= or time=) resolves to one TXID: the fast path opens exactly that.
          let pinned: string | undefined;
          if (isPinnedUri(fullUri)) {
            await instance.sqlite3.exec(db, 'PRAGMA ltx_txid', (row) => {
              pinned = String(row[0]);
            });
          }
          return { handle: db, pinnedTo: pinned };
        } catch (err) {
          throw translateError(err, instance.vfs.takeLastError(), fullUri);
        }
      });
      const fast = await this.openFastPath(fullUri, pinnedTo);
      const db = new LtxDatabase(
        fullUri,
        instance,
        handle,
        (closed) => {
          this.databases.delete(closed);
          instance.connections--;
        },
        fast,
      );
      this.databases.add(db);
      return db;
    } catch (err) {
      instance.connections--;
      throw err;
    }
  }

  /** Closes every connection, then the replicas this object opened. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.databases].map((db) => db.close()));
    this.closed = true;
    for (const name of [...this.owned.keys()]) await this.unregisterReplica(name);
  }

  /** The VFS of each module instance (for diagnostics and tests). */
  get vfsInstances(): LtxVfs[] {
    return this.instances.map((i) => i.vfs);
  }

  private normalizeUri(uri: string, options: OpenOptions): string {
    let path: string;
    let params: Map<string, string>;
    if (uri.startsWith('file:')) {
      ({ path, params } = splitUri(uri.slice('file:'.length)));
      const vfs = params.get('vfs');
      if (vfs !== undefined && vfs !== 'ltx') {
        throw new LtxvfsError('BAD_ARGUMENT', `bad URI "${uri}": vfs=${vfs} is not served here; use vfs=ltx`);
      }
    } else if (!/[?/\\]/.test(uri) && uri.length > 0) {
      path = uri;
      params = new Map();
    } else {
      throw new LtxvfsError(
        'BAD_ARGUMENT',
        `bad URI "${uri}": expected file:<replica name>?vfs=ltx[&txid=N]`,
      );
    }
    if (!path) throw new LtxvfsError('BAD_ARGUMENT', `bad URI "${uri}": no replica name`);
    if (this.registry.canonicalName(path) === undefined) {
      const known = this.registry.names();
      throw new LtxvfsError(
        'REPLICA_NOT_REGISTERED',
        `no replica registered as "${path}" (registered: ${known.length ? known.map((n) => `"${n}"`).join(', ') : 'none'})`,
      );
    }
    params.set('vfs', 'ltx');
    if (options.txid !== undefined) params.set('txid', String(options.txid));
    if (options.timestamp !== undefined) {
      params.set(
        'time',
        options.timestamp instanceof Date ? options.timestamp.toISOString() : options.timestamp,
      );
    }
    const query = [...params].map(([k, v]) => `${k}=${v}`).join('&');
    return `file:${path}?${query}`;
  }

  /**
   * An instance for a new connection, already counted: an idle one, else a new one while the
   * pool may grow, else the least busy. Counting before any await keeps concurrent opens apart.
   */
  private async reserveInstance(): Promise<PooledInstance> {
    const idle = this.instances.find((i) => i.connections === 0);
    if (idle || this.instances.length + this.pendingInstances >= this.maxInstances) {
      if (!idle && this.instances.length === 0) await this.creating;
      const chosen = idle ?? this.instances.reduce((a, b) => (b.connections < a.connections ? b : a));
      chosen.connections++;
      return chosen;
    }
    const created = await this.addInstance();
    created.connections++;
    return created;
  }

  /**
   * The fast path of a connection. One that follows the latest TXID gets a connection that
   * follows too; one pinned to `pinnedTo` gets an immutable connection to that TXID (SQLite then
   * takes no locks and reads no change counter: the state can never change under it).
   */
  private async openFastPath(uri: string, pinnedTo: string | undefined): Promise<LocalFastPath | undefined> {
    const enabled = this.options.fastPath ?? process.env.LTXVFS_FAST_PATH !== '0';
    if (!enabled) return undefined;
    let fastUri = uri;
    if (isPinnedUri(uri)) {
      if (pinnedTo === undefined) return undefined;
      const { path } = splitUri(uri.slice('file:'.length));
      fastUri = `file:${path}?vfs=ltx&txid=${pinnedTo}&immutable=1`;
    }
    this.syncInstance ??= instantiateWaSqlite('sync').then(({ module, sqlite3, build }) => {
      const vfs = new LtxVfs(module, this.registry, { logger: this.options.logger, build });
      sqlite3.vfs_register(vfs, false);
      return { module, sqlite3, build, vfs, stepper: new Stepper(module, sqlite3, build) };
    });
    try {
      return await LocalFastPath.open(
        await this.syncInstance,
        fastUri,
        // Every fast path of this Ltx shares one wasm memory (4 GiB at most), so each keeps
        // SQLite's own default-sized cache: the B-tree's upper pages; the replica's page cache
        // and the hydrated file hold the rest.
        Math.min(FAST_PATH_CACHE_KIB, Math.max(64, this.options.cacheSizeKiB ?? 8192)),
        fastUri !== uri,
      );
    } catch (err) {
      // The connection works without it, only slower.
      this.options.logger?.(
        `ltx: no fast path for ${uri}: ${err instanceof Error ? err.message : String(err)}`,
      );
      return undefined;
    }
  }

  private addInstance(): Promise<PooledInstance> {
    this.pendingInstances++;
    const creating = (async () => {
      try {
        const { module, sqlite3, build } = await instantiateWaSqlite();
        const vfs = new LtxVfs(module, this.registry, { logger: this.options.logger, build });
        sqlite3.vfs_register(vfs, false);
        const instance: PooledInstance = {
          module,
          sqlite3,
          build,
          vfs,
          stepper: new Stepper(module, sqlite3, build),
          mutex: new Mutex(),
          connections: 0,
        };
        this.instances.push(instance);
        return instance;
      } finally {
        this.pendingInstances--;
      }
    })();
    this.creating = creating;
    return creating;
  }

  private assertOpen(): void {
    if (this.closed) throw new LtxvfsError('BAD_ARGUMENT', 'this Ltx is closed');
  }
}

/** The URI names a state (`txid=`, `time=`) rather than following the latest. */
function isPinnedUri(uri: string): boolean {
  const { params } = splitUri(uri.slice('file:'.length));
  return params.has('txid') || params.has('time') || params.has('timestamp');
}

function isReplicaSource(value: ReplicaInput): value is ReplicaSource {
  return typeof value === 'object' && value !== null && 'acquireLatest' in value && 'acquireAt' in value;
}
