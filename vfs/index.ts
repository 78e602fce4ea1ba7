/**
 * ltxvfs for Node: read-only SQLite replicas served from object storage.
 *
 *   const ltx = await createLtx();
 *   await ltx.registerReplica('app.db', 's3://bucket/app');
 *   const db = await ltx.open('file:app.db?vfs=ltx');
 *   const rows = await db.all('SELECT * FROM t WHERE id = ?', [42]);
 *   await ltx.close();
 *
 * People who run wa-sqlite themselves register `LtxVfs` on their own module instance.
 */
export { LtxDatabase, type QueryResult, SqlError } from './database.js';
export { createLtx, Ltx, type LtxOptions, type OpenOptions, type ReplicaInput } from './ltx.js';
export { LtxVfs, type LtxVfsOptions } from './ltx-vfs.js';
export { defaultBuild, instantiateWaSqlite, type WaSqliteBuild, type WaSqliteInstance } from './module.js';
export { Mutex } from './mutex.js';
export { ReplicaMap } from './registry.js';
export type { HydrationStatus, ReplicaRegistry, ReplicaSource, ReplicaView } from './replica-port.js';
export { LtxStatement, type StatementArgs } from './statement.js';
export { parseTimeTarget } from './time-target.js';
export {
  type Row,
  type SqlParam,
  type SqlParams,
  type SqlValue,
  toDisplayText,
  toJsonValue,
} from './values.js';
