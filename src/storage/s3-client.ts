import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
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
import { DEFAULT_RETRY_POLICY, isNetworkError, type RetryPolicy, withRetry } from './retry.js';
import { type RequestKind, StatsCounter } from './stats.js';
import { formatRfc3339Nano, LITESTREAM_TIMESTAMP_METADATA, parseRfc3339 } from './timestamp.js';
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
/** Read size of streamed uploads and comparisons. */
const STREAM_CHUNK_BYTES = 1024 * 1024;

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

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
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
  private unquoteIfMatch: boolean | undefined;
  private readonly counter = new StatsCounter();
  private readonly preconnectAgent: PreconnectAgent | undefined;

  constructor(location: S3ReplicaLocation, options: S3ReplicaClientOptions = {}) {
    this.bucket = location.bucket;
    this.path = location.path;
    this.url = `s3://${location.bucket}/${location.path}`;
    this.endpoint = location.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    this.retryPolicy = options.retry ?? DEFAULT_RETRY_POLICY;
    this.unquoteIfMatch = options.unquoteIfMatch ?? location.unquoteIfMatch;
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
    await this.putCreateOnly(
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
    await this.putCreateOnly(
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

  /**
   * One create-only PutObject. `isOurs` tells, after a 412 that followed a retry, whether the
   * stored object is our own earlier attempt that succeeded unseen (compared as a stream).
   */
  private async putCreateOnly(
    key: string,
    size: number,
    body: () => { body: Uint8Array | Readable; done?: () => void },
    isOurs: (stored: AsyncIterable<Uint8Array>) => Promise<boolean> | boolean,
    options: WriteOptions,
  ): Promise<void> {
    const attempts = { count: 0 };
    try {
      await this.send(
        'put',
        'create-only write',
        key,
        async () => {
          const attempt = body();
          try {
            await this.s3.send(
              new PutObjectCommand({
                Bucket: this.bucket,
                Key: key,
                Body: attempt.body,
                ContentLength: size,
                IfNoneMatch: '*',
                Metadata: { [LITESTREAM_TIMESTAMP_METADATA]: formatRfc3339Nano(options.timestamp) },
              }),
            );
          } finally {
            attempt.done?.();
          }
        },
        // AWS answers 409 when another conditional write of the key is in flight: try again.
        (err) => statusOf(err) === 409,
        attempts,
      );
    } catch (err) {
      if (!isStatus(err, 412)) throw err;
      // After a retry, the 412 may be our own earlier attempt that succeeded unseen.
      if (attempts.count === 1 || !(await this.holdsBytes(key, isOurs))) {
        throw new LtxvfsError(
          'STORAGE_EXISTS',
          `create-only write of ${this.describe(key)}: the object already exists`,
        );
      }
    }
    this.counter.written(size);
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
        return { data, etag: unquote(out.ETag ?? '') };
      });
    } catch (err) {
      if (isLtxvfsError404(err)) return null;
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
          return { data, etag: unquote(out.ETag ?? '') };
        } catch (err) {
          if (statusOf(err) === 304) return 'unchanged' as const;
          throw err;
        }
      });
    } catch (err) {
      if (isLtxvfsError404(err)) return null;
      throw err;
    }
  }

  async writeObject(name: string, data: Uint8Array, condition: ObjectCondition): Promise<{ etag: string }> {
    assertObjectName(name);
    const key = `${s3PathPrefix(this.path)}${name}`;
    const attempts = { count: 0 };
    const put = (ifMatchHeader?: string) =>
      this.send(
        'put',
        'conditional write',
        key,
        async () => {
          const out = await this.s3.send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key: key,
              Body: data,
              ContentLength: data.length,
              ...('ifNoneMatch' in condition ? { IfNoneMatch: '*' } : { IfMatch: ifMatchHeader }),
            }),
          );
          return unquote(out.ETag ?? '');
        },
        undefined,
        attempts,
      );
    const sentEtag = 'ifMatch' in condition ? unquote(condition.ifMatch) : undefined;
    try {
      const etag = await put('ifMatch' in condition ? this.ifMatchHeader(condition.ifMatch) : undefined);
      this.counter.written(data.length);
      return { etag };
    } catch (err) {
      if (!isConditionStatus(err) || isLtxvfsError(err, 'STORAGE_NO_BUCKET')) throw err;
      const current = await this.readObject(name);
      // After a retry, the refusal may be our own earlier attempt that succeeded unseen.
      if (
        attempts.count > 1 &&
        current !== null &&
        current.etag !== sentEtag &&
        equalBytes(current.data, data)
      ) {
        return { etag: current.etag };
      }
      if (sentEtag !== undefined && this.unquoteIfMatch === undefined && current?.etag === sentEtag) {
        // The ETag we sent is current, yet the server refused it: it wants the unquoted form.
        this.unquoteIfMatch = true;
        try {
          const etag = await put(sentEtag);
          this.counter.written(data.length);
          return { etag };
        } catch (retryErr) {
          if (!isConditionStatus(retryErr)) throw retryErr;
        }
      }
      const why = 'ifNoneMatch' in condition ? 'the object exists' : 'the ETag does not match';
      throw new LtxvfsError(
        'STORAGE_CONDITION_FAILED',
        `conditional write of ${this.describe(key)} failed: ${why} (HTTP ${statusOf(err)})`,
        { cause: err },
      );
    }
  }

  async deleteObject(name: string, condition?: { ifMatch: string }): Promise<void> {
    assertObjectName(name);
    const key = `${s3PathPrefix(this.path)}${name}`;
    if (condition) {
      // Not every S3-compatible server enforces If-Match on DELETE: check first, then send it too.
      const current = await this.readObject(name);
      if (current === null) return;
      if (current.etag !== unquote(condition.ifMatch)) {
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
            ...(condition ? { IfMatch: this.ifMatchHeader(condition.ifMatch) } : {}),
          }),
        ),
      );
    } catch (err) {
      if (isLtxvfsError404(err)) return;
      if (condition && isConditionStatus(err) && !isLtxvfsError(err, 'STORAGE_NO_BUCKET')) {
        throw new LtxvfsError(
          'STORAGE_CONDITION_FAILED',
          `conditional delete of ${this.describe(key)} failed: the ETag does not match (HTTP ${statusOf(err)})`,
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

  private ifMatchHeader(etag: string): string {
    const bare = unquote(etag);
    return this.unquoteIfMatch ? bare : `"${bare}"`;
  }

  private async holdsBytes(
    key: string,
    isOurs: (stored: AsyncIterable<Uint8Array>) => Promise<boolean> | boolean,
  ): Promise<boolean> {
    try {
      return await this.send('get', 'read back', key, async () => {
        const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
        const stream = out.Body as Readable | undefined;
        if (!stream) return isOurs(emptyStream());
        try {
          return await isOurs(stream);
        } finally {
          stream.destroy();
        }
      });
    } catch {
      return false;
    }
  }

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
        (err) => isRetryable(err) || alsoRetry(err),
        this.retryPolicy,
      );
    } catch (err) {
      throw this.mapError(err, operation, key);
    }
  }

  private mapError(err: unknown, operation: string, key: string): LtxvfsError {
    if (err instanceof LtxvfsError) return err;
    const e = (err ?? {}) as SdkError;
    const status = e.$metadata?.httpStatusCode;
    const name = e.name ?? e.Code ?? 'Error';
    const target = this.describe(key);
    const detail = `${status !== undefined ? `HTTP ${status} ` : ''}${name}${e.message && e.message !== name ? `: ${e.message}` : ''}`;
    if (name === 'CredentialsProviderError') {
      return new LtxvfsError(
        'STORAGE_ACCESS_DENIED',
        `${operation} ${target}: no AWS credentials found; set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (${detail})`,
        { cause: err },
      );
    }
    if (isNetworkError(err)) {
      return new LtxvfsError(
        'STORAGE_UNREACHABLE',
        `${operation} ${target}: cannot reach the S3 endpoint ${this.endpoint ?? '(AWS default)'} (${detail})`,
        { cause: err },
      );
    }
    if (name === 'NoSuchBucket') {
      return new LtxvfsError(
        'STORAGE_NO_BUCKET',
        `${operation} ${target}: bucket "${this.bucket}" does not exist`,
        {
          cause: err,
        },
      );
    }
    if (
      status === 403 ||
      name === 'InvalidAccessKeyId' ||
      name === 'SignatureDoesNotMatch' ||
      name === 'AccessDenied'
    ) {
      return new LtxvfsError(
        'STORAGE_ACCESS_DENIED',
        `${operation} ${target}: access denied; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (${detail})`,
        { cause: err },
      );
    }
    if (status === 404 || name === 'NoSuchKey' || name === 'NotFound') {
      return new LtxvfsError('STORAGE_NOT_FOUND', `${operation} ${target}: no such object (${detail})`, {
        cause: err,
      });
    }
    return new LtxvfsError('STORAGE_IO', `${operation} ${target} failed: ${detail}`, { cause: err });
  }
}

function isRetryable(err: unknown): boolean {
  if (isNetworkError(err)) return true;
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  return e.name === 'SlowDown' || e.name === 'ThrottlingException' || e.name === 'RequestTimeout';
}

function statusOf(err: unknown): number | undefined {
  const cause = err instanceof LtxvfsError ? err.cause : err;
  return (cause as SdkError | undefined)?.$metadata?.httpStatusCode;
}

function isStatus(err: unknown, status: number): boolean {
  return statusOf(err) === status;
}

/** What S3-compatible stores answer to a failed precondition: 412, or 404 / 409 (see README). */
function isConditionStatus(err: unknown): boolean {
  const status = statusOf(err);
  return status === 412 || status === 404 || status === 409;
}

function isLtxvfsError404(err: unknown): boolean {
  return err instanceof LtxvfsError && err.code === 'STORAGE_NOT_FOUND';
}

function unquote(etag: string): string {
  return etag.replace(/^"(.*)"$/, '$1');
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

async function* emptyStream(): AsyncGenerator<Uint8Array> {}

async function sameAsBytes(stored: AsyncIterable<Uint8Array>, data: Uint8Array): Promise<boolean> {
  let at = 0;
  for await (const chunk of stored) {
    if (at + chunk.length > data.length || !equalBytes(chunk, data.subarray(at, at + chunk.length)))
      return false;
    at += chunk.length;
  }
  return at === data.length;
}

/** Whether a stream holds exactly the bytes of a local file, read side by side in chunks. */
async function sameAsLocalFile(stored: AsyncIterable<Uint8Array>, path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const local = Buffer.allocUnsafe(STREAM_CHUNK_BYTES);
    let position = 0;
    for await (const chunk of stored) {
      for (let at = 0; at < chunk.length; ) {
        const want = Math.min(local.length, chunk.length - at);
        const { bytesRead } = await handle.read(local, 0, want, position);
        if (bytesRead === 0 || !local.subarray(0, bytesRead).equals(chunk.subarray(at, at + bytesRead)))
          return false;
        at += bytesRead;
        position += bytesRead;
      }
    }
    const { bytesRead } = await handle.read(local, 0, 1, position);
    return bytesRead === 0;
  } finally {
    await handle.close();
  }
}

async function readBody(body: unknown): Promise<Uint8Array> {
  if (body === undefined || body === null) return new Uint8Array(0);
  return (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
}
