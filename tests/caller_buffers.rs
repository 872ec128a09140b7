//! Tensors over buffers the caller made (`Context::wrap`): all four operations read them, the `*_into`
//! forms write into them, and the caller reads the results from its own buffers itself.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Rng, rel_err};
use convgrad::{Conv2dParams, Error, Layout, reference};
use ndarray::{Array1, Array4, Ix1, Ix4};

const USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

fn buffer(ctx: &convgrad::Context, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("caller"),
        size: bytes,
        usage,
        mapped_at_creation: false,
    })
}

/// The caller's buffer holding `a`, written by the caller's own queue write.
fn filled(ctx: &convgrad::Context, a: &[f32]) -> wgpu::Buffer {
    let b = buffer(ctx, (a.len() * 4) as u64, USAGE);
    ctx.queue().write_buffer(&b, 0, bytemuck::cast_slice(a));
    b
}

/// Reads a buffer back the way a caller would without convgrad: copy, map, wait.
fn read_own(ctx: &convgrad::Context, src: &wgpu::Buffer) -> Vec<f32> {
    let staging = buffer(ctx, src.size(), wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(src, 0, &staging, 0, src.size());
    let index = ctx.queue().submit([enc.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |r| r.unwrap());
    ctx.device().poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None }).unwrap();
    let v = bytemuck::cast_slice(&staging.slice(..).get_mapped_range().unwrap()).to_vec();
    staging.unmap();
    v
}

#[test]
fn wrapped_buffers_run_all_four_operations_in_both_layouts() {
    for (path, ctx) in common::paths() {
        let mut rng = Rng::new(21);
        for params in [
            Conv2dParams::new().stride(2, 1).padding(1, 2).groups(2),
            Conv2dParams::new().padding_same().groups(2).layout(Layout::Nhwc),
        ] {
            let geo = convgrad::Conv2dGeometry::new(3, 4, [11, 12], 6, [3, 3], params).unwrap();
            let x: Array4<f32> = rng.array(geo.input_shape());
            let w: Array4<f32> = rng.array(geo.weight_shape());
            let b: Array1<f32> = rng.array(geo.k);
            let dy: Array4<f32> = rng.array(geo.output_shape());
            let slice = |a: &Array4<f32>| a.as_slice().unwrap().to_vec();
            let (xb, wb, dyb) = (filled(ctx, &slice(&x)), filled(ctx, &slice(&w)), filled(ctx, &slice(&dy)));
            let bb = filled(ctx, b.as_slice().unwrap());
            let xt = ctx.wrap(&xb, &geo.input_shape()).unwrap();
            let wt = ctx.wrap(&wb, &geo.weight_shape()).unwrap();
            let dyt = ctx.wrap(&dyb, &geo.output_shape()).unwrap();
            let bt = ctx.wrap(&bb, &[geo.k]).unwrap();
            let label = format!("{path}: {}", geo.describe());

            // Outputs into the caller's buffers, prefilled with NaN: every element must be written.
            let out = |shape: &[usize]| filled(ctx, &vec![f32::NAN; shape.iter().product()]);
            let (yb, dwb, dxb, dbb) =
                (out(&geo.output_shape()), out(&geo.weight_shape()), out(&geo.input_shape()), out(&[geo.k]));
            ctx.forward_into(&xt, &wt, Some(&bt), &params, &ctx.wrap(&yb, &geo.output_shape()).unwrap()).unwrap();
            ctx.weight_grad_into(&xt, &dyt, &params, &ctx.wrap(&dwb, &geo.weight_shape()).unwrap()).unwrap();
            ctx.input_grad_into(&dyt, &wt, &params, &ctx.wrap(&dxb, &geo.input_shape()).unwrap()).unwrap();
            ctx.bias_grad_into(&dyt, params.layout, &ctx.wrap(&dbb, &[geo.k]).unwrap()).unwrap();

            let as4 = |v: Vec<f32>, s: [usize; 4]| Array4::from_shape_vec(s, v).unwrap();
            let y = as4(read_own(ctx, &yb), geo.output_shape());
            let dw = as4(read_own(ctx, &dwb), geo.weight_shape());
            let dx = as4(read_own(ctx, &dxb), geo.input_shape());
            let db = Array1::from(read_own(ctx, &dbb));
            let y_ref = reference::forward(x.view(), w.view(), Some(b.view()), &params).unwrap();
            let dw_ref = reference::weight_grad(x.view(), dy.view(), [3, 3], &params).unwrap();
            let dx_ref = reference::input_grad(dy.view(), w.view(), [11, 12], &params).unwrap();
            let db_ref = reference::bias_grad(dy.view(), params.layout);
            for (op, e) in [
                ("forward", rel_err(&y, &y_ref)),
                ("weight gradient", rel_err(&dw, &dw_ref)),
                ("input gradient", rel_err(&dx, &dx_ref)),
                ("bias gradient", rel_err(&db, &db_ref)),
            ] {
                assert!(e <= 1e-5, "{op}, {label}: relative error {e:e}");
            }
            // The allocating forms read wrapped inputs too, and give the same bits.
            let y2 = ctx.download::<Ix4>(&ctx.forward(&xt, &wt, Some(&bt), &params).unwrap()).unwrap();
            assert_eq!(y2, y, "{label}");
            let db2 = ctx.download::<Ix1>(&ctx.bias_grad(&dyt, params.layout).unwrap()).unwrap();
            assert_eq!(db2, db, "{label}");
        }
    }
}

#[test]
fn a_buffer_that_cannot_back_the_tensor_is_a_typed_error() {
    let ctx = common::ctx();
    let b = buffer(ctx, 4 * 24, USAGE);
    assert!(matches!(ctx.wrap(&b, &[2, 3, 5]), Err(Error::BufferSize { needed: 120, got: 96, .. })));
    assert!(matches!(ctx.wrap(&b, &[2, 0, 12]), Err(Error::ZeroDimension { .. })));
    let no_copy = buffer(ctx, 4 * 24, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST);
    match ctx.wrap(&no_copy, &[24]) {
        Err(e @ Error::BufferUsage { .. }) => assert!(e.to_string().contains("COPY_SRC"), "{e}"),
        other => panic!("expected BufferUsage, got {other:?}"),
    }
    // One buffer wrapped as both an input and the output of an operation.
    let x = ctx.wrap(&b, &[1, 1, 4, 6]).unwrap();
    let same = ctx.wrap(&b, &[1, 1, 4, 6]).unwrap();
    let w = ctx.upload(Array4::<f32>::ones((1, 1, 1, 1)).view()).unwrap();
    let e = ctx.forward_into(&x, &w, None, &Conv2dParams::new(), &same).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
}

/// A buffer of another context's device (two contexts, each with a device of its own) is an error
/// from every operation that reads or writes it, never a result computed from another buffer, and
/// never a panic inside wgpu.
#[test]
fn a_buffer_of_another_device_is_an_error_not_a_wrong_result() {
    let a = convgrad::Context::new().unwrap();
    let b = convgrad::Context::new().unwrap();
    let params = Conv2dParams::new();
    let mut rng = Rng::new(3);
    let x: Array4<f32> = rng.array((1, 2, 6, 6));
    let w: Array4<f32> = rng.array((3, 2, 3, 3));
    let theirs = filled(&b, x.as_slice().unwrap());
    let foreign = a.wrap(&theirs, &[1, 2, 6, 6]).unwrap();
    let wd = a.upload(w.view()).unwrap();
    let is_wgpu = |r: &convgrad::Result<()>| matches!(r, Err(Error::Wgpu { .. }) | Err(Error::Readback { .. }));
    // Read as an input.
    let r = a.forward(&foreign, &wd, None, &params).map(drop);
    assert!(is_wgpu(&r), "forward over a foreign input: {r:?}");
    let r = a.download::<Ix4>(&foreign).map(drop);
    assert!(is_wgpu(&r), "download of a foreign buffer: {r:?}");
    // Written as an output.
    let out = buffer(&b, 3 * 4 * 4 * 4, USAGE);
    let y = a.wrap(&out, &[1, 3, 4, 4]).unwrap();
    let xd = a.upload(x.view()).unwrap();
    let r = a.forward_into(&xd, &wd, None, &params, &y);
    assert!(is_wgpu(&r), "forward_into a foreign output: {r:?}");
    // The context still works afterwards.
    let y = a.forward(&xd, &wd, None, &params).unwrap();
    let want = reference::forward(x.view(), w.view(), None, &params).unwrap();
    assert!(rel_err(&a.download::<Ix4>(&y).unwrap(), &want) < 1e-6);
}

/// Reading back a wrapped buffer its owner destroyed says so, not that the device was lost.
#[test]
fn a_destroyed_buffer_is_named_in_the_error() {
    let ctx = common::ctx();
    let own = filled(ctx, &[1.0; 16]);
    let t = ctx.wrap(&own, &[16]).unwrap();
    own.destroy();
    let e = ctx.download::<Ix1>(&t).unwrap_err().to_string();
    assert!(e.contains("destroyed") && !e.contains("device may have been lost"), "{e}");
}
