import type { Command } from 'commander';
import { runDemo } from '../../demo/demo.js';
import { parseDuration } from '../../util/duration.js';

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'the whole story in one command, no S3 needed: an app writes, every commit is replicated, a read replica follows',
    )
    .option('--duration <d>', 'how long the app keeps writing (e.g. 20s, 1m)', '40s')
    .option('--interval <d>', 'time between commits on the primary', '250ms')
    .option('--keep', 'keep the database and the replica directory, and print commands to try on them')
    .option('--dir <dir>', 'work in this directory instead of a fresh temp dir (implies --keep)')
    .action(async (opts: { duration: string; interval: string; keep?: boolean; dir?: string }) => {
      await runDemo({
        durationMs: parseDuration(opts.duration, '--duration'),
        writeIntervalMs: Math.max(10, parseDuration(opts.interval, '--interval')),
        keep: Boolean(opts.keep || opts.dir),
        dir: opts.dir,
        out: (line) => process.stdout.write(`${line}\n`),
      });
    });
}
