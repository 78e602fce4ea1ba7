import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as SQLite from '@journeyapps/wa-sqlite';
import AsyncModuleFactory from '@journeyapps/wa-sqlite/dist/wa-sqlite-async.mjs';

/** One instantiated wa-sqlite module (its own wasm memory) plus the JS API bound to it. */
export interface WaSqliteInstance {
  readonly module: WaSqliteModule;
  readonly sqlite3: SQLiteAPI;
}

// Node 20 has no JSPI, so the Asyncify build is the only one that lets a VFS await. The builds
// target web/worker only: Node's fetch cannot read the wasm from a file: URL, so we hand it over.
const ASYNC_WASM = '@journeyapps/wa-sqlite/dist/wa-sqlite-async.wasm';

// The project's lib settings (ES2022, @types/node 20) do not declare WebAssembly; these few
// opaque shapes are all this file needs.
type CompiledWasm = { readonly compiled: unique symbol };
type WasmInstance = { readonly instance: unique symbol };
interface WasmApi {
  compile(bytes: Uint8Array): Promise<CompiledWasm>;
  instantiate(module: CompiledWasm, imports: object): Promise<WasmInstance>;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let compiled: Promise<CompiledWasm> | undefined;

function compileOnce(): Promise<CompiledWasm> {
  if (!compiled) {
    const require = createRequire(import.meta.url);
    const bytes = readFileSync(require.resolve(ASYNC_WASM));
    compiled = wasm.compile(bytes);
  }
  return compiled;
}

/**
 * A fresh module instance. Compiling happens once per process; each instance costs only an
 * instantiation (a few ms), which is what makes a pool of instances for parallel queries cheap.
 */
export async function instantiateWaSqlite(): Promise<WaSqliteInstance> {
  const wasmModule = await compileOnce();
  const module = (await AsyncModuleFactory({
    instantiateWasm(imports: object, done: (instance: WasmInstance, module: CompiledWasm) => void) {
      wasm.instantiate(wasmModule, imports).then((instance) => done(instance, wasmModule));
      return {};
    },
  })) as WaSqliteModule;
  return { module, sqlite3: SQLite.Factory(module) };
}
