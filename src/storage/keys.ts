import { formatLtxFileName as ltxFileName, MAX_LEVEL } from '../ltx/names.js';
import { LtxvfsError } from '../util/errors.js';
import { formatTxid } from '../util/txid.js';
import type { LtxFileRef } from './types.js';

// The layout's facts live in src/ltx/names.ts; storage callers get them from here too.
export {
  formatLtxFileName as ltxFileName,
  LTX_NAME_PATTERN,
  MAX_LEVEL,
  parseLtxFileName,
  SNAPSHOT_LEVEL,
} from '../ltx/names.js';

export function assertLevel(level: number): void {
  if (!Number.isInteger(level) || level < 0 || level > MAX_LEVEL) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `invalid level ${level}: expected an integer from 0 to ${MAX_LEVEL}`,
    );
  }
}

export function assertFileRef(file: LtxFileRef): void {
  assertLevel(file.level);
  for (const txid of [file.minTxid, file.maxTxid]) {
    if (!Number.isSafeInteger(txid) || txid < 0) {
      throw new LtxvfsError('BAD_ARGUMENT', `invalid TXID ${txid} in LTX file reference`);
    }
  }
  if (file.minTxid > file.maxTxid) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `invalid LTX file reference: minTxid ${formatTxid(file.minTxid)} > maxTxid ${formatTxid(file.maxTxid)}`,
    );
  }
}

/** S3 layout: level as 4 lowercase hex digits, no `ltx/` segment. */
export function s3LevelSegment(level: number): string {
  return level.toString(16).padStart(4, '0');
}

/** Level of an S3 level segment (`0000`..`0009`), or null. */
export function parseS3LevelSegment(segment: string): number | null {
  if (!/^[0-9a-f]{4}$/.test(segment)) return null;
  const level = Number.parseInt(segment, 16);
  return level <= MAX_LEVEL ? level : null;
}

/** `PATH/<level 4 hex>/` with PATH normalised (no leading or trailing slash; may be empty). */
export function s3LevelPrefix(path: string, level: number): string {
  return `${s3PathPrefix(path)}${s3LevelSegment(level)}/`;
}

export function s3LtxKey(path: string, file: LtxFileRef): string {
  return `${s3LevelPrefix(path, file.level)}${ltxFileName(file.minTxid, file.maxTxid)}`;
}

/** `PATH/` or `` for the bucket root. */
export function s3PathPrefix(path: string): string {
  return path === '' ? '' : `${path}/`;
}

/** File layout: `ltx/<level decimal>`, relative to the replica root. */
export function fileLevelDir(level: number): string {
  return `ltx/${level}`;
}

/** Level of a file-layout level directory name (`0`..`9`), or null. */
export function parseFileLevelDir(name: string): number | null {
  if (!/^[0-9]$/.test(name)) return null;
  return Number(name);
}

/**
 * Names of small objects (e.g. `lock.json`) are relative, `/`-separated, without `.`/`..` or
 * empty segments, so that they mean the same key on S3 and the same path inside a file root.
 */
export function assertObjectName(name: string): void {
  const segments = name.split('/');
  const bad =
    name === '' ||
    name.includes('\\') ||
    name.includes('\0') ||
    segments.some((s) => s === '' || s === '.' || s === '..');
  if (bad) {
    throw new LtxvfsError(
      'STORAGE_PATH_ESCAPE',
      `invalid object name "${name}": must be a relative path without empty, "." or ".." segments`,
    );
  }
}
