import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSampleDatabase, type SampleDatabase } from '../bench/ltx-sample-db.js';
import {
  decodeLtxFile,
  decodePageFrame,
  encodeLtxFile,
  initZstd,
  type LtxHeader,
  litestreamHeader,
  lz4CompressorKind,
  lz4DecoderKind,
  lz4DecompressBlock,
  type PageEncoding,
  parsePageIndexTail,
} from '../src/ltx/index.js';
import { defined } from './support/defined.js';

let sample: SampleDatabase;
let dir: string;
beforeAll(async () => {
  await initZstd();
  sample = buildSampleDatabase({ users: 3000 });
  dir = mkdtempSync(join(tmpdir(), 'ltx-sqlite-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function query(path: string): unknown {
  const db = new Database(path, { readonly: true });
  try {
    return {
      integrity: db.pragma('integrity_check', { simple: true }),
      users: db.prepare('SELECT count(*) AS n, sum(age) AS ages, max(email) AS email FROM users').get(),
      events: db.prepare('SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY kind').all(),
      byIndex: db.prepare('SELECT id FROM users WHERE age = 42 ORDER BY created_at LIMIT 5').all(),
    };
  } finally {
    db.close();
  }
}

function snapshotHeader(): LtxHeader {
  return litestreamHeader({
    pageSize: sample.pageSize,
    commit: sample.pages.length,
    minTxid: 1,
    maxTxid: 1,
    timestamp: Date.now(),
  });
}

describe('real SQLite content (better-sqlite3)', () => {
  for (const encoding of ['lz4-block', 'lz4-frame', 'zstd'] as PageEncoding[]) {
    it(`${encoding}: every page of a real database round-trips byte-identical and SQLite reads the result`, () => {
      expect(sample.pages.length).toBeGreaterThan(100);
      const header = snapshotHeader();
      const file = encodeLtxFile(header, sample.pages, { encoding });
      expect(file.length).toBeLessThan(sample.bytes.length); // it compresses
      const decoded = decodeLtxFile(file);
      const restored = Buffer.concat(decoded.pages.map((p) => p.data));
      expect(restored.equals(Buffer.from(sample.bytes))).toBe(true);
      const original = join(dir, `original-${encoding}.db`);
      const copy = join(dir, `restored-${encoding}.db`);
      writeFileSync(original, sample.bytes);
      writeFileSync(copy, restored);
      const result = query(copy) as { integrity: string };
      expect(result.integrity).toBe('ok');
      expect(result).toEqual(query(original));
    });
  }

  it(`lz4-block: files from both compressors (default here: ${lz4CompressorKind}) pass full verification and every frame decodes with the JS decoder and with the ${lz4DecoderKind} page decoder`, () => {
    const header = snapshotHeader();
    // With checksums on, full verification also recomputes the database checksum of the pages.
    const checked = { ...header, flags: 0 };
    for (const compressor of ['native', 'pierrec'] as const) {
      for (const h of [header, checked]) {
        const file = encodeLtxFile(h, sample.pages, { compressor });
        const decoded = decodeLtxFile(file);
        expect(Buffer.concat(decoded.pages.map((p) => p.data)).equals(Buffer.from(sample.bytes))).toBe(true);
        const tail = parsePageIndexTail(file, file.length);
        if (tail.kind !== 'ok') throw new Error('index not parsed');
        for (const [i, e] of tail.index.entries()) {
          const expected = Buffer.from(defined(sample.pages[i]).data);
          const frame = file.subarray(e.offset, e.offset + e.size);
          expect(Buffer.from(decodePageFrame(frame, h.pageSize, e.pgno)).equals(expected)).toBe(true);
          const js = new Uint8Array(h.pageSize);
          expect(lz4DecompressBlock(frame, 10, frame.length, js, 0, js.length)).toBe(js.length);
          expect(Buffer.from(js).equals(expected)).toBe(true);
        }
      }
    }
  });
});
