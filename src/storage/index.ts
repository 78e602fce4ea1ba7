import type { S3Client } from '@aws-sdk/client-s3';
import { FileReplicaClient } from './file-client.js';
import type { RetryPolicy } from './retry.js';
import { LazyS3ReplicaClient } from './s3-lazy.js';
import type { ReplicaClient } from './types.js';
import { parseReplicaUrl } from './url.js';

export interface OpenReplicaClientOptions {
  /** S3 only: use this SDK client (its endpoint/credentials/middleware win over the URL's). */
  s3Client?: S3Client;
  /** S3 only: force If-Match quoting (see S3ReplicaClientOptions); default auto-detect. */
  unquoteIfMatch?: boolean;
  /** S3 only: retry policy (attempts, backoff, total time budget). */
  retry?: RetryPolicy;
  /** S3 only: TCP connect timeout in ms (default 3000). */
  connectionTimeoutMs?: number;
  /** S3 only: socket inactivity timeout in ms (default 10000). */
  requestTimeoutMs?: number;
}

/**
 * The one entry point: `s3://bucket/path?...`, `file:///abs/dir` or a directory path to a
 * ReplicaClient. Throws STORAGE_BAD_URL (naming the URL) for anything malformed. Opening does no
 * I/O; the first request reports missing buckets, bad credentials or an unreachable endpoint. The
 * S3 SDK is loaded at the first request of an S3 replica, never for a file replica.
 */
export function openReplicaClient(url: string, options: OpenReplicaClientOptions = {}): ReplicaClient {
  const location = parseReplicaUrl(url);
  if (location.kind === 'file') return new FileReplicaClient(location.root);
  return new LazyS3ReplicaClient(location, options);
}

export { FileReplicaClient } from './file-client.js';
export {
  LTX_NAME_PATTERN,
  ltxFileName,
  MAX_LEVEL,
  parseLtxFileName,
  SNAPSHOT_LEVEL,
} from './keys.js';
export { removeStaleSpools, SpoolFile, spoolChunks } from './local-source.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
// Type-only: importing the class itself would load @aws-sdk/client-s3 with this module (the
// CLI's start-up time). LazyS3ReplicaClient.client() gives the real one; or import ./s3-client.js.
export type { S3ReplicaClient, S3ReplicaClientOptions } from './s3-client.js';
export { LazyS3ReplicaClient } from './s3-lazy.js';
export { emptyStats } from './stats.js';
export { formatRfc3339Nano, LITESTREAM_TIMESTAMP_METADATA, parseRfc3339 } from './timestamp.js';
export type * from './types.js';
export { parseReplicaUrl, type ReplicaLocation, type S3ReplicaLocation } from './url.js';
