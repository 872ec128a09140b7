//! Plan tables: layer × profile × strategy → plan, asserted without an adapter.

use std::collections::HashSet;

use super::*;
use crate::Conv2dParams;
use crate::bench::suite;
use crate::plan::variant::{Sharing, Variant};
use crate::verify::edge_layers;

/// lavapipe as convgrad sees it: a CPU adapter with subgroups of 8 and 128 MiB bindings.
fn lavapipe() -> AdapterProfile {
    AdapterProfile::new(true, Some((8, 8)), 128 << 20, None)
}

/// A discrete GPU: subgroups of 32, 2 GiB bindings.
fn discrete() -> AdapterProfile {
    AdapterProfile::new(false, Some((32, 32)), 2 << 30, None)
}

/// The GPU profile forced on lavapipe, as `CONVGRAD_PROFILE=gpu` makes it.
fn lavapipe_as_gpu() -> AdapterProfile {
    AdapterProfile::new(true, Some((8, 8)), 128 << 20, Some(DeviceClass::Gpu))
}

/// SwiftShader as convgrad sees it: a CPU adapter with subgroups of 4 and a compiler that wants short
/// basic blocks.
fn swiftshader() -> AdapterProfile {
    AdapterProfile::new(true, Some((4, 4)), 1 << 30, None).for_driver("SwiftShader Device (Subzero)")
}

fn layers() -> Vec<(String, Conv2dGeometry)> {
    let edges = edge_layers().into_iter().map(|(label, (n, c, hw, k, st, params))| {
        (label.to_string(), Conv2dGeometry::new(n, c, hw, k, st, params).unwrap())
    });
    let standard = suite("standard").unwrap().into_iter().map(|s| (s.name.to_string(), s.geo));
    edges.chain(standard).collect()
}

fn variants_of(geo: &Conv2dGeometry, profile: &AdapterProfile, strategy: Strategy) -> Vec<Variant> {
    let mut out = Vec::new();
    match forward(geo, profile, strategy) {
        Ok(ForwardPlan::Tiled(t)) => out.push(t.variant),
        Ok(ForwardPlan::Gemm(g)) => out.push(g.variant()),
        _ => {}
    }
    match weight_grad(geo, profile, strategy) {
        Ok(WeightGradPlan::Tiled(t)) => out.push(t.variant),
        Ok(WeightGradPlan::Gemm(g)) => out.push(g.variant()),
        _ => {}
    }
    match input_grad(geo, profile, strategy) {
        Ok(InputGradPlan::Tiled(t)) => out.push(t.tiles.variant),
        Ok(InputGradPlan::Gemm(g)) => out.push(g.variant()),
        _ => {}
    }
    out
}

/// A discrete GPU offering 32 KiB of workgroup memory, as most native adapters do.
fn discrete_32k() -> AdapterProfile {
    discrete().with_workgroup_bytes(32 * 1024)
}

/// Every tiled variant the planner emits for the edge layers and the standard suite, on the CPU and
/// GPU profiles, under every named strategy.
pub(crate) fn planned_variants() -> Vec<Variant> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (_, geo) in layers() {
        for profile in [lavapipe(), lavapipe_as_gpu(), discrete(), discrete_32k(), swiftshader()] {
            // The named strategies and every tuning candidate (double-buffered tiles, other depths).
            let tuned = [Op::Forward, Op::WeightGrad, Op::InputGrad]
                .into_iter()
                .flat_map(|op| crate::plan::candidates::candidates(op, &geo, &profile))
                .map(|(s, _)| s);
            for strategy in Strategy::NAMED.into_iter().chain(tuned) {
                for v in variants_of(&geo, &profile, strategy) {
                    if seen.insert(v) {
                        out.push(v);
                    }
                }
            }
        }
    }
    out
}

fn table(profile: &AdapterProfile, strategy: Strategy) -> Vec<String> {
    suite("standard")
        .unwrap()
        .iter()
        .map(|s| {
            let show = |r: Result<String>| r.unwrap_or_else(|e| format!("error: {e}"));
            format!(
                "{} | {} | {} | {}",
                s.name,
                show(forward(&s.geo, profile, strategy).map(|p| p.to_string())),
                show(weight_grad(&s.geo, profile, strategy).map(|p| p.to_string())),
                show(input_grad(&s.geo, profile, strategy).map(|p| p.to_string())),
            )
        })
        .collect()
}

#[test]
fn standard_layers_on_lavapipe_share_loads_in_subgroups() {
    let rows = table(&lavapipe(), Strategy::Auto);
    assert_eq!(
        rows[2],
        "resnet_8x64x56x56_k64_3x3_p1 | vec4 16x16 t3, padded copy, subgroup-shared, vec4 stores; 4x56x4 tiles \
         | vec4 16 filters x 3 rows t3, subgroup-shared; 4x64 tiles, split-K 2 x 224 rows \
         | dY framed, vec4 16x16 t3, padded copy, subgroup-shared, vec4 stores; 4x56x4 tiles"
    );
    // The single-channel input gradients: several output rows per tile, dY read in place.
    assert!(
        rows[0].ends_with("| dY in place, vec4 1x16x4 rows t5, masked, subgroup-shared, vec4 stores; 1x64x16 tiles")
    );
    // The strided stem: dY read in place, only its data rows and columns.
    assert!(rows[4].ends_with(
        "| dY in place, vec4 3x16 t7, masked, subgroup-shared, vec4 stores, column step 2, row step 2; 1x224x14 tiles"
    ));
}

#[test]
fn the_gpu_profile_runs_the_gemm_kernels() {
    for profile in [discrete(), lavapipe_as_gpu()] {
        let rows = table(&profile, Strategy::Auto);
        assert!(rows.iter().all(|r| r.matches("gemm").count() == 3), "{rows:#?}");
        assert_eq!(
            rows[2],
            "resnet_8x64x56x56_k64_3x3_p1 | gemm 64x64x16 (8x8), vec4 weights \
             | gemm 64x64x16 (8x8); 1x9 tiles, split-K 114 x 221 columns \
             | gemm 64x64x16 (8x8) by stride phase"
        );
        // One input channel: the thin tile, 4 rows of which the input gradient uses one; eight
        // filters: the narrow one.
        assert!(rows[0].ends_with("| gemm 4x192x16 (4x3) by stride phase"), "{}", rows[0]);
        assert!(rows[0].starts_with("seed_1x1x256x256_k8_5x5 | gemm 16x128x16 (4x8) |"), "{}", rows[0]);
    }
    // Where the adapter offers 32 KiB, the large tile stages 32 reduction steps per round.
    assert!(
        table(&discrete_32k(), Strategy::Auto)[2].starts_with("resnet_8x64x56x56_k64_3x3_p1 | gemm 64x64x32 (8x8)")
    );
    // No tiled variant planned for the GPU class shares a subgroup's loads.
    for (_, geo) in layers() {
        for strategy in Strategy::ALL {
            for v in variants_of(&geo, &lavapipe_as_gpu(), strategy) {
                let shares = match v {
                    Variant::ForwardVec4(f) => f.share == Sharing::Subgroup,
                    Variant::WeightGradVec4 { share, .. } => share == Sharing::Subgroup,
                    _ => false,
                };
                assert!(!shares, "{v:?}");
            }
        }
    }
}

#[test]
fn forced_algorithms_run_every_layer_they_can_and_say_why_not_otherwise() {
    let p = lavapipe();
    let register = Strategy::Force(Algorithm::RegisterTile);
    let vec4 = Strategy::Force(Algorithm::Vec4Tile);
    for (label, geo) in layers() {
        assert_eq!(forward(&geo, &p, Strategy::Reference), Ok(ForwardPlan::Direct));
        assert!(matches!(weight_grad(&geo, &p, Strategy::Reference), Ok(WeightGradPlan::Direct(_))), "{label}");
        assert_eq!(input_grad(&geo, &p, Strategy::Reference), Ok(InputGradPlan::Direct));
        // The scalar register tiles run every forward pass and weight gradient.
        assert!(
            matches!(forward(&geo, &p, register), Ok(ForwardPlan::Tiled(t)) if matches!(t.variant, Variant::Forward { .. })),
            "{label}"
        );
        assert!(
            matches!(weight_grad(&geo, &p, register), Ok(WeightGradPlan::Tiled(t)) if matches!(t.variant, Variant::WeightGrad { .. })),
            "{label}"
        );
        // A forced vec4 tile either runs the vec4 kernel or is refused with a reason, never falls back.
        match forward(&geo, &p, vec4) {
            Ok(ForwardPlan::Tiled(t)) => assert!(matches!(t.variant, Variant::ForwardVec4(_)), "{label}"),
            Err(Error::Unsupported { .. }) => assert!(geo.t > 11 || forward::window(&geo).is_none(), "{label}"),
            other => panic!("{label}: {other:?}"),
        }
        if let Ok(WeightGradPlan::Tiled(t)) = weight_grad(&geo, &p, vec4) {
            assert!(matches!(t.variant, Variant::WeightGradVec4 { .. }), "{label}");
        }
    }
    // Padding beyond the dilated kernel: only the gather kernel runs the input gradient.
    let geo = Conv2dGeometry::new(1, 1, [3, 3], 1, [2, 2], crate::Conv2dParams::new().padding(3, 3)).unwrap();
    assert_eq!(input_grad(&geo, &p, Strategy::Auto), Ok(InputGradPlan::Direct));
    for forced in [register, vec4] {
        assert!(matches!(input_grad(&geo, &p, forced), Err(Error::Unsupported { .. })));
    }
    // Kernel rows of 13 taps have no vec4 variant.
    let wide = Conv2dGeometry::new(1, 2, [20, 40], 3, [3, 13], crate::Conv2dParams::new()).unwrap();
    assert!(
        matches!(forward(&wide, &p, Strategy::Auto), Ok(ForwardPlan::Tiled(t)) if matches!(t.variant, Variant::Forward { .. }))
    );
    let e = forward(&wide, &p, vec4).unwrap_err();
    assert!(e.to_string().contains("vec4-tile") && e.to_string().contains("11 taps"), "{e}");
}

#[test]
fn forced_gemm_runs_every_layer_on_every_profile_and_refuses_too_little_workgroup_memory() {
    for (label, geo) in layers() {
        for profile in [lavapipe(), swiftshader(), discrete()] {
            for strategy in Strategy::NAMED.into_iter().filter(|s| s.name().starts_with("gemm")) {
                assert!(matches!(forward(&geo, &profile, strategy), Ok(ForwardPlan::Gemm(_))), "{label} {strategy}");
                assert!(matches!(weight_grad(&geo, &profile, strategy), Ok(WeightGradPlan::Gemm(_))), "{label}");
                // Whatever the padding: the GEMM input gradient gathers dY phase by phase.
                assert!(matches!(input_grad(&geo, &profile, strategy), Ok(InputGradPlan::Gemm(_))), "{label}");
            }
        }
    }
    let geo = Conv2dGeometry::new(1, 1, [3, 3], 1, [2, 2], crate::Conv2dParams::new().padding(3, 3)).unwrap();
    assert!(matches!(input_grad(&geo, &discrete(), Strategy::Auto), Ok(InputGradPlan::Gemm(_))));
    let tiny = discrete().with_workgroup_bytes(2048);
    let e = forward(&geo, &tiny, Strategy::Auto).unwrap_err();
    assert!(matches!(e, Error::Unsupported { algorithm: "gemm", .. }), "{e}");
}

/// The GEMM weight gradient's split: ranges of at most `gemm::RANGE` columns, enough workgroups
/// for a GPU, the partial tiles within one binding.
#[test]
fn gemm_splits_bound_the_range_and_fill_the_gpu() {
    for (label, geo) in layers() {
        for profile in [discrete(), lavapipe_as_gpu()] {
            let Ok(WeightGradPlan::Gemm(g)) = weight_grad(&geo, &profile, Strategy::Auto) else { panic!("{label}") };
            let cols = geo.n * geo.p * geo.q;
            assert!(g.chunk <= gemm::RANGE && g.splits * g.chunk >= cols && (g.splits - 1) * g.chunk < cols, "{label}");
            assert!(
                g.splits * geo.k * geo.channels_per_group() * geo.s * geo.t * 4 <= profile.max_binding_bytes as usize
            );
            let tiles = geo.params.groups * g.mtiles * g.ntiles;
            assert!(
                tiles * g.splits >= profile.gemm_split_target().min(tiles * cols.div_ceil(4 * g.tile.bk)),
                "{label}"
            );
        }
    }
}

#[test]
fn batch_chunks_fit_one_binding() {
    let geo = Conv2dGeometry::new(64, 64, [96, 96], 2, [3, 3], crate::Conv2dParams::new().padding(1, 1)).unwrap();
    let plan = forward(&geo, &lavapipe(), Strategy::Auto).unwrap();
    let per = plan.per_sample(&geo);
    let nb = batch_chunk(&geo, per, &lavapipe()).unwrap();
    assert!(nb < 64 && nb * per * 4 <= 128 << 20 && (nb + 1) * per * 4 > 128 << 20, "{nb} × {per}");
    assert!(matches!(batch_chunk(&geo, usize::MAX / 8, &lavapipe()), Err(Error::DeviceLimit { .. })));
}

#[test]
fn swiftshader_gets_the_several_row_tile_fenced_and_no_subgroup_sharing() {
    let rows = table(&swiftshader(), Strategy::Auto);
    assert!(
        rows[0].ends_with("| dY in place, vec4 1x16x4 rows fenced t5, masked, vec4 stores; 1x64x16 tiles"),
        "{}",
        rows[0]
    );
    assert!(rows.iter().all(|r| !r.contains("subgroup")), "{rows:#?}");
    assert!(table(&lavapipe(), Strategy::Auto).iter().all(|r| !r.contains("fenced")));
    assert!(swiftshader().to_string().contains(", fenced basic blocks, f16 by bits"), "{}", swiftshader());
}

/// Channels-last transposes: tiles through workgroup memory for the GPU class where the adapter
/// offers the 1,088 bytes (WebGPU's guaranteed 16 KiB does), rows otherwise and on CPU adapters.
#[test]
fn transpose_kernel_per_profile() {
    assert_eq!(transpose(&lavapipe()), Transpose::Rows);
    assert_eq!(transpose(&swiftshader()), Transpose::Rows);
    assert_eq!(transpose(&discrete()), Transpose::Tiles);
    assert_eq!(transpose(&lavapipe_as_gpu()), Transpose::Tiles);
    assert_eq!(transpose(&discrete().with_workgroup_bytes(1024)), Transpose::Rows);
    // A browser's fallback adapter: a CPU, unnamed, fenced, WebGPU's limits.
    let web = AdapterProfile::new(true, None, 128 << 20, None).fenced();
    assert_eq!((web.workgroup_bytes, web.fence_blocks, transpose(&web)), (16 * 1024, true, Transpose::Rows));
}

/// Layers built to reach the loop budget of `plan::loops`: planes of 65,535, 65,536 and 589,824
/// positions (rows and columns of each), in both layouts, and reductions over many channels.
fn long_loop_layers() -> Vec<(String, Conv2dGeometry)> {
    let mut out = Vec::new();
    for layout in [crate::Layout::Nchw, crate::Layout::Nhwc] {
        for hw in [[255, 257], [256, 256], [768, 768], [1, 65_536], [65_536, 1], [1, 100_000]] {
            let params = Conv2dParams::new().padding_same().layout(layout);
            let (s, t) = (hw[0].min(3), hw[1].min(3));
            out.push((format!("{hw:?} {layout:?}"), Conv2dGeometry::new(1, 3, hw, 4, [s, t], params).unwrap()));
        }
    }
    for c in [2_000, 7_000, 30_000] {
        out.push((format!("{c} channels"), Conv2dGeometry::new(1, c, [3, 3], 2, [3, 3], Conv2dParams::new()).unwrap()));
    }
    out
}

/// Every plan any strategy makes, on every profile, keeps each invocation within the loop budget; a
/// strategy that cannot is a typed error (`Auto` only where no family can: the 7,000 and 30,000 channel
/// layers on some profiles), never a plan over the budget.
#[test]
fn every_plan_keeps_its_loops_within_the_budget() {
    let profiles = [lavapipe(), lavapipe_as_gpu(), swiftshader(), discrete(), discrete_32k()];
    for (label, geo) in layers().into_iter().chain(long_loop_layers()) {
        for p in &profiles {
            for strategy in Strategy::NAMED {
                let at = format!("{label}, {strategy}, {}", p.class.name());
                let over = |e: &Error| matches!(e, Error::Unsupported { reason, .. } if *reason == loops::OVER_BUDGET);
                match forward(&geo, p, strategy) {
                    Ok(plan) => assert!(plan.loop_trips(&geo) <= loops::LOOP_BUDGET, "{at}: forward {plan}"),
                    Err(e) => assert!(strategy != Strategy::Auto || (over(&e) && geo.c >= 7_000), "{at}: {e}"),
                }
                match weight_grad(&geo, p, strategy) {
                    Ok(plan) => assert!(plan.loop_trips(&geo) <= loops::LOOP_BUDGET, "{at}: weight grad {plan}"),
                    Err(e) => assert!(strategy != Strategy::Auto || (over(&e) && geo.c >= 7_000), "{at}: {e}"),
                }
                match input_grad(&geo, p, strategy) {
                    Ok(plan) => assert!(plan.loop_trips(&geo) <= loops::LOOP_BUDGET, "{at}: input grad {plan}"),
                    Err(e) => assert!(strategy != Strategy::Auto || (over(&e) && geo.c >= 7_000), "{at}: {e}"),
                }
            }
        }
    }
}

/// The loop counts themselves, at the boundaries: what each kernel's invocation runs.
#[test]
fn loop_counts_at_the_boundaries() {
    // The bias gradient: ranges of 4,096 positions, 32,768 ranges at most.
    assert_eq!(loops::bias_grad(65_535), ReductionSplit { splits: 16, chunk: 4096 });
    assert_eq!(loops::bias_grad(589_824), ReductionSplit { splits: 144, chunk: 4096 });
    assert_eq!(loops::bias_grad(3), ReductionSplit { splits: 1, chunk: 3 });
    assert_eq!(loops::bias_grad(1 << 30).splits, loops::MAX_SPLITS);
    assert!(loops::split_sum_trips(loops::MAX_SPLITS) <= loops::LOOP_BUDGET);
    // The direct weight gradient of a 768×768 plane: rows of 768 products, 77 per range, 10 ranges;
    // one range where the whole reduction fits.
    let geo = Conv2dGeometry::new(1, 3, [768, 768], 4, [3, 3], Conv2dParams::new().padding(1, 1)).unwrap();
    let Ok(WeightGradPlan::Direct(r)) = weight_grad(&geo, &lavapipe(), Strategy::Reference) else { panic!() };
    assert_eq!(r, ReductionSplit { splits: 10, chunk: 77 });
    assert_eq!(loops::row_trips(77, 768), 59_368);
    let small = Conv2dGeometry::new(2, 3, [16, 16], 4, [3, 3], Conv2dParams::new()).unwrap();
    let Ok(WeightGradPlan::Direct(r)) = weight_grad(&small, &lavapipe(), Strategy::Reference) else { panic!() };
    assert_eq!(r.splits, 1);
    // The direct forward pass over 2,000 channels of 3×3 taps runs 2,000 · (2 + 3·5) + 1 iterations, and
    // over 7,000, 119,001: over the budget, so the reference kernel refuses it.
    let wide = Conv2dGeometry::new(1, 7_000, [3, 3], 2, [3, 3], Conv2dParams::new()).unwrap();
    assert_eq!(loops::direct_trips(2_000, 3, 3), 34_001);
    assert_eq!(loops::direct_trips(7_000, 3, 3), 119_001);
    assert!(matches!(forward(&wide, &lavapipe(), Strategy::Reference), Err(Error::Unsupported { .. })));
}

/// The tuner's candidates: for every layer, op and profile, a bounded list of distinct plans that
/// starts with the `Auto` plan, each plan what its strategy gives.
#[test]
fn candidates_start_with_auto_and_are_distinct_plans() {
    use crate::plan::candidates::{MAX_CANDIDATES, candidates, plan_text};
    let profiles = [lavapipe(), lavapipe_as_gpu(), swiftshader(), discrete(), discrete_32k()];
    for (label, geo) in layers() {
        for p in &profiles {
            for op in Op::ALL {
                let list = candidates(op, &geo, p);
                let at = format!("{label}, {}, {}", op.name(), p.class.name());
                assert!(!list.is_empty() && list.len() <= MAX_CANDIDATES, "{at}: {}", list.len());
                assert_eq!(list[0].0, Strategy::Auto, "{at}");
                assert_eq!(Some(list[0].1.clone()), plan_text(op, &geo, p, Strategy::Auto), "{at}");
                for (i, (s, plan)) in list.iter().enumerate() {
                    assert_eq!(Some(plan.clone()), plan_text(op, &geo, p, *s), "{at}: {s}");
                    assert!(list[..i].iter().all(|(_, q)| q != plan), "{at}: {plan} twice");
                    assert_eq!(Strategy::from_key(&s.key()), Ok(*s), "{at}: {s}");
                }
            }
        }
    }
    // The resnet layer on lavapipe: the register tiles (Auto's are the vec4 ones), the GEMM tiles (the
    // planner's own is the large one, 16 deep in 16 KiB; 8 deep too, 32 does not fit; double-buffered,
    // which makes it 8 deep), the direct kernels, and the weight gradient's split counts.
    let resnet = suite("standard").unwrap().into_iter().find(|s| s.name.starts_with("resnet")).unwrap().geo;
    let names = |op| candidates(op, &resnet, &lavapipe()).into_iter().map(|(s, _)| s.key()).collect::<Vec<_>>();
    assert_eq!(
        names(Op::Forward),
        [
            "auto",
            "register-tile",
            "gemm",
            "gemm-narrow",
            "gemm-small",
            "gemm-thin",
            "gemm-huge",
            "reference",
            "gemm-large:double",
            "gemm-large:depth=8"
        ]
    );
    assert!(names(Op::WeightGrad).iter().any(|k| k.contains(":splits=")), "{:?}", names(Op::WeightGrad));
}

/// A forced reduction depth (0: the shape's own) and double buffering: the tile's own shape at that
/// depth where its loads divide among its invocations and its slabs (both pairs, when
/// double-buffered) fit; a typed error otherwise.
#[test]
fn forced_depths_give_their_tile_or_a_typed_error() {
    use std::num::NonZeroU32;
    let geo = Conv2dGeometry::new(2, 16, [12, 12], 32, [3, 3], Conv2dParams::new().padding(1, 1)).unwrap();
    for (shape, depth, double, want) in [
        (GemmShape::Large, 8, false, Some("gemm 64x64x8 (8x8)")),
        (GemmShape::Large, 32, false, Some("gemm 64x64x32 (8x8)")),
        (GemmShape::Narrow, 8, false, Some("gemm 16x128x8 (4x8)")),
        (GemmShape::Small, 32, false, Some("gemm 32x32x32 (4x4)")),
        // 4 rows × 8 steps is half a load per invocation.
        (GemmShape::Thin, 8, false, None),
        (GemmShape::Thin, 32, false, Some("gemm 4x192x32 (4x3)")),
        // 256 invocations: 128 × 8 is 4 loads each; 32 steps of two 128-wide slabs are 33,024 bytes.
        (GemmShape::Huge, 0, false, Some("gemm 128x128x16 (8x8)")),
        (GemmShape::Huge, 8, false, Some("gemm 128x128x8 (8x8)")),
        (GemmShape::Huge, 32, false, None),
        // Two pairs of slabs: the large tile's 32 steps (33,280 bytes) do not fit 32 KiB, so it is
        // made 16 deep, unless 32 is forced.
        (GemmShape::Large, 0, true, Some("gemm 64x64x16 (8x8), double-buffered")),
        (GemmShape::Large, 32, true, None),
        (GemmShape::Large, 16, true, Some("gemm 64x64x16 (8x8), double-buffered")),
        (GemmShape::Small, 0, true, Some("gemm 32x32x16 (4x4), double-buffered")),
        (GemmShape::Huge, 8, true, Some("gemm 128x128x8 (8x8), double-buffered")),
    ] {
        let choice = GemmChoice { shape: Some(shape), splits: None, depth: NonZeroU32::new(depth), double };
        let s = Strategy::Force(Algorithm::Gemm(choice));
        assert_eq!(Strategy::from_key(&s.key()), Ok(s));
        match (forward(&geo, &discrete_32k(), s), want) {
            (Ok(p), Some(w)) => assert!(p.to_string().starts_with(w), "{p} vs {w}"),
            (Err(Error::Unsupported { .. }), None) => {}
            (r, w) => panic!("{shape:?} depth {depth} double {double}: {r:?}, wanted {w:?}"),
        }
    }
    // 32 steps of the large tile stage 16,640 bytes of slabs: over WebGPU's 16 KiB.
    let deep = GemmChoice { shape: Some(GemmShape::Large), splits: None, depth: NonZeroU32::new(32), double: false };
    assert!(
        forward(&geo, &lavapipe_as_gpu().with_workgroup_bytes(16 * 1024), Strategy::Force(Algorithm::Gemm(deep)))
            .is_err()
    );
}

/// The GEMM weight gradient stages dY as vec4s exactly where four columns in a row stay in one plane
/// and one range: `P·Q` and the range's length multiples of 4.
#[test]
fn the_gemm_weight_gradient_loads_dy_by_vec4_where_planes_and_ranges_allow() {
    use std::num::NonZeroU32;
    let plan = |hw: [usize; 2], splits| {
        let geo = Conv2dGeometry::new(2, 16, hw, 32, [3, 3], Conv2dParams::new().padding(1, 1)).unwrap();
        let choice = GemmChoice { splits: NonZeroU32::new(splits), ..GemmChoice::shape(GemmShape::Large) };
        weight_grad(&geo, &discrete_32k(), Strategy::Force(Algorithm::Gemm(choice))).unwrap().to_string()
    };
    // 12 × 12 = 144 columns a plane, 288 in all: one range of 288, or 4 of 72: vec4s.
    assert_eq!(plan([12, 12], 1), "gemm 64x64x32 (8x8), vec4 dY; 1x3 tiles, split-K 1 x 288 columns");
    assert!(plan([12, 12], 4).contains("vec4 dY"));
    // 5 ranges of 58 columns, or planes of 11 × 12 = 132 but ranges of 11 × 12 × 2 / 3 = 88: only
    // the latter; planes of 11 × 11 never.
    assert!(!plan([12, 12], 5).contains("vec4"));
    assert!(plan([11, 12], 3).contains("vec4 dY"));
    assert!(!plan([11, 11], 1).contains("vec4"));
}
