import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LtxvfsError } from '../util/errors.js';

export interface FileReplicaLocation {
  kind: 'file';
  /** Absolute directory. */
  root: string;
}

export interface S3ReplicaLocation {
  kind: 's3';
  bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket root. */
  path: string;
  /** From `?endpoint=`; undefined means the SDK's / environment's default. */
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  /** From `?unquoteIfMatch=`; undefined means auto-detect. */
  unquoteIfMatch?: boolean;
}

export type ReplicaLocation = FileReplicaLocation | S3ReplicaLocation;

const S3_QUERY_KEYS = ['endpoint', 'region', 'forcePathStyle', 'unquoteIfMatch'] as const;

/**
 * Replica URL forms: `s3://bucket/path[?endpoint=&region=&forcePathStyle=&unquoteIfMatch=]`,
 * `file:///abs/dir`, or a plain directory path (relative to the working directory).
 */
export function parseReplicaUrl(url: string): ReplicaLocation {
  const bad = (why: string): never => {
    throw new LtxvfsError('STORAGE_BAD_URL', `invalid replica URL "${url}": ${why}`);
  };
  if (typeof url !== 'string' || url.trim() === '') bad('empty');
  if (url.includes('\0')) bad('contains a NUL byte');

  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  // A bare `C:`-like prefix or a path with a colon later on is still a plain path; only
  // `scheme://` is a URL.
  if (scheme === undefined || !url.slice(scheme.length + 1).startsWith('//')) {
    if (scheme === 's3' || scheme === 'file') bad(`expected "${scheme}://..."`);
    return { kind: 'file', root: resolve(url) };
  }
  if (scheme === 'file') return parseFileUrl(url, bad);
  if (scheme === 's3') return parseS3Url(url, bad);
  return bad(`unsupported scheme "${scheme}:" (use s3://bucket/path, file:///abs/dir, or a directory path)`);
}

function parseFileUrl(url: string, bad: (why: string) => never): FileReplicaLocation {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return bad('not a valid file URL');
  }
  if (parsed.host !== '' && parsed.host !== 'localhost')
    bad(`file URLs must not name a host ("${parsed.host}")`);
  if (parsed.search !== '' || parsed.hash !== '') bad('file URLs take no query or fragment');
  let root: string;
  try {
    root = fileURLToPath(parsed);
  } catch (err) {
    return bad((err as Error).message);
  }
  if (!isAbsolute(root)) bad('file URLs need an absolute directory');
  return { kind: 'file', root: resolve(root) };
}

function parseS3Url(url: string, bad: (why: string) => never): S3ReplicaLocation {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return bad('not a valid s3 URL');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    bad('credentials do not belong in the URL; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY');
  }
  if (parsed.port !== '') bad('an s3 URL has no port; put the endpoint in ?endpoint=http://host:port');
  if (parsed.hash !== '') bad('s3 URLs take no fragment');
  const bucket = parsed.hostname;
  if (bucket === '') bad('missing bucket name (s3://bucket/path)');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    bad(`"${bucket}" is not a valid bucket name (3-63 of a-z 0-9 . -)`);
  }

  // The raw text, not parsed.pathname: WHATWG URL parsing silently resolves `a/../b` to `b`.
  const rawPath = /^[^:]+:\/\/[^/?#]*([^?#]*)/.exec(url)?.[1] ?? '';
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return bad('path is not valid percent-encoding');
  }
  path = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (path !== '' && path.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    bad(`path "${path}" has empty, "." or ".." segments`);
  }

  const location: S3ReplicaLocation = { kind: 's3', bucket, path };
  for (const key of parsed.searchParams.keys()) {
    if (!(S3_QUERY_KEYS as readonly string[]).includes(key)) {
      bad(`unknown query parameter "${key}" (known: ${S3_QUERY_KEYS.join(', ')})`);
    }
  }
  const endpoint = parsed.searchParams.get('endpoint');
  if (endpoint !== null) {
    let endpointUrl: URL | undefined;
    try {
      endpointUrl = new URL(endpoint);
    } catch {
      endpointUrl = undefined;
    }
    if (!endpointUrl || (endpointUrl.protocol !== 'http:' && endpointUrl.protocol !== 'https:')) {
      bad(`endpoint "${endpoint}" is not an http(s) URL`);
    }
    location.endpoint = endpoint.replace(/\/+$/, '');
  }
  const region = parsed.searchParams.get('region');
  if (region !== null) {
    if (!/^[a-z0-9-]+$/.test(region)) bad(`region "${region}" is not a region name`);
    location.region = region;
  }
  const forcePathStyle = parsed.searchParams.get('forcePathStyle');
  if (forcePathStyle !== null) location.forcePathStyle = parseBool('forcePathStyle', forcePathStyle, bad);
  const unquote = parsed.searchParams.get('unquoteIfMatch');
  if (unquote !== null) location.unquoteIfMatch = parseBool('unquoteIfMatch', unquote, bad);
  return location;
}

function parseBool(name: string, value: string, bad: (why: string) => never): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return bad(`${name} must be true or false, not "${value}"`);
}
