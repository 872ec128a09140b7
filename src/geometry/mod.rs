//! Layer parameters and the one place where output sizes are computed.
//!
//! Along each axis, with input size `H`, kernel size `S`, stride `sh`, padding `pt` before the input
//! (top) and `pb` after it (bottom), and dilation `dh`, the output size is
//!
//! ```text
//! P = ⌊(H + pt + pb − dh·(S−1) − 1) / sh⌋ + 1
//! ```
//!
//! which exists only when the dilated kernel extent `dh·(S−1)+1` fits in the padded input `H + pt + pb`.
//! Only the leading padding moves the taps (output row `p` reads input row `p·sh + i·dh − pt`); the
//! trailing padding only adds output rows. All arithmetic here is checked: a size that would overflow
//! is an [`Error::Overflow`], never a wrap.

use crate::error::{Error, Result};

mod one_d;
mod transposed;

pub use one_d::{Conv1dParams, ConvTranspose1dParams};
pub use transposed::{ConvTranspose2dGeometry, ConvTranspose2dParams};

/// Zeros around the input, per side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sides {
    /// Rows of zeros above the input.
    pub top: usize,
    /// Rows of zeros below it.
    pub bottom: usize,
    /// Columns of zeros left of it.
    pub left: usize,
    /// Columns of zeros right of it.
    pub right: usize,
}

impl Sides {
    /// `ph` rows above and below, `pw` columns left and right.
    #[must_use]
    pub const fn symmetric(ph: usize, pw: usize) -> Self {
        Self { top: ph, bottom: ph, left: pw, right: pw }
    }

    /// The padding before the input along each axis, `[top, left]`: the offset of every tap.
    #[must_use]
    pub const fn lead(&self) -> [usize; 2] {
        [self.top, self.left]
    }

    /// Whether both axes are padded the same on both sides.
    #[must_use]
    pub const fn is_symmetric(&self) -> bool {
        self.top == self.bottom && self.left == self.right
    }
}

/// How the input is padded with zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding {
    /// The given number of zeros on each side.
    Explicit(Sides),
    /// As PyTorch's `padding='same'` (and TensorFlow's `SAME` at stride 1): the output has the
    /// input's size. Along each axis the dilated kernel needs `dh·(S−1)` zeros in all; `⌊dh·(S−1)/2⌋`
    /// go before the input and the rest after it, so an even kernel has its extra row at the bottom
    /// and its extra column at the right. Stride 1 only, as in PyTorch.
    Same,
    /// TensorFlow's `padding="SAME"` (Keras' `"same"`, ONNX's `SAME_UPPER`) for any stride: along
    /// each axis of input `H`, stride `s`, dilation `d` and kernel `S` the output is `⌈H/s⌉` and the
    /// zeros number `max((⌈H/s⌉−1)·s + d·(S−1) + 1 − H, 0)` in all, the smaller half before the
    /// input. At stride 1 it is [`Padding::Same`]; above it the padding depends on the input size
    /// (in 6, kernel 3, stride 2: output 3, padding 0 before and 1 after, where PyTorch's `padding=1`
    /// gives 1 and 1).
    SameTf,
}

impl Padding {
    /// The sides this padding gives an input of `[H, W]` and a kernel of `[S, T]` at `stride` and
    /// `dilation`.
    ///
    /// # Errors
    /// [`Error::SameNeedsStrideOne`] for [`Padding::Same`] with a stride other than 1; an overflow.
    pub fn resolve(
        &self,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<Sides> {
        match *self {
            Padding::SameTf => {
                // A zero stride or size is left to `output_size` to report.
                let total = |axis: usize| -> Result<usize> {
                    let (h, s, d, k) = (input[axis], stride[axis].max(1), dilation[axis], kernel[axis]);
                    let span = h.div_ceil(s).saturating_sub(1).checked_mul(s);
                    let extent = d.checked_mul(k.saturating_sub(1)).and_then(|e| e.checked_add(1));
                    let need = span.zip(extent).and_then(|(a, e)| a.checked_add(e)).ok_or(Error::Overflow {
                        what: "SAME padding",
                        detail: format!("input {h}, kernel {k}, stride {s}, dilation {d}"),
                    })?;
                    Ok(need.saturating_sub(h))
                };
                let [th, tw] = [total(0)?, total(1)?];
                Ok(Sides { top: th / 2, bottom: th - th / 2, left: tw / 2, right: tw - tw / 2 })
            }
            Padding::Explicit(sides) => Ok(sides),
            Padding::Same => {
                if stride != [1, 1] {
                    return Err(Error::SameNeedsStrideOne { sh: stride[0], sw: stride[1] });
                }
                let total = |axis: usize| dilation[axis].saturating_mul(kernel[axis].saturating_sub(1));
                let [th, tw] = [total(0), total(1)];
                Ok(Sides { top: th / 2, bottom: th - th / 2, left: tw / 2, right: tw - tw / 2 })
            }
        }
    }
}

/// The order of a layer's tensors in memory (C order, outermost dimension first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// Activations (X, Y, dY, dX) `N×C×H×W`, weights `K×(C/G)×S×T` (OIHW): PyTorch's default.
    #[default]
    Nchw,
    /// Activations `N×H×W×C` (channels last), weights `K×S×T×(C/G)` (OHWI): PyTorch's
    /// `channels_last` memory format, whose tensors still report NCHW sizes.
    Nhwc,
}

impl Layout {
    /// The shape of an activation of batch `n`, `c` channels and `h × w` in this layout.
    #[must_use]
    pub const fn activation(self, [n, c, h, w]: [usize; 4]) -> [usize; 4] {
        match self {
            Layout::Nchw => [n, c, h, w],
            Layout::Nhwc => [n, h, w, c],
        }
    }

    /// `[N, C, H, W]` of an activation of `shape` in this layout.
    #[must_use]
    pub const fn activation_dims(self, shape: [usize; 4]) -> [usize; 4] {
        match self {
            Layout::Nchw => shape,
            Layout::Nhwc => [shape[0], shape[3], shape[1], shape[2]],
        }
    }

    /// The shape of `k` filters of `cg` channels and `s × t` taps in this layout: OIHW and OHWI put
    /// the four axes in the orders NCHW and NHWC do.
    #[must_use]
    pub const fn weights(self, oihw: [usize; 4]) -> [usize; 4] {
        self.activation(oihw)
    }

    /// `[K, C/G, S, T]` of weights of `shape` in this layout.
    #[must_use]
    pub const fn weight_dims(self, shape: [usize; 4]) -> [usize; 4] {
        self.activation_dims(shape)
    }

    /// Which dimension of a weight shape holds the channels per group, and the shape's letters.
    fn weight_channels(self) -> (usize, &'static str) {
        match self {
            Layout::Nchw => (1, "K×C/G×S×T"),
            Layout::Nhwc => (3, "K×S×T×C/G"),
        }
    }

    /// `"nchw"` or `"nhwc"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        }
    }
}

/// Stride, zero padding, dilation, groups and memory layout of a 2-D convolution layer.
///
/// Pairs are `[height, width]`. The default is the single-channel valid correlation: stride 1,
/// no padding, no dilation, one group, NCHW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Step between output positions, `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zeros added around the input.
    pub padding: Padding,
    /// Step between kernel taps, `[dh, dw]`.
    pub dilation: [usize; 2],
    /// Number of groups `G`: channels and filters are split into `G` blocks and filter block `g` sees
    /// only channel block `g`.
    pub groups: usize,
    /// How the tensors of the layer are laid out; every shape given or returned is in this layout.
    pub layout: Layout,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: Padding::Explicit(Sides::default()),
            dilation: [1, 1],
            groups: 1,
            layout: Layout::Nchw,
        }
    }
}

impl Conv2dParams {
    /// The single-channel valid correlation (same as `Default`).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the stride `[sh, sw]`.
    #[must_use]
    pub fn stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = [sh, sw];
        self
    }

    /// Sets the zero padding: `ph` rows above and below the input, `pw` columns left and right.
    #[must_use]
    pub fn padding(mut self, ph: usize, pw: usize) -> Self {
        self.padding = Padding::Explicit(Sides::symmetric(ph, pw));
        self
    }

    /// Sets the zero padding per side (PyTorch's `F.pad(x, (left, right, top, bottom))` before a
    /// valid convolution).
    #[must_use]
    pub fn padding_sides(mut self, top: usize, bottom: usize, left: usize, right: usize) -> Self {
        self.padding = Padding::Explicit(Sides { top, bottom, left, right });
        self
    }

    /// Pads so that the output has the input's size, as PyTorch's `padding='same'` (see
    /// [`Padding::Same`]); the layer must have stride 1.
    #[must_use]
    pub fn padding_same(mut self) -> Self {
        self.padding = Padding::Same;
        self
    }

    /// Pads as TensorFlow's `padding="SAME"` does at any stride: output `⌈H/s⌉ × ⌈W/s⌉` (see
    /// [`Padding::SameTf`]). A separate name from [`Conv2dParams::padding_same`] so that code ported
    /// from PyTorch keeps PyTorch's error for `same` on a strided layer, and code from TensorFlow,
    /// Keras or ONNX (`SAME_UPPER`) says which rule it means; at stride 1 the two agree.
    #[must_use]
    pub fn padding_same_tf(mut self) -> Self {
        self.padding = Padding::SameTf;
        self
    }

    /// Sets the dilation `[dh, dw]`.
    #[must_use]
    pub fn dilation(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = [dh, dw];
        self
    }

    /// Sets the number of groups.
    #[must_use]
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Sets the memory layout of the layer's tensors.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Resolves the layer for an input of shape `[N, C, H, W]` and weights of shape `[K, C/G, S, T]`
    /// (`[N, H, W, C]` and `[K, S, T, C/G]` in [`Layout::Nhwc`]).
    ///
    /// # Errors
    /// A zero dimension, stride or dilation; channels or filters not divisible by the groups; a weight
    /// shape that does not match the input's channels; a kernel that does not fit; an overflow.
    pub fn geometry(&self, input: [usize; 4], weight: [usize; 4]) -> Result<Conv2dGeometry> {
        let [n, c, h, w] = self.layout.activation_dims(input);
        let [k, cg, s, t] = self.layout.weight_dims(weight);
        self.check_groups(c, k)?;
        if cg != c / self.groups {
            let (dim, letters) = self.layout.weight_channels();
            return Err(Error::shape(
                format!("weight channels (dimension {dim} of {letters})"),
                format!("{} (= C {} / groups {})", c / self.groups, c, self.groups),
                cg.to_string(),
            ));
        }
        Conv2dGeometry::new(n, c, [h, w], k, [s, t], *self)
    }

    /// Resolves the layer for the weight gradient: input `[N, C, H, W]`, output gradient
    /// `[N, K, P, Q]` (both in the layer's layout) and kernel size `[S, T]`.
    ///
    /// # Errors
    /// As [`Conv2dParams::geometry`], and a batch or output size of `dY` that does not match.
    pub fn geometry_for_weight_grad(
        &self,
        input: [usize; 4],
        grad_output: [usize; 4],
        kernel: [usize; 2],
    ) -> Result<Conv2dGeometry> {
        let [n, c, h, w] = self.layout.activation_dims(input);
        let [n2, k, p, q] = self.layout.activation_dims(grad_output);
        if n2 != n {
            return Err(Error::shape("batch of the output gradient", n.to_string(), n2.to_string()));
        }
        self.check_groups(c, k)?;
        let geo = Conv2dGeometry::new(n, c, [h, w], k, kernel, *self)?;
        geo.check_output([p, q])?;
        Ok(geo)
    }

    /// Resolves the layer for the input gradient: output gradient `[N, K, P, Q]`, weights
    /// `[K, C/G, S, T]` (both in the layer's layout) and the input size `[H, W]`, which must be given
    /// because with a stride above 1 several input sizes give the same output size.
    ///
    /// # Errors
    /// As [`Conv2dParams::geometry`], and an input size that does not give `[P, Q]`.
    pub fn geometry_for_input_grad(
        &self,
        grad_output: [usize; 4],
        weight: [usize; 4],
        input_size: [usize; 2],
    ) -> Result<Conv2dGeometry> {
        let [n, k, p, q] = self.layout.activation_dims(grad_output);
        let [k2, cg, s, t] = self.layout.weight_dims(weight);
        if k2 != k {
            return Err(Error::shape("filters of the weights (dimension 0)", k.to_string(), k2.to_string()));
        }
        let c = cg.checked_mul(self.groups).ok_or_else(|| Error::Overflow {
            what: "channel count",
            detail: format!("{cg} × {} groups", self.groups),
        })?;
        self.check_groups(c, k)?;
        let geo = Conv2dGeometry::new(n, c, input_size, k, [s, t], *self)?;
        geo.check_output([p, q])?;
        Ok(geo)
    }

    fn check_groups(&self, c: usize, k: usize) -> Result<()> {
        if self.groups == 0 {
            return Err(Error::ZeroDimension { what: "groups" });
        }
        if !c.is_multiple_of(self.groups) {
            return Err(Error::GroupsMismatch { what: "input channels", value: c, groups: self.groups });
        }
        if !k.is_multiple_of(self.groups) {
            return Err(Error::GroupsMismatch { what: "filters", value: k, groups: self.groups });
        }
        Ok(())
    }
}

/// Output size along one axis, `⌊(input + lead + trail − dilation·(kernel−1) − 1) / stride⌋ + 1` with
/// `padding = [lead, trail]`, the zeros before and after the input.
///
/// # Errors
/// [`Error::ZeroStep`] for a zero stride or dilation, [`Error::ZeroDimension`] for a zero size,
/// [`Error::KernelTooLarge`] when the dilated kernel exceeds the padded input, [`Error::Overflow`].
pub fn output_size(
    axis: &'static str,
    input: usize,
    kernel: usize,
    stride: usize,
    [lead, trail]: [usize; 2],
    dilation: usize,
) -> Result<usize> {
    let is_h = axis == "height";
    if stride == 0 {
        return Err(Error::ZeroStep { what: if is_h { "stride (height)" } else { "stride (width)" }, value: 0 });
    }
    if dilation == 0 {
        return Err(Error::ZeroStep { what: if is_h { "dilation (height)" } else { "dilation (width)" }, value: 0 });
    }
    if input == 0 {
        return Err(Error::ZeroDimension { what: if is_h { "input height" } else { "input width" } });
    }
    if kernel == 0 {
        return Err(Error::ZeroDimension { what: if is_h { "kernel height" } else { "kernel width" } });
    }
    let overflow = || Error::Overflow {
        what: "output size",
        detail: format!("input {input}, kernel {kernel}, padding {lead}+{trail}, dilation {dilation}"),
    };
    let padding = lead.checked_add(trail).ok_or_else(overflow)?;
    let padded = input.checked_add(padding).ok_or_else(overflow)?;
    let extent = dilation.checked_mul(kernel - 1).and_then(|e| e.checked_add(1)).ok_or_else(overflow)?;
    let room = padded.checked_sub(extent).ok_or(Error::KernelTooLarge {
        axis,
        kernel,
        dilation,
        extent,
        input,
        padding,
        padded,
    })?;
    Ok(room / stride + 1)
}

/// A fully resolved convolution problem: every size and parameter.
///
/// Shapes: input `X` is `[N, C, H, W]`, weights `W` are `[K, C/G, S, T]`, output `Y` is `[N, K, P, Q]`,
/// in that order in [`Layout::Nchw`] and as [`Layout`] orders them otherwise.
/// Every element count fits in a `u32`, so the WGSL kernels can index with 32-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    /// Batch size N.
    pub n: usize,
    /// Input channels C.
    pub c: usize,
    /// Input height H.
    pub h: usize,
    /// Input width W.
    pub w: usize,
    /// Filters (output channels) K.
    pub k: usize,
    /// Kernel height S.
    pub s: usize,
    /// Kernel width T.
    pub t: usize,
    /// Output height P.
    pub p: usize,
    /// Output width Q.
    pub q: usize,
    /// The padding per side, resolved from `params.padding` ([`Padding::Same`] made explicit).
    pub pad: Sides,
    /// Stride, padding, dilation and groups, as given.
    pub params: Conv2dParams,
}

impl Conv2dGeometry {
    /// Resolves the geometry from the batch, channels, input size, filters and kernel size.
    ///
    /// # Errors
    /// Any zero size but the batch, zero stride or dilation, groups that do not divide `c` and `k`, a kernel that
    /// does not fit, or an element count that overflows `u32`.
    pub fn new(
        n: usize,
        c: usize,
        [h, w]: [usize; 2],
        k: usize,
        [s, t]: [usize; 2],
        params: Conv2dParams,
    ) -> Result<Self> {
        // A batch of no samples is a layer all the same (PyTorch runs it): the operations give empty
        // results and zero gradients without dispatching anything.
        for (what, v) in [("input channels C", c), ("filters K", k)] {
            if v == 0 {
                return Err(Error::ZeroDimension { what });
            }
        }
        params.check_groups(c, k)?;
        let pad = params.padding.resolve([h, w], [s, t], params.stride, params.dilation)?;
        let p = output_size("height", h, s, params.stride[0], [pad.top, pad.bottom], params.dilation[0])?;
        let q = output_size("width", w, t, params.stride[1], [pad.left, pad.right], params.dilation[1])?;
        let geo = Self { n, c, h, w, k, s, t, p, q, pad, params };
        for (what, shape) in [
            ("input element count", geo.input_shape()),
            ("weight element count", geo.weight_shape()),
            ("output element count", geo.output_shape()),
        ] {
            count_u32(what, shape)?;
        }
        // The padded extents enter the kernels' index arithmetic as u32 too.
        for (what, v) in [("padded height", h + pad.top + pad.bottom), ("padded width", w + pad.left + pad.right)] {
            if u32::try_from(v).is_err() {
                return Err(Error::Overflow { what, detail: format!("{v} does not fit in u32") });
            }
        }
        Ok(geo)
    }

    /// The single-channel valid correlation of a `[U, V]` image with `K` filters of `[S, T]`.
    ///
    /// # Errors
    /// As [`Conv2dGeometry::new`].
    pub fn single_channel(image: [usize; 2], k: usize, kernel: [usize; 2]) -> Result<Self> {
        Self::new(1, 1, image, k, kernel, Conv2dParams::default())
    }

    /// Input channels per group, `C/G`.
    #[must_use]
    pub fn channels_per_group(&self) -> usize {
        self.c / self.params.groups
    }

    /// Filters per group, `K/G`.
    #[must_use]
    pub fn filters_per_group(&self) -> usize {
        self.k / self.params.groups
    }

    /// The shape of X (and dX): `[N, C, H, W]` in the layer's layout.
    #[must_use]
    pub fn input_shape(&self) -> [usize; 4] {
        self.params.layout.activation([self.n, self.c, self.h, self.w])
    }

    /// The shape of W (and dW): `[K, C/G, S, T]` in the layer's layout.
    #[must_use]
    pub fn weight_shape(&self) -> [usize; 4] {
        self.params.layout.weights([self.k, self.channels_per_group(), self.s, self.t])
    }

    /// The shape of Y (and dY): `[N, K, P, Q]` in the layer's layout.
    #[must_use]
    pub fn output_shape(&self) -> [usize; 4] {
        self.params.layout.activation([self.n, self.k, self.p, self.q])
    }

    /// The same layer in [`Layout::Nchw`], the order the kernels compute in.
    #[must_use]
    pub fn nchw(&self) -> Self {
        Self { params: self.params.layout(Layout::Nchw), ..*self }
    }

    /// Floating-point operations of one forward pass (and of each gradient):
    /// `2·N·K·P·Q·(C/G)·S·T`.
    #[must_use]
    pub fn flops(&self) -> f64 {
        2.0 * [self.n, self.k, self.p, self.q, self.channels_per_group(), self.s, self.t]
            .iter()
            .map(|&v| v as f64)
            .product::<f64>()
    }

    /// Checks that an output gradient of size `[P, Q]` matches this geometry.
    pub(crate) fn check_output(&self, [p, q]: [usize; 2]) -> Result<()> {
        if [p, q] != [self.p, self.q] {
            return Err(Error::InputSizeMismatch {
                input: (self.h, self.w),
                output: (p, q),
                expected: (self.p, self.q),
            });
        }
        Ok(())
    }

    /// The padded input's extent, `[H + top + bottom, W + left + right]`.
    #[must_use]
    pub fn padded_size(&self) -> [usize; 2] {
        [self.h + self.pad.top + self.pad.bottom, self.w + self.pad.left + self.pad.right]
    }

    /// A short human-readable description, e.g. `8×64×56×56 * 64×64×3×3 s1 p1 d1 g1`; asymmetric
    /// padding prints per side, `p0,1,0,1` (top, bottom, left, right).
    #[must_use]
    pub fn describe(&self) -> String {
        let pr = &self.params;
        let pair = |a: [usize; 2]| {
            if a[0] == a[1] { a[0].to_string() } else { format!("{},{}", a[0], a[1]) }
        };
        let pd = &self.pad;
        let padding = if pd.is_symmetric() {
            pair(pd.lead())
        } else {
            format!("{},{},{},{}", pd.top, pd.bottom, pd.left, pd.right)
        };
        let layout = if pr.layout == Layout::Nchw { "" } else { " nhwc" };
        format!(
            "{}×{}×{}×{} * {}×{}×{}×{} s{} p{} d{} g{}{layout}",
            self.n,
            self.c,
            self.h,
            self.w,
            self.k,
            self.channels_per_group(),
            self.s,
            self.t,
            pair(pr.stride),
            padding,
            pair(pr.dilation),
            pr.groups
        )
    }
}

/// Element count of a shape, checked to fit in `u32`.
pub(crate) fn count_u32(what: &'static str, shape: [usize; 4]) -> Result<usize> {
    let n =
        shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| u32::try_from(n).is_ok()).ok_or_else(
            || Error::Overflow { what, detail: format!("shape {shape:?} has more than 2^32−1 elements") },
        )?;
    Ok(n)
}

/// A size as `u32`, for a uniform field or an invocation count.
pub(crate) fn u32_of(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Overflow { what: "kernel size parameter", detail: format!("{v} > 2^32−1") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_channel_valid_size() {
        let g = Conv2dGeometry::single_channel([7, 9], 3, [3, 4]).unwrap();
        assert_eq!((g.p, g.q), (5, 6));
        assert_eq!(g.output_shape(), [1, 3, 5, 6]);
    }

    #[test]
    fn stride_padding_dilation_sizes() {
        // (224 + 6 − 6 − 1) / 2 + 1 = 112
        assert_eq!(output_size("height", 224, 7, 2, [3, 3], 1).unwrap(), 112);
        // (10 + 0 − 2·2 − 1) / 1 + 1 = 6
        assert_eq!(output_size("width", 10, 3, 1, [0, 0], 2).unwrap(), 6);
        // kernel exactly the padded input: one output
        assert_eq!(output_size("height", 3, 5, 3, [1, 1], 1).unwrap(), 1);
        // one more zero after than before: (5 + 0 + 1 − 2 − 1) / 1 + 1 = 4
        assert_eq!(output_size("height", 5, 2, 1, [0, 1], 1).unwrap(), 5);
    }

    #[test]
    fn kernel_too_large_is_an_error() {
        let e = output_size("height", 4, 3, 1, [0, 0], 2).unwrap_err();
        assert!(matches!(e, Error::KernelTooLarge { extent: 5, padded: 4, .. }), "{e}");
    }

    #[test]
    fn zero_sizes_and_steps_are_errors() {
        assert!(matches!(output_size("height", 4, 3, 0, [0, 0], 1), Err(Error::ZeroStep { .. })));
        assert!(matches!(output_size("height", 4, 3, 1, [0, 0], 0), Err(Error::ZeroStep { .. })));
        assert!(matches!(output_size("width", 0, 3, 1, [0, 0], 1), Err(Error::ZeroDimension { .. })));
        assert!(matches!(output_size("width", 4, 0, 1, [0, 0], 1), Err(Error::ZeroDimension { .. })));
        let p = Conv2dParams::default();
        assert!(matches!(Conv2dGeometry::new(1, 0, [3, 3], 1, [1, 1], p), Err(Error::ZeroDimension { .. })));
        assert!(matches!(Conv2dGeometry::new(1, 1, [3, 3], 0, [1, 1], p), Err(Error::ZeroDimension { .. })));
        let empty = Conv2dGeometry::new(0, 2, [3, 3], 4, [3, 3], p).unwrap();
        assert_eq!((empty.output_shape(), empty.weight_shape()), ([0, 4, 1, 1], [4, 2, 3, 3]));
        assert!(matches!(p.groups(0).geometry([1, 2, 3, 3], [2, 2, 1, 1]), Err(Error::ZeroDimension { .. })));
    }

    #[test]
    fn groups_must_divide() {
        let p = Conv2dParams::default().groups(2);
        assert!(matches!(p.geometry([1, 3, 5, 5], [2, 1, 3, 3]), Err(Error::GroupsMismatch { value: 3, .. })));
        assert!(matches!(p.geometry([1, 4, 5, 5], [3, 2, 3, 3]), Err(Error::GroupsMismatch { value: 3, .. })));
        assert!(matches!(p.geometry([1, 4, 5, 5], [2, 4, 3, 3]), Err(Error::ShapeMismatch { .. })));
        assert!(p.geometry([1, 4, 5, 5], [2, 2, 3, 3]).is_ok());
    }

    #[test]
    fn overflow_is_an_error() {
        let p = Conv2dParams::default();
        let e = output_size("height", usize::MAX, 3, 1, [1, 1], 1).unwrap_err();
        assert!(matches!(e, Error::Overflow { .. }), "{e}");
        let e = Conv2dGeometry::new(70_000, 1, [70_000, 1], 1, [1, 1], p).unwrap_err();
        assert!(matches!(e, Error::Overflow { .. }), "{e}");
    }

    #[test]
    fn input_grad_needs_a_matching_input_size() {
        let p = Conv2dParams::default().stride(2, 2);
        // H = 7 and H = 8 both give P = 3 for S = 3, stride 2.
        assert!(p.geometry_for_input_grad([1, 1, 3, 3], [1, 1, 3, 3], [7, 7]).is_ok());
        assert!(p.geometry_for_input_grad([1, 1, 3, 3], [1, 1, 3, 3], [8, 8]).is_ok());
        let e = p.geometry_for_input_grad([1, 1, 3, 3], [1, 1, 3, 3], [9, 9]).unwrap_err();
        assert!(matches!(e, Error::InputSizeMismatch { expected: (4, 4), .. }), "{e}");
    }

    #[test]
    fn same_padding_matches_pytorch() {
        // PyTorch puts ⌊total/2⌋ before and the rest after: an even kernel's extra zero goes last.
        let cases = [
            ([3, 3], [1, 1], Sides::symmetric(1, 1)),
            ([4, 2], [1, 1], Sides { top: 1, bottom: 2, left: 0, right: 1 }),
            ([4, 3], [2, 3], Sides { top: 3, bottom: 3, left: 3, right: 3 }),
            ([1, 2], [1, 2], Sides { top: 0, bottom: 0, left: 1, right: 1 }),
        ];
        for (kernel, dilation, sides) in cases {
            let params = Conv2dParams::new().dilation(dilation[0], dilation[1]).padding_same();
            let geo = Conv2dGeometry::new(1, 1, [9, 10], 1, kernel, params).unwrap();
            assert_eq!(geo.pad, sides, "{kernel:?} {dilation:?}");
            assert_eq!([geo.p, geo.q], [9, 10]);
        }
        let e = Conv2dParams::new().stride(2, 1).padding_same().geometry([1, 1, 8, 8], [1, 1, 3, 3]).unwrap_err();
        assert!(matches!(e, Error::SameNeedsStrideOne { sh: 2, sw: 1 }), "{e}");
    }

    /// TensorFlow's SAME (`tensorflow/core/framework/kernel_shape_util.cc`): output ⌈in/s⌉, padding
    /// max((out−1)·s + d·(k−1) + 1 − in, 0) in all, the smaller half first. Written out per axis
    /// (height: input, kernel, stride, dilation → top, bottom), with the width a fixed 3/1/1/1 axis;
    /// and at stride 1 it is PyTorch's `same`.
    #[test]
    fn tensorflow_same_padding_for_any_stride() {
        let cases = [
            // in, k, s, d → before, after, out
            ([6, 3, 2, 1], [0, 1, 3]),
            ([7, 3, 2, 1], [1, 1, 4]),
            ([5, 1, 2, 1], [0, 0, 3]),
            ([8, 4, 3, 1], [1, 1, 3]),
            ([9, 3, 2, 2], [2, 2, 5]),
            ([4, 2, 4, 1], [0, 0, 1]),
            ([10, 5, 3, 1], [2, 2, 4]),
            ([1, 3, 2, 1], [1, 1, 1]),
            ([2, 7, 1, 1], [3, 3, 2]),
        ];
        for ([h, k, s, d], [top, bottom, p]) in cases {
            let params = Conv2dParams::new().stride(s, 1).dilation(d, 1).padding_same_tf();
            let geo = Conv2dGeometry::new(1, 1, [h, 3], 1, [k, 3], params).unwrap();
            assert_eq!((geo.pad.top, geo.pad.bottom, geo.p), (top, bottom, p), "in {h} k {k} s {s} d {d}");
            assert_eq!((geo.pad.left, geo.pad.right, geo.q), (1, 1, 3));
        }
        for h in 1..12 {
            for k in 1..6 {
                for d in 1..3 {
                    let tf = Conv2dParams::new().dilation(d, d).padding_same_tf();
                    let torch = Conv2dParams::new().dilation(d, d).padding_same();
                    let a = Conv2dGeometry::new(1, 1, [h, h + 1], 1, [k, k], tf);
                    let b = Conv2dGeometry::new(1, 1, [h, h + 1], 1, [k, k], torch);
                    assert_eq!(a.map(|g| (g.pad, g.p, g.q)).ok(), b.map(|g| (g.pad, g.p, g.q)).ok());
                }
            }
        }
    }

    #[test]
    fn asymmetric_padding_sizes_and_description() {
        let geo = Conv2dParams::new().padding_sides(0, 1, 2, 0).geometry([1, 1, 5, 5], [1, 1, 2, 3]).unwrap();
        assert_eq!([geo.p, geo.q], [5, 5]);
        assert_eq!(geo.padded_size(), [6, 7]);
        assert!(geo.describe().ends_with("p0,1,2,0 d1 g1"), "{}", geo.describe());
    }

    #[test]
    fn nhwc_shapes_name_the_same_layer() {
        let nchw = Conv2dParams::new().padding(1, 0).groups(2);
        let nhwc = nchw.layout(Layout::Nhwc);
        let a = nchw.geometry([2, 4, 7, 9], [6, 2, 3, 1]).unwrap();
        let b = nhwc.geometry([2, 7, 9, 4], [6, 3, 1, 2]).unwrap();
        assert_eq!(a, b.nchw());
        assert_eq!(b.input_shape(), [2, 7, 9, 4]);
        assert_eq!(b.weight_shape(), [6, 3, 1, 2]);
        assert_eq!(b.output_shape(), [2, 7, 9, 6]);
        let e = nhwc.geometry([2, 7, 9, 4], [6, 3, 1, 4]).unwrap_err();
        assert!(e.to_string().contains("dimension 3 of K×S×T×C/G"), "{e}");
    }

    #[test]
    fn flops_formula() {
        let g = Conv2dParams::default().padding(1, 1).geometry([8, 64, 56, 56], [64, 64, 3, 3]).unwrap();
        assert_eq!(g.flops(), 2.0 * 8.0 * 64.0 * 56.0 * 56.0 * 64.0 * 9.0);
    }
}
