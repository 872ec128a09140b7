//! The GEMM kernels (the GPU profile's), every tile shape and split count forced, on whatever adapter
//! the tests run on (in CI: lavapipe and SwiftShader).
//!
//! Layers are built so that each operation's GEMM has rows, columns and a reduction of 1, tile − 1,
//! tile and tile + 1 of the forced tile, and over strides 1–3, dilation, groups and padding beyond the
//! kernel. Outputs and every temporary (the split reduction's partial tiles) start as NaN; results
//! must lie within the f32 summation bound of the f64 reference, and repeat to the bit.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::num::NonZeroU32;

use common::{Rng, abs4, check, check_as, ctx, nan_tensor, nan_tensor_as};
use convgrad::verify::{rounded, unit_roundoff};
use convgrad::{
    Algorithm, Context, Conv2dGeometry, Conv2dParams, DeviceClass, Elem, Error, GemmChoice, GemmShape, Strategy,
    reference,
};
use ndarray::{Array4, Ix4};

/// A context on the shared device forcing `choice`, planning for a GPU with at most `workgroup`
/// bytes of workgroup memory, its temporaries poisoned.
fn gemm_ctx(choice: GemmChoice, workgroup: u32) -> Context {
    let c = Context::from_device(ctx().device().clone(), ctx().queue().clone())
        .with_profile(DeviceClass::Gpu)
        .with_workgroup_limit(workgroup)
        .with_strategy(Strategy::Force(Algorithm::Gemm(choice)));
    c.set_poisoned_temporaries(true);
    c
}

/// The tile (rows, columns, reduction steps) of `shape` as the planner reports it.
fn tile_of(ctx: &Context, shape: GemmShape) -> [usize; 3] {
    let geo = Conv2dGeometry::new(1, 1, [1, 1], 1, [1, 1], Conv2dParams::new()).unwrap();
    let plan = ctx.plan_forward(&geo).unwrap().to_string();
    let dims: Vec<usize> =
        plan.trim_start_matches("gemm ").split(' ').next().unwrap().split('x').map(|d| d.parse().unwrap()).collect();
    assert_eq!(dims.len(), 3, "{shape:?}: {plan}");
    [dims[0], dims[1], dims[2]]
}

/// Runs the three operations of `geo` on `ctx` against the f64 reference, each into NaN; returns
/// failures. `which`: forward, weight gradient, input gradient.
fn run_layer(ctx: &Context, geo: &Conv2dGeometry, which: [bool; 3], rng: &mut Rng) -> Vec<String> {
    run_layer_as(ctx, geo, which, rng, Elem::F32)
}

/// [`run_layer`] with operands of `elem` (rounded; read in place by the GEMM kernels), the forward
/// pass and input gradient written in `elem`, the weight gradient in f32.
fn run_layer_as(ctx: &Context, geo: &Conv2dGeometry, which: [bool; 3], rng: &mut Rng, elem: Elem) -> Vec<String> {
    let params = geo.params;
    let (s, t) = (geo.s, geo.t);
    let max_rel = unit_roundoff(elem).max(1e-5);
    let x: Array4<f32> = rounded(&rng.array(geo.input_shape()), elem);
    let w: Array4<f32> = rounded(&rng.array(geo.weight_shape()), elem);
    let dy: Array4<f32> = rounded(&rng.array(geo.output_shape()), elem);
    let (ax, aw, ady) = (abs4(&x), abs4(&w), abs4(&dy));
    let up = |a: &Array4<f32>| ctx.upload_as(a.view(), elem).unwrap();
    let (xd, wd, dyd) = (up(&x), up(&w), up(&dy));
    let mut failures = Vec::new();
    let mut note = |op: &str, r: Result<f64, String>| {
        if let Err(m) = r {
            failures.push(format!("{} {op}: {m}", geo.describe()));
        }
    };
    if which[0] {
        let y = nan_tensor_as(ctx, &geo.output_shape(), elem);
        ctx.forward_into(&xd, &wd, None, &params, &y).unwrap();
        let y = ctx.download::<Ix4>(&y).unwrap();
        let y_ref = reference::forward(x.view(), w.view(), None, &params).unwrap();
        let y_mag = reference::forward(ax.view(), aw.view(), None, &params).unwrap();
        note("forward", check_as(&y, &y_ref, &y_mag, geo.channels_per_group() * s * t, max_rel, elem));
    }
    if which[1] {
        let dw = nan_tensor(ctx, &geo.weight_shape());
        ctx.weight_grad_into(&xd, &dyd, &params, &dw).unwrap();
        let dw = ctx.download::<Ix4>(&dw).unwrap();
        let dw_ref = reference::weight_grad(x.view(), dy.view(), [s, t], &params).unwrap();
        let dw_mag = reference::weight_grad(ax.view(), ady.view(), [s, t], &params).unwrap();
        note("weight gradient", check(&dw, &dw_ref, &dw_mag, geo.n * geo.p * geo.q, 1e-5));
    }
    if which[2] {
        let dx = nan_tensor_as(ctx, &geo.input_shape(), elem);
        ctx.input_grad_into(&dyd, &wd, &params, &dx).unwrap();
        let dx = ctx.download::<Ix4>(&dx).unwrap();
        let dx_ref = reference::input_grad(dy.view(), w.view(), [geo.h, geo.w], &params).unwrap();
        let dx_mag = reference::input_grad(ady.view(), aw.view(), [geo.h, geo.w], &params).unwrap();
        note("input gradient", check_as(&dx, &dx_ref, &dx_mag, geo.filters_per_group() * s * t, max_rel, elem));
    }
    failures
}

/// Each operation on a layer whose GEMM is exactly `m × n × r` (a 1×1 kernel over a 1×n row), with
/// operands of `elem`.
fn run_gemm(ctx: &Context, [m, n, r]: [usize; 3], rng: &mut Rng, elem: Elem) -> Vec<String> {
    let p = Conv2dParams::new();
    let fwd = Conv2dGeometry::new(1, r, [1, n], m, [1, 1], p).unwrap();
    let wgrad = Conv2dGeometry::new(1, n, [1, r], m, [1, 1], p).unwrap();
    let igrad = Conv2dGeometry::new(1, m, [1, n], r, [1, 1], p).unwrap();
    let mut failures = run_layer_as(ctx, &fwd, [true, false, false], rng, elem);
    failures.extend(run_layer_as(ctx, &wgrad, [false, true, false], rng, elem));
    failures.extend(run_layer_as(ctx, &igrad, [false, false, true], rng, elem));
    failures
}

/// 1, d − 1, d, d + 1 (without 0).
fn around(d: usize) -> Vec<usize> {
    let mut v = vec![1, d - 1, d, d + 1];
    v.retain(|&x| x > 0);
    v.dedup();
    v
}

/// Every shape (and the large tile in both its workgroup-memory forms) at the tile's boundaries:
/// each operation's rows, columns and reduction of 1, tile − 1, tile and tile + 1.
#[test]
fn every_tile_shape_is_exact_at_its_boundaries() {
    tile_boundaries(Elem::F32);
}

/// The boundaries with f16 operands, which the GEMM kernels read in place (odd counts of halves end
/// inside a word; the vec4 stagings read two words).
#[test]
fn every_tile_shape_reads_f16_in_place_at_its_boundaries() {
    tile_boundaries(Elem::F16);
}

fn tile_boundaries(elem: Elem) {
    let mut rng = Rng::new(0x6e33);
    let mut failures = Vec::new();
    let mut runs = 0;
    for (shape, wg) in GemmShape::ALL.into_iter().map(|s| (s, 32 * 1024)).chain([(GemmShape::Large, 16 * 1024)]) {
        let ctx = gemm_ctx(GemmChoice::shape(shape), wg);
        let [bm, bn, bk] = tile_of(&ctx, shape);
        for m in around(bm) {
            for n in around(bn) {
                for r in around(bk) {
                    failures.extend(run_gemm(&ctx, [m, n, r], &mut rng, elem));
                    runs += 3;
                }
            }
        }
        eprintln!("{shape:?} ({bm}x{bn}x{bk}, {wg} B): boundaries done");
    }
    assert!(failures.is_empty(), "{} of {runs} runs failed:\n{}", failures.len(), failures.join("\n"));
}

/// Layers whose gathers exercise the masks and the digit-wise steps: strides 1–3, dilation, groups,
/// padding per side and beyond the kernel, kernels wider than the reduction step.
fn gather_layers() -> Vec<Conv2dGeometry> {
    let mut out = Vec::new();
    for stride in 1..=3 {
        for (dil, pad) in [(1, [0, 0, 0, 0]), (2, [1, 2, 0, 1]), (1, [4, 3, 5, 2])] {
            for groups in [1, 2] {
                let params = Conv2dParams::new()
                    .stride(stride, if stride == 3 { 2 } else { stride })
                    .dilation(dil, 1)
                    .padding_sides(pad[0], pad[1], pad[2], pad[3])
                    .groups(groups);
                out.push(Conv2dGeometry::new(2, 2 * groups, [11, 10], 3 * groups, [3, 2], params).unwrap());
            }
        }
    }
    // A 5×7 kernel over 3 channels: reductions of 105 taps cross several reduction steps and carry
    // through both tap digits; 17 filters cross a narrow tile's rows.
    let p = Conv2dParams::new().padding(2, 3);
    out.push(Conv2dGeometry::new(3, 3, [9, 13], 17, [5, 7], p).unwrap());
    out.push(Conv2dGeometry::new(1, 4, [6, 6], 4, [3, 3], Conv2dParams::new().groups(4).padding(1, 1)).unwrap());
    out.push(Conv2dGeometry::new(2, 2, [8, 9], 3, [3, 3], Conv2dParams::new().padding_same().dilation(2, 1)).unwrap());
    out
}

#[test]
fn every_tile_shape_matches_the_reference_over_strides_dilation_groups_and_padding() {
    gathers(Elem::F32);
}

/// The gathers with f16 and bf16 operands read in place.
#[test]
fn every_tile_shape_gathers_f16_and_bf16_in_place() {
    gathers(Elem::F16);
    gathers(Elem::Bf16);
}

fn gathers(elem: Elem) {
    let mut rng = Rng::new(0x6a77);
    let mut failures = Vec::new();
    let layers = gather_layers();
    for shape in GemmShape::ALL {
        let ctx = gemm_ctx(GemmChoice::shape(shape), 32 * 1024);
        for geo in &layers {
            if elem.is_half() {
                let op = convgrad::plan::Op::Forward;
                assert!(ctx.chunking(op, geo, elem).unwrap().in_place, "{shape:?} {}", geo.describe());
            }
            failures.extend(run_layer_as(&ctx, geo, [true; 3], &mut rng, elem));
        }
    }
    assert!(failures.is_empty(), "{elem}: {}", failures.join("\n"));
}

/// The weight gradient with every split count forced, from one range to more than the reduction has
/// steps (clamped): the partial tiles start as NaN, and the result must not depend on the split
/// beyond rounding.
#[test]
fn forced_split_counts_match_the_reference() {
    let mut rng = Rng::new(0x5117);
    let mut failures = Vec::new();
    let p = Conv2dParams::new().stride(2, 1).padding(1, 1);
    // N·P·Q = 3·5·9 = 135 columns: 8 reduction steps of 16 and a part, 4 of 32 and a part.
    let geo = Conv2dGeometry::new(3, 3, [9, 9], 5, [3, 3], p).unwrap();
    for shape in GemmShape::ALL {
        for splits in [1, 2, 3, 7, 9, 1000] {
            let choice = GemmChoice { splits: NonZeroU32::new(splits), ..GemmChoice::shape(shape) };
            let ctx = gemm_ctx(choice, 32 * 1024);
            let plan = ctx.plan_weight_grad(&geo).unwrap().to_string();
            let want = format!("split-K {} x", splits.min(135));
            assert!(plan.contains(&want), "{shape:?} splits {splits}: {plan}");
            failures.extend(
                run_layer(&ctx, &geo, [false, true, false], &mut rng).into_iter().map(|f| format!("{plan}: {f}")),
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Ten runs of each operation with each shape give the same bits.
#[test]
fn ten_repeats_are_bitwise_equal() {
    let mut rng = Rng::new(0x7e9);
    let geo = Conv2dGeometry::new(2, 5, [12, 11], 19, [3, 3], Conv2dParams::new().padding(1, 1).stride(2, 1)).unwrap();
    let params = geo.params;
    for shape in GemmShape::ALL {
        let ctx = gemm_ctx(GemmChoice { splits: NonZeroU32::new(5), ..GemmChoice::shape(shape) }, 32 * 1024);
        let x: Array4<f32> = rng.array(geo.input_shape());
        let w: Array4<f32> = rng.array(geo.weight_shape());
        let dy: Array4<f32> = rng.array(geo.output_shape());
        let (xd, wd, dyd) =
            (ctx.upload(x.view()).unwrap(), ctx.upload(w.view()).unwrap(), ctx.upload(dy.view()).unwrap());
        let bits = |a: Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        let runs: [Box<dyn Fn() -> Vec<u32>>; 3] = [
            Box::new(|| bits(ctx.download::<Ix4>(&ctx.forward(&xd, &wd, None, &params).unwrap()).unwrap())),
            Box::new(|| bits(ctx.download::<Ix4>(&ctx.weight_grad(&xd, &dyd, [3, 3], &params).unwrap()).unwrap())),
            Box::new(|| bits(ctx.download::<Ix4>(&ctx.input_grad(&dyd, &wd, [12, 11], &params).unwrap()).unwrap())),
        ];
        for (op, run) in ["forward", "weight gradient", "input gradient"].iter().zip(&runs) {
            let first = run();
            for i in 1..10 {
                assert!(run() == first, "{shape:?} {op}: run {i} differs from the first");
            }
        }
    }
}

/// The planner's own choice under the GPU profile is the GEMM family, for every op.
#[test]
fn the_gpu_profile_plans_the_gemm_kernels() {
    let c = Context::from_device(ctx().device().clone(), ctx().queue().clone()).with_profile(DeviceClass::Gpu);
    for geo in gather_layers() {
        assert!(c.plan_forward(&geo).unwrap().to_string().starts_with("gemm "));
        assert!(c.plan_weight_grad(&geo).unwrap().to_string().starts_with("gemm "));
        assert!(c.plan_input_grad(&geo).unwrap().to_string().starts_with("gemm "));
    }
}

/// Every reduction depth a tile can be forced to (`GemmChoice::depth`, the tuner's candidates): at
/// the boundaries of the depth (reductions of 1, bk − 1, bk, bk + 1 with rows and columns of 1 and of
/// the tile + 1) and over the gather layers, all three operations.
#[test]
fn every_forced_reduction_depth_matches_the_reference() {
    let mut rng = Rng::new(0xde97);
    let mut failures = Vec::new();
    let mut tiles = 0;
    let layers = gather_layers();
    for shape in GemmShape::ALL {
        for depth in [8, 16, 32] {
            let choice = GemmChoice { depth: NonZeroU32::new(depth), ..GemmChoice::shape(shape) };
            let ctx = gemm_ctx(choice, 32 * 1024);
            let probe = Conv2dGeometry::new(1, 1, [1, 1], 1, [1, 1], Conv2dParams::new()).unwrap();
            if ctx.plan_forward(&probe).is_err() {
                continue; // the tile's loads do not divide at this depth (the plan tables say which)
            }
            let [bm, bn, bk] = tile_of(&ctx, shape);
            assert_eq!(bk, depth as usize, "{shape:?}");
            tiles += 1;
            for m in [1, bm + 1] {
                for n in [1, bn + 1] {
                    for r in around(bk) {
                        failures.extend(run_gemm(&ctx, [m, n, r], &mut rng, Elem::F32));
                    }
                }
            }
            for geo in &layers {
                failures.extend(
                    run_layer(&ctx, geo, [true; 3], &mut rng).into_iter().map(|f| format!("{shape:?}/{depth}: {f}")),
                );
            }
        }
    }
    // Large 8/16/32, narrow 8/16/32, small 8/16/32, thin 16/32, huge 8/16.
    assert_eq!(tiles, 13);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every shape double-buffered (`GemmChoice::double`), in 32 KiB and in WebGPU's 16 KiB: at the
/// boundaries of its rows and columns, over reductions of one round to four (the slab pairs alternate,
/// and the last round only multiplies), with the weight gradient's ranges split so that a range ends
/// mid-round; over the gather layers; and to the bit from run to run.
#[test]
fn double_buffered_tiles_match_the_reference() {
    let mut rng = Rng::new(0xdb1);
    let mut failures = Vec::new();
    let layers = gather_layers();
    let mut tiles = 0;
    for shape in GemmShape::ALL {
        for wg in [32 * 1024, 16 * 1024] {
            let choice = GemmChoice { double: true, ..GemmChoice::shape(shape) };
            let ctx = gemm_ctx(choice, wg);
            let probe = Conv2dGeometry::new(1, 1, [1, 1], 1, [1, 1], Conv2dParams::new()).unwrap();
            match ctx.plan_forward(&probe) {
                Ok(p) => assert!(p.to_string().contains("double-buffered"), "{shape:?}: {p}"),
                // Two pairs of the thin tile's slabs need 25 KiB (and 8 steps of 4 rows do not
                // divide among 64 invocations); of the huge tile's, 16,512 bytes even 8 deep.
                Err(Error::Unsupported { .. })
                    if matches!(shape, GemmShape::Thin | GemmShape::Huge) && wg == 16 * 1024 =>
                {
                    continue;
                }
                Err(e) => panic!("{shape:?} double in {wg} B: {e}"),
            }
            let [bm, bn, bk] = tile_of(&ctx, shape);
            tiles += 1;
            for m in [1, bm + 1] {
                for n in [1, bn + 1] {
                    for r in [1, bk - 1, bk, bk + 1, 2 * bk + 3, 4 * bk] {
                        failures.extend(run_gemm(&ctx, [m, n, r], &mut rng, Elem::F32));
                    }
                }
            }
            for geo in &layers {
                let f = run_layer(&ctx, geo, [true; 3], &mut rng);
                failures.extend(f.into_iter().map(|f| format!("{shape:?} double, {wg} B: {f}")));
            }
            let split = GemmChoice { splits: NonZeroU32::new(3), ..choice };
            let geo = Conv2dGeometry::new(2, 3, [13, 11], 5, [3, 3], Conv2dParams::new().padding(1, 1)).unwrap();
            failures.extend(run_layer(&gemm_ctx(split, wg), &geo, [false, true, false], &mut rng));
            let x = ctx.upload(rng.array::<Ix4, _>(geo.input_shape()).view()).unwrap();
            let w = ctx.upload(rng.array::<Ix4, _>(geo.weight_shape()).view()).unwrap();
            let run = || ctx.download::<Ix4>(&ctx.forward(&x, &w, None, &geo.params).unwrap()).unwrap();
            let first = run();
            assert!((0..3).all(|_| run().iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits())), "{shape:?}");
        }
    }
    assert_eq!(tiles, 8);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
