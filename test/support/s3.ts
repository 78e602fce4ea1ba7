import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { describe } from 'vitest';
import { openReplicaClient } from '../../src/storage/index.js';
import type { ReplicaClient } from '../../src/storage/types.js';

/**
 * The one place S3 suites learn where the test S3 server is. `npm test` (scripts/run-tests.mjs)
 * starts Ceph RGW and sets S3_ENDPOINT + AWS_* ; when it could not, it sets
 * LTXVFS_S3_SKIP_REASON and S3 suites are skipped with that reason printed.
 * To run one suite against a server you started yourself:
 *   bash scripts/rgw-start.sh && set -a && . .s3-rgw/7480/env && set +a && npx vitest run test/x
 */
export const s3Endpoint: string | undefined = process.env.S3_ENDPOINT ?? process.env.LTXVFS_S3_ENDPOINT;

export const s3Skip: string | undefined = (() => {
  if (process.env.LTXVFS_S3_SKIP_REASON) return process.env.LTXVFS_S3_SKIP_REASON;
  if (!s3Endpoint) {
    return 'no S3 test server: S3_ENDPOINT is not set (use `npm test`, or start scripts/rgw-start.sh and load .s3-rgw/<port>/env)';
  }
  if (!process.env.AWS_ACCESS_KEY_ID || !process.env.AWS_SECRET_ACCESS_KEY) {
    return 'no S3 test credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set';
  }
  return undefined;
})();

if (s3Skip !== undefined && process.env.CI === 'true') {
  throw new Error(`S3 tests cannot run under CI=true: ${s3Skip}`);
}

let warned = false;

/** `describe` when the S3 test server is available; otherwise `describe.skip`, saying why. */
export const describeS3: typeof describe = (() => {
  if (s3Skip === undefined) return describe;
  if (!warned) {
    warned = true;
    console.warn(`[S3 suites skipped] ${s3Skip}`);
  }
  return describe.skip as typeof describe;
})();

/** Environment for child processes (the CLI) that talk to the test server. */
export function s3Env(): Record<string, string> {
  requireS3();
  return {
    S3_ENDPOINT: s3Endpoint as string,
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID as string,
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY as string,
    AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
  };
}

let admin: S3Client | undefined;

/** A plain SDK client for the test server: create buckets, inspect raw keys and metadata. */
export function adminS3Client(): S3Client {
  requireS3();
  admin ??= new S3Client({
    endpoint: s3Endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID as string,
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY as string,
    },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return admin;
}

export interface TestBucket {
  bucket: string;
  /** Key prefix of the replica inside the bucket. */
  path: string;
  /** Replica URL for openReplicaClient and for the CLI (child needs s3Env()). */
  url: string;
  client: ReplicaClient;
}

let bucketCounter = 0;

/**
 * A fresh, empty bucket on the test server, and a replica URL/client for `PATH` inside it.
 * Buckets are not deleted: the server keeps them in RAM and is thrown away after the run.
 */
export async function createTestBucket(
  prefix = 'test',
  options: { path?: string } = {},
): Promise<TestBucket> {
  requireS3();
  const stem =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .slice(0, 30) || 'test';
  const unique = `${process.pid.toString(36)}-${Date.now().toString(36)}-${(bucketCounter++).toString(36)}`;
  const bucket = `${stem}-${unique}`.replace(/-+/g, '-').slice(0, 63);
  await adminS3Client().send(new CreateBucketCommand({ Bucket: bucket }));
  const path = options.path ?? 'replica';
  const url = testReplicaUrl(bucket, path);
  return { bucket, path, url, client: openReplicaClient(url) };
}

/**
 * Replica URL for the test server. RGW compares If-Match with its unquoted ETag, hence
 * unquoteIfMatch=true (production default is to auto-detect).
 */
export function testReplicaUrl(bucket: string, path: string): string {
  requireS3();
  const query = `endpoint=${encodeURIComponent(s3Endpoint as string)}&forcePathStyle=true&region=us-east-1&unquoteIfMatch=true`;
  return `s3://${bucket}/${path}?${query}`;
}

function requireS3(): void {
  if (s3Skip !== undefined) throw new Error(`S3 test server not available: ${s3Skip}`);
}
