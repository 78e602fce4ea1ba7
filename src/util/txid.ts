import { LtxvfsError } from './errors.js';

/**
 * TXIDs are u64 on disk but stay far below 2^53 in practice (one per primary sync), so they are
 * plain numbers in memory. Anything that would not fit exactly is rejected where it is read.
 */
export type Txid = number;

/** Litestream's textual form: exactly 16 lowercase hex digits. */
export function formatTxid(txid: Txid): string {
  return txid.toString(16).padStart(16, '0');
}

/** Accepts decimal, 0x-hex, or exactly 16 hex digits (Litestream's form). */
export function parseTxid(text: string): Txid {
  const s = text.trim();
  let value: bigint;
  if (/^[0-9a-fA-F]{16}$/.test(s)) value = BigInt(`0x${s}`);
  else if (/^0[xX][0-9a-fA-F]+$/.test(s)) value = BigInt(s);
  else if (/^[0-9]+$/.test(s)) value = BigInt(s);
  else
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `invalid TXID "${text}": expected decimal, 0x-hex, or 16 hex digits`,
    );
  return txidFromBigInt(value, `TXID "${text}"`);
}

export function txidFromBigInt(value: bigint, what: string): Txid {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < 0n) {
    throw new LtxvfsError('BAD_ARGUMENT', `${what} is out of range (must be between 0 and 2^53-1)`);
  }
  return Number(value);
}
