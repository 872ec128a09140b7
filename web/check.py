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
import json
import os
import sys
import time

from webdriver import FLAGS, WEB, browser


def main():
    no_webgpu = "--no-webgpu" in sys.argv[1:]
    args = [a for a in sys.argv[1:] if a != "--no-webgpu"]
    shot = args[0] if args else os.path.join(WEB, "screenshot.png")
    flags = [f for f in FLAGS if f != "--enable-unsafe-webgpu"] if no_webgpu else FLAGS
    if not os.path.exists(os.path.join(WEB, "pkg", "convgrad_web_bg.wasm")):
        sys.exit("web/pkg is missing: run bash web/build.sh first")
    with browser(flags) as page:
        t0 = time.time()
        page.open("index.html")
        state, text = page.wait({"running"}, 180)
        wall = time.time() - t0
        adapter = page.js("document.getElementById('adapter').textContent")
        result = page.js("document.getElementById('status').dataset.result || '{}'")
        print(f"page: {state} after {wall:.1f} s: {text}")
        if no_webgpu:
            if state != "no-webgpu":
                print("FAILED: without WebGPU the page must say so")
                return 1
            return 0
        with open(shot, "wb") as f:
            f.write(base64.b64decode(page.screenshot()))
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


if __name__ == "__main__":
    sys.exit(main())
