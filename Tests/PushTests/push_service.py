#!/usr/bin/env python3
"""A loopback stand-in push service for the Web Push tests (RFC 8030 / 8291 / 8292).

Usage: push_service.py SUBSCRIBERS_JSON [--accept-only]
  --accept-only: answer every POST 201 without checking or logging it (the benchmark's sink).
  SUBSCRIBERS_JSON: {"<path>": {"private_key": "<base64url 32 bytes>", "auth": "<base64url 16 bytes>"}, ...}
Prints "PORT <n>" on stdout once listening on 127.0.0.1, then serves until stdin closes.

POST /<path>: checks the VAPID Authorization (ES256 JWT: signature with k=, aud = this origin, exp in the future
and at most 24 h ahead, sub mailto:/https:), decrypts the aes128gcm body with the subscriber's private key and
auth secret (http_ece), and answers 201. Paths starting with a script word answer as scripted:
  /gone/...   410        /missing/... 404     /large/... 413     /unauth/... 401 with a reason
  /busy/...   429 with Retry-After: 2 the first time, then 201
  /fail/...   500 the first time, then 201
  /throttle/... 429 with Retry-After: 2 to the first request under /throttle/ (any subscriber), then 201
GET /log: every request as JSON lines {"t": monotonic seconds, "path", "status", "payload", "error", "ttl",
"urgency", "topic"}. GET /connections: how many TCP connections were accepted.
"""
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.exceptions import InvalidSignature


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


subscribers = {}
log = []
log_lock = threading.Lock()
seen_once = set()
connections = [0]
accept_only = [False]


def check_vapid(header, origin):
    if not header or not header.startswith("vapid "):
        return "no vapid Authorization"
    params = dict(p.strip().split("=", 1) for p in header[len("vapid "):].split(","))
    token, key = params.get("t"), params.get("k")
    if not token or not key:
        return "t= or k= missing"
    head_b64, claims_b64, sig_b64 = token.split(".")
    head = json.loads(b64d(head_b64))
    claims = json.loads(b64d(claims_b64))
    if head.get("alg") != "ES256" or head.get("typ") != "JWT":
        return "header %r" % head
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(key))
    sig = b64d(sig_b64)
    if len(sig) != 64:
        return "signature is %d bytes" % len(sig)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public.verify(der, (head_b64 + "." + claims_b64).encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "bad signature"
    if claims.get("aud") != origin:
        return "aud %r is not %r" % (claims.get("aud"), origin)
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now or exp > now + 86400 + 5:
        return "exp %r not within 24 h" % exp
    sub = claims.get("sub", "")
    if not (sub.startswith("mailto:") or sub.startswith("https://")):
        return "sub %r" % sub
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/log":
            with log_lock:
                body = "".join(json.dumps(e) + "\n" for e in log).encode()
            self.answer(200, body)
        elif self.path == "/connections":
            self.answer(200, str(connections[0]).encode())
        else:
            self.answer(404)

    def do_POST(self):
        t = time.monotonic()
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if accept_only[0]:
            self.answer(201)
            return
        path = self.path.lstrip("/")
        entry = {"t": t, "path": path, "ttl": self.headers.get("TTL"), "urgency": self.headers.get("Urgency"),
                 "topic": self.headers.get("Topic"), "payload": None, "error": None}
        origin = "http://127.0.0.1:%d" % self.server.server_address[1]
        status, reply, extra = 201, b"", [("Location", "/m/" + path)]
        error = check_vapid(self.headers.get("Authorization"), origin)
        if error is None and self.headers.get("TTL") is None:
            error = "no TTL"
        word = path.split("/", 1)[0]
        if error is None and body:
            sub = subscribers.get(path.rsplit("/", 1)[-1])
            if sub is None:
                error = "unknown subscriber"
            elif self.headers.get("Content-Encoding") != "aes128gcm":
                error = "Content-Encoding %r" % self.headers.get("Content-Encoding")
            else:
                try:
                    key = ec.derive_private_key(int.from_bytes(b64d(sub["private_key"]), "big"), ec.SECP256R1())
                    entry["payload"] = http_ece.decrypt(body, private_key=key, auth_secret=b64d(sub["auth"]),
                                                        version="aes128gcm").decode("utf-8")
                except Exception as e:  # noqa: BLE001 - reported to the test
                    error = "decrypt: %s" % e
        if error is not None:
            status, reply, extra = 400, ("stand-in refused: " + error).encode(), []
        elif word == "gone":
            status, extra = 410, []
        elif word == "missing":
            status, extra = 404, []
        elif word == "large":
            status, reply, extra = 413, b"Payload Too Large", []
        elif word == "unauth":
            status, reply, extra = 401, b"VAPID credentials rejected\x1b[31m\nsecond line", []
        elif word == "throttle" and "throttle" not in seen_once:
            seen_once.add("throttle")
            status, reply, extra = 429, b"too many requests for this origin", [("Retry-After", "2")]
        elif word in ("busy", "fail") and path not in seen_once:
            seen_once.add(path)
            if word == "busy":
                status, reply, extra = 429, b"slow down", [("Retry-After", "2")]
            else:
                status, reply, extra = 500, b"internal error", []
        entry["status"] = status
        entry["error"] = error
        with log_lock:
            log.append(entry)
        self.answer(status, reply, extra)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        pair = super().get_request()
        connections[0] += 1
        return pair


def main():
    global subscribers
    with open(sys.argv[1]) as f:
        subscribers = json.load(f)
    accept_only[0] = "--accept-only" in sys.argv[2:]
    server = Server(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
