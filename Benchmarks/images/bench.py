#!/usr/bin/env python3
"""Image thumbnail benchmark: Conveyor helper pool vs vipsthumbnail vs ImageMagick, same corpus, same run.

Conveyor is driven through `conveyor helper`, the exact process the worker's HelperPool runs, speaking its
length-prefixed JSON protocol (Redis queueing is not part of the measurement). Peak memory is each process's
maximum resident set size (wait4 rusage for the CLIs, VmHWM for the long-lived helpers).
"""
import argparse, json, os, shutil, struct, subprocess, sys, time, threading, queue

VARIANTS = [("small", 320), ("medium", 800), ("large", 1600)]
QUALITY = 80
# The real binary: a wrapper script on PATH would add its own start-up to every call.
CONVERT = "/usr/bin/convert" if os.path.exists("/usr/bin/convert") else "convert"


def sh(*args, env=None):
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)


def make_corpus(directory, count, width, height, prefix):
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, f"{prefix}-base.v")
    if not os.path.exists(base):
        # Photo-like content: smooth noise plus gradients, saved baseline at q88 like a phone camera.
        noise = os.path.join(directory, f"{prefix}-noise.v")
        sh("vips", "gaussnoise", noise, str(width // 4), str(height // 4), "--sigma", "60", "--mean", "128")
        sh("vips", "resize", noise, base, "4", "--kernel", "cubic")
    paths = []
    for i in range(count):
        path = os.path.join(directory, f"{prefix}-{i:03d}.jpg")
        if not os.path.exists(path):
            # Each image differs (hue rotation via linear per band), so no cache can help.
            a = 0.6 + (i % 7) * 0.05
            tmp = os.path.join(directory, f"{prefix}-tmp.v")
            sh("vips", "bandjoin", f"{base} {base} {base}", tmp)
            sh("vips", "linear", tmp, f"{path}[Q=88,strip]", f"{a} {1.0} {1.2 - a/2}", f"{i * 3} 0 {-i * 2}", "--uchar")
            os.unlink(tmp)
        paths.append(path)
    return paths


def run_pool(items, parallel, work):
    """Runs work(item) on `parallel` threads; returns elapsed seconds and results."""
    q = queue.Queue()
    for it in items:
        q.put(it)
    results, errors = [], []
    lock = threading.Lock()

    def worker(index):
        while True:
            try:
                it = q.get_nowait()
            except queue.Empty:
                return
            try:
                r = work(index, it)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(e)

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - start, results


def run_cli(args, env=None):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if status != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {err}")
    return usage.ru_maxrss  # KiB


class Helper:
    def __init__(self, binary, env):
        self.proc = subprocess.Popen([binary, "helper", "--address-space-mb", "4096", "--cpu-seconds", "120"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def call(self, operation, arguments, deadline_ms=120000):
        body = json.dumps({"operation": operation, "arguments": arguments, "deadline_ms": deadline_ms}).encode()
        self.proc.stdin.write(struct.pack(">I", len(body)) + body)
        self.proc.stdin.flush()
        header = self.proc.stdout.read(4)
        (n,) = struct.unpack(">I", header)
        response = json.loads(self.proc.stdout.read(n))
        if "error" in response:
            raise RuntimeError(response["error"])
        return response["result"]

    def peak_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def bench_conveyor(binary, corpus, root, parallel):
    env = dict(os.environ, VIPS_CONCURRENCY="1", MALLOC_ARENA_MAX="2", SWIFT_BACKTRACE="enable=no")
    helpers = [Helper(binary, env) for _ in range(parallel)]
    limits = {"max_megapixels": 50}

    def work(index, path):
        key = os.path.relpath(path, root)
        request = {"source": key, "destination": f"out/conveyor/{os.path.basename(path)}",
                   "variants": [{"name": n, "width": s, "height": s, "fit": "inside", "format": "webp", "quality": QUALITY}
                                for n, s in VARIANTS]}
        return helpers[index].call("image.thumbnail", {"media_root": root, "limits": limits, "request": request})

    # Warm the helpers (process start and libvips init are paid once by a warm pool).
    run_pool(corpus[:parallel], parallel, work)
    elapsed, _ = run_pool(corpus, parallel, work)
    peak = max(h.peak_kib() for h in helpers)
    for h in helpers:
        h.close()
    return elapsed, peak


def bench_vipsthumbnail(corpus, out, parallel):
    env = dict(os.environ, VIPS_CONCURRENCY="1")
    os.makedirs(out, exist_ok=True)
    chunks = [corpus[i::parallel] for i in range(parallel)]
    jobs = [(name, size, chunk) for name, size in VARIANTS for chunk in chunks if chunk]
    peaks = []

    def work(_, job):
        name, size, chunk = job
        peaks.append(run_cli(["vipsthumbnail", *chunk, "--size", f"{size}x{size}>",
                              "-o", f"{os.path.abspath(out)}/%s-{name}.webp[Q={QUALITY},strip]"], env=env))

    elapsed, _ = run_pool(jobs, parallel, work)
    return elapsed, max(peaks)


def bench_imagemagick(corpus, out, parallel):
    os.makedirs(out, exist_ok=True)
    jobs = [(name, size, path) for path in corpus for name, size in VARIANTS]
    peaks = []
    env = dict(os.environ, MAGICK_THREAD_LIMIT="1")

    def work(_, job):
        name, size, path = job
        target = os.path.join(out, os.path.basename(path).replace(".jpg", f"-{name}.webp"))
        peaks.append(run_cli([CONVERT, path, "-thumbnail", f"{size}x{size}>", "-quality", str(QUALITY), "-strip", target], env=env))

    elapsed, _ = run_pool(jobs, parallel, work)
    return elapsed, max(peaks)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--work", default=".run/bench-images")
    p.add_argument("--conveyor", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--skip-imagemagick", action="store_true")
    a = p.parse_args()
    root = os.path.abspath(a.work)
    os.makedirs(root, exist_ok=True)
    shutil.rmtree(os.path.join(root, "out"), ignore_errors=True)
    print(f"generating {a.images} 12 MP JPEGs under {root}/corpus", file=sys.stderr)
    corpus = make_corpus(os.path.join(root, "corpus"), a.images, 4000, 3000, "12mp")
    big = make_corpus(os.path.join(root, "corpus"), max(2, a.parallel), 6000, 4000, "24mp")

    rows = []
    print("conveyor ...", file=sys.stderr)
    t, peak = bench_conveyor(a.conveyor, corpus, root, a.parallel)
    rows.append(("Conveyor (helper pool, decode once, 3 variants)", t, peak))
    print("vipsthumbnail ...", file=sys.stderr)
    t, peak = bench_vipsthumbnail(corpus, os.path.join(root, "out", "vipsthumbnail"), a.parallel)
    rows.append(("vipsthumbnail (one run per variant)", t, peak))
    if not a.skip_imagemagick:
        print("imagemagick ...", file=sys.stderr)
        t, peak = bench_imagemagick(corpus, os.path.join(root, "out", "imagemagick"), a.parallel)
        rows.append(("ImageMagick 6 convert -thumbnail", t, peak))
    print("conveyor 24 MP ...", file=sys.stderr)
    _, peak24 = bench_conveyor(a.conveyor, big, root, a.parallel)

    conveyor_rate = a.images / rows[0][1]
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"{a.images} JPEGs of 4000x3000 (12 MP, q88, baseline) → WebP q{QUALITY} boxes 320, 800 and 1600 px; "
        f"{a.parallel} jobs in parallel, one libvips/ImageMagick thread each; {os.cpu_count()} cores ({cpu}).",
        "",
        "| Tool | images/s | × Conveyor's time | peak RSS per process |",
        "|---|---|---|---|",
    ]
    for name, t, peak in rows:
        rate = a.images / t
        lines.append(f"| {name} | {rate:.2f} | {t / rows[0][1]:.2f}× | {peak / 1024:.0f} MB |")
    lines += ["", f"Conveyor on 6000x4000 (24 MP) JPEGs: peak RSS per helper (one job at a time) {peak24 / 1024:.0f} MB.",
              f"Conveyor throughput {conveyor_rate:.2f} images/s (each image = 3 variants)."]
    text = "\n".join(lines) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
