//! The soak test, alone in its own process so that its memory figures are its own.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::Rng;
use convgrad::{Context, Conv2dGeometry, Conv2dParams};
use ndarray::Ix4;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4)
}

/// 1,000 calls of mixed ops and shapes: resident memory settles instead of growing with the calls.
#[test]
fn soak_memory_settles() {
    let ctx = Context::new().unwrap();
    let mut rng = Rng::new(1000);
    let shapes: Vec<Conv2dGeometry> = (0..5)
        .map(|i| {
            let params = Conv2dParams::new().padding(i % 2, i % 2).stride(1 + i % 2, 1);
            Conv2dGeometry::new(1 + i % 3, 1 + i, [12 + 3 * i, 11 + i], 2 + i, [3, 1 + i % 3], params).unwrap()
        })
        .collect();
    let inputs: Vec<_> = shapes
        .iter()
        .map(|g| {
            (
                rng.array::<Ix4, _>(g.input_shape()),
                rng.array::<Ix4, _>(g.weight_shape()),
                rng.array::<Ix4, _>(g.output_shape()),
            )
        })
        .collect();
    let call = |i: usize| {
        let (g, (x, w, dy)) = (&shapes[i % 5], &inputs[i % 5]);
        let p = &g.params;
        match i % 4 {
            0 => drop(ctx.conv2d(x.view(), w.view(), None, p).unwrap()),
            1 => drop(ctx.conv2d_weight_grad(x.view(), dy.view(), [g.s, g.t], p).unwrap()),
            2 => drop(ctx.conv2d_input_grad(dy.view(), w.view(), [g.h, g.w], p).unwrap()),
            _ => drop(ctx.conv2d_bias_grad(dy.view(), convgrad::Layout::Nchw).unwrap()),
        }
    };
    for i in 0..200 {
        call(i);
    }
    let warm = rss_kib();
    for i in 200..600 {
        call(i);
    }
    let middle = rss_kib();
    for i in 600..1000 {
        call(i);
    }
    let end = rss_kib();
    eprintln!("soak: resident memory {warm} KiB after 200 calls, {middle} KiB after 600, {end} KiB after 1000");
    // The last 400 calls may not add more than a small fraction of what the process holds.
    assert!(end <= middle + middle / 20 + 4096, "memory keeps growing: {warm} → {middle} → {end} KiB");
}
