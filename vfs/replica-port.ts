import type { Replica } from '../src/replica/replica.js';

/*
 * What the VFS needs from a replica: the read-side seam of src/replica/replica.ts. The types come
 * from there; ReplicaSource is only the part of Replica the VFS calls, so the VFS can also run over
 * any other source of consistent page views (tests use an in-memory one).
 */

export type { HydrationStatus, ReplicaView } from '../src/replica/replica.js';

export type ReplicaSource = Pick<Replica, 'acquireLatest' | 'acquireAt' | 'lagSeconds' | 'hydration'>;

/** Resolves the path of a `file:<name>?vfs=ltx` URI to a registered replica. */
export interface ReplicaRegistry {
  resolve(name: string): { name: string; replica: ReplicaSource } | undefined;
  names(): string[];
}
