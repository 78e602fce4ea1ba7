/** The primary side: WAL -> L0 LTX files -> the replica, the writer lease. */
export {
  DEFAULT_LEASE_RENEW_MS,
  DEFAULT_LEASE_TTL_MS,
  LEASE_OBJECT,
  Lease,
  type LeaseOptions,
} from './lease.js';
export type { CheckpointMode } from './primary-db.js';
export {
  Replicator,
  type ReplicatorLogger,
  type ReplicatorOptions,
  type ReplicatorStats,
  type SyncedEvent,
  type SyncOptions,
} from './replicator.js';
