import { createRequire } from 'node:module';
import { LtxvfsError } from '../util/errors.js';

/**
 * The optional zstd page encoding (ltxvfs's own; see PAGE_FLAG_ZSTD), through `zstd-codec`
 * (Emscripten WASM). Its module initialises asynchronously, once per process, after which
 * compress/decompress are synchronous. Call `await initZstd()` before encoding or decoding zstd
 * pages with the synchronous APIs; the streaming decoder and the compactor do it themselves.
 */
interface ZstdSimple {
  compress(data: Uint8Array, level?: number): Uint8Array | null;
  decompress(data: Uint8Array): Uint8Array | null;
}
interface ZstdGeneric {
  contentSize(data: Uint8Array): number | null;
}
interface ZstdApi {
  Simple: new () => ZstdSimple;
  Generic: new () => ZstdGeneric;
}
interface ZstdCodecModule {
  ZstdCodec: { run(callback: (zstd: ZstdApi) => void): void };
}

const ZSTD_LEVEL = 3;

let ready: { simple: ZstdSimple; generic: ZstdGeneric } | undefined;
let initializing: Promise<void> | undefined;

export function initZstd(): Promise<void> {
  if (ready) return Promise.resolve();
  if (!initializing) {
    initializing = new Promise<void>((resolve, reject) => {
      try {
        const require = createRequire(import.meta.url);
        const mod = require('zstd-codec') as ZstdCodecModule;
        mod.ZstdCodec.run((zstd) => {
          ready = { simple: new zstd.Simple(), generic: new zstd.Generic() };
          resolve();
        });
      } catch (err) {
        initializing = undefined;
        reject(
          new LtxvfsError('LTX_ZSTD_UNINITIALIZED', `cannot load zstd-codec: ${String(err)}`, { cause: err }),
        );
      }
    });
  }
  return initializing;
}

export function isZstdReady(): boolean {
  return ready !== undefined;
}

function codec(): { simple: ZstdSimple; generic: ZstdGeneric } {
  if (!ready) {
    throw new LtxvfsError(
      'LTX_ZSTD_UNINITIALIZED',
      'zstd page encoding used before initialisation: call `await initZstd()` from ltxvfs/ltx first',
    );
  }
  return ready;
}

export function zstdCompressPage(page: Uint8Array): Uint8Array {
  const out = codec().simple.compress(page, ZSTD_LEVEL);
  if (!out) throw new LtxvfsError('LTX_ENCODE', `zstd failed to compress a ${page.length}-byte page`);
  return out;
}

/** Decompresses one zstd frame that must declare and hold exactly pageSize bytes. */
export function zstdDecompressPage(frame: Uint8Array, pageSize: number): Uint8Array {
  const { simple, generic } = codec();
  let out: Uint8Array | null;
  try {
    // The declared size is checked first: zstd-codec allocates whatever the frame declares.
    const declared = generic.contentSize(frame);
    if (declared !== pageSize) {
      throw new LtxvfsError(
        'LTX_BAD_COMPRESSION',
        `invalid zstd frame: declares ${declared ?? 'no'} content size, expected the page size ${pageSize}`,
      );
    }
    out = simple.decompress(frame);
  } catch (err) {
    if (err instanceof LtxvfsError) throw err;
    throw new LtxvfsError('LTX_BAD_COMPRESSION', `invalid zstd frame: ${String(err)}`, { cause: err });
  }
  if (!out || out.length !== pageSize) {
    throw new LtxvfsError(
      'LTX_BAD_COMPRESSION',
      `invalid zstd frame: does not decompress to ${pageSize} bytes`,
    );
  }
  return out;
}
