"""A WebSocket client (RFC 6455, written out so the test needs no extra package) for sluice's
HTTP tests: connects to the gateway over TLS trusting CA, upgrades PATH with a bearer
token, sends each MESSAGE as a text frame and reads the answer to each.

Usage: python3 ws_client.py ADDR CA HOST PATH TOKEN MESSAGE...
Prints {"status": 101, "answers": [...]} or {"status": N, "body": "..."}.
"""

import base64
import json
import os
import socket
import ssl
import struct
import sys


def read_frame(s):
    head = recv_exact(s, 2)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack(">H", recv_exact(s, 2))[0]
    elif length == 127:
        length = struct.unpack(">Q", recv_exact(s, 8))[0]
    return head[0] & 0x0F, recv_exact(s, length)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def send_frame(s, opcode, payload):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        head = bytes([0x80 | opcode, 0x80 | len(payload)])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", len(payload))
    s.sendall(head + mask + masked)


def main():
    addr, ca, host, path, token, *messages = sys.argv[1:]
    ip, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["http/1.1"])
    s = ctx.wrap_socket(socket.create_connection((ip, int(port))), server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1])
    if status != 101:
        print(json.dumps({"status": status, "head": head.decode(errors="replace")}))
        return
    answers = []
    for m in messages:
        send_frame(s, 1, m.encode())
        opcode, payload = read_frame(s)
        answers.append(payload.decode())
    send_frame(s, 8, b"")
    try:
        read_frame(s)
    except EOFError:
        pass
    s.close()
    print(json.dumps({"status": status, "answers": answers}))


if __name__ == "__main__":
    main()
