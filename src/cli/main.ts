#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { isLtxvfsError } from '../util/errors.js';
import { registerCommands } from './commands/index.js';

/**
 * The `ltxvfs` command. Each subcommand lives in its own file under commands/ and is registered
 * in commands/index.ts. Contract (DESIGN.md): exit 0 on success; on any error one clear line on
 * stderr and a non-zero exit.
 */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('ltxvfs')
    .description(
      'Instant read-only SQLite replicas served straight from object storage (Litestream v0.5 LTX)',
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed help or the usage error
      return err.exitCode === 0 ? 0 : 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    const prefix = isLtxvfsError(err) ? `ltxvfs: ${err.code}: ` : 'ltxvfs: ';
    process.stderr.write(`${prefix}${message}\n`);
    if (process.env.LTXVFS_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ltxvfs: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
