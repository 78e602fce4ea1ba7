import { createReadStream } from 'node:fs';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
} from '@aws-sdk/client-s3';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid } from '../util/txid.js';
import {
  assertFileRef,
  assertLevel,
  assertObjectName,
  parseLtxFileName,
  parseS3LevelSegment,
  s3LevelPrefix,
  s3LtxKey,
  s3PathPrefix,
} from './keys.js';
import { checkLocalSource } from './local-source.js';
import { makePreconnectAgent, type Origin, type PreconnectAgent } from './preconnect-agent.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetry } from './retry.js';
import {
  type ConditionalWriteIo,
  IfMatchQuoting,
  putCreateOnly,
  putIfCondition,
  STREAM_CHUNK_BYTES,
  sameAsBytes,
  sameAsLocalFile,
  unquoteEtag,
} from './s3-conditional.js';
import {
  isConditionRefusal,
  isNotFound,
  isRetryableS3Error,
  mapS3Error,
  type SdkError,
  s3StatusOf,
} from './s3-errors.js';
import { type RequestKind, StatsCounter } from './stats.js';
import { LITESTREAM_TIMESTAMP_METADATA, parseRfc3339 } from './timestamp.js';
import type {
  ListOptions,
  LocalFileSource,
  LtxFileInfo,
  LtxFileRef,
  ObjectCondition,
  ReplicaClient,
  RequestStats,
  SmallObject,
  WriteOptions,
} from './types.js';
import type { S3ReplicaLocation } from './url.js';

/** The origin requests go to, when it can be told from the settings (else no preconnecting). */
function requestOrigin(
  endpoint: string | undefined,
  bucket: string,
  region: string,
  pathStyle: boolean,
): Origin | undefined {
  let url: URL;
  try {
    url = new URL(endpoint ?? `https://s3.${region}.amazonaws.com`);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const host = pathStyle ? url.hostname : `${bucket}.${url.hostname}`;
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  return { protocol: url.protocol, host, port };
}

// The pinned SDK warns on every process start that future versions will need Node 22; the
// project pins that SDK on purpose, and the warning would break the CLI's one-line stderr.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const DELETE_BATCH = 1000;
const HEAD_CONCURRENCY = 16;
/** The largest object one PutObject may create (S3's limit). */
const MAX_PUT_BYTES = 5 * 1024 ** 3;
const SILENT_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export interface S3ReplicaClientOptions {
  /** Use this client instead of building one (the caller keeps ownership; close() leaves it open). */
  s3Client?: S3Client;
  /**
   * Send If-Match ETags without quotes. AWS expects the quoted form; Ceph RGW (and services based
   * on it) compare the raw header with an unquoted ETag and answer 412 to the quoted one.
   * Undefined = auto: send quoted, and if a 412 arrives while the object's ETag is the one we
   * sent, switch to unquoted for this client and retry once (still conditional, so still safe).
   */
  unquoteIfMatch?: boolean;
  retry?: RetryPolicy;
  /** Milliseconds to wait for a TCP connection (default 3000). */
  connectionTimeoutMs?: number;
  /** Milliseconds of socket inactivity (no byte sent or received) before a request fails (default 10000). */
  requestTimeoutMs?: number;
  /** Milliseconds from the start of a request to the response headers, upload included (default 300000). */
  firstByteTimeoutMs?: number;
}

/**
 * A replica in an S3-compatible bucket, in Litestream's S3 layout:
 * `PATH/<level as 4 hex>/<min>-<max>.ltx`, small objects at `PATH/<name>`.
 */
export class S3ReplicaClient implements ReplicaClient {
  readonly url: string;
  readonly bucket: string;
  readonly path: string;
  readonly endpoint: string | undefined;
  private readonly s3: S3Client;
  private readonly ownsClient: boolean;
  private readonly retryPolicy: RetryPolicy;
  private readonly quoting: IfMatchQuoting;
  private readonly counter = new StatsCounter();
  private readonly io: ConditionalWriteIo;
  private readonly preconnectAgent: PreconnectAgent | undefined;

  constructor(location: S3ReplicaLocation, options: S3ReplicaClientOptions = {}) {
    this.bucket = location.bucket;
    this.path = location.path;
    this.url = `s3://${location.bucket}/${location.path}`;
    this.endpoint = location.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    this.retryPolicy = options.retry ?? DEFAULT_RETRY_POLICY;
    this.quoting = new IfMatchQuoting(options.unquoteIfMatch ?? location.unquoteIfMatch);
    if (options.s3Client) {
      this.s3 = options.s3Client;
      this.ownsClient = false;
    } else {
      const region =
        location.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
      const pathStyle = location.forcePathStyle ?? this.endpoint !== undefined;
      const origin = requestOrigin(this.endpoint, this.bucket, region, pathStyle);
      const agent = origin === undefined ? undefined : makePreconnectAgent(origin);
      this.preconnectAgent = agent;
      this.s3 = new S3Client({
        region,
        ...(this.endpoint !== undefined ? { endpoint: this.endpoint } : {}),
        // A custom endpoint is almost always a self-hosted store without virtual-host DNS.
        forcePathStyle: pathStyle,
        // Default checksums turn stream bodies into aws-chunked uploads that several
        // S3-compatible servers reject or store verbatim.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        // Retries are ours (retry.ts): bounded in time, and aware of conditional writes.
        maxAttempts: 1,
        // With its default (no-op) logger the SDK prints a warning on the console whenever a
        // streamed upload fails, a 412 of a create-only write included; errors reach us anyway.
        logger: SILENT_LOGGER,
        // Every request is bounded (a store that accepts and never answers must not hang us):
        // connect, inactivity (socketTimeout) and time to the response headers (requestTimeout,
        // which only warns unless throwOnRequestTimeout). All three fail as network errors and
        // are retried like any.
        requestHandler: {
          connectionTimeout: options.connectionTimeoutMs ?? 3_000,
          socketTimeout: options.requestTimeoutMs ?? 10_000,
          requestTimeout: options.firstByteTimeoutMs ?? 300_000,
          throwOnRequestTimeout: true,
          ...(agent?.handlerOptions ?? {}),
        },
      });
      this.ownsClient = true;
    }
    this.io = {
      s3: this.s3,
      bucket: this.bucket,
      send: (kind, operation, key, request, alsoRetry, attempts) =>
        this.send(kind, operation, key, request, alsoRetry, attempts),
      describe: (key) => this.describe(key),
      readObject: (name) => this.readObject(name),
      written: (bytes) => this.counter.written(bytes),
    };
  }

  preconnect(sockets: number): void {
    this.preconnectAgent?.preconnect(sockets);
  }

  async levels(): Promise<number[]> {
    const prefix = s3PathPrefix(this.path);
    const levels = new Set<number>();
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.send('list', 'list levels', prefix, () =>
        this.s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            Delimiter: '/',
            ContinuationToken: token,
          }),
        ),
      );
      for (const common of page.CommonPrefixes ?? []) {
        const segment = (common.Prefix ?? '').slice(prefix.length).replace(/\/$/, '');
        const level = parseS3LevelSegment(segment);
        if (level !== null) levels.add(level);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    // A prefix holding only other objects is not a level (same rule as the file backend).
    const withLtx = await Promise.all(
      [...levels].map(async (level) => ((await this.hasLtxFile(level)) ? level : -1)),
    );
    return withLtx.filter((level) => level >= 0).sort((a, b) => a - b);
  }

  private async hasLtxFile(level: number): Promise<boolean> {
    const prefix = s3LevelPrefix(this.path, level);
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.send('list', `list level ${level}`, prefix, () =>
        this.s3.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        ),
      );
      if ((page.Contents ?? []).some((o) => parseLtxFileName((o.Key ?? '').slice(prefix.length)) !== null)) {
        return true;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return false;
  }

  async listAll(): Promise<LtxFileInfo[]> {
    const prefix = s3PathPrefix(this.path);
    const files: LtxFileInfo[] = [];
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.send('list', 'list all levels', prefix, () =>
        this.s3.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        ),
      );
      for (const object of page.Contents ?? []) {
        const rest = (object.Key ?? '').slice(prefix.length);
        const slash = rest.indexOf('/');
        if (slash < 0) continue;
        const level = parseS3LevelSegment(rest.slice(0, slash));
        const txids = level === null ? null : parseLtxFileName(rest.slice(slash + 1));
        if (level === null || txids === null) continue;
        files.push({
          level,
          ...txids,
          size: object.Size ?? 0,
          createdAt: object.LastModified ?? new Date(0),
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    files.sort((a, b) => a.level - b.level || a.minTxid - b.minTxid || a.maxTxid - b.maxTxid);
    return files;
  }

  async listFiles(level: number, options: ListOptions = {}): Promise<LtxFileInfo[]> {
    assertLevel(level);
    const prefix = s3LevelPrefix(this.path, level);
    const fromTxid = options.fromTxid ?? 0;
    // Keys sort by name, and names sort by (minTxid, maxTxid): start after the largest possible
    // name below fromTxid so the server skips what we would filter out anyway.
    const startAfter = fromTxid > 0 ? `${prefix}${formatTxid(fromTxid - 1)}-ffffffffffffffff.ltx` : undefined;
    const files: LtxFileInfo[] = [];
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.send('list', `list level ${level}`, prefix, () =>
        this.s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ContinuationToken: token,
            ...(token === undefined && startAfter !== undefined ? { StartAfter: startAfter } : {}),
          }),
        ),
      );
      for (const object of page.Contents ?? []) {
        const name = (object.Key ?? '').slice(prefix.length);
        const txids = parseLtxFileName(name);
        if (!txids || txids.minTxid < fromTxid) continue;
        files.push({
          level,
          ...txids,
          size: object.Size ?? 0,
          createdAt: object.LastModified ?? new Date(0),
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    files.sort((a, b) => a.minTxid - b.minTxid || a.maxTxid - b.maxTxid);
    if (options.metadata) await this.fillTimestamps(files);
    return files;
  }

  /** createdAt from each object's `litestream-timestamp` (one HEAD each), as Litestream's restore does. */
  private async fillTimestamps(files: LtxFileInfo[]): Promise<void> {
    for (let i = 0; i < files.length; i += HEAD_CONCURRENCY) {
      await Promise.all(
        files.slice(i, i + HEAD_CONCURRENCY).map(async (file) => {
          const key = s3LtxKey(this.path, file);
          const head = await this.send('head', 'head', key, () =>
            this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })),
          );
          const stamp = head.Metadata?.[LITESTREAM_TIMESTAMP_METADATA];
          if (stamp !== undefined) {
            try {
              file.createdAt = parseRfc3339(stamp);
            } catch {
              // Not written by Litestream or ltxvfs: keep LastModified.
            }
          }
        }),
      );
    }
  }

  async readRange(file: LtxFileRef, offset: number, length: number): Promise<Uint8Array> {
    assertFileRef(file);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new LtxvfsError('BAD_ARGUMENT', `invalid byte range: offset ${offset}, length ${length}`);
    }
    if (length === 0) return new Uint8Array(0);
    const key = s3LtxKey(this.path, file);
    const what = `read range [${offset}, ${offset + length})`;
    try {
      return await this.send('get', what, key, async () => {
        const out = await this.s3.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Range: `bytes=${offset}-${offset + length - 1}`,
          }),
        );
        const bytes = await readBody(out.Body);
        this.counter.read(bytes.length);
        return bytes.length > length ? bytes.subarray(0, length) : bytes;
      });
    } catch (err) {
      // 416: the range starts at or past the end; like a short read of a file, that is no bytes.
      if (
        err instanceof LtxvfsError &&
        (err.cause as SdkError | undefined)?.$metadata?.httpStatusCode === 416
      ) {
        return new Uint8Array(0);
      }
      throw err;
    }
  }

  async readFile(file: LtxFileRef): Promise<Uint8Array> {
    assertFileRef(file);
    const key = s3LtxKey(this.path, file);
    return this.send('get', 'read', key, async () => {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const bytes = await readBody(out.Body);
      this.counter.read(bytes.length);
      return bytes;
    });
  }

  async writeFile(file: LtxFileRef, data: Uint8Array, options: WriteOptions): Promise<LtxFileInfo> {
    assertFileRef(file);
    const key = s3LtxKey(this.path, file);
    await putCreateOnly(
      this.io,
      key,
      data.length,
      () => ({ body: data }),
      (stored) => sameAsBytes(stored, data),
      options,
    );
    return { ...file, size: data.length, createdAt: options.timestamp };
  }

  async writeFileFrom(
    file: LtxFileRef,
    source: LocalFileSource,
    options: WriteOptions,
  ): Promise<LtxFileInfo> {
    assertFileRef(file);
    const key = s3LtxKey(this.path, file);
    if (source.size > MAX_PUT_BYTES) {
      throw new LtxvfsError(
        'STORAGE_TOO_LARGE',
        `create-only write of ${this.describe(key)}: ${source.size} bytes is more than the 5 GiB one PutObject can hold (a multipart upload is not create-only on every S3 server: Ceph RGW ignores If-None-Match on CompleteMultipartUpload)`,
      );
    }
    await checkLocalSource(source);
    await putCreateOnly(
      this.io,
      key,
      source.size,
      () => {
        // A fresh stream per attempt: a retried request cannot replay a consumed one.
        const stream = createReadStream(source.path, { highWaterMark: STREAM_CHUNK_BYTES });
        return { body: stream, done: () => stream.destroy() };
      },
      (stored) => sameAsLocalFile(stored, source.path),
      options,
    );
    return { ...file, size: source.size, createdAt: options.timestamp };
  }

  async deleteFiles(files: LtxFileRef[]): Promise<void> {
    for (const file of files) assertFileRef(file);
    for (let i = 0; i < files.length; i += DELETE_BATCH) {
      const keys = files.slice(i, i + DELETE_BATCH).map((f) => s3LtxKey(this.path, f));
      const out = await this.send('delete', `delete ${keys.length} objects`, keys[0] ?? '', () =>
        this.s3.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
      );
      const failures = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      const [first] = failures;
      if (first !== undefined) {
        throw new LtxvfsError(
          first.Code === 'AccessDenied' ? 'STORAGE_ACCESS_DENIED' : 'STORAGE_IO',
          `delete ${this.describe(first.Key ?? '?')} failed: ${first.Code} ${first.Message ?? ''}`.trim() +
            (failures.length > 1 ? ` (and ${failures.length - 1} more keys)` : ''),
        );
      }
    }
  }

  async readObject(name: string): Promise<SmallObject | null> {
    assertObjectName(name);
    const key = `${s3PathPrefix(this.path)}${name}`;
    try {
      return await this.send('get', 'read', key, async () => {
        const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
        const data = await readBody(out.Body);
        this.counter.read(data.length);
        return { data, etag: unquoteEtag(out.ETag ?? '') };
      });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async readObjectIfChanged(
    name: string,
    etag: string | undefined,
  ): Promise<SmallObject | null | 'unchanged'> {
    assertObjectName(name);
    const key = `${s3PathPrefix(this.path)}${name}`;
    try {
      return await this.send('get', 'read', key, async () => {
        try {
          const out = await this.s3.send(
            new GetObjectCommand({
              Bucket: this.bucket,
              Key: key,
              ...(etag !== undefined ? { IfNoneMatch: `"${etag}"` } : {}),
            }),
          );
          const data = await readBody(out.Body);
          this.counter.read(data.length);
          return { data, etag: unquoteEtag(out.ETag ?? '') };
        } catch (err) {
          if (s3StatusOf(err) === 304) return 'unchanged' as const;
          throw err;
        }
      });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async writeObject(name: string, data: Uint8Array, condition: ObjectCondition): Promise<{ etag: string }> {
    assertObjectName(name);
    return putIfCondition(this.io, this.quoting, name, `${s3PathPrefix(this.path)}${name}`, data, condition);
  }

  async deleteObject(name: string, condition?: { ifMatch: string }): Promise<void> {
    assertObjectName(name);
    const key = `${s3PathPrefix(this.path)}${name}`;
    if (condition) {
      // Not every S3-compatible server enforces If-Match on DELETE: check first, then send it too.
      const current = await this.readObject(name);
      if (current === null) return;
      if (current.etag !== unquoteEtag(condition.ifMatch)) {
        throw new LtxvfsError(
          'STORAGE_CONDITION_FAILED',
          `conditional delete of ${this.describe(key)} failed: the ETag does not match`,
        );
      }
    }
    try {
      await this.send('delete', 'delete', key, () =>
        this.s3.send(
          new DeleteObjectCommand({
            Bucket: this.bucket,
            Key: key,
            ...(condition ? { IfMatch: this.quoting.header(condition.ifMatch) } : {}),
          }),
        ),
      );
    } catch (err) {
      if (isNotFound(err)) return;
      if (condition && isConditionRefusal(err) && !isLtxvfsError(err, 'STORAGE_NO_BUCKET')) {
        throw new LtxvfsError(
          'STORAGE_CONDITION_FAILED',
          `conditional delete of ${this.describe(key)} failed: the ETag does not match (HTTP ${s3StatusOf(err)})`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  stats(): RequestStats {
    return this.counter.snapshot();
  }

  resetStats(): void {
    this.counter.reset();
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.s3.destroy();
  }

  // --- internals ----------------------------------------------------------------------------

  private describe(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /**
   * One logical request with bounded retries; every attempt is counted. SDK errors become
   * LtxvfsErrors naming the operation, the bucket/key and (for network failures) the endpoint;
   * the SDK error stays as `cause` so callers can read its HTTP status.
   */
  private async send<T>(
    kind: RequestKind,
    operation: string,
    key: string,
    request: () => Promise<T>,
    alsoRetry: (err: unknown) => boolean = () => false,
    attempts: { count: number } = { count: 0 },
  ): Promise<T> {
    try {
      return await withRetry(
        () => {
          attempts.count++;
          this.counter.count(kind);
          return request();
        },
        (err) => isRetryableS3Error(err) || alsoRetry(err),
        this.retryPolicy,
      );
    } catch (err) {
      throw mapS3Error(err, {
        operation,
        target: this.describe(key),
        bucket: this.bucket,
        endpoint: this.endpoint,
      });
    }
  }
}

async function readBody(body: unknown): Promise<Uint8Array> {
  if (body === undefined || body === null) return new Uint8Array(0);
  return (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
}
