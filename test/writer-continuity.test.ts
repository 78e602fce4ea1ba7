/** The continuity decision as a table: no SQLite, no files (issue 10, defect 1). */
import { describe, expect, it } from 'vitest';
import {
  type ContinuityInput,
  type DbFingerprint,
  decideSync,
  type SyncDecision,
} from '../src/writer/continuity.js';

const file: DbFingerprint = { size: 8192, mtimeNs: '1700000000123456789', dev: 1, ino: 42, page1: 'aa' };
const gen = { salt1: 10, salt2: 77, checkpointSeq: 3 };
const cursor = { ...gen, checksum1: 5, checksum2: 6 };
const base: ContinuityInput = {
  wal: gen,
  pageSize: 4096,
  state: { txid: 7, pageSize: 4096, cursor, fingerprint: file },
  checksumAtCursor: { checksum1: 5, checksum2: 6 },
  fingerprint: file,
  pendingSnapshot: undefined,
  restartAllowed: false,
};
const noWalState = { txid: 7, pageSize: 4096, cursor: null, fingerprint: file };
const snapshot = (reason: string): SyncDecision => ({ kind: 'snapshot', reason });

const table: [string, Partial<ContinuityInput>, SyncDecision][] = [
  ['empty database', { pageSize: 0, state: undefined }, { kind: 'none' }],
  ['first sync with a WAL', { state: undefined }, snapshot('first sync')],
  [
    'first sync without a WAL',
    { state: undefined, wal: null, checksumAtCursor: null },
    snapshot('first sync'),
  ],
  ['same WAL, nothing or more appended', {}, { kind: 'incremental', from: 'cursor' }],
  [
    'same salts, other frames at the cursor',
    { checksumAtCursor: { checksum1: 5, checksum2: 9 } },
    snapshot('WAL changed at the last copied frame'),
  ],
  [
    'same salts, WAL shorter than the cursor',
    { checksumAtCursor: null },
    snapshot('WAL changed at the last copied frame'),
  ],
  [
    'restarted once after our checkpoint',
    { wal: { salt1: 11, salt2: 1234, checkpointSeq: 4 }, restartAllowed: true, checksumAtCursor: null },
    { kind: 'incremental', from: 'wal-start' },
  ],
  [
    'restarted twice after our checkpoint',
    { wal: { salt1: 12, salt2: 1, checkpointSeq: 5 }, restartAllowed: true, checksumAtCursor: null },
    snapshot('WAL restarted more than once'),
  ],
  [
    'restarted by another process',
    { wal: { salt1: 11, salt2: 1234, checkpointSeq: 4 }, checksumAtCursor: null },
    snapshot('WAL restarted by another process (salts changed)'),
  ],
  [
    'WAL truncated or deleted after a WAL state',
    { wal: null, checksumAtCursor: null },
    snapshot('WAL reset or removed'),
  ],
  [
    'no WAL then and now, file unchanged',
    { wal: null, state: noWalState, checksumAtCursor: null },
    { kind: 'none' },
  ],
  [
    'no WAL then and now, file written (rollback mode, app closed, VACUUM)',
    {
      wal: null,
      state: noWalState,
      checksumAtCursor: null,
      fingerprint: { ...file, mtimeNs: '1700000000999999999' },
    },
    snapshot('database file changed while no WAL was present'),
  ],
  [
    'no WAL, same mtime but page 1 changed',
    { wal: null, state: noWalState, checksumAtCursor: null, fingerprint: { ...file, page1: 'bb' } },
    snapshot('database file changed while no WAL was present'),
  ],
  [
    'no WAL, size changed',
    { wal: null, state: noWalState, checksumAtCursor: null, fingerprint: { ...file, size: 12288 } },
    snapshot('database file changed while no WAL was present'),
  ],
  [
    'no WAL, state without a fingerprint (older version)',
    { wal: null, state: { txid: 7, pageSize: 4096, cursor: null }, checksumAtCursor: null },
    snapshot('no fingerprint of the database file in the local state'),
  ],
  [
    'no WAL, file changed, even while a restart is allowed',
    {
      wal: null,
      state: noWalState,
      checksumAtCursor: null,
      restartAllowed: true,
      fingerprint: { ...file, size: 1 },
    },
    snapshot('database file changed while no WAL was present'),
  ],
  [
    'a WAL appeared after a no-WAL state we hold a read on',
    { state: noWalState, restartAllowed: true, checksumAtCursor: null },
    { kind: 'incremental', from: 'wal-start' },
  ],
  [
    'a WAL appeared after a no-WAL state, new process',
    { state: noWalState, checksumAtCursor: null },
    snapshot('WAL restarted by another process (salts changed)'),
  ],
  [
    'database replaced (other inode)',
    { fingerprint: { ...file, ino: 43 } },
    snapshot('database file replaced'),
  ],
  ['page size changed', { pageSize: 8192 }, snapshot('page size changed')],
  [
    'a snapshot already owed',
    { pendingSnapshot: 'after a TRUNCATE checkpoint' },
    snapshot('after a TRUNCATE checkpoint'),
  ],
];

describe('decideSync', () => {
  for (const [name, change, expected] of table) {
    it(name, () => {
      expect(decideSync({ ...base, ...change })).toEqual(expected);
    });
  }
});
