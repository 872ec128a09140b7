#!/usr/bin/env python3
"""TF.js (web/tfjs/compare.html) and then convgrad (web/bench.html) on one suite in the same headless
Chromium, each op side by side: `python3 web/compare.py SUITE REPS OUTDIR` (web/tfjs.sh sets it up)."""
import json
import os
import sys
import time

from webdriver import browser

LIMIT_S = 3600


def run(path):
    with browser() as page:
        t0 = time.time()
        page.open(path)
        state, text = page.wait({"idle", "running"}, LIMIT_S)
        result = page.js("document.getElementById('status').dataset.result || ''")
        adapter = page.js("document.getElementById('adapter').textContent")
        print(f"{path}: {state} after {time.time() - t0:.0f} s: {text}; {adapter}")
        if state != "done":
            sys.exit(f"FAILED: {path} did not finish: {text}")
        return json.loads(result)


def main():
    suite, reps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tfjs = run(f"tfjs/compare.html?suite={suite}&reps={reps}")
    ours = run(f"bench.html?suite={suite}&reps={reps}")
    for name, records in (("tfjs", tfjs), ("convgrad", ours)):
        with open(os.path.join(out, f"{name}-{suite}.json"), "w") as f:
            json.dump(records, f, indent=1)
    print(f"{'layer':<34} {'op':<12} {'TF.js ms':>10} {'convgrad ms':>12} {'speed-up':>9}")
    speedups = []
    for r in ours:
        t = next(x for x in tfjs if x["shape"] == r["shape"] and x["op"] == r["op"])
        s = t["median_ms"] / r["median_ms"]
        speedups.append(s)
        print(f"{r['shape']:<34} {r['op']:<12} {t['median_ms']:>10.3f} {r['median_ms']:>12.3f} {s:>8.2f}x")
    geo = 1.0
    for s in speedups:
        geo *= s ** (1 / len(speedups))
    print(f"geometric mean speed-up {geo:.2f}x over {len(speedups)} layer ops; records in {out}")


if __name__ == "__main__":
    main()
