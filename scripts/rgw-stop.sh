#!/usr/bin/env bash
# Stops the S3 test server started by rgw-start.sh with the same RGW_PORT / RGW_STATE_DIR, and
# removes its state dir. Signals only the daemons named in that dir's own pid files.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RGW_PORT=${RGW_PORT:-7480}
D=${RGW_STATE_DIR:-"$ROOT/.s3-rgw/$RGW_PORT"}

[ -d "$D" ] || exit 0

alive() { # a pid counts as alive unless gone or a zombie
  [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# Only processes that really are this server's daemons: a stale pid file may name a pid that
# has since been reused by something else.
PIDS=""
for f in "$D"/run/*.pid; do
  [ -s "$f" ] || continue
  p=$(cat "$f")
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$D/ceph.conf" && PIDS="$PIDS $p"
done

if [ -n "$PIDS" ]; then
  # shellcheck disable=SC2086
  kill $PIDS 2>/dev/null
  for _ in $(seq 1 50); do
    any=0
    for p in $PIDS; do alive "$p" && any=1; done
    [ "$any" = 0 ] && break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  [ "$any" = 1 ] && kill -9 $PIDS 2>/dev/null
fi
rm -rf "$D"
echo "rgw-stop: stopped (state: $D)" >&2
