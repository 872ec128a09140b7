//! Identities that pin the structure of the results: adjointness of the three operations, the weight
//! gradient as a correlation computed by the forward kernel, and the input gradient as a correlation of
//! the padded output gradient with the flipped filters.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Rng, abs4, ctx, dot, gamma};
use convgrad::verify::rounded;
use convgrad::{Conv2dGeometry, Conv2dParams, Elem, Layout, reference};
use ndarray::{Array3, Array4, Axis, s};

fn layers() -> Vec<convgrad::verify::Layer> {
    let d = Conv2dParams::new();
    vec![
        (1, 1, [17, 13], 3, [4, 3], d),
        (2, 3, [9, 10], 4, [3, 3], d.stride(2, 2).padding(1, 1)),
        (2, 4, [12, 11], 6, [3, 2], d.dilation(2, 3).groups(2)),
        (3, 6, [8, 9], 3, [2, 3], d.stride(3, 1).padding(2, 0).groups(3)),
        (2, 3, [8, 7], 4, [4, 2], d.padding_same()),
        (2, 4, [9, 10], 2, [3, 3], d.stride(2, 1).padding_sides(3, 0, 1, 2).groups(2)),
        (2, 3, [9, 10], 4, [3, 3], d.stride(2, 2).padding(1, 1).layout(Layout::Nhwc)),
    ]
}

/// ⟨conv(X, W), G⟩ = ⟨W, weight_grad(X, G)⟩ = ⟨X, input_grad(G, W)⟩, each side computed on the GPU,
/// on every kernel path.
///
/// Each GPU sum of L products is within γ_L of the exact sum times the same sum on |inputs|; all three
/// products equal M = ⟨conv(|X|, |W|), |G|⟩ when taken on absolute values, so the sides may differ by
/// at most (γ_a + γ_b)·M (the f64 dot products add far less).
#[test]
fn adjoint_identities_hold_on_the_gpu() {
    for (path, ctx) in common::paths() {
        eprintln!("{path}:");
        adjoint_identities(ctx);
    }
}

/// The adjoint identities with operands in f16 and bf16, on the automatic plans of both profiles: Y
/// and dX stored in the operands' type, dW in f32. Rounding Y and dX adds at most one unit roundoff of
/// the type times M to each side (|Y| ≤ conv(|X|, |W|), so Σ|Y||G| ≤ M, and likewise for dX).
#[test]
fn adjoint_identities_hold_in_half_precision() {
    for class in ["cpu", "gpu"] {
        for elem in [Elem::F16, Elem::Bf16] {
            eprintln!("auto/{class}, {elem}:");
            adjoint_identities_as(common::path(&format!("auto/{class}")), elem);
        }
    }
}

fn adjoint_identities(ctx: &convgrad::Context) {
    adjoint_identities_as(ctx, Elem::F32);
}

fn adjoint_identities_as(ctx: &convgrad::Context, elem: Elem) {
    let mut rng = Rng::new(31);
    let uh = if elem == Elem::F32 { 0.0 } else { convgrad::verify::unit_roundoff(elem) };
    let half = |a: Array4<f32>| rounded(&a, elem);
    let run = |x: &Array4<f32>, w: &Array4<f32>, g: &Array4<f32>, geo: &Conv2dGeometry| {
        let p = &geo.params;
        let [xd, wd, gd] = [x, w, g].map(|a| ctx.upload_as(a.view(), elem).unwrap());
        let down = |t: convgrad::Tensor| ctx.download::<ndarray::Ix4>(&t).unwrap();
        let y = down(ctx.forward(&xd, &wd, None, p).unwrap());
        let dw = down(ctx.weight_grad(&xd, &gd, [geo.s, geo.t], p).unwrap());
        let dx = ctx.input_grad(&gd, &wd, [geo.h, geo.w], p).map(down);
        (y, dw, dx)
    };
    for (n, c, hw, k, st, params) in layers() {
        let geo = Conv2dGeometry::new(n, c, hw, k, st, params).unwrap();
        let x: Array4<f32> = half(rng.array(geo.input_shape()));
        let w: Array4<f32> = half(rng.array(geo.weight_shape()));
        let g: Array4<f32> = half(rng.array(geo.output_shape()));
        let (y, dw, dx) = run(&x, &w, &g, &geo);
        // A forced kernel family cannot run the input gradient of a layer padded beyond its kernel
        // (the planner's tables assert which); that side of the identity is then not checked.
        let pd = geo.pad;
        let beyond = pd.top.max(pd.bottom) > params.dilation[0] * (st[0] - 1)
            || pd.left.max(pd.right) > params.dilation[1] * (st[1] - 1);
        let dx = match dx {
            Err(convgrad::Error::Unsupported { .. })
                if beyond && matches!(ctx.strategy(), convgrad::Strategy::Force(_)) =>
            {
                None
            }
            r => Some(r.unwrap()),
        };
        let lhs = dot(&y, &g);
        let via_w = dot(&w, &dw);
        let via_x = dx.as_ref().map_or(lhs, |dx| dot(&x, dx));
        let m: f64 = reference::forward(abs4(&x).view(), abs4(&w).view(), None, &params)
            .unwrap()
            .iter()
            .zip(g.iter())
            .map(|(a, b)| a * f64::from(b.abs()))
            .sum();
        let lf = geo.channels_per_group() * geo.s * geo.t;
        let tol_w = (gamma(lf) + gamma(n * geo.p * geo.q) + uh) * m;
        let tol_x = (gamma(lf) + gamma(geo.filters_per_group() * geo.s * geo.t) + 2.0 * uh) * m;
        eprintln!(
            "{}: ⟨Y,G⟩ = {lhs:.9}, ⟨W,dW⟩ − ⟨Y,G⟩ = {:.2e} (bound {tol_w:.2e}), ⟨X,dX⟩ − ⟨Y,G⟩ = {:.2e} (bound {tol_x:.2e})",
            geo.describe(),
            via_w - lhs,
            via_x - lhs
        );
        assert!((via_w - lhs).abs() <= tol_w, "weight-gradient adjoint fails on {}", geo.describe());
        assert!((via_x - lhs).abs() <= tol_x, "input-gradient adjoint fails on {}", geo.describe());
    }
}

/// In the single-channel case ∂J/∂W^k = X ⊗ ∂J/∂Y^k: the weight gradient is the forward correlation
/// of X with the output gradient used as the filter, computed here by the forward kernel itself.
#[test]
fn single_channel_weight_grad_is_the_forward_correlation_with_dy() {
    let ctx = ctx();
    let mut rng = Rng::new(5);
    let x: ndarray::Array2<f32> = rng.int_array((23, 19), -5, 5);
    let dy: Array3<f32> = rng.int_array((4, 18, 15), -5, 5);
    let dw = ctx.correlate_weight_grad(x.view(), dy.view()).unwrap();
    assert_eq!(dw.dim(), (4, 6, 5));
    // Each dY^k as a one-filter bank: X ⊗ dY^k is 6×5.
    for k in 0..4 {
        let filt = dy.slice(s![k..k + 1, .., ..]);
        let via_forward = ctx.correlate(x.view(), filt).unwrap();
        // Integers: both orders of summation are exact, so the two kernels agree to the bit.
        assert_eq!(via_forward.index_axis(Axis(0), 0), dw.index_axis(Axis(0), k));
    }
}

/// For stride 1 the input gradient is the correlation of dY, zero-padded by dh·(S−1) − ph, with the
/// filters flipped in both axes and with K and C swapped: dX = pad(dY) ⊗ flip(W)ᵀ.
#[test]
fn input_grad_is_padded_dy_correlated_with_flipped_filters() {
    let ctx = ctx();
    let mut rng = Rng::new(11);
    for (dil, pad) in [([1, 1], [0, 0]), ([2, 1], [1, 0]), ([1, 3], [0, 2])] {
        let params = Conv2dParams::new().dilation(dil[0], dil[1]).padding(pad[0], pad[1]);
        let geo = Conv2dGeometry::new(2, 3, [10, 12], 4, [3, 2], params).unwrap();
        let w: Array4<f32> = rng.int_array(geo.weight_shape(), -3, 3);
        let dy: Array4<f32> = rng.int_array(geo.output_shape(), -3, 3);
        let dx = ctx.conv2d_input_grad(dy.view(), w.view(), [10, 12], &params).unwrap();
        // W'[c, k, i, j] = W[k, c, S−1−i, T−1−j]
        let flipped = w.slice(s![.., .., ..;-1, ..;-1]).permuted_axes([1, 0, 2, 3]).to_owned();
        let full = Conv2dParams::new()
            .dilation(dil[0], dil[1])
            .padding(dil[0] * (geo.s - 1) - pad[0], dil[1] * (geo.t - 1) - pad[1]);
        let via_forward = ctx.conv2d(dy.view(), flipped.view(), None, &full).unwrap();
        assert_eq!(via_forward, dx, "dilation {dil:?}, padding {pad:?}");
    }
}

/// Channels last runs the NCHW kernels between exact transposes, so on every kernel path an NHWC
/// result is the NCHW result of the same layer, transposed, to the bit: for the four operations, on
/// device tensors and through `*_into`.
#[test]
fn nhwc_results_are_the_nchw_results_transposed_bit_for_bit() {
    let to_nhwc = |a: &Array4<f32>| a.view().permuted_axes([0, 2, 3, 1]).as_standard_layout().into_owned();
    for (path, ctx) in common::paths() {
        let mut rng = Rng::new(77);
        for (n, c, hw, k, st, nchw) in layers() {
            let nchw = nchw.layout(Layout::Nchw);
            let nhwc = nchw.layout(Layout::Nhwc);
            let geo = Conv2dGeometry::new(n, c, hw, k, st, nchw).unwrap();
            let x: Array4<f32> = rng.array(geo.input_shape());
            let w: Array4<f32> = rng.array(geo.weight_shape());
            let g: Array4<f32> = rng.array(geo.output_shape());
            let b: ndarray::Array1<f32> = rng.array(k);
            let (xt, wt, gt) = (to_nhwc(&x), to_nhwc(&w), to_nhwc(&g));
            let label = format!("{path}: {}", geo.describe());
            let y = ctx.conv2d(x.view(), w.view(), Some(b.view()), &nchw).unwrap();
            let yt = ctx.conv2d(xt.view(), wt.view(), Some(b.view()), &nhwc).unwrap();
            assert_eq!(to_nhwc(&y), yt, "forward, {label}");
            let dw = ctx.conv2d_weight_grad(x.view(), g.view(), st, &nchw).unwrap();
            let dwt = ctx.conv2d_weight_grad(xt.view(), gt.view(), st, &nhwc).unwrap();
            assert_eq!(to_nhwc(&dw), dwt, "weight gradient, {label}");
            // A forced family refuses a layer padded beyond its kernel in both layouts alike.
            match (
                ctx.conv2d_input_grad(g.view(), w.view(), hw, &nchw),
                ctx.conv2d_input_grad(gt.view(), wt.view(), hw, &nhwc),
            ) {
                (Ok(dx), Ok(dxt)) => {
                    assert_eq!(to_nhwc(&dx), dxt, "input gradient, {label}");
                    // Into a tensor the caller made.
                    let (gd, wd) = (ctx.upload(gt.view()).unwrap(), ctx.upload(wt.view()).unwrap());
                    let out = ctx.zeros(dxt.shape()).unwrap();
                    ctx.input_grad_into(&gd, &wd, &nhwc, &out).unwrap();
                    assert_eq!(ctx.download::<ndarray::Ix4>(&out).unwrap(), dxt, "input gradient into, {label}");
                }
                (Err(convgrad::Error::Unsupported { .. }), Err(convgrad::Error::Unsupported { .. })) => {}
                (a, b) => panic!("input gradient, {label}: NCHW {:?}, NHWC {:?}", a.err(), b.err()),
            }
            let db = ctx.conv2d_bias_grad(g.view(), Layout::Nchw).unwrap();
            let dbt = ctx.conv2d_bias_grad(gt.view(), Layout::Nhwc).unwrap();
            assert_eq!(db, dbt, "bias gradient, {label}");
        }
    }
}
