//! Exact cases worked out by hand: small integers, so every f32 sum is exact and the GPU must match
//! to the bit.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::ctx;
use convgrad::{Conv2dParams, Layout};
use ndarray::{Array, Array2, Array3, Array4, array, s};

fn ramp(h: usize, w: usize) -> Array2<f32> {
    Array::from_shape_fn((h, w), |(i, j)| (i * w + j + 1) as f32)
}

#[test]
fn single_channel_forward_and_weight_grad_by_hand() {
    let ctx = ctx();
    // X = [[1,2,3],[4,5,6],[7,8,9]], W = [[1,0],[0,-1]]: Y(p,q) = X(p,q) − X(p+1,q+1) = −4.
    let x = ramp(3, 3);
    let w = array![[[1.0f32, 0.0], [0.0, -1.0]]];
    let y = ctx.correlate(x.view(), w.view()).unwrap();
    assert_eq!(y, Array3::from_elem((1, 2, 2), -4.0));
    // ∂J/∂W(i,j) = Σ_pq X(p+i,q+j)·dY(p,q); with dY = 1 it is the sum of each 2×2 shifted window:
    // (0,0): 1+2+4+5 = 12, (0,1): 2+3+5+6 = 16, (1,0): 4+5+7+8 = 24, (1,1): 5+6+8+9 = 28.
    let dy = Array3::from_elem((1, 2, 2), 1.0f32);
    let dw = ctx.correlate_weight_grad(x.view(), dy.view()).unwrap();
    assert_eq!(dw, array![[[12.0, 16.0], [24.0, 28.0]]]);
}

#[test]
fn two_filters_single_channel() {
    let ctx = ctx();
    // 2×4 image, filters [1 1] (pairwise sums) and [1 −1] (differences) of size 1×2.
    let x = array![[1.0f32, 3.0, 6.0, 10.0], [0.0, 2.0, 2.0, 5.0]];
    let w = array![[[1.0f32, 1.0]], [[1.0, -1.0]]];
    let y = ctx.correlate(x.view(), w.view()).unwrap();
    assert_eq!(y, array![[[4.0, 9.0, 16.0], [2.0, 4.0, 7.0]], [[-2.0, -3.0, -4.0], [-2.0, 0.0, -3.0]]]);
    // dY = Y for filter 0 only: dW^0(0,j) = Σ_pq X(p, q+j)·Y^0(p,q).
    let mut dy = Array3::<f32>::zeros((2, 2, 3));
    dy.slice_mut(s![0, .., ..]).assign(&y.slice(s![0, .., ..]));
    let dw = ctx.correlate_weight_grad(x.view(), dy.view()).unwrap();
    // j=0: 1·4+3·9+6·16+0·2+2·4+2·7 = 4+27+96+0+8+14 = 149; j=1: 3·4+6·9+10·16+2·2+2·4+5·7 = 12+54+160+4+8+35 = 273.
    assert_eq!(dw, array![[[149.0, 273.0]], [[0.0, 0.0]]]);
}

#[test]
fn delta_kernel_shifts_the_image() {
    let ctx = ctx();
    let x = ramp(5, 6);
    // A 3×3 delta at (1, 2): Y(p,q) = X(p+1, q+2).
    let mut w = Array3::<f32>::zeros((1, 3, 3));
    w[[0, 1, 2]] = 1.0;
    let y = ctx.correlate(x.view(), w.view()).unwrap();
    assert_eq!(y.slice(s![0, .., ..]), x.slice(s![1..4, 2..6]));
}

#[test]
fn padding_and_stride_by_hand() {
    let ctx = ctx();
    // 4×4 ramp 1..16, 3×3 ones, padding 1, stride 2: P = ⌊(4+2−3)/2⌋+1 = 2.
    // (0,0) rows −1..1, cols −1..1: 1+2+5+6 = 14; (0,1) rows −1..1, cols 1..3: 2+3+4+6+7+8 = 30;
    // (1,0) rows 1..3, cols −1..1: 5+6+9+10+13+14 = 57; (1,1) rows 1..3, cols 1..3: 6+7+8+10+11+12+14+15+16 = 99.
    let x = ramp(4, 4).into_shape_with_order((1, 1, 4, 4)).unwrap();
    let w = Array4::<f32>::ones((1, 1, 3, 3));
    let params = Conv2dParams::new().padding(1, 1).stride(2, 2);
    let y = ctx.conv2d(x.view(), w.view(), None, &params).unwrap();
    assert_eq!(y, array![[[[14.0, 30.0], [57.0, 99.0]]]]);
}

#[test]
fn same_padding_with_an_even_kernel_by_hand() {
    let ctx = ctx();
    // PyTorch's padding='same' for a 2×2 kernel: 0 zeros above and left, 1 below and right, so
    // Y(p,q) = X(p,q) + X(p,q+1) + X(p+1,q) + X(p+1,q+1) with X = 0 past the last row and column.
    // torch.nn.functional.conv2d(x, torch.ones(1, 1, 2, 2), padding='same') gives the same.
    let x = ramp(3, 3).into_shape_with_order((1, 1, 3, 3)).unwrap();
    let w = Array4::<f32>::ones((1, 1, 2, 2));
    let params = Conv2dParams::new().padding_same();
    let y = ctx.conv2d(x.view(), w.view(), None, &params).unwrap();
    assert_eq!(y, array![[[[12.0, 16.0, 9.0], [24.0, 28.0, 15.0], [15.0, 17.0, 9.0]]]]);
    // dW(i,j) = Σ_pq X(p+i, q+j) with dY = 1: all of X (45), its last two columns (33), its last two
    // rows (39), their corner (28).
    let dy = Array4::<f32>::ones((1, 1, 3, 3));
    let dw = ctx.conv2d_weight_grad(x.view(), dy.view(), [2, 2], &params).unwrap();
    assert_eq!(dw, array![[[[45.0, 33.0], [39.0, 28.0]]]]);
    // dX(h,w) = Σ W(i,j) over the taps with h−i, w−j inside the 3×3 output: W = [[1,2],[3,4]] gives
    // 1 at the corner, 1+2 along the top row, 1+3 down the left column, 10 elsewhere.
    let w = array![[[[1.0f32, 2.0], [3.0, 4.0]]]];
    let dx = ctx.conv2d_input_grad(dy.view(), w.view(), [3, 3], &params).unwrap();
    assert_eq!(dx, array![[[[1.0, 3.0, 3.0], [4.0, 10.0, 10.0], [4.0, 10.0, 10.0]]]]);
    // Per side: 1 row above only, nothing else. Y(p, q) = X(p−1, q) + X(p−1, q+1) + X(p, q) + X(p, q+1).
    let params = Conv2dParams::new().padding_sides(1, 0, 0, 0);
    let w = Array4::<f32>::ones((1, 1, 2, 2));
    let y = ctx.conv2d(x.view(), w.view(), None, &params).unwrap();
    assert_eq!(y, array![[[[3.0, 5.0], [12.0, 16.0], [24.0, 28.0]]]]);
}

#[test]
fn channels_last_by_hand() {
    let ctx = ctx();
    // NHWC X[0, h, w, c] = 10·(2h + w) + c over 2×2 positions and 2 channels; OHWI 1×1 weights: filter
    // 0 takes channel 0, filter 1 adds both. Y is NHWC: Y[0, h, w, 0] = 10·(2h + w), Y[.., 1] = twice
    // that plus 1.
    let x = Array::from_shape_fn((1, 2, 2, 2), |(_, h, w, c)| (10 * (2 * h + w) + c) as f32);
    let w = array![[[[1.0f32, 0.0]]], [[[1.0, 1.0]]]];
    let params = Conv2dParams::new().layout(Layout::Nhwc);
    let y = ctx.conv2d(x.view(), w.view(), None, &params).unwrap();
    let expect = Array::from_shape_fn((1, 2, 2, 2), |(_, h, w, k)| (10 * (2 * h + w) * (k + 1) + k) as f32);
    assert_eq!(y, expect);
    // dB sums dY over N, H, W for each channel, the last axis here.
    assert_eq!(ctx.conv2d_bias_grad(y.view(), Layout::Nhwc).unwrap(), array![60.0, 124.0]);
}

#[test]
fn dilation_by_hand() {
    let ctx = ctx();
    // 5×5 ramp, 2×2 ones with dilation 2: Y(p,q) = X(p,q)+X(p,q+2)+X(p+2,q)+X(p+2,q+2), P = 3.
    let x = ramp(5, 5).into_shape_with_order((1, 1, 5, 5)).unwrap();
    let w = Array4::<f32>::ones((1, 1, 2, 2));
    let y = ctx.conv2d(x.view(), w.view(), None, &Conv2dParams::new().dilation(2, 2)).unwrap();
    // (0,0): 1+3+11+13 = 28; each step right adds 4, each step down adds 20.
    let expect = Array::from_shape_fn((1, 1, 3, 3), |(_, _, p, q)| (28 + 20 * p + 4 * q) as f32);
    assert_eq!(y, expect);
}

#[test]
fn groups_keep_channels_apart() {
    let ctx = ctx();
    // C = 2, K = 2, G = 2, 1×1 filters 2 and 3: Y[0] = 2·X[0], Y[1] = 3·X[1].
    let x = Array::from_shape_fn((1, 2, 2, 3), |(_, c, h, w)| (c * 10 + h * 3 + w) as f32);
    let w = array![[[[2.0f32]]], [[[3.0]]]];
    let y = ctx.conv2d(x.view(), w.view(), None, &Conv2dParams::new().groups(2)).unwrap();
    let mut expect = x.clone();
    expect.slice_mut(s![.., 0, .., ..]).mapv_inplace(|v| 2.0 * v);
    expect.slice_mut(s![.., 1, .., ..]).mapv_inplace(|v| 3.0 * v);
    assert_eq!(y, expect);
}

#[test]
fn bias_forward_and_gradient_by_hand() {
    let ctx = ctx();
    let x = Array4::<f32>::ones((2, 1, 3, 3));
    let w = Array4::<f32>::ones((3, 1, 2, 2));
    let b = array![0.5f32, -1.0, 2.0];
    let y = ctx.conv2d(x.view(), w.view(), Some(b.view()), &Conv2dParams::new()).unwrap();
    for k in 0..3 {
        assert!(y.slice(s![.., k, .., ..]).iter().all(|&v| v == 4.0 + b[k]));
    }
    // dB[k] = Σ_n Σ_p Σ_q dY: with dY[n,k,p,q] = k+1 over N·P·Q = 2·2·2 = 8 terms.
    let dy = Array::from_shape_fn((2, 3, 2, 2), |(_, k, _, _)| (k + 1) as f32);
    let db = ctx.conv2d_bias_grad(dy.view(), Layout::Nchw).unwrap();
    assert_eq!(db, array![8.0, 16.0, 24.0]);
}

#[test]
fn input_grad_by_hand() {
    let ctx = ctx();
    let w = array![[[1.0f32, 2.0], [3.0, 4.0]]];
    // A single 1 at dY(0,0) scatters W into the top-left corner of dX.
    let dy = array![[[1.0f32, 0.0], [0.0, 0.0]]];
    let dx = ctx.correlate_input_grad(dy.view(), w.view()).unwrap();
    assert_eq!(dx, array![[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]);

    // Stride 2, dY all ones: the 2×2 kernel tiles a 4×4 input; a 5×5 input (same P = 2) gets zeros in
    // its last row and column, which no output reads.
    let params = Conv2dParams::new().stride(2, 2);
    let dy = Array4::<f32>::ones((1, 1, 2, 2));
    let w4 = w.clone().into_shape_with_order((1, 1, 2, 2)).unwrap();
    let tile = array![[1.0f32, 2.0, 1.0, 2.0], [3.0, 4.0, 3.0, 4.0], [1.0, 2.0, 1.0, 2.0], [3.0, 4.0, 3.0, 4.0]];
    let dx4 = ctx.conv2d_input_grad(dy.view(), w4.view(), [4, 4], &params).unwrap();
    assert_eq!(dx4.slice(s![0, 0, .., ..]), tile);
    let dx5 = ctx.conv2d_input_grad(dy.view(), w4.view(), [5, 5], &params).unwrap();
    assert_eq!(dx5.slice(s![0, 0, ..4, ..4]), tile);
    assert!(dx5.slice(s![0, 0, 4, ..]).iter().chain(dx5.slice(s![0, 0, .., 4]).iter()).all(|&v| v == 0.0));
}

#[test]
fn integer_sweep_is_exact() {
    // Random small integers on a general layer: every partial sum is an integer below 2^24, so the
    // GPU result must equal the f64 reference exactly.
    let ctx = ctx();
    let mut rng = common::Rng::new(99);
    let params = Conv2dParams::new().stride(2, 1).padding(1, 2).dilation(2, 1).groups(2);
    let x: Array4<f32> = rng.int_array((2, 4, 11, 9), -4, 4);
    let w: Array4<f32> = rng.int_array((6, 2, 3, 4), -3, 3);
    let y = ctx.conv2d(x.view(), w.view(), None, &params).unwrap();
    let y_ref = convgrad::reference::forward(x.view(), w.view(), None, &params).unwrap();
    assert_eq!(y.mapv(f64::from), y_ref);
    let dw = ctx.conv2d_weight_grad(x.view(), y.view(), [3, 4], &params).unwrap();
    assert_eq!(dw.mapv(f64::from), convgrad::reference::weight_grad(x.view(), y.view(), [3, 4], &params).unwrap());
    let dx = ctx.conv2d_input_grad(y.view(), w.view(), [11, 9], &params).unwrap();
    assert_eq!(dx.mapv(f64::from), convgrad::reference::input_grad(y.view(), w.view(), [11, 9], &params).unwrap());
}
