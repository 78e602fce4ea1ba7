import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import * as SQLite from '@journeyapps/wa-sqlite';
import { LtxvfsError } from '../src/util/errors.js';

/**
 * Which wa-sqlite build runs: "jspi" on a Node whose WebAssembly has JS promise integration
 * (`WebAssembly.Suspending`, Node 24+), otherwise "asyncify" (Node 20/22). Both let a VFS await;
 * JSPI suspends the wasm stack natively instead of unwinding and replaying it. "sync" is the
 * plain build, whose VFS can never wait: the Node API runs statements on it only while every page
 * they read is local (see LocalFastPath), because it is 2x faster than Asyncify on a scan and
 * skips JSPI's stack switch on every page read.
 */
export type WaSqliteBuild = 'asyncify' | 'jspi' | 'sync';

/** One instantiated wa-sqlite module (its own wasm memory) plus the JS API bound to it. */
export interface WaSqliteInstance {
  readonly module: WaSqliteModule;
  readonly sqlite3: SQLiteAPI;
  readonly build: WaSqliteBuild;
}

// The builds target web/worker only: Node's fetch cannot read the wasm from a file: URL, so we
// hand the bytes over.
const BUILDS: Record<WaSqliteBuild, { factory: string; wasm: string }> = {
  asyncify: {
    factory: '@journeyapps/wa-sqlite/dist/wa-sqlite-async.mjs',
    wasm: '@journeyapps/wa-sqlite/dist/wa-sqlite-async.wasm',
  },
  jspi: {
    factory: '@journeyapps/wa-sqlite/dist/wa-sqlite-jspi.mjs',
    wasm: '@journeyapps/wa-sqlite/dist/wa-sqlite-jspi.wasm',
  },
  sync: {
    factory: '@journeyapps/wa-sqlite/dist/wa-sqlite.mjs',
    wasm: '@journeyapps/wa-sqlite/dist/wa-sqlite.wasm',
  },
};

// The project's lib settings (ES2022, @types/node 20) do not declare WebAssembly; these few
// opaque shapes are all this file needs.
type CompiledWasm = { readonly compiled: unique symbol };
type WasmInstance = { readonly instance: unique symbol };
interface WasmApi {
  compile(bytes: Uint8Array): Promise<CompiledWasm>;
  instantiate(module: CompiledWasm, imports: object): Promise<WasmInstance>;
  Suspending?: unknown;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
type ModuleFactory = (config: object) => Promise<unknown>;

/**
 * The build this process uses: JSPI where the runtime has it. LTXVFS_WASM_BUILD=asyncify forces
 * the Asyncify build (to compare the two on one Node); asking for jspi where it is missing fails.
 */
export function defaultBuild(): 'asyncify' | 'jspi' {
  const hasJspi = typeof wasm.Suspending === 'function';
  const forced = process.env.LTXVFS_WASM_BUILD;
  if (forced === 'asyncify') return 'asyncify';
  if (forced === 'jspi') {
    if (!hasJspi) {
      throw new LtxvfsError(
        'BAD_ARGUMENT',
        `LTXVFS_WASM_BUILD=jspi needs WebAssembly.Suspending (Node 24 or newer); this is Node ${process.versions.node}`,
      );
    }
    return 'jspi';
  }
  if (forced !== undefined && forced !== '') {
    throw new LtxvfsError('BAD_ARGUMENT', `LTXVFS_WASM_BUILD must be "asyncify" or "jspi", not "${forced}"`);
  }
  return hasJspi ? 'jspi' : 'asyncify';
}

/**
 * wa-sqlite's glue decodes the name of the VFS method from wasm memory on every call into the VFS
 * (about 90 ns each, eight calls per point lookup). The names are C string constants, so their
 * addresses never change: the factory is loaded with that decode remembered per address. Where
 * the glue does not have the expected shape (another wa-sqlite release), it loads unchanged.
 */
const METHOD_NAME_DECODE = 'receiver[methodName=UTF8ToString(args.shift())]';
const REMEMBERED_DECODE =
  'receiver[methodName=ltxvfsMethodNames.get(args[0])??ltxvfsMethodName(args[0]),args.shift(),methodName]';
const REMEMBER_NAMES =
  'var ltxvfsMethodNames=new Map;function ltxvfsMethodName(p){var n=UTF8ToString(p);ltxvfsMethodNames.set(p,n);return n}';

/** The factory source with the method-name decode remembered, or null where it has another shape. */
export function rememberMethodNames(source: string): string | null {
  const at = source.indexOf(METHOD_NAME_DECODE);
  const glue = source.indexOf('var adapters_support=');
  if (at < 0 || glue < 0 || source.indexOf(METHOD_NAME_DECODE, at + 1) >= 0) return null;
  return `${source.slice(0, glue)}${REMEMBER_NAMES};${source.slice(glue, at)}${REMEMBERED_DECODE}${source.slice(at + METHOD_NAME_DECODE.length)}`;
}

/** Which builds loaded with the remembered method names (for tests and diagnostics). */
export const patchedBuilds = new Set<string>();

async function importFactory(path: string): Promise<{ default: ModuleFactory }> {
  const patched = rememberMethodNames(readFileSync(path, 'utf8'));
  if (patched === null) return import(pathToFileURL(path).href) as Promise<{ default: ModuleFactory }>;
  patchedBuilds.add(path);
  return import(`data:text/javascript;base64,${Buffer.from(patched).toString('base64')}`) as Promise<{
    default: ModuleFactory;
  }>;
}

const loaded = new Map<WaSqliteBuild, Promise<{ compiled: CompiledWasm; factory: ModuleFactory }>>();

function loadOnce(build: WaSqliteBuild): Promise<{ compiled: CompiledWasm; factory: ModuleFactory }> {
  let entry = loaded.get(build);
  if (!entry) {
    const { factory, wasm: wasmPath } = BUILDS[build];
    const require = createRequire(import.meta.url);
    entry = Promise.all([
      wasm.compile(readFileSync(require.resolve(wasmPath))),
      importFactory(require.resolve(factory)),
    ]).then(([compiled, mod]) => ({ compiled, factory: mod.default }));
    loaded.set(build, entry);
  }
  return entry;
}

/**
 * A fresh module instance. Compiling happens once per process and build; each instance costs
 * only an instantiation (a few ms), which is what makes a pool of instances for parallel queries
 * cheap.
 */
export async function instantiateWaSqlite(build: WaSqliteBuild = defaultBuild()): Promise<WaSqliteInstance> {
  const { compiled, factory } = await loadOnce(build);
  const module = (await factory({
    instantiateWasm(imports: object, done: (instance: WasmInstance, module: CompiledWasm) => void) {
      wasm.instantiate(compiled, imports).then((instance) => done(instance, compiled));
      return {};
    },
  })) as WaSqliteModule;
  return { module, sqlite3: SQLite.Factory(module), build };
}
