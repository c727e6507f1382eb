#!/usr/bin/env python3
"""MySQL client scenarios for sluice's tests, driven through real Python drivers: PyMySQL
(text protocol) and mysql-connector-python (prepared cursors: the binary protocol).

Usage: mysql_client.py SCENARIO. Connection from the environment: MY_HOST, MY_PORT, MY_USER,
MY_PASSWORD, MY_DB, MY_CA (TLS against this CA; absent: plaintext). Each scenario prints one
JSON line with what it saw.
"""
import hashlib
import json
import os
import socket
import sys


def env(k, default=None):
    return os.environ.get(k, default)


def pymysql_conn(**kw):
    import pymysql

    args = dict(
        host=env("MY_HOST", "127.0.0.1"),
        port=int(env("MY_PORT")),
        user=env("MY_USER"),
        password=env("MY_PASSWORD"),
        database=env("MY_DB"),
        connect_timeout=10,
    )
    if env("MY_CA"):
        args["ssl"] = {"ca": env("MY_CA"), "check_hostname": False}
    args.update(kw)
    return pymysql.connect(**args)


def connector_conn():
    import mysql.connector

    args = dict(
        host=env("MY_HOST", "127.0.0.1"),
        port=int(env("MY_PORT")),
        user=env("MY_USER"),
        password=env("MY_PASSWORD"),
        database=env("MY_DB"),
        connection_timeout=10,
        use_pure=True,
    )
    if env("MY_CA"):
        args.update(ssl_ca=env("MY_CA"), ssl_verify_cert=False)
    return mysql.connector.connect(**args)


def text(v):
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    return str(v)


def text_protocol():
    """Types, NULLs, a 16 MB+ row split over packets, errors passed through intact."""
    c = pymysql_conn()
    cur = c.cursor()
    cur.execute("SELECT id, n, big, amount, ratio, d, ts, card, note FROM typed ORDER BY id")
    rows = [[text(v) for v in r] for r in cur.fetchall()]
    cur.execute("SELECT id, LENGTH(payload), payload FROM blobs")
    bid, blen, payload = cur.fetchone()
    err = None
    try:
        cur.execute("SELECT * FROM no_such_table")
    except Exception as e:  # noqa: BLE001 - the error itself is what the test checks
        err = [e.args[0], e.args[1]]
    cur.execute("SELECT 1")
    after = cur.fetchone()[0]
    print(json.dumps({
        "rows": rows,
        "blob": [bid, blen, len(payload), hashlib.sha256(payload).hexdigest()],
        "error": err,
        "after_error": after,
        "thread_id": c.thread_id(),
    }))


def prepared():
    """Prepared statements over the binary protocol with parameters of every common type."""
    c = connector_conn()
    cur = c.cursor(prepared=True)
    cur.execute(
        "SELECT id, n, big, amount, ratio, d, ts, card, note FROM typed WHERE id >= ? AND note <> ? ORDER BY id",
        (1, "zzz"),
    )
    rows = [[text(v) for v in r] for r in cur.fetchall()]
    cur.execute("INSERT INTO typed (id, n, card, note) VALUES (?, ?, ?, ?)", (10, -7, "5500 0000 0000 0004", None))
    cur.execute("SELECT n, card, note FROM typed WHERE id = ?", (10,))
    inserted = [text(v) for v in cur.fetchone()]
    c.commit()
    print(json.dumps({"rows": rows, "inserted": inserted}))


def prepared_update():
    """Runs a prepared UPDATE twice (each execution may be held for review); prints how each
    ended."""
    c = connector_conn()
    cur = c.cursor(prepared=True)
    ended = []
    for note, id_ in (("4111 1111 1111 1111", 3), ("second", 3)):
        try:
            cur.execute("UPDATE t SET note = ? WHERE id = ?", (note, id_))
            ended.append(["ok", cur.rowcount])
        except Exception as e:  # noqa: BLE001
            ended.append(["error", getattr(e, "errno", None), str(e)])
    c.commit()
    print(json.dumps({"ended": ended}), flush=True)


def cursor_and_long_data():
    """A BLOB sent as long data (COM_STMT_SEND_LONG_DATA: the driver streams file-like
    parameters) and read back; then a read-only server-side cursor (COM_STMT_EXECUTE with a
    cursor flag, COM_STMT_FETCH two rows at a time) over `typed`; prints what came back."""
    import io

    c = connector_conn()
    cur = c.cursor(prepared=True)
    blob = bytes(range(256)) * 1200
    cur.execute(
        "INSERT INTO blobs (id, data, card) VALUES (?, ?, ?)",
        (1, io.BytesIO(blob), "4111 1111 1111 1111"),
    )
    c.commit()
    cur.execute("SELECT data, card FROM blobs WHERE id = ?", (1,))
    data, card = cur.fetchone()
    cur.close()

    st = c.cmd_stmt_prepare(b"SELECT id, card, note FROM typed ORDER BY id")
    c.cmd_stmt_execute(st["statement_id"], flags=1)  # CURSOR_TYPE_READ_ONLY
    fetched, batches = [], 0
    while True:
        c.cmd_stmt_fetch(st["statement_id"], 2)
        rows, eof = c.get_rows(binary=True, columns=st["columns"])
        batches += 1
        fetched.extend([[text(v) for v in r] for r in rows])
        if eof is None or eof.get("status_flag", 0) & 0x80 or batches > 10:  # LAST_ROW_SENT
            break
    c.cmd_stmt_close(st["statement_id"])
    after = c.cursor()
    after.execute("SELECT 'after'")
    print(
        json.dumps(
            {
                "blob_len": len(data),
                "blob_sha256": hashlib.sha256(bytes(data)).hexdigest(),
                "blob_card": text(card),
                "fetched": fetched,
                "batches": batches,
                "after": text(after.fetchone()[0]),
            }
        )
    )


def sleep_then_select():
    """Runs SELECT SLEEP(60); prints the greeting's id first, then how the sleep ended and
    whether the session still works."""
    c = pymysql_conn()
    print(json.dumps({"thread_id": c.thread_id()}), flush=True)
    cur = c.cursor()
    ended = None
    try:
        cur.execute("SELECT SLEEP(60)")
        ended = ["result", text(cur.fetchone()[0])]
    except Exception as e:  # noqa: BLE001
        ended = ["error", e.args[0], str(e.args[1]) if len(e.args) > 1 else ""]
    try:
        cur.execute("SELECT 42")
        usable = cur.fetchone()[0]
    except Exception as e:  # noqa: BLE001
        usable = str(e)
    print(json.dumps({"ended": ended, "usable": usable}), flush=True)


def kill_query():
    """Sends KILL QUERY for the connection id in MY_KILL."""
    c = pymysql_conn()
    cur = c.cursor()
    cur.execute("KILL QUERY %s" % int(env("MY_KILL")))
    print(json.dumps({"killed": True}))


def malformed():
    """Logs in (plaintext), then sends a packet with an unknown command byte; prints what came
    back."""
    c = pymysql_conn()
    sock = c._sock  # noqa: SLF001 - the raw socket is the point of this scenario
    sock.sendall(b"\x01\x00\x00\x00\x99")
    sock.settimeout(10)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    err = None
    if len(data) > 7 and data[4] == 0xFF:
        err = [int.from_bytes(data[5:7], "little"), data[7:].decode("utf-8", "replace")]
    print(json.dumps({"error": err, "closed": True}))


if __name__ == "__main__":
    socket.setdefaulttimeout(120)
    globals()[sys.argv[1]]()
