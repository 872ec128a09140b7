//! GPU against the f64 CPU reference over a sweep of edge shapes, for every operation.
//!
//! Every GPU output tensor is pre-filled with NaN, so an element a kernel never writes fails. Each element
//! must lie within the worst-case f32 summation bound γ_L·(the same op on |inputs|), and each result
//! within 1e-5 normwise relative error.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Rng, abs4, check, check_as, ctx, nan_tensor, nan_tensor_as};
use convgrad::verify::{edge_layers, rounded, unit_roundoff};
use convgrad::{Conv2dGeometry, Conv2dParams, DeviceClass, Elem, Error, HalfPath, reference};
use ndarray::{Array1, Array4, Ix1, Ix4};

// One test per kernel path (tests/common `paths`), so that they run side by side and a failure names
// its path.
#[test]
fn auto_plans_match_reference_on_edge_shapes() {
    sweep(&format!("auto/{}", ctx().profile().class.name()));
}

#[test]
fn auto_plans_of_the_other_profile_match_reference_on_edge_shapes() {
    sweep(&format!("auto/{}", other_class()));
}

#[test]
fn forced_register_tiles_match_reference_on_edge_shapes() {
    sweep("register-tile/cpu");
    sweep("register-tile/gpu");
}

#[test]
fn forced_vec4_tiles_match_reference_on_edge_shapes() {
    sweep("vec4-tile/cpu");
}

#[test]
fn forced_vec4_tiles_of_the_gpu_profile_match_reference_on_edge_shapes() {
    sweep("vec4-tile/gpu");
}

#[test]
fn forced_gemm_kernels_match_reference_on_edge_shapes() {
    sweep("gemm/cpu");
    sweep("gemm/gpu");
}

#[test]
fn forced_huge_gemm_tiles_match_reference_on_edge_shapes() {
    sweep("gemm-huge/cpu");
    sweep("gemm-huge/gpu");
}

#[test]
fn forced_double_buffered_gemm_tiles_match_reference_on_edge_shapes() {
    sweep("gemm double-buffered/cpu");
    sweep("gemm double-buffered/gpu");
}

#[test]
fn reference_kernels_match_reference_on_edge_shapes() {
    sweep("reference");
}

fn other_class() -> &'static str {
    if ctx().profile().class == DeviceClass::Cpu { "gpu" } else { "cpu" }
}

/// The result of one op on one case: its error against the reference, or that the path's forced
/// algorithm cannot run the layer (a typed error the planner's own tables assert).
fn outcome<T>(r: convgrad::Result<T>, f: impl FnOnce(T) -> Result<f64, String>) -> Option<Result<f64, String>> {
    match r {
        Ok(v) => Some(f(v)),
        Err(Error::Unsupported { .. }) => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

/// Half precision through the kernel paths whose code it changes: the automatic plans of both
/// profiles and every forced GEMM family (their kernels read 16-bit operands in place), in f16 on the
/// adapter's f16 path; bf16 on the automatic plans. The other families run the f32 kernels between the
/// widening and narrowing passes, the same passes the automatic CPU plans take here.
#[test]
fn half_precision_on_every_path_matches_reference_on_edge_shapes() {
    for (name, _) in common::paths().iter().filter(|(n, _)| n.starts_with("auto") || n.starts_with("gemm")) {
        sweep_as(name, Elem::F16);
    }
    sweep_as(&format!("auto/{}", ctx().profile().class.name()), Elem::Bf16);
    sweep_as(&format!("auto/{}", other_class()), Elem::Bf16);
}

/// f16 through the automatic plans of both profiles on each f16 path the adapter offers, forced.
#[test]
fn every_f16_path_matches_reference_on_edge_shapes() {
    let p = ctx().profile();
    for path in HalfPath::offered(p.f16_native, p.f16_packed) {
        for class in [ctx().profile().class.name(), other_class()] {
            let name = format!("auto/{class}");
            let forced = common::path(&name).twin().with_half_path(path).unwrap();
            sweep_on(&format!("{name}, f16 by {}", path.name()), &forced, Elem::F16);
        }
    }
}

fn sweep(path: &str) {
    sweep_as(path, Elem::F32);
}

/// The sweep with operands of `elem` (the seeded values rounded to it): the forward pass and input
/// gradient written in `elem`, the weight and bias gradients in f32, each within its bound
/// ([`common::check_as`]).
fn sweep_as(path: &str, elem: Elem) {
    sweep_on(path, common::path(path), elem);
}

/// [`sweep_as`] on the context `ctx`, named `path`.
fn sweep_on(path: &str, ctx: &convgrad::Context, elem: Elem) {
    let mut rng = Rng::new(0x5eed);
    let round = |a: Array4<f32>| rounded(&a, elem);
    let max_rel = unit_roundoff(elem).max(1e-5);
    let mut failures = Vec::new();
    let mut worst = [0.0f64; 4];
    let mut ran = [0usize; 4];
    eprintln!("{path} kernels, {elem} operands");
    eprintln!("{:<26} {:>34} {:>10} {:>10} {:>10} {:>10}", "case", "geometry", "forward", "weight", "input", "bias");
    for (label, (n, c, [h, w], k, [s, t], params)) in edge_layers() {
        let geo = Conv2dGeometry::new(n, c, [h, w], k, [s, t], params).unwrap();
        let x: Array4<f32> = round(rng.array(geo.input_shape()));
        let wt: Array4<f32> = round(rng.array(geo.weight_shape()));
        let b: Array1<f32> = rounded(&rng.array(k), elem);
        let dy: Array4<f32> = round(rng.array(geo.output_shape()));
        let (ax, aw, ab, ady) = (abs4(&x), abs4(&wt), b.mapv(f32::abs), abs4(&dy));

        let (xd, wd, bd, dyd) = (
            ctx.upload_as(x.view(), elem).unwrap(),
            ctx.upload_as(wt.view(), elem).unwrap(),
            ctx.upload_as(b.view(), elem).unwrap(),
            ctx.upload_as(dy.view(), elem).unwrap(),
        );

        let y = nan_tensor_as(ctx, &geo.output_shape(), elem);
        let fwd = outcome(ctx.forward_into(&xd, &wd, Some(&bd), &params, &y), |()| {
            let y = ctx.download::<Ix4>(&y).unwrap();
            let y_ref = reference::forward(x.view(), wt.view(), Some(b.view()), &params).unwrap();
            let y_mag = reference::forward(ax.view(), aw.view(), Some(ab.view()), &params).unwrap();
            check_as(&y, &y_ref, &y_mag, geo.channels_per_group() * s * t + 1, max_rel, elem)
        });

        let dw = nan_tensor(ctx, &geo.weight_shape());
        let wg = outcome(ctx.weight_grad_into(&xd, &dyd, &params, &dw), |()| {
            let dw = ctx.download::<Ix4>(&dw).unwrap();
            let dw_ref = reference::weight_grad(x.view(), dy.view(), [s, t], &params).unwrap();
            let dw_mag = reference::weight_grad(ax.view(), ady.view(), [s, t], &params).unwrap();
            check(&dw, &dw_ref, &dw_mag, n * geo.p * geo.q, 1e-5)
        });

        let dx = nan_tensor_as(ctx, &geo.input_shape(), elem);
        let ig = outcome(ctx.input_grad_into(&dyd, &wd, &params, &dx), |()| {
            let dx = ctx.download::<Ix4>(&dx).unwrap();
            let dx_ref = reference::input_grad(dy.view(), wt.view(), [h, w], &params).unwrap();
            let dx_mag = reference::input_grad(ady.view(), aw.view(), [h, w], &params).unwrap();
            check_as(&dx, &dx_ref, &dx_mag, geo.filters_per_group() * s * t, max_rel, elem)
        });

        let db = nan_tensor(ctx, &[k]);
        ctx.bias_grad_into(&dyd, params.layout, &db).unwrap();
        let db = ctx.download::<Ix1>(&db).unwrap();
        let db_ref = reference::bias_grad(dy.view(), params.layout);
        let db_mag = reference::bias_grad(ady.view(), params.layout);
        let bg = Some(check(&db, &db_ref, &db_mag, n * geo.p * geo.q, 1e-5));

        let mut row = format!("{label:<26} {:>34}", geo.describe());
        for (i, (op, r)) in
            [("forward", fwd), ("weight_grad", wg), ("input_grad", ig), ("bias_grad", bg)].into_iter().enumerate()
        {
            match r {
                Some(Ok(e)) => {
                    worst[i] = worst[i].max(e);
                    ran[i] += 1;
                    row += &format!(" {e:>10.2e}");
                }
                Some(Err(m)) => {
                    row += "       FAIL";
                    failures.push(format!("{label} ({}) {op}: {m}", geo.describe()));
                }
                None => row += "        n/a",
            }
        }
        eprintln!("{row}");
    }
    eprintln!(
        "{path} kernels, worst normwise relative error: forward {:.2e}, weight_grad {:.2e}, input_grad {:.2e}, bias_grad {:.2e}",
        worst[0], worst[1], worst[2], worst[3]
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // A forced family is refused only where the planner's tables say it cannot run (src/plan/tests.rs):
    // any tiled input gradient of a layer padded beyond its dilated kernel, and the vec4 tiles of
    // kernel rows wider than 11 taps; nothing else.
    let layers = edge_layers();
    let count = |f: &dyn Fn(&convgrad::verify::Layer) -> bool| layers.iter().filter(|(_, l)| f(l)).count();
    let beyond = |&(n, c, hw, k, [s, t], p): &convgrad::verify::Layer| {
        let pd = Conv2dGeometry::new(n, c, hw, k, [s, t], p).unwrap().pad;
        pd.top.max(pd.bottom) > p.dilation[0] * (s - 1) || pd.left.max(pd.right) > p.dilation[1] * (t - 1)
    };
    let wide = |l: &convgrad::verify::Layer| l.4[1] > 11;
    let cases = layers.len();
    let expected = if path.starts_with("register") {
        [cases, cases, cases - count(&beyond), cases]
    } else if path.starts_with("vec4") {
        [cases - count(&wide), cases - count(&wide), cases - count(&|l| beyond(l) || wide(l)), cases]
    } else {
        [cases; 4]
    };
    assert_eq!(ran, expected, "{path}: ops run per column");
}

/// The same inputs give bitwise identical outputs, run after run, on every kernel path.
#[test]
fn results_are_bitwise_deterministic() {
    for (_, ctx) in common::paths() {
        deterministic(ctx);
    }
}

fn deterministic(ctx: &convgrad::Context) {
    let mut rng = Rng::new(7);
    let params = Conv2dParams::default().padding(1, 1).stride(2, 1).groups(2);
    let geo = Conv2dGeometry::new(3, 4, [19, 17], 6, [3, 3], params).unwrap();
    let x = ctx.upload(rng.array::<ndarray::Ix4, _>(geo.input_shape()).view()).unwrap();
    let w = ctx.upload(rng.array::<ndarray::Ix4, _>(geo.weight_shape()).view()).unwrap();
    let dy = ctx.upload(rng.array::<ndarray::Ix4, _>(geo.output_shape()).view()).unwrap();
    let run = || {
        let y = ctx.download::<Ix4>(&ctx.forward(&x, &w, None, &params).unwrap()).unwrap();
        let dw = ctx.download::<Ix4>(&ctx.weight_grad(&x, &dy, [3, 3], &params).unwrap()).unwrap();
        let dx = ctx.download::<Ix4>(&ctx.input_grad(&dy, &w, [19, 17], &params).unwrap()).unwrap();
        let db = ctx.download::<Ix1>(&ctx.bias_grad(&dy, params.layout).unwrap()).unwrap();
        let bits = |a: &[f32]| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (
            bits(y.as_slice().unwrap()),
            bits(dw.as_slice().unwrap()),
            bits(dx.as_slice().unwrap()),
            bits(db.as_slice().unwrap()),
        )
    };
    let first = run();
    for _ in 0..4 {
        assert!(run() == first, "a repeated run gave different bits");
    }
}
