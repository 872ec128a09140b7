//! The tuner on the device: it measures the candidates of the exact layer, keeps a checked pick in its
//! cache file, and a second context on the same cache runs the same plan and gives the same bits.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Rng;
use convgrad::bench::Op;
use convgrad::tune::Cache;
use convgrad::{Context, Conv2dGeometry, Conv2dParams, Layout, Strategy, TuneOptions, Tuning};
use ndarray::{Array4, Ix4};

fn quick() -> Tuning {
    Tuning::Tune(TuneOptions { budget: Duration::from_millis(100), max_rounds: 3, wall_clock: false })
}

fn temp_cache(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convgrad-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("tuned.txt")
}

fn context(mode: Tuning, path: &Path) -> Context {
    let c = Context::from_device(common::ctx().device().clone(), common::ctx().queue().clone());
    c.with_tuning(mode).with_tune_cache(Some(path.to_path_buf()))
}

fn bits(a: &Array4<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn a_tuned_choice_is_kept_and_a_second_context_on_the_cache_runs_it_to_the_bit() {
    let path = temp_cache("keep");
    let params = Conv2dParams::new().padding(1, 1);
    let geo = Conv2dGeometry::new(2, 8, [16, 16], 8, [3, 3], params).unwrap();
    let mut rng = Rng::new(5);
    let x: Array4<f32> = rng.array(geo.input_shape());
    let w: Array4<f32> = rng.array(geo.weight_shape());
    let tuned = context(quick(), &path);
    let y1 = tuned.conv2d(x.view(), w.view(), None, &params).unwrap();
    let plan1 = tuned.plan_forward(&geo).unwrap();
    let cache = Cache::load(&path);
    assert_eq!(cache.1, None);
    assert_eq!(cache.0.len(), 1, "one entry: the forward pass of this layer");
    // Another context on the same cache, never measuring: the same plan and the same bits.
    let cached = context(Tuning::Cached, &path);
    assert_eq!(cached.plan_forward(&geo).unwrap(), plan1);
    let y2 = cached.conv2d(x.view(), w.view(), None, &params).unwrap();
    assert_eq!(bits(&y1), bits(&y2));
    // A layer the cache lacks runs the planner's own plan with Cached, and tuning off is always it.
    let other = Conv2dGeometry::new(3, 8, [16, 16], 8, [3, 3], params).unwrap();
    let plain = Context::from_device(common::ctx().device().clone(), common::ctx().queue().clone());
    assert_eq!(cached.plan_forward(&other).unwrap(), plain.plan_forward(&other).unwrap());
    let off = context(Tuning::Off, &path);
    assert_eq!(off.plan_forward(&geo).unwrap(), plain.plan_forward(&geo).unwrap());
    // Once made, a choice does not change within the process, even when the layer is measured again.
    let again = tuned.tune(Op::Forward, &geo).unwrap();
    assert!(again.candidates.len() >= 2);
    assert_eq!(tuned.plan_forward(&geo).unwrap(), plan1);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn the_wall_clock_path_and_every_candidate_checked() {
    let path = temp_cache("wall");
    let ctx = context(
        Tuning::Tune(TuneOptions { budget: Duration::from_millis(100), max_rounds: 3, wall_clock: true }),
        &path,
    );
    let geo = Conv2dGeometry::new(1, 3, [20, 20], 4, [3, 3], Conv2dParams::new().stride(2, 2)).unwrap();
    for op in Op::ALL {
        let r = ctx.tune(op, &geo).unwrap();
        assert_eq!(r.timer, "wall clock");
        assert_eq!(r.candidates[0].strategy, Strategy::Auto);
        // Every candidate the planner offers runs this layer right: none is out.
        for c in &r.candidates {
            assert!(c.out.is_none() && c.median_ms.is_some_and(|m| m > 0.0), "{}: {:?}", c.plan, c.out);
        }
        let best = r.candidates.iter().filter_map(|c| c.median_ms).fold(f64::INFINITY, f64::min);
        assert!(r.candidates[r.pick].median_ms.unwrap() <= best * 1.03 + 1e-12);
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_corrupt_cache_is_set_aside_and_tuned_again_and_layouts_are_separate_entries() {
    let path = temp_cache("corrupt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "convgrad-tune-cache 1\nthis is not a line\n").unwrap();
    let ctx = context(quick(), &path);
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let params = Conv2dParams::new().padding_same().layout(layout);
        let geo = Conv2dGeometry::new(1, 4, [12, 12], 4, [3, 3], params).unwrap();
        let mut rng = Rng::new(9);
        let x = ctx.upload(rng.array::<Ix4, _>(geo.input_shape()).view()).unwrap();
        let w = ctx.upload(rng.array::<Ix4, _>(geo.weight_shape()).view()).unwrap();
        ctx.forward(&x, &w, None, &params).unwrap();
    }
    let (cache, warning) = Cache::load(&path);
    assert_eq!(warning, None, "rewritten whole");
    assert_eq!(cache.len(), 2, "nchw and nhwc: two entries");
    assert!(std::fs::read_to_string(&path).unwrap().contains(" nhwc\t"));
    assert!(PathBuf::from(format!("{}.corrupt", path.display())).exists());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
