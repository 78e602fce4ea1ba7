import { LtxvfsError } from '../util/errors.js';
import { isNetworkError } from './retry.js';

/** The fields of an AWS SDK error this client reads. */
export interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** What a failed request was, for the message of the error it becomes. */
export interface S3RequestTarget {
  /** `read`, `create-only write`, `list level 3`... */
  operation: string;
  /** `s3://bucket/key`. */
  target: string;
  bucket: string;
  /** The endpoint the client talks to; undefined for AWS's default. */
  endpoint: string | undefined;
}

/** Whether another attempt may succeed: network failures, 5xx, 429 and S3's throttling names. */
export function isRetryableS3Error(err: unknown): boolean {
  if (isNetworkError(err)) return true;
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  return e.name === 'SlowDown' || e.name === 'ThrottlingException' || e.name === 'RequestTimeout';
}

/** HTTP status of an SDK error, or of the SDK error an LtxvfsError was made from. */
export function s3StatusOf(err: unknown): number | undefined {
  const cause = err instanceof LtxvfsError ? err.cause : err;
  return (cause as SdkError | undefined)?.$metadata?.httpStatusCode;
}

/** What S3-compatible stores answer to a failed precondition: 412, or 404 / 409 (see README). */
export function isConditionRefusal(err: unknown): boolean {
  const status = s3StatusOf(err);
  return status === 412 || status === 404 || status === 409;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof LtxvfsError && err.code === 'STORAGE_NOT_FOUND';
}

/**
 * The LtxvfsError an SDK error becomes: a code a caller can test (no credentials or access
 * denied, unreachable endpoint, no bucket, no object, anything else STORAGE_IO) and a message
 * naming the operation and the object. The SDK error stays as `cause` (its HTTP status is read
 * from there). LtxvfsErrors pass through unchanged.
 */
export function mapS3Error(err: unknown, request: S3RequestTarget): LtxvfsError {
  if (err instanceof LtxvfsError) return err;
  const { operation, target } = request;
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? e.Code ?? 'Error';
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
      `${operation} ${target}: cannot reach the S3 endpoint ${request.endpoint ?? '(AWS default)'} (${detail})`,
      { cause: err },
    );
  }
  if (name === 'NoSuchBucket') {
    return new LtxvfsError(
      'STORAGE_NO_BUCKET',
      `${operation} ${target}: bucket "${request.bucket}" does not exist`,
      {
        cause: err,
      },
    );
  }
  if (name === 'QuotaExceeded') {
    // Ceph RGW (and MinIO) answer a write beyond a bucket or user quota with 403 QuotaExceeded:
    // the store is full for us, which no credential check will fix.
    return new LtxvfsError(
      'STORAGE_FULL',
      `${operation} ${target}: the store's quota for this bucket or user is exhausted (${detail})`,
      { cause: err },
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
