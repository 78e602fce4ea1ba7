import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileReplicaClient } from '../src/storage/index.js';
import { formatRfc3339Nano, Lease, parseRfc3339 } from '../src/writer/lease.js';
import { defined } from './support/defined.js';
import { rejection } from './support/rejection.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-lease-');
});
afterAll(() => tmp.cleanup());

function clock(start = Date.parse('2026-03-01T12:00:00Z')) {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) };
}

describe('writer lease (lock.json) on the file backend with an injected clock', () => {
  it('acquire writes Litestream-shaped lock.json; a second writer is refused, naming the holder', async () => {
    const root = join(tmp.dir, 'a');
    const client = new FileReplicaClient(root);
    const c = clock();
    const first = await Lease.acquire({ client, owner: 'host-a:1', now: c.now });
    expect(first.generation).toBe(1);
    const body = JSON.parse(readFileSync(join(root, 'lock.json'), 'utf8'));
    expect(body).toEqual({ generation: 1, expires_at: '2026-03-01T12:00:30Z', owner: 'host-a:1' });

    c.advance(29_000);
    const err = await rejection(Lease.acquire({ client, owner: 'host-b:2', now: c.now }));
    expect(err.code).toBe('LEASE_HELD');
    expect(err.message).toContain('host-a:1');
    expect(err.message).toContain('2026-03-01T12:00:30.000Z');
  });

  it('renewal extends the lease; a writer that misses renewal loses it to a takeover', async () => {
    const client = new FileReplicaClient(join(tmp.dir, 'b'));
    const c = clock();
    let lostWith: string | undefined;
    const first = await Lease.acquire({
      client,
      owner: 'host-a:1',
      now: c.now,
      onLost: (e) => (lostWith = e.code),
    });
    c.advance(10_000);
    await first.renew();
    expect(first.expiresAt.toISOString()).toBe('2026-03-01T12:00:40.000Z');
    c.advance(25_000); // 35 s: still within the renewed lease
    expect((await rejection(Lease.acquire({ client, owner: 'host-b:2', now: c.now }))).code).toBe(
      'LEASE_HELD',
    );
    c.advance(6_000); // 41 s: expired
    const second = await Lease.acquire({ client, owner: 'host-b:2', now: c.now });
    expect(second.generation).toBe(2);
    // The old writer's clock says it expired: that alone is not a loss (the store may just not
    // have answered); the renewal finds lock.json replaced and loses the lease.
    expect(() => first.check()).toThrow(/expired/);
    expect(lostWith).toBeUndefined();
    const err = await rejection(first.renew());
    expect(err.code).toBe('LEASE_LOST');
    expect(err.message).toContain('host-b:2');
    expect(lostWith).toBe('LEASE_LOST');
  });

  it('an expired lease nobody took over is renewed and kept (the store was only unreachable)', async () => {
    const root = join(tmp.dir, 'expired');
    const client = new FileReplicaClient(root);
    const c = clock();
    let lostWith: string | undefined;
    let recovered = 0;
    const lease = await Lease.acquire({
      client,
      owner: 'host-a:1',
      now: c.now,
      onLost: (e) => (lostWith = e.code),
      onRenewedAfterExpiry: () => recovered++,
    });
    c.advance(45_000); // no renewal got through for 45 s: expired at 30 s
    expect(lease.expired()).toBe(true);
    const expired = (() => {
      try {
        lease.check();
        return undefined;
      } catch (e) {
        return e as { code?: string };
      }
    })();
    expect(expired?.code).toBe('LEASE_EXPIRED');
    await lease.renew();
    expect(lostWith).toBeUndefined();
    expect(recovered).toBe(1);
    expect(lease.expired()).toBe(false);
    expect(() => lease.check()).not.toThrow();
    const body = JSON.parse(readFileSync(join(root, 'lock.json'), 'utf8'));
    expect(body).toEqual({ generation: 1, expires_at: '2026-03-01T12:01:15Z', owner: 'host-a:1' });
    // and it still keeps a second writer out
    expect((await rejection(Lease.acquire({ client, owner: 'host-b:2', now: c.now }))).code).toBe(
      'LEASE_HELD',
    );
  });

  it('a renewal that landed with its answer lost is recognised as ours (same generation and owner)', async () => {
    const root = join(tmp.dir, 'lost-answer');
    const client = new FileReplicaClient(root);
    const c = clock();
    let lostWith: string | undefined;
    const lease = await Lease.acquire({
      client,
      owner: 'host-a:1',
      now: c.now,
      onLost: (e) => (lostWith = e.code),
    });
    // What a renewal whose response never arrived leaves behind: our body under a new ETag.
    const current = await client.readObject('lock.json');
    await client.writeObject(
      'lock.json',
      new TextEncoder().encode(
        JSON.stringify({ generation: 1, expires_at: '2026-03-01T12:00:40Z', owner: 'host-a:1' }),
      ),
      { ifMatch: defined(current).etag },
    );
    c.advance(10_000);
    await lease.renew();
    expect(lostWith).toBeUndefined();
    const body = JSON.parse(readFileSync(join(root, 'lock.json'), 'utf8'));
    expect(body).toEqual({ generation: 1, expires_at: '2026-03-01T12:00:40Z', owner: 'host-a:1' });
    expect(lease.expiresAt.toISOString()).toBe('2026-03-01T12:00:40.000Z');
  });

  it('lock.json deleted behind our back is a lost lease', async () => {
    const root = join(tmp.dir, 'deleted');
    const client = new FileReplicaClient(root);
    const lease = await Lease.acquire({ client, owner: 'host-a:1' });
    await client.deleteObject('lock.json');
    const err = await rejection(lease.renew());
    expect(err.code).toBe('LEASE_LOST');
    expect(err.message).toContain('lock.json is gone');
  });

  it('a takeover is detected at the next renewal even if the old writer thinks it is in time', async () => {
    const client = new FileReplicaClient(join(tmp.dir, 'c'));
    const slow = clock();
    const fast = clock();
    const first = await Lease.acquire({ client, owner: 'host-a:1', now: slow.now });
    fast.advance(31_000);
    await Lease.acquire({ client, owner: 'host-b:2', now: fast.now });
    slow.advance(10_000);
    const err = await rejection(first.renew());
    expect(err.code).toBe('LEASE_LOST');
    expect(err.message).toContain('host-b:2');
    expect(() => first.check()).toThrow(/taken over/);
  });

  it('release deletes lock.json so the next writer starts at once', async () => {
    const root = join(tmp.dir, 'd');
    const client = new FileReplicaClient(root);
    const first = await Lease.acquire({ client, owner: 'host-a:1' });
    await first.release();
    expect(() => readFileSync(join(root, 'lock.json'))).toThrow();
    const second = await Lease.acquire({ client, owner: 'host-b:2' });
    expect(second.generation).toBe(1);
  });

  it('a lease left by a dead process on this host is taken over without waiting', async () => {
    const client = new FileReplicaClient(join(tmp.dir, 'e'));
    await Lease.acquire({ client, owner: `${hostname()}:4242` });
    const err = await rejection(
      Lease.acquire({ client, owner: `${hostname()}:4343`, isLocalOwnerAlive: () => true }),
    );
    expect(err.code).toBe('LEASE_HELD');
    const taken = await Lease.acquire({
      client,
      owner: `${hostname()}:4343`,
      isLocalOwnerAlive: () => false,
    });
    expect(taken.generation).toBe(2);
    // other hosts' leases are never judged by pid
    const client2 = new FileReplicaClient(join(tmp.dir, 'f'));
    await Lease.acquire({ client: client2, owner: 'elsewhere:4242' });
    expect(
      (
        await rejection(
          Lease.acquire({ client: client2, owner: `${hostname()}:1`, isLocalOwnerAlive: () => false }),
        )
      ).code,
    ).toBe('LEASE_HELD');
  });

  it('RFC3339Nano as Go writes and reads it', () => {
    expect(formatRfc3339Nano(new Date('2026-03-01T12:00:30.120Z'))).toBe('2026-03-01T12:00:30.12Z');
    expect(formatRfc3339Nano(new Date('2026-03-01T12:00:30.000Z'))).toBe('2026-03-01T12:00:30Z');
    expect(defined(parseRfc3339('2026-03-01T12:00:30.123456789Z')).toISOString()).toBe(
      '2026-03-01T12:00:30.123Z',
    );
    expect(defined(parseRfc3339('2026-03-01T14:00:30+02:00')).toISOString()).toBe('2026-03-01T12:00:30.000Z');
    expect(parseRfc3339('yesterday')).toBeUndefined();
  });
});
