import type { BenchSection } from './report.js';
import type { BenchContext } from './run.js';

/** Reader processes following one replica under steady writes: filled in as the VFS lands. */
export async function runScaleOutSection(_ctx: BenchContext): Promise<BenchSection> {
  throw new Error('the scale-out benchmark needs the writer and the VFS, which are not in this build yet');
}
