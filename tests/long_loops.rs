//! Layers whose planes reach the loop limit of lavapipe (65,535 iterations per invocation, see
//! `tests/loop_limit.rs` and `plan::loops`): H·W and P·Q of 65,535, 65,536 and 589,824 positions, in
//! both layouts, on every kernel path, all four operations against the f64 reference, outputs
//! pre-filled with NaN. Before the loops were bounded, lavapipe gave wrong results without an error
//! here: the channels-last transposes of the CPU profile looped over H·W in one invocation, the bias
//! gradient over P·Q, and the direct weight gradient over N·P·Q.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Rng, abs4, check, nan_tensor};
use convgrad::{Conv2dGeometry, Conv2dParams, Error, Layout, reference};
use ndarray::{Array1, Array4, Ix1, Ix4};

#[test]
fn planes_of_65535_positions() {
    planes([255, 257]);
}

#[test]
fn planes_of_65536_positions() {
    planes([256, 256]);
}

#[test]
fn planes_of_589824_positions() {
    planes([768, 768]);
}

/// Reductions up to the loop budget (`plan::loops`): a forward pass and weight gradient over 3,529
/// channels of 3×3 taps (the direct kernel's 3,529 · 17 + 1 = 59,994 iterations) and an input gradient
/// over as many filters. Each path either runs it right, or refuses it with a typed error where its
/// plan would loop past the budget; never a wrong result.
#[test]
fn reductions_near_the_budget() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for (c, k) in [(3_529, 2), (2, 3_529)] {
        let params = Conv2dParams::new().padding(1, 1);
        let geo = Conv2dGeometry::new(1, c, [4, 5], k, [3, 3], params).unwrap();
        let mut rng = Rng::new(0x1010);
        let x: Array4<f32> = rng.array(geo.input_shape());
        let wt: Array4<f32> = rng.array(geo.weight_shape());
        let dy: Array4<f32> = rng.array(geo.output_shape());
        let (ax, aw, ady) = (abs4(&x), abs4(&wt), abs4(&dy));
        let y_ref = reference::forward(x.view(), wt.view(), None, &params).unwrap();
        let y_mag = reference::forward(ax.view(), aw.view(), None, &params).unwrap();
        let dw_ref = reference::weight_grad(x.view(), dy.view(), [3, 3], &params).unwrap();
        let dw_mag = reference::weight_grad(ax.view(), ady.view(), [3, 3], &params).unwrap();
        let dx_ref = reference::input_grad(dy.view(), wt.view(), [4, 5], &params).unwrap();
        let dx_mag = reference::input_grad(ady.view(), aw.view(), [4, 5], &params).unwrap();
        for (path, ctx) in common::paths() {
            let at = format!("C={c} K={k} on {path}");
            let (xd, wd, dyd) =
                (ctx.upload(x.view()).unwrap(), ctx.upload(wt.view()).unwrap(), ctx.upload(dy.view()).unwrap());
            let mut result = |op: &str, r: convgrad::Result<Result<f64, String>>| match r {
                Ok(Ok(_)) => ran += 1,
                Ok(Err(m)) => failures.push(format!("{at} {op}: {m}")),
                Err(Error::Unsupported { .. }) => {}
                Err(e) => failures.push(format!("{at} {op}: {e}")),
            };
            let y = nan_tensor(ctx, &geo.output_shape());
            let r = ctx.forward_into(&xd, &wd, None, &params, &y);
            let l = c * 9;
            result("forward", r.map(|()| check(&ctx.download::<Ix4>(&y).unwrap(), &y_ref, &y_mag, l, 1e-5)));
            let dw = nan_tensor(ctx, &geo.weight_shape());
            let r = ctx.weight_grad_into(&xd, &dyd, &params, &dw);
            result("weight_grad", r.map(|()| check(&ctx.download::<Ix4>(&dw).unwrap(), &dw_ref, &dw_mag, 20, 1e-5)));
            let dx = nan_tensor(ctx, &geo.input_shape());
            let r = ctx.input_grad_into(&dyd, &wd, &params, &dx);
            let l = k * 9;
            result("input_grad", r.map(|()| check(&ctx.download::<Ix4>(&dx).unwrap(), &dx_ref, &dx_mag, l, 1e-5)));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    eprintln!("{ran} results of {} within the budget, all right", 6 * common::paths().len());
    // Every path runs the weight gradient of both layers, and Auto every op.
    assert!(ran >= 2 * common::paths().len() + 4, "only {ran} results");
}

/// One 3-channel layer of `hw` with 4 filters of 3×3 and `same` padding (P·Q = H·W), in each layout,
/// on every path.
fn planes(hw: [usize; 2]) {
    let mut failures = Vec::new();
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let params = Conv2dParams::new().padding_same().layout(layout);
        let geo = Conv2dGeometry::new(1, 3, hw, 4, [3, 3], params).unwrap();
        let mut rng = Rng::new(0x1009);
        let x: Array4<f32> = rng.array(geo.input_shape());
        let wt: Array4<f32> = rng.array(geo.weight_shape());
        let b: Array1<f32> = rng.array(4);
        let dy: Array4<f32> = rng.array(geo.output_shape());
        let (ax, aw, ab, ady) = (abs4(&x), abs4(&wt), b.mapv(f32::abs), abs4(&dy));
        let y_ref = reference::forward(x.view(), wt.view(), Some(b.view()), &params).unwrap();
        let y_mag = reference::forward(ax.view(), aw.view(), Some(ab.view()), &params).unwrap();
        let dw_ref = reference::weight_grad(x.view(), dy.view(), [3, 3], &params).unwrap();
        let dw_mag = reference::weight_grad(ax.view(), ady.view(), [3, 3], &params).unwrap();
        let dx_ref = reference::input_grad(dy.view(), wt.view(), hw, &params).unwrap();
        let dx_mag = reference::input_grad(ady.view(), aw.view(), hw, &params).unwrap();
        let db_ref = reference::bias_grad(dy.view(), layout);
        let db_mag = reference::bias_grad(ady.view(), layout);
        let pq = geo.p * geo.q;
        for (path, ctx) in common::paths() {
            let at = format!("{hw:?} {layout:?} on {path}");
            let (xd, wd, bd, dyd) = (
                ctx.upload(x.view()).unwrap(),
                ctx.upload(wt.view()).unwrap(),
                ctx.upload(b.view()).unwrap(),
                ctx.upload(dy.view()).unwrap(),
            );
            let mut result = |op: &str, r: Result<f64, String>| match r {
                Ok(e) => eprintln!("{at} {op}: {e:.2e}"),
                Err(m) => failures.push(format!("{at} {op}: {m}")),
            };
            let y = nan_tensor(ctx, &geo.output_shape());
            match ctx.forward_into(&xd, &wd, Some(&bd), &params, &y) {
                Ok(()) => result("forward", check(&ctx.download::<Ix4>(&y).unwrap(), &y_ref, &y_mag, 28, 1e-5)),
                Err(Error::Unsupported { .. }) => {}
                Err(e) => result("forward", Err(e.to_string())),
            }
            let dw = nan_tensor(ctx, &geo.weight_shape());
            match ctx.weight_grad_into(&xd, &dyd, &params, &dw) {
                Ok(()) => result("weight_grad", check(&ctx.download::<Ix4>(&dw).unwrap(), &dw_ref, &dw_mag, pq, 1e-5)),
                Err(Error::Unsupported { .. }) => {}
                Err(e) => result("weight_grad", Err(e.to_string())),
            }
            let dx = nan_tensor(ctx, &geo.input_shape());
            match ctx.input_grad_into(&dyd, &wd, &params, &dx) {
                Ok(()) => result("input_grad", check(&ctx.download::<Ix4>(&dx).unwrap(), &dx_ref, &dx_mag, 36, 1e-5)),
                Err(Error::Unsupported { .. }) => {}
                Err(e) => result("input_grad", Err(e.to_string())),
            }
            let db = nan_tensor(ctx, &[4]);
            let r = ctx.bias_grad_into(&dyd, layout, &db).map_err(|e| e.to_string());
            result("bias_grad", r.and_then(|()| check(&ctx.download::<Ix1>(&db).unwrap(), &db_ref, &db_mag, pq, 1e-5)));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
