#!/usr/bin/env python3
"""Times a benchmark suite in headless Chromium's WebGPU and writes the JSON records.

    python3 web/bench.py SUITE OUT.json [--ops forward,weight-grad,input-grad] [--reps 5] [--tune]
                         [--compare NATIVE.json]

Loads web/bench.html?suite=SUITE&ops=OPS&reps=N (web/build.sh must have built web/pkg), waits for the
page to finish, checks every record and every field, and writes the records to OUT.json (atomically:
a failed run leaves no file). With --tune the page also tunes each layer and op on its adapter and
times the pick (records with kernels "cached" beside the planner's "tuned"), and the picks are written
as a tuning-cache file to OUT.json.tuned.txt. With --compare, the records must have exactly the fields
of NATIVE.json (written by `convgrad bench --json`) and one record per layer and op as it has. Exits 1, saying why,
where the browser offers no WebGPU, the page fails, or a record is wrong. web/bench.sh installs what
this needs and builds the page first.
"""
import argparse
import json
import math
import os
import sys
import time

from webdriver import WEB, browser

# Minutes a suite may take in Chromium's SwiftShader adapter before the run is called stuck.
LIMIT_S = {"tiny": 120, "quick": 600, "standard": 1800, "gpu": 3600}


def check(records, ops, native, tune=False):
    """What is wrong with the page's records: a list of messages, empty when none."""
    wrong = []
    if not isinstance(records, list) or not records:
        return ["no records"]
    keys = list(records[0].keys())
    want_keys = list(native[0].keys()) if native else keys
    kernels = ["tuned", "cached"] if tune else ["tuned"]
    for kind in kernels:
        pairs = [(r.get("shape"), r.get("op")) for r in records if r.get("kernels") == kind]
        if native:
            want_pairs = [(r["shape"], r["op"]) for r in native]
            if sorted(pairs) != sorted(want_pairs):
                wrong.append(f"{kind}: layers and ops {pairs} differ from the native records' {want_pairs}")
        shapes = sorted({s for s, _ in pairs})
        if not pairs or sorted(pairs) != sorted((s, o) for s in shapes for o in ops) or len(set(pairs)) != len(pairs):
            wrong.append(f"{kind}: expected one record per layer and op ({len(shapes)} x {len(ops)}), got {len(pairs)}")
    if any(r.get("kernels") not in kernels for r in records):
        wrong.append(f"kernels other than {kernels}: {sorted({str(r.get('kernels')) for r in records})}")
    for i, r in enumerate(records):
        at = f"record {i} ({r.get('shape')} {r.get('op')})"
        if list(r.keys()) != want_keys:
            wrong.append(f"{at}: fields {list(r.keys())}, expected {want_keys}")
            continue
        for k in ("median_ms", "min_ms", "max_ms", "gflops", "host_us"):
            v = r[k]
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                wrong.append(f"{at}: {k} = {v!r}, expected a positive number")
        if all(isinstance(r[k], (int, float)) for k in ("min_ms", "median_ms", "max_ms")) and \
                not r["min_ms"] <= r["median_ms"] <= r["max_ms"]:
            wrong.append(f"{at}: min/median/max out of order")
        for k in ("shape", "op", "kernels", "layout", "plan", "profile", "backend", "timing", "browser"):
            if not isinstance(r[k], str) or not r[k]:
                wrong.append(f"{at}: {k} = {r[k]!r}, expected a non-empty string")
        for k in ("adapter", "driver"):
            if not isinstance(r[k], str):
                wrong.append(f"{at}: {k} = {r[k]!r}, expected a string (a browser may leave it empty)")
        if r["backend"] != "BrowserWebGpu":
            wrong.append(f"{at}: backend {r['backend']!r}, expected BrowserWebGpu")
        if r["op"] not in ops:
            wrong.append(f"{at}: op {r['op']!r} was not asked for")
        if not isinstance(r["pipelines_compiled"], int) or r["pipelines_compiled"] < 0:
            wrong.append(f"{at}: pipelines_compiled = {r['pipelines_compiled']!r}")
        for k in ("device_ms", "peak_fraction", "device_timing", "compile_ms"):
            if r[k] is not None and not isinstance(r[k], (int, float, str)):
                wrong.append(f"{at}: {k} = {r[k]!r}")
    return wrong


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite", choices=sorted(LIMIT_S))
    ap.add_argument("out")
    ap.add_argument("--ops", default="forward,weight-grad,input-grad")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tune", action="store_true", help="tune each layer and op in the page, then time the picks too")
    ap.add_argument("--compare", help="native records (convgrad bench --json) the page's must match in shape")
    a = ap.parse_args()
    ops = [o.strip() for o in a.ops.split(",")]
    if not os.path.exists(os.path.join(WEB, "pkg", "convgrad_web_bg.wasm")):
        sys.exit("web/pkg is missing: run bash web/build.sh first (or bash web/bench.sh)")
    native = None
    if a.compare:
        with open(a.compare) as f:
            native = json.load(f)
    with browser() as page:
        t0 = time.time()
        page.open(f"bench.html?suite={a.suite}&ops={','.join(ops)}&reps={a.reps}&tune={int(a.tune)}")
        state, text = page.wait({"idle", "running"}, LIMIT_S[a.suite] * (3 if a.tune else 1))
        wall = time.time() - t0
        adapter = page.js("document.getElementById('adapter').textContent")
        result = page.js("document.getElementById('status').dataset.result || ''")
        cache = page.js("document.getElementById('status').dataset.cache || ''")
    print(f"page: {state} after {wall:.1f} s: {text}")
    print(adapter)
    if state == "no-webgpu":
        print(f"FAILED: the browser offers no WebGPU here: {text}")
        return 1
    if state != "done":
        print(f"FAILED: the page did not finish ({state}): {text}")
        return 1
    records = json.loads(result)
    wrong = check(records, ops, native, a.tune)
    if a.tune and not cache.startswith("convgrad-tune-cache "):
        wrong.append(f"the page gave no tuning cache (got {cache[:60]!r})")
    if wrong:
        print("FAILED: the records are wrong:\n  " + "\n  ".join(wrong))
        return 1
    files = [(a.out, result)] + ([(a.out + ".tuned.txt", cache)] if a.tune else [])
    for path, text in files:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    for r in records:
        print(f"{r['shape']:<32} {r['op']:<12} {r['kernels']:<7} {r['median_ms']:>10.3f} ms "
              f"{r['gflops']:>8.2f} GFLOP/s  {r['plan']}")
    print(f"{len(records)} records, every field checked, in {a.out} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
