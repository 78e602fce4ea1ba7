import type { Command } from 'commander';
import { register as registerDemo } from './demo.js';
import { register as registerInspect } from './inspect.js';
import { register as registerLs } from './ls.js';
import { register as registerQuery } from './query.js';
import { register as registerReplicate } from './replicate.js';
import { register as registerRestore } from './restore.js';
import { register as registerVerify } from './verify.js';

/**
 * One line per subcommand; each file exports `register(program)`.
 * Keep this list in the order of `ltxvfs --help`.
 */
export function registerCommands(program: Command): void {
  registerReplicate(program);
  registerRestore(program);
  registerLs(program);
  registerQuery(program);
  registerVerify(program);
  registerInspect(program);
  registerDemo(program);
}
