#!/usr/bin/env python3
"""Tampers with a recorded session in the gateway's SQLite store, the way someone with write
access to the database would, for the verify tests.

Usage: tamper.py DB SESSION OP [ARG]
  flip N        rewrite event N's statement (select -> update), keeping valid JSON
  delete N      remove event N
  swap N        swap events N and N+1
  insert N      insert a copy of event N right after it
  truncate      remove the last event
  manifest      make the manifest match a truncated recording (count - 1, hash of new last)
  sig SIG KEY   replace the manifest signature and key id
  restore       put everything back as it was before the first tampering
"""
import json
import os
import sqlite3
import sys

db, session, op, *args = sys.argv[1:]
conn = sqlite3.connect(db, timeout=30)
backup = f"{db}.{session}.orig.json"


def load():
    rows = conn.execute(
        "select rowid, body from event_chunks where session_id = ? order by first_seq", (session,)
    ).fetchall()
    lines = [l for _, body in rows for l in body.split("\n") if l]
    return rows, lines


def store(lines):
    conn.execute("delete from event_chunks where session_id = ?", (session,))
    if lines:
        first = int(lines[0].split("\t")[0])
        last = int(lines[-1].split("\t")[0])
        conn.execute(
            "insert into event_chunks (session_id, first_seq, last_seq, body) values (?, ?, ?, ?)",
            (session, min(first, last), max(first, last) + 1000000, "\n".join(lines) + "\n"),
        )


with conn:
    rows, lines = load()
    meta = conn.execute(
        "select event_count, final_hash, manifest_sig, manifest_key from sessions where id = ?",
        (session,),
    ).fetchone()
    if op == "restore":
        saved = json.load(open(backup))
        store(saved["lines"])
        conn.execute(
            "update sessions set event_count = ?, final_hash = ?, manifest_sig = ?, manifest_key = ? where id = ?",
            (*saved["meta"], session),
        )
        os.remove(backup)
    elif not os.path.exists(backup):
        json.dump({"lines": lines, "meta": list(meta)}, open(backup, "w"))
    if op == "restore":
        pass
    elif op == "flip":
        n = int(args[0])
        f = lines[n].split("\t", 4)
        # Rewrite what was run, keeping the JSON valid: select -> update.
        assert "select" in f[4], f"event {n} holds no select"
        f[4] = f[4].replace("select", "update", 1)
        lines[n] = "\t".join(f)
    elif op == "delete":
        del lines[int(args[0])]
    elif op == "swap":
        n = int(args[0])
        lines[n], lines[n + 1] = lines[n + 1], lines[n]
    elif op == "insert":
        n = int(args[0])
        lines.insert(n + 1, lines[n])
    elif op == "truncate":
        lines.pop()
    elif op == "manifest":
        conn.execute(
            "update sessions set event_count = ?, final_hash = ? where id = ?",
            (len(lines), lines[-1].split("\t")[3], session),
        )
    elif op == "sig":
        conn.execute(
            "update sessions set manifest_sig = ?, manifest_key = ? where id = ?",
            (args[0], args[1], session),
        )
    else:
        raise SystemExit(f"unknown op {op}")
    if op not in ("restore", "manifest", "sig"):
        store(lines)
