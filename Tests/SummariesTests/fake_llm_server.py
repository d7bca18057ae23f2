#!/usr/bin/env python3
"""A local LLM provider for tests: speaks OpenAI Chat Completions (POST /openai/v1/chat/completions) and
Anthropic Messages (POST /anthropic/v1/messages), counts requests, and fails on demand.

Started by the tests on a free loopback port; prints "PORT <n>" on its first stdout line.
Control endpoints (JSON):
  POST /control/fault  {"provider": "openai"|"anthropic", "mode": "ok"|"500"|"529"|"429"|"401"|"403"|"400"|
                        "hang"|"bad_json"|"empty"|"echo_401"|"echo_400"|"nul", "retry_after": "30" (or "ms:1500": Retry-After-Ms), "delay": 0.2,
                        "count": -1}
                       echo_401/echo_400: an error whose message echoes the key the request carried (as some
                       gateways do), with a Bearer header and an sk- key; nul: a reply with NUL and other
                       control characters in its text and model name.
                       count = how many requests the fault applies to (-1: until changed); delay applies to
                       every response of that provider.
  GET  /control/stats  {"openai": n, "anthropic": n, "last": {"openai": <request body>, ...}}
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEYS = {"openai": "test-openai-key", "anthropic": "test-anthropic-key"}
lock = threading.Lock()
counts = {"openai": 0, "anthropic": 0}
last = {}
faults = {"openai": {"mode": "ok", "count": -1, "delay": 0.0, "retry_after": None},
          "anthropic": {"mode": "ok", "count": -1, "delay": 0.0, "retry_after": None}}


def summary_for(provider, user_text):
    title = ""
    for line in user_text.splitlines():
        if line.startswith("Title: "):
            title = line[len("Title: "):].strip()
            break
    return "Summary by %s of the post %s." % (provider, title or "without title")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response (headers and body together) and no Nagle: otherwise delayed ACKs add ~40 ms.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/control/stats":
            with lock:
                self.send_json(200, {"openai": counts["openai"], "anthropic": counts["anthropic"], "last": last})
            return
        self.send_json(404, {"error": {"type": "not_found", "message": self.path}})

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/control/fault":
            spec = json.loads(raw)
            with lock:
                f = faults[spec["provider"]]
                f["mode"] = str(spec.get("mode", "ok"))
                f["count"] = int(spec.get("count", -1))
                f["delay"] = float(spec.get("delay", 0.0))
                f["retry_after"] = spec.get("retry_after")
            self.send_json(200, {"ok": True})
            return
        if self.path == "/openai/v1/chat/completions":
            provider = "openai"
        elif self.path == "/anthropic/v1/messages":
            provider = "anthropic"
        else:
            self.send_json(404, {"error": {"type": "not_found", "message": self.path}})
            return
        with lock:
            counts[provider] += 1
            try:
                last[provider] = {"body": json.loads(raw), "headers": {k.lower(): v for k, v in self.headers.items()
                                                                      if k.lower() not in ("authorization", "x-api-key")}}
            except ValueError:
                last[provider] = {"body": None}
            f = faults[provider]
            mode = f["mode"]
            if f["count"] > 0:
                f["count"] -= 1
                if f["count"] == 0:
                    f["mode"], f["count"] = "ok", -1
            delay = f["delay"]
            retry_after = f["retry_after"]
        if delay:
            time.sleep(delay)
        if mode == "hang":
            self.wfile.flush()
            time.sleep(3600)
            return
        # Wire-format checks a real provider would make.
        if provider == "openai":
            if self.headers.get("Authorization") != "Bearer " + KEYS["openai"]:
                mode = "401"
        else:
            if self.headers.get("x-api-key") != KEYS["anthropic"] or self.headers.get("anthropic-version") != "2023-06-01":
                mode = "401"
        if mode == "ok":
            req = json.loads(raw)
            if provider == "openai":
                user = [m["content"] for m in req["messages"] if m["role"] == "user"][0]
                self.send_json(200, {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": req["model"] + "-served",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": summary_for(provider, user), "refusal": None},
                                 "logprobs": None, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}}, {"x-request-id": "req-openai-1"})
            else:
                if "max_tokens" not in req or "system" not in req:
                    self.send_json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens and system required"}})
                    return
                user = req["messages"][0]["content"]
                self.send_json(200, {
                    "id": "msg_test", "type": "message", "role": "assistant", "model": req["model"],
                    "content": [{"type": "text", "text": summary_for(provider, user)}], "stop_reason": "end_turn",
                    "stop_sequence": None, "usage": {"input_tokens": 41, "output_tokens": 13}}, {"request-id": "req-anthropic-1"})
            return
        if mode in ("echo_401", "echo_400"):
            key = self.headers.get("Authorization") or self.headers.get("x-api-key") or ""
            bare = key[len("Bearer "):] if key.startswith("Bearer ") else key
            message = ("Incorrect API key provided: %s. You sent Authorization: %s; did you mean "
                       "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx? x-api-key=%s\x00\x1b[31m" % (bare, key, bare))
            status = 401 if mode == "echo_401" else 400
            if provider == "openai":
                self.send_json(status, {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}})
            else:
                self.send_json(status, {"type": "error", "error": {"type": "authentication_error", "message": message}})
            return
        if mode == "nul":
            text = "Summary\x00 with a NUL\x01 and\x1b[2J controls\x7f, kept whole after them."
            req = json.loads(raw)
            if provider == "openai":
                self.send_json(200, {"id": "x", "model": "gpt\x00-nul", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                                                   "finish_reason": "stop"}]})
            else:
                self.send_json(200, {"id": "x", "model": "claude\x00-nul", "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"})
            return
        if mode == "bad_json":
            body = b"<html>gateway</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode == "empty":
            if provider == "openai":
                self.send_json(200, {"id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "  "}, "finish_reason": "stop"}]})
            else:
                self.send_json(200, {"id": "x", "model": "m", "content": [], "stop_reason": "end_turn"})
            return
        status = int(mode)
        kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
        headers = {}
        if status in (429, 503, 529) and retry_after is not None:
            if str(retry_after).startswith("ms:"):
                headers["Retry-After-Ms"] = str(retry_after)[3:]
            else:
                headers["Retry-After"] = str(retry_after)
        if provider == "openai":
            self.send_json(status, {"error": {"message": "injected %d" % status, "type": kinds.get(status, "error"), "param": None,
                                              "code": "invalid_api_key" if status == 401 else None}}, headers)
        else:
            self.send_json(status, {"type": "error", "error": {"type": kinds.get(status, "error"), "message": "injected %d" % status},
                                    "request_id": "req_test"}, headers)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    # Exit when the test closes our stdin (or dies), so no server outlives its test.
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
