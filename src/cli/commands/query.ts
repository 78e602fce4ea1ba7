import type { Command } from 'commander';
import { createLtx, parseTimeTarget, type SqlValue, toDisplayText, toJsonValue } from '../../../vfs/index.js';
import { LtxvfsError } from '../../util/errors.js';
import { parseTxid } from '../../util/txid.js';

interface QueryOptions {
  txid?: string;
  timestamp?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('query')
    .description('run SQL on a replica without restoring it (read-only), at the latest or a past state')
    .argument('<replica-url>', 's3://bucket/path, file:///abs/dir, or a directory')
    .argument('<sql>', 'SQL to run; the rows of the last statement that returns rows are printed')
    .option('--txid <txid>', 'query the state at this TXID (decimal, 0x-hex or 16 hex digits)')
    .option('--timestamp <time>', "query the state at this time (ISO 8601, or relative like '-5 minutes')")
    .option('--json', 'print one JSON array of row objects (big integers as strings, blobs as hex)')
    .action(async (url: string, sql: string, options: QueryOptions) => {
      if (options.txid !== undefined && options.timestamp !== undefined) {
        throw new LtxvfsError('BAD_ARGUMENT', 'give either --txid or --timestamp, not both');
      }
      // Validate before touching the network, so a typo is reported as such.
      const txid = options.txid !== undefined ? parseTxid(options.txid) : undefined;
      const timestamp = options.timestamp !== undefined ? parseTimeTarget(options.timestamp) : undefined;
      const ltx = await createLtx({ instances: 1 });
      try {
        await ltx.registerReplica('replica', url, { pollIntervalMs: 0 });
        const db = await ltx.open('replica', { txid, timestamp });
        const { columns, rows } = await db.query(sql);
        process.stdout.write(options.json ? formatJson(columns, rows) : formatTable(columns, rows));
      } finally {
        await ltx.close();
      }
    });
}

function formatJson(columns: string[], rows: SqlValue[][]): string {
  const objects = rows.map((row) =>
    Object.fromEntries(columns.map((name, i) => [name, toJsonValue(row[i]!)])),
  );
  return `${JSON.stringify(objects)}\n`;
}

function formatTable(columns: string[], rows: SqlValue[][]): string {
  if (columns.length === 0) return '';
  const cells = rows.map((row) => row.map((v) => toDisplayText(v).replace(/\n/g, '\\n')));
  const widths = columns.map((name, i) => Math.max(name.length, ...cells.map((r) => r[i]!.length)));
  const numeric = columns.map(
    (_, i) => rows.length > 0 && rows.every((r) => r[i] === null || typeof r[i] !== 'string'),
  );
  const line = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join(' | ')
      .trimEnd();
  const out = [line(columns), widths.map((w) => '-'.repeat(w)).join('-+-'), ...cells.map(line)];
  out.push(`(${rows.length} row${rows.length === 1 ? '' : 's'})`);
  return `${out.join('\n')}\n`;
}
