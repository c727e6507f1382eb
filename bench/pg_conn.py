#!/usr/bin/env python3
"""Connection-level measurements for bench/pg.sh (psycopg 3). Prints human-readable reports.

  pg_conn.py setup N LABEL=DSN [LABEL=DSN ...]
      For each DSN, N sequential times: connect + `SELECT 1` + close, timed with
      time.perf_counter. Labels run interleaved (round-robin) so drifts in machine load hit all
      alike; one untimed warm-up connection each first. Prints p50/p95/mean per label and, for
      labels "sluice/MODE" and "direct/MODE", sluice's added p50/p95.

  pg_conn.py idle PID N DSN [NOTE]
      Reads VmRSS of PID, opens up to N sessions through DSN (each runs `SELECT 1`, then
      idles), waits for the RSS to settle, reads VmRSS again, closes everything, prints both.
      With BENCH_IDLE_SERVER_DSN set (a direct connection to the target server), also counts
      the server's other client backends while the sessions are open.
"""
import os
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
    """Nearest-rank percentile of an ascending list."""
    k = -(-len(sorted_vals) * p // 100)  # ceil(n * p / 100)
    return sorted_vals[max(0, min(len(sorted_vals), k) - 1)]


def describe(e):
    return f"{type(e).__name__}: {str(e).strip()}"


def setup(n, pairs):
    targets = []
    for pair in pairs:
        label, dsn = pair.split("=", 1)
        targets.append({"label": label, "dsn": dsn, "ms": [], "error": None})
    for t in targets:
        try:
            one_connect(t["dsn"])
        except Exception as e:  # noqa: BLE001 - report it and carry on with the others
            t["error"] = describe(e)
    for _ in range(n):
        for t in targets:
            if t["error"] is None:
                try:
                    t["ms"].append(one_connect(t["dsn"]) * 1000.0)
                except Exception as e:  # noqa: BLE001
                    t["error"] = describe(e)
    stats = {}
    print(f"{'target':<18}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for t in targets:
        if t["error"] is not None or not t["ms"]:
            print(f"{t['label']:<18}  error: {t['error'] or 'no samples'}")
            continue
        ms = sorted(t["ms"])
        s = stats[t["label"]] = {"p50": pct(ms, 50), "p95": pct(ms, 95), "mean": sum(ms) / len(ms)}
        print(f"{t['label']:<18}{len(ms):>6}{s['p50']:>10.3f}{s['p95']:>10.3f}{s['mean']:>10.3f}")
    for mode in ("tls", "plain"):
        d, s = stats.get("direct/" + mode), stats.get("sluice/" + mode)
        if d and s:
            print(f"sluice added p50 ({mode}): {s['p50'] - d['p50']:+.3f} ms"
                  f"   (p95: {s['p95'] - d['p95']:+.3f} ms)   vs direct")
        else:
            print(f"sluice added p50 ({mode}): n/a")


def idle(pid, n, dsn, note):
    before = rss_kb(pid)
    conns, error = [], None
    t0 = time.perf_counter()
    try:
        for _ in range(n):
            c = psycopg.connect(dsn, autocommit=True)
            conns.append(c)
            c.execute("SELECT 1").fetchone()
    except Exception as e:  # noqa: BLE001
        error = describe(e)
    opened_in = time.perf_counter() - t0
    time.sleep(2.0)  # let the gateway settle (buffered recorder flushes, allocator)
    samples = []
    for _ in range(3):
        samples.append(rss_kb(pid))
        time.sleep(0.2)
    after = max(samples)
    server = None
    if os.environ.get("BENCH_IDLE_SERVER_DSN"):
        try:
            with psycopg.connect(os.environ["BENCH_IDLE_SERVER_DSN"], autocommit=True) as admin:
                server = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                ).fetchone()[0]
        except Exception as e:  # noqa: BLE001
            server = describe(e)
    for c in conns:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass
    per = (after - before) / max(len(conns), 1)
    print(f"VmRSS {before / 1024:.1f} MiB before -> {after / 1024:.1f} MiB with {len(conns)} of {n} "
          f"idle sessions open ({per:+.1f} KiB per session; opened in {opened_in:.1f} s)")
    if server is not None:
        print(f"target server: {server} client backends while the sessions were open (besides the count's own)")
    if note:
        print(f"note: {note}")
    if error:
        print(f"stopped early: {error}")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "setup":
        setup(int(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) in (5, 6) and sys.argv[1] == "idle":
        idle(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] if len(sys.argv) == 6 else "")
    else:
        sys.exit(__doc__)
