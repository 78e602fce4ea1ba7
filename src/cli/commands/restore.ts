import type { Command } from 'commander';
import { Follower } from '../../follow/follower.js';
import { type RestoreProgress, restore } from '../../replica/restore.js';
import { parseDuration } from '../../util/duration.js';
import { LtxvfsError } from '../../util/errors.js';
import { formatTxid, parseTxid } from '../../util/txid.js';
import { openCommandReplica } from '../open-replica.js';
import { formatMiB, progressBar, StatusLine } from '../progress.js';

interface RestoreFlags {
  output: string;
  txid?: string;
  timestamp?: string;
  force?: boolean;
  follow?: boolean;
  followInterval?: string;
  verbose?: boolean;
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
    .option(
      '-f, --follow',
      'keep the file current until SIGINT/SIGTERM: any SQLite client may read it meanwhile and sees whole transactions only (resumes a file it left)',
    )
    .option('--follow-interval <duration>', 'with --follow: pause between polls of the replica (default 1s)')
    .option('-v, --verbose', 'with --follow: one line per apply (TXIDs, pages, lock hold time, lag)')
    .action(async (url: string, flags: RestoreFlags) => {
      if (flags.follow) return followCommand(url, flags);
      if (flags.followInterval !== undefined || flags.verbose) {
        throw new LtxvfsError('BAD_ARGUMENT', '--follow-interval and --verbose need --follow');
      }
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

async function followCommand(url: string, flags: RestoreFlags): Promise<void> {
  if (flags.txid !== undefined || flags.timestamp !== undefined) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      '--follow follows the latest state: it takes no --txid or --timestamp',
    );
  }
  const intervalMs =
    flags.followInterval === undefined ? undefined : parseDuration(flags.followInterval, '--follow-interval');
  if (intervalMs !== undefined && intervalMs <= 0) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `--follow-interval must be positive, got "${flags.followInterval}"`,
    );
  }
  const client = await openCommandReplica(url);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  // A signal during the first restore lets it finish; then the follower stops at once. Later,
  // the apply in progress finishes (the loop stops between applies), then the process exits 0.
  let stop: (() => void) | undefined;
  let stopRequested = false;
  const onSignal = () => {
    stopRequested = true;
    stop?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let follower: Follower;
  try {
    try {
      follower = await Follower.start(
        client,
        flags.output,
        {
          force: flags.force,
          verbose: flags.verbose,
          log,
          ...(intervalMs === undefined ? {} : { intervalMs }),
        },
        true,
      );
    } catch (err) {
      await client.close();
      throw err;
    }
    process.stdout.write(`following ${url} into ${flags.output} at TXID ${formatTxid(follower.txid)}\n`);
    const running = follower;
    await new Promise<void>((resolve, reject) => {
      stop = () => {
        running.close().then(resolve, reject);
      };
      if (stopRequested) stop();
      else running.run();
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(`stopped at TXID ${formatTxid(follower.txid)}\n`);
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
