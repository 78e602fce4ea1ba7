import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { cliPath } from './cli.js';

/** What a query returns on a database, as SQLite reads it, and its integrity check. */
export function databaseContents(path: string, select: string): { rows: unknown[]; integrity: unknown } {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return { rows: db.prepare(select).all(), integrity: db.pragma('integrity_check', { simple: true }) };
  } finally {
    db.close();
  }
}

/**
 * Restores `replica` to `out` with the built CLI (`ltxvfs restore <replica> -o <out>`, exit 0) and
 * expects `select` to return the same rows there as on the primary `dbPath`, both files intact.
 */
export function expectRestoreEquals(dbPath: string, replica: string, out: string, select: string): void {
  const r = spawnSync(process.execPath, [cliPath, 'restore', replica, '-o', out], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  expect(databaseContents(out, select)).toEqual(databaseContents(dbPath, select));
}
