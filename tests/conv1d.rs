//! 1-D convolution (PyTorch's `conv1d`) and 1-D transposed convolution: the forward pass against a
//! 1-D reference written here from the definition (no 2-D code), the gradients against the 2-D
//! reference of height 1 and by finite differences, on every kernel path; and the 1-D ops as the 2-D
//! ops of height 1, bit for bit.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Rng, check, ctx, dot};
use convgrad::{Conv1dParams, ConvTranspose1dParams, Layout, Padding, reference};
use ndarray::{Array1, Array3, ArrayView3, Axis};

/// `Y[n,k,l] = b[k] + Σ_cg Σ_i X[n, g·C/G + cg, l·s + i·d − left] · W[k,cg,i]` over `[N, C, L]`
/// (channels first), in f64, with the padding already resolved to `[left, right]`.
fn conv1d_reference(
    x: ArrayView3<f32>,
    w: ArrayView3<f32>,
    b: &Array1<f32>,
    [s, d, g]: [usize; 3],
    [left, right]: [usize; 2],
) -> Array3<f64> {
    let (n, c, l) = x.dim();
    let (k, cg, taps) = w.dim();
    let out = (l + left + right - d * (taps - 1) - 1) / s + 1;
    let kpg = k / g;
    Array3::from_shape_fn((n, k, out), |(nn, kk, o)| {
        let grp = kk / kpg;
        let mut acc = f64::from(b[kk]);
        for ci in 0..cg {
            for i in 0..taps {
                let at = (o * s + i * d).checked_sub(left).filter(|&v| v < l);
                if let Some(at) = at {
                    acc += f64::from(x[[nn, grp * cg + ci, at]]) * f64::from(w[[kk, ci, i]]);
                }
            }
        }
        let _ = c;
        acc
    })
}

/// The zeros before and after an input of `l` for kernel `k`, stride `s`, dilation `d`, written out
/// here from PyTorch's and TensorFlow's rules (not taken from the geometry under test).
fn sides_1d(padding: Padding, l: usize, k: usize, s: usize, d: usize) -> [usize; 2] {
    let total = match padding {
        Padding::Explicit(sides) => return [sides.left, sides.right],
        Padding::Same => d * (k - 1),
        Padding::SameTf => ((l.div_ceil(s) - 1) * s + d * (k - 1) + 1).saturating_sub(l),
    };
    [total / 2, total - total / 2]
}

/// `(N, C, L, K, S, params)`.
fn layers() -> Vec<(usize, usize, usize, usize, usize, Conv1dParams)> {
    let d = Conv1dParams::new();
    vec![
        (2, 3, 37, 4, 5, d),
        (2, 4, 40, 6, 3, d.stride(2).padding(1).groups(2)),
        (1, 2, 33, 3, 4, d.padding_same()),
        (3, 3, 25, 3, 3, d.stride(3).dilation(2).padding_same_tf().groups(3)),
        (2, 2, 19, 5, 2, d.padding_sides(3, 0).dilation(3)),
        (2, 4, 40, 6, 3, d.stride(2).padding(1).groups(2).layout(Layout::Nhwc)),
    ]
}

#[test]
fn conv1d_and_its_gradients_on_every_path() {
    let mut rng = Rng::new(91);
    let mut failures = Vec::new();
    for (path, ctx) in common::paths() {
        for (n, c, l, k, s, params) in layers() {
            let lay = params.layout;
            let cg = c / params.groups;
            let x: Array3<f32> = rng.array(lay.lower_1d(lay.lift_1d([n, c, l])));
            let x = x
                .into_shape_with_order(match lay {
                    Layout::Nchw => (n, c, l),
                    Layout::Nhwc => (n, l, c),
                })
                .unwrap();
            let w: Array3<f32> = rng.array(match lay {
                Layout::Nchw => (k, cg, s),
                Layout::Nhwc => (k, s, cg),
            });
            let b: Array1<f32> = rng.array(k);
            let geo = params.geometry(x.shape().try_into().unwrap(), w.shape().try_into().unwrap()).unwrap();
            let sides = sides_1d(params.padding, l, s, params.stride, params.dilation);
            let what = format!("{path}: {}", geo.describe());
            // The 1-D reference works channels first.
            let cf = |a: &Array3<f32>| match lay {
                Layout::Nchw => a.clone(),
                Layout::Nhwc => a.view().permuted_axes([0, 2, 1]).as_standard_layout().into_owned(),
            };
            let back = |a: Array3<f64>| match lay {
                Layout::Nchw => a,
                Layout::Nhwc => a.permuted_axes([0, 2, 1]).as_standard_layout().into_owned(),
            };
            let abs = |a: &Array3<f32>| a.mapv(f32::abs);
            let steps = [params.stride, params.dilation, params.groups];
            let want = back(conv1d_reference(cf(&x).view(), cf(&w).view(), &b, steps, sides));
            let mag = back(conv1d_reference(cf(&abs(&x)).view(), cf(&abs(&w)).view(), &b.mapv(f32::abs), steps, sides));
            let y = match ctx.conv1d(x.view(), w.view(), Some(b.view()), &params) {
                Ok(y) => y,
                Err(e) => {
                    failures.push(format!("{what}: forward: {e}"));
                    continue;
                }
            };
            if let Err(e) = check(&y, &want, &mag, cg * s + 1, 1e-5) {
                failures.push(format!("{what}: forward: {e}"));
            }
            // The gradients against the 2-D reference of height 1.
            let p2 = params.conv2d();
            let lift = |a: &Array3<f32>| a.clone().insert_axis(Axis(if lay == Layout::Nchw { 2 } else { 1 }));
            let drop = |a: ndarray::Array4<f64>| a.index_axis_move(Axis(if lay == Layout::Nchw { 2 } else { 1 }), 0);
            let dy: Array3<f32> = rng.array(y.raw_dim());
            let dw = ctx.conv1d_weight_grad(x.view(), dy.view(), s, &params).unwrap();
            let want = drop(reference::weight_grad(lift(&x).view(), lift(&dy).view(), [1, s], &p2).unwrap());
            let mag = drop(reference::weight_grad(lift(&abs(&x)).view(), lift(&abs(&dy)).view(), [1, s], &p2).unwrap());
            if let Err(e) = check(&dw, &want, &mag, n * y.len() / n / k, 1e-5) {
                failures.push(format!("{what}: weight gradient: {e}"));
            }
            match ctx.conv1d_input_grad(dy.view(), w.view(), l, &params) {
                Ok(dx) => {
                    let want = drop(reference::input_grad(lift(&dy).view(), lift(&w).view(), [1, l], &p2).unwrap());
                    let mag = drop(
                        reference::input_grad(lift(&abs(&dy)).view(), lift(&abs(&w)).view(), [1, l], &p2).unwrap(),
                    );
                    if let Err(e) = check(&dx, &want, &mag, (k / params.groups) * s, 1e-5) {
                        failures.push(format!("{what}: input gradient: {e}"));
                    }
                }
                // A forced family may refuse a layer padded beyond its kernel, as in 2-D.
                Err(convgrad::Error::Unsupported { .. }) => {}
                Err(e) => failures.push(format!("{what}: input gradient: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The 1-D ops are the 2-D ops of height 1 on the same bytes: equal bit for bit on one context; and
/// the bias gradient of a 1-D dY is the sum over its samples and positions.
#[test]
fn one_d_ops_are_the_two_d_ops_of_height_one() {
    let ctx = ctx();
    let mut rng = Rng::new(92);
    let params = Conv1dParams::new().stride(2).padding(1).dilation(2).groups(2);
    let x: Array3<f32> = rng.array((3, 4, 50));
    let w: Array3<f32> = rng.array((6, 2, 3));
    let y = ctx.conv1d(x.view(), w.view(), None, &params).unwrap();
    let y2 = ctx.conv2d(x.view().insert_axis(Axis(2)), w.view().insert_axis(Axis(2)), None, &params.conv2d()).unwrap();
    assert_eq!(y.mapv(f32::to_bits), y2.index_axis(Axis(2), 0).mapv(f32::to_bits));
    let geo = params.geometry([3, 4, 50], [6, 2, 3]).unwrap();
    let a = ctx.program(convgrad::Op::Forward, &geo, convgrad::Elem::F32).unwrap();
    let b = ctx
        .program(
            convgrad::Op::Forward,
            &params.conv2d().geometry([3, 4, 1, 50], [6, 2, 1, 3]).unwrap(),
            convgrad::Elem::F32,
        )
        .unwrap();
    assert_eq!(a, b, "planned as the 2-D layer");
    let dy = ctx.upload(y.view()).unwrap();
    let db: Array1<f32> = ctx.download(&ctx.bias_grad_1d(&dy, Layout::Nchw).unwrap()).unwrap();
    let want = y.sum_axis(Axis(2)).sum_axis(Axis(0));
    for (g, r) in db.iter().zip(want.iter()) {
        assert!((g - r).abs() <= 1e-4 * r.abs().max(1.0), "{g} vs {r}");
    }
    // Not 3-D: a typed error.
    let x4 = ctx.zeros(&[1, 2, 3, 4]).unwrap();
    let w3 = ctx.zeros(&[1, 2, 3]).unwrap();
    let e = ctx.forward_1d(&x4, &w3, None, &params).unwrap_err();
    assert!(matches!(e, convgrad::Error::ShapeMismatch { .. }), "{e}");
    assert!(matches!(
        Conv1dParams::new().stride(2).padding_same().geometry([1, 1, 8], [1, 1, 3]),
        Err(convgrad::Error::SameNeedsStrideOne { .. })
    ));
    assert_eq!(Conv1dParams::new().padding_same().conv2d().padding, Padding::Same);
}

/// The 1-D transposed layer against the 2-D transposed reference of height 1 (itself written from
/// the definition), and finite differences of `⟨Y, G⟩` against its gradients.
#[test]
fn conv_transpose1d_and_its_gradients() {
    let ctx = ctx();
    let mut rng = Rng::new(93);
    let d = ConvTranspose1dParams::new();
    for params in [
        d.stride(2).padding(1).output_padding(1),
        d.stride(3).dilation(2).groups(2).output_padding(2),
        d.dilation(3).output_padding(2),
    ] {
        let (n, cin, l, cout, s) = (2, 4, 9, 6, 3);
        let x: Array3<f32> = rng.array((n, cin, l));
        let w: Array3<f32> = rng.array((cin, cout / params.groups, s));
        let b: Array1<f32> = rng.array(cout);
        let p2 = params.conv_transpose2d();
        let y = ctx.conv_transpose1d(x.view(), w.view(), Some(b.view()), &params).unwrap();
        let lift = |a: &Array3<f32>| a.clone().insert_axis(Axis(2));
        let want = reference::conv_transpose(lift(&x).view(), lift(&w).view(), Some(b.view()), &p2)
            .unwrap()
            .index_axis_move(Axis(2), 0);
        let mag = reference::conv_transpose(
            lift(&x.mapv(f32::abs)).view(),
            lift(&w.mapv(f32::abs)).view(),
            Some(b.mapv(f32::abs).view()),
            &p2,
        )
        .unwrap()
        .index_axis_move(Axis(2), 0);
        check(&y, &want, &mag, (cin / params.groups) * s + 1, 1e-5).unwrap();
        let g: Array3<f32> = rng.array(y.raw_dim());
        let (xd, wd, gd) =
            (ctx.upload(x.view()).unwrap(), ctx.upload(w.view()).unwrap(), ctx.upload(g.view()).unwrap());
        let dx: Array3<f32> = ctx.download(&ctx.conv_transpose_1d_input_grad(&gd, &wd, &params).unwrap()).unwrap();
        let dw: Array3<f32> = ctx.download(&ctx.conv_transpose_1d_weight_grad(&xd, &gd, s, &params).unwrap()).unwrap();
        let (ex, ew): (Array3<f32>, Array3<f32>) = (rng.array(x.raw_dim()), rng.array(w.raw_dim()));
        let j = |x: &Array3<f32>, w: &Array3<f32>| {
            dot(&ctx.conv_transpose1d(x.view(), w.view(), None, &params).unwrap(), &g)
        };
        let eps = 1e-2f32;
        let fd_x = (j(&(&x + &(&ex * eps)), &w) - j(&(&x - &(&ex * eps)), &w)) / (2.0 * f64::from(eps));
        let fd_w = (j(&x, &(&w + &(&ew * eps))) - j(&x, &(&w - &(&ew * eps)))) / (2.0 * f64::from(eps));
        let scale = g.len() as f64;
        assert!((dot(&ex, &dx) - fd_x).abs() <= 1e-3 * scale, "dX {} vs {fd_x}", dot(&ex, &dx));
        assert!((dot(&ew, &dw) - fd_w).abs() <= 1e-3 * scale, "dW {} vs {fd_w}", dot(&ew, &dw));
    }
}
