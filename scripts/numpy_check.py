#!/usr/bin/env python3
"""The convgrad CLI against a float64 NumPy reference written independently of the crate.

    python3 scripts/numpy_check.py [path/to/convgrad]

For NCHW and NHWC files, symmetric, per-side ("top,bottom,left,right") and 'same' padding, strides,
dilation and groups, it writes random .npy inputs, runs `convgrad forward`, `weight-grad` and
`input-grad`, and compares each output with the functions below (normwise relative error ≤ 1e-5).
Then the same with float16 files: the outputs must be float16 (weight gradient: float32) and within
2^-11 normwise of the float64 result over the float16 values.
Exits 1 on any mismatch. Needs only NumPy (Debian: python3-numpy).

The functions are the ones the README quotes: the padded input's windows, one per kernel tap,
contracted with the weights.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np


def same_padding(kernel, dilation):
    """PyTorch's padding='same' at stride 1: floor(total/2) before, the rest after."""
    out = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        out += [total // 2, total - total // 2]
    return tuple(out)  # top, bottom, left, right


def _windows(xp, i, j, p, q, stride, dilation):
    """xp[n, c, p·sh + i·dh, q·sw + j·dw] for all p < P, q < Q."""
    (sh, sw), (dh, dw) = stride, dilation
    return xp[:, :, i * dh: i * dh + (p - 1) * sh + 1: sh, j * dw: j * dw + (q - 1) * sw + 1: sw]


def _out_size(h, w, kernel, pads, stride, dilation):
    t, b, l, r = pads
    p = (h + t + b - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    q = (w + l + r - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return p, q


def _tap_windows(x, kernel, pads, p, q, stride, dilation, groups):
    """For each group g and tap (i, j): the slice of filters of g, and the windows Xpad[n, c, p·sh + i·dh,
    q·sw + j·dw] of g's channels, N×C/G×P×Q."""
    c, (s, t), (top, bottom, left, right) = x.shape[1], kernel, pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    cg = c // groups
    for g in range(groups):
        for i in range(s):
            for j in range(t):
                yield g, i, j, _windows(xp[:, g * cg:(g + 1) * cg], i, j, p, q, stride, dilation)


def forward(x, w, pads, stride=(1, 1), dilation=(1, 1), groups=1):
    """NCHW x, OIHW w: Y[n,k,p,q] = Σ_c Σ_i Σ_j Xpad[n, c, p·sh + i·dh, q·sw + j·dw] · W[k,c,i,j]."""
    n, _, h, wd = x.shape
    k, _, s, t = w.shape
    p, q = _out_size(h, wd, (s, t), pads, stride, dilation)
    y = np.zeros((n, k, p, q))
    kg = k // groups
    for g, i, j, win in _tap_windows(x, (s, t), pads, p, q, stride, dilation, groups):
        y[:, g * kg:(g + 1) * kg] += np.einsum("ncpq,kc->nkpq", win, w[g * kg:(g + 1) * kg, :, i, j])
    return y


def weight_grad(x, dy, kernel, pads, stride=(1, 1), dilation=(1, 1), groups=1):
    """dW[k,c,i,j] = Σ_n Σ_p Σ_q Xpad[n, c, p·sh + i·dh, q·sw + j·dw] · dY[n,k,p,q]."""
    _, k, p, q = dy.shape
    kg = k // groups
    dw = np.zeros((k, x.shape[1] // groups, *kernel))
    for g, i, j, win in _tap_windows(x, kernel, pads, p, q, stride, dilation, groups):
        dw[g * kg:(g + 1) * kg, :, i, j] = np.einsum("ncpq,nkpq->kc", win, dy[:, g * kg:(g + 1) * kg])
    return dw


def input_grad(dy, w, size, pads, stride=(1, 1), dilation=(1, 1), groups=1):
    """The adjoint of forward: every tap adds dY·W back onto the windows it read; the padding is cut."""
    n, k, p, q = dy.shape
    _, cg, s, t = w.shape
    h, wd = size
    top, bottom, left, right = pads
    dxp = np.zeros((n, cg * groups, h + top + bottom, wd + left + right))
    kg = k // groups
    (sh, sw), (dh, dwl) = stride, dilation
    for g in range(groups):
        for i in range(s):
            for j in range(t):
                dxp[:, g * cg:(g + 1) * cg, i * dh: i * dh + (p - 1) * sh + 1: sh,
                    j * dwl: j * dwl + (q - 1) * sw + 1: sw] += np.einsum(
                    "nkpq,kc->ncpq", dy[:, g * kg:(g + 1) * kg], w[g * kg:(g + 1) * kg, :, i, j])
    return dxp[:, :, top: top + h, left: left + wd]


NHWC = (0, 2, 3, 1)  # NCHW → NHWC, and OIHW → OHWI
NCHW = (0, 3, 1, 2)  # back


def rel_err(a, b):
    den = np.linalg.norm(b)
    return np.linalg.norm(a - b) / (den if den > 0 else 1.0)


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "release", "convgrad")
    rng = np.random.default_rng(7)
    # (N, C, H, W, K, S, T, padding flag, stride, dilation, groups)
    cases = [
        (2, 3, 9, 10, 4, 4, 2, "same", (1, 1), (1, 1), 1),
        (1, 4, 8, 7, 6, 2, 3, "same", (1, 1), (2, 1), 2),
        (2, 3, 9, 10, 4, 3, 4, "0,2,3,1", (1, 1), (1, 1), 1),
        (2, 4, 11, 9, 4, 3, 2, "1,0,0,2", (2, 1), (1, 2), 2),
        (1, 2, 9, 9, 2, 3, 3, "1,3,0,2", (2, 2), (1, 1), 1),
        (2, 3, 8, 8, 5, 3, 3, "1", (2, 2), (1, 1), 1),
    ]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        f = lambda name: os.path.join(tmp, name + ".npy")
        for layout, half in (("nchw", False), ("nhwc", False), ("nchw", True), ("nhwc", True)):
            for n, c, h, wd, k, s, t, pad, stride, dil, groups in cases:
                pads = same_padding((s, t), dil) if pad == "same" else tuple(int(v) for v in pad.split(","))
                if len(pads) == 1:
                    pads = pads * 4
                # float16 files compute in f16 (f32 sums) and write the forward pass and the input
                # gradient as float16, the weight gradient as float32.
                ftype = np.float16 if half else np.float32
                x = rng.standard_normal((n, c, h, wd)).astype(ftype)
                w = rng.standard_normal((k, c // groups, s, t)).astype(ftype)
                p, q = _out_size(h, wd, (s, t), pads, stride, dil)
                dy = rng.standard_normal((n, k, p, q)).astype(ftype)
                to_file = (lambda a: a.transpose(NHWC).copy()) if layout == "nhwc" else (lambda a: a)
                from_file = (lambda a: a.transpose(NCHW)) if layout == "nhwc" else (lambda a: a)
                np.save(f("x"), to_file(x))
                np.save(f("w"), to_file(w))
                np.save(f("dy"), to_file(dy))
                flags = ["--padding", pad, "--stride", f"{stride[0]},{stride[1]}",
                         "--dilation", f"{dil[0]},{dil[1]}", "--groups", str(groups), "--layout", layout]
                x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
                runs = [
                    ("forward", ["forward", "--input", f("x"), "--weight", f("w")],
                     forward(x64, w64, pads, stride, dil, groups)),
                    ("weight-grad", ["weight-grad", "--input", f("x"), "--grad-output", f("dy"),
                                     "--kernel-size", f"{s},{t}"],
                     weight_grad(x64, dy64, (s, t), pads, stride, dil, groups)),
                    ("input-grad", ["input-grad", "--grad-output", f("dy"), "--weight", f("w"),
                                    "--input-size", f"{h},{wd}"],
                     input_grad(dy64, w64, (h, wd), pads, stride, dil, groups)),
                ]
                for op, args, ref in runs:
                    out = f("out")
                    r = subprocess.run([exe, *args, *flags, "--output", out], capture_output=True, text=True)
                    label = f"{layout} {op:<11} N{n} C{c} {h}x{wd} K{k} {s}x{t} pad {pad} s{stride} d{dil} g{groups}"
                    if r.returncode != 0:
                        print(f"FAIL {label}: {r.stderr.strip()}")
                        failures += 1
                        continue
                    loaded = np.load(out)
                    want = np.float16 if half and op != "weight-grad" else np.float32
                    got = from_file(loaded).astype(np.float64)
                    e = rel_err(got, ref) if got.shape == ref.shape else float("inf")
                    # A float16 result is the f32 result rounded once: within 2^-11 of it, relatively.
                    ok = loaded.dtype == want and e <= (2.0 ** -11 if want == np.float16 else 1e-5)
                    failures += not ok
                    label += f" {np.dtype(ftype).name} -> {loaded.dtype}"
                    print(f"{'ok  ' if ok else 'FAIL'} {label}: relative error {e:.2e}")
    print(f"{failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
