//! Layers larger than one storage binding of the *device*: a real wgpu device requested with a
//! 2 KiB `max_storage_buffer_binding_size`, so that wgpu's own validation is what every pass meets
//! (a lowered planning limit alone never showed that the half-precision passes bound a whole
//! 16-bit tensor, or that a chunked weight gradient bound all its partial sums at once).
//!
//! Every op (forward with bias, weight, input and bias gradients) in f32, f16 and bf16, in NCHW and
//! NHWC, over layers that need one chunk, two, and many (eleven one-sample chunks), each result
//! against the f64 reference within its bound, on this run's profile (CI runs both).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Rng, abs4, check, check_as, nan_tensor, nan_tensor_as, small_device};
use convgrad::verify::{rounded, unit_roundoff};
use convgrad::{Conv2dGeometry, Conv2dParams, Elem, Layout, reference};
use ndarray::{Array1, Array4, Ix1, Ix4};

/// The layers: `(label, geometry, chunks the f32 forward pass needs at least)`.
fn layers(layout: Layout) -> Vec<(&'static str, Conv2dGeometry)> {
    let p = Conv2dParams::new().padding(1, 1).layout(layout);
    let g = |n, c, hw, k, params| Conv2dGeometry::new(n, c, hw, k, [3, 3], params).unwrap();
    vec![
        ("one chunk", g(2, 2, [4, 4], 2, p)),
        ("two chunks", g(2, 2, [12, 12], 2, p)),
        ("the probe's 11×3×7×7", g(11, 3, [7, 7], 3, p)),
        // Eleven samples in small chunks, their partial sums of dW (72 elements each) more than one
        // binding holds together.
        ("many chunks", g(11, 2, [7, 7], 4, p)),
        ("strided, grouped, many chunks", g(9, 4, [5, 7], 4, p.stride(2, 2).groups(2))),
    ]
}

#[test]
fn every_op_in_every_dtype_runs_on_a_device_with_2_kib_bindings() {
    let small = small_device();
    let mut failures = Vec::new();
    let mut rng = Rng::new(0xb1d);
    for layout in [Layout::Nchw, Layout::Nhwc] {
        for (label, geo) in layers(layout) {
            let params = geo.params;
            let [s, t] = [geo.s, geo.t];
            for elem in [Elem::F32, Elem::F16, Elem::Bf16] {
                let case = format!("{label} {} {layout:?} {elem}", geo.describe());
                let max_rel = unit_roundoff(elem).max(1e-5);
                let x: Array4<f32> = rounded(&rng.array(geo.input_shape()), elem);
                let w: Array4<f32> = rounded(&rng.array(geo.weight_shape()), elem);
                let b: Array1<f32> = rounded(&rng.array(geo.k), elem);
                let dy: Array4<f32> = rounded(&rng.array(geo.output_shape()), elem);
                let (ax, aw, ab, ady) = (abs4(&x), abs4(&w), b.mapv(f32::abs), abs4(&dy));
                let up = |a: &Array4<f32>| small.upload_as(a.view(), elem).unwrap();
                let (xd, wd, dyd) = (up(&x), up(&w), up(&dy));
                let bd = small.upload_as(b.view(), elem).unwrap();
                let mut record = |op: &str, r: convgrad::Result<Result<f64, String>>| match r {
                    Ok(Ok(_)) => {}
                    Ok(Err(m)) => failures.push(format!("{case} {op}: {m}")),
                    Err(e) => failures.push(format!("{case} {op}: error {e}")),
                };

                let y = nan_tensor_as(&small, &geo.output_shape(), elem);
                record(
                    "forward",
                    small.forward_into(&xd, &wd, Some(&bd), &params, &y).map(|()| {
                        let got = small.download::<Ix4>(&y).unwrap();
                        let want = reference::forward(x.view(), w.view(), Some(b.view()), &params).unwrap();
                        let mag = reference::forward(ax.view(), aw.view(), Some(ab.view()), &params).unwrap();
                        check_as(&got, &want, &mag, geo.channels_per_group() * s * t + 1, max_rel, elem)
                    }),
                );
                let dw = nan_tensor(&small, &geo.weight_shape());
                record(
                    "weight gradient",
                    small.weight_grad_into(&xd, &dyd, &params, &dw).map(|()| {
                        let got = small.download::<Ix4>(&dw).unwrap();
                        let want = reference::weight_grad(x.view(), dy.view(), [s, t], &params).unwrap();
                        let mag = reference::weight_grad(ax.view(), ady.view(), [s, t], &params).unwrap();
                        check(&got, &want, &mag, geo.n * geo.p * geo.q, 1e-5)
                    }),
                );
                let dx = nan_tensor_as(&small, &geo.input_shape(), elem);
                record(
                    "input gradient",
                    small.input_grad_into(&dyd, &wd, &params, &dx).map(|()| {
                        let got = small.download::<Ix4>(&dx).unwrap();
                        let want = reference::input_grad(dy.view(), w.view(), [geo.h, geo.w], &params).unwrap();
                        let mag = reference::input_grad(ady.view(), aw.view(), [geo.h, geo.w], &params).unwrap();
                        check_as(&got, &want, &mag, geo.filters_per_group() * s * t, max_rel, elem)
                    }),
                );
                let db = nan_tensor(&small, &[geo.k]);
                record(
                    "bias gradient",
                    small.bias_grad_into(&dyd, layout, &db).map(|()| {
                        let got = small.download::<Ix1>(&db).unwrap();
                        let want = reference::bias_grad(dy.view(), layout);
                        let mag = reference::bias_grad(ady.view(), layout);
                        check(&got, &want, &mag, geo.n * geo.p * geo.q, 1e-5)
                    }),
                );
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The layers above do chunk on this device as their labels say (so the test exercises what it says):
/// in f32 the first runs every op whole, the second some op in two chunks, the others some op in more.
#[test]
fn the_layers_need_the_chunks_their_labels_say() {
    use convgrad::bench::Op;
    let small = small_device();
    for (label, geo) in layers(Layout::Nchw) {
        let chunks: Vec<usize> =
            Op::ALL.iter().map(|&op| geo.n.div_ceil(small.chunking(op, &geo, Elem::F32).unwrap().samples)).collect();
        let most = chunks.iter().copied().max().unwrap_or(0);
        eprintln!("{label}: chunks {chunks:?}");
        match label {
            "one chunk" => assert_eq!(most, 1, "{label}: {chunks:?}"),
            "two chunks" => assert_eq!(most, 2, "{label}: {chunks:?}"),
            _ => assert!(most > 2, "{label}: {chunks:?}"),
        }
    }
}

/// `Context::cast` of a tensor larger than one binding runs in pieces: every pair of dtypes, bit for
/// bit the host's conversions (`Elem`), on the probe's 1,617-element input.
#[test]
fn a_cast_larger_than_a_binding_runs_in_pieces() {
    let small = small_device();
    let mut rng = Rng::new(0xca57);
    let a: Array4<f32> = rng.array((11, 3, 7, 7));
    for from in [Elem::F32, Elem::F16, Elem::Bf16] {
        let t = small.upload_as(a.view(), from).unwrap();
        let held = rounded(&a, from);
        for to in [Elem::F32, Elem::F16, Elem::Bf16] {
            let c = small.cast(&t, to).unwrap_or_else(|e| panic!("{from} to {to}: {e}"));
            let got = small.download::<Ix4>(&c).unwrap();
            let want = rounded(&held, to);
            let same = got.iter().zip(want.iter()).all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "{from} to {to}");
        }
    }
}
