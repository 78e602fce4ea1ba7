import { defineConfig } from 'vitest/config';

// The suites `npm run mutate` (Stryker) runs: pure logic, no S3 server, no timing assertions,
// so a mutant is judged by what the tests check and not by how busy the machine is.
// LTXVFS_MUTATE_TESTS=a.test.ts,b.test.ts narrows the suites to those that test the files being
// mutated: every mutant run loads each included file, so a run over one room with only its own
// suites is several times faster on a busy machine (scripts/mutate-ltx.sh runs src/ltx that way).
const only = process.env.LTXVFS_MUTATE_TESTS?.split(',').filter(Boolean);

export default defineConfig({
  test: {
    include: only ?? [
      'test/ltx-codec.test.ts',
      'test/ltx-corruption.test.ts',
      'test/ltx-decoder-errors.test.ts',
      'test/ltx-golden.test.ts',
      'test/ltx-compact.test.ts',
      'test/ltx-compact-rules.test.ts',
      'test/ltx-header.test.ts',
      'test/ltx-encoder-rules.test.ts',
      'test/ltx-names.test.ts',
      'test/ltx-file-checksum.test.ts',
      'test/ltx-page-frame.test.ts',
      'test/ltx-zstd-v1.test.ts',
      'test/ltx-page-index-bytes.test.ts',
      'test/ltx-page-index.test.ts',
      'test/ltx-xxh32-known.test.ts',
      'test/ltx-lz4-block-errors.test.ts',
      'test/ltx-lz4-frame-errors.test.ts',
      'test/ltx-manifest.test.ts',
      'test/ltx-manifest-validation.test.ts',
      'test/ltx-page-digests.test.ts',
      'test/ltx-page-digests-bytes.test.ts',
      'test/ltx-hot-pages.test.ts',
      'test/ltx-hot-pages-walk.test.ts',
      'test/wal.test.ts',
      'test/wal-edges.test.ts',
      'test/wal-scan-model.test.ts',
      'test/util-duration.test.ts',
      'test/replica-plan.test.ts',
      'test/replica-plan-model.test.ts',
      'test/compaction-planning.test.ts',
      'test/compaction-planning-model.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
