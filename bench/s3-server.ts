import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

const run = promisify(execFile);

/** The S3 server the benchmark writes to: one it started itself, or one named by the user. */
export interface BenchS3 {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** "started RGW on port N" or "LTXVFS_S3_ENDPOINT" */
  origin: string;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** The project root (the nearest folder with a package.json), from dist/bench or bench alike. */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

function s3Client(endpoint: string, accessKeyId: string, secretAccessKey: string, region: string): S3Client {
  return new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/**
 * Uses LTXVFS_S3_ENDPOINT when set (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
 * default the test server's AKTEST / SKTEST); otherwise starts Ceph RGW with the project's
 * scripts/rgw-start.sh on ports of its own, so a developer's test server is left alone.
 */
export async function startBenchS3(options: {
  rgwPort: number;
  monPort: number;
  memBytes: number;
}): Promise<BenchS3> {
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID ?? 'AKTEST';
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY ?? 'SKTEST';
  const region = process.env.AWS_REGION ?? 'us-east-1';
  const given = process.env.LTXVFS_S3_ENDPOINT;
  const root = projectRoot();
  const env = {
    ...process.env,
    RGW_PORT: String(options.rgwPort),
    MON_PORT: String(options.monPort),
    RGW_STATE_DIR: path.join(root, '.s3-rgw', `bench-${options.rgwPort}`),
    RGW_MEM_BYTES: String(options.memBytes),
    S3_ACCESS_KEY: accessKeyId,
    S3_SECRET_KEY: secretAccessKey,
  };
  let endpoint: string;
  let origin: string;
  let stop: () => Promise<void>;
  if (given) {
    endpoint = given;
    origin = 'LTXVFS_S3_ENDPOINT';
    stop = async () => {};
  } else {
    try {
      await run('bash', [path.join(root, 'scripts', 'rgw-start.sh')], { env, timeout: 180_000 });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? String(err);
      throw new Error(`could not start the S3 test server (scripts/rgw-start.sh): ${stderr.trim()}`);
    }
    endpoint = `http://127.0.0.1:${options.rgwPort}`;
    origin = `Ceph RGW (memstore) started on port ${options.rgwPort}`;
    stop = async () => {
      await run('bash', [path.join(root, 'scripts', 'rgw-stop.sh')], { env, timeout: 60_000 }).catch(
        () => {},
      );
    };
  }
  const client = s3Client(endpoint, accessKeyId, secretAccessKey, region);
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region,
    origin,
    createBucket: async (name) => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    stop: async () => {
      client.destroy();
      await stop();
    },
  };
}
