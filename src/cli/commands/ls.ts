import type { Command } from 'commander';
import { MAX_LEVEL } from '../../storage/index.js';
import type { LtxFileInfo } from '../../storage/types.js';
import { LtxvfsError } from '../../util/errors.js';
import { formatTxid } from '../../util/txid.js';
import { openCommandReplica } from '../open-replica.js';

interface LsOptions {
  level?: string;
  json?: boolean;
}

/**
 * Lists the LTX files of a replica from the storage listing alone (names, sizes, times), so it
 * works on any Litestream-layout replica without decoding a byte of LTX.
 */
export function register(program: Command): void {
  program
    .command('ls')
    .description('list the LTX files of a replica: level, TXID range, size, creation time')
    .argument('<replica-url>', 's3://bucket/path, file:///abs/dir, or a directory')
    .option('--level <level>', `only this level (0-${MAX_LEVEL}; 9 = snapshots)`)
    .option('--json', 'print one JSON array of {level, minTxid, maxTxid, size, createdAt}')
    .action(async (url: string, options: LsOptions) => {
      const level = options.level === undefined ? undefined : parseLevel(options.level);
      const client = await openCommandReplica(url);
      try {
        const levels = level === undefined ? await client.levels() : [level];
        const files: LtxFileInfo[] = [];
        for (const l of levels) files.push(...(await client.listFiles(l)));
        process.stdout.write(options.json ? formatJson(files) : formatTable(files));
      } finally {
        await client.close();
      }
    });
}

function parseLevel(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > MAX_LEVEL) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `invalid --level "${text}": expected an integer from 0 to ${MAX_LEVEL}`,
    );
  }
  return Number(text);
}

function formatJson(files: LtxFileInfo[]): string {
  const rows = files.map((f) => ({
    level: f.level,
    minTxid: formatTxid(f.minTxid),
    maxTxid: formatTxid(f.maxTxid),
    size: f.size,
    createdAt: f.createdAt.toISOString(),
  }));
  return `${JSON.stringify(rows, null, 2)}\n`;
}

function formatTable(files: LtxFileInfo[]): string {
  const header = ['LEVEL', 'MIN_TXID', 'MAX_TXID', 'SIZE', 'CREATED'];
  const rows = files.map((f) => [
    String(f.level),
    formatTxid(f.minTxid),
    formatTxid(f.maxTxid),
    String(f.size),
    f.createdAt.toISOString(),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const rightAligned = [true, false, false, true, false];
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (rightAligned[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const summary = `${files.length} file${files.length === 1 ? '' : 's'}, ${total} bytes`;
  return `${[line(header), ...rows.map(line), summary].join('\n')}\n`;
}
