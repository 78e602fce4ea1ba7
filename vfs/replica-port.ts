import type { ReplicaSource } from '../src/replica/port.js';

/*
 * What the VFS needs from a replica: the interfaces of src/replica/port.ts (a Replica is one such
 * source; tests use an in-memory one), and how a URI's name finds one.
 */

export type { AcquireTarget, HydrationStatus, ReplicaSource, ReplicaView } from '../src/replica/port.js';

/** Resolves the path of a `file:<name>?vfs=ltx` URI to a registered replica. */
export interface ReplicaRegistry {
  resolve(name: string): { name: string; replica: ReplicaSource } | undefined;
  names(): string[];
}
