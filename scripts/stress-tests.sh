#!/usr/bin/env bash
# The "holds on a loaded machine" check: runs `npm test` RUNS times in a row (default 5) with
# BUSY CPU-bound loops (default 4) running beside it, and stops at the first failing run.
# Extra arguments go to npm test (e.g. an S3 endpoint is taken from LTXVFS_S3_ENDPOINT as usual).
#   bash scripts/stress-tests.sh                 # 5 runs, 4 busy loops
#   RUNS=1 BUSY=4 bash scripts/stress-tests.sh -- test/writer.test.ts
set -u
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
busy=${BUSY:-4}
pids=()
stop_loops() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
}
trap stop_loops EXIT INT TERM
for _ in $(seq 1 "$busy"); do
  bash -c 'while :; do :; done' &
  pids+=("$!")
done
echo "stress: ${busy} busy loops (pids ${pids[*]}), ${runs} runs of npm test $*"
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if npm test "$@"; then
    echo "stress: run ${i}/${runs} passed in $(($(date +%s) - start)) s"
  else
    status=$?
    echo "stress: run ${i}/${runs} FAILED (exit ${status}) after $(($(date +%s) - start)) s"
    exit "$status"
  fi
done
echo "stress: all ${runs} runs passed with ${busy} busy loops"
