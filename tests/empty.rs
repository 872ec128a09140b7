//! A batch of zero samples, as PyTorch runs it: the forward pass and the input gradient give empty
//! tensors, the weight and bias gradients zeros (a sum of no terms), and no pass is dispatched; for
//! the 2-D, transposed and 1-D layers, both layouts and every dtype, on both profiles.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::nan_tensor_as;
use convgrad::plan::program::Step;
use convgrad::{Conv1dParams, Conv2dGeometry, Conv2dParams, ConvTranspose2dParams, Elem, Layout, Op};
use ndarray::{Array1, Array4, ArrayD, Ix1, Ix4, IxDyn};

#[test]
fn an_empty_batch_gives_empty_results_and_zero_gradients() {
    for class in ["cpu", "gpu"] {
        let ctx = common::path(&format!("auto/{class}"));
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let params = Conv2dParams::new().stride(2, 1).padding(1, 1).groups(2).layout(layout);
            let geo = Conv2dGeometry::new(0, 4, [9, 8], 6, [3, 3], params).unwrap();
            for elem in [Elem::F32, Elem::F16, Elem::Bf16] {
                let case = format!("{class} {layout:?} {elem}");
                let x = ctx.upload_as(ArrayD::<f32>::zeros(IxDyn(&geo.input_shape())).view(), elem).unwrap();
                assert!(x.is_empty());
                let w = ctx.upload_as(Array4::<f32>::ones(geo.weight_shape()).view(), elem).unwrap();
                let b = ctx.upload_as(Array1::<f32>::ones(6).view(), elem).unwrap();
                let dy = ctx.zeros_as(&geo.output_shape(), elem).unwrap();
                let y = ctx.forward(&x, &w, Some(&b), &params).unwrap();
                assert_eq!(y.shape(), geo.output_shape(), "{case}");
                let y: Array4<f32> = ctx.download::<Ix4>(&y).unwrap();
                assert_eq!(y.len(), 0, "{case}");
                let dx = ctx.input_grad(&dy, &w, [9, 8], &params).unwrap();
                assert_eq!((dx.shape(), dx.len()), (&geo.input_shape()[..], 0), "{case}");
                // Into tensors full of NaN: every element is overwritten with 0.
                let dw = nan_tensor_as(ctx, &geo.weight_shape(), Elem::F32);
                ctx.weight_grad_into(&x, &dy, &params, &dw).unwrap();
                let dw: Array4<f32> = ctx.download(&dw).unwrap();
                assert!(dw.iter().all(|v| v.to_bits() == 0), "{case}: dW {dw:?}");
                let db = nan_tensor_as(ctx, &[6], elem);
                ctx.bias_grad_into(&dy, layout, &db).unwrap();
                let db: Array1<f32> = ctx.download::<Ix1>(&db).unwrap();
                assert!(db.iter().all(|v| v.to_bits() == 0), "{case}: dB {db:?}");
                assert_eq!(ctx.weight_grad(&x, &dy, [3, 3], &params).unwrap().shape(), geo.weight_shape());
                // No pass: the programs are empty, or one clear.
                for op in [Op::Forward, Op::WeightGrad, Op::InputGrad] {
                    let p = ctx.program(op, &geo, elem).unwrap();
                    assert!(!p.steps.iter().any(|s| matches!(s, Step::Pass(_))), "{case}: {p}");
                    assert_eq!(p.steps.len(), usize::from(op == Op::WeightGrad), "{case}: {p}");
                }
                // A cast of an empty tensor is empty.
                assert!(ctx.cast(&y_tensor(ctx, &geo, elem), Elem::F32).unwrap().is_empty());
            }
        }
        // The transposed and 1-D layers run the same programs.
        let t = ConvTranspose2dParams::new().stride(2, 2).padding(1, 1).output_padding(1, 1);
        let x = ctx.zeros(&[0, 3, 4, 5]).unwrap();
        let w = ctx.zeros(&[3, 2, 3, 3]).unwrap();
        let y = ctx.conv_transpose(&x, &w, None, &t).unwrap();
        assert_eq!(y.shape(), [0, 2, 8, 10]);
        let dw = ctx.conv_transpose_weight_grad(&x, &y, [3, 3], &t).unwrap();
        let dw: Array4<f32> = ctx.download(&dw).unwrap();
        assert!(dw.iter().all(|v| *v == 0.0));
        assert_eq!(ctx.conv_transpose_input_grad(&y, &w, &t).unwrap().shape(), [0, 3, 4, 5]);
        let p = Conv1dParams::new().padding_same();
        let x = ctx.zeros(&[0, 2, 7]).unwrap();
        let w = ctx.zeros(&[4, 2, 3]).unwrap();
        let y = ctx.forward_1d(&x, &w, None, &p).unwrap();
        assert_eq!(y.shape(), [0, 4, 7]);
        let dw: ndarray::Array3<f32> = ctx.download(&ctx.weight_grad_1d(&x, &y, 3, &p).unwrap()).unwrap();
        assert!(dw.iter().all(|v| *v == 0.0));
    }
}

fn y_tensor(ctx: &convgrad::Context, geo: &Conv2dGeometry, elem: Elem) -> convgrad::Tensor {
    ctx.zeros_as(&geo.output_shape(), elem).unwrap()
}

/// Only the batch may be empty: an empty channel, filter or spatial size is still a typed error,
/// and so are the training helpers' empty tensors.
#[test]
fn only_the_batch_may_be_empty() {
    let ctx = common::ctx();
    let p = Conv2dParams::new();
    for (x, w) in [([1, 0, 5, 5], [2, 0, 3, 3]), ([1, 2, 0, 5], [2, 2, 3, 3]), ([1, 2, 5, 5], [0, 2, 3, 3])] {
        let e = ctx.forward(&ctx.zeros(&x).unwrap(), &ctx.zeros(&w).unwrap(), None, &p).unwrap_err();
        assert!(matches!(e, convgrad::Error::ZeroDimension { .. }), "{x:?} {w:?}: {e}");
    }
    let e = ctx.bias_grad(&ctx.zeros(&[2, 3, 0, 4]).unwrap(), Layout::Nchw).unwrap_err();
    assert!(matches!(e, convgrad::Error::ZeroDimension { .. }), "{e}");
    let empty = ctx.zeros(&[0, 3]).unwrap();
    let e = ctx.axpby(1.0, &empty, 1.0, &empty, &ctx.zeros(&[0, 3]).unwrap()).unwrap_err();
    assert!(matches!(e, convgrad::Error::ZeroDimension { .. }), "{e}");
    assert!(ctx.sum_squares(&empty).is_err());
}
