#!/bin/sh
# A reader of the followed file through the sqlite3 shell: one process per read, the bank
# invariant and PRAGMA integrity_check each time. argv: <dbPath> <total>. Until SIGTERM; then
# prints a JSON summary on stdout.
db="$1"; total="$2"
reads=0; torn=0; checks=0; bad=0; backwards=0; errors=0; last=-1; stopping=0
trap 'stopping=1' TERM
while [ "$stopping" = 0 ]; do
  out=$(sqlite3 -bail -cmd ".timeout 20000" "$db" "SELECT ((SELECT sum(bal) FROM a) + (SELECT sum(bal) FROM b)) || ' ' || (SELECT n FROM meta); PRAGMA integrity_check;" 2>&1)
  if [ $? -ne 0 ]; then errors=$((errors + 1)); continue; fi
  set -- $out
  reads=$((reads + 1)); checks=$((checks + 1))
  [ "$1" = "$total" ] || torn=$((torn + 1))
  [ "$2" -lt "$last" ] 2>/dev/null && backwards=$((backwards + 1))
  last="$2"
  [ "$3" = "ok" ] || bad=$((bad + 1))
done
printf '{"reads":%d,"torn":%d,"integrityChecks":%d,"integrityFailures":%d,"backwards":%d,"distinctN":-1,"errors":%d}\n' \
  "$reads" "$torn" "$checks" "$bad" "$backwards" "$errors"
