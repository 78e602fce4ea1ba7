import { defineConfig } from 'vitest/config';

// The suites `npm run mutate` (Stryker) runs: pure logic, no S3 server, no timing assertions,
// so a mutant is judged by what the tests check and not by how busy the machine is.
export default defineConfig({
  test: {
    include: [
      'test/ltx-codec.test.ts',
      'test/ltx-corruption.test.ts',
      'test/ltx-golden.test.ts',
      'test/ltx-compact.test.ts',
      'test/wal.test.ts',
      'test/util-duration.test.ts',
      'test/replica-plan.test.ts',
      'test/compaction-planning.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
