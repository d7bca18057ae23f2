#!/usr/bin/env python3
"""BullMQ's own Python package as the benchmark's producer and peer worker.

  bullmq_bench.py add URL QUEUE N          adds N `noop` jobs (data {}) with Queue.addBulk, in chunks of 1000
  bullmq_bench.py work URL QUEUE N C       runs BullMQ's Worker (concurrency C, a processor that returns None)
                                           until N jobs completed; prints the jobs/s from the first completion
                                           to the last"""
import asyncio
import sys
import time

from bullmq import Queue, Worker


async def add(url, queue, n):
    q = Queue(queue, {"connection": url})
    left = n
    while left > 0:
        chunk = min(1000, left)
        await q.addBulk([{"name": "noop", "data": {}} for _ in range(chunk)])
        left -= chunk
    await q.close()


async def work(url, queue, n, concurrency):
    done = asyncio.Event()
    state = {"count": 0, "first": None, "last": None}

    async def process(job, token):
        return None

    def completed(job, result):
        state["count"] += 1
        now = time.monotonic()
        if state["first"] is None:
            state["first"] = now
        state["last"] = now
        if state["count"] >= n:
            done.set()

    worker = Worker(queue, process, {"connection": url, "concurrency": concurrency})
    worker.on("completed", completed)
    await done.wait()
    await worker.close()
    elapsed = max(state["last"] - state["first"], 1e-9)
    print(round((n - 1) / elapsed))


def main():
    cmd, url, queue = sys.argv[1], sys.argv[2], sys.argv[3]
    if cmd == "add":
        asyncio.run(add(url, queue, int(sys.argv[4])))
    elif cmd == "work":
        asyncio.run(work(url, queue, int(sys.argv[4]), int(sys.argv[5])))


if __name__ == "__main__":
    main()
