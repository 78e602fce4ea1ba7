# A reader of the followed file (Python's sqlite3 module): the bank invariant in a loop,
# PRAGMA integrity_check every few reads, a fresh connection now and then.
# argv: <dbPath> <total>. Until SIGTERM; then prints a JSON summary on stdout.
import json, signal, sqlite3, sys

path, total = sys.argv[1], int(sys.argv[2])
summary = {"reads": 0, "torn": 0, "integrityChecks": 0, "integrityFailures": 0, "backwards": 0, "distinctN": 0, "errors": []}
seen = set()
last_n = -1
stopping = False

def stop(*_):
    global stopping
    stopping = True

signal.signal(signal.SIGTERM, stop)
conn = None
while not stopping:
    try:
        if conn is None or summary["reads"] % 50 == 0:
            if conn is not None:
                conn.close()
            conn = sqlite3.connect(path, timeout=20)
        t, n = conn.execute("SELECT (SELECT sum(bal) FROM a) + (SELECT sum(bal) FROM b), (SELECT n FROM meta)").fetchone()
        summary["reads"] += 1
        if t != total:
            summary["torn"] += 1
        if n < last_n:
            summary["backwards"] += 1
        last_n = n
        seen.add(n)
        if summary["reads"] % 10 == 0:
            summary["integrityChecks"] += 1
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                summary["integrityFailures"] += 1
    except Exception as e:
        if len(summary["errors"]) < 20:
            summary["errors"].append(str(e))
        if conn is not None:
            conn.close()
        conn = None
if conn is not None:
    conn.close()
summary["distinctN"] = len(seen)
print(json.dumps(summary), flush=True)
