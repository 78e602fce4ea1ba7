import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { splitCommandLine } from '../../util/command-line.js';
import { parseDuration } from '../../util/duration.js';
import { LtxvfsError } from '../../util/errors.js';
import { present } from '../../util/invariant.js';
import { formatTxid } from '../../util/txid.js';
import type { CompactionConfig } from '../../writer/compaction/compaction-config.js';
import { Replicator, type ReplicatorLogger, type ReplicatorOptions } from '../../writer/index.js';
import { loadConfigFile, parseCompactionFlags } from '../config.js';
import { formatRequestStats } from '../request-stats.js';

/** Every option of `ltxvfs replicate`, as commander hands them over. */
export interface ReplicateFlags {
  once?: boolean;
  syncInterval?: string;
  exec?: string;
  execStopOnLeaseLost?: boolean;
  leaseTtl?: string;
  maxStaged?: string;
  verbose?: boolean;
  // compaction (src/cli/config.ts)
  levels?: string;
  snapshotInterval?: string;
  retention?: string | boolean;
  l0Retention?: string;
  /** false with --no-compaction. */
  compaction?: boolean;
  config?: string;
}

/** The one place options are declared; add a flag here and map it in replicatorOptions(). */
function declareOptions(cmd: Command): Command {
  return cmd
    .option(
      '--once',
      'sync what is committed, upload it, run the compaction, snapshot and retention that are due, and exit',
    )
    .option('--sync-interval <duration>', 'how often committed transactions become an L0 file', '1s')
    .option(
      '--exec <cmd>',
      'run the application as a child (split without a shell when simple, else sh -c in its own process group); forward SIGINT/SIGTERM/SIGHUP; final sync; exit with its status',
    )
    .option(
      '--exec-stop-on-lease-lost',
      'send the --exec application SIGTERM when replication stops because another writer took the lease (default: it keeps running, unreplicated, and replicate exits non-zero after it)',
    )
    .option(
      '--lease-ttl <duration>',
      'how long lock.json holds the replica for this writer without a renewal (renewed every third of it)',
      '30s',
    )
    .option(
      '--max-staged <bytes>',
      'bound on L0 bytes staged locally while the store is unreachable; beyond it staging pauses and a snapshot-style L0 follows (suffixes K, M, G)',
      '1G',
    )
    .option('--verbose', 'log uploads, lag and checkpoints (one line each)')
    .option('--levels <durations>', 'compaction intervals of L1,L2,... (default 30s,5m,1h)')
    .option('--snapshot-interval <duration>', 'how often a full L9 snapshot is written (default 24h)')
    .option('--retention <duration>', 'how long snapshots are kept (default 24h)')
    .option('--no-retention', 'never delete anything from the replica')
    .option('--l0-retention <duration>', 'keep compacted L0 files at least this long (default 5m)')
    .option(
      '--no-compaction',
      'only write L0 files: no compaction, L9 snapshots or retention (another process does them, or nothing does)',
    )
    .option(
      '--config <file>',
      'YAML file listing databases, replicas and their settings (instead of <db> <replica-url>)',
    );
}

/** Flags -> Replicator options (no I/O). */
export function replicatorOptions(
  dbPath: string,
  url: string,
  flags: ReplicateFlags,
  logger: ReplicatorLogger,
): ReplicatorOptions {
  // Parsed even with --no-compaction, so a bad value is an error there too.
  const compaction = parseCompactionFlags({
    levels: flags.levels,
    snapshotInterval: flags.snapshotInterval,
    retention: flags.retention,
    l0Retention: flags.l0Retention,
  });
  return {
    dbPath,
    replica: url,
    syncIntervalMs: parseDuration(flags.syncInterval ?? '1s', '--sync-interval'),
    logger,
    keepAlive: true,
    ...compactionOptions(compaction, flags),
    ...writerSafetyOptions(flags),
  };
}

/**
 * Compaction runs unless --no-compaction: in the background, or with --once after the sync
 * (whatever is due then; a cron job thus keeps the levels and retention as a long-running
 * replicator would, at the granularity of its runs).
 */
function compactionOptions(
  compaction: CompactionConfig | undefined,
  flags: ReplicateFlags,
): Pick<ReplicatorOptions, 'compaction' | 'compactionPollMs'> {
  if (flags.compaction === false || !compaction) return {};
  return { compaction, ...(flags.once ? { compactionPollMs: 0 } : {}) };
}

/** --lease-ttl and --max-staged (also with --config: they are per run, not per database). */
function writerSafetyOptions(flags: ReplicateFlags): Pick<ReplicatorOptions, 'lease' | 'maxStagedBytes'> {
  const ttlMs = parseDuration(flags.leaseTtl ?? '30s', '--lease-ttl');
  if (ttlMs < 1000) throw new LtxvfsError('BAD_ARGUMENT', `--lease-ttl ${flags.leaseTtl}: at least 1s`);
  return {
    lease: { ttlMs, renewIntervalMs: Math.floor(ttlMs / 3) },
    maxStagedBytes: parseByteSize(flags.maxStaged ?? '1G', '--max-staged'),
  };
}

/** `123`, `64K`, `512M`, `1G` (powers of 1024). */
export function parseByteSize(text: string, flag: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw new LtxvfsError('BAD_ARGUMENT', `${flag} ${text}: not a size (e.g. 512M, 1G)`);
  const [, digits = '', suffix = ''] = m;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[suffix.toUpperCase() as '' | 'K' | 'M' | 'G'];
  const bytes = Number(digits) * unit;
  if (bytes <= 0) throw new LtxvfsError('BAD_ARGUMENT', `${flag} ${text}: must be more than 0`);
  return bytes;
}

/**
 * `--config`: one Replicator per database of the file; settings of the file win, and the
 * per-database flags may not be mixed in (one source of truth per run).
 */
export function replicatorOptionsFromFile(
  db: string | undefined,
  url: string | undefined,
  flags: ReplicateFlags,
  verbose: boolean,
): ReplicatorOptions[] {
  const file = flags.config as string;
  if (db !== undefined || url !== undefined) {
    throw new LtxvfsError(
      'CONFIG_INVALID',
      `--config ${file}: give either <db> <replica-url> or --config, not both`,
    );
  }
  const mixed = [
    flags.levels !== undefined && '--levels',
    flags.snapshotInterval !== undefined && '--snapshot-interval',
    typeof flags.retention === 'string' && '--retention',
    flags.retention === false && '--no-retention',
    flags.l0Retention !== undefined && '--l0-retention',
  ].filter(Boolean);
  if (mixed.length > 0) {
    throw new LtxvfsError('CONFIG_INVALID', `--config ${file}: set ${mixed.join(', ')} in the file instead`);
  }
  const config = loadConfigFile(file);
  return config.dbs.map((entry) => ({
    dbPath: entry.path,
    replica: entry.replicaUrl,
    syncIntervalMs: entry.syncIntervalMs ?? parseDuration(flags.syncInterval ?? '1s', '--sync-interval'),
    logger: cliLogger(verbose, config.dbs.length > 1 ? entry.path : undefined),
    keepAlive: true,
    ...compactionOptions(entry.compaction, flags),
    ...writerSafetyOptions(flags),
  }));
}

export function cliLogger(verbose: boolean, label?: string): ReplicatorLogger {
  const prefix = label ? `ltxvfs replicate ${label}` : 'ltxvfs replicate';
  const line = (text: string) => process.stderr.write(`${prefix}: ${text}\n`);
  return {
    info: verbose ? line : () => {},
    debug: verbose ? line : undefined,
    warn: line,
    error: line,
  };
}

export function register(program: Command): void {
  declareOptions(
    program
      .command('replicate')
      .description('stream every committed transaction of a SQLite database (WAL mode) to a replica')
      .argument('[db]', 'the primary database file (or use --config)')
      .argument('[replica-url]', 's3://bucket/path, file:///abs/dir, or a directory'),
  ).action(async (db: string | undefined, url: string | undefined, flags: ReplicateFlags) => {
    if (flags.config !== undefined) {
      await runMany(replicatorOptionsFromFile(db, url, flags, Boolean(flags.verbose)), flags);
      return;
    }
    if (db === undefined || url === undefined) {
      throw new LtxvfsError('BAD_ARGUMENT', 'replicate needs <db> and <replica-url>, or --config <file>');
    }
    const logger = cliLogger(Boolean(flags.verbose));
    const replicator = new Replicator(replicatorOptions(db, url, flags, logger));
    await replicator.start();
    if (flags.once) {
      await syncOnce([replicator], [logger]);
      return;
    }
    if (flags.verbose) {
      const timer = setInterval(() => {
        const s = replicator.stats();
        logger.info(
          `lag ${s.pendingUploads === 0 ? 0 : s.lagMs} ms, TXID ${formatTxid(s.txid)}, uploaded ${formatTxid(s.uploadedTxid)}, ${formatRequestStats(s.requests)}`,
        );
      }, 10_000);
      timer.unref();
    }
    const status = flags.exec
      ? await runChild(flags.exec, Boolean(flags.execStopOnLeaseLost), replicator)
      : await untilSignal(replicator);
    await replicator.stop();
    logger.info(formatRequestStats(replicator.stats().requests));
    if (replicator.failure) throw replicator.failure;
    process.exitCode = status;
  });
}

/** Several databases of a config file, side by side; the first fatal error stops them all. */
async function runMany(all: ReplicatorOptions[], flags: ReplicateFlags): Promise<void> {
  const replicators = all.map((o) => new Replicator(o));
  const started: Replicator[] = [];
  try {
    for (const r of replicators) {
      await r.start();
      started.push(r);
    }
    if (flags.once) {
      // syncOnce stops them (a second stop() in finally returns at once).
      await syncOnce(
        replicators,
        all.map((o) => o.logger),
      );
      return;
    }
    if (flags.verbose) {
      const timer = setInterval(() => {
        for (const [i, r] of replicators.entries()) {
          const s = r.stats();
          all[i]?.logger?.info(
            `TXID ${formatTxid(s.txid)}, uploaded ${formatTxid(s.uploadedTxid)}, ${formatRequestStats(s.requests)}`,
          );
        }
      }, 10_000);
      timer.unref();
    }
    // The config parser rejects a config without databases.
    const [first, ...others] = replicators;
    const primary = present(first, 'first database of the config');
    const status = flags.exec
      ? await runChild(flags.exec, Boolean(flags.execStopOnLeaseLost), primary, others)
      : await untilSignal(primary, others);
    process.exitCode = status;
  } finally {
    for (const r of started) await r.stop();
  }
  const failed = replicators.find((r) => r.failure);
  if (failed) throw failed.failure;
}

/**
 * Attempts in a row that an upload may fail with a full, read-only or forbidden replica before
 * `--once` gives up (about a second with the default backoff): cron runs it again later, and
 * the staged files wait in `.<db>-ltxvfs/` for that run.
 */
const ONCE_GIVE_UP_AFTER_ATTEMPTS = 4;

/**
 * `--once`: stage, upload, wait for each replicator in turn; then stop them all. A store that
 * refuses for good (STORAGE_FULL, ...) fails the run in bounded time, and the stop then does not
 * wait for uploads that cannot land.
 */
async function syncOnce(
  replicators: Replicator[],
  loggers: Array<ReplicatorLogger | undefined>,
): Promise<void> {
  let failure: unknown;
  for (const [i, r] of replicators.entries()) {
    try {
      const { txid } = await r.sync({ giveUpAfterAttempts: ONCE_GIVE_UP_AFTER_ATTEMPTS });
      loggers[i]?.info(`replicated up to TXID ${formatTxid(txid)}`);
      const compaction = await r.compactNow();
      if (compaction && compaction.errors > 0) {
        loggers[i]?.warn(
          `${compaction.errors} compaction step(s) failed (see above); the next run tries again`,
        );
      }
    } catch (err) {
      failure = err;
      break;
    }
  }
  for (const r of replicators) await r.stop(failure === undefined ? {} : { drainMs: 0 });
  if (failure !== undefined) throw failure;
}

/** Runs until SIGINT/SIGTERM (exit 0) or a fatal replication error (thrown by the caller). */
function untilSignal(replicator: Replicator, others: Replicator[] = []): Promise<number> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve(0);
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
    for (const r of [replicator, ...others]) r.once('fatal', done);
  });
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * The application as a child process. A simple command line is split and run directly (as
 * Litestream does), so a signal reaches the application itself; one that needs a shell runs
 * under `/bin/sh -c` in a process group of its own, and signals go to the whole group (dash
 * forks, and would keep them to itself) while the shell itself only notes them. SIGINT/SIGTERM/SIGHUP are forwarded; when the child
 * exits the caller does a final sync and exits with its status. If replication stops (another
 * writer took the lease, or wrote our next TXID), the application keeps running unless
 * `stopOnLeaseLost`: the store is not the application's business; the failure is reported (and
 * the exit status is non-zero) once it exits. An unreachable store never stops replication.
 */
function runChild(
  command: string,
  stopOnLeaseLost: boolean,
  replicator: Replicator,
  others: Replicator[] = [],
): Promise<number> {
  return new Promise((resolve, reject) => {
    const argv = splitCommandLine(command);
    const viaShell = argv === null;
    // The shell catches the forwarded signals (a caught signal is reset to default in what it
    // runs), so it does not die first: it waits for the application and exits with its status.
    const [file, ...args] = argv ?? ['/bin/sh', '-c', `trap : INT TERM HUP\n${command}`];
    if (file === undefined) throw new LtxvfsError('BAD_ARGUMENT', '--exec needs a command');
    const child = spawn(file, args, { stdio: 'inherit', detached: viaShell });
    const signalChild = (signal: NodeJS.Signals) => {
      try {
        if (viaShell && child.pid !== undefined) process.kill(-child.pid, signal);
        else child.kill(signal);
      } catch {
        // already gone
      }
    };
    const handlers = FORWARDED.map((signal) => [signal, () => signalChild(signal)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    for (const r of [replicator, ...others]) {
      r.once('fatal', (err: LtxvfsError) => {
        if (stopOnLeaseLost) {
          process.stderr.write(
            `ltxvfs replicate: ${err.code}: stopping the application (--exec-stop-on-lease-lost)\n`,
          );
          signalChild('SIGTERM');
        } else {
          process.stderr.write(
            `ltxvfs replicate: ${err.code}: replication stopped; the application keeps running, unreplicated (--exec-stop-on-lease-lost would stop it)\n`,
          );
        }
      });
    }
    child.on('error', (err) => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
      reject(new LtxvfsError('BAD_ARGUMENT', `--exec ${command}: ${err.message}`, { cause: err }));
    });
    child.on('exit', (code, signal) => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
      resolve(code ?? (signal ? 128 + signalNumber(signal) : 1));
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 1;
}
