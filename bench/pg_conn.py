#!/usr/bin/env python3
"""Connection-level measurements for bench/pg.sh (psycopg 3).

  pg_conn.py setup N LABEL=DSN [LABEL=DSN ...]
      For each DSN, N sequential times: connect + `SELECT 1` + close, timed with
      time.perf_counter. Prints one JSON object per DSN: {"label", "n", "p50_ms", "p95_ms",
      "mean_ms"} (or {"label", "error"}). Labels run interleaved (round-robin) so drift in
      machine load hits all of them alike; one untimed warm-up connection each first.

  pg_conn.py idle PID N DSN
      Reads VmRSS of PID, opens up to N sessions through DSN (each runs `SELECT 1`, then
      idles), waits for the RSS to settle, reads VmRSS again, closes everything. Prints
      {"requested", "opened", "rss_before_kb", "rss_after_kb", "error"}.
"""
import json
import sys
import time

import psycopg


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def one_connect(dsn):
    t0 = time.perf_counter()
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        conn.execute("SELECT 1").fetchone()
        return time.perf_counter() - t0
    finally:
        conn.close()


def pct(sorted_vals, p):
    # nearest-rank percentile
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def setup(n, pairs):
    targets = []
    for pair in pairs:
        label, dsn = pair.split("=", 1)
        targets.append({"label": label, "dsn": dsn, "times": [], "error": None})
    for t in targets:
        try:
            one_connect(t["dsn"])
        except Exception as e:  # noqa: BLE001 - report and carry on with the others
            t["error"] = f"{type(e).__name__}: {e}".strip()
    for _ in range(n):
        for t in targets:
            if t["error"]:
                continue
            try:
                t["times"].append(one_connect(t["dsn"]))
            except Exception as e:  # noqa: BLE001
                t["error"] = f"{type(e).__name__}: {e}".strip()
    for t in targets:
        if t["error"] or not t["times"]:
            print(json.dumps({"label": t["label"], "error": t["error"] or "no samples"}), flush=True)
            continue
        ms = sorted(x * 1000.0 for x in t["times"])
        print(json.dumps({
            "label": t["label"], "n": len(ms),
            "p50_ms": round(pct(ms, 50), 3), "p95_ms": round(pct(ms, 95), 3),
            "mean_ms": round(sum(ms) / len(ms), 3),
        }), flush=True)


def idle(pid, n, dsn):
    before = rss_kb(pid)
    conns, error = [], None
    try:
        for _ in range(n):
            c = psycopg.connect(dsn, autocommit=True)
            conns.append(c)
            c.execute("SELECT 1").fetchone()
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}".strip()
    # let the gateway settle (allocator, buffered recorder flushes), take the max of a few reads
    time.sleep(2.0)
    after = max(rss_kb(pid) for _ in range(3) if time.sleep(0.2) is None)
    for c in conns:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass
    print(json.dumps({"requested": n, "opened": len(conns), "rss_before_kb": before,
                      "rss_after_kb": after, "error": error}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "setup":
        setup(int(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) == 5 and sys.argv[1] == "idle":
        idle(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)
