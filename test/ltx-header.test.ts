import { describe, expect, it } from 'vitest';
import {
  decodeHeader,
  decodeTrailer,
  encodeHeader,
  encodeTrailer,
  isSnapshot,
  isValidPageSize,
  type LtxHeader,
  litestreamHeader,
  validateHeader,
} from '../src/ltx/header.js';
import { thrown } from './support/thrown.js';

// The LTX v3 header and trailer against the layout of /work/shared/docs/ltx-and-litestream.md
// §1.3 (superfly/ltx's Header.Validate rules): bytes are built here field by field with a
// DataView at the spec's offsets, never by the encoder under test.

interface SpecFields {
  magic?: string;
  flags?: number;
  pageSize?: number;
  commit?: number;
  minTxid?: bigint;
  maxTxid?: bigint;
  timestamp?: bigint;
  preApplyChecksum?: bigint;
  walOffset?: bigint;
  walSize?: bigint;
  walSalt1?: number;
  walSalt2?: number;
  nodeId?: bigint;
}

/** 100 header bytes at the spec's offsets, big-endian, reserved bytes zero. */
function specHeaderBytes(f: SpecFields): Uint8Array {
  const b = new Uint8Array(100);
  const v = new DataView(b.buffer);
  const magic = f.magic ?? 'LTX1';
  for (let i = 0; i < 4; i++) b[i] = magic.charCodeAt(i);
  v.setUint32(4, f.flags ?? 2);
  v.setUint32(8, f.pageSize ?? 4096);
  v.setUint32(12, f.commit ?? 1);
  v.setBigUint64(16, f.minTxid ?? 1n);
  v.setBigUint64(24, f.maxTxid ?? 1n);
  v.setBigInt64(32, f.timestamp ?? 0n);
  v.setBigUint64(40, f.preApplyChecksum ?? 0n);
  v.setBigInt64(48, f.walOffset ?? 0n);
  v.setBigInt64(56, f.walSize ?? 0n);
  v.setUint32(64, f.walSalt1 ?? 0);
  v.setUint32(68, f.walSalt2 ?? 0);
  v.setBigUint64(72, f.nodeId ?? 0n);
  return b;
}

const VALID: LtxHeader = {
  flags: 2,
  pageSize: 4096,
  commit: 7,
  minTxid: 5,
  maxTxid: 9,
  timestamp: 1_700_000_000_123,
  preApplyChecksum: 0n,
  walOffset: 32,
  walSize: 4152,
  walSalt1: 0x01020304,
  walSalt2: 0xfffefdfc,
  nodeId: 0x0102030405060708n,
};

describe('LTX header bytes (spec layout)', () => {
  it('encodeHeader writes every field at its offset, big-endian, reserved bytes zero', () => {
    const expected = specHeaderBytes({
      flags: 2,
      pageSize: 4096,
      commit: 7,
      minTxid: 5n,
      maxTxid: 9n,
      timestamp: 1_700_000_000_123n,
      walOffset: 32n,
      walSize: 4152n,
      walSalt1: 0x01020304,
      walSalt2: 0xfffefdfc,
      nodeId: 0x0102030405060708n,
    });
    const encoded = encodeHeader(VALID);
    expect(encoded.length).toBe(100);
    expect(Buffer.from(encoded).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
    expect(Buffer.from(encoded.subarray(0, 4)).toString('latin1')).toBe('LTX1');
  });

  it('decodeHeader reads every field, also from a view that does not start at byte 0', () => {
    const fields: SpecFields = {
      flags: 0,
      pageSize: 512,
      commit: 0xffffffff,
      minTxid: 2n,
      maxTxid: BigInt(Number.MAX_SAFE_INTEGER),
      timestamp: -1000n,
      preApplyChecksum: 0x8000000000001234n,
      walOffset: 32n,
      walSize: 0n,
      walSalt1: 0xffffffff,
      walSalt2: 1,
      nodeId: 0xffffffffffffffffn,
    };
    const want: LtxHeader = {
      flags: 0,
      pageSize: 512,
      commit: 0xffffffff,
      minTxid: 2,
      maxTxid: Number.MAX_SAFE_INTEGER,
      timestamp: -1000,
      preApplyChecksum: 0x8000000000001234n,
      walOffset: 32,
      walSize: 0,
      walSalt1: 0xffffffff,
      walSalt2: 1,
      nodeId: 0xffffffffffffffffn,
    };
    expect(decodeHeader(specHeaderBytes(fields))).toEqual(want);
    const padded = new Uint8Array(137).fill(0xee);
    padded.set(specHeaderBytes(fields), 37);
    expect(decodeHeader(padded.subarray(37))).toEqual(want);
    // Bytes after the header (the page block) are not part of it.
    expect(decodeHeader(padded.subarray(37, 137))).toEqual(want);
  });

  it('the trailer is two big-endian u64s (post-apply, file checksum), read at any offset', () => {
    const t = { postApplyChecksum: 0x8000000000005678n, fileChecksum: 0xd1f8ea546c262bd3n };
    expect(Buffer.from(encodeTrailer(t)).toString('hex')).toBe('8000000000005678d1f8ea546c262bd3');
    const b = new Uint8Array(40).fill(0x11);
    b.set(encodeTrailer(t), 19);
    expect(decodeTrailer(b, 19)).toEqual(t);
    expect(decodeTrailer(b.subarray(3), 16)).toEqual(t);
  });

  it('a buffer shorter than 100 bytes is LTX_TRUNCATED with the count', () => {
    for (const n of [0, 4, 99]) {
      const e = thrown(() => decodeHeader(specHeaderBytes({}).subarray(0, n)));
      expect(e.code).toBe('LTX_TRUNCATED');
      expect(e.message).toBe(`LTX header truncated: ${n} of 100 bytes`);
    }
    expect(decodeHeader(specHeaderBytes({})).pageSize).toBe(4096);
  });

  it('each wrong magic byte is LTX_BAD_MAGIC showing the bytes seen', () => {
    for (const [magic, hex] of [
      ['XTX1', '58545831'],
      ['LXX1', '4c585831'],
      ['LTL1', '4c544c31'],
      ['LTX2', '4c545832'],
      ['ltx1', '6c747831'],
      ['\x01\x02\x0a\x00', '01020a00'],
    ] as const) {
      const e = thrown(() => decodeHeader(specHeaderBytes({ magic })));
      expect(e.code, magic).toBe('LTX_BAD_MAGIC');
      expect(e.message).toBe(`not an LTX file: magic is 0x${hex}, expected "LTX1"`);
    }
  });

  it('u64 fields beyond 2^53-1 are LTX_BAD_HEADER naming the field and its offset', () => {
    const big = BigInt(Number.MAX_SAFE_INTEGER) + 1n;
    for (const [field, fields, offset] of [
      ['minTxid', { minTxid: big, maxTxid: big }, 16],
      ['maxTxid', { maxTxid: big }, 24],
      ['timestamp', { timestamp: big }, 32],
      ['timestamp', { timestamp: -big }, 32],
      ['walOffset', { walOffset: big }, 48],
      ['walSize', { walOffset: 32n, walSize: big }, 56],
    ] as const) {
      const e = thrown(() => decodeHeader(specHeaderBytes(fields)));
      expect(e.code, field).toBe('LTX_BAD_HEADER');
      expect(e.message).toMatch(
        new RegExp(`^header ${field} -?\\d+ \\(offset ${offset}\\) is out of range$`),
      );
    }
    const safe = BigInt(Number.MAX_SAFE_INTEGER);
    expect(decodeHeader(specHeaderBytes({ timestamp: -safe })).timestamp).toBe(-Number.MAX_SAFE_INTEGER);
    expect(decodeHeader(specHeaderBytes({ timestamp: safe })).timestamp).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe('LTX header validation (Header.Validate and the JS number limits)', () => {
  // [what changes, the header, the message]; every one is refused by decode (LTX_BAD_HEADER, or
  // LTX_BAD_FLAGS for flags) and by encode (LTX_ENCODE).
  const bad: [string, Partial<LtxHeader>, string][] = [
    ['flag 0x1', { flags: 1 }, 'flags 0x1 has bits other than NoChecksum (0x2) (0x1 was LTX v1 CompressLZ4)'],
    [
      'flags 0x3',
      { flags: 3 },
      'flags 0x3 has bits other than NoChecksum (0x2) (0x1 was LTX v1 CompressLZ4)',
    ],
    ['flag 0x4', { flags: 4 }, 'flags 0x4 has bits other than NoChecksum (0x2)'],
    ['flag bit 31', { flags: 0x80000002 }, 'flags 0x80000002 has bits other than NoChecksum (0x2)'],
    ['page size 256', { pageSize: 256 }, 'page size 256 is not a power of two between 512 and 65536'],
    [
      'page size 131072',
      { pageSize: 131072 },
      'page size 131072 is not a power of two between 512 and 65536',
    ],
    ['page size 1000', { pageSize: 1000 }, 'page size 1000 is not a power of two between 512 and 65536'],
    ['page size 4097', { pageSize: 4097 }, 'page size 4097 is not a power of two between 512 and 65536'],
    ['page size 0', { pageSize: 0 }, 'page size 0 is not a power of two between 512 and 65536'],
    ['minTxid 0', { minTxid: 0 }, 'minTxid 0 must be an integer between 1 and 2^53-1'],
    ['maxTxid 0', { minTxid: 1, maxTxid: 0 }, 'maxTxid 0 must be an integer between 1 and 2^53-1'],
    ['min > max', { minTxid: 10, maxTxid: 9 }, 'minTxid 10 is greater than maxTxid 9'],
    [
      'WAL salt1 without offset',
      { walOffset: 0, walSize: 0, walSalt1: 1, walSalt2: 0 },
      'WAL salts are set but walOffset is 0',
    ],
    [
      'WAL salt2 without offset',
      { walOffset: 0, walSize: 0, walSalt1: 0, walSalt2: 1 },
      'WAL salts are set but walOffset is 0',
    ],
    [
      'WAL size without offset',
      { walOffset: 0, walSize: 4152, walSalt1: 0, walSalt2: 0 },
      'walSize 4152 is set but walOffset is 0',
    ],
    [
      'snapshot with a pre-apply checksum',
      { flags: 0, minTxid: 1, preApplyChecksum: 0x8000000000000001n },
      'snapshot (minTxid 1) has a non-zero preApplyChecksum 0x8000000000000001',
    ],
    [
      'NoChecksum with a pre-apply checksum',
      { flags: 2, preApplyChecksum: 0x8000000000000001n },
      'preApplyChecksum must be 0 when the NoChecksum flag is set',
    ],
    [
      'checksums on, pre-apply zero',
      { flags: 0, preApplyChecksum: 0n },
      'preApplyChecksum 0x0 lacks bit 63 (required with checksums on)',
    ],
    [
      'checksums on, pre-apply without bit 63',
      { flags: 0, preApplyChecksum: 0x1234n },
      'preApplyChecksum 0x1234 lacks bit 63 (required with checksums on)',
    ],
  ];

  for (const [what, change, message] of bad) {
    it(`decode and encode refuse: ${what}`, () => {
      const h = { ...VALID, ...change };
      const bytes = specHeaderBytes({
        flags: h.flags,
        pageSize: h.pageSize,
        commit: h.commit,
        minTxid: BigInt(h.minTxid),
        maxTxid: BigInt(h.maxTxid),
        timestamp: BigInt(h.timestamp),
        preApplyChecksum: h.preApplyChecksum,
        walOffset: BigInt(h.walOffset),
        walSize: BigInt(h.walSize),
        walSalt1: h.walSalt1,
        walSalt2: h.walSalt2,
        nodeId: h.nodeId,
      });
      const decoded = thrown(() => decodeHeader(bytes));
      expect(decoded.code).toBe(message.startsWith('flags') ? 'LTX_BAD_FLAGS' : 'LTX_BAD_HEADER');
      expect(decoded.message).toBe(message);
      const encoded = thrown(() => encodeHeader(h));
      expect(encoded.code).toBe('LTX_ENCODE');
      expect(encoded.message).toBe(message);
    });
  }

  // Values a u32/u64 field cannot even hold: only the encoder (and validateHeader) can see them.
  const unencodable: [string, Partial<LtxHeader>, string][] = [
    ['negative flags', { flags: -2 }, 'flags 0x-2 has bits other than NoChecksum (0x2)'],
    ['fractional flags', { flags: 2.5 }, 'flags 0x2.8 has bits other than NoChecksum (0x2)'],
    [
      'fractional page size',
      { pageSize: 4096.5 },
      'page size 4096.5 is not a power of two between 512 and 65536',
    ],
    ['negative commit', { commit: -1 }, 'commit -1 is not a u32'],
    ['commit 2^32', { commit: 2 ** 32 }, 'commit 4294967296 is not a u32'],
    ['fractional commit', { commit: 1.5 }, 'commit 1.5 is not a u32'],
    [
      'minTxid 2^53',
      { minTxid: 2 ** 53, maxTxid: 2 ** 53 },
      'minTxid 9007199254740992 must be an integer between 1 and 2^53-1',
    ],
    ['fractional maxTxid', { maxTxid: 9.5 }, 'maxTxid 9.5 must be an integer between 1 and 2^53-1'],
    ['negative minTxid', { minTxid: -1 }, 'minTxid -1 must be an integer between 1 and 2^53-1'],
    ['fractional timestamp', { timestamp: 1.5 }, 'timestamp 1.5 is not a safe integer'],
    ['timestamp 2^53', { timestamp: 2 ** 53 }, 'timestamp 9007199254740992 is not a safe integer'],
    ['negative walOffset', { walOffset: -1 }, 'walOffset -1 must be >= 0'],
    ['fractional walOffset', { walOffset: 32.5 }, 'walOffset 32.5 must be >= 0'],
    ['negative walSize', { walSize: -1 }, 'walSize -1 must be >= 0'],
    ['fractional walSize', { walSize: 0.5 }, 'walSize 0.5 must be >= 0'],
    ['walSalt1 2^32', { walSalt1: 2 ** 32 }, 'walSalt1 4294967296 is not a u32'],
    ['negative walSalt1', { walSalt1: -1 }, 'walSalt1 -1 is not a u32'],
    ['fractional walSalt2', { walSalt2: 0.5 }, 'walSalt2 0.5 is not a u32'],
    ['walSalt2 2^32', { walSalt2: 2 ** 32 }, 'walSalt2 4294967296 is not a u32'],
    ['negative preApplyChecksum', { flags: 0, preApplyChecksum: -1n }, 'preApplyChecksum is not a u64'],
    ['preApplyChecksum 2^64', { flags: 0, preApplyChecksum: 2n ** 64n }, 'preApplyChecksum is not a u64'],
    ['negative nodeId', { nodeId: -1n }, 'nodeId is not a u64'],
    ['nodeId 2^64', { nodeId: 2n ** 64n }, 'nodeId is not a u64'],
  ];

  for (const [what, change, message] of unencodable) {
    it(`validateHeader and encode refuse: ${what}`, () => {
      const h = { ...VALID, ...change };
      const e = thrown(() => encodeHeader(h));
      expect(e.code).toBe('LTX_ENCODE');
      expect(e.message).toBe(message);
      const v = thrown(() => validateHeader(h));
      expect(v.code).toBe(message.startsWith('flags') ? 'LTX_BAD_FLAGS' : 'LTX_BAD_HEADER');
      expect(v.message).toBe(message);
    });
  }

  it('accepts the bounds: page sizes 512..65536, commit 0 and 2^32-1, equal TXIDs, u64 extremes', () => {
    const ok: Partial<LtxHeader>[] = [
      { pageSize: 512 },
      { pageSize: 1024 },
      { pageSize: 65536 },
      { commit: 0 },
      { commit: 0xffffffff },
      { minTxid: 9, maxTxid: 9 },
      { minTxid: Number.MAX_SAFE_INTEGER, maxTxid: Number.MAX_SAFE_INTEGER },
      { timestamp: -Number.MAX_SAFE_INTEGER },
      { walOffset: 32, walSize: 0, walSalt1: 0, walSalt2: 0 },
      { walOffset: 0, walSize: 0, walSalt1: 0, walSalt2: 0 },
      { walSalt1: 0xffffffff, walSalt2: 0xffffffff },
      { walSalt1: 0, walSalt2: 0 },
      { nodeId: 0n },
      { nodeId: 2n ** 64n - 1n },
      { flags: 0, preApplyChecksum: 0x8000000000000000n },
      { flags: 0, preApplyChecksum: 2n ** 64n - 1n },
      { flags: 0, minTxid: 1, preApplyChecksum: 0n },
      { flags: 2, minTxid: 1, preApplyChecksum: 0n },
    ];
    for (const change of ok) {
      const h = { ...VALID, ...change };
      expect(
        () => validateHeader(h),
        JSON.stringify(change, (_, x) => (typeof x === 'bigint' ? `${x}n` : x)),
      ).not.toThrow();
      expect(decodeHeader(encodeHeader(h))).toEqual(h);
    }
  });

  it('isValidPageSize: powers of two from 512 to 65536 only', () => {
    const valid = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
    for (let n = 0; n <= 1 << 18; n++) {
      if (isValidPageSize(n) !== valid.includes(n)) throw new Error(`isValidPageSize(${n})`);
    }
    expect(isValidPageSize(4096.0)).toBe(true);
    expect(isValidPageSize(512.5)).toBe(false);
    expect(isValidPageSize(Number.NaN)).toBe(false);
  });

  it('isSnapshot is minTxid 1, whatever the range', () => {
    expect(isSnapshot({ minTxid: 1 })).toBe(true);
    expect(isSnapshot({ minTxid: 2 })).toBe(false);
    expect(isSnapshot({ minTxid: 0 })).toBe(false);
  });

  it('litestreamHeader: NoChecksum, zero pre-apply checksum and node ID, WAL fields or zeros', () => {
    expect(litestreamHeader({ pageSize: 4096, commit: 3, minTxid: 2, maxTxid: 4, timestamp: 99 })).toEqual({
      flags: 2,
      pageSize: 4096,
      commit: 3,
      minTxid: 2,
      maxTxid: 4,
      timestamp: 99,
      preApplyChecksum: 0n,
      walOffset: 0,
      walSize: 0,
      walSalt1: 0,
      walSalt2: 0,
      nodeId: 0n,
    });
    const fromWal = litestreamHeader({
      pageSize: 512,
      commit: 1,
      minTxid: 1,
      maxTxid: 1,
      timestamp: 5,
      wal: { offset: 32, size: 1056, salt1: 0xaabbccdd, salt2: 7 },
    });
    expect(fromWal).toMatchObject({ walOffset: 32, walSize: 1056, walSalt1: 0xaabbccdd, walSalt2: 7 });
    expect(
      litestreamHeader({ pageSize: 512, commit: 1, minTxid: 1, maxTxid: 1, timestamp: 5, wal: null }),
    ).toMatchObject({ walOffset: 0, walSize: 0, walSalt1: 0, walSalt2: 0 });
    expect(() => validateHeader(fromWal)).not.toThrow();
  });
});
