#!/usr/bin/env python3
"""A loopback OTLP/HTTP receiver for the tracing tests: decodes ExportTraceServiceRequest (protobuf or JSON) with
opentelemetry-proto and keeps every span.

  POST /v1/traces        a collector's endpoint; answers an empty ExportTraceServiceResponse
  GET  /spans            every span so far, as JSON lines of {trace_id, span_id, parent_span_id, name, kind,
                         attributes, events, links, status, resource}, ids in lowercase hex
  POST /mode?m=ok|hang|fail
                         ok: answer at once; hang: hold each export without answering; fail: answer 503
  POST /reset            forget the spans

  --sink                 answer every export at once without decoding it (a fast collector for the benchmark)

Prints "listening <port>" on its first line."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

lock = threading.Lock()
spans = []
mode = {"m": "ok"}
released = threading.Event()
exports = {"count": 0}


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/spans"):
            with lock:
                body = "".join(json.dumps(s) + "\n" for s in spans).encode()
            self.answer(200, body)
        elif self.path.startswith("/stats"):
            self.answer(200, json.dumps({"exports": exports["count"], "spans": len(spans), "mode": mode["m"]}).encode())
        else:
            self.answer(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        if url.path == "/mode":
            mode["m"] = parse_qs(url.query).get("m", ["ok"])[0]
            if mode["m"] == "hang":
                released.clear()
            else:
                released.set()
            return self.answer(200, b"{}")
        if url.path == "/reset":
            with lock:
                spans.clear()
            return self.answer(200, b"{}")
        if url.path != "/v1/traces":
            return self.answer(404)
        exports["count"] += 1
        if SINK:
            return self.answer(200, b"", "application/x-protobuf")
        if mode["m"] == "hang":
            released.wait(600)
        if mode["m"] == "fail":
            return self.answer(503, b"{}")
        request = trace_service_pb2.ExportTraceServiceRequest()
        if (self.headers.get("Content-Type") or "").startswith("application/json"):
            json_format.Parse(data, request)
        else:
            request.ParseFromString(data)
        decoded = []
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    decoded.append({
                        "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(), "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name, "kind": s.kind, "attributes": attributes(s.attributes),
                        "events": [{"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": attributes(e.attributes)} for e in s.events],
                        "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex(), "attributes": attributes(l.attributes)} for l in s.links],
                        "status": {"code": s.status.code, "message": s.status.message},
                        "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                        "resource": resource, "headers": {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-")},
                    })
        with lock:
            spans.extend(decoded)
        body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.answer(200, body, "application/x-protobuf")


SINK = "--sink" in sys.argv


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
