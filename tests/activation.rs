//! Every activation and its derivative on the device (`shaders/activation.wgsl`, run by
//! `Context::activate` and `Context::activation_grad`) against the `f64` reference
//! (`Activation::apply`, `Activation::derivative`) over a dense grid: steps of 1/128 over [−32, 32],
//! coarser steps out to ±120, the kinks of each activation and the values beside them, and ±0, ±∞,
//! NaN, the smallest and largest floats.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use convgrad::Activation;
use ndarray::{Array1, Ix1};

/// The grid for `act`: the dense part, the kinks and their neighbours, and the special values.
fn grid(act: &Activation) -> Vec<f32> {
    let mut v: Vec<f32> = (-32 * 128..=32 * 128).map(|i| i as f32 / 128.0).collect();
    v.extend((-240..=240).map(|i| i as f32 * 0.5));
    let [a, b] = act.params();
    let mut kinks = vec![0.0f32, 3.0, -3.0];
    match act {
        Activation::Clip { min, max } => kinks.extend([*min, *max]),
        Activation::HardSigmoid { .. } => kinks.extend([-b / a, (1.0 - b) / a]),
        Activation::Softplus { beta } => kinks.extend([20.0 / beta]),
        _ => {}
    }
    for k in kinks {
        v.extend([k, f32::from_bits(k.to_bits() + 1), f32::from_bits(k.to_bits().wrapping_sub(1)), k + 1e-3, k - 1e-3]);
    }
    v.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        1e-7,
        -1e-7,
        1e-3,
        -1e-3,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ]);
    v.retain(|x| !x.is_nan() || x.to_bits() == f32::NAN.to_bits());
    v
}

/// `got` within `rel·|want| + abs` of `want`, or both NaN, or the same infinity.
fn close(got: f32, want: f64, rel: f64, abs: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() {
        return f64::from(got) == want;
    }
    (f64::from(got) - want).abs() <= rel * want.abs() + abs
}

#[test]
fn every_activation_and_its_derivative_match_the_reference_on_a_dense_grid() {
    let mut failures = Vec::new();
    for class in ["cpu", "gpu"] {
        let ctx = common::path(&format!("auto/{class}"));
        for act in Activation::all() {
            let z = Array1::from(grid(&act));
            let zt = ctx.upload(z.view()).unwrap();
            let ones = ctx.upload(Array1::<f32>::ones(z.len()).view()).unwrap();
            let y: Array1<f32> = ctx.download::<Ix1>(&ctx.activate(&zt, &act).unwrap()).unwrap();
            let d: Array1<f32> = ctx.download::<Ix1>(&ctx.activation_grad(&ones, &zt, &act).unwrap()).unwrap();
            let (mut worst_y, mut worst_d) = (0usize, 0usize);
            for ((&zi, &yi), &di) in z.iter().zip(&y).zip(&d) {
                let zf = f64::from(zi);
                // WGSL's exp is within 3 + 2|x| ulp: the smooth activations' tolerance grows with
                // |z| as the exponent's does; the piecewise-linear ones are a rounding or two.
                let smooth = !matches!(
                    act,
                    Activation::Identity
                        | Activation::Relu
                        | Activation::Clip { .. }
                        | Activation::LeakyRelu { .. }
                        | Activation::HardSigmoid { .. }
                        | Activation::HardSwish
                );
                // The largest |argument| of an exp in the activation's form: its error grows with it.
                let [pa, _] = act.params().map(f64::from);
                let arg = match act {
                    Activation::Gelu => zf * zf / 2.0,
                    Activation::GeluTanh => 1.6 * (zf.abs() + 0.045 * zf.abs().powi(3)),
                    Activation::Tanh => 2.0 * zf.abs(),
                    Activation::Silu { .. } | Activation::Softplus { .. } => pa * zf.abs(),
                    _ => zf.abs(),
                };
                let scale = if arg.is_finite() { arg.min(120.0) } else { 120.0 };
                let rel = if smooth { 2e-6 + 2.0 * scale * 1.2e-7 } else { 4e-7 };
                // αz + β (hard sigmoid) is rounded before the clamp: its error is that of the terms.
                let abs_y = match act {
                    Activation::HardSigmoid { alpha, beta } => {
                        2.4e-7 * (f64::from(alpha) * zf.abs() + f64::from(beta).abs())
                    }
                    _ => 1e-35,
                };
                // Beside a kink, the f32 argument may round to the kink's other side.
                let near_kink = match act {
                    Activation::HardSigmoid { alpha, beta } => {
                        let u = f64::from(alpha) * zf + f64::from(beta);
                        u.abs() < 1e-6 || (u - 1.0).abs() < 1e-6
                    }
                    _ => false,
                };
                // Results below 1e-35 may be flushed to zero (an exp that is subnormal on the way).
                let (want_y, want_d) = (act.apply(zf), act.derivative(zf));
                // A subnormal input may be read as 0 (SwiftShader flushes them): either is right.
                let flushed = if zi != 0.0 && zi.abs() < f32::MIN_POSITIVE { Some(0.0f64.copysign(zf)) } else { None };
                let or_flushed = |got: f32, f: fn(&Activation, f64) -> f64, abs: f64| {
                    flushed.is_some_and(|z0| close(got, f(&act, z0), rel, abs))
                };
                if !close(yi, want_y, rel, abs_y) && !or_flushed(yi, Activation::apply, abs_y) {
                    worst_y += 1;
                    if worst_y <= 3 {
                        failures.push(format!("{class} {act}({zi:e}) = {yi:e}, reference {want_y:e}"));
                    }
                }
                // A derivative like s·(1 − s) cancels where s rounds to 1: an absolute error of
                // about one unit roundoff is what f32 can give there (PyTorch computes it alike).
                if !near_kink && !close(di, want_d, rel, 2.5e-7) && !or_flushed(di, Activation::derivative, 2.5e-7) {
                    worst_d += 1;
                    if worst_d <= 3 {
                        failures.push(format!("{class} {act}′({zi:e}) = {di:e}, reference {want_d:e}"));
                    }
                }
            }
            eprintln!(
                "{class} {act}: {} values, {worst_y} activations and {worst_d} derivatives out of bounds",
                z.len()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// PyTorch's conventions, value for value, at the kinks and limits.
#[test]
fn kinks_and_limits_are_pytorch_s() {
    let ctx = common::ctx();
    let cases: [(Activation, f32, f32, f32); 10] = [
        (Activation::Relu, 0.0, 0.0, 0.0),
        (Activation::LeakyRelu { alpha: 0.1 }, 0.0, 0.0, 0.1),
        (Activation::Clip { min: 0.0, max: 6.0 }, 6.0, 6.0, 0.0),
        (Activation::Clip { min: 0.0, max: 6.0 }, 0.0, 0.0, 0.0),
        (Activation::Elu { alpha: 0.5 }, 0.0, 0.0, 0.5),
        (Activation::Elu { alpha: 0.5 }, f32::NEG_INFINITY, -0.5, 0.0),
        (Activation::Softplus { beta: 1.0 }, 25.0, 25.0, 1.0),
        (Activation::Gelu, f32::NEG_INFINITY, 0.0, 0.0),
        (Activation::Silu { beta: 1.0 }, f32::INFINITY, f32::INFINITY, 1.0),
        (Activation::HardSwish, -3.0, 0.0, -0.5),
    ];
    for (act, z, y, d) in cases {
        let zt = ctx.upload(Array1::from(vec![z]).view()).unwrap();
        let one = ctx.upload(Array1::from(vec![1.0f32]).view()).unwrap();
        let got: Array1<f32> = ctx.download(&ctx.activate(&zt, &act).unwrap()).unwrap();
        let grad: Array1<f32> = ctx.download(&ctx.activation_grad(&one, &zt, &act).unwrap()).unwrap();
        assert_eq!((got[0], grad[0]), (y, d), "{act} at {z}");
    }
    let nan = ctx.upload(Array1::from(vec![f32::NAN]).view()).unwrap();
    for act in Activation::all() {
        let got: Array1<f32> = ctx.download(&ctx.activate(&nan, &act).unwrap()).unwrap();
        assert!(got[0].is_nan(), "{act}(NaN) = {}", got[0]);
    }
}

/// The activation's backward with the bias gradient in one pass (`Context::act_bias_grad`): dZ is
/// `activation_grad`'s and dB `bias_grad` of that dZ, both bit for bit; dZ within its bound of the
/// `f64` reference; the same bits run after run; in both layouts, and in batch chunks on a device
/// whose bindings hold 2 KiB.
#[test]
fn the_fused_backward_is_the_derivative_and_the_bias_gradient_in_one_pass() {
    use convgrad::Layout;
    use convgrad::verify::Rng;
    use ndarray::{Array4, Ix4};
    let small = common::small_device();
    let mut rng = Rng::new(33);
    let mut checked = 0;
    for (ctx, dims) in [(common::ctx(), [3, 5, 9, 11]), (common::ctx(), [2, 3, 40, 40]), (&small, [9, 3, 7, 5])] {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            for act in
                [Activation::Relu, Activation::Gelu, Activation::Silu { beta: 1.0 }, Activation::Elu { alpha: 0.5 }]
            {
                let shape = layout.activation(dims);
                let dy: Array4<f32> = rng.array(shape);
                let z: Array4<f32> = rng.array(shape).mapv(|v: f32| 4.0 * v);
                let (dyt, zt) = (ctx.upload(dy.view()).unwrap(), ctx.upload(z.view()).unwrap());
                let (dz, db) = ctx.act_bias_grad(&dyt, &zt, &act, layout).unwrap();
                let separate = ctx.activation_grad(&dyt, &zt, &act).unwrap();
                let dz_host: Array4<f32> = ctx.download::<Ix4>(&dz).unwrap();
                let sep: Array4<f32> = ctx.download::<Ix4>(&separate).unwrap();
                assert_eq!(dz_host.mapv(f32::to_bits), sep.mapv(f32::to_bits), "{act} {layout:?} {dims:?}: dZ");
                let db_host: Array1<f32> = ctx.download::<Ix1>(&db).unwrap();
                let via: Array1<f32> = ctx.download::<Ix1>(&ctx.bias_grad(&dz, layout).unwrap()).unwrap();
                assert_eq!(db_host.mapv(f32::to_bits), via.mapv(f32::to_bits), "{act} {layout:?} {dims:?}: dB");
                for ((&g, &d), &zz) in dz_host.iter().zip(dy.iter()).zip(z.iter()) {
                    let want = f64::from(d) * act.derivative(f64::from(zz));
                    assert!(
                        (f64::from(g) - want).abs() <= 2e-6 * want.abs() + 3e-7 * f64::from(d.abs()),
                        "{act}: {g} vs {want}"
                    );
                }
                let (dz2, db2) = ctx.act_bias_grad(&dyt, &zt, &act, layout).unwrap();
                assert_eq!(ctx.download::<Ix4>(&dz2).unwrap().mapv(f32::to_bits), dz_host.mapv(f32::to_bits));
                assert_eq!(ctx.download::<Ix1>(&db2).unwrap().mapv(f32::to_bits), db_host.mapv(f32::to_bits));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
}
