//! The `convgrad` binary, run as a user would: round trips against the CPU reference for every
//! subcommand in both forms, and each kind of bad input (one-line error, exit code 2, no output file,
//! never a panic).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Rng;
use convgrad::{Conv2dParams, reference};
use ndarray::{Array, ArrayD, Dimension, Ix2, Ix3, Ix4};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_convgrad"));
    c.env("WGPU_BACKEND", std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "vulkan".into()));
    c
}

/// A fresh folder per test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convgrad-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn save<D: Dimension>(path: &Path, a: &Array<f32, D>) {
    a.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

fn load(path: &Path) -> ArrayD<f32> {
    ArrayD::<f32>::read_npy(std::fs::File::open(path).unwrap()).unwrap()
}

/// Runs the binary as a new user would, without XDG_RUNTIME_DIR (a server or CI shell): no platform
/// `error:` line may appear, and a failure is one line of convgrad's own.
fn run(args: &[&str]) -> Output {
    let out = bin().args(args).env_remove("XDG_RUNTIME_DIR").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(!stderr.contains("error:"), "{args:?} succeeded with an error line: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "the binary panicked: {stderr}");
    out
}

fn ok(args: &[&str]) {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a command that must fail with exit code 2, one line on stderr naming `needle`, and no `output`.
fn fails(args: &[&str], needle: &str, output: &Path) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in: {}", lines[0]);
    assert!(!output.exists(), "{} was left behind", output.display());
    let leftovers: Vec<_> = std::fs::read_dir(output.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn close(gpu: &ArrayD<f32>, r: &ArrayD<f64>) {
    assert_eq!(gpu.shape(), r.shape());
    let e = common::rel_err(gpu, r);
    assert!(e <= 1e-5, "relative error {e:e}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn general_form_round_trips() {
    let d = dir("general");
    let mut rng = Rng::new(1);
    let x: Array<f32, Ix4> = rng.array((2, 4, 11, 10));
    let w: Array<f32, Ix4> = rng.array((6, 2, 3, 2));
    let b: Array<f32, ndarray::Ix1> = rng.array(6);
    let params = Conv2dParams::new().stride(2, 1).padding(1, 0).dilation(1, 2).groups(2);
    let (xp, wp, bp, yp) = (d.join("x.npy"), d.join("w.npy"), d.join("b.npy"), d.join("y.npy"));
    save(&xp, &x);
    save(&wp, &w);
    save(&bp, &b);
    let flags = ["--stride", "2,1", "--padding", "1,0", "--dilation", "1,2", "--groups", "2"];
    let mut args = vec!["forward", "--input", s(&xp), "--weight", s(&wp), "--bias", s(&bp), "--output", s(&yp)];
    args.extend(flags);
    ok(&args);
    let y = load(&yp);
    close(&y, &reference::forward(x.view(), w.view(), Some(b.view()), &params).unwrap().into_dyn());

    let dyp = d.join("dy.npy");
    save(&dyp, &y);
    let dwp = d.join("dw.npy");
    let mut args = vec!["weight-grad", "--input", s(&xp), "--grad-output", s(&dyp), "--kernel-size", "3,2"];
    args.extend(flags);
    args.extend(["--output", s(&dwp)]);
    ok(&args);
    let y4 = y.clone().into_dimensionality::<Ix4>().unwrap();
    close(&load(&dwp), &reference::weight_grad(x.view(), y4.view(), [3, 2], &params).unwrap().into_dyn());

    let dxp = d.join("dx.npy");
    let mut args = vec!["input-grad", "--grad-output", s(&dyp), "--weight", s(&wp), "--input-size", "11,10"];
    args.extend(flags);
    args.extend(["--output", s(&dxp)]);
    ok(&args);
    close(&load(&dxp), &reference::input_grad(y4.view(), w.view(), [11, 10], &params).unwrap().into_dyn());
}

/// NHWC/OHWI files with `--layout nhwc`, and `--padding same` / four values, through all three ops.
#[test]
fn channels_last_and_padding_per_side_round_trip() {
    let d = dir("nhwc");
    let mut rng = Rng::new(4);
    for (padding, stride, params) in [
        ("same", "1", Conv2dParams::new().padding_same()),
        ("0,2,3,1", "2,1", Conv2dParams::new().stride(2, 1).padding_sides(0, 2, 3, 1)),
    ] {
        let params = params.layout(convgrad::Layout::Nhwc);
        let geo = params.geometry([2, 9, 10, 3], [4, 4, 2, 3]).unwrap();
        let x: Array<f32, Ix4> = rng.array(geo.input_shape());
        let w: Array<f32, Ix4> = rng.array(geo.weight_shape());
        let dy: Array<f32, Ix4> = rng.array(geo.output_shape());
        let (xp, wp, dyp, out) = (d.join("x.npy"), d.join("w.npy"), d.join("dy.npy"), d.join("out.npy"));
        save(&xp, &x);
        save(&wp, &w);
        save(&dyp, &dy);
        let flags = ["--padding", padding, "--stride", stride, "--layout", "nhwc", "--output", s(&out)];
        let run = |op: &[&str]| ok(&[op, &flags[..]].concat());
        run(&["forward", "--input", s(&xp), "--weight", s(&wp)]);
        close(&load(&out), &reference::forward(x.view(), w.view(), None, &params).unwrap().into_dyn());
        run(&["weight-grad", "--input", s(&xp), "--grad-output", s(&dyp), "--kernel-size", "4,2"]);
        close(&load(&out), &reference::weight_grad(x.view(), dy.view(), [4, 2], &params).unwrap().into_dyn());
        run(&["input-grad", "--grad-output", s(&dyp), "--weight", s(&wp), "--input-size", "9,10"]);
        close(&load(&out), &reference::input_grad(dy.view(), w.view(), [9, 10], &params).unwrap().into_dyn());
    }
    // Typed errors, one line each: 'same' with a stride, three padding values, NHWC without a channel
    // axis, and NCHW-shaped weights given as OHWI.
    let (xp, wp, out) = (d.join("x.npy"), d.join("w.npy"), d.join("bad.npy"));
    let fwd = |extra: &[&'static str]| {
        let mut a = vec!["forward", "--input", s(&xp), "--weight", s(&wp), "--output", s(&out)];
        a.extend(extra);
        a
    };
    fails(&fwd(&["--padding", "same", "--stride", "2", "--layout", "nhwc"]), "padding 'same' needs stride 1", &out);
    let bad = run(&fwd(&["--padding", "1,2,3"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("one, two or four numbers"));
    let img = d.join("img.npy");
    save(&img, &rng.array::<Ix2, _>((8, 8)));
    let w3 = d.join("w3.npy");
    save(&w3, &rng.array::<Ix3, _>((2, 3, 3)));
    fails(
        &["forward", "--input", s(&img), "--weight", s(&w3), "--layout", "nhwc", "--output", s(&out)],
        "needs 4-D tensors",
        &out,
    );
    fails(&fwd(&[]), "weight channels (dimension 1 of K×C/G×S×T)", &out);
}

#[test]
fn single_channel_form_round_trips() {
    let d = dir("single");
    let mut rng = Rng::new(2);
    let x: Array<f32, Ix2> = rng.array((20, 17));
    let w: Array<f32, Ix3> = rng.array((3, 4, 5));
    let (xp, wp, yp) = (d.join("x.npy"), d.join("w.npy"), d.join("y.npy"));
    save(&xp, &x);
    save(&wp, &w);
    ok(&["forward", "--input", s(&xp), "--weight", s(&wp), "--output", s(&yp)]);
    let y = load(&yp);
    assert_eq!(y.shape(), [3, 17, 13]);
    let x4 = x.clone().into_shape_with_order((1, 1, 20, 17)).unwrap();
    let w4 = w.clone().into_shape_with_order((3, 1, 4, 5)).unwrap();
    let y_ref = reference::forward(x4.view(), w4.view(), None, &Conv2dParams::new()).unwrap();
    close(&y, &y_ref.clone().into_shape_with_order(vec![3, 17, 13]).unwrap().into_dyn());

    let dwp = d.join("dw.npy");
    ok(&["weight-grad", "--input", s(&xp), "--grad-output", s(&yp), "--kernel-size", "4,5", "--output", s(&dwp)]);
    let dw = load(&dwp);
    assert_eq!(dw.shape(), [3, 4, 5]);
    let y4 = y.clone().into_shape_with_order(vec![1, 3, 17, 13]).unwrap().into_dimensionality::<Ix4>().unwrap();
    let dw_ref = reference::weight_grad(x4.view(), y4.view(), [4, 5], &Conv2dParams::new()).unwrap();
    close(&dw, &dw_ref.into_shape_with_order(vec![3, 4, 5]).unwrap().into_dyn());

    let dxp = d.join("dx.npy");
    ok(&["input-grad", "--grad-output", s(&yp), "--weight", s(&wp), "--input-size", "20,17", "--output", s(&dxp)]);
    let dx = load(&dxp);
    assert_eq!(dx.shape(), [20, 17]);
    let dx_ref = reference::input_grad(y4.view(), w4.view(), [20, 17], &Conv2dParams::new()).unwrap();
    close(&dx, &dx_ref.into_shape_with_order(vec![20, 17]).unwrap().into_dyn());
}

/// A `.npy` file written byte by byte, to make the files numpy would make and the ones it would not.
fn raw_npy(path: &Path, descr: &str, fortran: bool, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {tuple}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn float64_big_endian_and_fortran_order_are_read_correctly() {
    let d = dir("layouts");
    let mut rng = Rng::new(3);
    let x: Array<f32, Ix2> = rng.array((6, 7));
    let w: Array<f32, Ix3> = rng.array((2, 3, 3));
    let wp = d.join("w.npy");
    save(&wp, &w);
    // The reference answer from a plain C-order float32 file.
    let (cp, yc) = (d.join("x_c.npy"), d.join("y_c.npy"));
    save(&cp, &x);
    ok(&["forward", "--input", s(&cp), "--weight", s(&wp), "--output", s(&yc)]);
    let expect = load(&yc);
    // Fortran order: the data is the transpose's C order.
    let fp = d.join("x_f.npy");
    let xt: Vec<f32> = x.t().iter().copied().collect();
    raw_npy(&fp, "<f4", true, &[6, 7], &f32_bytes(&xt));
    // float64, big-endian.
    let bp = d.join("x_be.npy");
    let be: Vec<u8> = x.iter().flat_map(|v| f64::from(*v).to_be_bytes()).collect();
    raw_npy(&bp, ">f8", false, &[6, 7], &be);
    for (i, p) in [fp, bp].iter().enumerate() {
        let yp = d.join(format!("y{i}.npy"));
        ok(&["forward", "--input", s(p), "--weight", s(&wp), "--output", s(&yp)]);
        assert_eq!(load(&yp), expect, "{}", p.display());
    }
}

#[test]
fn bad_files_are_one_line_errors_with_exit_code_2() {
    let d = dir("bad");
    let mut rng = Rng::new(4);
    let good_w = d.join("w.npy");
    save(&good_w, &rng.array::<Ix4, _>((2, 1, 3, 3)));
    let good_x = d.join("x.npy");
    save(&good_x, &rng.array::<Ix4, _>((1, 1, 8, 8)));
    let y = d.join("y.npy");
    let fwd = |x: &Path, w: &Path| {
        vec![
            "forward".to_string(),
            "--input".into(),
            s(x).into(),
            "--weight".into(),
            s(w).into(),
            "--output".into(),
            s(&y).into(),
        ]
    };
    let check = |x: &Path, w: &Path, needle: &str| {
        let args = fwd(x, w);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, needle, &y);
    };

    check(&d.join("missing.npy"), &good_w, "missing.npy: cannot read");

    let p = d.join("truncated.npy");
    let full = std::fs::read(&good_x).unwrap();
    std::fs::write(&p, &full[..full.len() - 10]).unwrap();
    check(&p, &good_w, "truncated");

    let p = d.join("corrupt.npy");
    std::fs::write(&p, b"\x93NUMPY\x01\x00\x10\x00{'descr': garbage").unwrap();
    check(&p, &good_w, "corrupt.npy");

    let p = d.join("notnpy.npy");
    std::fs::write(&p, b"hello, world, this is text").unwrap();
    check(&p, &good_w, "not a .npy file");

    let p = d.join("int.npy");
    raw_npy(&p, "<i4", false, &[1, 1, 8, 8], &[0u8; 256]);
    check(&p, &good_w, "integer");

    let p = d.join("complex.npy");
    raw_npy(&p, "<c8", false, &[1, 1, 8, 8], &[0u8; 512]);
    check(&p, &good_w, "complex");

    let p = d.join("rank3.npy");
    raw_npy(&p, "<f4", false, &[1, 8, 8], &f32_bytes(&[0.0; 64]));
    check(&p, &good_w, "3-D");

    let p = d.join("zero.npy");
    raw_npy(&p, "<f4", false, &[1, 0, 8, 8], &[]);
    check(&p, &good_w, "zero-sized");

    // A header that declares 2^62 bytes of data on a file of a few bytes: refused before allocating.
    let p = d.join("huge.npy");
    raw_npy(&p, "<f4", false, &[1 << 15, 1 << 15, 1 << 15, 1 << 15], &f32_bytes(&[0.0; 4]));
    check(&p, &good_w, "huge.npy");

    let p = d.join("wide.npy");
    let big = f32::MAX as f64 * 4.0;
    raw_npy(&p, "<f8", false, &[1, 1, 1, 2], &[big.to_le_bytes(), 1.0f64.to_le_bytes()].concat());
    check(&p, &good_w, "does not fit in float32");

    // Shapes that disagree: 3 input channels, weights for 1.
    let p = d.join("x3.npy");
    save(&p, &rng.array::<Ix4, _>((1, 3, 8, 8)));
    check(&p, &good_w, "shape mismatch");

    // A kernel larger than the input.
    let p = d.join("small.npy");
    save(&p, &rng.array::<Ix4, _>((1, 1, 2, 8)));
    check(&p, &good_w, "does not fit");

    // An input-size that does not match the output gradient.
    let dy = d.join("dy.npy");
    save(&dy, &rng.array::<Ix4, _>((1, 2, 6, 6)));
    fails(
        &["input-grad", "--grad-output", s(&dy), "--weight", s(&good_w), "--input-size", "9,9", "--output", s(&y)],
        "input size",
        &y,
    );
}

/// `convgrad conv-transpose` against the reference in both layouts (with a bias, output padding,
/// groups and dilation), and its bad inputs: an output padding not below the stride or dilation, a
/// negative or zero size, `same` padding, a padding that leaves no output — each one line, exit 2,
/// no output file.
#[test]
fn conv_transpose_round_trips_and_refuses_bad_input() {
    let d = dir("transpose");
    let mut rng = Rng::new(12);
    let x: Array<f32, Ix4> = rng.array((2, 4, 5, 4));
    let w: Array<f32, Ix4> = rng.array((4, 3, 3, 2));
    let b: Array<f32, ndarray::Ix1> = rng.array(6);
    let params =
        convgrad::ConvTranspose2dParams::new().stride(2, 3).padding(1, 0).output_padding(1, 2).dilation(1, 2).groups(2);
    let (xp, wp, bp, yp) = (d.join("x.npy"), d.join("w.npy"), d.join("b.npy"), d.join("y.npy"));
    save(&xp, &x);
    save(&wp, &w);
    save(&bp, &b);
    let flags =
        ["--stride", "2,3", "--padding", "1,0", "--output-padding", "1,2", "--dilation", "1,2", "--groups", "2"];
    let mut args = vec!["conv-transpose", "--input", s(&xp), "--weight", s(&wp), "--bias", s(&bp), "--output", s(&yp)];
    args.extend(flags);
    ok(&args);
    let want = reference::conv_transpose(x.view(), w.view(), Some(b.view()), &params).unwrap();
    assert_eq!(want.dim(), (2, 6, 10, 14));
    close(&load(&yp), &want.into_dyn());

    let (xh, wh) = (x.view().permuted_axes([0, 2, 3, 1]), w.view().permuted_axes([0, 2, 3, 1]));
    let (xhp, whp, yhp) = (d.join("xh.npy"), d.join("wh.npy"), d.join("yh.npy"));
    save(&xhp, &xh.as_standard_layout().into_owned());
    save(&whp, &wh.as_standard_layout().into_owned());
    let mut args =
        vec!["conv-transpose", "--input", s(&xhp), "--weight", s(&whp), "--layout", "nhwc", "--output", s(&yhp)];
    args.extend(flags);
    ok(&args);
    let nhwc = params.layout(convgrad::Layout::Nhwc);
    close(&load(&yhp), &reference::conv_transpose(xh, wh, None, &nhwc).unwrap().into_dyn());

    let y = d.join("bad.npy");
    let bad = |extra: &[&str], needle: &str| {
        let mut args = vec!["conv-transpose", "--input", s(&xp), "--weight", s(&wp), "--output", s(&y)];
        args.extend(extra);
        fails(&args, needle, &y);
    };
    bad(&["--stride", "2", "--output-padding", "2"], "output padding 2 along height must be smaller");
    bad(&["--stride", "1", "--dilation", "2", "--output-padding", "0,2"], "along width");
    bad(&["--output-padding", "-1"], "'-1' is not a non-negative integer");
    bad(&["--stride", "-2"], "'-2' is not a non-negative integer");
    bad(&["--stride", "0"], "stride (height) must be at least 1");
    bad(&["--dilation", "1,0"], "dilation (width) must be at least 1");
    bad(&["--padding", "same"], "no transposed form");
    bad(&["--padding", "9"], "output along height is empty");
    bad(&["--groups", "3"], "not divisible by groups");
    let zero = d.join("zero.npy");
    raw_npy(&zero, "<f4", false, &[2, 4, 0, 4], &[]);
    fails(&["conv-transpose", "--input", s(&zero), "--weight", s(&wp), "--output", s(&y)], "zero-sized", &y);
}

#[test]
fn an_existing_output_survives_a_failed_command() {
    let d = dir("keep");
    let y = d.join("y.npy");
    std::fs::write(&y, b"precious").unwrap();
    let out =
        run(&["forward", "--input", s(&d.join("nope.npy")), "--weight", s(&d.join("nope.npy")), "--output", s(&y)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&y).unwrap(), b"precious");
}

#[test]
fn info_and_check_run_on_the_adapter() {
    let out = run(&["info"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with('*')), "no adapter marked: {text}");
    let out = run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" 0 failed") && text.contains("finite differences"), "{text}");
    let out = run(&["--adapter", "no-such-adapter-xyz", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no GPU adapter"));
}

#[test]
fn bench_writes_a_table_json_and_a_plot() {
    let d = dir("bench");
    let (json, svg) = (d.join("out.json"), d.join("out.svg"));
    let out = run(&[
        "--backend",
        "vulkan",
        "bench",
        "--suite",
        "tiny",
        "--reps",
        "1",
        "--kernels",
        "both",
        "--json",
        s(&json),
        "--plot",
        s(&svg),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("adapter:") && table.contains("GFLOP/s"), "{table}");
    // One record per layer, op and kernel path, each with every field.
    let text = std::fs::read_to_string(&json).unwrap();
    let records: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with('{')).collect();
    assert_eq!(records.len(), 2 * 3 * 2, "{text}");
    for r in &records {
        for field in [
            "shape",
            "op",
            "kernels",
            "median_ms",
            "min_ms",
            "max_ms",
            "gflops",
            "device_ms",
            "adapter",
            "backend",
            "driver",
        ] {
            assert!(r.contains(&format!("\"{field}\": ")), "{field} missing in {r}");
        }
    }
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // --dtype all: each layer and op in f32, f16 and bf16, the half ones moving half the operand bytes.
    let out =
        run(&["bench", "--suite", "tiny", "--reps", "1", "--ops", "forward", "--dtype", "all", "--json", s(&json)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&json).unwrap();
    let field =
        |r: &str, k: &str| r.split(&format!("\"{k}\": ")).nth(1).unwrap().split(',').next().unwrap().to_string();
    let records: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with('{')).collect();
    let dtypes: Vec<String> = records.iter().map(|r| field(r, "dtype")).collect();
    assert_eq!(dtypes, ["\"f32\"", "\"f16\"", "\"bf16\""].repeat(2), "{text}");
    for r in records.chunks(3) {
        let bytes: Vec<u64> = r.iter().map(|r| field(r, "bytes").parse().unwrap()).collect();
        assert!(bytes[1] == bytes[2] && bytes[1] * 2 <= bytes[0] + 12 && bytes[1] * 2 >= bytes[0], "{bytes:?}");
    }
    // Only SVG plots, said before any work is done.
    let png = d.join("out.png");
    fails(&["bench", "--suite", "tiny", "--plot", s(&png)], "SVG", &png);
}

/// The header and data of a float16 `.npy` as convgrad writes it: its shape and the values' bits.
fn load_f16(path: &Path) -> (Vec<usize>, Vec<u16>) {
    let bytes = std::fs::read(path).unwrap();
    let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f2'") && (10 + len) % 64 == 0, "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape.split(',').filter(|d| !d.trim().is_empty()).map(|d| d.trim().parse().unwrap()).collect();
    let data = bytes[10 + len..].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    (shape, data)
}

/// Half precision from the command line: --dtype f16 on float32 files writes a float16 result (the
/// library's bits); a float16 file computes in f16 by itself, and beside a float32 one needs --dtype;
/// bf16 results are written as float32 holding bf16 values; big-endian and Fortran-order float16 read.
#[test]
fn float16_files_and_dtype_flags() {
    let d = dir("half");
    let mut rng = Rng::new(21);
    let x: Array<f32, Ix4> = rng.array((2, 3, 9, 8));
    let w: Array<f32, Ix4> = rng.array((4, 3, 3, 3));
    let (xp, wp, yp) = (d.join("x.npy"), d.join("w.npy"), d.join("y.npy"));
    save(&xp, &x);
    save(&wp, &w);
    ok(&["forward", "--input", s(&xp), "--weight", s(&wp), "--padding", "1", "--dtype", "f16", "--output", s(&yp)]);
    let (shape, y16) = load_f16(&yp);
    assert_eq!(shape, vec![2, 4, 9, 8]);
    let ctx = common::ctx();
    let p = Conv2dParams::new().padding(1, 1);
    let up = |a: &Array<f32, Ix4>| ctx.upload_as(a.view(), convgrad::Elem::F16).unwrap();
    let want: ndarray::Array4<convgrad::f16> =
        ctx.download_as(&ctx.forward(&up(&x), &up(&w), None, &p).unwrap()).unwrap();
    assert_eq!(y16, want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "the library's f16 bits");
    // The f16 output as dY: with f32 weights the dtypes differ and the command says how to choose.
    let dxp = d.join("dx.npy");
    let args = ["input-grad", "--grad-output", s(&yp), "--weight", s(&wp), "--input-size", "9,8", "--padding", "1"];
    fails(&[&args[..], &["--output", s(&dxp)]].concat(), "--dtype", &dxp);
    ok(&[&args[..], &["--dtype", "f16", "--output", s(&dxp)]].concat());
    assert_eq!(load_f16(&dxp).0, vec![2, 3, 9, 8]);
    // A float16 file read big-endian and in Fortran order gives the same result as the C-order one.
    let xbits: Vec<u16> = x.iter().map(|v| convgrad::f16::from_f32(*v).to_bits()).collect();
    let be: Vec<u8> = xbits.iter().flat_map(|b| b.to_be_bytes()).collect();
    let (x16, xbe) = (d.join("x16.npy"), d.join("x16be.npy"));
    raw_npy(&x16, "<f2", false, &[2, 3, 9, 8], &xbits.iter().flat_map(|b| b.to_le_bytes()).collect::<Vec<u8>>());
    raw_npy(&xbe, ">f2", false, &[2, 3, 9, 8], &be);
    let w16 = d.join("w16.npy");
    let wt: Vec<u8> = w.t().iter().flat_map(|v| convgrad::f16::from_f32(*v).to_bits().to_le_bytes()).collect();
    raw_npy(&w16, "<f2", true, &[4, 3, 3, 3], &wt);
    for (i, xin) in [&x16, &xbe].iter().enumerate() {
        let out = d.join(format!("y16_{i}.npy"));
        ok(&["forward", "--input", s(xin), "--weight", s(&w16), "--padding", "1", "--output", s(&out)]);
        assert_eq!(load_f16(&out).1, y16, "{}", xin.display());
    }
    // bf16: float32 files holding bf16 values; the weight gradient is float32 whatever the dtype.
    let (ybf, dwp) = (d.join("ybf.npy"), d.join("dw.npy"));
    ok(&["forward", "--input", s(&xp), "--weight", s(&wp), "--dtype", "bf16", "--output", s(&ybf)]);
    assert!(load(&ybf).iter().all(|v| v.to_bits() & 0xffff == 0), "bf16 values");
    let dy: Array<f32, Ix4> = rng.array((2, 4, 7, 6));
    let dyp = d.join("dy.npy");
    save(&dyp, &dy);
    let wg = ["weight-grad", "--input", s(&xp), "--grad-output", s(&dyp), "--kernel-size", "3", "--dtype", "f16"];
    ok(&[&wg[..], &["--output", s(&dwp)]].concat());
    assert_eq!(load(&dwp).shape(), &[4, 3, 3, 3]);
    let out =
        run(&["forward", "--input", s(&xp), "--weight", s(&wp), "--dtype", "f8", "--output", s(&d.join("no.npy"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected f32, f16 or bf16"));
    assert!(!d.join("no.npy").exists());
}

/// `convgrad bench --tuned` never tunes and never writes the cache: a corrupt cache is a warning that
/// says the planner's choices run (it said "its layers will be tuned again"), and the file is left
/// as it was (it was renamed aside).
#[test]
fn bench_tuned_reads_a_corrupt_cache_and_leaves_it_alone() {
    let d = dir("bench-tuned");
    let cache = d.join("tuned.txt");
    let corrupt = "convgrad-tune-cache 1\nnot a line\n";
    std::fs::write(&cache, corrupt).unwrap();
    let out = run(&["bench", "--suite", "tiny", "--reps", "1", "--ops", "forward", "--tuned", "--cache", s(&cache)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not usable") && !stderr.contains("tuned again"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), corrupt, "the cache changed");
    assert!(!d.join("tuned.txt.corrupt").exists());
}
