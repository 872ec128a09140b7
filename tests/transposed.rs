//! The transposed convolution (PyTorch's `conv_transpose2d`) and its gradients against the `f64`
//! reference written from its own definition (`reference::conv_transpose*`, a scatter, not the
//! convolution it is computed as): on every kernel path, at every legal output padding (including
//! `stride ≤ output_padding < dilation`, whose last rows hold only the bias), in f16 and bf16; then
//! the identities that tie it to the convolution's ops and finite differences.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Rng, abs4, check, check_as, ctx, dot};
use convgrad::DeviceClass::{Cpu, Gpu};
use convgrad::verify::rounded;
use convgrad::{Context, ConvTranspose2dGeometry, ConvTranspose2dParams, Elem, Error, Layout, reference};
use ndarray::{Array1, Array4, Ix1, Ix4};

use convgrad::verify::TransposedLayer as Layer;

fn layers() -> Vec<(&'static str, Layer)> {
    let d = ConvTranspose2dParams::new();
    vec![
        ("upsample k3 s2 p1 op1", (2, 3, [5, 4], 4, [3, 3], d.stride(2, 2).padding(1, 1).output_padding(1, 1))),
        ("DCGAN k4 s2 p1", (1, 2, [4, 5], 3, [4, 4], d.stride(2, 2).padding(1, 1))),
        (
            "groups, uneven strides",
            (2, 4, [3, 4], 6, [3, 2], d.stride(3, 2).padding(0, 1).output_padding(2, 1).groups(2)),
        ),
        ("stride ≤ output padding < dilation", (1, 2, [4, 3], 2, [3, 3], d.dilation(3, 3).output_padding(2, 1))),
        (
            "strided, op = stride < dilation",
            (2, 2, [3, 4], 3, [2, 2], d.stride(2, 2).dilation(3, 3).output_padding(2, 2)),
        ),
        (
            "depthwise dilated",
            (2, 3, [3, 3], 3, [2, 3], d.stride(2, 2).dilation(2, 2).padding(1, 2).groups(3).output_padding(1, 1)),
        ),
        ("one pixel", (1, 1, [1, 1], 2, [1, 1], d.stride(3, 3).output_padding(2, 2))),
        ("padding per side", (2, 2, [4, 4], 2, [3, 3], d.stride(2, 2).padding_sides(1, 0, 0, 2).output_padding(1, 0))),
        (
            "NHWC upsample",
            (2, 3, [5, 4], 4, [3, 3], d.stride(2, 2).padding(1, 1).output_padding(1, 1).layout(Layout::Nhwc)),
        ),
    ]
}

fn geometry((n, cin, [h, w], cout, [s, t], params): Layer) -> ConvTranspose2dGeometry {
    let wshape = params.layout.weights([cin, cout / params.groups, s, t]);
    params.geometry(params.layout.activation([n, cin, h, w]), wshape).unwrap()
}

/// The three results and the bias gradient of `geo` on `ctx` from tensors of `elem`, against the
/// reference over the same (rounded) values. `Ok(None)` where a forced kernel family cannot run
/// the layer (the planner says so with `Unsupported`, as for the convolution).
fn check_layer(ctx: &Context, geo: &ConvTranspose2dGeometry, elem: Elem, rng: &mut Rng) -> Result<Option<f64>, String> {
    let p = &geo.params;
    let half = |a: Array4<f32>| rounded(&a, elem);
    let x = half(rng.array(geo.input_shape()));
    let w = half(rng.array(geo.weight_shape()));
    let dy = half(rng.array(geo.output_shape()));
    let b: Array1<f32> = rounded(&rng.array(geo.conv.c), elem);
    let up = |a: &Array4<f32>| ctx.upload_as(a.view(), elem).unwrap();
    let (xd, wd, dyd) = (up(&x), up(&w), up(&dy));
    let bd = ctx.upload_as(b.view(), elem).unwrap();
    let down = |t: convgrad::Tensor| ctx.download::<Ix4>(&t).unwrap();
    let unsupported = |e: &Error| matches!(e, Error::Unsupported { .. });
    let y = match ctx.conv_transpose(&xd, &wd, Some(&bd), p) {
        Err(e) if unsupported(&e) => return Ok(None),
        r => down(r.map_err(|e| e.to_string())?),
    };
    let dx = match ctx.conv_transpose_input_grad(&dyd, &wd, p) {
        Err(e) if unsupported(&e) => return Ok(None),
        r => down(r.map_err(|e| e.to_string())?),
    };
    let dw = down(ctx.conv_transpose_weight_grad(&xd, &dyd, [geo.conv.s, geo.conv.t], p).map_err(|e| e.to_string())?);
    let db: Array1<f32> = ctx.download::<Ix1>(&ctx.bias_grad(&dyd, p.layout).unwrap()).unwrap();

    let y_ref = reference::conv_transpose(x.view(), w.view(), Some(b.view()), p).unwrap();
    let y_mag = reference::conv_transpose(abs4(&x).view(), abs4(&w).view(), Some(b.mapv(f32::abs).view()), p).unwrap();
    let dx_ref = reference::conv_transpose_input_grad(dy.view(), w.view(), p).unwrap();
    let dx_mag = reference::conv_transpose_input_grad(abs4(&dy).view(), abs4(&w).view(), p).unwrap();
    let kernel = [geo.conv.s, geo.conv.t];
    let dw_ref = reference::conv_transpose_weight_grad(x.view(), dy.view(), kernel, p).unwrap();
    let dw_mag = reference::conv_transpose_weight_grad(abs4(&x).view(), abs4(&dy).view(), kernel, p).unwrap();
    let db_ref = reference::bias_grad(dy.view(), p.layout);
    let db_mag = reference::bias_grad(abs4(&dy).view(), p.layout);
    let c = &geo.conv;
    let taps = c.s * c.t;
    let max_rel = if elem == Elem::F32 { 1e-5 } else { 2e-2 };
    let mut worst = 0.0f64;
    // Y: Cin/G·S·T products and the bias; dX: Cout/G·S·T; dW: N·H·W; dB: N·Ho·Wo. Y and dX are
    // stored in the operands' type, dW and dB in f32.
    let y_len = c.filters_per_group() * taps + 1;
    worst = worst.max(check_as(&y, &y_ref, &y_mag, y_len, max_rel, elem).map_err(|e| format!("Y: {e}"))?);
    worst = worst.max(
        check_as(&dx, &dx_ref, &dx_mag, c.channels_per_group() * taps, max_rel, elem)
            .map_err(|e| format!("dX: {e}"))?,
    );
    worst = worst.max(check(&dw, &dw_ref, &dw_mag, c.n * c.p * c.q, max_rel).map_err(|e| format!("dW: {e}"))?);
    worst = worst
        .max(check(&db, &db_ref, &db_mag, c.n * geo.out[0] * geo.out[1], max_rel).map_err(|e| format!("dB: {e}"))?);
    Ok(Some(worst))
}

#[test]
fn the_three_results_match_the_reference_on_every_path() {
    let mut rng = Rng::new(71);
    let mut failures = Vec::new();
    for (path, ctx) in common::paths() {
        for (name, layer) in layers() {
            let geo = geometry(layer);
            match check_layer(ctx, &geo, Elem::F32, &mut rng) {
                Ok(Some(rel)) => eprintln!("{path}: {name} ({}): worst normwise error {rel:.1e}", geo.describe()),
                Ok(None) => eprintln!("{path}: {name}: not runnable by this kernel family"),
                Err(e) => failures.push(format!("{path}: {name} ({}): {e}", geo.describe())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_three_results_match_the_reference_in_half_precision() {
    let mut rng = Rng::new(72);
    for class in ["cpu", "gpu"] {
        let ctx = common::path(&format!("auto/{class}"));
        for elem in [Elem::F16, Elem::Bf16] {
            for (name, layer) in layers() {
                let geo = geometry(layer);
                let r = check_layer(ctx, &geo, elem, &mut rng);
                assert!(matches!(r, Ok(Some(_))), "auto/{class} {elem}: {name}: {r:?}");
            }
        }
    }
}

/// Batches that chunk on a device whose storage bindings hold 2 KiB, on both profiles, in every
/// dtype and both layouts, with and without rows beyond the convolution's input: wgpu's validation meets every pass.
#[test]
fn chunked_batches_on_a_device_with_2_kib_bindings() {
    let device = common::small_device();
    let mut rng = Rng::new(76);
    let d = ConvTranspose2dParams::new();
    for (class, layout) in [Cpu, Gpu].into_iter().flat_map(|c| [(c, Layout::Nchw), (c, Layout::Nhwc)]) {
        let small = device.twin().with_profile(class);
        let layers = [
            (6, 2, [4, 4], 2, [3, 3], d.stride(2, 2).padding(1, 1).output_padding(1, 1).layout(layout)),
            (7, 2, [3, 2], 2, [2, 2], d.dilation(3, 3).output_padding(2, 1).layout(layout)),
        ];
        for layer in layers {
            let geo = geometry(layer);
            for elem in [Elem::F32, Elem::F16, Elem::Bf16] {
                let r = check_layer(&small, &geo, elem, &mut rng);
                assert!(matches!(r, Ok(Some(_))), "{class:?} {} {elem}: {r:?}", geo.describe());
            }
        }
    }
}

/// Every output padding PyTorch accepts (each value below max(stride, dilation), on both axes) for
/// strides and dilations 1 to 3, on the automatic plans of both profiles; the first value it refuses
/// is refused with [`Error::OutputPadding`] naming the axis.
#[test]
fn every_legal_output_padding() {
    let mut rng = Rng::new(73);
    let mut checked = 0;
    for (s, d) in [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (1, 3), (2, 3)] {
        let top = s.max(d);
        for oh in 0..top {
            for ow in [0, top - 1] {
                let params =
                    ConvTranspose2dParams::new().stride(s, s).dilation(d, d).padding(1, 0).output_padding(oh, ow);
                let geo = geometry((1, 2, [3, 4], 2, [2, 3], params));
                for class in ["cpu", "gpu"] {
                    let r = check_layer(common::path(&format!("auto/{class}")), &geo, Elem::F32, &mut rng);
                    assert!(matches!(r, Ok(Some(_))), "{class}: {}: {r:?}", geo.describe());
                    checked += 1;
                }
            }
        }
        let params = ConvTranspose2dParams::new().stride(s, 1).dilation(d, 1).output_padding(0, top.max(1));
        let e = params.geometry([1, 2, 3, 4], [2, 2, 2, 3]).unwrap_err();
        assert!(matches!(e, Error::OutputPadding { axis: "width", .. }), "{e}");
        let params = ConvTranspose2dParams::new().stride(s, 1).dilation(d, 1).output_padding(top, 0);
        let e = params.geometry([1, 2, 3, 4], [2, 2, 2, 3]).unwrap_err();
        assert!(matches!(e, Error::OutputPadding { axis: "height", value, .. } if value == top), "{e}");
    }
    assert!(checked > 40, "{checked}");
}

/// The transposed layer is the convolution's input gradient and its input gradient the
/// convolution's forward pass: bit for bit on the same context, where no row lies beyond the
/// convolution's input and there is no bias (which the transposed layer adds in a pass of its own).
#[test]
fn it_is_the_convolution_s_ops_with_roles_exchanged_bit_for_bit() {
    let ctx = ctx();
    let mut rng = Rng::new(74);
    let mut compared = 0;
    for (name, layer) in layers() {
        let geo = geometry(layer);
        if geo.extends() {
            continue;
        }
        let c = &geo.conv;
        let x: Array4<f32> = rng.array(geo.input_shape());
        let w: Array4<f32> = rng.array(geo.weight_shape());
        let dy: Array4<f32> = rng.array(geo.output_shape());
        let y = ctx.conv_transpose2d(x.view(), w.view(), None, &geo.params).unwrap();
        let via = ctx.conv2d_input_grad(x.view(), w.view(), [c.h, c.w], &c.params).unwrap();
        assert_eq!(y.mapv(f32::to_bits), via.mapv(f32::to_bits), "{name}: Y");
        let dx = ctx.conv_transpose2d_input_grad(dy.view(), w.view(), &geo.params).unwrap();
        let via = ctx.conv2d(dy.view(), w.view(), None, &c.params).unwrap();
        assert_eq!(dx.mapv(f32::to_bits), via.mapv(f32::to_bits), "{name}: dX");
        let dw = ctx.conv_transpose2d_weight_grad(x.view(), dy.view(), [c.s, c.t], &geo.params).unwrap();
        let via = ctx.conv2d_weight_grad(dy.view(), x.view(), [c.s, c.t], &c.params).unwrap();
        assert_eq!(dw.mapv(f32::to_bits), via.mapv(f32::to_bits), "{name}: dW");
        compared += 1;
    }
    assert!(compared >= 5, "{compared}");
}

/// J = ⟨Y(X, W), G⟩ is bilinear, so its central differences along random directions are its
/// derivatives up to rounding: (J(X + εE) − J(X − εE)) / 2ε = ⟨E, dX⟩ and likewise for W, with
/// dX and dW the GPU's gradients, on layers with and without rows beyond the convolution's input.
#[test]
fn finite_differences_agree_with_the_gradients() {
    let ctx = ctx();
    let mut rng = Rng::new(75);
    for (name, layer) in layers() {
        let geo = geometry(layer);
        let p = &geo.params;
        let x: Array4<f32> = rng.array(geo.input_shape());
        let w: Array4<f32> = rng.array(geo.weight_shape());
        let g: Array4<f32> = rng.array(geo.output_shape());
        let (ex, ew): (Array4<f32>, Array4<f32>) = (rng.array(geo.input_shape()), rng.array(geo.weight_shape()));
        let b: Array1<f32> = rng.array(geo.conv.c);
        let j = |x: &Array4<f32>, w: &Array4<f32>| {
            dot(&ctx.conv_transpose2d(x.view(), w.view(), Some(b.view()), p).unwrap(), &g)
        };
        let eps = 1e-2f32;
        let fd_x = (j(&(&x + &(&ex * eps)), &w) - j(&(&x - &(&ex * eps)), &w)) / (2.0 * f64::from(eps));
        let fd_w = (j(&x, &(&w + &(&ew * eps))) - j(&x, &(&w - &(&ew * eps)))) / (2.0 * f64::from(eps));
        let dx = ctx.conv_transpose2d_input_grad(g.view(), w.view(), p).unwrap();
        let dw = ctx.conv_transpose2d_weight_grad(x.view(), g.view(), [geo.conv.s, geo.conv.t], p).unwrap();
        let (an_x, an_w) = (dot(&ex, &dx), dot(&ew, &dw));
        let scale = g.len() as f64;
        eprintln!("{name}: dX {an_x:.6} vs {fd_x:.6}, dW {an_w:.6} vs {fd_w:.6}");
        assert!((an_x - fd_x).abs() <= 1e-3 * scale.max(an_x.abs()), "{name}: dX {an_x} vs {fd_x}");
        assert!((an_w - fd_w).abs() <= 1e-3 * scale.max(an_w.abs()), "{name}: dW {an_w} vs {fd_w}");
    }
}

/// PyTorch's output size, `(H − 1)·s − 2p + d·(S − 1) + op + 1`, against the geometry, and the
/// typed errors of bad sizes.
#[test]
fn output_sizes_and_errors_follow_pytorch() {
    let cases = [
        // H, S, s, p, d, op → Ho
        ([5, 3, 2, 1, 1, 1], 10),
        ([4, 4, 2, 1, 1, 0], 8),
        ([7, 3, 1, 0, 3, 2], 15),
        ([1, 1, 3, 0, 1, 2], 3),
        ([3, 2, 2, 0, 3, 2], 10),
        ([6, 5, 3, 2, 1, 2], 18),
    ];
    for ([h, s, st, pd, d, op], ho) in cases {
        let params = ConvTranspose2dParams::new().stride(st, 1).padding(pd, 0).dilation(d, 1).output_padding(op, 0);
        let geo = params.geometry([1, 1, h, 2], [1, 1, s, 1]).unwrap();
        assert_eq!(geo.out, [ho, 2], "H {h} S {s} s {st} p {pd} d {d} op {op}");
        assert_eq!([geo.conv.p, geo.conv.q], [h, 2]);
        let back = params.geometry_for_input_grad(geo.output_shape(), geo.weight_shape()).unwrap();
        assert_eq!(back, geo);
    }
    let d = ConvTranspose2dParams::new();
    let e = d.padding(3, 0).geometry([1, 1, 2, 2], [1, 1, 3, 1]).unwrap_err();
    assert!(matches!(e, Error::EmptyTransposedOutput { axis: "height", .. }), "{e}");
    let e = d.geometry([1, 2, 2, 2], [3, 1, 3, 1]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let e = d.stride(0, 1).geometry([1, 1, 2, 2], [1, 1, 1, 1]).unwrap_err();
    assert!(matches!(e, Error::ZeroStep { .. }), "{e}");
    let e = d.geometry([1, 1, 0, 2], [1, 1, 1, 1]).unwrap_err();
    assert!(matches!(e, Error::ZeroDimension { .. }), "{e}");
    let e = d.groups(2).geometry([1, 3, 2, 2], [3, 1, 1, 1]).unwrap_err();
    assert!(matches!(e, Error::GroupsMismatch { .. }), "{e}");
    // A dY of a size no input gives.
    let geo = d.stride(2, 2).geometry([1, 1, 3, 3], [1, 1, 3, 3]).unwrap();
    let e = d.stride(2, 2).geometry_for_input_grad([1, 1, 8, 7], geo.weight_shape()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
}
