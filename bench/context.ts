import type { Dataset } from './datasets.js';
import type { LatencyProxy } from './proxy.js';
import type { BenchS3 } from './s3-server.js';

/**
 * What run.ts hands every bench section: the mode, the S3 server and the latency proxy in front
 * of it, the datasets and the network settings. Its own file so sections need not import run.ts,
 * which imports them.
 */
export interface BenchContext {
  mode: 'quick' | 'full';
  workDir: string;
  s3: BenchS3;
  /** Readers go through this; uploads and setup go straight to the server. */
  proxy: LatencyProxy;
  datasets: Dataset[];
  rttMs: number;
  bandwidthBytesPerSec: number;
  readers: number[];
  log: (line: string) => void;
  /** `s3://bucket/prefix?...` through the proxy (`proxied`) or straight to the server. */
  replicaUrl(bucket: string, prefix: string, proxied: boolean): string;
}
