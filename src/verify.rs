//! Error bounds, reproducible test data and the built-in self-test behind `convgrad check`.
//!
//! A sum of `L` products computed in `f32`, in any order, differs from the exact sum by at most
//! `γ_L · Σ|products|` with `γ_L = L·u / (1 − L·u)` and `u = 2⁻²⁴` (Higham, *Accuracy and Stability of
//! Numerical Algorithms*, §3.1). Applying the same operation to `|inputs|` in `f64` gives
//! `Σ|products|` for every output element at once, so each GPU element can be checked against the
//! `f64` reference with a bound that holds whatever the data, with no tolerance picked by hand.

#[cfg(not(target_arch = "wasm32"))]
use ndarray::Array4;
use ndarray::{Array, Dimension};

use crate::elem::Elem;
use crate::geometry::{Conv2dParams, ConvTranspose2dParams, Layout};
#[cfg(not(target_arch = "wasm32"))]
use crate::{error::Result, geometry::Conv2dGeometry, gpu::Context, reference};

/// Unit roundoff of `f32`, `2⁻²⁴`.
pub const U32: f64 = f32::EPSILON as f64 / 2.0;

/// `γ_L = L·u / (1 − L·u)` for `f32`.
#[must_use]
pub fn gamma(len: usize) -> f64 {
    let lu = len as f64 * U32;
    lu / (1.0 - lu)
}

/// Normwise relative error `‖gpu − ref‖₂ / ‖ref‖₂` (`‖gpu‖₂` if the reference is zero; NaN if any
/// element is NaN).
#[must_use]
pub fn rel_err<D: Dimension>(gpu: &Array<f32, D>, reference: &Array<f64, D>) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, r) in gpu.iter().zip(reference.iter()) {
        let d = f64::from(*g) - r;
        num += d * d;
        den += r * r;
    }
    if den == 0.0 { num.sqrt() } else { (num / den).sqrt() }
}

/// The largest ratio of |gpu − reference| to the bound `γ_len·magnitude + u·|reference|` (the last term
/// is the final rounding to `f32`) over all elements. At most 1 means every element is within its
/// bound; a NaN or a shape mismatch gives infinity.
#[must_use]
pub fn bound_ratio<D: Dimension>(
    gpu: &Array<f32, D>,
    reference: &Array<f64, D>,
    magnitude: &Array<f64, D>,
    len: usize,
) -> f64 {
    bound_ratio_as(gpu, reference, magnitude, len, Elem::F32)
}

/// Unit roundoff of a stored element type: `2⁻²⁴` (f32), `2⁻¹¹` (f16), `2⁻⁸` (bf16).
#[must_use]
pub fn unit_roundoff(elem: Elem) -> f64 {
    match elem {
        Elem::F32 => U32,
        Elem::F16 => 2f64.powi(-11),
        Elem::Bf16 => 2f64.powi(-8),
    }
}

/// [`bound_ratio`] for a result stored as `elem`: the `f32` bound, then the rounding to `elem`, at
/// most one unit roundoff of the `f32` result (relative), or half the smallest subnormal half
/// (absolute). The products of two halves are exact in `f32`, so the sum's bound is the `f32` one
/// over the rounded inputs.
#[must_use]
pub fn bound_ratio_as<D: Dimension>(
    gpu: &Array<f32, D>,
    reference: &Array<f64, D>,
    magnitude: &Array<f64, D>,
    len: usize,
    elem: Elem,
) -> f64 {
    if gpu.shape() != reference.shape() || gpu.shape() != magnitude.shape() {
        return f64::INFINITY;
    }
    // The rounding to `elem` after the f32 result, relative and absolute: none for f32 itself.
    let (uh, floor) = match elem {
        Elem::F32 => (0.0, 0.0),
        Elem::F16 => (unit_roundoff(elem), 2f64.powi(-25)),
        Elem::Bf16 => (unit_roundoff(elem), f64::from(f32::MIN_POSITIVE)),
    };
    let g = gamma(len);
    gpu.iter().zip(reference.iter().zip(magnitude.iter())).fold(0.0, |worst, (&v, (&r, &m))| {
        let err = (f64::from(v) - r).abs();
        let f32_bound = g * m + U32 * r.abs();
        let bound = f32_bound + uh * (r.abs() + f32_bound) + floor + f64::from(f32::MIN_POSITIVE);
        let ratio = err / bound;
        if ratio.is_nan() { f64::INFINITY } else { worst.max(ratio) }
    })
}

/// `a` rounded to `elem` and back: the values a tensor of `elem` holds.
#[must_use]
pub fn rounded<D: Dimension>(a: &Array<f32, D>, elem: Elem) -> Array<f32, D> {
    a.mapv(|v| elem.to_f32(elem.from_f32(v)))
}

/// SplitMix64: a small seeded generator, so that test data and demo images are reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`, on a grid of 2⁻²³.
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// An integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.saturating_sub(lo).saturating_add(1).max(1) as u64;
        lo + (self.next_u64() % span) as i64
    }

    /// An array of uniform values in `[-1, 1)`.
    pub fn array<D: Dimension, Sh: ndarray::ShapeBuilder<Dim = D>>(&mut self, shape: Sh) -> Array<f32, D> {
        Array::from_shape_simple_fn(shape, || self.uniform())
    }

    /// An array of integers in `[lo, hi]`: sums of their products are exact in `f32` while they stay
    /// below 2²⁴.
    pub fn int_array<D: Dimension, Sh: ndarray::ShapeBuilder<Dim = D>>(
        &mut self,
        shape: Sh,
        lo: i64,
        hi: i64,
    ) -> Array<f32, D> {
        Array::from_shape_simple_fn(shape, || self.int(lo, hi) as f32)
    }
}

/// One line of the self-test.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// The operation checked.
    pub op: &'static str,
    /// The layer, as [`Conv2dGeometry::describe`] writes it.
    pub shape: String,
    /// Normwise relative error against the `f64` reference.
    pub rel_err: f64,
    /// Worst element error over its bound (≤ 1 passes).
    pub bound_ratio: f64,
    /// Whether the row passes: within the bound and within 1e-5 normwise.
    pub pass: bool,
}

/// Largest normwise relative error the self-test accepts.
pub const MAX_REL_ERR: f64 = 1e-5;

/// A layer as `(N, C, [H, W], K, [S, T], params)`.
pub type Layer = (usize, usize, [usize; 2], usize, [usize; 2], Conv2dParams);

/// A transposed layer as `(N, Cin, [H, W], Cout, [S, T], params)`.
pub type TransposedLayer = (usize, usize, [usize; 2], usize, [usize; 2], ConvTranspose2dParams);

/// The layers the self-test runs: each parameter on its own, then all together; 'same' and per-side
/// padding; channels last.
#[must_use]
pub fn self_test_layers() -> Vec<Layer> {
    let d = Conv2dParams::new();
    vec![
        (1, 1, [32, 29], 8, [5, 5], d),
        (4, 3, [12, 13], 4, [3, 3], d.stride(2, 3)),
        (2, 2, [9, 8], 3, [3, 5], d.padding(1, 2)),
        (1, 2, [14, 12], 2, [3, 2], d.dilation(2, 3)),
        (2, 6, [8, 9], 4, [3, 3], d.groups(2)),
        (2, 4, [15, 14], 6, [3, 2], d.stride(2, 1).padding(2, 1).dilation(1, 2).groups(2)),
        (2, 3, [8, 9], 4, [4, 2], d.padding_same()),
        (1, 2, [7, 10], 3, [3, 4], d.stride(2, 1).padding_sides(0, 2, 3, 1)),
        (2, 4, [15, 14], 6, [3, 2], d.stride(2, 1).padding(2, 1).dilation(1, 2).groups(2).layout(Layout::Nhwc)),
    ]
}

/// The edge shapes every kernel path is swept over (`tests/sweep.rs`) and the planner's variants are
/// validated on: degenerate sizes, primes, each parameter alone and together, the shapes that take
/// each vec4 padding offset, masked tiles of one and several rows, 16-filter tiles, strided input
/// gradients read in place, and rows wide enough for the vec4 weight gradient.
#[must_use]
pub fn edge_layers() -> Vec<(&'static str, Layer)> {
    let d = Conv2dParams::new();
    vec![
        ("1x1 kernel", (2, 3, [5, 7], 4, [1, 1], d)),
        ("kernel = image", (1, 2, [6, 5], 3, [6, 5], d)),
        ("single-channel seed-like", (1, 1, [32, 29], 8, [5, 5], d)),
        ("primes, non-square", (1, 1, [13, 17], 3, [5, 3], d)),
        ("batch N>1", (3, 2, [9, 11], 2, [3, 3], d)),
        ("C=1, many filters", (2, 1, [10, 11], 7, [3, 2], d)),
        ("not a workgroup multiple", (1, 1, [67, 3], 1, [1, 1], d)),
        ("one output", (1, 1, [1, 1], 1, [1, 1], d)),
        ("stride 2,3", (2, 3, [12, 13], 4, [3, 3], d.stride(2, 3))),
        ("stride > kernel", (1, 2, [10, 10], 2, [3, 3], d.stride(4, 4))),
        ("padding 1,2", (1, 2, [7, 8], 3, [3, 5], d.padding(1, 2))),
        ("padding > kernel", (1, 1, [3, 3], 1, [2, 2], d.padding(3, 3))),
        ("dilation 2,3", (1, 2, [11, 12], 2, [3, 2], d.dilation(2, 3))),
        ("groups 2", (2, 6, [8, 9], 4, [3, 3], d.groups(2))),
        ("depthwise", (1, 4, [7, 7], 4, [3, 3], d.groups(4))),
        ("groups 3, K/G=3", (1, 6, [5, 5], 9, [1, 1], d.groups(3))),
        ("everything", (2, 4, [15, 14], 6, [3, 2], d.stride(2, 1).padding(2, 1).dilation(1, 2).groups(2))),
        ("resnet-like", (2, 16, [14, 14], 16, [3, 3], d.padding(1, 1))),
        ("stem-like", (1, 3, [23, 21], 8, [7, 7], d.padding(3, 3).stride(2, 2))),
        ("mnist-like", (4, 1, [28, 28], 8, [5, 5], d)),
        // Rows of whole vec4s are padded by cutting aligned vec4s (pad_input_vec4.wgsl) at each
        // offset within a vec4: pw = 3 in the forward pass, a frame of 1 around dY in the input
        // gradient (pw = 2 and 0 above).
        ("vec4 rows, pw = 3", (1, 2, [6, 12], 3, [3, 3], d.padding(0, 3))),
        ("vec4 rows of dY, frame 1", (1, 2, [6, 10], 3, [3, 5], d.padding(1, 3))),
        // Rows of whole vec4s and a left padding of whole vec4s: the forward kernel reads X itself and
        // masks the padding (Pad::Mask), with one row per tile and with several.
        ("masked padding 2,4", (2, 3, [9, 16], 5, [3, 3], d.padding(2, 4))),
        ("masked rows, stride 2", (1, 2, [11, 12], 2, [3, 3], d.stride(2, 2))),
        // Strided input gradients that read dY itself (Q a multiple of 4, tiles of 16 columns): the
        // data columns of a window dense, their multiply-adds only; with a row stride and without.
        ("strided input gradient read in place", (2, 3, [9, 32], 4, [3, 5], d.stride(2, 2).padding(1, 2))),
        ("column-strided, dilated, read in place", (1, 2, [6, 59], 3, [2, 3], d.stride(1, 2).dilation(1, 2))),
        // Rows of 8 outputs or more take the weight gradient's vec4 kernel (most cases above, fewer
        // take the scalar one): its tail, a partial filter tile and a partial block of kernel rows.
        ("wide rows", (2, 3, [9, 70], 4, [3, 3], d.padding(1, 1))),
        // Q = 36, a multiple of 4: the weight gradient reads dY in place, without the padding pass.
        ("wide 5x5, K=9", (1, 2, [10, 40], 9, [5, 5], d)),
        ("wide, strided, dilated", (1, 4, [11, 83], 6, [3, 4], d.stride(1, 2).dilation(2, 2).groups(2))),
        // Kernel rows of 13 taps have no vec4 variant: the scalar register tiles without a window row,
        // strided along the row.
        ("kernel rows of 13 taps, strided", (2, 2, [9, 30], 3, [2, 13], d.padding(1, 6).stride(1, 2))),
        // Padding per side: only the leading zeros move the taps, the trailing ones add outputs. PyTorch's
        // 'same' with even kernels (the extra zero at the bottom and right) and dilated; a left padding
        // of whole vec4s with none on the right (masked reads); a bottom padding beyond the dilated
        // kernel, where the input gradient has no zero frame and gathers.
        ("same, even kernel", (2, 3, [8, 9], 4, [4, 2], d.padding_same())),
        ("same, dilated", (1, 2, [9, 12], 3, [3, 3], d.dilation(2, 2).padding_same())),
        ("padding per side", (2, 2, [7, 10], 3, [3, 4], d.padding_sides(0, 2, 3, 1))),
        ("padding per side, masked", (1, 2, [8, 16], 4, [3, 5], d.padding_sides(2, 0, 4, 0))),
        ("bottom padding > kernel, strided", (1, 2, [9, 9], 2, [3, 3], d.stride(2, 2).padding_sides(1, 3, 0, 2))),
        // TensorFlow's SAME at stride 2: 0 rows above and 1 below (even input), 1 and 1 on the odd
        // width; the padding comes from the input size.
        ("same-tf, strided", (2, 3, [10, 7], 4, [3, 3], d.stride(2, 2).padding_same_tf())),
        // Channels last: the NCHW kernels between device transposes, with partial 16×16 tiles.
        (
            "nhwc everything",
            (2, 4, [15, 14], 6, [3, 2], d.stride(2, 1).padding(2, 1).dilation(1, 2).groups(2).layout(Layout::Nhwc)),
        ),
        ("nhwc resnet-like", (2, 16, [14, 14], 16, [3, 3], d.padding(1, 1).layout(Layout::Nhwc))),
        ("nhwc same, even kernel", (3, 5, [8, 9], 3, [2, 2], d.padding_same().layout(Layout::Nhwc))),
    ]
}

/// Runs forward, weight, input and bias gradients of each self-test layer on `ctx` against the `f64`
/// reference, and a finite-difference check of the three gradients of `J = ½‖Y‖²` on a small layer.
///
/// # Errors
/// Only wgpu or device errors; a wrong result is a failing row, not an error.
#[cfg(not(target_arch = "wasm32"))]
pub fn self_test(ctx: &Context) -> Result<Vec<CheckRow>> {
    let mut rng = Rng::new(SELF_TEST_SEED);
    let mut rows = layer_rows(ctx, Elem::F32, &mut rng)?;
    rows.extend(transposed_rows(ctx, Elem::F32, &mut rng)?);
    rows.extend(one_d_rows(ctx, Elem::F32, &mut rng)?);
    rows.push(empty_batch_row(ctx, Elem::F32)?);
    rows.extend(finite_difference_rows(ctx, &mut rng)?);
    Ok(rows)
}

/// The seed of the self-test's data.
#[cfg(not(target_arch = "wasm32"))]
const SELF_TEST_SEED: u64 = 0xC0FFEE;

/// The self-test's layers with operands of `elem` (rounded from the same seeded data), on device
/// tensors: the forward pass and the input gradient stored in `elem`, the forward pass also into an
/// `f32` output, the weight and bias gradients in `f32` (their default), each against the `f64`
/// reference over the rounded operands with [`bound_ratio_as`]. A row passes within its bound and a
/// normwise error of [`MAX_REL_ERR`] or one unit roundoff of the stored type, whichever is larger.
///
/// # Errors
/// Only wgpu or device errors; a wrong result is a failing row.
#[cfg(not(target_arch = "wasm32"))]
pub fn self_test_as(ctx: &Context, elem: Elem) -> Result<Vec<CheckRow>> {
    let mut rng = Rng::new(SELF_TEST_SEED);
    let mut rows = layer_rows(ctx, elem, &mut rng)?;
    rows.extend(transposed_rows(ctx, elem, &mut rng)?);
    rows.extend(one_d_rows(ctx, elem, &mut rng)?);
    rows.push(empty_batch_row(ctx, elem)?);
    Ok(rows)
}

/// Rows for two 1-D layers (PyTorch's `same` on `[N, C, L]`; strided, dilated and grouped,
/// channels last), each op against the `f64` reference of the 2-D layer of height 1 over the same
/// values (the 1-D tensors are those 2-D tensors in memory).
#[cfg(not(target_arch = "wasm32"))]
fn one_d_rows(ctx: &Context, elem: Elem, rng: &mut Rng) -> Result<Vec<CheckRow>> {
    use ndarray::{Array3, Axis};
    let d = crate::geometry::Conv1dParams::new();
    let mut rows = Vec::new();
    for (x_shape, w_shape, params) in [
        ([2, 3, 40], [4, 3, 4], d.padding_same()),
        ([2, 37, 4], [6, 3, 2], d.stride(2).dilation(2).groups(2).padding(1).layout(Layout::Nhwc)),
    ] {
        let lay = params.layout;
        let geo = params.geometry(x_shape, w_shape)?;
        let p2 = params.conv2d();
        // The unit height: axis 2 of NCL, axis 1 of NLC.
        let unit = Axis(if lay == Layout::Nchw { 2 } else { 1 });
        let lift = |a: &Array3<f32>| a.clone().insert_axis(unit);
        let lower = |a: Array4<f64>| a.index_axis_move(unit, 0).into_dyn();
        let x: Array3<f32> = rounded(&rng.array(x_shape), elem);
        let w: Array3<f32> = rounded(&rng.array(w_shape), elem);
        let dy: Array3<f32> = rounded(&rng.array(lay.lower_1d(geo.output_shape())), elem);
        let abs = |a: &Array3<f32>| a.mapv(f32::abs);
        let [xd, wd, dyd] = [&x, &w, &dy].map(|a| ctx.upload_as(a.view(), elem));
        let (xd, wd, dyd) = (xd?, wd?, dyd?);
        let shape = format!("1-D {}", geo.describe());
        let mut row = |op, stored: Elem, gpu: &ndarray::ArrayD<f32>, r: &ndarray::ArrayD<f64>, m, len| {
            let (rel, ratio) = (rel_err(gpu, r), bound_ratio_as(gpu, r, m, len, stored));
            let pass = ratio <= 1.0 && rel <= MAX_REL_ERR.max(unit_roundoff(stored));
            rows.push(CheckRow { op, shape: shape.clone(), rel_err: rel, bound_ratio: ratio, pass });
        };
        let s = geo.t;
        let y = ctx.forward_1d(&xd, &wd, None, &params)?;
        let y_ref = lower(reference::forward(lift(&x).view(), lift(&w).view(), None, &p2)?);
        let y_mag = lower(reference::forward(lift(&abs(&x)).view(), lift(&abs(&w)).view(), None, &p2)?);
        row("conv1d", y.dtype(), &ctx.download(&y)?, &y_ref, &y_mag, geo.channels_per_group() * s);
        let dw = ctx.weight_grad_1d(&xd, &dyd, s, &params)?;
        let dw_ref = lower(reference::weight_grad(lift(&x).view(), lift(&dy).view(), [1, s], &p2)?);
        let dw_mag = lower(reference::weight_grad(lift(&abs(&x)).view(), lift(&abs(&dy)).view(), [1, s], &p2)?);
        row("conv1d-dW", dw.dtype(), &ctx.download(&dw)?, &dw_ref, &dw_mag, geo.n * geo.q);
        let dx = ctx.input_grad_1d(&dyd, &wd, geo.w, &params)?;
        let dx_ref = lower(reference::input_grad(lift(&dy).view(), lift(&w).view(), [1, geo.w], &p2)?);
        let dx_mag = lower(reference::input_grad(lift(&abs(&dy)).view(), lift(&abs(&w)).view(), [1, geo.w], &p2)?);
        row("conv1d-dX", dx.dtype(), &ctx.download(&dx)?, &dx_ref, &dx_mag, geo.filters_per_group() * s);
    }
    Ok(rows)
}

/// A batch of no samples: the forward pass and input gradient give empty tensors of the layer's
/// shapes, and the weight and bias gradients written over tensors of NaN are all +0. One row: its
/// error is the largest |value| of the gradients (0 passes), its bound ratio 0 or ∞.
#[cfg(not(target_arch = "wasm32"))]
fn empty_batch_row(ctx: &Context, elem: Elem) -> Result<CheckRow> {
    let params = Conv2dParams::new().stride(2, 2).padding(1, 1);
    let geo = Conv2dGeometry::new(0, 3, [9, 9], 4, [3, 3], params)?;
    let x = ctx.zeros_as(&geo.input_shape(), elem)?;
    let w = ctx.upload_as(Array4::<f32>::ones(geo.weight_shape()).view(), elem)?;
    let y = ctx.forward(&x, &w, None, &params)?;
    let dx = ctx.input_grad(&y, &w, [geo.h, geo.w], &params)?;
    let dw = ctx.upload(Array4::<f32>::from_elem(geo.weight_shape(), f32::NAN).view())?;
    ctx.weight_grad_into(&x, &y, &params, &dw)?;
    let db = ctx.upload(ndarray::Array1::<f32>::from_elem(geo.k, f32::NAN).view())?;
    ctx.bias_grad_into(&y, params.layout, &db)?;
    let grads: Vec<f32> = ctx
        .download::<ndarray::IxDyn>(&dw)?
        .iter()
        .chain(ctx.download::<ndarray::IxDyn>(&db)?.iter())
        .copied()
        .collect();
    let zeros = grads.iter().all(|v| v.to_bits() == 0);
    let shapes = y.shape() == geo.output_shape() && dx.shape() == geo.input_shape() && y.is_empty() && dx.is_empty();
    let worst = grads.iter().fold(0.0f64, |m, v| if v.is_nan() { f64::INFINITY } else { m.max(f64::from(v.abs())) });
    let pass = zeros && shapes;
    Ok(CheckRow {
        op: "empty batch",
        shape: geo.describe(),
        rel_err: worst,
        bound_ratio: if pass { 0.0 } else { f64::INFINITY },
        pass,
    })
}

/// The transposed layers the self-test runs: an upsampling layer with output padding, grouped and
/// dilated with uneven strides, one whose last rows only the bias reaches (`stride ≤ output_padding
/// < dilation`), and channels last.
#[must_use]
pub fn transposed_test_layers() -> Vec<TransposedLayer> {
    let d = ConvTranspose2dParams::new();
    vec![
        (2, 4, [6, 5], 3, [3, 3], d.stride(2, 2).padding(1, 1).output_padding(1, 1)),
        (2, 4, [4, 5], 6, [3, 2], d.stride(3, 2).padding(1, 0).dilation(1, 2).groups(2).output_padding(2, 1)),
        (1, 2, [5, 4], 3, [3, 2], d.dilation(3, 2).output_padding(2, 1)),
        (2, 4, [6, 5], 4, [4, 4], d.stride(2, 2).padding(1, 1).groups(2).layout(Layout::Nhwc)),
    ]
}

/// Rows for the transposed layers: its forward pass (with a bias), input and weight gradients, each
/// against the `f64` reference written from the transposed layer's own definition.
#[cfg(not(target_arch = "wasm32"))]
fn transposed_rows(ctx: &Context, elem: Elem, rng: &mut Rng) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    for (n, cin, [h, w], cout, [s, t], params) in transposed_test_layers() {
        let lay = params.layout;
        let geo = params.geometry(lay.activation([n, cin, h, w]), lay.weights([cin, cout / params.groups, s, t]))?;
        let x: Array4<f32> = rounded(&rng.array(geo.input_shape()), elem);
        let wt: Array4<f32> = rounded(&rng.array(geo.weight_shape()), elem);
        let b: ndarray::Array1<f32> = rounded(&rng.array(cout), elem);
        let dy: Array4<f32> = rounded(&rng.array(geo.output_shape()), elem);
        let abs = |a: &Array4<f32>| a.mapv(f32::abs);
        let (ax, aw, ady, ab) = (abs(&x), abs(&wt), abs(&dy), b.mapv(f32::abs));
        let [xd, wd, dyd] = [&x, &wt, &dy].map(|a| ctx.upload_as(a.view(), elem));
        let (xd, wd, dyd, bd) = (xd?, wd?, dyd?, ctx.upload_as(b.view(), elem)?);
        let shape = geo.describe();
        let mut row = |op, stored: Elem, gpu: &ndarray::ArrayD<f32>, r: Array4<f64>, m: Array4<f64>, len| {
            let (r, m) = (r.into_dyn(), m.into_dyn());
            let (rel, ratio) = (rel_err(gpu, &r), bound_ratio_as(gpu, &r, &m, len, stored));
            let pass = ratio <= 1.0 && rel <= MAX_REL_ERR.max(unit_roundoff(stored));
            rows.push(CheckRow { op, shape: shape.clone(), rel_err: rel, bound_ratio: ratio, pass });
        };
        let c = &geo.conv;
        let y = ctx.conv_transpose(&xd, &wd, Some(&bd), &params)?;
        let y_ref = reference::conv_transpose(x.view(), wt.view(), Some(b.view()), &params)?;
        let y_mag = reference::conv_transpose(ax.view(), aw.view(), Some(ab.view()), &params)?;
        let ly = c.filters_per_group() * s * t + 1;
        row("transpose", y.dtype(), &ctx.download(&y)?, y_ref, y_mag, ly);
        let dx = ctx.conv_transpose_input_grad(&dyd, &wd, &params)?;
        let dx_ref = reference::conv_transpose_input_grad(dy.view(), wt.view(), &params)?;
        let dx_mag = reference::conv_transpose_input_grad(ady.view(), aw.view(), &params)?;
        row("transpose-dX", dx.dtype(), &ctx.download(&dx)?, dx_ref, dx_mag, c.channels_per_group() * s * t);
        let dw = ctx.conv_transpose_weight_grad(&xd, &dyd, [s, t], &params)?;
        let dw_ref = reference::conv_transpose_weight_grad(x.view(), dy.view(), [s, t], &params)?;
        let dw_mag = reference::conv_transpose_weight_grad(ax.view(), ady.view(), [s, t], &params)?;
        row("transpose-dW", dw.dtype(), &ctx.download(&dw)?, dw_ref, dw_mag, c.n * c.p * c.q);
    }
    Ok(rows)
}

/// The rows of [`self_test_as`], drawing the data from `rng`; for `f32` without the `forward to f32`
/// row, which would repeat the `forward` one.
#[cfg(not(target_arch = "wasm32"))]
fn layer_rows(ctx: &Context, elem: Elem, rng: &mut Rng) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    for (n, c, hw, k, st, params) in self_test_layers() {
        let geo = Conv2dGeometry::new(n, c, hw, k, st, params)?;
        let x: Array4<f32> = rounded(&rng.array(geo.input_shape()), elem);
        let w: Array4<f32> = rounded(&rng.array(geo.weight_shape()), elem);
        let b: ndarray::Array1<f32> = rounded(&rng.array(k), elem);
        let dy: Array4<f32> = rounded(&rng.array(geo.output_shape()), elem);
        let abs = |a: &Array4<f32>| a.mapv(f32::abs);
        let (ax, aw, ady) = (abs(&x), abs(&w), abs(&dy));
        let ab = b.mapv(f32::abs);
        let [xt, wt, dyt] = [&x, &w, &dy].map(|a| ctx.upload_as(a.view(), elem));
        let (xt, wt, dyt, bt) = (xt?, wt?, dyt?, ctx.upload_as(b.view(), elem)?);
        let shape = geo.describe();
        let max_rel = |stored: Elem| MAX_REL_ERR.max(unit_roundoff(stored));
        let mut row = |op, stored: Elem, gpu: &ndarray::ArrayD<f32>, r: &ndarray::ArrayD<f64>, m, len| {
            let (rel, ratio) = (rel_err(gpu, r), bound_ratio_as(gpu, r, m, len, stored));
            rows.push(CheckRow {
                op,
                shape: shape.clone(),
                rel_err: rel,
                bound_ratio: ratio,
                pass: ratio <= 1.0 && rel <= max_rel(stored),
            });
        };
        let dyn_ = |a: Array4<f64>| a.into_dyn();

        let y_ref = dyn_(reference::forward(x.view(), w.view(), Some(b.view()), &params)?);
        let y_mag = dyn_(reference::forward(ax.view(), aw.view(), Some(ab.view()), &params)?);
        let lf = geo.channels_per_group() * geo.s * geo.t + 1;
        let y = ctx.forward(&xt, &wt, Some(&bt), &params)?;
        row("forward", y.dtype(), &ctx.download(&y)?, &y_ref, &y_mag, lf);
        if elem.is_half() {
            let y32 = ctx.zeros(y.shape())?;
            ctx.forward_into(&xt, &wt, Some(&bt), &params, &y32)?;
            row("forward to f32", Elem::F32, &ctx.download(&y32)?, &y_ref, &y_mag, lf);
        }

        let dw = ctx.weight_grad(&xt, &dyt, st, &params)?;
        let dw_ref = dyn_(reference::weight_grad(x.view(), dy.view(), st, &params)?);
        let dw_mag = dyn_(reference::weight_grad(ax.view(), ady.view(), st, &params)?);
        let lw = geo.n * geo.p * geo.q;
        row("weight-grad", dw.dtype(), &ctx.download(&dw)?, &dw_ref, &dw_mag, lw);

        let dx = ctx.input_grad(&dyt, &wt, hw, &params)?;
        let dx_ref = dyn_(reference::input_grad(dy.view(), w.view(), hw, &params)?);
        let dx_mag = dyn_(reference::input_grad(ady.view(), aw.view(), hw, &params)?);
        let li = geo.filters_per_group() * geo.s * geo.t;
        row("input-grad", dx.dtype(), &ctx.download(&dx)?, &dx_ref, &dx_mag, li);

        let db = ctx.bias_grad(&dyt, params.layout)?;
        let db_ref = reference::bias_grad(dy.view(), params.layout).into_dyn();
        let db_mag = reference::bias_grad(ady.view(), params.layout).into_dyn();
        row("bias-grad", db.dtype(), &ctx.download(&db)?, &db_ref, &db_mag, lw);
    }
    Ok(rows)
}

/// Central differences of `J = ½‖conv(X, W) + b‖²` (evaluated in `f64`) against the GPU's gradients.
/// `J` is quadratic in each coordinate, so the differences are exact up to `f64` rounding; the bound
/// column is the GPU gradient's `f32` bound plus that rounding.
#[cfg(not(target_arch = "wasm32"))]
fn finite_difference_rows(ctx: &Context, rng: &mut Rng) -> Result<Vec<CheckRow>> {
    const EPS: f64 = 1e-2;
    let params = Conv2dParams::new().stride(2, 1).padding(1, 0).dilation(1, 2).groups(2);
    let geo = Conv2dGeometry::new(2, 4, [7, 8], 2, [2, 2], params)?;
    let x = rng.array::<ndarray::Ix4, _>(geo.input_shape()).mapv(f64::from);
    let w = rng.array::<ndarray::Ix4, _>(geo.weight_shape()).mapv(f64::from);
    let b = rng.array::<ndarray::Ix1, _>(geo.k).mapv(f64::from);
    let cost = |x: &Array4<f64>, w: &Array4<f64>, b: &ndarray::Array1<f64>| -> Result<f64> {
        Ok(0.5 * reference::forward(x.view(), w.view(), Some(b.view()), &params)?.mapv(|v| v * v).sum())
    };
    let y = reference::forward(x.view(), w.view(), Some(b.view()), &params)?;
    let y_abs =
        reference::forward(x.mapv(f64::abs).view(), w.mapv(f64::abs).view(), Some(b.mapv(f64::abs).view()), &params)?;
    let m = geo.channels_per_group() * geo.s * geo.t + 3 + y.len();
    let gamma64 = m as f64 * f64::EPSILON / 2.0 / (1.0 - m as f64 * f64::EPSILON / 2.0);
    let fd_tol = 2.0 * gamma64 * 0.5 * y_abs.mapv(|v| v * v).sum() / EPS;

    let perturb = |e: usize, which: usize, delta: f64| -> Result<f64> {
        let (mut x2, mut w2, mut b2) = (x.clone(), w.clone(), b.clone());
        let slot = match which {
            0 => x2.iter_mut().nth(e),
            1 => w2.iter_mut().nth(e),
            _ => b2.iter_mut().nth(e),
        };
        if let Some(v) = slot {
            *v += delta;
        }
        cost(&x2, &w2, &b2)
    };
    let dy32 = y.mapv(|v| v as f32);
    let (x32, w32) = (x.mapv(|v| v as f32), w.mapv(|v| v as f32));
    let gx = ctx.conv2d_input_grad(dy32.view(), w32.view(), [geo.h, geo.w], &params)?;
    let gw = ctx.conv2d_weight_grad(x32.view(), dy32.view(), [geo.s, geo.t], &params)?;
    let gb = ctx.conv2d_bias_grad(dy32.view(), params.layout)?;
    let ady = y.mapv(f64::abs);
    let mx = reference::input_grad(ady.view(), w.mapv(f64::abs).view(), [geo.h, geo.w], &params)?;
    let mw = reference::weight_grad(x.mapv(f64::abs).view(), ady.view(), [geo.s, geo.t], &params)?;
    let mb = reference::bias_grad(ady.view(), params.layout);
    let lx = geo.filters_per_group() * geo.s * geo.t;
    let lw = geo.n * geo.p * geo.q;

    let mut rows = Vec::new();
    let shape = format!("{} (finite differences)", geo.describe());
    let grads: [(&'static str, Vec<f32>, Vec<f64>, usize); 3] = [
        ("input-grad", gx.iter().copied().collect(), mx.iter().copied().collect(), lx),
        ("weight-grad", gw.iter().copied().collect(), mw.iter().copied().collect(), lw),
        ("bias-grad", gb.iter().copied().collect(), mb.iter().copied().collect(), lw),
    ];
    for (which, (op, gpu, mag, len)) in grads.into_iter().enumerate() {
        let (mut worst, mut num, mut den) = (0.0f64, 0.0f64, 0.0f64);
        for (e, (&g, &m)) in gpu.iter().zip(mag.iter()).enumerate() {
            let fd = (perturb(e, which, EPS)? - perturb(e, which, -EPS)?) / (2.0 * EPS);
            let err = (f64::from(g) - fd).abs();
            let bound = fd_tol + (gamma(len) + 3.0 * U32) * m;
            let ratio = err / bound;
            worst = if ratio.is_nan() { f64::INFINITY } else { worst.max(ratio) };
            num += err * err;
            den += fd * fd;
        }
        let rel = if den == 0.0 { num.sqrt() } else { (num / den).sqrt() };
        rows.push(CheckRow {
            op,
            shape: shape.clone(),
            rel_err: rel,
            bound_ratio: worst,
            pass: worst <= 1.0 && rel <= MAX_REL_ERR,
        });
    }
    Ok(rows)
}
