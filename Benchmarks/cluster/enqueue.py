#!/usr/bin/env python3
"""Writes RESP for JOBS no-op jobs over QUEUES queues (SADD queues + LPUSH queue:<q>, as a Sidekiq producer does),
one file per Redis node that owns the queues' slots, for `redis-cli --pipe`.

    enqueue.py OUTDIR JOBS QUEUE... [--nodes PORT=FIRST-LAST,...]

Without --nodes everything goes to one file, `single`; with it, to `<port>` by the slot of `queue:<q>`.
"""
import json
import sys
import time


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key: str) -> int:
    k = key.encode()
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return crc16(k) % 16384


def resp(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def main() -> None:
    outdir, jobs, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    nodes = {}
    if "--nodes" in rest:
        i = rest.index("--nodes")
        for spec in rest[i + 1].split(","):
            port, span = spec.split("=")
            first, last = span.split("-")
            nodes[port] = (int(first), int(last))
        rest = rest[:i]
    queues = rest

    def owner(queue: str) -> str:
        if not nodes:
            return "single"
        s = slot("queue:" + queue)
        return next(p for p, (a, b) in nodes.items() if a <= s <= b)

    files = {}
    now = time.time()
    for q in queues:
        files.setdefault("single" if not nodes else owner(q), []).append(resp("SADD", "queues", q))
    # SADD queues goes to the owner of `queues`.
    if nodes:
        files.clear()
        files.setdefault(next(p for p, (a, b) in nodes.items() if a <= slot("queues") <= b), []).append(
            resp("SADD", "queues", *queues))
    for n in range(jobs):
        q = queues[n % len(queues)]
        job = {"class": "noop", "args": [], "queue": q, "jid": "bench%019d" % n, "created_at": now, "enqueued_at": now}
        files.setdefault(owner(q), []).append(resp("LPUSH", "queue:" + q, json.dumps(job, separators=(",", ":"))))
    for name, chunks in files.items():
        with open(f"{outdir}/{name}", "wb") as f:
            f.write(b"".join(chunks))
        print(name)


if __name__ == "__main__":
    main()
