//! Half precision: the device's conversions bit for bit against the `half` crate and `convgrad::elem`
//! (itself tested against the crate over every f16 and bf16 and 12.6 million f32 patterns), on every
//! path the adapter offers; then the four operations on f16 and bf16 tensors against the f64 reference over
//! the rounded inputs, with the bound the issue gives.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::ctx;
use convgrad::elem::{f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits};
use convgrad::{Context, Conv2dParams, DeviceClass, Elem, Error, HalfPath, Layout, bf16, f16};
use ndarray::{Array1, Array4, Ix1, Ix4};

/// A context over the test adapter for each half path it offers.
fn contexts() -> Vec<(HalfPath, Context)> {
    let base = ctx();
    let p = base.profile();
    let paths = HalfPath::offered(p.f16_native, p.f16_packed);
    eprintln!("half paths offered: {paths:?}");
    paths.into_iter().map(|path| (path, base.twin().with_half_path(path).unwrap())).collect()
}

/// f32 bit patterns covering every exponent and both signs, with the low bits that decide a rounding
/// to f16 and to bf16 (exact, just below, at and above each tie, for both parities), and the named
/// cases: ±0, the smallest subnormals, ±65504 and just beyond, the tie at 65520, ±∞, NaNs.
fn patterns() -> Vec<u32> {
    const LOW: [u32; 10] = [0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fff, 0x8000, 0x18001];
    let mut v: Vec<u32> = (0..1u32 << 16).flat_map(|hi| LOW.iter().map(move |lo| (hi << 16) ^ lo)).collect();
    for x in [0.0f32, -0.0, 65504.0, -65504.0, 65519.0, 65520.0, -65520.0, 65536.0, 1e9, f32::INFINITY, -f32::INFINITY]
    {
        v.push(x.to_bits());
    }
    v.extend([0x3300_0000, 0x3300_0001, 0x3380_0000, 0x477f_efff, 0x477f_f000, 0x7fc0_0000, 0xffc0_0001, 0x7f80_0001]);
    v
}

#[test]
fn every_f16_and_bf16_widens_exactly_on_every_path() {
    let halves: Vec<u16> = (0..=u16::MAX).collect();
    for (path, ctx) in contexts() {
        let f = ctx.upload(Array1::from_iter(halves.iter().map(|&h| f16::from_bits(h))).view()).unwrap();
        let wide: Array1<f32> = ctx.download(&ctx.cast(&f, Elem::F32).unwrap()).unwrap();
        for (&h, w) in halves.iter().zip(&wide) {
            assert_eq!(w.to_bits(), f16_bits_to_f32(u32::from(h)), "{path:?}: f16 {h:#06x}");
            // The half crate's value (a NaN's payload aside: both keep it a NaN).
            let crate_value = f16::from_bits(h).to_f32();
            assert!(
                w.to_bits() == crate_value.to_bits() || (w.is_nan() && crate_value.is_nan()),
                "{path:?}: f16 {h:#06x}"
            );
        }
        let b = ctx.upload(Array1::from_iter(halves.iter().map(|&h| bf16::from_bits(h))).view()).unwrap();
        let wide: Array1<f32> = ctx.download(&ctx.cast(&b, Elem::F32).unwrap()).unwrap();
        for (&h, w) in halves.iter().zip(&wide) {
            assert_eq!(w.to_bits(), u32::from(h) << 16, "{path:?}: bf16 {h:#06x}");
            let crate_value = bf16::from_bits(h).to_f32();
            assert!(
                w.to_bits() == crate_value.to_bits() || (w.is_nan() && crate_value.is_nan()),
                "{path:?}: bf16 {h:#06x}"
            );
        }
    }
}

#[test]
fn f32_narrows_to_the_nearest_half_on_every_path() {
    let bits = patterns();
    let values = Array1::from_iter(bits.iter().map(|&b| f32::from_bits(b)));
    for (path, ctx) in contexts() {
        let x = ctx.upload(values.view()).unwrap();
        let h: Array1<f16> = ctx.download_as::<f16, Ix1>(&ctx.cast(&x, Elem::F16).unwrap()).unwrap();
        for (&b, got) in bits.iter().zip(&h) {
            let want = f16::from_f32(f32::from_bits(b)).to_bits();
            assert_eq!(got.to_bits(), want, "{path:?}: f32 {b:#010x} to f16 (the half crate's bits)");
            assert_eq!(u32::from(got.to_bits()), f32_to_f16_bits(b), "{path:?}: f32 {b:#010x} to f16");
        }
        let h: Array1<bf16> = ctx.download_as::<bf16, Ix1>(&ctx.cast(&x, Elem::Bf16).unwrap()).unwrap();
        for (&b, got) in bits.iter().zip(&h) {
            let want = bf16::from_f32(f32::from_bits(b)).to_bits();
            assert_eq!(got.to_bits(), want, "{path:?}: f32 {b:#010x} to bf16 (the half crate's bits)");
            assert_eq!(u32::from(got.to_bits()), f32_to_bf16_bits(b), "{path:?}: f32 {b:#010x} to bf16");
        }
    }
}

/// ±∞ beyond the largest finite half on every path, SwiftShader's `pack2x16float` (NaN there) included;
/// an odd element count (the last word half padding) round-trips.
#[test]
fn out_of_range_is_infinity_and_odd_lengths_round_trip() {
    for (path, ctx) in contexts() {
        let x = ctx.upload(ndarray::array![65520.0f32, -1e6, 65504.0].view()).unwrap();
        let h = ctx.cast(&x, Elem::F16).unwrap();
        assert_eq!(h.dtype(), Elem::F16);
        let back: Array1<f32> = ctx.download(&h).unwrap();
        assert_eq!(back.to_vec(), vec![f32::INFINITY, f32::NEG_INFINITY, 65504.0], "{path:?}");
        // 65504 is 65536 in bf16, and that is beyond the largest f16.
        let b = ctx.cast(&h, Elem::Bf16).unwrap();
        assert_eq!(ctx.download::<Ix1>(&b).unwrap().to_vec(), vec![f32::INFINITY, f32::NEG_INFINITY, 65536.0]);
        let again = ctx.cast(&b, Elem::F16).unwrap();
        assert_eq!(
            ctx.download::<Ix1>(&again).unwrap().to_vec(),
            vec![f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY]
        );
    }
}

/// The four operations on f16 and bf16 operands over the self-test's layers (every parameter, alone
/// and together, channels last): on every path the adapter offers, under both profiles, each output
/// within its bound against the f64 reference over the rounded operands.
#[test]
fn the_operations_in_half_precision_are_within_their_bounds() {
    for (path, base) in contexts() {
        for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
            let ctx = base.twin().with_profile(class);
            for elem in [Elem::F16, Elem::Bf16] {
                let rows = convgrad::verify::self_test_as(&ctx, elem).unwrap();
                assert_eq!(
                    rows.len(),
                    9 * 5 + 4 * 3 + 2 * 3 + 1,
                    "five per layer, three per transposed or 1-D layer, the empty batch"
                );
                for r in &rows {
                    assert!(
                        r.pass,
                        "{path:?} {class:?} {elem}: {} {} ratio {} rel {}",
                        r.op, r.shape, r.bound_ratio, r.rel_err
                    );
                }
            }
        }
    }
}

/// The dtypes an operation takes: one for all operands, outputs in f32 or the operands' type; and the
/// defaults (forward and input gradient in the operands' dtype, weight and bias gradients in f32).
#[test]
fn dtypes_mixed_by_mistake_are_typed_errors_and_the_defaults_hold() {
    let ctx = ctx();
    let p = Conv2dParams::new();
    let x = ctx.upload_as(Array4::<f32>::ones((1, 2, 5, 5)).view(), Elem::F16).unwrap();
    let w16 = ctx.upload_as(Array4::<f32>::ones((3, 2, 3, 3)).view(), Elem::F16).unwrap();
    let w32 = ctx.upload(Array4::<f32>::ones((3, 2, 3, 3)).view()).unwrap();
    let wbf = ctx.cast(&w16, Elem::Bf16).unwrap();
    let dy = ctx.upload_as(Array4::<f32>::ones((1, 3, 3, 3)).view(), Elem::F16).unwrap();
    assert!(matches!(ctx.forward(&x, &w32, None, &p), Err(Error::DType { .. })));
    assert!(matches!(ctx.forward(&x, &wbf, None, &p), Err(Error::DType { .. })));
    let y_bf = ctx.zeros_as(&[1, 3, 3, 3], Elem::Bf16).unwrap();
    assert!(matches!(ctx.forward_into(&x, &w16, None, &p, &y_bf), Err(Error::DType { .. })));
    assert!(matches!(ctx.weight_grad(&x, &ctx.cast(&dy, Elem::F32).unwrap(), [3, 3], &p), Err(Error::DType { .. })));
    assert!(matches!(ctx.axpby(1.0, &w16, 1.0, &w16, &w16), Err(Error::DType { .. })));
    let y = ctx.forward(&x, &w16, None, &p).unwrap();
    assert_eq!(y.dtype(), Elem::F16);
    // 18 ones: exact in every type.
    assert!(ctx.download::<Ix4>(&y).unwrap().iter().all(|&v| v == 18.0));
    assert_eq!(ctx.weight_grad(&x, &dy, [3, 3], &p).unwrap().dtype(), Elem::F32);
    assert_eq!(ctx.input_grad(&dy, &w16, [5, 5], &p).unwrap().dtype(), Elem::F16);
    assert_eq!(ctx.bias_grad(&dy, Layout::Nchw).unwrap().dtype(), Elem::F32);
    let dw16 = ctx.zeros_as(&[3, 2, 3, 3], Elem::F16).unwrap();
    ctx.weight_grad_into(&x, &dy, &p, &dw16).unwrap();
    assert!(ctx.download::<Ix4>(&dw16).unwrap().iter().all(|&v| v == 9.0));
}
