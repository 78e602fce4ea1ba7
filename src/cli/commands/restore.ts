import type { Command } from 'commander';
import { type RestoreProgress, restore } from '../../replica/restore.js';
import { LtxvfsError } from '../../util/errors.js';
import { formatTxid, parseTxid } from '../../util/txid.js';
import { openCommandReplica } from '../open-replica.js';
import { formatMiB, progressBar, StatusLine } from '../progress.js';

interface RestoreFlags {
  output: string;
  txid?: string;
  timestamp?: string;
  force?: boolean;
}

/** A progress bar on a terminal, for restores bigger than this. */
const PROGRESS_MIN_BYTES = 8 * 1024 * 1024;

export function register(program: Command): void {
  program
    .command('restore')
    .description('restore the database at a TXID or time (default: the latest) into a new file')
    .argument('<replica-url>', 's3://bucket/path, file:///abs/dir, or a directory')
    .requiredOption('-o, --output <out.db>', 'the file to write, required (temp file, fsync, rename)')
    .option('--txid <txid>', 'restore exactly this TXID (decimal, 0x-hex or 16 hex digits)')
    .option('--timestamp <time>', 'restore the newest state created at or before this RFC 3339 time')
    .option('--force', 'overwrite the output file if it exists')
    .action(async (url: string, flags: RestoreFlags) => {
      const txid = flags.txid === undefined ? undefined : parseTxid(flags.txid);
      const timestamp = flags.timestamp === undefined ? undefined : parseTimestamp(flags.timestamp);
      const client = await openCommandReplica(url);
      // A bar on a terminal only; a pipe gets just the result line.
      const status = new StatusLine(process.stderr);
      const onProgress = (p: RestoreProgress) => {
        if (p.bytesTotal < PROGRESS_MIN_BYTES) return;
        const text = `restoring ${progressBar(p.bytesRead / p.bytesTotal)} (${p.filesDone}/${p.files} files, ${formatMiB(p.bytesRead)})`;
        if (p.filesDone === p.files) status.finish(text);
        else status.update(text);
      };
      try {
        const result = await restore({
          client,
          outPath: flags.output,
          txid,
          timestamp,
          force: flags.force,
          onProgress,
        });
        process.stdout.write(
          `restored TXID ${formatTxid(result.txid)} (${result.commit} pages of ${result.pageSize} bytes, ${result.files.length} files) to ${flags.output}\n`,
        );
      } finally {
        status.clear();
        await client.close();
      }
    });
}

function parseTimestamp(text: string): Date {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text.trim()) || Number.isNaN(ms)) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `invalid --timestamp "${text}": expected RFC 3339, e.g. 2026-01-02T15:04:05Z`,
    );
  }
  return new Date(ms);
}
