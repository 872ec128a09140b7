//! The transposed convolution against the op it is built from: for each layer, the input gradient of
//! the convolution it is computed as (`ctx.input_grad` on `geo.conv`), the transposed layer without
//! a bias (the same program, plus the frame's pass where rows lie beyond the convolution's input),
//! and with a bias (always one `place` pass more, until the fused epilogue lands). The three run
//! interleaved, `REPS` rounds of one call each after a warm-up, each call timed to the end of its
//! result's read-back; the medians and their ratios are printed. Run with `cargo bench --bench
//! transposed` (`CONVGRAD_PROFILE` picks the profile).

use std::time::Instant;

use convgrad::verify::Rng;
use convgrad::{Context, ConvTranspose2dParams, Tensor};
use ndarray::{Array4, IxDyn};

const REPS: usize = 15;

fn main() {
    let ctx = match Context::new() {
        Ok(ctx) => ctx,
        Err(e) => panic!("the benchmarks need a wgpu adapter: {e}"),
    };
    println!(
        "convgrad transposed vs input gradient on {} ({}), {REPS} interleaved rounds",
        ctx.adapter_info().name,
        ctx.profile()
    );
    let d = ConvTranspose2dParams::new();
    let layers = [
        (
            "decoder 8×64×28² → 56², k3 s2 p1 op1",
            [8, 64, 28, 28],
            [64, 32, 3, 3],
            d.stride(2, 2).padding(1, 1).output_padding(1, 1),
        ),
        ("DCGAN 16×128×16² → 32², k4 s2 p1", [16, 128, 16, 16], [128, 64, 4, 4], d.stride(2, 2).padding(1, 1)),
        ("stride 1, 8×32×32², k3 p1", [8, 32, 32, 32], [32, 32, 3, 3], d.padding(1, 1)),
        ("rows beyond: d3 op2, 4×16×32²", [4, 16, 32, 32], [16, 16, 3, 3], d.dilation(3, 3).output_padding(2, 2)),
    ];
    println!(
        "{:<40} {:>12} {:>12} {:>12} {:>8} {:>8}",
        "layer", "igrad ms", "transp. ms", "+bias ms", "ratio", "+bias"
    );
    let mut rng = Rng::new(1);
    for (name, x_shape, w_shape, params) in layers {
        let geo = params.geometry(x_shape, w_shape).expect("a valid layer");
        let c = &geo.conv;
        let up = |a: Array4<f32>| ctx.upload(a.view()).unwrap();
        let x = up(rng.array(geo.input_shape()));
        let w = up(rng.array(geo.weight_shape()));
        let b = ctx.upload(rng.array::<ndarray::Ix1, _>(c.c).view()).unwrap();
        let timed = |f: &dyn Fn() -> Tensor| {
            let t0 = Instant::now();
            let y = f();
            std::hint::black_box(ctx.download::<IxDyn>(&y).unwrap());
            t0.elapsed().as_secs_f64() * 1e3
        };
        let igrad = || ctx.input_grad(&x, &w, [c.h, c.w], &c.params).unwrap();
        let plain = || ctx.conv_transpose(&x, &w, None, &params).unwrap();
        let biased = || ctx.conv_transpose(&x, &w, Some(&b), &params).unwrap();
        for f in [&igrad as &dyn Fn() -> Tensor, &plain, &biased] {
            timed(f);
            timed(f);
        }
        let mut ms = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..REPS {
            for (i, f) in [&igrad as &dyn Fn() -> Tensor, &plain, &biased].into_iter().enumerate() {
                ms[i].push(timed(f));
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let [a, p, q] = ms.map(|mut v| med(&mut v));
        println!("{name:<40} {a:>12.2} {p:>12.2} {q:>12.2} {:>8.2} {:>8.2}", p / a, q / a);
    }
}
