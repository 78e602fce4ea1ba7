import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openReplicaClient, parseReplicaUrl } from '../src/storage/index.js';
import { isLtxvfsError } from '../src/util/errors.js';

describe('replica URLs', () => {
  it('parses s3 URLs with and without options', () => {
    expect(parseReplicaUrl('s3://my-bucket/some/db')).toEqual({
      kind: 's3',
      bucket: 'my-bucket',
      path: 'some/db',
    });
    expect(parseReplicaUrl('s3://my-bucket')).toEqual({ kind: 's3', bucket: 'my-bucket', path: '' });
    expect(parseReplicaUrl('s3://my-bucket/')).toEqual({ kind: 's3', bucket: 'my-bucket', path: '' });
    expect(parseReplicaUrl('s3://my.bucket.1/db/')).toEqual({
      kind: 's3',
      bucket: 'my.bucket.1',
      path: 'db',
    });
    expect(
      parseReplicaUrl(
        's3://b-1/x?endpoint=http%3A%2F%2F127.0.0.1%3A7480&region=eu-west-1&forcePathStyle=true&unquoteIfMatch=1',
      ),
    ).toEqual({
      kind: 's3',
      bucket: 'b-1',
      path: 'x',
      endpoint: 'http://127.0.0.1:7480',
      region: 'eu-west-1',
      forcePathStyle: true,
      unquoteIfMatch: true,
    });
    expect(parseReplicaUrl('s3://bkt/x?endpoint=https://s3.example.com/&forcePathStyle=false')).toMatchObject(
      {
        endpoint: 'https://s3.example.com',
        forcePathStyle: false,
      },
    );
  });

  it('parses file URLs and plain directories', () => {
    expect(parseReplicaUrl('file:///var/lib/replica')).toEqual({ kind: 'file', root: '/var/lib/replica' });
    expect(parseReplicaUrl('file://localhost/var/lib/replica/')).toEqual({
      kind: 'file',
      root: '/var/lib/replica',
    });
    expect(parseReplicaUrl('file:///tmp/with%20space')).toEqual({ kind: 'file', root: '/tmp/with space' });
    expect(parseReplicaUrl('/abs/dir')).toEqual({ kind: 'file', root: '/abs/dir' });
    expect(parseReplicaUrl('rel/dir')).toEqual({ kind: 'file', root: resolve(process.cwd(), 'rel/dir') });
    expect(parseReplicaUrl('./a:b')).toEqual({ kind: 'file', root: resolve(process.cwd(), 'a:b') });
    expect(openReplicaClient('/abs/dir').url).toBe('file:///abs/dir');
  });

  const malformed: [url: string, mentions: string][] = [
    ['', 'empty'],
    ['s3://', 'bucket'],
    ['s3:///path-only', 'bucket'],
    ['s3://Upper_Case/db', 'Upper_Case'],
    ['s3://ab/db', '"ab"'],
    ['s3://bucket:9000/db', 'port'],
    ['s3://key:secret@bucket/db', 'credentials'],
    ['s3://bucket/a/../b', '".."'],
    ['s3://bucket/a//b', 'segments'],
    ['s3://bucket/%2e%2e/b', '".."'],
    ['s3://bucket/db?endpont=http://x', 'endpont'],
    ['s3://bucket/db?endpoint=ftp://host', 'ftp://host'],
    ['s3://bucket/db?endpoint=not a url', 'endpoint'],
    ['s3://bucket/db?forcePathStyle=yes', 'forcePathStyle'],
    ['s3://bucket/db?region=EU WEST', 'region'],
    ['s3:bucket/db', 's3://'],
    ['gs://bucket/db', 'unsupported scheme'],
    ['https://bucket.s3.amazonaws.com/db', 'unsupported scheme'],
    ['file://otherhost/dir', 'otherhost'],
    ['file:///dir?x=1', 'query'],
    ['file:relative/dir', 'file://'],
  ];

  it.each(malformed)('rejects %j with STORAGE_BAD_URL naming the URL', (url, mentions) => {
    let caught: unknown;
    try {
      openReplicaClient(url);
    } catch (err) {
      caught = err;
    }
    expect(isLtxvfsError(caught, 'STORAGE_BAD_URL')).toBe(true);
    const message = (caught as Error).message;
    expect(message).toContain(`"${url}"`);
    expect(message).toContain(mentions);
  });
});
