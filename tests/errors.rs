//! Bad input gets a typed error naming the numbers, never a panic or a wgpu validation crash.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::ctx;
use convgrad::{AdapterOptions, Context, Conv2dParams, Error};
use ndarray::{Array1, Array2, Array3, Array4};

#[test]
fn mismatched_channels_are_a_shape_error() {
    let ctx = ctx();
    let x = Array4::<f32>::zeros((1, 3, 5, 5));
    let w = Array4::<f32>::zeros((2, 2, 3, 3));
    let e = ctx.conv2d(x.view(), w.view(), None, &Conv2dParams::new()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains('3') && e.to_string().contains('2'), "{e}");
}

#[test]
fn kernel_larger_than_padded_input() {
    let ctx = ctx();
    let x = Array4::<f32>::zeros((1, 1, 4, 4));
    let w = Array4::<f32>::zeros((1, 1, 3, 3));
    let e = ctx.conv2d(x.view(), w.view(), None, &Conv2dParams::new().dilation(2, 1)).unwrap_err();
    assert!(matches!(e, Error::KernelTooLarge { extent: 5, padded: 4, .. }), "{e}");
    let e = ctx.correlate(Array2::<f32>::zeros((2, 2)).view(), Array3::<f32>::zeros((1, 3, 1)).view()).unwrap_err();
    assert!(matches!(e, Error::KernelTooLarge { .. }), "{e}");
}

#[test]
fn zero_sized_dimensions() {
    let ctx = ctx();
    // Zero channels or a zero size are errors; a zero batch is not (tests/empty.rs).
    let w = Array4::<f32>::zeros((1, 1, 3, 3));
    for x in [Array4::<f32>::zeros((1, 0, 4, 4)), Array4::<f32>::zeros((1, 1, 0, 4))] {
        let e = ctx.conv2d(x.view(), w.view(), None, &Conv2dParams::new()).unwrap_err();
        assert!(matches!(e, Error::ZeroDimension { .. } | Error::ShapeMismatch { .. }), "{e}");
    }
    let y = ctx.conv2d(Array4::<f32>::zeros((0, 1, 4, 4)).view(), w.view(), None, &Conv2dParams::new()).unwrap();
    assert_eq!(y.dim(), (0, 1, 2, 2));
    assert!(ctx.upload(Array1::<f32>::zeros(0).view()).unwrap().is_empty());
}

#[test]
fn zero_stride_and_dilation() {
    let ctx = ctx();
    let x = Array4::<f32>::zeros((1, 1, 4, 4));
    let w = Array4::<f32>::zeros((1, 1, 3, 3));
    for p in [Conv2dParams::new().stride(0, 1), Conv2dParams::new().dilation(1, 0)] {
        let e = ctx.conv2d(x.view(), w.view(), None, &p).unwrap_err();
        assert!(matches!(e, Error::ZeroStep { value: 0, .. }), "{e}");
    }
}

#[test]
fn groups_that_do_not_divide() {
    let ctx = ctx();
    let x = Array4::<f32>::zeros((1, 4, 4, 4));
    let w = Array4::<f32>::zeros((3, 2, 3, 3));
    let e = ctx.conv2d(x.view(), w.view(), None, &Conv2dParams::new().groups(2)).unwrap_err();
    assert!(matches!(e, Error::GroupsMismatch { value: 3, groups: 2, .. }), "{e}");
}

#[test]
fn wrong_bias_length_and_gradient_shapes() {
    let ctx = ctx();
    let x = Array4::<f32>::zeros((2, 1, 5, 5));
    let w = Array4::<f32>::zeros((3, 1, 3, 3));
    let b = Array1::<f32>::zeros(2);
    let e = ctx.conv2d(x.view(), w.view(), Some(b.view()), &Conv2dParams::new()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    // dY of the wrong spatial size for the weight gradient.
    let dy = Array4::<f32>::zeros((2, 3, 4, 3));
    let e = ctx.conv2d_weight_grad(x.view(), dy.view(), [3, 3], &Conv2dParams::new()).unwrap_err();
    assert!(matches!(e, Error::InputSizeMismatch { expected: (3, 3), .. }), "{e}");
    // dY with another batch.
    let dy = Array4::<f32>::zeros((1, 3, 3, 3));
    let e = ctx.conv2d_weight_grad(x.view(), dy.view(), [3, 3], &Conv2dParams::new()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    // An input size that does not give dY's size.
    let dy = Array4::<f32>::zeros((2, 3, 3, 3));
    let e = ctx.conv2d_input_grad(dy.view(), w.view(), [6, 5], &Conv2dParams::new()).unwrap_err();
    assert!(matches!(e, Error::InputSizeMismatch { .. }), "{e}");
}

#[test]
fn device_tensors_are_checked() {
    let ctx = ctx();
    let x = ctx.upload(Array4::<f32>::zeros((1, 1, 4, 4)).view()).unwrap();
    let w = ctx.upload(Array4::<f32>::zeros((1, 1, 3, 3)).view()).unwrap();
    // Rank 2 where rank 4 is needed.
    let flat = ctx.upload(Array2::<f32>::zeros((4, 4)).view()).unwrap();
    let e = ctx.forward(&flat, &w, None, &Conv2dParams::new()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    // Output of the wrong shape, and an output that is an input.
    let bad = ctx.upload(Array4::<f32>::zeros((1, 1, 3, 3)).view()).unwrap();
    let e = ctx.forward_into(&x, &w, None, &Conv2dParams::new(), &bad).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    // With a 1×1 kernel the output has the input's shape, so only the aliasing check can refuse it.
    let one = ctx.upload(Array4::<f32>::ones((1, 1, 1, 1)).view()).unwrap();
    let e = ctx.forward_into(&x, &one, None, &Conv2dParams::new(), &x).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("one of the inputs"), "{e}");
    // A download of the wrong rank.
    let e = ctx.download::<ndarray::Ix2>(&x).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
}

#[test]
fn tensors_from_another_context_are_refused() {
    let a = ctx();
    let b = Context::new().unwrap();
    let x = b.upload(Array4::<f32>::zeros((1, 1, 4, 4)).view()).unwrap();
    let w = a.upload(Array4::<f32>::zeros((1, 1, 3, 3)).view()).unwrap();
    let e = a.forward(&x, &w, None, &Conv2dParams::new()).unwrap_err();
    assert_eq!(e, Error::ForeignTensor);
}

#[test]
fn tensor_beyond_the_binding_limit() {
    let ctx = ctx();
    let limit = ctx.limits().max_storage_buffer_binding_size;
    // An output larger than the binding limit is refused before wgpu sees it. The inputs stay small:
    // a 1×1 kernel with K filters on a C=1 image multiplies the output size by K.
    let side = 1024usize;
    let k = usize::try_from(limit / (4 * (side * side) as u64) + 1).unwrap();
    let x = ctx.upload(Array4::<f32>::zeros((1, 1, side, side)).view()).unwrap();
    let w = ctx.upload(Array4::<f32>::zeros((k, 1, 1, 1)).view()).unwrap();
    let e = ctx.forward(&x, &w, None, &Conv2dParams::new()).unwrap_err();
    assert!(matches!(e, Error::DeviceLimit { .. }), "{e}");
    assert!(e.to_string().contains(&limit.to_string()) || e.to_string().contains("max_buffer_size"), "{e}");
}

#[test]
fn an_adapter_name_that_matches_nothing() {
    let opts = AdapterOptions { name: Some("no such adapter 1234".into()), ..AdapterOptions::from_env() };
    let e = Context::with_options(&opts).unwrap_err();
    assert!(matches!(e, Error::NoAdapter { .. }), "{e}");
    assert!(e.to_string().contains("no such adapter 1234"), "{e}");
}

/// A context over a device the caller made runs the same kernels.
#[test]
fn a_callers_device_can_be_wrapped() {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).unwrap();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let ctx = Context::from_device(device, queue);
    assert_eq!(ctx.adapter_info().name, adapter.get_info().name);
    let x = Array4::from_shape_fn((1, 1, 4, 4), |(_, _, h, w)| (h * 4 + w) as f32);
    let w = Array4::<f32>::ones((1, 1, 2, 2));
    let y = ctx.conv2d(x.view(), w.view(), None, &Conv2dParams::new()).unwrap();
    // Each output sums a 2×2 window of the ramp: 4·(top-left) + 10.
    assert_eq!(y, Array4::from_shape_fn((1, 1, 3, 3), |(_, _, p, q)| (4 * (p * 4 + q) + 10) as f32));
}
