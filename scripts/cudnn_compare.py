#!/usr/bin/env python3
"""cuDNN beside convgrad on the same layers, for scripts/gpu-check.sh.

  cudnn_compare.py time CONVGRAD_JSON... --out CUDNN_JSON
      Times each layer and op of convgrad's bench records with PyTorch's cuDNN convolutions: FP32 with
      TF32 off, once with cuDNN's deterministic algorithms and once with its autotuned (benchmark,
      non-deterministic) ones. Exits 3 when PyTorch or a CUDA device is missing.
  cudnn_compare.py table CONVGRAD_JSON... [--cudnn CUDNN_JSON]
      Prints a Markdown table: convgrad's device time (or wall time where the adapter has no
      timestamps), TFLOP/s and fraction of the FP32 peak, and the ratios to cuDNN.

Layers are read back from convgrad's shape names (`resnet_32x64x56x56_k64_3x3_p1_s2`), so both tools
time exactly the same layers. Standard library only, apart from PyTorch for `time`.
"""

import argparse
import json
import re
import statistics
import sys

SHAPE = re.compile(r"^[a-z]+_(\d+)x(\d+)x(\d+)x(\d+)_k(\d+)_(\d+)x(\d+)(?:_p(\d+))?(?:_s(\d+))?$")


def layer(name):
    m = SHAPE.match(name)
    if not m:
        raise SystemExit(f"cannot read a layer from the shape name {name!r}")
    n, c, h, w, k, s, t, p, st = m.groups()
    return dict(n=int(n), c=int(c), h=int(h), w=int(w), k=int(k), s=int(s), t=int(t),
                pad=int(p or 0), stride=int(st or 1))


def records(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            rows.extend(json.load(f))
    return rows


def time_cudnn(paths, out, reps):
    try:
        import torch
    except ImportError:
        print("cuDNN comparison skipped: PyTorch is not installed", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("cuDNN comparison skipped: PyTorch sees no CUDA device", file=sys.stderr)
        return 3
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    grad = torch.nn.grad
    results = []
    seen = set()
    for r in records(paths):
        key = (r["shape"], r["op"])
        if key in seen:
            continue
        seen.add(key)
        L = layer(r["shape"])
        g = torch.Generator(device=dev).manual_seed(42)
        x = torch.rand(L["n"], L["c"], L["h"], L["w"], device=dev, generator=g) * 2 - 1
        wt = torch.rand(L["k"], L["c"], L["s"], L["t"], device=dev, generator=g) * 2 - 1
        y = torch.nn.functional.conv2d(x, wt, stride=L["stride"], padding=L["pad"])
        dy = torch.rand(y.shape, device=dev, generator=g) * 2 - 1
        ops = {
            "forward": lambda: torch.nn.functional.conv2d(x, wt, stride=L["stride"], padding=L["pad"]),
            "weight-grad": lambda: grad.conv2d_weight(x, wt.shape, dy, stride=L["stride"], padding=L["pad"]),
            "input-grad": lambda: grad.conv2d_input(x.shape, wt, dy, stride=L["stride"], padding=L["pad"]),
        }
        fn = ops[r["op"]]
        for mode, deterministic in (("cudnn", False), ("cudnn-deterministic", True)):
            torch.backends.cudnn.deterministic = deterministic
            torch.backends.cudnn.benchmark = not deterministic
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            times = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b))
            results.append(dict(shape=r["shape"], op=r["op"], mode=mode, median_ms=statistics.median(times),
                                device=torch.cuda.get_device_name(0), torch=torch.__version__,
                                cudnn=torch.backends.cudnn.version()))
            print(f"{r['shape']:<34} {r['op']:<12} {mode:<20} {results[-1]['median_ms']:.4f} ms", file=sys.stderr)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    return 0


def table(paths, cudnn_path):
    cudnn = {}
    if cudnn_path:
        with open(cudnn_path) as f:
            for c in json.load(f):
                cudnn[(c["shape"], c["op"], c["mode"])] = c["median_ms"]
    head = "| layer | op | convgrad ms | TFLOP/s | % FP32 peak | wall ms | cuDNN ms | cuDNN det. ms | × cuDNN | × cuDNN det. |"
    print(head)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in records(paths):
        if r.get("kernels", "tuned") != "tuned" or r.get("layout", "nchw") != "nchw":
            continue
        ms = r["device_ms"] if r.get("device_ms") else r["median_ms"]
        tflops = r["gflops"] * r["median_ms"] / ms / 1e3
        peak = "-" if r.get("peak_fraction") is None else f"{100 * r['peak_fraction'] * r['median_ms'] / ms:.1f}"
        fast = cudnn.get((r["shape"], r["op"], "cudnn"))
        det = cudnn.get((r["shape"], r["op"], "cudnn-deterministic"))
        cell = lambda v: "-" if v is None else f"{v:.3f}"
        ratio = lambda v: "-" if v is None else f"{ms / v:.2f}"
        print(f"| {r['shape']} | {r['op']} | {ms:.3f} | {tflops:.2f} | {peak} | {r['median_ms']:.3f} "
              f"| {cell(fast)} | {cell(det)} | {ratio(fast)} | {ratio(det)} |")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time")
    t.add_argument("json", nargs="+")
    t.add_argument("--out", required=True)
    t.add_argument("--reps", type=int, default=20)
    b = sub.add_parser("table")
    b.add_argument("json", nargs="+")
    b.add_argument("--cudnn")
    a = ap.parse_args()
    if a.cmd == "time":
        return time_cudnn(a.json, a.out, a.reps)
    return table(a.json, a.cudnn)


if __name__ == "__main__":
    sys.exit(main())
