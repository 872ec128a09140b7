#!/usr/bin/env python3
"""Loads the demo page in headless Chromium and checks that it recovers the filters.

    python3 web/check.py [SCREENSHOT.png]
    python3 web/check.py --no-webgpu     # without --enable-unsafe-webgpu: the page must say so

Serves web/ on 127.0.0.1, drives Chromium through chromedriver's WebDriver API (plain HTTP and JSON,
so only the standard library is needed), waits for the page's status to leave "running", saves a
screenshot (web/screenshot.png by default), and exits 1 unless every filter was recovered (worst
relative error below 1e-3) within 30 s of training. Needs chromium, chromium-driver and a built page
(web/build.sh).
"""
import base64
import functools
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

WEB = os.path.dirname(os.path.abspath(__file__))
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--disable-dev-shm-usage", "--window-size=1240,820"]


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


def main():
    no_webgpu = "--no-webgpu" in sys.argv[1:]
    args = [a for a in sys.argv[1:] if a != "--no-webgpu"]
    shot = args[0] if args else os.path.join(WEB, "screenshot.png")
    flags = [f for f in FLAGS if f != "--enable-unsafe-webgpu"] if no_webgpu else FLAGS
    if not os.path.exists(os.path.join(WEB, "pkg", "convgrad_web_bg.wasm")):
        sys.exit("web/pkg is missing: run bash web/build.sh first")
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
        s = f"/session/{session}"
        t0 = time.time()
        call(base, "POST", s + "/url", {"url": f"http://127.0.0.1:{http_port}/index.html"})
        state = "running"
        while state == "running" and time.time() - t0 < 180:
            time.sleep(0.5)
            state = call(base, "POST", s + "/execute/sync",
                         {"script": "return document.getElementById('status').dataset.state", "args": []})
        wall = time.time() - t0
        text = call(base, "POST", s + "/execute/sync",
                    {"script": "return document.getElementById('status').textContent", "args": []})
        adapter = call(base, "POST", s + "/execute/sync",
                       {"script": "return document.getElementById('adapter').textContent", "args": []})
        result = call(base, "POST", s + "/execute/sync",
                      {"script": "return document.getElementById('status').dataset.result || '{}'", "args": []})
        print(f"page: {state} after {wall:.1f} s: {text}")
        if no_webgpu:
            if state != "no-webgpu":
                print("FAILED: without WebGPU the page must say so")
                return 1
            return 0
        with open(shot, "wb") as f:
            f.write(base64.b64decode(call(base, "GET", s + "/screenshot")))
        print(adapter)
        print(f"screenshot: {shot}")
        summary = json.loads(result)
        ok = state == "done" and summary.get("recovered") and summary.get("worst", 1) < 1e-3 and summary.get("seconds", 1e9) < 30
        if not ok:
            print(f"FAILED: {summary or text}")
            return 1
        print(f"recovered all five filters in {summary['steps']} steps and {summary['seconds']:.1f} s of training, "
              f"worst relative error {summary['worst']:.2e}")
        return 0
    finally:
        if session:
            try:
                call(base, "DELETE", f"/session/{session}")
            except OSError:
                pass
        driver.terminate()
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
