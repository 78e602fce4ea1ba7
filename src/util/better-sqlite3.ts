import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { LtxvfsError } from './errors.js';

export type BetterSqlite3Constructor = typeof BetterSqlite3;

let loaded: BetterSqlite3Constructor | undefined;

/**
 * better-sqlite3, loaded on first use. It is a native module that compiles on install, and only
 * the writer side (replicate, the demo, follow mode) needs it, so it is an optional peer
 * dependency: a read-only install never builds it. `feature` names what needed it in the error.
 */
export function loadBetterSqlite3(feature: string): BetterSqlite3Constructor {
  if (loaded !== undefined) return loaded;
  try {
    loaded = createRequire(import.meta.url)('better-sqlite3') as BetterSqlite3Constructor;
  } catch (err) {
    throw new LtxvfsError(
      'MISSING_DEPENDENCY',
      `${feature} needs the package "better-sqlite3", which is not installed: npm install better-sqlite3@12 (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`,
      { cause: err },
    );
  }
  return loaded;
}
