import { hostname } from 'node:os';
import type { ReplicaClient } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { isProcessAlive } from '../util/process.js';
import { formatRfc3339Nano, tryParseRfc3339 } from '../util/rfc3339.js';

/** Litestream's lease object, `<replica path>/lock.json` (ltx-and-litestream.md section 5). */
export const LEASE_OBJECT = 'lock.json';
export const DEFAULT_LEASE_TTL_MS = 30_000;
export const DEFAULT_LEASE_RENEW_MS = 10_000;

interface LeaseBody {
  generation: number;
  expires_at: string;
  owner?: string;
}

export interface LeaseHolder {
  generation: number;
  expiresAt: Date;
  owner: string;
}

export interface LeaseOptions {
  client: ReplicaClient;
  ttlMs?: number;
  renewIntervalMs?: number;
  /** `<hostname>:<pid>` by default. */
  owner?: string;
  /** Injected clock (tests). */
  now?: () => Date;
  /**
   * Whether a holder on this host is still running. Default: signal 0 to its pid. A lease left by
   * a process that died (kill -9) on this host can be taken over without waiting for expiry.
   */
  isLocalOwnerAlive?: (pid: number) => boolean;
  /** Called once when the lease is lost (lock.json replaced by another writer). */
  onLost?: (err: LtxvfsError) => void;
  /** Called when a renewal succeeded after the lease had expired unrenewed. */
  onRenewedAfterExpiry?: () => void;
}

export function defaultLeaseOwner(): string {
  return `${hostname()}:${process.pid}`;
}

/**
 * The writer lease: one writer per replica. Acquire with If-None-Match: * (no lease yet) or
 * If-Match on the expired one; renew with If-Match on our own ETag.
 *
 * An unreachable store is not a lost lease. A lease that ran out unrenewed is only *expired*:
 * check() throws LEASE_EXPIRED (nothing may be written to the replica meanwhile, so the writer
 * keeps staging locally), and renewal goes on. When the store answers again, the If-Match
 * renewal succeeds exactly when nobody replaced lock.json since: the lease is ours again. Only a
 * lock.json written by another writer (a refused condition, or the object gone) loses it.
 */
export class Lease {
  private timer: NodeJS.Timeout | undefined;
  private lostError: LtxvfsError | undefined;
  private renewing: Promise<void> | undefined;

  private constructor(
    private readonly options: Required<Omit<LeaseOptions, 'onLost' | 'onRenewedAfterExpiry'>> &
      Pick<LeaseOptions, 'onLost' | 'onRenewedAfterExpiry'>,
    private etag: string,
    readonly generation: number,
    private expires: Date,
  ) {}

  static async acquire(options: LeaseOptions): Promise<Lease> {
    const opts = {
      client: options.client,
      ttlMs: options.ttlMs ?? DEFAULT_LEASE_TTL_MS,
      renewIntervalMs: options.renewIntervalMs ?? DEFAULT_LEASE_RENEW_MS,
      owner: options.owner ?? defaultLeaseOwner(),
      now: options.now ?? (() => new Date()),
      isLocalOwnerAlive: options.isLocalOwnerAlive ?? isProcessAlive,
      onLost: options.onLost,
      onRenewedAfterExpiry: options.onRenewedAfterExpiry,
    };
    const { client } = opts;
    const existing = await client.readObject(LEASE_OBJECT);
    let generation = 1;
    let condition: { ifNoneMatch: '*' } | { ifMatch: string } = { ifNoneMatch: '*' };
    if (existing) {
      const holder = parseLeaseBody(existing.data, client.url);
      const now = opts.now();
      const stale = holder.expiresAt.getTime() <= now.getTime() || isDeadLocalOwner(holder.owner, opts);
      if (!stale) throw leaseHeld(client.url, holder);
      generation = holder.generation + 1;
      condition = { ifMatch: existing.etag };
    }
    const expires = new Date(opts.now().getTime() + opts.ttlMs);
    try {
      const { etag } = await client.writeObject(
        LEASE_OBJECT,
        encodeLeaseBody({ generation, expiresAt: expires, owner: opts.owner }),
        condition,
      );
      return new Lease(opts, etag, generation, expires);
    } catch (err) {
      if (isLtxvfsError(err, 'STORAGE_CONDITION_FAILED')) {
        const now = await client.readObject(LEASE_OBJECT);
        if (now) throw leaseHeld(client.url, parseLeaseBody(now.data, client.url));
        throw new LtxvfsError('LEASE_HELD', `${client.url}: another writer raced for the lease; try again`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  get owner(): string {
    return this.options.owner;
  }

  get expiresAt(): Date {
    return this.expires;
  }

  /**
   * Throws LEASE_LOST when another writer took the lease over, and LEASE_EXPIRED while it has run
   * out unrenewed (the store did not answer); in the latter case a renewal is started.
   */
  check(): void {
    if (this.lostError) throw this.lostError;
    if (this.expired()) {
      void this.renew().catch(() => undefined);
      throw new LtxvfsError(
        'LEASE_EXPIRED',
        `${this.options.client.url}: lease generation ${this.generation} expired at ${this.expires.toISOString()} unrenewed (store unreachable?); renewing`,
      );
    }
  }

  /** The lease ran out without a renewal the store confirmed. */
  expired(): boolean {
    return this.options.now().getTime() >= this.expires.getTime();
  }

  get lost(): LtxvfsError | undefined {
    return this.lostError;
  }

  /** Renews every renewIntervalMs until released or lost. */
  startRenewing(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      void this.renew().catch(() => {
        // reported through onLost / check()
      });
    }, this.options.renewIntervalMs);
    this.timer.unref();
  }

  /** One renewal: same generation, new expiry, If-Match our ETag. */
  renew(): Promise<void> {
    this.renewing ??= this.doRenew().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async doRenew(): Promise<void> {
    if (this.lostError) throw this.lostError;
    const wasExpired = this.expired();
    const expires = new Date(this.options.now().getTime() + this.options.ttlMs);
    const body = encodeLeaseBody({
      generation: this.generation,
      expiresAt: expires,
      owner: this.options.owner,
    });
    const client = this.options.client;
    try {
      try {
        this.etag = (await client.writeObject(LEASE_OBJECT, body, { ifMatch: this.etag })).etag;
      } catch (err) {
        if (!isLtxvfsError(err, 'STORAGE_CONDITION_FAILED') && !isLtxvfsError(err, 'STORAGE_NOT_FOUND')) {
          throw err;
        }
        // An earlier renewal may have landed with its answer lost: lock.json then still names our
        // generation and owner under an ETag we never saw. Nobody else writes that pair.
        const now = await client.readObject(LEASE_OBJECT);
        const holder = now ? parseLeaseBody(now.data, client.url) : undefined;
        if (!now || !holder || holder.generation !== this.generation || holder.owner !== this.options.owner) {
          const by = holder ? `; now held by ${describeHolder(holder)}` : '; lock.json is gone';
          this.lose(
            new LtxvfsError(
              'LEASE_LOST',
              `${client.url}: lease generation ${this.generation} was taken over${by}`,
              { cause: err },
            ),
          );
          throw this.lostError;
        }
        this.etag = (await client.writeObject(LEASE_OBJECT, body, { ifMatch: now.etag })).etag;
      }
    } catch (err) {
      if (this.lostError) throw this.lostError;
      if (isLtxvfsError(err, 'STORAGE_CONDITION_FAILED')) {
        this.lose(
          new LtxvfsError('LEASE_LOST', `${client.url}: lease generation ${this.generation} was taken over`, {
            cause: err,
          }),
        );
        throw this.lostError;
      }
      // Unreachable store: the lease is kept (expired at worst); the next renewal tries again.
      throw err;
    }
    this.expires = expires;
    if (wasExpired) this.options.onRenewedAfterExpiry?.();
  }

  /** Stops renewing and deletes lock.json if it is still ours. */
  async release(): Promise<void> {
    this.stopRenewing();
    if (this.lostError) return;
    await this.renewing?.catch(() => undefined);
    try {
      await this.options.client.deleteObject(LEASE_OBJECT, { ifMatch: this.etag });
    } catch (err) {
      if (!isLtxvfsError(err, 'STORAGE_CONDITION_FAILED')) throw err;
    }
    this.lostError = new LtxvfsError('LEASE_LOST', `${this.options.client.url}: lease released`);
  }

  stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private lose(err: LtxvfsError): void {
    if (this.lostError) return;
    this.lostError = err;
    this.stopRenewing();
    this.options.onLost?.(err);
  }
}

export function encodeLeaseBody(holder: LeaseHolder): Uint8Array {
  const body: LeaseBody = { generation: holder.generation, expires_at: formatRfc3339Nano(holder.expiresAt) };
  if (holder.owner) body.owner = holder.owner;
  return new TextEncoder().encode(JSON.stringify(body));
}

export function parseLeaseBody(data: Uint8Array, url: string): LeaseHolder {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new LtxvfsError(
      'LEASE_HELD',
      `${url}/${LEASE_OBJECT} is not valid JSON; remove it if no writer is running`,
    );
  }
  const b = body as Partial<LeaseBody>;
  const expiresAt = typeof b.expires_at === 'string' ? tryParseRfc3339(b.expires_at) : undefined;
  if (typeof b.generation !== 'number' || !expiresAt) {
    throw new LtxvfsError(
      'LEASE_HELD',
      `${url}/${LEASE_OBJECT} lacks generation/expires_at; remove it if no writer is running`,
    );
  }
  return { generation: b.generation, expiresAt, owner: typeof b.owner === 'string' ? b.owner : '' };
}

function describeHolder(h: LeaseHolder): string {
  return `${h.owner || 'an unnamed writer'} (generation ${h.generation}, expires ${h.expiresAt.toISOString()})`;
}

function leaseHeld(url: string, h: LeaseHolder): LtxvfsError {
  return new LtxvfsError('LEASE_HELD', `${url} is being replicated by ${describeHolder(h)}`);
}

function isDeadLocalOwner(
  owner: string,
  opts: { owner: string; isLocalOwnerAlive: (pid: number) => boolean },
): boolean {
  const sep = owner.lastIndexOf(':');
  const mine = opts.owner.lastIndexOf(':');
  if (sep < 0 || mine < 0) return false;
  if (owner.slice(0, sep) !== opts.owner.slice(0, mine)) return false;
  const pid = Number(owner.slice(sep + 1));
  if (!Number.isInteger(pid) || pid <= 0 || owner === opts.owner) return false;
  return !opts.isLocalOwnerAlive(pid);
}

// The lease's timestamps; exported under the names older callers use (parse returns undefined).
export { formatRfc3339Nano, tryParseRfc3339 as parseRfc3339 };
