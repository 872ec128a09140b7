//! The filter-learning demo recovers its hidden filters: the end-to-end proof that the GPU forward pass
//! and weight gradient are right enough to train with.
#![cfg(not(target_arch = "wasm32"))]

use std::process::Command;

#[test]
fn demo_recovers_the_hidden_filters_and_draws_them() {
    let out_dir = std::env::temp_dir().join(format!("convgrad-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(env!("CARGO_BIN_EXE_convgrad"))
        .env("WGPU_BACKEND", std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "vulkan".into()))
        .env_remove("XDG_RUNTIME_DIR")
        .args(["demo", "--images", "4", "--image-size", "32", "--steps", "2000", "--output"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("recovered every filter"), "{stdout}");
    // Every filter's own error is printed and below 1e-3.
    for name in convgrad::synthetic::FILTER_NAMES {
        let line =
            stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
        let err: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
        assert!(err < 1e-3, "{name}: {err}");
    }
    // The loss falls at every reading: none rises, at the end or before it.
    let csv = std::fs::read_to_string(out_dir.join("history.csv")).unwrap();
    let losses: Vec<f64> = csv.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().parse().unwrap()).collect();
    assert!(losses.len() > 10, "{csv}");
    for (i, pair) in losses.windows(2).enumerate() {
        assert!(pair[1] < pair[0], "the loss rose at reading {}: {} → {}\n{csv}", i + 1, pair[0], pair[1]);
    }
    // No platform noise on a successful run (Mesa's device-selection layer without a display).
    assert!(!stderr.contains("error:"), "{stderr}");
    for pic in ["filters.svg", "loss.svg"] {
        let text = std::fs::read_to_string(out_dir.join(pic)).unwrap();
        assert!(text.starts_with("<svg") && text.len() > 1000, "{pic} is not a drawing");
    }
}
