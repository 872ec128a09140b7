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

/// A cache file of `entries` choices for adapters that are not this one: a large file widens every
/// window in which one writer could see another's half-done work.
fn large_cache(path: &Path, entries: usize) {
    let mut c = Cache::default();
    for i in 0..entries {
        let e = convgrad::tune::cache::Entry { strategy: Strategy::Reference, median_ms: i as f64 };
        c.insert(&format!("some other adapter {}", i % 7), &format!("forward n{i} c3 h8 w8"), e);
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    c.save(path).unwrap();
}

/// Two threads tuning on two contexts that share one cache file: no call fails (one thread's
/// `forward` returned `Error::Io` when the writers' temporary files had one name, by process), and
/// the file ends whole, with both threads' picks and every entry it had.
#[test]
fn two_contexts_tuning_on_one_cache_from_two_threads_never_fail_and_lose_nothing() {
    let path = temp_cache("threads");
    large_cache(&path, 20_000);
    let params = Conv2dParams::new().padding(1, 1);
    std::thread::scope(|s| {
        for t in 0..2 {
            let path = &path;
            s.spawn(move || {
                let ctx = context(quick(), path);
                let mut rng = Rng::new(t);
                for round in 0..2 {
                    // The same layer on both threads, then one of each thread's own.
                    let n = if round == 0 { 1 } else { 2 + t as usize };
                    let geo = Conv2dGeometry::new(n, 4, [8, 8], 4, [3, 3], params).unwrap();
                    let x = ctx.upload(rng.array::<Ix4, _>(geo.input_shape()).view()).unwrap();
                    let w = ctx.upload(rng.array::<Ix4, _>(geo.weight_shape()).view()).unwrap();
                    ctx.forward(&x, &w, None, &params).unwrap_or_else(|e| panic!("thread {t}, round {round}: {e}"));
                }
            });
        }
    });
    let (cache, warning) = Cache::load(&path);
    assert_eq!(warning, None);
    assert_eq!(cache.len(), 20_000 + 3, "every entry, the shared layer once and each thread's own");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Two processes (`convgrad tune`) on one cache file at once: both succeed and both picks are kept.
#[test]
fn two_processes_tuning_on_one_cache_keep_both_picks() {
    let path = temp_cache("processes");
    large_cache(&path, 20_000);
    let dir = path.parent().unwrap();
    let children: Vec<_> = (0..2)
        .map(|i| {
            let layers = dir.join(format!("layers{i}.txt"));
            std::fs::write(&layers, format!("{} 3 9 9 4 3 3 pad=1\n", i + 1)).unwrap();
            std::process::Command::new(env!("CARGO_BIN_EXE_convgrad"))
                .args(["tune", "--ops", "forward", "--budget-ms", "50", "--layers"])
                .arg(&layers)
                .arg("--cache")
                .arg(&path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "convgrad tune: {stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
    }
    let (cache, warning) = Cache::load(&path);
    assert_eq!(warning, None);
    assert_eq!(cache.len(), 20_000 + 2, "both processes' layers, and every entry the file had");
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs a tuned forward pass of a small layer on a context whose cache is `path`: the operation
/// succeeds whatever the cache path is.
fn forward_with_cache(path: &Path, mode: Tuning) -> Array4<f32> {
    let ctx = context(mode, path);
    let params = Conv2dParams::new();
    let mut rng = Rng::new(3);
    let x: Array4<f32> = rng.array((1, 2, 7, 7));
    let w: Array4<f32> = rng.array((3, 2, 3, 3));
    ctx.conv2d(x.view(), w.view(), None, &params).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A cache that cannot be written (its directory cannot be made) is a warning: the convolution
/// itself succeeds (it returned `Error::Io`).
#[test]
fn an_unwritable_cache_never_fails_the_operation() {
    let path = temp_cache("unwritable");
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    // A regular file where the cache's directory would be: no user, root included, can make it.
    std::fs::write(dir.join("file"), "not a directory").unwrap();
    let inside = dir.join("file").join("tuned.txt");
    forward_with_cache(&inside, quick());
    assert!(!inside.exists());
    let _ = std::fs::remove_dir_all(dir);
}

/// Paths that are not regular files (an endless device through a link, `/dev/full`, a directory)
/// and a file larger than any cache are refused with a warning and left as they were: the operation
/// runs, nothing is read past the bound, and nothing is renamed over them.
#[cfg(unix)]
#[test]
fn a_cache_that_is_not_a_regular_file_or_too_large_is_refused_and_left_alone() {
    let path = temp_cache("special");
    let dir = path.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    for device in ["/dev/zero", "/dev/full"] {
        let link = dir.join(format!("{}.txt", &device[5..]));
        std::os::unix::fs::symlink(device, &link).unwrap();
        forward_with_cache(&link, quick());
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{device}: link replaced");
        assert_eq!(std::fs::read_link(&link).unwrap(), PathBuf::from(device));
        let (c, warning) = Cache::load(&link);
        assert!(c.is_empty() && warning.unwrap().contains("not a regular file"));
    }
    let sub = dir.join("a-directory");
    std::fs::create_dir_all(&sub).unwrap();
    forward_with_cache(&sub, quick());
    assert!(sub.is_dir());
    let big = dir.join("big.txt");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(convgrad::tune::cache::MAX_FILE_BYTES + 1).unwrap();
    forward_with_cache(&big, quick());
    assert_eq!(std::fs::metadata(&big).unwrap().len(), convgrad::tune::cache::MAX_FILE_BYTES + 1);
    assert!(Cache::load(&big).1.unwrap().contains("larger than"));
    // Nothing of ours left beside them but the writers' lock files.
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.ends_with(".tmp") && !name.ends_with(".corrupt"), "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A well-formed entry that names a plan the layer cannot run (vec4 tiles for a 13-tap row, which
/// they have no variant of): dropped with a warning and the layer chosen again, never
/// `Error::Unsupported`; in `Tune` mode the new pick replaces it in the file.
#[test]
fn a_stale_entry_is_dropped_and_the_layer_tuned_again() {
    let path = temp_cache("stale");
    let params = Conv2dParams::new();
    let geo = Conv2dGeometry::new(1, 2, [7, 20], 3, [3, 13], params).unwrap();
    let probe = context(Tuning::Cached, &path);
    let vec4 = Strategy::Force(convgrad::Algorithm::Vec4Tile);
    assert!(probe.twin().with_strategy(vec4).plan_forward(&geo).is_err(), "the test needs a plan the layer refuses");
    let mut c = Cache::default();
    let fp = convgrad::tune::fingerprint(probe.adapter_info(), probe.profile());
    let key = convgrad::tune::LayerKey::new(Op::Forward, &geo);
    c.insert(&fp, key.as_str(), convgrad::tune::cache::Entry { strategy: vec4, median_ms: 1.0 });
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    c.save(&path).unwrap();
    let mut rng = Rng::new(4);
    let x: Array4<f32> = rng.array(geo.input_shape());
    let w: Array4<f32> = rng.array(geo.weight_shape());
    let want = convgrad::reference::forward(x.view(), w.view(), None, &params).unwrap();
    for mode in [Tuning::Cached, quick()] {
        let ctx = context(mode, &path);
        let y = ctx.conv2d(x.view(), w.view(), None, &params).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let err = y.iter().zip(want.iter()).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-4, "{mode:?}: {err}");
    }
    let (after, warning) = Cache::load(&path);
    assert_eq!(warning, None);
    let kept = after.get(&fp, key.as_str()).expect("the layer tuned again and kept").strategy;
    assert_ne!(kept, vec4);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
