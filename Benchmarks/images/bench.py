#!/usr/bin/env python3
"""Image thumbnail benchmark: Conveyor helper pool vs vipsthumbnail vs ImageMagick, same corpus, same run.

Conveyor is driven through `conveyor helper`, the exact process the worker's HelperPool runs, speaking its
length-prefixed JSON protocol (Redis queueing is not part of the measurement). Peak memory is each process's
maximum resident set size (wait4 rusage for the CLIs, VmHWM for the long-lived helpers).
"""
import argparse, json, os, shutil, struct, subprocess, sys, time, threading, queue

VARIANTS = [("small", 320), ("medium", 800), ("large", 1600)]
QUALITY = 80
# libwebp's effort (method), 0-6, for every tool alike; None keeps each tool's default, which is 4 for all three.
EFFORT = None
# The real binary: a wrapper script on PATH would add its own start-up to every call.
CONVERT = "/usr/bin/convert" if os.path.exists("/usr/bin/convert") else "convert"


def sh(*args, env=None):
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)


def make_base_noise(directory, width, height, prefix):
    """Grey noise at a quarter of the size, upscaled: television static, far harder to encode than a photo."""
    base = os.path.join(directory, f"{prefix}-noise-base.v")
    if not os.path.exists(base):
        noise = os.path.join(directory, f"{prefix}-noise-small.v")
        grey = os.path.join(directory, f"{prefix}-noise-grey.v")
        sh("vips", "gaussnoise", noise, str(width // 4), str(height // 4), "--sigma", "60", "--mean", "128")
        sh("vips", "resize", noise, grey, "4", "--kernel", "cubic")
        sh("vips", "bandjoin", f"{grey} {grey} {grey}", base)
        for f in (noise, grey):
            os.unlink(f)
    return base


def make_base_photo(directory, width, height, prefix):
    """Photo-like content: natural images have a 1/f amplitude spectrum, which a fractal surface shares.
    Luminance is a rough fractal (dimension 2.8), the two colour axes smoother ones at a third of its
    contrast, and every band gets its own per-pixel sensor grain (sigma 6), which JPEG keeps at full size and
    downscaling averages away, as in a phone photo. At q88 a 12 MP frame is about 3.4 MB and its 1600 px
    WebP q80 about 320 KB (1.3 bits per pixel)."""
    base = os.path.join(directory, f"{prefix}-photo-base.v")
    if os.path.exists(base):
        return base
    tmp = []

    def t(name):
        path = os.path.join(directory, f"{prefix}-photo-{name}.v")
        tmp.append(path)
        return path

    def fractal(name, dimension, gain, offset):
        raw, scaled, out = t(name + "-raw"), t(name + "-scaled"), t(name)
        sh("vips", "fractsurf", raw, str(width), str(height), str(dimension))
        sh("vips", "scale", raw, scaled)  # 0..255
        sh("vips", "linear", scaled, out, str(gain), f" {offset}")  # " -x": a leading space keeps vips from reading an option
        return out

    lum = fractal("lum", 2.8, 1.0, 0.0)
    c1 = fractal("c1", 2.5, 0.35, -44.8)  # centred on 0, about +-45
    c2 = fractal("c2", 2.5, 0.35, -44.8)
    grain = []
    for band in "rgb":
        g = t("grain-" + band)
        sh("vips", "gaussnoise", g, str(width), str(height), "--sigma", "6", "--mean", "0")
        grain.append(g)
    half = t("c1-half")
    sh("vips", "linear", c1, half, " -0.5", "0")
    r1, r, g1, g2, g, b1, b = (t(n) for n in ("r1", "r", "g1", "g2", "g", "b1", "b"))
    sh("vips", "add", lum, c1, r1)
    sh("vips", "add", r1, grain[0], r)
    sh("vips", "add", lum, half, g1)
    sh("vips", "add", g1, c2, g2)
    sh("vips", "add", g2, grain[1], g)
    sh("vips", "subtract", lum, c2, b1)
    sh("vips", "add", b1, grain[2], b)
    sh("vips", "bandjoin", f"{r} {g} {b}", base)
    for f in tmp:
        os.unlink(f)
    return base


def make_corpus(directory, count, width, height, prefix, content):
    os.makedirs(directory, exist_ok=True)
    base = (make_base_photo if content == "photo" else make_base_noise)(directory, width, height, prefix)
    paths = []
    for i in range(count):
        path = os.path.join(directory, f"{prefix}-{content}-{i:03d}.jpg")
        if not os.path.exists(path):
            # Each image differs (a colour shift via linear per band), so no cache can help; saved baseline at
            # q88 like a phone camera.
            a = 0.6 + (i % 7) * 0.05
            sh("vips", "linear", base, f"{path}[Q=88,strip]", f"{a} {1.0} {1.2 - a/2}", f"{i * 3} 0 {-i * 2}", "--uchar")
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
    def __init__(self, binary, env, root):
        # Sandboxed as the worker runs it: seccomp filter, Landlock with the media root writable.
        self.proc = subprocess.Popen([binary, "helper", "--address-space-mb", "4096", "--cpu-seconds", "120", "--writable", root],
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


def bench_conveyor(binary, corpus, root, parallel, content, fast=True):
    """fast=False: CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD=off, libvips' own shrink-on-load rule."""
    env = dict(os.environ, VIPS_CONCURRENCY="1", MALLOC_ARENA_MAX="2", SWIFT_BACKTRACE="enable=no")
    helpers = [Helper(binary, env, root) for _ in range(parallel)]
    limits = {"max_megapixels": 50}

    def work(index, path):
        key = os.path.relpath(path, root)
        request = {"source": key, "destination": f"out/{'conveyor' if fast else 'conveyor-libvips-rule'}/{content}/{os.path.basename(path)}",
                   "variants": [{"name": n, "width": s, "height": s, "fit": "inside", "format": "webp", "quality": QUALITY,
                                 **({} if EFFORT is None else {"effort": EFFORT})}
                                for n, s in VARIANTS]}
        return helpers[index].call("image.thumbnail", {"media_root": root, "limits": limits, "request": request,
                                                       "fast_shrink_on_load": fast})

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
                              "-o", f"{os.path.abspath(out)}/%s-{name}.webp[Q={QUALITY},strip{'' if EFFORT is None else f',effort={EFFORT}'}]"], env=env))

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
        method = [] if EFFORT is None else ["-define", f"webp:method={EFFORT}"]
        peaks.append(run_cli([CONVERT, path, "-thumbnail", f"{size}x{size}>", "-quality", str(QUALITY), *method, "-strip", target], env=env))

    elapsed, _ = run_pool(jobs, parallel, work)
    return elapsed, max(peaks)


def bench_encode_floor(corpus, work, parallel):
    """What WebP encoding alone costs for the three variants, the part every tool pays alike: each image is
    resized to the three sizes beforehand (not timed) from a full-size decode, as vipsthumbnail and ImageMagick
    do (Conveyor's JPEG shrink-on-load gives slightly softer pixels, which encode a little faster), then `vips webpsave` (libwebp, the same Q and strip as
    Conveyor) encodes them with `parallel` processes at a time. A vips process's own start-up, measured on a
    1x1 image, is subtracted."""
    env = dict(os.environ, VIPS_CONCURRENCY="1")
    os.makedirs(work, exist_ok=True)
    jobs = []
    for path in corpus:
        stem = os.path.join(work, os.path.basename(path)[:-4])
        previous = path
        for name, size in sorted(VARIANTS, key=lambda v: -v[1]):
            sized = f"{stem}-{name}.v"
            if not os.path.exists(sized):
                sh("vips", "thumbnail", previous, sized, str(size), "--height", str(size), env=env)
            previous = sized
            jobs.append((sized, f"{stem}-{name}.webp"))
    tiny = os.path.join(work, "tiny.v")
    sh("vips", "black", tiny, "1", "1", "--bands", "3")
    starts = []
    for _ in range(9):
        t0 = time.monotonic()
        run_cli(["vips", "webpsave", tiny, os.path.join(work, "tiny.webp"), "--Q", str(QUALITY), "--strip"], env=env)
        starts.append(time.monotonic() - t0)
    start_up = sorted(starts)[len(starts) // 2]

    def work_(_, job):
        run_cli(["vips", "webpsave", job[0], job[1], "--Q", str(QUALITY), "--strip", *([] if EFFORT is None else ["--effort", str(EFFORT)])], env=env)

    elapsed, _ = run_pool(jobs, parallel, work_)
    return max(0.001, elapsed - start_up * len(jobs) / parallel), start_up


def bench_content(a, root, content):
    """One corpus: every tool for a.rounds interleaved rounds; returns the results' markdown lines."""
    print(f"generating {a.images} 12 MP JPEGs ({content}) under {root}/corpus", file=sys.stderr)
    corpus = make_corpus(os.path.join(root, "corpus"), a.images, 4000, 3000, "12mp", content)
    big = make_corpus(os.path.join(root, "corpus"), max(2, a.parallel), 6000, 4000, "24mp", content)
    out = os.path.join(root, "out", content)

    # Other work on the machine comes and goes: the tools take turns for several rounds and each keeps its
    # fastest round (as the libvips speed page does); peak memory is the largest seen in any round.
    tools = [("Conveyor (helper pool, decode once, 3 variants)", lambda: bench_conveyor(a.conveyor, corpus, root, a.parallel, content)),
             ("Conveyor with CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD=off (libvips' shrink-on-load rule)",
              lambda: bench_conveyor(a.conveyor, corpus, root, a.parallel, content, fast=False)),
             ("vipsthumbnail (one run per variant)", lambda: bench_vipsthumbnail(corpus, os.path.join(out, "vipsthumbnail"), a.parallel))]
    if not a.skip_imagemagick:
        tools.append(("ImageMagick 6 convert -thumbnail", lambda: bench_imagemagick(corpus, os.path.join(out, "imagemagick"), a.parallel)))
    best = {name: (float("inf"), 0) for name, _ in tools}
    floor, start_up = float("inf"), 0.0
    for round_ in range(a.rounds):
        for name, run in tools:
            print(f"{content} round {round_ + 1}/{a.rounds}: {name} ...", file=sys.stderr)
            t, peak = run()
            best[name] = (min(best[name][0], t), max(best[name][1], peak))
        print(f"{content} round {round_ + 1}/{a.rounds}: WebP encoding alone ...", file=sys.stderr)
        t, start_up = bench_encode_floor(corpus, os.path.join(out, "encode-only"), a.parallel)
        floor = min(floor, t)
    rows = [(name, best[name][0], best[name][1]) for name, _ in tools]
    print(f"{content}: conveyor 24 MP ...", file=sys.stderr)
    _, peak24 = bench_conveyor(a.conveyor, big, root, a.parallel, content)

    sizes = {os.path.basename(p): os.path.getsize(p) for p in corpus}
    mean_jpeg = sum(sizes.values()) / len(sizes) / 1e6
    def mean_kb(paths):
        return sum(os.path.getsize(p) for p in paths) / len(paths) / 1e3
    stems = [os.path.basename(p)[:-4] for p in corpus]
    large_kb = {
        "Conveyor": mean_kb([os.path.join(root, "out", "conveyor", content, os.path.basename(p), "large.webp") for p in corpus]),
        "Conveyor-libvips-rule": mean_kb([os.path.join(root, "out", "conveyor-libvips-rule", content, os.path.basename(p), "large.webp")
                                          for p in corpus]),
        "vipsthumbnail": mean_kb([os.path.join(out, "vipsthumbnail", f"{st}-large.webp") for st in stems]),
        "ImageMagick": None if a.skip_imagemagick else mean_kb([os.path.join(out, "imagemagick", f"{st}-large.webp") for st in stems]),
        "WebP": mean_kb([os.path.join(out, "encode-only", f"{st}-large.webp") for st in stems]),
    }
    mean_large = large_kb["Conveyor"]
    conveyor_time = rows[0][1]
    lines = [
        f"### {content} corpus",
        "",
        f"{a.images} JPEGs of 4000x3000 ({content}, q88, baseline, {mean_jpeg:.1f} MB on average) → WebP q{QUALITY} "
        f"(effort {4 if EFFORT is None else EFFORT} for every tool) boxes 320, 800 and 1600 px "
        f"(Conveyor's 1600 px output: {mean_large:.0f} KB on average).",
        "",
        "| Tool | images/s | × Conveyor's time | peak RSS per process | 1600 px WebP, mean |",
        "|---|---|---|---|---|",
    ]
    sizes = [large_kb["Conveyor"], large_kb["Conveyor-libvips-rule"], large_kb["vipsthumbnail"], large_kb["ImageMagick"]]
    for (name, t, peak), kb in zip(rows, sizes):
        lines.append(f"| {name} | {a.images / t:.2f} | {t / conveyor_time:.2f}× | {peak / 1024:.0f} MB | {kb:.0f} KB |")
    lines += [f"| WebP encoding alone (libwebp via `vips webpsave`, the 3 sizes, no decode or resize) | {a.images / floor:.2f} "
              f"| {floor / conveyor_time:.2f}× | - | {large_kb['WebP']:.0f} KB |"]
    lines += ["", f"Conveyor on 6000x4000 (24 MP) JPEGs: peak RSS per helper (one job at a time) {peak24 / 1024:.0f} MB."]
    if not a.skip_imagemagick:
        im = rows[-1][1]
        lines.append(f"Encoding alone (of full-size decodes) takes {floor / conveyor_time:.0%} of Conveyor's time; even with decoding "
                     f"and resizing free, a tool writing those files could be at most {im / floor:.1f}× faster than ImageMagick here "
                     f"(Conveyor: {im / conveyor_time:.1f}×). vips start-up subtracted: {start_up * 1000:.0f} ms per encode.")
    return lines + [""]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--work", default=".run/bench-images")
    p.add_argument("--conveyor", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--skip-imagemagick", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--content", default="photo,noise", help="corpora to run: photo, noise, or both (comma-separated)")
    p.add_argument("--effort", type=int, choices=range(0, 7), help="libwebp effort (method) for every tool; default: each tool's own (4)")
    a = p.parse_args()
    global EFFORT
    EFFORT = a.effort
    root = os.path.abspath(a.work)
    os.makedirs(root, exist_ok=True)
    shutil.rmtree(os.path.join(root, "out"), ignore_errors=True)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    lines = [f"{a.parallel} jobs in parallel, one libvips/ImageMagick thread each; {os.cpu_count()} cores ({cpu}); "
             f"fastest of {a.rounds} interleaved rounds; load average before the run {os.getloadavg()[0]:.2f}; "
             f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}.", ""]
    for content in a.content.split(","):
        lines += bench_content(a, root, content.strip())
    text = "\n".join(lines)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
