import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { isConditionRefusal, s3StatusOf } from './s3-errors.js';
import type { RequestKind } from './stats.js';
import { formatRfc3339Nano, LITESTREAM_TIMESTAMP_METADATA } from './timestamp.js';
import type { ObjectCondition, SmallObject, WriteOptions } from './types.js';

/** Read size of streamed comparisons. */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

/**
 * One logical request with the client's bounded retries, every attempt counted and errors
 * mapped; `attempts.count` tells afterwards how many were sent.
 */
export type S3Send = <T>(
  kind: RequestKind,
  operation: string,
  key: string,
  request: () => Promise<T>,
  alsoRetry?: (err: unknown) => boolean,
  attempts?: { count: number },
) => Promise<T>;

/** What the conditional writes need of the client that runs them. */
export interface ConditionalWriteIo {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly send: S3Send;
  /** `s3://bucket/key`, for messages. */
  describe(key: string): string;
  /** The small object `name` under the replica's path, or null. */
  readObject(name: string): Promise<SmallObject | null>;
  /** Counts bytes stored. */
  written(bytes: number): void;
}

export function unquoteEtag(etag: string): string {
  return etag.replace(/^"(.*)"$/, '$1');
}

/**
 * How If-Match ETags are sent. AWS expects the quoted form; Ceph RGW (and services based on it)
 * compare the raw header with an unquoted ETag and answer 412 to the quoted one. Undefined =
 * auto: send quoted, and learn unquoted the first time a 412 arrives while the ETag we sent is
 * the object's current one.
 */
export class IfMatchQuoting {
  constructor(private unquoted: boolean | undefined) {}

  header(etag: string): string {
    const bare = unquoteEtag(etag);
    return this.unquoted ? bare : `"${bare}"`;
  }

  /** Whether the form is still to be learnt (auto mode, no refusal seen yet). */
  get undecided(): boolean {
    return this.unquoted === undefined;
  }

  learnUnquoted(): void {
    this.unquoted = true;
  }
}

/** One body per attempt: a retried request cannot replay a consumed stream. */
export type BodyFactory = () => { body: Uint8Array | Readable; done?: () => void };
/** Whether a stored object holds our bytes, compared as a stream. */
export type OwnBytesCheck = (stored: AsyncIterable<Uint8Array>) => Promise<boolean> | boolean;

/**
 * One create-only PutObject (If-None-Match: *). `isOurs` tells, after a 412 that followed a
 * retry, whether the stored object is our own earlier attempt that succeeded unseen; any other
 * 412 is STORAGE_EXISTS.
 */
export async function putCreateOnly(
  io: ConditionalWriteIo,
  key: string,
  size: number,
  body: BodyFactory,
  isOurs: OwnBytesCheck,
  options: WriteOptions,
): Promise<void> {
  const attempts = { count: 0 };
  try {
    await io.send(
      'put',
      'create-only write',
      key,
      async () => {
        const attempt = body();
        try {
          await io.s3.send(
            new PutObjectCommand({
              Bucket: io.bucket,
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
      (err) => s3StatusOf(err) === 409,
      attempts,
    );
  } catch (err) {
    if (s3StatusOf(err) !== 412) throw err;
    // After a retry, the 412 may be our own earlier attempt that succeeded unseen.
    if (attempts.count === 1 || !(await holdsBytes(io, key, isOurs))) {
      throw new LtxvfsError(
        'STORAGE_EXISTS',
        `create-only write of ${io.describe(key)}: the object already exists`,
      );
    }
  }
  io.written(size);
}

/**
 * A small object written only if `condition` holds: create-only (If-None-Match: *) or replace
 * (If-Match: etag). A refusal after a retry whose stored bytes are ours is our own earlier
 * attempt; a refusal of the quoted ETag while it is current teaches `quoting` the unquoted form
 * and is retried once (still conditional, so still safe). Any other refusal is
 * STORAGE_CONDITION_FAILED.
 */
export async function putIfCondition(
  io: ConditionalWriteIo,
  quoting: IfMatchQuoting,
  name: string,
  key: string,
  data: Uint8Array,
  condition: ObjectCondition,
): Promise<{ etag: string }> {
  const attempts = { count: 0 };
  const put = (ifMatchHeader?: string) =>
    io.send(
      'put',
      'conditional write',
      key,
      async () => {
        const out = await io.s3.send(
          new PutObjectCommand({
            Bucket: io.bucket,
            Key: key,
            Body: data,
            ContentLength: data.length,
            ...('ifNoneMatch' in condition ? { IfNoneMatch: '*' } : { IfMatch: ifMatchHeader }),
          }),
        );
        return unquoteEtag(out.ETag ?? '');
      },
      undefined,
      attempts,
    );
  const sentEtag = 'ifMatch' in condition ? unquoteEtag(condition.ifMatch) : undefined;
  try {
    const etag = await put('ifMatch' in condition ? quoting.header(condition.ifMatch) : undefined);
    io.written(data.length);
    return { etag };
  } catch (err) {
    if (!isConditionRefusal(err) || isLtxvfsError(err, 'STORAGE_NO_BUCKET')) throw err;
    const current = await io.readObject(name);
    // After a retry, the refusal may be our own earlier attempt that succeeded unseen.
    if (
      attempts.count > 1 &&
      current !== null &&
      current.etag !== sentEtag &&
      equalBytes(current.data, data)
    ) {
      return { etag: current.etag };
    }
    if (sentEtag !== undefined && quoting.undecided && current?.etag === sentEtag) {
      // The ETag we sent is current, yet the server refused it: it wants the unquoted form.
      quoting.learnUnquoted();
      try {
        const etag = await put(sentEtag);
        io.written(data.length);
        return { etag };
      } catch (retryErr) {
        if (!isConditionRefusal(retryErr)) throw retryErr;
      }
    }
    const why = 'ifNoneMatch' in condition ? 'the object exists' : 'the ETag does not match';
    throw new LtxvfsError(
      'STORAGE_CONDITION_FAILED',
      `conditional write of ${io.describe(key)} failed: ${why} (HTTP ${s3StatusOf(err)})`,
      { cause: err },
    );
  }
}

async function holdsBytes(io: ConditionalWriteIo, key: string, isOurs: OwnBytesCheck): Promise<boolean> {
  try {
    return await io.send('get', 'read back', key, async () => {
      const out = await io.s3.send(new GetObjectCommand({ Bucket: io.bucket, Key: key }));
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

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

async function* emptyStream(): AsyncGenerator<Uint8Array> {}

/** Whether a stream holds exactly `data`. */
export async function sameAsBytes(stored: AsyncIterable<Uint8Array>, data: Uint8Array): Promise<boolean> {
  let at = 0;
  for await (const chunk of stored) {
    if (at + chunk.length > data.length || !equalBytes(chunk, data.subarray(at, at + chunk.length)))
      return false;
    at += chunk.length;
  }
  return at === data.length;
}

/** Whether a stream holds exactly the bytes of a local file, read side by side in chunks. */
export async function sameAsLocalFile(stored: AsyncIterable<Uint8Array>, path: string): Promise<boolean> {
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
