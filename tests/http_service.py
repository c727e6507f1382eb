"""A real internal HTTP service for sluice's HTTP tests (Python's http.server, HTTP/1.1
keep-alive, plus a WebSocket echo written to RFC 6455).

Starts on 127.0.0.1 on a free port and prints one JSON line: {"port": N}. With
`--tls CERT KEY` it speaks HTTPS with that certificate.

  GET  /whoami           the request as the service saw it (headers, path, query)
  GET  /customers        JSON with a card number, an email and a password field
  GET  /stream           chunked text, one line per chunk, a card number in one of them
  GET  /big?mb=N         N MiB of text
  POST /upload           {"bytes": n, "sha256": hex} of the request body
  POST /payments/refund  {"refunded": <the JSON body>}
  *    /admin/...        {"done": METHOD PATH}
  GET  /calls            every request the service received so far ("METHOD PATH")
  GET  /ws               WebSocket: each text message is echoed back upper-cased
"""

import base64
import hashlib
import json
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CALLS = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        path, _, query = self.path.partition("?")
        with LOCK:
            if path != "/calls":
                CALLS.append(f"{self.command} {path}")
        if path == "/whoami":
            self.body()
            return self.send_json(200, {
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "path": path,
                "query": query,
            })
        if path == "/calls":
            with LOCK:
                return self.send_json(200, list(CALLS))
        if path == "/customers":
            return self.send_json(200, {"customers": [{
                "name": "Ada", "email": "ada@example.com",
                "card": "4111 1111 1111 1111", "password": "hunter2", "visits": 3,
            }]})
        if path == "/stream":
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for line in ["line 1\n", "card 5500 0000 0000 0004 on file\n", "line 3\n"]:
                data = line.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/big":
            mb = int(dict(p.split("=") for p in query.split("&") if "=" in p).get("mb", "1"))
            line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,;\n"
            total = mb * 1024 * 1024
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(total))
            self.end_headers()
            sent = 0
            while sent < total:
                chunk = (line * 1024)[: total - sent]
                self.wfile.write(chunk)
                sent += len(chunk)
            return
        if path == "/upload":
            data = self.body()
            return self.send_json(200, {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        if path == "/payments/refund":
            return self.send_json(200, {"refunded": json.loads(self.body() or b"null")})
        if path.startswith("/admin/"):
            self.body()
            return self.send_json(200, {"done": f"{self.command} {path}"})
        if path == "/ws" and self.headers.get("upgrade", "").lower() == "websocket":
            return self.websocket()
        self.send_json(404, {"error": "not found"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    def websocket(self):
        key = self.headers["sec-websocket-key"]
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:
                self.wfile.write(b"\x88\x00")
                self.wfile.flush()
                self.close_connection = True
                return
            if opcode == 1:
                out = payload.upper()
                self.wfile.write(bytes([0x81, len(out)]) + out if len(out) < 126 else
                                 bytes([0x81, 126]) + struct.pack(">H", len(out)) + out)
                self.wfile.flush()


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Ends when the test closes our stdin (or dies).
    sys.stdin.read()


if __name__ == "__main__":
    main()
