import { describe, expect, it } from 'vitest';
import {
  decodeManifest,
  encodeManifest,
  HOT_PAGES_OBJECT,
  inlineIndexBytes,
  isManifestFresh,
  MANIFEST_INLINE_INDEX_MAX,
  MANIFEST_OBJECT,
  type Manifest,
  validateManifest,
} from '../src/ltx/manifest.js';
import { xxh32 } from '../src/ltx/xxh32.js';
import { isLtxvfsError } from '../src/util/errors.js';

// Every rule of the manifest format (README "Manifest"; src/ltx/manifest.ts's contract): each
// broken manifest is one MANIFEST_INVALID naming its source and what is wrong.

function sample(): Manifest {
  return {
    format: 'ltxvfs-manifest',
    version: 1,
    writer: { id: 'w1', host: 'primary', pid: 7 },
    generation: 3,
    txid: 12,
    pageSize: 4096,
    writtenAt: 1_000_000,
    staleAfterMs: 15_000,
    files: [
      {
        level: 9,
        minTxid: 1,
        maxTxid: 10,
        size: 5000,
        timestamp: 1,
        commit: 9,
        indexOffset: 4000,
        indexSize: 984,
      },
      {
        level: 0,
        minTxid: 11,
        maxTxid: 11,
        size: 400,
        timestamp: 2,
        commit: 9,
        indexOffset: 300,
        indexSize: 84,
      },
      {
        level: 0,
        minTxid: 12,
        maxTxid: 12,
        size: 400,
        timestamp: 3,
        commit: 9,
        indexOffset: 300,
        indexSize: 84,
        index: 'AQID',
      },
    ],
    hot: { object: 'ltxvfs/hot.ltx', txid: 10, size: 800, pages: 2 },
  };
}

function message(m: unknown, source?: string): string {
  try {
    if (source === undefined) validateManifest(m);
    else validateManifest(m, source);
  } catch (err) {
    expect(isLtxvfsError(err, 'MANIFEST_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected MANIFEST_INVALID');
}

type Edit = (m: Record<string, unknown> & Manifest) => void;
const file = (m: Manifest, i: number) => m.files[i] as unknown as Record<string, unknown>;

describe('manifest validation', () => {
  it('the sample is valid and round-trips', () => {
    expect(() => validateManifest(sample())).not.toThrow();
    expect(decodeManifest(encodeManifest(sample()))).toEqual(sample());
    const noFiles = { ...sample(), files: [], hot: null, txid: 0 };
    expect(() => validateManifest(noFiles)).not.toThrow();
    // Without files the txid is not tied to anything.
    expect(() => validateManifest({ ...noFiles, txid: 5 })).not.toThrow();
    expect(Array.from(inlineIndexBytes(sample().files[2] as Manifest['files'][number]) ?? [])).toEqual([
      1, 2, 3,
    ]);
    expect(inlineIndexBytes(sample().files[0] as Manifest['files'][number])).toBeUndefined();
  });

  const cases: [string, Edit, string][] = [
    [
      'format',
      (m) => {
        m.format = 'other' as 'ltxvfs-manifest';
      },
      'format is "other"',
    ],
    [
      'no format',
      (m) => {
        delete (m as Partial<Manifest>).format;
      },
      'format is undefined',
    ],
    [
      'version',
      (m) => {
        m.version = 2 as 1;
      },
      'version 2 is not supported',
    ],
    [
      'no writer',
      (m) => {
        delete (m as Partial<Manifest>).writer;
      },
      'no writer id',
    ],
    [
      'writer null',
      (m) => {
        (m as Record<string, unknown>).writer = null;
      },
      'no writer id',
    ],
    [
      'writer id empty',
      (m) => {
        m.writer.id = '';
      },
      'no writer id',
    ],
    [
      'writer id a number',
      (m) => {
        (m.writer as Record<string, unknown>).id = 5;
      },
      'no writer id',
    ],
    [
      'writer host missing',
      (m) => {
        (m.writer as Record<string, unknown>).host = 5;
      },
      'writer host/pid missing',
    ],
    [
      'writer pid negative',
      (m) => {
        m.writer.pid = -1;
      },
      'writer host/pid missing',
    ],
    [
      'writer pid fractional',
      (m) => {
        m.writer.pid = 1.5;
      },
      'writer host/pid missing',
    ],
    [
      'generation',
      (m) => {
        m.generation = -1;
      },
      'generation is not a non-negative integer',
    ],
    [
      'txid',
      (m) => {
        (m as Record<string, unknown>).txid = '12';
      },
      'txid is not a non-negative integer',
    ],
    [
      'pageSize',
      (m) => {
        m.pageSize = 4096.5;
      },
      'pageSize is not a non-negative integer',
    ],
    [
      'writtenAt',
      (m) => {
        m.writtenAt = 2 ** 53;
      },
      'writtenAt is not a non-negative integer',
    ],
    [
      'staleAfterMs',
      (m) => {
        m.staleAfterMs = Number.NaN;
      },
      'staleAfterMs is not a non-negative integer',
    ],
    [
      'files',
      (m) => {
        (m as Record<string, unknown>).files = {};
      },
      'files is not a list',
    ],
    [
      'a file null',
      (m) => {
        (m.files as unknown[])[1] = null;
      },
      'files[1] is not an object',
    ],
    [
      'a file a number',
      (m) => {
        (m.files as unknown[])[0] = 3;
      },
      'files[0] is not an object',
    ],
    ...(
      ['level', 'minTxid', 'maxTxid', 'size', 'timestamp', 'commit', 'indexOffset', 'indexSize'] as const
    ).map((k): [string, Edit, string] => [
      `files[2].${k}`,
      (m) => {
        file(m, 2)[k] = -1;
      },
      `files[2].${k} is not a non-negative integer`,
    ]),
    [
      'level 10',
      (m) => {
        file(m, 1).level = 10;
      },
      'files[1] has level 10',
    ],
    [
      'minTxid 0',
      (m) => {
        file(m, 1).minTxid = 0;
      },
      'files[1] has TXIDs 0..11',
    ],
    [
      'max < min',
      (m) => {
        file(m, 1).maxTxid = 10;
      },
      'files[1] has TXIDs 11..10',
    ],
    [
      'index past the end',
      (m) => {
        file(m, 1).indexSize = 101;
      },
      'files[1] places its index past the end of the object',
    ],
    [
      'order: min going back',
      (m) => {
        file(m, 2).minTxid = 10;
      },
      'files[2] is out of order in level 0',
    ],
    [
      'order: same range twice',
      (m) => {
        Object.assign(file(m, 2), { minTxid: 11, maxTxid: 11 });
      },
      'files[2] is out of order in level 0',
    ],
    [
      'index not base64',
      (m) => {
        file(m, 2).index = 'AQ!D';
      },
      'files[2].index is not base64',
    ],
    [
      'index not a string',
      (m) => {
        file(m, 2).index = 5;
      },
      'files[2].index is not base64',
    ],
    [
      'index too much padding',
      (m) => {
        file(m, 2).index = 'AQ===';
      },
      'files[2].index is not base64',
    ],
    [
      'txid behind the files',
      (m) => {
        m.txid = 11;
      },
      'txid 000000000000000b but the files reach 000000000000000c',
    ],
    [
      'txid past the files',
      (m) => {
        m.txid = 13;
      },
      'txid 000000000000000d but the files reach 000000000000000c',
    ],
    [
      'no hot member',
      (m) => {
        delete (m as Partial<Manifest>).hot;
      },
      'hot is not an object',
    ],
    [
      'hot a string',
      (m) => {
        (m as Record<string, unknown>).hot = 'x';
      },
      'hot is not an object',
    ],
    [
      'hot object name',
      (m) => {
        (m.hot as unknown as Record<string, unknown>).object = 3;
      },
      'hot is not an object',
    ],
    [
      'hot txid',
      (m) => {
        (m.hot as unknown as Record<string, unknown>).txid = -1;
      },
      'hot txid/size/pages missing',
    ],
    [
      'hot size',
      (m) => {
        (m.hot as unknown as Record<string, unknown>).size = 1.5;
      },
      'hot txid/size/pages missing',
    ],
    [
      'hot pages',
      (m) => {
        delete (m.hot as Partial<Manifest['hot'] & object>).pages;
      },
      'hot txid/size/pages missing',
    ],
    [
      'hot newer',
      (m) => {
        (m.hot as NonNullable<Manifest['hot']>).txid = 13;
      },
      'hot pages are newer than the manifest',
    ],
  ];

  for (const [what, edit, why] of cases) {
    it(`refuses ${what}`, () => {
      const m = sample() as Record<string, unknown> & Manifest;
      edit(m);
      expect(message(m)).toBe(`manifest is invalid: ${why}`);
      expect(message(m, 's3://b/db/ltxvfs/manifest.json')).toBe(
        `s3://b/db/ltxvfs/manifest.json is invalid: ${why}`,
      );
    });
  }

  it('accepts the boundaries: level 9, index ending at the object end, hot at the manifest txid, padding', () => {
    const ok: Edit[] = [
      (m) => {
        file(m, 1).indexSize = 100;
      },
      (m) => {
        (m.hot as NonNullable<Manifest['hot']>).txid = 12;
      },
      (m) => {
        m.hot = null;
      },
      (m) => {
        file(m, 2).index = 'AQ==';
      },
      (m) => {
        file(m, 2).index = '';
      },
      // Snapshots all start at TXID 1: a later one with a larger max is in order.
      (m) => {
        m.files.splice(1, 0, { ...(m.files[0] as Manifest['files'][number]), maxTxid: 11 });
      },
      (m) => {
        m.writer.pid = 0;
      },
      // Ordered by (minTxid, maxTxid): a later start with a smaller end is still in order.
      (m) => {
        m.files.push({ ...(m.files[2] as Manifest['files'][number]), level: 1, minTxid: 2, maxTxid: 10 });
        m.files.push({ ...(m.files[2] as Manifest['files'][number]), level: 1, minTxid: 3, maxTxid: 5 });
      },
    ];
    for (const edit of ok) {
      const m = sample() as Record<string, unknown> & Manifest;
      edit(m);
      expect(() => validateManifest(m)).not.toThrow();
    }
    expect(message(null)).toBe('manifest is invalid: not an object');
    expect(message('x')).toBe('manifest is invalid: not an object');
  });
});

describe('manifest envelope', () => {
  it('is {"manifest":<json>,"xxh32":"<8 hex>"} and a newline', () => {
    const text = new TextDecoder().decode(encodeManifest(sample()));
    expect(text).toMatch(/^\{"manifest":\{.*\},"xxh32":"[0-9a-f]{8}"\}\n$/);
    expect(JSON.parse(text).manifest).toEqual(sample());
  });

  it('refusals name the source: foreign, truncated, checksum, not JSON', () => {
    const bytes = encodeManifest(sample());
    const text = new TextDecoder().decode(bytes);
    const decode = (t: string) => {
      try {
        decodeManifest(new TextEncoder().encode(t), 'db/ltxvfs/manifest.json');
      } catch (err) {
        expect(isLtxvfsError(err, 'MANIFEST_INVALID')).toBe(true);
        return (err as Error).message;
      }
      throw new Error('expected MANIFEST_INVALID');
    };
    const envelope = 'db/ltxvfs/manifest.json is invalid: not a manifest envelope (truncated or foreign)';
    expect(decode('{"hello":1}')).toBe(envelope);
    expect(decode(text.slice(0, text.length - 3))).toBe(envelope);
    expect(decode(text.slice(1))).toBe(envelope);
    expect(decode(text.replace('"xxh32":"', '"xxh32":"0'))).toBe(envelope);
    const sum = /"xxh32":"([0-9a-f]{8})"/.exec(text)?.[1] ?? '';
    const other = sum === '00000000' ? '00000001' : '00000000';
    expect(decode(text.replace(sum, other))).toBe(
      `db/ltxvfs/manifest.json is invalid: checksum ${sum} does not match ${other}`,
    );
    // Trailing whitespace is allowed (a manifest edited by hand and saved with a newline).
    expect(decodeManifest(new TextEncoder().encode(`${text}\n\n`))).toEqual(sample());
  });

  it('where it lives and what it carries inline (README: ltxvfs/manifest.json, indexes up to 16 KiB)', () => {
    expect(MANIFEST_OBJECT).toBe('ltxvfs/manifest.json');
    expect(HOT_PAGES_OBJECT).toBe('ltxvfs/hot.ltx');
    expect(MANIFEST_INLINE_INDEX_MAX).toBe(16384);
  });

  it('the checksum is the 8-digit xxh32 of the manifest member, leading zeros kept', () => {
    const encoder = new TextEncoder();
    let found = false;
    for (let generation = 0; generation < 200 && !found; generation++) {
      const m = { ...sample(), generation };
      const body = JSON.stringify(m);
      const sum = xxh32(encoder.encode(body));
      if (sum >= 0x10000000) continue;
      found = true;
      const text = new TextDecoder().decode(encodeManifest(m));
      expect(text).toBe(`{"manifest":${body},"xxh32":"${sum.toString(16).padStart(8, '0')}"}\n`);
      expect(decodeManifest(encoder.encode(text))).toEqual(m);
    }
    expect(found).toBe(true);
  });

  it('more refusals: bytes after the envelope, invalid UTF-8, a checksummed body that is not JSON, no source given', () => {
    const text = new TextDecoder().decode(encodeManifest(sample()));
    const invalid = (bytes: Uint8Array, source?: string): string => {
      try {
        if (source === undefined) decodeManifest(bytes);
        else decodeManifest(bytes, source);
      } catch (err) {
        expect(isLtxvfsError(err, 'MANIFEST_INVALID')).toBe(true);
        return (err as Error).message;
      }
      throw new Error('expected MANIFEST_INVALID');
    };
    const enc = new TextEncoder();
    expect(invalid(enc.encode(`${text.trimEnd()}x`))).toBe(
      'manifest is invalid: not a manifest envelope (truncated or foreign)',
    );
    expect(invalid(Uint8Array.from([...enc.encode('{"manifest":'), 0xff, 0xfe]))).toBe(
      'manifest is invalid: not a manifest envelope (truncated or foreign)',
    );
    const body = '{"files":[}';
    const sum = xxh32(enc.encode(body)).toString(16).padStart(8, '0');
    expect(invalid(enc.encode(`{"manifest":${body},"xxh32":"${sum}"}`), 'm')).toMatch(
      /^m is invalid: not JSON: ./,
    );
  });

  it('freshness: up to writtenAt + staleAfterMs (and any time before), stale after', () => {
    const m = sample();
    expect(isManifestFresh(m, m.writtenAt + m.staleAfterMs)).toBe(true);
    expect(isManifestFresh(m, m.writtenAt - 60_000)).toBe(true);
    expect(isManifestFresh(m, m.writtenAt + m.staleAfterMs + 1)).toBe(false);
  });
});
