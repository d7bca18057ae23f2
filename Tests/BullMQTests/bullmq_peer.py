"""The real BullMQ (PyPI bullmq 3.4.4) as producer, peer worker and oracle for Conveyor's BullMQ backend tests.

  bullmq_peer.py add REDIS_URL PREFIX QUEUE JOBS_JSON      add [{"name","data","opts"}...]; prints the ids as JSON
  bullmq_peer.py work REDIS_URL PREFIX QUEUE COUNT         run BullMQ's own Worker until COUNT jobs finished
  bullmq_peer.py state REDIS_URL PREFIX QUEUE              the queue's state, normalised, as JSON
  bullmq_peer.py progress REDIS_URL PREFIX QUEUE ID        the job's progress as BullMQ's Job reads it, as JSON
  bullmq_peer.py packb JSON                                msgpack.packb(value, use_bin_type=True) as hex
"""
import asyncio, json, sys


def normalise_state(r, prefix, queue):
    base = f"{prefix}:{queue}:"
    out = {}
    for z in ("completed", "failed", "delayed", "prioritized"):
        out[z] = sorted(r.zrange(base + z, 0, -1))
    for l in ("wait", "active"):
        out[l] = r.lrange(base + l, 0, -1)
    jobs = {}
    for key in r.scan_iter(base + "*"):
        rest = key[len(base):]
        if r.type(key) != "hash" or rest == "meta":
            continue
        h = r.hgetall(key)
        if "opts" not in h or "timestamp" not in h:
            continue  # a scheduler's hash, not a job's
        keep = {}
        for k, v in h.items():
            if k == "pb":
                continue  # the worker's name: BullMQ's Python worker sets none
            if k in ("timestamp", "processedOn", "finishedOn"):
                keep[k] = "<time>"
            elif k == "stacktrace":
                keep[k] = len(json.loads(v))
            else:
                keep[k] = v
        jobs[rest] = keep
    out["jobs"] = jobs
    events = {}
    for _id, fields in r.xrange(base + "events"):
        jid = fields.get("jobId")
        if jid is None:
            continue
        events.setdefault(jid, []).append(fields["event"])
    out["events"] = events
    out["locks"] = sorted(k for k in r.scan_iter(base + "*:lock"))
    return out


async def add(url, prefix, queue, jobs):
    from bullmq import Queue
    q = Queue(queue, {"connection": url, "prefix": prefix})
    ids = []
    for j in jobs:
        job = await q.add(j["name"], j.get("data", {}), j.get("opts", {}))
        ids.append(job.id)
    await q.close()
    print(json.dumps(ids))


async def schedule(url, prefix, queue, scheduler_id, repeat, name, data):
    from bullmq import Queue
    q = Queue(queue, {"connection": url, "prefix": prefix})
    await q.upsertJobScheduler(scheduler_id, repeat, name, data)
    await q.close()


async def flow(url, prefix, tree):
    from bullmq import FlowProducer
    f = FlowProducer({"connection": url, "prefix": prefix})
    node = await f.add(tree)
    await f.close()
    print(json.dumps({"parent": node["job"].id, "children": [c["job"].id for c in node.get("children") or []]}))


async def progress(url, prefix, queue, job_id):
    from bullmq import Queue, Job
    q = Queue(queue, {"connection": url, "prefix": prefix})
    job = await Job.fromId(q, job_id)
    await q.close()
    print(json.dumps(None if job is None else job.progress))


async def logs(url, prefix, queue, job_id):
    from bullmq import Queue
    q = Queue(queue, {"connection": url, "prefix": prefix})
    result = await q.getJobLogs(job_id)
    await q.close()
    print(json.dumps(result))


async def work(url, prefix, queue, count):
    from bullmq import Worker
    from bullmq.custom_errors import UnrecoverableError
    done = asyncio.Event()
    finished = 0

    async def process(job, token):
        d = job.data if isinstance(job.data, dict) else {}
        if job.name == "test.fail":
            if d.get("permanent"):
                raise UnrecoverableError(d.get("message", "boom"))
            if job.attemptsMade + 1 < d.get("succeed_on", 1 << 30):
                raise Exception(d.get("message", "boom"))
        if job.name not in ("test.echo", "test.fail"):
            raise UnrecoverableError(f"no handler for class {job.name}")
        return {"echo": d}

    w = Worker(queue, process, {"connection": url, "prefix": prefix, "concurrency": 1})

    def on_done(*_):
        nonlocal finished
        finished += 1
        if finished >= count:
            done.set()

    w.on("completed", on_done)
    w.on("failed", lambda job, err: on_done() if job.attemptsMade >= job.opts.get("attempts", 1) or isinstance(err, UnrecoverableError) else None)
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await w.close()


def main():
    cmd = sys.argv[1]
    if cmd == "packb":
        import msgpack
        print(msgpack.packb(json.loads(sys.argv[2]), use_bin_type=True).hex())
        return
    url, prefix, queue = sys.argv[2], sys.argv[3], sys.argv[4]
    if cmd == "add":
        asyncio.run(add(url, prefix, queue, json.loads(sys.argv[5])))
    elif cmd == "schedule":
        asyncio.run(schedule(url, prefix, queue, sys.argv[5], json.loads(sys.argv[6]), sys.argv[7], json.loads(sys.argv[8])))
    elif cmd == "flow":
        asyncio.run(flow(url, prefix, json.loads(sys.argv[5])))
    elif cmd == "work":
        asyncio.run(work(url, prefix, queue, int(sys.argv[5])))
    elif cmd == "progress":
        asyncio.run(progress(url, prefix, queue, sys.argv[5]))
    elif cmd == "logs":
        asyncio.run(logs(url, prefix, queue, sys.argv[5]))
    elif cmd == "state":
        import redis
        r = redis.Redis.from_url(url, decode_responses=True)
        print(json.dumps(normalise_state(r, prefix, queue), sort_keys=True))


if __name__ == "__main__":
    main()
