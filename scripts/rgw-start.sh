#!/usr/bin/env bash
# Starts a throwaway S3 server for tests: Ceph RGW on a one-node cluster (one monitor, one OSD
# keeping its data in RAM, no authentication), bound to 127.0.0.1. Installs Debian's ceph
# packages with apt when they are missing.
#
# Environment (all optional):
#   RGW_PORT        S3 port (default 7480)
#   MON_PORT        monitor port, msgr2 (default 3300)
#   RGW_STATE_DIR   config, pids, logs (default <project>/.s3-rgw/<RGW_PORT>)
#   S3_ACCESS_KEY / S3_SECRET_KEY   credentials of the test user (default AKTEST / SKTEST)
#   RGW_MEM_BYTES   RAM the OSD may use for data (default 2 GiB)
#
# On success prints one line starting with READY and writes the same settings as shell
# assignments to $RGW_STATE_DIR/env. Idempotent: if the server of this state dir is already up,
# it just prints READY again. Stop it with scripts/rgw-stop.sh (same RGW_PORT / RGW_STATE_DIR).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-3300}
D=${RGW_STATE_DIR:-"$ROOT/.s3-rgw/$RGW_PORT"}
AK=${S3_ACCESS_KEY:-AKTEST}
SK=${S3_SECRET_KEY:-SKTEST}
MEM=${RGW_MEM_BYTES:-2147483648}
ENDPOINT="http://127.0.0.1:$RGW_PORT"

say() { echo "rgw-start: $*" >&2; }
fail() { say "$*"; [ -d "$D/log" ] && say "logs: $D/log"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ready_line() {
  printf 'S3_ENDPOINT=%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nAWS_REGION=us-east-1\n' \
    "$ENDPOINT" "$AK" "$SK" >"$D/env"
  echo "READY S3_ENDPOINT=$ENDPOINT AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 (state: $D)"
}

all_alive() {
  local f
  for f in "$D"/run/mon.a.pid "$D"/run/osd.0.pid "$D"/run/client.rgw.pid; do
    [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null || return 1
  done
}

if [ -f "$D/env" ] && all_alive && port_open "$RGW_PORT"; then
  echo "$(ready_line) already running"
  exit 0
fi

if port_open "$RGW_PORT"; then fail "port $RGW_PORT is already in use by something else; set RGW_PORT"; fi
if port_open "$MON_PORT"; then fail "port $MON_PORT is already in use by something else; set MON_PORT"; fi

if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null; then
  command -v apt-get >/dev/null || fail "radosgw/ceph-mon/ceph-osd are missing and apt-get is not available"
  say "installing radosgw ceph-mon ceph-osd with apt (one-time, ~15 s)"
  # One apt at a time, even when several test runs start together.
  (
    flock 9
    if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null; then
      log=${TMPDIR:-/tmp}/ltxvfs-rgw-apt.log
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        radosgw ceph-mon ceph-osd; } >"$log" 2>&1 || { tail -n 20 "$log" >&2; exit 1; }
    fi
  ) 9>/tmp/ltxvfs-rgw-apt.lock || fail "apt-get install of radosgw ceph-mon ceph-osd failed"
fi

# A stale state dir of a crashed run: stop whatever of it is left before starting over.
if [ -d "$D/run" ]; then RGW_STATE_DIR="$D" RGW_PORT="$RGW_PORT" bash "$ROOT/scripts/rgw-stop.sh" >/dev/null 2>&1 || true; fi
rm -rf "$D"
mkdir -p "$D"/{mon,osd0,rgw,run,log}

FSID=$(cat /proc/sys/kernel/random/uuid)
CONF="$D/ceph.conf"
# Why these settings:
# - auth none + every "ms ... mode = crc": without cephx the messenger's default "secure" mode
#   cannot be negotiated and radosgw hangs for minutes fetching the mon config.
# - memstore: the OSD keeps objects in RAM, no disk, fast start and stop.
# - pool size 1 and pg autoscale off: a one-OSD cluster must still report healthy pools.
# - tcp_nodelay: small range GETs are ~20x slower with Nagle + delayed ACK.
cat >"$CONF" <<CONF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = $MEM
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
keyring = $D/keyring
[mon.a]
mon data = $D/mon
[osd.0]
osd data = $D/osd0
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $D/rgw
CONF
touch "$D/keyring"

step() { # step <what> <command...>: bounded in time, output to the log
  local what=$1; shift
  timeout 90 "$@" >>"$D/log/start.log" 2>&1 || fail "$what failed (exit $?)"
}

step "monmaptool" monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap"
step "ceph-mon --mkfs" ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap"
step "ceph-mon" ceph-mon -c "$CONF" -i a
step "ceph osd create" ceph -c "$CONF" osd create
step "ceph-osd --mkfs" ceph-osd -c "$CONF" -i 0 --mkfs
step "ceph-osd" ceph-osd -c "$CONF" -i 0
step "radosgw" radosgw -c "$CONF" -n client.rgw
step "radosgw-admin user create" radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
  --access-key="$AK" --secret-key="$SK"

for _ in $(seq 1 600); do
  port_open "$RGW_PORT" && { ready_line; exit 0; }
  sleep 0.1
done
fail "radosgw did not open port $RGW_PORT within 60 s"
