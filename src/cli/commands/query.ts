import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import {
  createLtx,
  type HydrationStatus,
  parseTimeTarget,
  type SqlValue,
  toDisplayText,
  toJsonValue,
} from '../../../vfs/index.js';
import { hydrationSidecarPath } from '../../replica/hydrator.js';
import { Replica } from '../../replica/replica.js';
import { LtxvfsError } from '../../util/errors.js';
import { formatTxid, parseTxid } from '../../util/txid.js';
import { openCommandReplica } from '../open-replica.js';
import { formatMiB, progressBar, StatusLine } from '../progress.js';

interface QueryOptions {
  txid?: string;
  timestamp?: string;
  json?: boolean;
  hydrate?: string;
  /** false with --no-manifest. */
  manifest?: boolean;
  verbose?: boolean;
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
    .option(
      '--hydrate <path>',
      'meanwhile download the whole database (latest TXID) into this SQLite file, and wait until it is ' +
        'complete; again with the same path, only what changed is fetched (state in <path>.ltxvfs-hydration.json)',
    )
    .option(
      '--no-manifest',
      "list the replica instead of looking for the ltxvfs writer's manifest first: one round trip " +
        'less on a replica Litestream wrote (which has none)',
    )
    .option(
      '-v, --verbose',
      "print the replica's log on stderr, and hydration progress when stderr is not a terminal",
    )
    .action(async (url: string, sql: string, options: QueryOptions) => {
      if (options.txid !== undefined && options.timestamp !== undefined) {
        throw new LtxvfsError('BAD_ARGUMENT', 'give either --txid or --timestamp, not both');
      }
      // Validate before touching the network, so a typo is reported as such.
      const txid = options.txid !== undefined ? parseTxid(options.txid) : undefined;
      const timestamp = options.timestamp !== undefined ? parseTimeTarget(options.timestamp) : undefined;
      const hydratePath = options.hydrate;
      if (hydratePath !== undefined) assertHydrationTarget(hydratePath);
      const status = new StatusLine(process.stderr, { plain: options.verbose === true });
      const logger = options.verbose
        ? (line: string) => status.print(process.stderr, `${line}\n`)
        : undefined;
      const client = await openCommandReplica(url);
      const ltx = await createLtx({ instances: 1, logger });
      try {
        const replica = await ltx.registerReplica('replica', client, {
          pollIntervalMs: 0,
          hydratePath,
          manifest: options.manifest !== false,
        });
        const hydrated =
          hydratePath !== undefined && replica instanceof Replica
            ? hydration(replica, hydratePath, status)
            : undefined;
        // Awaited below; a failed query must not leave it as an unhandled rejection.
        hydrated?.catch(() => {});
        const db = await ltx.open('replica', { txid, timestamp });
        const { columns, rows } = await db.query(sql);
        status.print(process.stdout, options.json ? formatJson(columns, rows) : formatTable(columns, rows));
        if (hydrated !== undefined) {
          const done = await hydrated;
          status.finish(
            `hydrated ${hydratePath} at TXID ${formatTxid(done.txid)} (${done.pagesTotal} pages, ${formatMiB(done.bytesDownloaded)} downloaded)`,
          );
        }
      } finally {
        status.clear();
        await ltx.close();
        await client.close();
      }
    });
}

/** Refuses to overwrite a file that is not a hydration of a replica (no sidecar beside it). */
function assertHydrationTarget(path: string): void {
  if (existsSync(path) && !existsSync(hydrationSidecarPath(path))) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `--hydrate ${path}: the file exists and is not a hydrated replica (no ${hydrationSidecarPath(path)}); remove it or choose another path`,
    );
  }
}

/** Resolves when the file is complete, showing progress; rejects when hydration failed. */
function hydration(replica: Replica, path: string, status: StatusLine): Promise<HydrationStatus> {
  return new Promise((resolve, reject) => {
    const onStatus = (s: HydrationStatus) => {
      if (s.state === 'done') {
        replica.off('hydration', onStatus);
        resolve(s);
      } else if (s.state === 'error') {
        replica.off('hydration', onStatus);
        reject(
          new LtxvfsError('HYDRATION_FAILED', `hydration of ${path} failed: ${s.error ?? 'unknown error'}`),
        );
      } else if (s.pagesTotal > 0) {
        const fraction = s.pagesTotal > 0 ? s.pagesDone / s.pagesTotal : 0;
        status.update(
          `hydrating ${progressBar(fraction)} ${s.pagesDone}/${s.pagesTotal} pages, ${formatMiB(s.bytesDownloaded)}`,
        );
      }
    };
    replica.on('hydration', onStatus);
    onStatus(replica.hydration());
  });
}

function formatJson(columns: string[], rows: SqlValue[][]): string {
  const objects = rows.map((row) =>
    Object.fromEntries(columns.map((name, i) => [name, toJsonValue(row[i] ?? null)])),
  );
  return `${JSON.stringify(objects)}\n`;
}

function formatTable(columns: string[], rows: SqlValue[][]): string {
  if (columns.length === 0) return '';
  const cells = rows.map((row) => row.map((v) => toDisplayText(v).replace(/\n/g, '\\n')));
  const widths = columns.map((name, i) => Math.max(name.length, ...cells.map((r) => (r[i] ?? '').length)));
  const numeric = columns.map(
    (_, i) => rows.length > 0 && rows.every((r) => r[i] === null || typeof r[i] !== 'string'),
  );
  const line = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0)))
      .join(' | ')
      .trimEnd();
  const out = [line(columns), widths.map((w) => '-'.repeat(w)).join('-+-'), ...cells.map(line)];
  out.push(`(${rows.length} row${rows.length === 1 ? '' : 's'})`);
  return `${out.join('\n')}\n`;
}
