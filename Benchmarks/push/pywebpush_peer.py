#!/usr/bin/env python3
"""pywebpush, the peer of Benchmarks/push: COUNT pushes to ENDPOINT from one process, THREADS at once, each thread
with its own requests.Session (kept-alive connections, as Conveyor's handles keep theirs).
Usage: pywebpush_peer.py ENDPOINT COUNT THREADS  -> prints "COUNT SECONDS PUSHES_PER_SECOND P99_MS"
"""
import base64
import sys
import threading
import time

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from pywebpush import webpush


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    endpoint, count, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    vapid = Vapid()
    vapid.generate_keys()
    ua = ec.generate_private_key(ec.SECP256R1())
    p256dh = ua.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    subscription = {"endpoint": endpoint, "keys": {"p256dh": b64(p256dh), "auth": b64(bytes([3]) * 16)}}
    latencies = []
    lock = threading.Lock()

    def run(worker):
        session = requests.Session()
        mine = []
        for i in range(worker, count, threads):
            began = time.monotonic()
            response = webpush(subscription, "notification %d: a reply to your post" % i, vapid_private_key=vapid,
                               vapid_claims={"sub": "mailto:bench@conveyor.test"}, ttl=60, requests_session=session)
            if response.status_code != 201:
                raise SystemExit("push %d answered %d" % (i, response.status_code))
            mine.append(time.monotonic() - began)
        with lock:
            latencies.extend(mine)

    start = time.monotonic()
    workers = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.monotonic() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)]
    print("%d %.3f %.1f %.2f" % (count, seconds, count / seconds, p99 * 1000))


if __name__ == "__main__":
    main()
