import type { BenchSection, ColdPoint } from './report.js';
import type { BenchContext } from './run.js';

/** Cold reads, hydration and warm reads through SQL: filled in as the read side lands. */
export async function runReadPathSections(
  _ctx: BenchContext,
): Promise<{ sections: BenchSection[]; cold: ColdPoint[] }> {
  throw new Error('the read-path benchmark needs the replica and the VFS, which are not in this build yet');
}
