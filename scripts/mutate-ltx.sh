#!/usr/bin/env bash
# Mutation testing of src/ltx in pieces: each piece mutates a few files against only the suites
# that test them (no S3, no child processes), with its own incremental file, so results come a
# piece at a time and a re-run only re-tests mutants whose code or tests changed. Prints each
# piece's score table; the README's Tests section has the last measured numbers.
#   bash scripts/mutate-ltx.sh              # every piece
#   bash scripts/mutate-ltx.sh header page-index   # only the named pieces
# CONCURRENCY (default 2) and NICE (default 19) are passed to Stryker and nice. FORCE=1 re-tests
# every mutant: Stryker's incremental mode notices changed source files but, with the vitest
# runner, not changed or added tests, so after editing tests a piece needs FORCE=1.
set -u
cd "$(dirname "$0")/.."
T=test
pieces=(
  "header|src/ltx/header.ts,src/ltx/names.ts,src/ltx/file-checksum.ts|$T/ltx-header.test.ts,$T/ltx-names.test.ts,$T/ltx-file-checksum.test.ts,$T/ltx-golden.test.ts,$T/ltx-corruption.test.ts"
  "checksum|src/ltx/checksum.ts,src/ltx/xxh32.ts|$T/ltx-xxh32-known.test.ts,$T/ltx-codec.test.ts,$T/ltx-golden.test.ts,$T/ltx-file-checksum.test.ts"
  "page-frame|src/ltx/page-frame.ts,src/ltx/v1.ts,src/ltx/zstd.ts|$T/ltx-page-frame.test.ts,$T/ltx-zstd-v1.test.ts,$T/ltx-golden.test.ts,$T/ltx-corruption.test.ts"
  "manifest|src/ltx/manifest.ts,src/ltx/page-digests.ts|$T/ltx-manifest-validation.test.ts,$T/ltx-manifest.test.ts,$T/ltx-page-digests.test.ts,$T/ltx-page-digests-bytes.test.ts"
  "page-index|src/ltx/page-index.ts|$T/ltx-page-index-bytes.test.ts,$T/ltx-page-index.test.ts,$T/ltx-golden.test.ts,$T/ltx-corruption.test.ts"
  "compactor|src/ltx/compactor.ts,src/ltx/hot-pages.ts|$T/ltx-hot-pages-walk.test.ts,$T/ltx-compact-rules.test.ts,$T/ltx-compact.test.ts,$T/ltx-hot-pages.test.ts"
  "lz4-frame|src/ltx/lz4-frame.ts|$T/ltx-lz4-frame-errors.test.ts,$T/ltx-page-frame.test.ts,$T/ltx-golden.test.ts,$T/ltx-codec.test.ts,$T/ltx-corruption.test.ts"
  "encoder|src/ltx/encoder.ts|$T/ltx-encoder-rules.test.ts,$T/ltx-golden.test.ts,$T/ltx-codec.test.ts,$T/ltx-header.test.ts,$T/ltx-corruption.test.ts"
  "decoder|src/ltx/decoder.ts|$T/ltx-decoder-errors.test.ts,$T/ltx-golden.test.ts,$T/ltx-corruption.test.ts,$T/ltx-codec.test.ts,$T/ltx-page-frame.test.ts"
  "lz4-block|src/ltx/lz4-block.ts|$T/ltx-lz4-block-errors.test.ts,$T/ltx-codec.test.ts,$T/ltx-golden.test.ts,$T/ltx-page-frame.test.ts"
)
status=0
for piece in "${pieces[@]}"; do
  IFS='|' read -r name mutate tests <<<"$piece"
  if [ "$#" -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  echo "mutate-ltx: ${name}: ${mutate} against ${tests}"
  start=$(date +%s)
  LTXVFS_MUTATE_TESTS=$tests nice -n "${NICE:-19}" npx stryker run --concurrency "${CONCURRENCY:-2}" \
    --incrementalFile ".tmp/stryker-ltx-${name}.json" --tempDirName ".tmp/stryker-${name}" \
    --mutate "$mutate" --reporters clear-text ${FORCE:+--force} || status=$?
  echo "mutate-ltx: ${name} took $(($(date +%s) - start)) s"
done
exit "$status"
