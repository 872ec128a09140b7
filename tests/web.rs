//! The library in the browser: wasm32 + WebGPU, run by `wasm-bindgen-test-runner` in headless Chromium
//! (`.ci/run`; its WebGPU runs on SwiftShader). The same kernels, plans and reference as native; only
//! the calls that would block are their async forms (`Context::new_async`, `download_async`).
#![cfg(target_arch = "wasm32")]

use convgrad::verify::{Rng, bound_ratio, rel_err};
use convgrad::{Context, Conv2dGeometry, Conv2dParams, DeviceClass, Error, Layout, Tensor, reference};
use ndarray::{Array1, Array4, Ix1, Ix4};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

async fn ctx() -> Context {
    match Context::new_async().await {
        Ok(c) => c,
        Err(e) => panic!("no WebGPU adapter in this browser (Chromium needs --enable-unsafe-webgpu): {e}"),
    }
}

/// The edge shapes of the browser suite: stride, padding (symmetric, per side, 'same'), dilation,
/// groups, the single-channel seed case, channels last.
fn layers() -> Vec<(&'static str, Conv2dGeometry)> {
    let d = Conv2dParams::new();
    let l = |n, c, hw, k, st, p| Conv2dGeometry::new(n, c, hw, k, st, p).unwrap();
    vec![
        ("single-channel seed", l(1, 1, [32, 29], 8, [5, 5], d)),
        ("stride 2,3", l(2, 3, [12, 13], 4, [3, 3], d.stride(2, 3))),
        ("padding 1,2", l(1, 2, [7, 8], 3, [3, 5], d.padding(1, 2))),
        ("padding > kernel", l(1, 1, [3, 3], 1, [2, 2], d.padding(3, 3))),
        ("same, even kernel", l(2, 3, [8, 9], 4, [4, 2], d.padding_same())),
        ("per side, strided", l(1, 2, [9, 9], 2, [3, 3], d.stride(2, 2).padding_sides(1, 3, 0, 2))),
        ("dilation 2,3", l(1, 2, [11, 12], 2, [3, 2], d.dilation(2, 3))),
        ("groups 2", l(2, 6, [8, 9], 4, [3, 3], d.groups(2))),
        ("depthwise", l(1, 4, [7, 7], 4, [3, 3], d.groups(4))),
        ("resnet-like", l(2, 16, [14, 14], 16, [3, 3], d.padding(1, 1))),
        (
            "everything, nhwc",
            l(2, 4, [15, 14], 6, [3, 2], d.stride(2, 1).padding(2, 1).dilation(1, 2).groups(2).layout(Layout::Nhwc)),
        ),
    ]
}

async fn down4(ctx: &Context, t: &Tensor) -> Array4<f32> {
    ctx.download_async::<Ix4>(t).await.unwrap()
}

#[wasm_bindgen_test]
async fn four_operations_match_the_f64_reference() {
    four_operations(&ctx().await).await;
}

/// The GPU profile's GEMM kernels (what a page on a real GPU runs) through the browser's own WGSL
/// compiler, which is not naga.
#[wasm_bindgen_test]
async fn the_gemm_kernels_of_the_gpu_profile_match_the_f64_reference() {
    let ctx = ctx().await.with_profile(DeviceClass::Gpu);
    for (label, geo) in layers() {
        let plans = [
            ctx.plan_forward(&geo).unwrap().to_string(),
            ctx.plan_weight_grad(&geo).unwrap().to_string(),
            ctx.plan_input_grad(&geo).unwrap().to_string(),
        ];
        assert!(plans.iter().all(|p| p.starts_with("gemm ")), "{label}: {plans:?}");
    }
    four_operations(&ctx).await;
    repeats(&ctx).await;
}

async fn four_operations(ctx: &Context) {
    let info = ctx.adapter_info();
    web_sys_log(&format!("convgrad in the browser on {} ({:?}), profile {}", info.name, info.backend, ctx.profile()));
    let mut rng = Rng::new(0x5eed);
    for (label, geo) in layers() {
        let p = geo.params;
        let x: Array4<f32> = rng.array(geo.input_shape());
        let w: Array4<f32> = rng.array(geo.weight_shape());
        let b: Array1<f32> = rng.array(geo.k);
        let dy: Array4<f32> = rng.array(geo.output_shape());
        let abs = |a: &Array4<f32>| a.mapv(f32::abs);
        let (ax, aw, ady) = (abs(&x), abs(&w), abs(&dy));
        let (xd, wd, bd, dyd) = (
            ctx.upload(x.view()).unwrap(),
            ctx.upload(w.view()).unwrap(),
            ctx.upload(b.view()).unwrap(),
            ctx.upload(dy.view()).unwrap(),
        );

        let y = down4(ctx, &ctx.forward(&xd, &wd, Some(&bd), &p).unwrap()).await;
        let y_ref = reference::forward(x.view(), w.view(), Some(b.view()), &p).unwrap();
        let y_mag = reference::forward(ax.view(), aw.view(), Some(b.mapv(f32::abs).view()), &p).unwrap();
        let checks = [(
            "forward",
            rel_err(&y, &y_ref),
            bound_ratio(&y, &y_ref, &y_mag, geo.channels_per_group() * geo.s * geo.t + 1),
        )];

        let dw = down4(ctx, &ctx.weight_grad(&xd, &dyd, [geo.s, geo.t], &p).unwrap()).await;
        let dw_ref = reference::weight_grad(x.view(), dy.view(), [geo.s, geo.t], &p).unwrap();
        let dw_mag = reference::weight_grad(ax.view(), ady.view(), [geo.s, geo.t], &p).unwrap();
        let lw = geo.n * geo.p * geo.q;
        let dx = down4(ctx, &ctx.input_grad(&dyd, &wd, [geo.h, geo.w], &p).unwrap()).await;
        let dx_ref = reference::input_grad(dy.view(), w.view(), [geo.h, geo.w], &p).unwrap();
        let dx_mag = reference::input_grad(ady.view(), aw.view(), [geo.h, geo.w], &p).unwrap();
        let db = ctx.download_async::<Ix1>(&ctx.bias_grad(&dyd, p.layout).unwrap()).await.unwrap();
        let db_ref = reference::bias_grad(dy.view(), p.layout);
        let db_mag = reference::bias_grad(ady.view(), p.layout);
        let checks = checks.into_iter().chain([
            ("weight gradient", rel_err(&dw, &dw_ref), bound_ratio(&dw, &dw_ref, &dw_mag, lw)),
            (
                "input gradient",
                rel_err(&dx, &dx_ref),
                bound_ratio(&dx, &dx_ref, &dx_mag, geo.filters_per_group() * geo.s * geo.t),
            ),
            ("bias gradient", rel_err(&db, &db_ref), bound_ratio(&db, &db_ref, &db_mag, lw)),
        ]);
        for (op, err, ratio) in checks {
            web_sys_log(&format!("{label:<20} {op:<16} relative error {err:.2e}, bound ratio {ratio:.3}"));
            assert!(
                err <= 1e-5 && ratio <= 1.0,
                "{label} ({}): {op}: relative error {err:e}, bound ratio {ratio}",
                geo.describe()
            );
        }
    }
}

#[wasm_bindgen_test]
async fn repeated_runs_are_bitwise_identical() {
    repeats(&ctx().await).await;
}

async fn repeats(ctx: &Context) {
    let mut rng = Rng::new(7);
    let p = Conv2dParams::new().padding(1, 1).stride(2, 1).groups(2);
    let geo = Conv2dGeometry::new(3, 4, [19, 17], 6, [3, 3], p).unwrap();
    let x = ctx.upload(rng.array::<Ix4, _>(geo.input_shape()).view()).unwrap();
    let w = ctx.upload(rng.array::<Ix4, _>(geo.weight_shape()).view()).unwrap();
    let dy = ctx.upload(rng.array::<Ix4, _>(geo.output_shape()).view()).unwrap();
    let bits = |a: Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let mut first = None;
    for _ in 0..5 {
        let y = bits(down4(ctx, &ctx.forward(&x, &w, None, &p).unwrap()).await);
        let dw = bits(down4(ctx, &ctx.weight_grad(&x, &dy, [3, 3], &p).unwrap()).await);
        let dx = bits(down4(ctx, &ctx.input_grad(&dy, &w, [19, 17], &p).unwrap()).await);
        let run = (y, dw, dx);
        match &first {
            None => first = Some(run),
            Some(f) => assert!(*f == run, "a repeated run gave different bits"),
        }
    }
}

#[wasm_bindgen_test]
async fn a_bad_shape_is_a_typed_error() {
    let ctx = ctx().await;
    let x = ctx.upload(Array4::<f32>::zeros((1, 3, 8, 8)).view()).unwrap();
    let w = ctx.upload(Array4::<f32>::zeros((2, 2, 3, 3)).view()).unwrap();
    match ctx.forward(&x, &w, None, &Conv2dParams::new()) {
        Err(Error::ShapeMismatch { what, .. }) => assert!(what.contains("weight channels"), "{what}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    let big = ctx.upload(Array4::<f32>::zeros((1, 1, 2, 2)).view()).unwrap();
    let k = ctx.upload(Array4::<f32>::zeros((1, 1, 3, 3)).view()).unwrap();
    assert!(matches!(ctx.forward(&big, &k, None, &Conv2dParams::new()), Err(Error::KernelTooLarge { .. })));
    // The context is still usable: no error was left pending in its scopes.
    ctx.settle().await.unwrap();
    let _ = ctx.download_async::<Ix4>(&x).await.unwrap();
}

fn web_sys_log(s: &str) {
    wasm_bindgen_test::console_log!("{s}");
}

/// Half precision in the browser, on each f16 path the page offers (Chromium's SwiftShader: the pack
/// builtins and the integer words): every f16 and bf16 widened and a spread of f32 patterns narrowed
/// bit for bit against `convgrad::elem`, then the four operations in f16 and bf16 on the browser
/// layers within the bound of `bound_ratio_as`.
#[wasm_bindgen_test]
async fn half_precision_on_every_path_of_the_page() {
    use convgrad::elem::{f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits};
    use convgrad::verify::{bound_ratio_as, rounded};
    use convgrad::{Elem, HalfPath};
    let base = ctx().await;
    let p = base.profile();
    let paths = HalfPath::offered(p.f16_native, p.f16_packed);
    web_sys_log(&format!("half paths offered in the page: {paths:?}"));
    assert!(paths.contains(&HalfPath::Packed), "a page's WGSL always has the pack builtins");
    let halves: Array1<f32> = (0..=u16::MAX).map(|h| f32::from_bits(f16_bits_to_f32(u32::from(h)))).collect();
    let bits: Vec<u32> = (0..1u32 << 16)
        .flat_map(|hi| [0u32, 0x1000, 0x1001, 0x8000, 0x18001].map(|lo| (hi << 16) ^ lo))
        .chain([0x477f_efff, 0x477f_f000, 0x3300_0000, 0x3300_0001])
        .collect();
    let values: Array1<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    for path in paths {
        let ctx = base.twin().with_half_path(path).unwrap();
        // Widening: every f16 (uploaded from its exact f32 value), and every bf16 pattern's top half.
        let h = ctx.upload_as(halves.view(), Elem::F16).unwrap();
        let wide = ctx.download_async::<Ix1>(&ctx.cast(&h, Elem::F32).unwrap()).await.unwrap();
        for (i, v) in wide.iter().enumerate() {
            let want = f16_bits_to_f32(i as u32);
            // An f16 NaN uploaded from f32 is quieted on the host: compare NaNs as NaNs.
            assert!(v.to_bits() == want || (v.is_nan() && f32::from_bits(want).is_nan()), "{path:?}: f16 {i:#06x}");
        }
        // Narrowing.
        let x = ctx.upload(values.view()).unwrap();
        for elem in [Elem::F16, Elem::Bf16] {
            let back: Array1<f32> = ctx.download_async(&ctx.cast(&x, elem).unwrap()).await.unwrap();
            for (&b, v) in bits.iter().zip(&back) {
                let want =
                    if elem == Elem::F16 { f16_bits_to_f32(f32_to_f16_bits(b)) } else { f32_to_bf16_bits(b) << 16 };
                assert_eq!(v.to_bits(), want, "{path:?}: f32 {b:#010x} to {elem}");
            }
        }
        // The operations, on the page's own profile and, for the pack builtins, on the GPU profile,
        // whose GEMM kernels read the 16-bit operands in place.
        let gpu = ctx.twin().with_profile(DeviceClass::Gpu);
        let contexts = if path == HalfPath::Packed { vec![&ctx, &gpu] } else { vec![&ctx] };
        for ctx in contexts {
            let mut rng = Rng::new(0x1a1f);
            for (label, geo) in layers() {
                for elem in [Elem::F16, Elem::Bf16] {
                    let pr = geo.params;
                    let x: Array4<f32> = rounded(&rng.array(geo.input_shape()), elem);
                    let w: Array4<f32> = rounded(&rng.array(geo.weight_shape()), elem);
                    let dy: Array4<f32> = rounded(&rng.array(geo.output_shape()), elem);
                    let abs = |a: &Array4<f32>| a.mapv(f32::abs);
                    let (xd, wd, dyd) = [&x, &w, &dy].map(|a| ctx.upload_as(a.view(), elem).unwrap()).into();
                    let y = down4(ctx, &ctx.forward(&xd, &wd, None, &pr).unwrap()).await;
                    let y_ref = reference::forward(x.view(), w.view(), None, &pr).unwrap();
                    let y_mag = reference::forward(abs(&x).view(), abs(&w).view(), None, &pr).unwrap();
                    let lf = geo.channels_per_group() * geo.s * geo.t;
                    let dw = down4(ctx, &ctx.weight_grad(&xd, &dyd, [geo.s, geo.t], &pr).unwrap()).await;
                    let dw_ref = reference::weight_grad(x.view(), dy.view(), [geo.s, geo.t], &pr).unwrap();
                    let dw_mag = reference::weight_grad(abs(&x).view(), abs(&dy).view(), [geo.s, geo.t], &pr).unwrap();
                    let dx = down4(ctx, &ctx.input_grad(&dyd, &wd, [geo.h, geo.w], &pr).unwrap()).await;
                    let dx_ref = reference::input_grad(dy.view(), w.view(), [geo.h, geo.w], &pr).unwrap();
                    let dx_mag = reference::input_grad(abs(&dy).view(), abs(&w).view(), [geo.h, geo.w], &pr).unwrap();
                    let li = geo.filters_per_group() * geo.s * geo.t;
                    let ratios = [
                        ("forward", bound_ratio_as(&y, &y_ref, &y_mag, lf, elem)),
                        ("weight gradient", bound_ratio_as(&dw, &dw_ref, &dw_mag, geo.n * geo.p * geo.q, Elem::F32)),
                        ("input gradient", bound_ratio_as(&dx, &dx_ref, &dx_mag, li, elem)),
                    ];
                    for (op, ratio) in ratios {
                        assert!(ratio <= 1.0, "{path:?} {elem} {label}: {op}: bound ratio {ratio}");
                    }
                }
            }
        }
    }
}

/// The transposed layer (its three results, including rows only the bias reaches), a 1-D layer and
/// an empty batch, on both profiles, through the browser's WGSL compiler.
#[wasm_bindgen_test]
async fn transposed_one_d_and_empty_batches_in_the_browser() {
    use convgrad::{Conv1dParams, ConvTranspose2dParams};
    let base = ctx().await;
    let mut rng = Rng::new(0x7a);
    for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
        let ctx = base.twin().with_profile(class);
        let d = ConvTranspose2dParams::new();
        for params in
            [d.stride(2, 2).padding(1, 1).output_padding(1, 1), d.dilation(3, 2).output_padding(2, 1).groups(2)]
        {
            let geo = params.geometry([2, 4, 5, 4], [4, 3, 3, 2]).unwrap();
            let x: Array4<f32> = rng.array(geo.input_shape());
            let w: Array4<f32> = rng.array(geo.weight_shape());
            let b: Array1<f32> = rng.array(geo.conv.c);
            let dy: Array4<f32> = rng.array(geo.output_shape());
            let abs = |a: &Array4<f32>| a.mapv(f32::abs);
            let (xd, wd, dyd) =
                (ctx.upload(x.view()).unwrap(), ctx.upload(w.view()).unwrap(), ctx.upload(dy.view()).unwrap());
            let bd = ctx.upload(b.view()).unwrap();
            let c = &geo.conv;
            let y = down4(&ctx, &ctx.conv_transpose(&xd, &wd, Some(&bd), &params).unwrap()).await;
            let y_ref = reference::conv_transpose(x.view(), w.view(), Some(b.view()), &params).unwrap();
            let y_mag =
                reference::conv_transpose(abs(&x).view(), abs(&w).view(), Some(b.mapv(f32::abs).view()), &params)
                    .unwrap();
            let dx = down4(&ctx, &ctx.conv_transpose_input_grad(&dyd, &wd, &params).unwrap()).await;
            let dx_ref = reference::conv_transpose_input_grad(dy.view(), w.view(), &params).unwrap();
            let dx_mag = reference::conv_transpose_input_grad(abs(&dy).view(), abs(&w).view(), &params).unwrap();
            let dw = down4(&ctx, &ctx.conv_transpose_weight_grad(&xd, &dyd, [c.s, c.t], &params).unwrap()).await;
            let dw_ref = reference::conv_transpose_weight_grad(x.view(), dy.view(), [c.s, c.t], &params).unwrap();
            let dw_mag =
                reference::conv_transpose_weight_grad(abs(&x).view(), abs(&dy).view(), [c.s, c.t], &params).unwrap();
            for (op, err, ratio) in [
                (
                    "transposed",
                    rel_err(&y, &y_ref),
                    bound_ratio(&y, &y_ref, &y_mag, c.filters_per_group() * c.s * c.t + 1),
                ),
                (
                    "transposed dX",
                    rel_err(&dx, &dx_ref),
                    bound_ratio(&dx, &dx_ref, &dx_mag, c.channels_per_group() * c.s * c.t),
                ),
                ("transposed dW", rel_err(&dw, &dw_ref), bound_ratio(&dw, &dw_ref, &dw_mag, c.n * c.p * c.q)),
            ] {
                web_sys_log(&format!(
                    "{class:?} {} {op}: relative error {err:.2e}, bound ratio {ratio:.3}",
                    geo.describe()
                ));
                assert!(err <= 1e-5 && ratio <= 1.0, "{class:?} {}: {op}: {err:e}, {ratio}", geo.describe());
            }
        }
        // 1-D: the 2-D layer of height 1, against the 2-D reference on the same values.
        let p1 = Conv1dParams::new().stride(2).padding_same_tf().dilation(2);
        let x: ndarray::Array3<f32> = rng.array((2, 3, 31));
        let w: ndarray::Array3<f32> = rng.array((4, 3, 3));
        let yd = ctx.forward_1d(&ctx.upload(x.view()).unwrap(), &ctx.upload(w.view()).unwrap(), None, &p1).unwrap();
        let y = ctx.download_async::<ndarray::Ix3>(&yd).await.unwrap();
        let lift = |a: &ndarray::Array3<f32>| a.clone().insert_axis(ndarray::Axis(2));
        let y_ref = reference::forward(lift(&x).view(), lift(&w).view(), None, &p1.conv2d()).unwrap();
        assert_eq!(y.dim(), (2, 4, 16));
        assert!(rel_err(&y.insert_axis(ndarray::Axis(2)), &y_ref) <= 1e-5, "{class:?}: conv1d");
        // An empty batch: an empty Y, a zero dW over a tensor of NaN.
        let p = Conv2dParams::new().padding(1, 1);
        let (x0, w0) = (ctx.zeros(&[0, 2, 6, 6]).unwrap(), ctx.zeros(&[3, 2, 3, 3]).unwrap());
        let y0 = ctx.forward(&x0, &w0, None, &p).unwrap();
        assert_eq!((y0.shape(), down4(&ctx, &y0).await.len()), (&[0, 3, 6, 6][..], 0));
        let dw = ctx.upload(Array4::<f32>::from_elem((3, 2, 3, 3), f32::NAN).view()).unwrap();
        ctx.weight_grad_into(&x0, &y0, &p, &dw).unwrap();
        assert!(down4(&ctx, &dw).await.iter().all(|v| *v == 0.0), "{class:?}: empty batch dW");
    }
}

/// The activations through the browser's WGSL compiler: every one over values from −20 to 20 and the
/// special ones against the `f64` reference, and the fused backward's dB against the bias gradient
/// of its dZ, bit for bit.
#[wasm_bindgen_test]
async fn activations_and_the_fused_backward_in_the_browser() {
    use convgrad::Activation;
    let ctx = ctx().await;
    let mut zs: Vec<f32> = (-160..=160).map(|i| i as f32 / 8.0).collect();
    zs.extend([0.0, -0.0, 1e30, -1e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    let z = Array1::from(zs.clone());
    let zt = ctx.upload(z.view()).unwrap();
    let ones = ctx.upload(Array1::<f32>::ones(z.len()).view()).unwrap();
    for act in Activation::all() {
        let y = ctx.download_async::<Ix1>(&ctx.activate(&zt, &act).unwrap()).await.unwrap();
        let d = ctx.download_async::<Ix1>(&ctx.activation_grad(&ones, &zt, &act).unwrap()).await.unwrap();
        for ((&zi, &yi), &di) in zs.iter().zip(&y).zip(&d) {
            for (got, want) in [(yi, act.apply(f64::from(zi))), (di, act.derivative(f64::from(zi)))] {
                let ok = if want.is_nan() {
                    got.is_nan()
                } else if want.is_infinite() {
                    f64::from(got) == want
                } else {
                    (f64::from(got) - want).abs() <= 2e-5 * want.abs() + 3e-7
                };
                assert!(ok, "{act} at {zi}: {got} vs {want}");
            }
        }
    }
    let mut rng = Rng::new(9);
    let dy: Array4<f32> = rng.array((2, 3, 6, 7));
    let zz: Array4<f32> = rng.array((2, 3, 6, 7));
    let (dyt, zzt) = (ctx.upload(dy.view()).unwrap(), ctx.upload(zz.view()).unwrap());
    let (dz, db) = ctx.act_bias_grad(&dyt, &zzt, &Activation::Gelu, Layout::Nchw).unwrap();
    let db = ctx.download_async::<Ix1>(&db).await.unwrap();
    let via = ctx.download_async::<Ix1>(&ctx.bias_grad(&dz, Layout::Nchw).unwrap()).await.unwrap();
    assert_eq!(db.mapv(f32::to_bits), via.mapv(f32::to_bits));
}
