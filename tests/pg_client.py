#!/usr/bin/env python3
"""Drives a real PostgreSQL driver (psycopg 3) through the sluice gateway for the Rust
integration tests. Each scenario prints one JSON object on stdout.

Environment: DSN (through sluice), DIRECT_DSN (straight to PostgreSQL, for comparisons).
"""
import hashlib
import json
import os
import sys
import threading
import time

import psycopg
from psycopg import errors

DSN = os.environ.get("DSN", "")
DIRECT = os.environ.get("DIRECT_DSN", "")


def out(obj):
    print(json.dumps(obj), flush=True)


def extended():
    with psycopg.connect(DSN, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("select %s::int + 1 as answer, %s::text as label", (41, "x"))
        first = cur.fetchone()
        prepared = []
        for i in range(3):
            cur.execute("select %s::int * 2 as doubled", (i,), prepare=True)
            prepared.append(cur.fetchone()[0])
        cur.execute("select %s::text is null", (None,))
        null_param = cur.fetchone()[0]
        try:
            cur.execute("select 1 / %s::int", (0,))
            div = None
        except errors.DivisionByZero as e:
            div = e.sqlstate
        cur.execute("select 'still usable'")
        after = cur.fetchone()[0]
    out({"first": list(first), "prepared": prepared, "null_param": null_param,
         "division_error": div, "after_error": after})


def copy():
    table = os.environ["TABLE"]
    rows = int(os.environ.get("ROWS", "100000"))
    with psycopg.connect(DSN, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(f"create table {table} (id int primary key, v text)")
        with cur.copy(f"copy {table} (id, v) from stdin") as cp:
            for i in range(rows):
                cp.write_row((i, f"row-{i}-{'x' * (i % 17)}"))
        through = hashlib.md5()
        with cur.copy(f"copy (select * from {table} order by id) to stdout") as cp:
            for chunk in cp:
                through.update(chunk)
    direct = hashlib.md5()
    with psycopg.connect(DIRECT, autocommit=True) as conn:
        cur = conn.cursor()
        with cur.copy(f"copy (select * from {table} order by id) to stdout") as cp:
            for chunk in cp:
                direct.update(chunk)
        cur.execute(f"select count(*) from {table}")
        count = cur.fetchone()[0]
    out({"through": through.hexdigest(), "direct": direct.hexdigest(), "count": count})


def cancel():
    """A statement through sluice blocks on an advisory lock held by a direct connection (it
    runs until cancelled, with no timer); once the server shows it waiting, it is cancelled."""
    marker = os.environ["MARKER"]
    key = int(hashlib.sha256(marker.encode()).hexdigest()[:12], 16)
    with psycopg.connect(DIRECT, autocommit=True) as holder, \
            psycopg.connect(DSN, autocommit=True) as conn:
        holder.execute("select pg_advisory_lock(%s)", (key,))

        def canceller():
            with psycopg.connect(DIRECT, autocommit=True) as watch:
                deadline = time.monotonic() + 20
                # Each round trip to the server is the wait; the deadline bounds it.
                while time.monotonic() < deadline:
                    waiting = watch.execute(
                        "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                        "and query like %s", (f"%{marker}%pg_advisory_lock%",)).fetchone()[0]
                    if waiting:
                        break
            conn.cancel()

        t = threading.Thread(target=canceller)
        t.start()
        state = None
        try:
            conn.execute(f"select /* {marker} */ pg_advisory_lock({key})")
        except errors.QueryCanceled as e:
            state = e.sqlstate
        t.join()
        after = conn.execute("select 42").fetchone()[0]
    out({"sqlstate": state, "after": after})


def stream():
    rows = 0
    size = 0
    with psycopg.connect(DSN, autocommit=True) as conn:
        cur = conn.cursor()
        for row in cur.stream("select g, repeat('x', 40) from generate_series(1, 1000000) g"):
            rows += 1
            size += len(row[1])
    out({"rows": rows, "bytes": size})


def notify():
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("listen sluice_test")
        with psycopg.connect(DIRECT, autocommit=True) as other:
            other.execute("notify sluice_test, 'hello through sluice'")
        for n in conn.notifies(timeout=10, stop_after=1):
            out({"channel": n.channel, "payload": n.payload})
            return
    out({"channel": None})


def hold():
    """Opens a session, proves it works, waits for a line on stdin, proves it still works."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        before = conn.execute("select 1").fetchone()[0]
        out({"ready": True, "before": before})
        sys.stdin.readline()
        after = conn.execute("select 2").fetchone()[0]
    out({"after": after})


def statements():
    """A fixed script whose recording the test compares with what was sent."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("select 'simple' as kind", prepare=False)
        cur.execute("select %s::int as n, %s::text as s", (7, "seven"))
        cur.execute("select %s::int as n", (8,), prepare=True)
        cur.execute("select %s::int as n", (9,), prepare=True)
    out({"done": True})


def connect_error():
    try:
        with psycopg.connect(DSN, connect_timeout=10) as conn:
            conn.execute("select 1")
        out({"sqlstate": None})
    except psycopg.OperationalError as e:
        out({"sqlstate": getattr(e, "sqlstate", None), "message": str(e)})


def guard():
    """Runs each statement of the JSON list STATEMENTS with the extended protocol (prepared
    when PREPARE=1); reports each outcome and whether the session still works after it."""
    stmts = json.loads(os.environ["STATEMENTS"])
    prepare = os.environ.get("PREPARE") == "1"
    results = []
    with psycopg.connect(DSN, autocommit=True) as conn:
        for s in stmts:
            cur = conn.cursor()
            try:
                cur.execute(s, prepare=prepare)
                r = {"ok": True}
            except psycopg.Error as e:
                r = {"ok": False, "sqlstate": e.sqlstate, "message": str(e)}
            r["usable"] = conn.execute("select 42").fetchone()[0] == 42
            results.append(r)
    out({"results": results})


def guard_pipeline():
    """A pipeline (one Sync) whose middle statement is refused."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        error = None
        try:
            with conn.pipeline():
                a = conn.execute("select 1")
                conn.execute("drop table t")
                conn.execute("select 2")
        except psycopg.Error as e:
            error = e.sqlstate
        after = conn.execute("select 3").fetchone()[0]
    out({"error": error, "after": after})


def fetch_rows():
    """Fetches QUERY with the extended protocol in text and in binary format."""
    q = os.environ["QUERY"]
    with psycopg.connect(DSN, autocommit=True) as conn:
        text = [list(r) for r in conn.execute(q).fetchall()]
        binary = [list(r) for r in conn.cursor(binary=True).execute(q).fetchall()]
    out({"text": text, "binary": binary})


def held():
    """Runs STATEMENT once per parameter list in the JSON list RUNS, prepared on the server
    (extended protocol), where a review holds each execution; reports per run the outcome and
    whether the session still works, and the notices."""
    notices = []
    results = []
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.add_notice_handler(
            lambda d: notices.append(
                {"sqlstate": d.sqlstate, "message": d.message_primary, "hint": d.message_hint}
            )
        )
        for params in json.loads(os.environ["RUNS"]):
            try:
                cur = conn.execute(os.environ["STATEMENT"], params, prepare=True)
                r = {"ok": True, "rowcount": cur.rowcount}
            except psycopg.Error as e:
                r = {"ok": False, "sqlstate": e.sqlstate, "message": str(e)}
            r["usable"] = conn.execute("select 42").fetchone()[0] == 42
            results.append(r)
    out({"results": results, "notices": notices})


if __name__ == "__main__":
    globals()[sys.argv[1]]()
