/**
 * Whether the next L0 file can continue the replica from the WAL or must carry every page. Pure:
 * the caller reads the WAL header, the checksum at the cursor and the database file's
 * fingerprint; this decides. Anything that cannot be proven continuous gets a snapshot-style L0
 * (correct but larger); only a proof gets an incremental one or "nothing to do".
 */

/** What identifies the database file's content when no WAL is present. */
export interface DbFingerprint {
  size: number;
  /** Modification time in nanoseconds (a decimal string: beyond Number's precision). */
  mtimeNs: string;
  dev: number;
  ino: number;
  /** Hex digest of page 1's bytes (file change counter, schema cookie, sqlite_schema root). */
  page1: string;
}

/** The WAL header fields continuity depends on. */
export interface WalGeneration {
  salt1: number;
  salt2: number;
  checkpointSeq: number;
}

/** Where the last replicated state ended in the WAL. */
export interface CursorPosition extends WalGeneration {
  checksum1: number;
  checksum2: number;
}

export interface ContinuityInput {
  /** The WAL's header now; null when there is no WAL, it is empty or it does not verify. */
  wal: WalGeneration | null;
  /** The page size now (from the WAL header or the database header); 0 for an empty database. */
  pageSize: number;
  /** The last replicated state; undefined before the first sync. */
  state:
    | {
        txid: number;
        pageSize: number;
        /** null: there was no WAL at that state. */
        cursor: CursorPosition | null;
        /** The database file at that state; undefined when the state predates fingerprints. */
        fingerprint?: DbFingerprint;
      }
    | undefined;
  /** The cumulative checksum the current WAL holds at the cursor (same salts only), if any. */
  checksumAtCursor: { checksum1: number; checksum2: number } | null;
  /** The database file now. */
  fingerprint: DbFingerprint;
  /** A snapshot the replicator already knows it owes (replaced file, TRUNCATE, ...). */
  pendingSnapshot: string | undefined;
  /**
   * True when one WAL restart since the cursor is known to be continuous: the restart came after
   * every frame was copied, in the read epoch this replicator allowed it (its own checkpoint, or
   * its read transaction held since a state without a WAL).
   */
  restartAllowed: boolean;
}

export type SyncDecision =
  | { kind: 'none' }
  | { kind: 'incremental'; from: 'cursor' | 'wal-start' }
  | { kind: 'snapshot'; reason: string };

export function sameFingerprint(a: DbFingerprint, b: DbFingerprint): boolean {
  return (
    a.size === b.size && a.mtimeNs === b.mtimeNs && a.dev === b.dev && a.ino === b.ino && a.page1 === b.page1
  );
}

export function decideSync(input: ContinuityInput): SyncDecision {
  const { wal, state } = input;
  if (input.pageSize === 0) return { kind: 'none' };
  if (!state || state.txid === 0) return { kind: 'snapshot', reason: input.pendingSnapshot ?? 'first sync' };
  if (input.pendingSnapshot) return { kind: 'snapshot', reason: input.pendingSnapshot };
  if (state.pageSize !== input.pageSize) return { kind: 'snapshot', reason: 'page size changed' };
  if (
    state.fingerprint &&
    (state.fingerprint.ino !== input.fingerprint.ino || state.fingerprint.dev !== input.fingerprint.dev)
  )
    return { kind: 'snapshot', reason: 'database file replaced' };

  const cursor = state.cursor;
  if (wal && cursor && wal.salt1 === cursor.salt1 && wal.salt2 === cursor.salt2) {
    const at = input.checksumAtCursor;
    if (at && at.checksum1 === cursor.checksum1 && at.checksum2 === cursor.checksum2)
      return { kind: 'incremental', from: 'cursor' };
    return { kind: 'snapshot', reason: 'WAL changed at the last copied frame' };
  }
  if (input.restartAllowed && wal) {
    const single =
      !cursor ||
      (wal.salt1 === (cursor.salt1 + 1) >>> 0 && wal.checkpointSeq === (cursor.checkpointSeq + 1) >>> 0);
    if (single) return { kind: 'incremental', from: 'wal-start' };
    return { kind: 'snapshot', reason: 'WAL restarted more than once' };
  }
  if (!wal && !cursor) {
    // Everything was in the database file and still is: only the file itself can say whether it
    // changed (an application that wrote and closed, wrote in rollback mode, VACUUMed).
    if (!state.fingerprint)
      return { kind: 'snapshot', reason: 'no fingerprint of the database file in the local state' };
    if (sameFingerprint(state.fingerprint, input.fingerprint)) return { kind: 'none' };
    return { kind: 'snapshot', reason: 'database file changed while no WAL was present' };
  }
  if (input.restartAllowed && !wal) return { kind: 'none' };
  return {
    kind: 'snapshot',
    reason: wal ? 'WAL restarted by another process (salts changed)' : 'WAL reset or removed',
  };
}
