#!/usr/bin/env python3
"""media.ingest end to end with one worker process: Conveyor on S3, Conveyor on the local root, and a Celery peer
(celery_peer.py) on the same S3 server, in interleaved rounds of the same run. Started by run.sh, which starts the
services and builds the worker.

Each run: outputs of the last run removed, queue and tables emptied, the worker started and warmed (WARM jobs,
which start its helpers or pool processes and open its connections), N jobs enqueued at once, and the time taken
from the enqueue until N rows are `ready` in PostgreSQL and (Conveyor) N jobs acknowledged. Then a few outputs are
checked: present, the right Content-Type, no GPS in the clean copy or the thumbnails, the ICC profile kept in the
clean copy, the thumbnails' sizes. Peak RSS is each process's VmHWM, sampled every 0.2 s for the worker and
every process below it (helpers that a pool replaces included).
"""
import argparse, json, os, random, shutil, signal, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor

import boto3
import psycopg2
import pyvips
import redis
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))

def _image_benchmark():
    """The image benchmark's module, for its photo-like content (make_base_photo)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("images_bench", os.path.join(HERE, "..", "images", "bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WIDTH, HEIGHT = 4000, 3000
WARM = 2
# Name, (width, height) expected from a 4000x3000 source: Conveyor's defaults (ThumbnailVariant.defaults).
THUMBNAILS = [("small", (320, 320)), ("medium", (800, 600)), ("large", (1600, 1200))]
CACHE_CONTROL = "public, max-age=86400"


def sh(*args, **kwargs):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, **kwargs)


def fail(message):
    print(f"ingest benchmark: {message}", file=sys.stderr)
    sys.exit(1)


def source_key(i):
    return f"uploads/photo-{i:03d}.jpg"


# MARK: - Corpus

def make_corpus(directory, count):
    """12 MP JPEGs (q88, sRGB profile) with camera EXIF, GPS, XMP and IPTC: each a different crop, colour and
    mirror of one photo-like surface, so no two share pixels. Made once, kept under `directory`."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"photo-{i:03d}.jpg") for i in range(count)]
    missing = [(i, p) for i, p in enumerate(paths) if not os.path.exists(p)]
    if not missing:
        return paths
    print(f"generating {len(missing)} photos of {WIDTH}x{HEIGHT} in {directory}", file=sys.stderr)
    base = pyvips.Image.new_from_file(_image_benchmark().make_base_photo(directory, WIDTH + 400, HEIGHT + 300, "ingest"))
    fresh = []
    for i, path in missing:
        rng = random.Random(i)
        a = 0.6 + rng.random() * 0.4
        image = base.crop(rng.randrange(400), rng.randrange(300), WIDTH, HEIGHT)
        image = image.linear([a, 0.8 + rng.random() * 0.4, 1.2 - a / 2], [rng.randrange(-20, 20), 0, rng.randrange(-20, 20)]).cast("uchar")
        if i % 2:
            image = image.fliphor()
        partial = path + ".partial.jpg"
        image.jpegsave(partial, Q=88, profile="srgb")
        fresh.append((partial, path))
    # One exiftool run for every file: what a phone writes, and what the clean copy must lose.
    sh("exiftool", "-q", "-overwrite_original", "-Make=Conveyor", "-Model=Bench Camera", "-Software=bench 1.0",
       "-DateTimeOriginal=2026:11:30 10:00:00", "-Orientation#=1", "-GPSLatitude=52.370216", "-GPSLatitudeRef=N",
       "-GPSLongitude=4.895168", "-GPSLongitudeRef=E", "-GPSAltitude=12", "-GPSAltitudeRef=0",
       "-XMP-dc:Creator=Bench Photographer", "-IPTC:Keywords=benchmark", "-IPTC:City=Amsterdam",
       *[partial for partial, _ in fresh])
    for partial, path in fresh:
        os.rename(partial, path)
    return paths


def exif(path):
    out = subprocess.run(["exiftool", "-j", "-G1", "-a", path], check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]


def gps_tags(tags):
    return sorted(k for k in tags if "GPS" in k)


# MARK: - Process sampling

class Sampler:
    """Peak RSS (VmHWM) of a process and every process below it, and their CPU time, sampled every 0.2 s."""

    def __init__(self, root, extra=None):
        self.root = root
        self.extra = extra or {}  # name -> pid of processes outside the tree whose CPU time is counted (the S3 server)
        self.peaks = {}  # pid -> (label, peak KiB)
        self.cpu = {}  # pid -> (label, seconds since the sampler started)
        self.cpu_start = {pid: self.cpu_seconds(pid) or 0 for pid in self.tree()}
        self.extra_start = {name: self.cpu_seconds(pid) for name, pid in self.extra.items()}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    @staticmethod
    def cpu_seconds(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def tree(self):
        children = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        pids, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, []))
        return pids

    def sample(self):
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                with open(f"/proc/{pid}/status") as f:
                    hwm = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
            except OSError:
                continue
            label = label_of(pid == self.root, argv)
            self.peaks[pid] = (label, max(hwm, self.peaks.get(pid, (label, 0))[1]))
            seconds = self.cpu_seconds(pid)
            if seconds is not None:
                self.cpu[pid] = (label, seconds - self.cpu_start.get(pid, 0))

    def loop(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.2)

    def finish(self):
        self.sample()
        self.stop.set()
        self.thread.join()
        extra = {name: (self.cpu_seconds(pid) or 0) - (self.extra_start[name] or 0) for name, pid in self.extra.items()}
        return self.peaks, self.cpu, extra


def label_of(is_root, argv):
    text = b" ".join(argv).decode(errors="replace")
    if is_root:
        return "worker"
    if " helper" in text:
        return "helper"
    return "pool process"


# MARK: - Systems

class Bench:
    def __init__(self, args):
        self.args = args
        self.n = args.n
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.db = psycopg2.connect(os.environ["DATABASE_URL"])
        self.db.autocommit = True
        self.endpoint = os.environ["CONVEYOR_TEST_S3_ENDPOINT"]
        self.s3_env = {
            "AWS_ACCESS_KEY_ID": os.environ["CONVEYOR_TEST_S3_ACCESS_KEY"],
            "AWS_SECRET_ACCESS_KEY": os.environ["CONVEYOR_TEST_S3_SECRET_KEY"],
            "AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_REGION": "us-east-1",
        }
        self.s3 = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.s3_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.s3_env["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=8))
        self.work = os.path.abspath(args.work)
        self.root = os.path.join(self.work, "media")
        self.scratch = os.path.join(self.work, "scratch")
        self.bucket = f"ingest-{time.strftime('%Y%m%d-%H%M%S')}"
        self.weed_pid = int(open(args.s3_pid).read()) if args.s3_pid else None

    # Setup

    def prepare(self, photos):
        self.s3.create_bucket(Bucket=self.bucket)
        def put(i):
            self.s3.upload_file(photos[i], self.bucket, source_key(i), ExtraArgs={"ContentType": "image/jpeg"})
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, range(len(photos))))
        os.makedirs(os.path.join(self.root, "uploads"), exist_ok=True)
        for i, path in enumerate(photos):
            target = os.path.join(self.root, source_key(i))
            if not os.path.exists(target) or os.path.getsize(target) != os.path.getsize(path):
                shutil.copyfile(path, target)
        os.makedirs(self.scratch, mode=0o700, exist_ok=True)
        with self.db.cursor() as c:
            sys.path.insert(0, HERE)
            import celery_peer
            c.execute(celery_peer.SCHEMA)

    def reset(self):
        """Empties the queues, the tables and the outputs of the last run; the sources stay."""
        self.redis.flushdb()
        with self.db.cursor() as c:
            c.execute("SELECT to_regclass('conveyor.media_uploads') IS NOT NULL")
            if c.fetchone()[0]:
                c.execute("TRUNCATE conveyor.media_uploads")
            c.execute("TRUNCATE peer_media_uploads")
        paginator = self.s3.get_paginator("list_objects_v2")
        stale = [o["Key"] for page in paginator.paginate(Bucket=self.bucket) for o in page.get("Contents", [])
                 if not (o["Key"].startswith("uploads/") and not o["Key"].endswith(".clean.jpg"))]
        for i in range(0, len(stale), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in stale[i:i + 1000]], "Quiet": True})
        shutil.rmtree(os.path.join(self.root, "thumbnails"), ignore_errors=True)
        for name in os.listdir(os.path.join(self.root, "uploads")):
            if name.endswith(".clean.jpg"):
                os.unlink(os.path.join(self.root, "uploads", name))

    # Enqueueing

    def enqueue_conveyor(self, items):
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd("queues", "media")
        now = time.time()
        for upload_id, i in items:
            pipe.lpush("queue:media", json.dumps({
                "class": "media.ingest", "args": [{"upload_id": upload_id, "source": source_key(i)}], "queue": "media",
                "jid": os.urandom(12).hex(), "retry": 3, "created_at": now, "enqueued_at": now}))
        pipe.execute()

    def enqueue_celery(self, items):
        import celery_peer
        for upload_id, i in items:
            celery_peer.ingest.apply_async(args=[upload_id, source_key(i)], queue="media")

    # Waiting

    def ready_rows(self, table):
        with self.db.cursor() as c:
            c.execute(f"SELECT count(*) FILTER (WHERE status = 'ready'), count(*) FILTER (WHERE status <> 'ready') FROM {table}")
            return c.fetchone()

    def wait(self, system, count, process, timeout):
        """Until `count` rows are ready (and, for Conveyor, `count` jobs acknowledged); fails on a failed row, a
        retried or dead job, a worker that exited, or the timeout."""
        table = "peer_media_uploads" if system.startswith("celery") else "conveyor.media_uploads"
        end = time.monotonic() + timeout
        while True:
            ready, failed = self.ready_rows(table) if self.table_exists(table) else (0, 0)
            done = ready >= count
            if not system.startswith("celery"):
                processed = int(self.redis.get("stat:processed") or 0)
                done = done and processed >= count
                bad = self.redis.zcard("retry") + self.redis.zcard("dead")
                if bad:
                    fail(f"{system}: {bad} jobs in the retry or dead set: {self.redis.zrange('retry', 0, 0) or self.redis.zrange('dead', 0, 0)}")
            if failed:
                fail(f"{system}: {failed} failed rows in {table}")
            if done:
                return time.monotonic()
            if process.poll() is not None:
                fail(f"{system}: the worker exited with {process.returncode} ({ready} of {count} rows ready)")
            if time.monotonic() > end:
                fail(f"{system}: only {ready} of {count} rows ready after {timeout} s")
            time.sleep(0.05)

    def table_exists(self, table):
        with self.db.cursor() as c:
            c.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            return c.fetchone()[0]

    # One run

    def start(self, system):
        """The worker in a process group of its own (with its helpers or pool processes), stopped by stop_group."""
        log = open(os.path.join(self.work, f"{system}.log"), "w")
        if system.startswith("celery"):
            env = dict(os.environ, **self.s3_env, PEER_BUCKET=self.bucket, PYTHONPATH=HERE,
                       PEER_OPTIMIZE_CODING="1" if system == "celery-optimize" else "0")
            command = [sys.executable, "-m", "celery", "-A", "celery_peer", "worker", "--pool", "prefork",
                       "--concurrency", str(self.args.celery_concurrency), "-Q", "media", "--loglevel", "WARNING",
                       "--without-gossip", "--without-mingle", "--without-heartbeat"]
            return subprocess.Popen(command, env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "AWS_"))}
        env.update(CONVEYOR_HELPERS=str(self.args.helpers), SWIFT_BACKTRACE="enable=no")
        if system == "conveyor-s3":
            env.update(self.s3_env, CONVEYOR_MEDIA_STORE=f"s3://{self.bucket}", CONVEYOR_SCRATCH_DIR=self.scratch)
        else:
            env.update(CONVEYOR_MEDIA_ROOT=self.root)
        command = [self.args.conveyor, "worker", "--queues", "media", "-c", str(self.args.concurrency),
                   "--class-concurrency", f"media.ingest={self.args.concurrency}", "--log-level", "warning"]
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def run(self, system):
        self.reset()
        process = self.start(system)
        enqueue = self.enqueue_celery if system.startswith("celery") else self.enqueue_conveyor
        try:
            enqueue([(f"warm-{i}", i) for i in range(WARM)])
            self.wait(system, WARM, process, timeout=120)
            sampler = Sampler(process.pid, {"S3 server": self.weed_pid} if system != "conveyor-local" and self.weed_pid else None)
            start = time.monotonic()
            enqueue([(f"upl-{i:05d}", i) for i in range(self.n)])
            end = self.wait(system, WARM + self.n, process, timeout=max(600, self.n * 6))
            peaks, cpu, extra = sampler.finish()
        finally:
            stop_group(process)
        self.verify(system)
        elapsed = end - start
        return {"system": system, "seconds": elapsed, "rate": self.n / elapsed, "peaks": peaks, "cpu": cpu, "extra": extra}

    # Checks

    def verify(self, system):
        """A few outputs of the run: present, typed, clean. Fails the benchmark loudly otherwise."""
        picks = sorted({0, self.n // 2, self.n - 1})
        with tempfile.TemporaryDirectory() as tmp:
            for i in picks:
                stem = source_key(i).rsplit(".", 1)[0]
                outputs = [(f"{stem}.clean.jpg", "image/jpeg", (WIDTH, HEIGHT))] + [
                    (f"thumbnails/{stem}/{name}.webp", "image/webp", size) for name, size in THUMBNAILS]
                for key, content_type, size in outputs:
                    local = os.path.join(tmp, key.replace("/", "_"))
                    if system == "conveyor-local":
                        path = os.path.join(self.root, key)
                        if not os.path.exists(path):
                            fail(f"{system}: {key} was not written under {self.root}")
                        shutil.copyfile(path, local)
                    else:
                        try:
                            head = self.s3.head_object(Bucket=self.bucket, Key=key)
                        except Exception as error:  # noqa: BLE001
                            fail(f"{system}: s3://{self.bucket}/{key} is missing: {error}")
                        if head["ContentType"] != content_type:
                            fail(f"{system}: s3://{self.bucket}/{key} has Content-Type {head['ContentType']}, expected {content_type}")
                        if head.get("CacheControl") != CACHE_CONTROL:
                            fail(f"{system}: s3://{self.bucket}/{key} has Cache-Control {head.get('CacheControl')}")
                        self.s3.download_file(self.bucket, key, local)
                    tags = exif(local)
                    if gps_tags(tags):
                        fail(f"{system}: {key} still has GPS: {gps_tags(tags)}")
                    leaked = [k for k in tags if k.split(":")[0] in ("IFD0", "ExifIFD", "XMP-dc", "IPTC") and
                              k.split(":")[1] in ("Make", "Model", "Creator", "Keywords", "City", "DateTimeOriginal")]
                    if leaked:
                        fail(f"{system}: {key} still has {leaked}")
                    image = pyvips.Image.new_from_file(local)
                    if (image.width, image.height) != size:
                        fail(f"{system}: {key} is {image.width}x{image.height}, expected {size[0]}x{size[1]}")
                    if key.endswith(".clean.jpg") and "ICC_Profile:ProfileDescription" not in tags:
                        fail(f"{system}: {key} lost its ICC profile")


def summarise(results, args, started):
    systems = [("conveyor-s3", "Conveyor on S3"), ("conveyor-local", "Conveyor on the local root"), ("celery", "Celery peer on S3"),
               ("celery-optimize", "Celery peer on S3, clean copy with optimize_coding")]
    ran = {r["system"] for r in results}
    best = {s: max(r["rate"] for r in results if r["system"] == s) for s, _ in systems if s in ran}

    def peaks_text(r):
        by_label = {}
        for label, kib in r["peaks"].values():
            by_label.setdefault(label, []).append(kib)
        parts = []
        for label in ("worker", "helper", "pool process"):
            if label in by_label:
                values = sorted(by_label[label])
                mib = [round(v / 1024) for v in values]
                count = len(values)
                span = f"{mib[0]}" if mib[0] == mib[-1] else f"{mib[0]}-{mib[-1]}"
                plural = {"worker": "workers", "helper": "helpers", "pool process": "pool processes"}[label]
                parts.append(f"{label} {span}" if count == 1 else f"{count} {plural} {span}")
        return ", ".join(parts)

    def cpu_text(r):
        total = sum(seconds for _, seconds in r["cpu"].values())
        by = {}
        for label, seconds in r["cpu"].values():
            by[label] = by.get(label, 0) + seconds
        parts = [f"{label} {by[label] / args.n:.2f}" for label in ("worker", "helper", "pool process") if label in by]
        parts += [f"{name} {seconds / args.n:.2f}" for name, seconds in r["extra"].items()]
        return f"{total / args.n:.2f} ({', '.join(parts)})"

    lines = [
        f"media.ingest of {args.n} generated {WIDTH}x{HEIGHT} JPEGs (q88, EXIF with GPS, XMP, IPTC, sRGB profile) with one "
        f"worker process, {args.rounds} interleaved round(s); {os.cpu_count()} cores; libvips {pyvips.version(0)}.{pyvips.version(1)}."
        f"{pyvips.version(2)}; {time.strftime('%Y-%m-%d', time.gmtime(started))}. Conveyor: `-c {args.concurrency} --class-concurrency "
        f"media.ingest={args.concurrency}`, CONVEYOR_HELPERS={args.helpers}; Celery: `--pool prefork --concurrency {args.celery_concurrency}`.",
        "",
        "| System | Round | Seconds | Images/s | Peak RSS MiB per process | CPU s per image (by process) |",
        "|---|---|---|---|---|---|",
    ]
    names = dict(systems)
    for r in results:
        lines.append(f"| {names[r['system']]} | {r['round']}{' (disturbed)' if r.get('disturbed') else ''} | {r['seconds']:.1f} | {r['rate']:.2f} | {peaks_text(r)} | {cpu_text(r)} |")
    overhead = 100 * (1 - best["conveyor-s3"] / best["conveyor-local"])
    ratio = best["conveyor-s3"] / best["celery"]
    lines += [
        "",
        f"Best of the rounds: Conveyor on S3 {best['conveyor-s3']:.2f} images/s, on the local root {best['conveyor-local']:.2f}, "
        f"Celery {best['celery']:.2f}" + (f", Celery with optimize_coding {best['celery-optimize']:.2f}." if "celery-optimize" in best else "."),
        f"S3 overhead against the local root: **{overhead:.1f} %** (target at most 15 %). "
        f"Conveyor on S3 / Celery on S3: **{ratio:.2f}x** (target at least 1.5x)"
        + (f"; against the peer with optimize_coding: **{best['conveyor-s3'] / best['celery-optimize']:.2f}x**." if "celery-optimize" in best else "."),
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--helpers", type=int, default=2)
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--conveyor", required=True)
    parser.add_argument("--work", default=".run/bench-ingest")
    parser.add_argument("--s3-pid", help="pid file of the S3 server, whose CPU time is reported")
    parser.add_argument("--systems", default="conveyor-s3,conveyor-local,celery")
    parser.add_argument("--out", default="Benchmarks/ingest/results.md")
    parser.add_argument("--quiet-while", default="", help="shell command: before each run, wait while it succeeds")
    args = parser.parse_args()
    started = time.time()
    bench = Bench(args)
    photos = make_corpus(os.path.join(bench.work, "photos"), args.n)
    if not gps_tags(exif(photos[0])):
        fail(f"{photos[0]} has no GPS tags to remove")
    bench.prepare(photos)
    systems = args.systems.split(",")
    results = []
    for round_ in range(1, args.rounds + 1):
        # Interleaved, and each round starts with the next system, so none always runs first.
        order = systems[round_ - 1 :] + systems[: round_ - 1]
        for system in order:
            for attempt in range(1, 4):
                busy = lambda: bool(args.quiet_while) and subprocess.run(["sh", "-c", args.quiet_while]).returncode == 0
                while busy():
                    print("waiting for the machine to be quiet", file=sys.stderr)
                    time.sleep(20)
                # Something that starts during the run makes it void: run it again (at most three times).
                disturbed = threading.Event()
                stop = threading.Event()
                def watch():
                    while not stop.wait(2):
                        if busy():
                            disturbed.set()
                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                result = bench.run(system)
                stop.set()
                watcher.join()
                result["disturbed"] = disturbed.is_set()
                if not result["disturbed"]:
                    break
                print(f"{system} round {round_}: the machine got busy during the run ({result['rate']:.2f} images/s), again", file=sys.stderr)
            result["round"] = round_
            results.append(result)
            print(f"{system} round {round_}: {result['rate']:.2f} images/s ({result['seconds']:.1f} s)", file=sys.stderr)
    if {"conveyor-s3", "conveyor-local", "celery"} <= set(systems):
        text = summarise(results, args, started)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
        print(text)


def stop_group(process):
    """SIGTERM to the worker's whole group (Celery's pool processes, Conveyor's helpers), SIGKILL after a minute."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    # Whatever of the group outlived its leader.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    # A SIGTERM (an interrupted run.sh, a CI timeout) unwinds like Ctrl-C, so each run's `finally` stops its worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
