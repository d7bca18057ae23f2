"""Parses one RFC 5322 message (path argument, or stdin) with Python's email package and prints JSON.

Used by the Swift tests to check Conveyor's output with an independent parser: decoded headers, the parts in
order with their content type, transfer encoding and decoded text, parser defects, and the longest raw line.
"""
import email
import email.policy
import json
import sys

raw = open(sys.argv[1], "rb").read() if len(sys.argv) > 1 else sys.stdin.buffer.read()
msg = email.message_from_bytes(raw, policy=email.policy.default)
lines = raw.split(b"\r\n")
out = {
    "headers": {k: str(v) for k, v in msg.items()},
    "raw_headers": [k for k in msg.keys()],
    "content_type": msg.get_content_type(),
    "is_multipart": msg.is_multipart(),
    "defects": [type(d).__name__ for d in msg.defects],
    "max_line": max(len(l) for l in lines),
    "bare_lf": b"\n" in raw.replace(b"\r\n", b""),
    "parts": [],
}
for part in msg.iter_parts() if msg.is_multipart() else []:
    out["parts"].append({
        "content_type": part.get_content_type(),
        "charset": part.get_content_charset(),
        "cte": part.get("Content-Transfer-Encoding", ""),
        "text": part.get_content(),
        "defects": [type(d).__name__ for d in part.defects],
    })
to = msg.get("To")
if to is not None:
    out["to_addresses"] = [a.addr_spec for a in to.addresses]
    out["to_names"] = [a.display_name for a in to.addresses]
frm = msg.get("From")
if frm is not None:
    out["from_addresses"] = [a.addr_spec for a in frm.addresses]
    out["from_names"] = [a.display_name for a in frm.addresses]
json.dump(out, sys.stdout)
