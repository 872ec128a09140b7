//! Data parallelism in one process (`convgrad::dist::DataParallel`): a batch's weight and bias
//! gradients spread over 1 to 4 contexts are bitwise the same, and within the error bound of the f64
//! reference, on NCHW and NHWC layers with stride, padding, dilation and groups.

mod common;

use common::{Rng, check, ctx};
use convgrad::dist::{DataParallel, Gradients};
use convgrad::{Context, Conv2dParams, Layout, reference};
use ndarray::{Array4, ArrayView4};

/// `count` contexts over the test adapter's device: the first one over a device of its own, so the
/// run crosses devices too.
fn contexts(count: usize) -> Vec<Context> {
    let own = Context::new().expect("a second device on the test adapter");
    let own = own.with_profile(ctx().profile().class);
    std::iter::once(own)
        .chain((1..count).map(|_| Context::from_device(ctx().device().clone(), ctx().queue().clone())))
        .map(|c| c.with_profile(ctx().profile().class))
        .collect()
}

fn same_bits(a: &Gradients, b: &Gradients) -> bool {
    let bits = |g: &Gradients| g.dw.iter().chain(g.db.iter()).map(|v| v.to_bits()).collect::<Vec<u32>>();
    bits(a) == bits(b)
}

fn run(x: ArrayView4<'_, f32>, dy: ArrayView4<'_, f32>, kernel: [usize; 2], params: &Conv2dParams, chunk: usize) {
    let one = DataParallel::new(contexts(1), chunk).unwrap().gradients(x, dy, kernel, params).unwrap();
    for count in 2..=4 {
        let got = DataParallel::new(contexts(count), chunk).unwrap().gradients(x, dy, kernel, params).unwrap();
        assert!(same_bits(&got, &one), "{count} contexts give other bits than one ({params:?})");
    }
    // Against the f64 reference, within the bound of a sum of N·P·Q products.
    let geo = params
        .geometry_for_weight_grad(
            [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]],
            [dy.shape()[0], dy.shape()[1], dy.shape()[2], dy.shape()[3]],
            kernel,
        )
        .unwrap();
    let want = reference::weight_grad(x, dy, kernel, params).unwrap();
    let mag = reference::weight_grad(x.mapv(f32::abs).view(), dy.mapv(f32::abs).view(), kernel, params).unwrap();
    let len = geo.n * geo.p * geo.q;
    check(&one.dw, &want, &mag, len, 1e-5).unwrap_or_else(|e| panic!("dW of {params:?}: {e}"));
    let want = reference::bias_grad(dy, params.layout);
    let mag = reference::bias_grad(dy.mapv(f32::abs).view(), params.layout);
    check(&one.db, &want, &mag, len, 1e-5).unwrap_or_else(|e| panic!("dB of {params:?}: {e}"));
}

#[test]
fn one_to_four_contexts_give_the_same_bits_nchw() {
    let params = Conv2dParams::new().padding(1, 1);
    let mut rng = Rng::new(5);
    let x: Array4<f32> = rng.array((7, 3, 9, 8));
    let dy: Array4<f32> = rng.array((7, 4, 9, 8));
    // 7 samples in chunks of 2: four chunks, the last of one sample.
    run(x.view(), dy.view(), [3, 3], &params, 2);
}

#[test]
fn one_to_four_contexts_give_the_same_bits_nhwc_strided_grouped() {
    let params = Conv2dParams::new().stride(2, 1).padding(1, 2).dilation(1, 2).groups(2).layout(Layout::Nhwc);
    let mut rng = Rng::new(6);
    let x: Array4<f32> = rng.array((5, 10, 11, 4));
    let geo = params.geometry([5, 10, 11, 4], [6, 3, 3, 2]).unwrap();
    let dy: Array4<f32> = rng.array(geo.output_shape());
    run(x.view(), dy.view(), [3, 3], &params, 1);
}

#[test]
fn a_batch_that_does_not_match_its_gradient_is_an_error() {
    let params = Conv2dParams::new();
    let mut rng = Rng::new(7);
    let x: Array4<f32> = rng.array((4, 1, 8, 8));
    let dy: Array4<f32> = rng.array((3, 2, 6, 6));
    let dp = DataParallel::new(contexts(2), 1).unwrap();
    assert!(dp.gradients(x.view(), dy.view(), [3, 3], &params).is_err());
    assert!(DataParallel::new(Vec::new(), 1).is_err());
    assert!(DataParallel::new(contexts(1), 0).is_err());
}

/// More contexts than chunks, with a batch that is not a multiple of the chunk (7 samples in chunks
/// of 3 over 4 contexts; 3 samples in a chunk of 8 over 2): the contexts past the last chunk hold no
/// samples and still take part in the exchange. These panicked in one member and left the others
/// waiting forever; now every count gives the one-context bits.
#[test]
fn contexts_with_no_chunk_take_part_and_give_the_same_bits() {
    let params = Conv2dParams::new().padding(1, 0);
    let mut rng = Rng::new(8);
    for (batch, chunk, counts) in [(7, 3, 1..=5), (3, 8, 1..=3), (6, 3, 1..=4)] {
        let x: Array4<f32> = rng.array((batch, 2, 6, 5));
        let dy: Array4<f32> = rng.array((batch, 3, 6, 3));
        let one =
            DataParallel::new(contexts(1), chunk).unwrap().gradients(x.view(), dy.view(), [3, 3], &params).unwrap();
        for count in counts {
            let (tx, rx) = std::sync::mpsc::channel();
            let (xc, dyc) = (x.clone(), dy.clone());
            std::thread::spawn(move || {
                let dp = DataParallel::new(contexts(count), chunk).unwrap();
                let _ = tx.send(dp.gradients(xc.view(), dyc.view(), [3, 3], &params));
            });
            let got = rx
                .recv_timeout(std::time::Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("{batch} samples in chunks of {chunk} over {count}: no answer in 120 s"))
                .unwrap_or_else(|e| panic!("{batch} samples in chunks of {chunk} over {count}: {e}"));
            assert!(same_bits(&got, &one), "{batch} samples in chunks of {chunk} over {count} contexts");
        }
    }
}
