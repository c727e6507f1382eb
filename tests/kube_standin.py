"""A stand-in for a Kubernetes API server, for sluice's Kubernetes tests. No real API server
can be installed on the test machines, so this speaks the real protocol for what the tests
use, and the tests first check it with kubectl directly:

  discovery        GET /version, /api, /api/v1, /apis
  pods             list (per namespace and across them, fieldSelector metadata.name=...),
                   watch, get, create, patch (merge, strategic merge as merge, server-side
                   apply), delete; GET .../pods/NAME/log (text, a card number inside;
                   follow=true streams it in chunks)
  nodes            list, get, delete
  secrets          get, list
  exec, attach     WebSocket (subprotocols v5.channel.k8s.io, v4.channel.k8s.io) or SPDY/3.1
                   (v4.channel.k8s.io), running a real process (under a pty with tty=true);
                   attach starts `sh` in place of the container's process
  port-forward     SPDY/3.1 (portforward.k8s.io), or SPDY in a WebSocket
                   (SPDY/3.1+portforward.k8s.io); the pod's port P is 127.0.0.1:P here
  /standin/calls   every request received: method, path, and impersonation headers seen

HTTPS only. `--dir DIR --token TOKEN`: writes a CA, the server's certificate (for 127.0.0.1)
and a client certificate (CN=sluice-gateway, group system:masters) into DIR; a request is
authenticated by `Authorization: Bearer TOKEN` or by that client certificate. Prints one JSON
line: {"port": N, "ca": ..., "client_cert": ..., "client_key": ...}.
"""

import base64
import copy
import fcntl
import hashlib
import json
import os
import pty
import select
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): these
# words, each after its length as 4 bytes, then the tail as is.
_SPDY_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
    "method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_SPDY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
SPDY_DICTIONARY = b"".join(len(w).to_bytes(4, "big") + w.encode() for w in _SPDY_WORDS) + _SPDY_TAIL.encode()

LOCK = threading.Lock()
CHANGED = threading.Condition(LOCK)
CALLS = []
TOKEN = ""
RV = [100]
# Every change to a pod: (resourceVersion, type, pod), for watches.
EVENTS = []


def changed(kind, obj):
    """Records a change of `obj` (under LOCK) and wakes the watches."""
    RV[0] += 1
    obj["metadata"]["resourceVersion"] = str(RV[0])
    EVENTS.append((RV[0], kind, copy.deepcopy(obj)))
    CHANGED.notify_all()


def merge(into, patch):
    """A JSON merge patch (close enough to a strategic merge for the tests' fields)."""
    for k, v in patch.items():
        if v is None:
            into.pop(k, None)
        elif isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pod(name, ns, security, extra_spec=None):
    spec = {
        "containers": [{"name": "main", "image": "busybox", "securityContext": security}],
        "nodeName": "node-1",
    }
    spec.update(extra_spec or {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": hashlib.md5(name.encode()).hexdigest(),
                     "resourceVersion": "1", "creationTimestamp": now()},
        "spec": spec,
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "main", "ready": True, "restartCount": 0, "image": "busybox",
             "state": {"running": {"startedAt": now()}}}]},
    }


PODS = {
    ("default", "web"): pod("web", "default", {"runAsNonRoot": True, "runAsUser": 1000}),
    ("default", "debug"): pod("debug", "default", {"privileged": True, "runAsUser": 1000}),
    ("default", "doomed"): pod("doomed", "default", {"runAsNonRoot": True, "runAsUser": 1000}),
}
NODES = {
    n: {"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n, "uid": n, "resourceVersion": "1", "creationTimestamp": now()},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    for n in ["node-1", "node-2"]
}
SECRETS = {
    ("default", "db"): {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": "db", "namespace": "default", "resourceVersion": "1",
                                     "creationTimestamp": now()},
                        "data": {"password": base64.b64encode(b"s3cr3t-Pa55word").decode()}},
}

RESOURCES = [
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "shortNames": ["po"],
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
    {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions", "verbs": ["create", "get"]},
    {"name": "pods/attach", "singularName": "", "namespaced": True, "kind": "PodAttachOptions", "verbs": ["create", "get"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node", "shortNames": ["no"],
     "verbs": ["delete", "get", "list", "watch"]},
    {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
     "verbs": ["create", "delete", "get", "list", "watch"]},
    {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
     "shortNames": ["cm"], "verbs": ["create", "delete", "get", "list"]},
    {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
     "shortNames": ["ns"], "verbs": ["get", "list"]},
]


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, code, value):
        data = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def authenticated(self):
        if self.headers.get("authorization", "") == f"Bearer {TOKEN}":
            return True
        cert = self.connection.getpeercert()
        return bool(cert)

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        if path == "/standin/calls":
            with LOCK:
                return self.send_json(200, list(CALLS))
        with LOCK:
            CALLS.append({
                "method": self.command, "path": path, "query": url.query,
                "impersonate": {k.lower(): v for k, v in self.headers.items()
                                if k.lower().startswith("impersonate-")},
                "bearer": self.headers.get("authorization", "").startswith("Bearer "),
            })
        if not self.authenticated():
            self.body()
            return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        parts = [p for p in path.split("/") if p]
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-standin",
                                        "platform": "linux/amd64"})
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            return self.send_json(200, {"kind": "APIResourceList", "groupVersion": "v1",
                                        "resources": RESOURCES})
        if parts[:2] != ["api", "v1"]:
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        rest = parts[2:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        kind = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if kind == "pods":
            return self.pods(ns, name, sub, query)
        if kind == "nodes":
            return self.objects(NODES, lambda n: n, name, "NodeList", "nodes")
        if kind == "secrets":
            table = {k[1]: v for k, v in SECRETS.items() if k[0] == ns}
            return self.objects(table, lambda n: (ns, n), name, "SecretList", "secrets", SECRETS)
        if kind == "namespaces":
            items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ["default"]]
            return self.send_json(200, {"kind": "NamespaceList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": "1"}, "items": items})
        return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))

    def objects(self, table, key, name, list_kind, plural, store=None):
        store = table if store is None else store
        if name is None:
            self.body()
            return self.send_json(200, {"kind": list_kind, "apiVersion": "v1",
                                        "metadata": {"resourceVersion": str(RV[0])},
                                        "items": list(table.values())})
        obj = table.get(name)
        if obj is None:
            self.body()
            return self.send_json(404, status(404, "NotFound", f'{plural} "{name}" not found'))
        if self.command == "DELETE":
            self.body()
            with LOCK:
                store.pop(key(name), None)
            return self.send_json(200, obj)
        return self.send_json(200, obj)

    def pods(self, ns, name, sub, query):
        if name is None and self.command == "POST":
            doc = json.loads(self.body() or b"{}")
            return self.create_pod(ns, doc, 201)
        if name is None and query.get("watch", [""])[0] in ("true", "1"):
            return self.watch(ns, query)
        if name is None:
            items = [p for (n, _), p in PODS.items() if ns is None or n == ns]
            for sel in query.get("fieldSelector", []):
                if sel.startswith("metadata.name="):
                    items = [p for p in items if p["metadata"]["name"] == sel.split("=", 1)[1]]
            return self.send_json(200, {"kind": "PodList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": str(RV[0])}, "items": items})
        found = PODS.get((ns, name))
        if found is None and self.command == "PATCH" and \
                self.headers.get("content-type", "").startswith("application/apply-patch"):
            # Server-side apply creates what does not exist.
            doc = json.loads(self.body() or b"{}")
            return self.create_pod(ns, doc, 201)
        if found is None:
            self.body()
            return self.send_json(404, status(404, "NotFound", f'pods "{name}" not found'))
        if sub == "log":
            return self.logs(query)
        if sub == "portforward":
            return self.port_forward()
        if sub in ("exec", "attach"):
            upgrade = self.headers.get("upgrade", "").lower()
            if upgrade == "websocket":
                return self.stream(sub, query)
            if upgrade == "spdy/3.1":
                return self.spdy_stream(sub, query)
            return self.send_json(400, status(400, "BadRequest", "upgrade to a WebSocket or SPDY/3.1"))
        if self.command == "PATCH":
            patch = json.loads(self.body() or b"{}")
            with LOCK:
                merge(found, patch)
                changed("MODIFIED", found)
            return self.send_json(200, found)
        if self.command == "DELETE":
            self.body()
            with LOCK:
                PODS.pop((ns, name), None)
                changed("DELETED", found)
            return self.send_json(200, found)
        return self.send_json(200, found)

    def create_pod(self, ns, doc, code):
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = ns
        meta.setdefault("creationTimestamp", now())
        meta.setdefault("uid", hashlib.md5(meta.get("name", "").encode()).hexdigest())
        doc.setdefault("apiVersion", "v1")
        doc.setdefault("kind", "Pod")
        doc["status"] = {"phase": "Pending"}
        with LOCK:
            PODS[(ns, meta["name"])] = doc
            changed("ADDED", doc)
        return self.send_json(code, doc)

    def watch(self, ns, query):
        """Streams pod events after the given resourceVersion, one JSON object a line."""
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        deadline = time.time() + int(query.get("timeoutSeconds", ["60"])[0])
        seen = since
        try:
            while time.time() < deadline:
                with LOCK:
                    CHANGED.wait_for(lambda: EVENTS and EVENTS[-1][0] > seen, timeout=1)
                    fresh = [e for e in EVENTS if e[0] > seen]
                for rv, kind, obj in fresh:
                    seen = rv
                    if ns is not None and obj["metadata"].get("namespace") != ns:
                        continue
                    data = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def logs(self, query):
        lines = [b"starting web\n", b"charging card 4111 1111 1111 1111 for order 7\n", b"done\n"]
        if query.get("follow", ["false"])[0] != "true":
            data = b"".join(lines)
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for line in lines:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    # ---- exec and attach over WebSocket ------------------------------------------------------

    def websocket_upgrade(self, proto):
        """Answers 101 to a WebSocket upgrade with subprotocol `proto`."""
        key = self.headers["sec-websocket-key"]
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.send_header("sec-websocket-protocol", proto)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

    def stream(self, sub, query):
        offered = [p.strip() for p in self.headers.get("sec-websocket-protocol", "").split(",")]
        proto = next((p for p in ["v5.channel.k8s.io", "v4.channel.k8s.io"] if p in offered), None)
        if proto is None:
            return self.send_json(400, status(400, "BadRequest", f"unsupported subprotocols {offered}"))
        self.websocket_upgrade(proto)
        tty = query.get("tty", ["false"])[0] in ("true", "1")
        stdin = query.get("stdin", ["false"])[0] in ("true", "1")
        command = query.get("command", []) if sub == "exec" else ["sh"]
        wlock = threading.Lock()

        def send(channel, data):
            payload = bytes([channel]) + data
            n = len(payload)
            head = bytes([0x82, n]) if n < 126 else (
                bytes([0x82, 126]) + struct.pack(">H", n) if n < 65536 else
                bytes([0x82, 127]) + struct.pack(">Q", n))
            with wlock:
                try:
                    self.wfile.write(head + payload)
                    self.wfile.flush()
                except OSError:
                    pass

        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TERM": "xterm"}
        if tty:
            master, slave = pty.openpty()
            proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env,
                                    start_new_session=True, cwd="/tmp",
                                    preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
            os.close(slave)
            outputs = [(master, 1)]
            writer = master
        else:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                    start_new_session=True, cwd="/tmp")
            outputs = [(proc.stdout.fileno(), 1), (proc.stderr.fileno(), 2)]
            writer = proc.stdin.fileno() if stdin else None

        def pump():
            open_fds = dict(outputs)
            while open_fds:
                ready, _, _ = select.select(list(open_fds), [], [])
                for fd in ready:
                    try:
                        data = os.read(fd, 32768)
                    except OSError:
                        data = b""
                    if not data:
                        open_fds.pop(fd)
                        continue
                    send(open_fds[fd], data)

        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()

        def read_client():
            nonlocal writer
            while True:
                head = self.rfile.read(2)
                if len(head) < 2:
                    break
                opcode, length = head[0] & 0x0F, head[1] & 0x7F
                if length == 126:
                    length = struct.unpack(">H", self.rfile.read(2))[0]
                elif length == 127:
                    length = struct.unpack(">Q", self.rfile.read(8))[0]
                mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
                if opcode == 8:
                    break
                if opcode != 2 or not payload:
                    continue
                channel, data = payload[0], payload[1:]
                if channel == 0 and writer is not None and data:
                    try:
                        os.write(writer, data)
                    except OSError:
                        pass
                elif channel == 4 and tty:
                    size = json.loads(data)
                    fcntl.ioctl(master, termios.TIOCSWINSZ,
                                struct.pack("HHHH", size["Height"], size["Width"], 0, 0))
                elif channel == 255 and data[:1] == b"\x00" and writer is not None and not tty:
                    os.close(writer)
                    writer = None
            # The client went away: the process goes too.
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass

        threading.Thread(target=read_client, daemon=True).start()
        code = proc.wait()
        pumper.join(timeout=5)
        if code == 0:
            result = {"metadata": {}, "status": "Success"}
        else:
            result = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: exit status {code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        send(3, json.dumps(result).encode())
        with wlock:
            try:
                self.wfile.write(b"\x88\x02\x03\xe8")
                self.wfile.flush()
            except OSError:
                pass

    # ---- SPDY/3.1: exec and attach, port forwarding ----------------------------------------

    def spdy_upgrade(self, protocol):
        """Answers 101 to SPDY/3.1 with `protocol`; the SPDY connection over the socket."""
        self.send_response(101)
        self.send_header("connection", "Upgrade")
        self.send_header("upgrade", "SPDY/3.1")
        self.send_header("x-stream-protocol-version", protocol)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        return SpdyConn(self.rfile.read, self.raw_write)

    def raw_write(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    def offered_protocols(self):
        return [p.strip() for v in self.headers.get_all("x-stream-protocol-version", []) for p in v.split(",")]

    def spdy_stream(self, sub, query):
        if "v4.channel.k8s.io" not in self.offered_protocols():
            return self.send_json(400, status(400, "BadRequest", f"unsupported protocols {self.offered_protocols()}"))
        conn = self.spdy_upgrade("v4.channel.k8s.io")
        flag = lambda k: query.get(k, ["false"])[0] in ("true", "1")
        tty, stdin = flag("tty"), flag("stdin")
        wanted = {"error"} | ({"stdin"} if stdin else set()) | ({"stdout"} if flag("stdout") else set()) \
            | ({"stderr"} if flag("stderr") and not tty else set()) | ({"resize"} if tty else set())
        streams = {}  # type -> id
        by_id = {}
        ready = threading.Event()
        lock = threading.Lock()
        proc_box = {}
        pending = []

        def set_size(fd, size):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size["Height"], size["Width"], 0, 0))

        def to_stdin(payload, fin):
            writer = proc_box.get("writer")
            if payload and writer is not None:
                try:
                    os.write(writer, payload)
                except OSError:
                    pass
            if fin and writer is not None and not tty:
                os.close(writer)
                proc_box["writer"] = None

        def reader():
            for frame in conn.frames():
                if frame[0] == "syn":
                    _, sid, headers = frame
                    streams[headers.get("streamtype", "")] = sid
                    by_id[sid] = headers.get("streamtype", "")
                    conn.reply(sid)
                    if wanted <= set(streams):
                        ready.set()
                elif frame[0] == "data":
                    _, sid, fin, payload = frame
                    kind_name = by_id.get(sid)
                    if kind_name == "stdin":
                        with lock:
                            if "proc" not in proc_box:
                                # Input that comes before the process starts waits for it.
                                pending.append((payload, fin))
                                continue
                        to_stdin(payload, fin)
                    elif kind_name == "resize":
                        for line in payload.split(b"\n"):
                            if line.strip():
                                # The size that comes before the terminal waits for it.
                                with lock:
                                    proc_box["size"] = json.loads(line)
                                    master = proc_box.get("master")
                                if master is not None:
                                    set_size(master, proc_box["size"])
            proc = proc_box.get("proc")
            if proc is not None:
                try:
                    os.killpg(proc.pid, 9)
                except OSError:
                    pass
            ready.set()

        threading.Thread(target=reader, daemon=True).start()
        ready.wait(30)
        if not wanted <= set(streams):
            return
        command = query.get("command", []) if sub == "exec" else ["sh"]
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TERM": "xterm"}
        if tty:
            master, slave = pty.openpty()
            proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env,
                                    start_new_session=True, cwd="/tmp",
                                    preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
            os.close(slave)
            with lock:
                proc_box.update(master=master, writer=master)
                if "size" in proc_box:
                    set_size(master, proc_box["size"])
            outputs = [(master, streams["stdout"])]
        else:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                    start_new_session=True, cwd="/tmp")
            proc_box["writer"] = proc.stdin.fileno() if stdin else None
            outputs = [(proc.stdout.fileno(), streams.get("stdout")), (proc.stderr.fileno(), streams.get("stderr"))]
        with lock:
            proc_box["proc"] = proc
            waiting, pending[:] = list(pending), []
        for payload, fin in waiting:
            to_stdin(payload, fin)
        open_fds = {fd: sid for fd, sid in outputs if sid is not None}
        while open_fds:
            ready_fds, _, _ = select.select(list(open_fds), [], [])
            for fd in ready_fds:
                try:
                    data = os.read(fd, 32768)
                except OSError:
                    data = b""
                if not data:
                    open_fds.pop(fd)
                    continue
                conn.data(open_fds[fd], data)
        code = proc.wait()
        if code == 0:
            result = {"metadata": {}, "status": "Success"}
        else:
            result = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: exit status {code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        conn.data(streams["error"], json.dumps(result).encode(), fin=True)
        for name in ("stdout", "stderr"):
            if name in streams:
                conn.data(streams[name], b"", fin=True)

    def port_forward(self):
        """Port forwarding: over SPDY/3.1, or SPDY tunneled in a WebSocket (kubectl 1.31 and
        later). Port P of the pod is 127.0.0.1:P of this machine."""
        upgrade = self.headers.get("upgrade", "").lower()
        if upgrade == "websocket":
            offered = [p.strip() for p in self.headers.get("sec-websocket-protocol", "").split(",")]
            proto = "SPDY/3.1+portforward.k8s.io"
            if proto not in offered:
                return self.send_json(400, status(400, "BadRequest", f"unsupported subprotocols {offered}"))
            self.websocket_upgrade(proto)
            tunnel = WsBytes(self.rfile, self.raw_write)
            conn = SpdyConn(tunnel.read, tunnel.write)
        elif upgrade == "spdy/3.1" and "portforward.k8s.io" in self.offered_protocols():
            conn = self.spdy_upgrade("portforward.k8s.io")
        else:
            return self.send_json(400, status(400, "BadRequest", "upgrade to SPDY/3.1 or a WebSocket"))
        sockets = {}

        def pump(sock, sid):
            while True:
                try:
                    data = sock.recv(32768)
                except OSError:
                    data = b""
                if not data:
                    conn.data(sid, b"", fin=True)
                    return
                conn.data(sid, data)

        for frame in conn.frames():
            if frame[0] == "syn":
                _, sid, headers = frame
                conn.reply(sid)
                if headers.get("streamtype") == "data":
                    sock = socket.create_connection(("127.0.0.1", int(headers["port"])))
                    sockets[sid] = sock
                    threading.Thread(target=pump, args=(sock, sid), daemon=True).start()
            elif frame[0] == "data":
                _, sid, fin, payload = frame
                sock = sockets.get(sid)
                if sock is not None:
                    if payload:
                        sock.sendall(payload)
                    if fin:
                        sock.shutdown(socket.SHUT_WR)
        for sock in sockets.values():
            sock.close()


class WsBytes:
    """A byte stream carried in WebSocket binary messages (server side)."""

    def __init__(self, rfile, write):
        self.rfile, self.raw_write, self.buf = rfile, write, b""
        self.lock = threading.Lock()

    def read(self, n):
        while len(self.buf) < n:
            head = self.rfile.read(2)
            if len(head) < 2:
                return b""
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:
                return b""
            if opcode in (0, 2):
                self.buf += payload
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def write(self, data):
        n = len(data)
        head = bytes([0x82, n]) if n < 126 else (
            bytes([0x82, 126]) + struct.pack(">H", n) if n < 65536 else bytes([0x82, 127]) + struct.pack(">Q", n))
        with self.lock:
            self.raw_write(head + data)


class SpdyConn:
    """The server side of a SPDY/3.1 connection over `read(n)` and `write(bytes)`."""

    def __init__(self, read, write):
        self.read, self.raw_write = read, write
        self.inflate = zlib.decompressobj(zdict=SPDY_DICTIONARY)
        self.deflate = zlib.compressobj(zdict=SPDY_DICTIONARY)
        self.lock = threading.Lock()

    def write(self, data):
        with self.lock:
            try:
                self.raw_write(data)
            except OSError:
                pass

    def frames(self):
        """Yields ("syn", id, headers) and ("data", id, fin, bytes) until the connection ends;
        answers pings on the way."""
        while True:
            try:
                head = self.read(8)
                if len(head) < 8:
                    return
                payload = self.read(int.from_bytes(head[5:8], "big"))
            except (OSError, ValueError):
                return
            if not head[0] & 0x80:
                sid = struct.unpack(">I", head[0:4])[0] & 0x7FFFFFFF
                yield ("data", sid, head[4] & 1, payload)
                continue
            kind = struct.unpack(">H", head[2:4])[0]
            if kind == 1:  # SYN_STREAM
                sid = struct.unpack(">I", payload[0:4])[0] & 0x7FFFFFFF
                block = self.inflate.decompress(payload[10:])
                headers, pos = {}, 4
                for _ in range(struct.unpack(">I", block[0:4])[0]):
                    ln = struct.unpack(">I", block[pos:pos + 4])[0]
                    name = block[pos + 4:pos + 4 + ln].decode()
                    pos += 4 + ln
                    lv = struct.unpack(">I", block[pos:pos + 4])[0]
                    headers[name] = block[pos + 4:pos + 4 + lv].decode()
                    pos += 4 + lv
                yield ("syn", sid, headers)
            elif kind == 6:  # PING
                self.write(head + payload)
            elif kind == 7:  # GOAWAY
                return

    def reply(self, sid):
        with self.lock:
            block = self.deflate.compress(struct.pack(">I", 0)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        body = struct.pack(">I", sid) + block
        self.write(struct.pack(">HHB", 0x8003, 2, 0) + len(body).to_bytes(3, "big") + body)

    def data(self, sid, data, fin=False):
        self.write(struct.pack(">IB", sid, 1 if fin else 0) + len(data).to_bytes(3, "big") + data)

def openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def certificates(directory):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(directory, "req", "-x509", *ec, "-days", "1", "-subj", "/CN=standin-kube-ca",
            "-keyout", "ca.key", "-out", "ca.pem")
    with open(os.path.join(directory, "server.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:kube.internal\n")
    openssl(directory, "req", *ec, "-subj", "/CN=kube-apiserver", "-keyout", "server.key", "-out", "server.csr")
    openssl(directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "server.cnf", "-out", "server.pem")
    openssl(directory, "req", *ec, "-subj", "/O=system:masters/CN=sluice-gateway", "-keyout", "client.key",
            "-out", "client.csr")
    with open(os.path.join(directory, "client.cnf"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl(directory, "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "client.cnf", "-out", "client.pem")


def main():
    global TOKEN
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    directory, TOKEN = args["--dir"], args["--token"]
    certificates(directory)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(directory, "server.pem"), os.path.join(directory, "server.key"))
    ctx.load_verify_locations(os.path.join(directory, "ca.pem"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(json.dumps({
        "port": server.server_address[1],
        "ca": os.path.join(directory, "ca.pem"),
        "client_cert": os.path.join(directory, "client.pem"),
        "client_key": os.path.join(directory, "client.key"),
    }), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Ends when the test closes our stdin (or dies).
    sys.stdin.read()


if __name__ == "__main__":
    main()
