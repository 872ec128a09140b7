"""Headless Chromium through chromedriver's WebDriver API (plain HTTP and JSON: only the standard
library), with web/ served on 127.0.0.1: what web/check.py and web/bench.py share."""
import contextlib
import functools
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request

WEB = os.path.dirname(os.path.abspath(__file__))
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--disable-dev-shm-usage", "--window-size=1240,820"]
# More Chromium flags from the environment, for measuring what the browser's own layers cost (for
# example --enable-dawn-features=disable_robustness, which drops Dawn's bounds checks).
FLAGS += os.environ.get("CONVGRAD_CHROMIUM_FLAGS", "").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}").get("value")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Page:
    """One browser session with web/ served: `open(path)` loads a page, `js(expr)` evaluates it."""

    def __init__(self, base, session, http_port):
        self.base, self.s, self.http_port = base, f"/session/{session}", http_port

    def open(self, path):
        call(self.base, "POST", self.s + "/url", {"url": f"http://127.0.0.1:{self.http_port}/{path}"})

    def js(self, expr):
        return call(self.base, "POST", self.s + "/execute/sync", {"script": f"return {expr}", "args": []})

    def status(self):
        """The page's status element: (data-state, text)."""
        return self.js("document.getElementById('status').dataset.state"), \
            self.js("document.getElementById('status').textContent")

    def wait(self, busy, limit_s):
        """Polls the status until its state is not in `busy` or `limit_s` pass; returns (state, text)."""
        t0 = time.time()
        state, text = self.status()
        while state in busy and time.time() - t0 < limit_s:
            time.sleep(0.5)
            state, text = self.status()
        return state, text

    def screenshot(self):
        return call(self.base, "GET", self.s + "/screenshot")


@contextlib.contextmanager
def browser(flags=FLAGS):
    """Serves web/ on a free port and starts a Chromium session with `flags`; yields a Page."""
    http_port, wd_port = free_port(), free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), functools.partial(Quiet, directory=WEB))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={wd_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{wd_port}"
    session = None
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": flags}}}}
        session = call(base, "POST", "/session", caps)["sessionId"]
        yield Page(base, session, http_port)
    finally:
        if session:
            try:
                call(base, "DELETE", f"/session/{session}")
            except OSError:
                pass
        driver.terminate()
        server.shutdown()
