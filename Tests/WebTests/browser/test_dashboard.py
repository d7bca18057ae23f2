#!/usr/bin/env python3
"""Browser tests of `conveyor web` in real headless Chromium (Debian's chromium + chromium-driver, selenium).

Runs against the real binary ($CONVEYOR_BIN), the test Redis and PostgreSQL (REDIS_URL, DATABASE_URL) and a real
worker, all on a namespace of their own. scripts/test.sh runs it after the Swift targets.

  python3 Tests/WebTests/browser/test_dashboard.py                      the tests
  CONVEYOR_SCREENSHOTS=docs/dashboard python3 .../test_dashboard.py     the tests, then screenshots of every page
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BIN = os.environ["CONVEYOR_BIN"]
REDIS_URL = os.environ["REDIS_URL"]
DATABASE_URL = os.environ["DATABASE_URL"]
NAMESPACE = f"browser-{os.getpid()}"
QUEUE = "browser"


def redis(*args):
    out = subprocess.run(["redis-cli", "-u", REDIS_URL, *args], check=True, capture_output=True, text=True).stdout
    return out.strip()


def redis_int(*args):
    return int(redis(*args) or 0)


def key(name):
    return f"{NAMESPACE}:{name}"


def psql(sql):
    return subprocess.run(["psql", DATABASE_URL, "-At", "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


def eventually(condition, seconds=20, what="condition"):
    """Polls condition every 50 ms for at most `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    if not condition():
        raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def enqueue(job_class, args, queue=None):
    cmd = [BIN, "enqueue", job_class, "--args", json.dumps(args), "--namespace", NAMESPACE]
    if queue:
        cmd += ["--queue", queue]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def dead_job(jid, job_class="noop", args=None, queue="default", error=("RuntimeError", "boom"), at=None):
    at = at or time.time()
    job = {"class": job_class, "args": args if args is not None else [{}], "queue": queue, "jid": jid, "retry": 1,
           "created_at": at - 60, "enqueued_at": at - 60, "error_class": error[0], "error_message": error[1],
           "failed_at": at, "retry_count": 1}
    redis("ZADD", key("dead"), repr(at), json.dumps(job))


class Harness:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="conveyor-browser-")
        self.media = os.path.join(self.tmp, "media")
        os.makedirs(os.path.join(self.media, "uploads"))
        self.procs = []
        env = dict(os.environ, CONVEYOR_NAMESPACE=NAMESPACE, CONVEYOR_MEDIA_ROOT=self.media,
                   CONVEYOR_WEB_REFRESH_SECONDS="0", CONVEYOR_RESULTS_FLUSH_MS="50")
        env.pop("CONVEYOR_METRICS_ADDR", None)
        self.worker_log = open(os.path.join(self.tmp, "worker.log"), "w")
        # A schedule that never ticks during the run (03:00 on 29 February): the Schedules page runs it by hand.
        self.config = os.path.join(self.tmp, "conveyor.yml")
        with open(self.config, "w") as f:
            f.write(f"schedules:\n  browser-cleanup:\n    cron: \"0 3 29 2 * Europe/Berlin\"\n    class: noop\n"
                    f"    queue: {QUEUE}\n    args: {{reason: nightly}}\n")
        self.procs.append(subprocess.Popen(
            [BIN, "worker", "--config", self.config, "--queues", f"{QUEUE},media,default", "--concurrency", "4", "--log-level", "warning",
             "--heartbeat-interval", "1s"],
            env=env, stdout=self.worker_log, stderr=subprocess.STDOUT))
        self.web_log = open(os.path.join(self.tmp, "web.log"), "w")
        web = subprocess.Popen([BIN, "web", "--addr", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE, stderr=self.web_log, text=True)
        self.procs.append(web)
        line = web.stdout.readline()
        if not line.startswith("conveyor web: "):
            raise RuntimeError(f"conveyor web did not start: {line!r}")
        self.url = line.split(": ", 1)[1].strip().rstrip("/")
        eventually(lambda: redis_int("SCARD", key("processes")) > 0, what="the worker's heartbeat")
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                  "--no-first-run", "--disable-extensions"]:
            opts.add_argument(a)
        self.driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
        self.driver.set_page_load_timeout(30)

    def open(self, path):
        self.driver.get(self.url + path)
        self.no_alert()

    def text(self):
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception:
            return ""  # between two pages (a click's navigation under way)

    def wait_text(self, expected, seconds=10):
        """Waits (bounded) for the page a click led to, until it shows `expected`."""
        eventually(lambda: expected in self.text(), seconds, what=f"{expected!r} on {self.driver.current_url}")
        self.no_alert()

    def click(self, element, expected):
        """Clicks and waits for the next page to show `expected`."""
        element.click()
        self.wait_text(expected)

    def no_alert(self):
        try:
            alert = self.driver.switch_to.alert
            raise AssertionError(f"a script ran: alert {alert.text!r}")
        except NoAlertPresentException:
            pass

    def button(self, label, within=None):
        scope = within or self.driver
        for b in scope.find_elements(By.TAG_NAME, "button"):
            if b.text.strip() == label:
                return b
        raise AssertionError(f"no button {label!r} on {self.driver.current_url}")

    def row(self, text):
        for tr in self.driver.find_elements(By.CSS_SELECTOR, "tbody tr"):
            if text in tr.text:
                return tr
        raise AssertionError(f"no row with {text!r} on {self.driver.current_url}")

    def close(self):
        try:
            self.driver.quit()
        finally:
            for p in reversed(self.procs):
                p.terminate()
            for p in reversed(self.procs):
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
            keys = redis("--scan", "--pattern", f"{NAMESPACE}:*").split()
            for i in range(0, len(keys), 500):
                redis("DEL", *keys[i:i + 500])
            shutil.rmtree(self.tmp, ignore_errors=True)


def test_pause_a_queue_and_the_worker_stops_taking_from_it(h):
    enqueue("noop", {}, queue=QUEUE)
    eventually(lambda: redis_int("LLEN", key(f"queue:{QUEUE}")) == 0, what="the worker to take the first job")
    h.open("/queues")
    h.click(h.button("Pause", h.row(QUEUE)), "Paused browser")
    assert "paused" in h.row(QUEUE).text
    assert redis_int("SISMEMBER", key("conveyor:paused-queues"), QUEUE) == 1
    # Workers reread the paused set at most once a second; one more second covers a fetch already under way.
    time.sleep(2)
    for _ in range(3):
        enqueue("noop", {}, queue=QUEUE)
    # The jobs must stay put: watch for two seconds that nothing takes them.
    end = time.monotonic() + 2
    while time.monotonic() < end:
        assert redis_int("LLEN", key(f"queue:{QUEUE}")) == 3, "a worker fetched from a paused queue"
        time.sleep(0.1)
    h.open(f"/queues/{QUEUE}")
    assert "3 ready jobs" in h.text()
    h.click(h.button("Resume"), "Resumed browser")
    eventually(lambda: redis_int("LLEN", key(f"queue:{QUEUE}")) == 0, what="the worker to drain the resumed queue")


def test_retry_a_dead_job_and_see_it_succeed(h):
    jid = "d" * 8 + os.urandom(8).hex()
    dead_job(jid)
    h.open("/dead")
    h.click(h.button("Retry", h.row(jid)), f"Retried {jid}")
    assert redis_int("ZCARD", key("dead")) == 0 or jid not in redis("ZRANGE", key("dead"), "0", "-1")

    def succeeded():
        h.open(f"/lookup?q={jid}")
        return "succeeded" in h.text()

    eventually(succeeded, what=f"{jid} to succeed and its result row to appear")
    assert "conveyor.job_results" in h.text()


def test_bulk_delete_with_a_filter(h):
    tag = os.urandom(3).hex()
    for i in range(5):
        dead_job(f"t{tag}{i:016d}", error=("Timeout", f"upstream slow {tag}"))
    for i in range(3):
        dead_job(f"k{tag}{i:016d}", error=("RuntimeError", f"keep me {tag}"))
    h.open("/dead")
    h.driver.find_element(By.NAME, "error").send_keys(f"^Timeout: upstream slow {tag}")
    h.click(h.button("Filter"), "5 matching among entries")
    assert "error=%5ETimeout" in h.driver.current_url, h.driver.current_url
    h.click(h.button("Delete all matching"), "Delete 5 jobs in dead")
    h.click(h.driver.find_element(By.ID, "confirm"), "Started #")
    assert "/actions" in h.driver.current_url

    def gone():
        return all(f"t{tag}" not in m for m in [redis("ZRANGE", key("dead"), "0", "-1")])

    eventually(gone, what="the matching dead jobs to be deleted")
    kept = redis("ZRANGE", key("dead"), "0", "-1")
    assert kept.count(f"k{tag}") == 3, kept
    h.open("/actions")
    assert "finished #" in h.text() and "delete 5 of 5" in h.text(), h.text()


def test_find_an_upload_by_id_and_see_its_thumbnail(h):
    upload = f"up-{os.urandom(4).hex()}"
    source = f"uploads/{upload}.jpg"
    subprocess.run(["convert", "-size", "800x600", "gradient:#2457c5-#f0a020", os.path.join(h.media, source)], check=True)
    enqueue("media.ingest", {"upload_id": upload, "source": source})

    def ready():
        return psql(f"SELECT status FROM conveyor.media_uploads WHERE upload_id = '{upload}'") == "ready"

    eventually(ready, seconds=60, what=f"media.ingest to finish {upload}")
    h.open("/")
    box = h.driver.find_element(By.CSS_SELECTOR, "header input[name=q]")
    box.send_keys(upload)
    h.click(h.button("Find"), f"Upload {upload}")
    images = h.driver.find_elements(By.CSS_SELECTOR, ".variants img")
    assert images, "no variant images on the upload page"
    eventually(lambda: all(h.driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) for i in images),
               what="the thumbnails to load")
    widths = [h.driver.execute_script("return arguments[0].naturalWidth", i) for i in images]
    assert all(w > 0 for w in widths), widths


def test_xss_payload_is_shown_as_text(h):
    jid = "e" * 8 + os.urandom(8).hex()
    payload = "<script>alert(1)</script>"
    dead_job(jid, job_class="x<img src=x onerror=alert(2)>", args=[payload, {"html": "<b onmouseover=alert(3)>bold</b>"}],
             error=("Evil<script>alert(4)</script>", "<img src=x onerror=alert(5)>"))
    h.open("/dead")
    row = h.row(jid)
    assert "<img src=x onerror=alert(5)>" in row.text
    assert "x<img src=x onerror=alert(2)>" in row.text
    assert not h.driver.find_elements(By.CSS_SELECTOR, "main img"), "markup from a job reached the page"
    h.click(row.find_element(By.LINK_TEXT, jid), payload)
    assert not h.driver.find_elements(By.CSS_SELECTOR, "main b, main img, main script")
    h.open(f"/lookup?q={jid}")
    assert payload in h.text()


def test_run_disable_and_enable_a_schedule(h):
    h.open("/schedules")
    row = h.row("browser-cleanup")
    assert "0 3 29 2 * Europe/Berlin" in row.text and "enabled" in row.text and "never" in row.text
    h.click(h.button("Run now", row), "Queued browser-cleanup as ")
    jid = redis("HGET", key("cron_job:browser-cleanup"), "conveyor_last_jid")
    assert len(jid) == 24

    def succeeded():
        h.open("/schedules")
        return "succeeded" in h.row("browser-cleanup").text

    eventually(succeeded, what="the schedule's job to run and its outcome to show")
    assert jid in h.row("browser-cleanup").text
    assert psql(f"SELECT status FROM conveyor.job_results WHERE jid = '{jid}'") == "succeeded"
    h.click(h.button("Disable", h.row("browser-cleanup")), "Disabled browser-cleanup")
    assert redis("HGET", key("cron_job:browser-cleanup"), "status") == "disabled"
    assert "disabled" in h.row("browser-cleanup").text
    h.click(h.button("Enable", h.row("browser-cleanup")), "Enabled browser-cleanup")
    assert redis("HGET", key("cron_job:browser-cleanup"), "status") == "enabled"


def test_busy_shows_progress_and_cancels_a_running_job(h):
    jid = enqueue("sleep", {"ms": 60000}, queue=QUEUE)
    eventually(lambda: redis("HGET", key(f"conveyor:job:{jid}"), "progress") != "", what="the sleep job's first progress report")

    def listed():
        h.open("/busy")
        return jid in h.text()

    # The Busy page lists running jobs from each worker's heartbeat (every 5 s).
    eventually(listed, seconds=15, what=f"{jid} on the Busy page")
    row = h.row(jid)
    bar = row.find_element(By.TAG_NAME, "progress")
    assert 0 <= float(bar.get_attribute("value")) <= 100
    badge = h.driver.find_element(By.CSS_SELECTOR, 'nav a[href="/busy"] .badge')
    assert int(badge.text) >= 1
    h.click(h.button("Cancel", row), f"Cancelling {jid}")
    started = time.monotonic()
    eventually(lambda: psql(f"SELECT status FROM conveyor.job_results WHERE jid = '{jid}'") == "cancelled", seconds=10,
               what=f"{jid} recorded cancelled")
    assert time.monotonic() - started < 2, "the cancelled job's row came late"
    assert redis_int("ZCARD", key("retry")) == 0
    h.open(f"/lookup?q={jid}")
    assert "cancelled" in h.text()


def test_cancel_a_running_transcode_from_busy(h):
    """A long transcode (40 s of 720p), cancelled with Busy's button: cancelled within a second, its helper gone, no
    output left."""
    name = f"clip-{os.urandom(3).hex()}"
    source = f"uploads/{name}.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=s=1280x720:r=30:d=40", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", os.path.join(h.media, source)], check=True)
    out_dir = os.path.join(h.media, "cancelled")
    jid = enqueue("video.transcode", {"source": source, "output": f"cancelled/{name}.mp4"}, queue="media")
    eventually(lambda: redis("HGET", key(f"conveyor:job:{jid}"), "status") == "running", seconds=60, what="the transcode to report progress")

    def listed():
        h.open("/busy")
        return jid in h.text()

    eventually(listed, seconds=15, what=f"{jid} on the Busy page")
    assert os.listdir(out_dir), "the transcode is writing its output"
    before = children(h.procs[0].pid)
    assert before, "the worker runs helpers"
    h.click(h.button("Cancel", h.row(jid)), f"Cancelling {jid}")
    started = time.monotonic()
    eventually(lambda: redis("HGET", key(f"conveyor:job:{jid}"), "status") == "cancelled", seconds=5, what="the outcome cancelled")
    assert time.monotonic() - started < 1.0, f"cancelled after {time.monotonic() - started:.2f} s"
    eventually(lambda: not os.listdir(out_dir), seconds=2, what="its partial output removed")
    # The helper that ran the transcode was killed (other pools' idle helpers stay).
    eventually(lambda: len(children(h.procs[0].pid) & before) < len(before), seconds=2, what="the transcode's helper gone")
    eventually(lambda: psql(f"SELECT status FROM conveyor.job_results WHERE jid = '{jid}'") == "cancelled", what="the cancelled row")


def children(pid):
    """The running (not zombie) direct children of `pid`."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.add(int(entry))
    return found


def screenshots(h, folder):
    """Every page at desktop and phone width, with a few jobs in each set."""
    os.makedirs(folder, exist_ok=True)
    now = time.time()
    for i, (cls, err) in enumerate([("image.thumbnail", ("ImageTooLarge", "source uploads/big.jpg: 42000x42000 exceeds the 50 megapixel limit")),
                                    ("email.send", ("SMTPRejected", "550 5.1.1 <nobody@example.com>: mailbox unavailable")),
                                    ("summary.generate", ("LLMUnavailable", "openai: breaker open; anthropic: HTTP 529 overloaded"))]):
        dead_job(f"shot{i:020d}", job_class=cls, args=[{"source": f"uploads/{i}.jpg"}], queue="media" if i == 0 else "default",
                 error=err, at=now - 600 * i)
        job = {"class": cls, "args": [{"n": i}], "queue": "default", "jid": f"retr{i:020d}", "retry_count": i,
               "error_class": err[0], "error_message": err[1], "failed_at": now - 30}
        redis("ZADD", key("retry"), repr(now + 60 * (i + 1)), json.dumps(job))
        enqueue("noop", {"n": i}, queue="default")
    redis("SADD", key("conveyor:paused-queues"), "low")
    for i in range(4):
        enqueue("noop", {"n": i}, queue="low")
    sleeper = enqueue("sleep", {"ms": 30000}, queue="default")
    subprocess.run([BIN, "enqueue", "noop", "--in", "2h", "--namespace", NAMESPACE], check=True, capture_output=True)

    def busy_lists_it():
        h.open("/busy")
        return sleeper in h.text() and "%" in h.text()

    # The worker's heartbeat lists the running sleep job (and its progress) on the Busy page.
    eventually(busy_lists_it, seconds=15, what="the running sleep job on Busy")
    pages = {"overview": "/", "queues": "/queues", "queue": "/queues/low", "busy": "/busy", "scheduled": "/scheduled",
             "retries": "/retry", "dead": "/dead", "job": f"/dead/job?jid={'shot' + '0' * 19 + '0'}", "lookup": None, "actions": "/actions", "schedules": "/schedules"}
    ids = psql("SELECT upload_id FROM conveyor.media_uploads WHERE status = 'ready' ORDER BY updated_at DESC LIMIT 1")
    pages["lookup"] = f"/lookup?q={ids}" if ids else "/lookup"
    for width, height, suffix in [(1280, 900, "desktop"), (390, 844, "phone")]:
        h.driver.set_window_size(width, height)
        for name, path in pages.items():
            h.open(path)
            body_height = h.driver.execute_script("return document.documentElement.scrollHeight")
            h.driver.set_window_size(width, min(max(height, body_height), 2400))
            h.driver.save_screenshot(os.path.join(folder, f"{name}-{suffix}.png"))
            h.driver.set_window_size(width, height)


def main():
    tests = [test_pause_a_queue_and_the_worker_stops_taking_from_it, test_retry_a_dead_job_and_see_it_succeed,
             test_bulk_delete_with_a_filter, test_find_an_upload_by_id_and_see_its_thumbnail, test_xss_payload_is_shown_as_text,
             test_run_disable_and_enable_a_schedule, test_busy_shows_progress_and_cancels_a_running_job,
             test_cancel_a_running_transcode_from_busy]
    h = Harness()
    failed = []
    try:
        for t in tests:
            started = time.monotonic()
            try:
                t(h)
                print(f"ok   {t.__name__} ({time.monotonic() - started:.1f} s)")
            except Exception:
                failed.append(t.__name__)
                print(f"FAIL {t.__name__}")
                traceback.print_exc()
        folder = os.environ.get("CONVEYOR_SCREENSHOTS")
        if folder and not failed:
            screenshots(h, folder)
            print(f"screenshots in {folder}")
    finally:
        if failed:
            for log in (h.worker_log.name, h.web_log.name):
                print(f"--- {log}")
                with open(log) as f:
                    print(f.read()[-4000:])
        h.close()
    if failed:
        print(f"browser tests failed: {', '.join(failed)}")
        sys.exit(1)
    print(f"all {len(tests)} browser tests passed")


if __name__ == "__main__":
    main()
