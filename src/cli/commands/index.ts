import type { Command } from 'commander';

/**
 * One line per subcommand; each file exports `register(program)`.
 * Keep this list in the order of `ltxvfs --help`.
 */
export function registerCommands(_program: Command): void {
  // register(program) calls are added here as commands land, e.g.:
  // registerLs(program);
}
