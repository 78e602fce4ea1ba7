#!/usr/bin/env node
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  Crc64,
  decodeLtxFile,
  decodePageFrame,
  encodeLtxFile,
  initZstd,
  type LtxHeader,
  type Lz4Compressor,
  litestreamHeader,
  lz4Bound,
  lz4CompressBlock,
  lz4CompressorKind,
  lz4DecoderKind,
  lz4DecompressBlock,
  type PageEncoding,
  parsePageIndexTail,
} from '../src/ltx/index.js';
import { buildSampleDatabase } from './ltx-sample-db.js';

/**
 * LTX codec throughput on 4 KiB pages of a real SQLite database (text, integers, JSON, indexes):
 * per page encoding, whole-file encode (with the file checksum), whole-file decode with full
 * verification, and random-access frame decode; plus the LZ4 block implementations compared.
 * `node dist/bench/ltx-codec.js [--quick]`; writes bench/results/ltx-codec.json.
 */
export interface LtxCodecBenchOptions {
  /** Rows in the sample database (about 110 per 4 KiB page of data). */
  users?: number;
  /** Milliseconds per measurement round; the best of `rounds` is kept. */
  roundMs?: number;
  rounds?: number;
  /** Where to write the JSON (default bench/results/ltx-codec.json); null to skip. */
  outFile?: string | null;
  log?: (line: string) => void;
}

export interface EncodingResult {
  encoding: PageEncoding;
  /** LZ4 compressor asked for (zstd ignores it); 'native' falls back to JS without lz4-napi. */
  compressor: Lz4Compressor;
  ratio: number;
  fileBytes: number;
  encodeMBps: number;
  decodeVerifiedMBps: number;
  randomAccessMBps: number;
}

export interface Lz4CandidateResult {
  implementation: string;
  note: string;
  compressMBps: number | null;
  decompressMBps: number | null;
  ratio: number | null;
}

export interface LtxCodecBenchResult {
  machine: { cpu: string; node: string };
  lz4Decoder: 'native' | 'js';
  /** What the default compressor resolved to. */
  lz4Compressor: Lz4Compressor;
  /** CRC-64/GO-ISO over the page data (the file checksum's cost). */
  crc64MBps: number;
  pages: number;
  pageSize: number;
  dataBytes: number;
  encodings: EncodingResult[];
  lz4: Lz4CandidateResult[];
  markdown: string;
}

const MB = 1024 * 1024;

/**
 * Best throughput (MB/s of `bytes` per call) over several timed rounds, per CPU-second of this
 * process (user + system): "one core" even when other work shares the machine, which wall-clock
 * time would charge to us.
 */
function measure(bytes: number, roundMs: number, rounds: number, fn: () => void): number {
  fn(); // warm up
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    do {
      fn();
      calls++;
    } while (performance.now() - start < roundMs);
    const cpu = process.cpuUsage(cpu0);
    const seconds = (cpu.user + cpu.system) / 1e6;
    best = Math.max(best, (bytes * calls) / MB / seconds);
  }
  return Math.round(best);
}

function snapshotHeader(pageSize: number, commit: number): LtxHeader {
  return litestreamHeader({ pageSize, commit, minTxid: 1, maxTxid: 1, timestamp: 0 });
}

interface RawBlockCodec {
  name: string;
  note: string;
  compress(page: Uint8Array): Uint8Array;
  decompress(block: Uint8Array, size: number): Uint8Array;
}

/** The npm candidates, adapted to raw blocks (both prepend a u32 LE size to lz4_flex blocks). */
function candidates(): { codecs: RawBlockCodec[]; missing: Lz4CandidateResult[] } {
  const require = createRequire(import.meta.url);
  const codecs: RawBlockCodec[] = [];
  const missing: Lz4CandidateResult[] = [];
  const withSize = (block: Uint8Array, size: number) => {
    const b = Buffer.allocUnsafe(block.length + 4);
    b.writeUInt32LE(size, 0);
    b.set(block, 4);
    return b;
  };
  try {
    const napi = require('lz4-napi') as {
      compressSync(d: Buffer): Buffer;
      uncompressSync(d: Uint8Array): Buffer;
    };
    codecs.push({
      name: 'lz4-napi 2.10 (native lz4_flex)',
      note: 'size-prepended blocks; adapted by copying',
      compress: (p) => napi.compressSync(Buffer.from(p.buffer, p.byteOffset, p.length)).subarray(4),
      decompress: (b, n) => napi.uncompressSync(withSize(b, n)),
    });
  } catch (err) {
    missing.push(notInstalled('lz4-napi', err));
  }
  try {
    const wasm = require('lz4-wasm-nodejs') as {
      compress(d: Uint8Array): Uint8Array;
      decompress(d: Uint8Array): Uint8Array;
    };
    codecs.push({
      name: 'lz4-wasm-nodejs 0.9 (WASM lz4_flex)',
      note: 'size-prepended blocks; adapted by copying',
      compress: (p) => wasm.compress(p).subarray(4),
      decompress: (b, n) => wasm.decompress(withSize(b, n)),
    });
  } catch (err) {
    missing.push(notInstalled('lz4-wasm-nodejs', err));
  }
  missing.push({
    implementation: 'lz4 0.6 (node-lz4)',
    note: 'not measured: installs by compiling with node-gyp (downloads Node headers); last release 2021',
    compressMBps: null,
    decompressMBps: null,
    ratio: null,
  });
  missing.push({
    implementation: 'lz4js 0.2',
    note: 'not measured: its documented API is frame-only',
    compressMBps: null,
    decompressMBps: null,
    ratio: null,
  });
  return { codecs, missing };
}

function notInstalled(name: string, err: unknown): Lz4CandidateResult {
  return {
    implementation: name,
    note: `not installed (${String(err).split('\n')[0]})`,
    compressMBps: null,
    decompressMBps: null,
    ratio: null,
  };
}

export async function runLtxCodecBench(options: LtxCodecBenchOptions = {}): Promise<LtxCodecBenchResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const roundMs = options.roundMs ?? 400;
  const rounds = options.rounds ?? 3;
  await initZstd();
  log('ltx-codec: building the sample database ...');
  const sample = buildSampleDatabase({ users: options.users ?? 20_000 });
  const { pages, pageSize } = sample;
  const dataBytes = pages.length * pageSize;
  log(`ltx-codec: ${pages.length} pages of ${pageSize} bytes (${(dataBytes / MB).toFixed(1)} MiB)`);
  const header = snapshotHeader(pageSize, pages.length);

  const crc64MBps = measure(dataBytes, roundMs, rounds, () => {
    const crc = new Crc64();
    for (const p of pages) crc.update(p.data);
  });
  log(`ltx-codec: crc64 ${crc64MBps} MiB/s`);

  const encodings: EncodingResult[] = [];
  const variants: Array<[PageEncoding, Lz4Compressor]> = [
    ['lz4-block', 'native'],
    ['lz4-block', 'pierrec'],
    ['lz4-frame', 'native'],
    ['lz4-frame', 'pierrec'],
    ['zstd', 'native'],
  ];
  for (const [encoding, compressor] of variants) {
    const file = encodeLtxFile(header, pages, { encoding, compressor });
    const tail = parsePageIndexTail(file, file.length);
    if (tail.kind !== 'ok') throw new Error('index did not parse');
    const frames = tail.index.map((e) => file.subarray(e.offset, e.offset + e.size));
    const result: EncodingResult = {
      encoding,
      compressor,
      ratio: Number((dataBytes / file.length).toFixed(2)),
      fileBytes: file.length,
      encodeMBps: measure(dataBytes, roundMs, rounds, () =>
        encodeLtxFile(header, pages, { encoding, compressor }),
      ),
      decodeVerifiedMBps: measure(dataBytes, roundMs, rounds, () => decodeLtxFile(file)),
      randomAccessMBps: measure(dataBytes, roundMs, rounds, () => {
        for (const f of frames) decodePageFrame(f, pageSize);
      }),
    };
    log(`ltx-codec: ${JSON.stringify(result)}`);
    encodings.push(result);
  }

  // LZ4 raw block implementations on the same pages.
  const ours: RawBlockCodec = {
    name: 'ltxvfs JS (pierrec-identical compressor)',
    note: 'raw blocks; decodes into a caller buffer',
    compress: (p) => {
      const out = new Uint8Array(lz4Bound(p.length));
      return out.subarray(0, lz4CompressBlock(p, out));
    },
    decompress: (b, n) => {
      const out = new Uint8Array(n);
      lz4DecompressBlock(b, 0, b.length, out, 0, n);
      return out;
    },
  };
  const { codecs, missing } = candidates();
  const lz4: Lz4CandidateResult[] = [];
  for (const codec of [ours, ...codecs]) {
    const blocks = pages.map((p) => codec.compress(p.data));
    // Every candidate's blocks must decode with ours to the same page (they are all raw LZ4).
    for (const [i, b] of blocks.entries()) {
      if (!Buffer.from(ours.decompress(b, pageSize)).equals(Buffer.from(pages[i]?.data ?? []))) {
        throw new Error(`${codec.name}: block of page ${i + 1} does not round-trip`);
      }
    }
    const compressed = blocks.reduce((n, b) => n + b.length, 0);
    const ourBlocks = pages.map((p) => ours.compress(p.data));
    const row: Lz4CandidateResult = {
      implementation: codec.name,
      note: codec.note,
      compressMBps: measure(dataBytes, roundMs, rounds, () => {
        for (const p of pages) codec.compress(p.data);
      }),
      decompressMBps: measure(dataBytes, roundMs, rounds, () => {
        for (const b of ourBlocks) codec.decompress(b, pageSize);
      }),
      ratio: Number((dataBytes / compressed).toFixed(2)),
    };
    log(`ltx-codec: ${JSON.stringify(row)}`);
    lz4.push(row);
  }
  lz4.push(...missing);

  const machine = { cpu: cpus()[0]?.model ?? 'unknown', node: process.version };
  const markdown = [
    `### LTX codec: ${pages.length} pages of ${pageSize} B from a real SQLite database (${(dataBytes / MB).toFixed(1)} MiB), one core`,
    '',
    `${machine.cpu}, Node ${machine.node}. MiB/s of page data per CPU-second, best of ${rounds} rounds; load average ${(loadavg()[0] ?? 0).toFixed(1)} on ${cpus().length} CPUs during the run.`,
    '',
    `LZ4 block pages are decoded by the ${lz4DecoderKind === 'native' ? 'native (lz4-napi)' : 'JS'} decoder; the default ('native') compressor is ${lz4CompressorKind === 'native' ? 'lz4-napi' : 'the JS one (lz4-napi not loaded)'} (LTXVFS_LZ4=js forces JS for both). CRC-64 (file checksum): ${crc64MBps}.`,
    '',
    '| encoding | compressor | ratio | encode (file) | decode + verify (file) | random-access frame decode |',
    '|---|---|---:|---:|---:|---:|',
    ...encodings.map(
      (e) =>
        `| ${e.encoding} | ${e.encoding === 'zstd' ? '-' : e.compressor} | ${e.ratio} | ${e.encodeMBps} | ${e.decodeVerifiedMBps} | ${e.randomAccessMBps} |`,
    ),
    '',
    '| LZ4 block implementation | ratio | compress | decompress | note |',
    '|---|---:|---:|---:|---|',
    ...lz4.map(
      (r) =>
        `| ${r.implementation} | ${r.ratio ?? '-'} | ${r.compressMBps ?? '-'} | ${r.decompressMBps ?? '-'} | ${r.note} |`,
    ),
    '',
  ].join('\n');
  const result: LtxCodecBenchResult = {
    lz4Decoder: lz4DecoderKind,
    lz4Compressor: lz4CompressorKind,
    crc64MBps,
    machine,
    pages: pages.length,
    pageSize,
    dataBytes,
    encodings,
    lz4,
    markdown,
  };
  const outFile =
    options.outFile === undefined
      ? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'ltx-codec.json')
      : options.outFile;
  if (outFile) {
    mkdirSync(dirname(outFile), { recursive: true });
    const { markdown: _, ...json } = result;
    writeFileSync(outFile, `${JSON.stringify(json, null, 2)}\n`);
  }
  return result;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  runLtxCodecBench(quick ? { users: 4000, roundMs: 150, rounds: 2 } : {}).then(
    (r) => process.stdout.write(r.markdown),
    (err) => {
      process.stderr.write(`ltx-codec: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
