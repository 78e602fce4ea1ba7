import type { Command } from 'commander';
import { register as registerInspect } from './inspect.js';
import { register as registerLs } from './ls.js';
import { register as registerQuery } from './query.js';

/**
 * One line per subcommand; each file exports `register(program)`.
 * Keep this list in the order of `ltxvfs --help`.
 */
export function registerCommands(program: Command): void {
  // register(program) calls are added here as commands land, e.g.:
  // registerLs(program);
  registerLs(program);
  registerQuery(program);
  registerInspect(program);
}
