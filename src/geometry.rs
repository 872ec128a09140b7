//! Layer parameters and the one place where output sizes are computed.
//!
//! Along each axis, with input size `H`, kernel size `S`, stride `sh`, padding `ph` and dilation `dh`,
//! the output size is
//!
//! ```text
//! P = ⌊(H + 2·ph − dh·(S−1) − 1) / sh⌋ + 1
//! ```
//!
//! which exists only when the dilated kernel extent `dh·(S−1)+1` fits in the padded input `H + 2·ph`.
//! All arithmetic here is checked: a size that would overflow is an [`Error::Overflow`], never a wrap.

use crate::error::{Error, Result};

/// Stride, zero padding, dilation and groups of a 2-D convolution layer.
///
/// Pairs are `[height, width]`. The default is the single-channel valid correlation: stride 1,
/// no padding, no dilation, one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Step between output positions, `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zeros added on both sides of the input, `[ph, pw]`.
    pub padding: [usize; 2],
    /// Step between kernel taps, `[dh, dw]`.
    pub dilation: [usize; 2],
    /// Number of groups `G`: channels and filters are split into `G` blocks and filter block `g` sees
    /// only channel block `g`.
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
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

    /// Sets the zero padding `[ph, pw]`.
    #[must_use]
    pub fn padding(mut self, ph: usize, pw: usize) -> Self {
        self.padding = [ph, pw];
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

    /// Resolves the layer for an input of shape `[N, C, H, W]` and weights of shape `[K, C/G, S, T]`.
    ///
    /// # Errors
    /// A zero dimension, stride or dilation; channels or filters not divisible by the groups; a weight
    /// shape that does not match the input's channels; a kernel that does not fit; an overflow.
    pub fn geometry(&self, input: [usize; 4], weight: [usize; 4]) -> Result<Conv2dGeometry> {
        let [n, c, h, w] = input;
        let [k, cg, s, t] = weight;
        self.check_groups(c, k)?;
        if cg != c / self.groups {
            return Err(Error::shape(
                "weight channels (dimension 1 of K×C/G×S×T)",
                format!("{} (= C {} / groups {})", c / self.groups, c, self.groups),
                cg.to_string(),
            ));
        }
        Conv2dGeometry::new(n, c, [h, w], k, [s, t], *self)
    }

    /// Resolves the layer for the weight gradient: input `[N, C, H, W]`, output gradient
    /// `[N, K, P, Q]` and kernel size `[S, T]`.
    ///
    /// # Errors
    /// As [`Conv2dParams::geometry`], and a batch or output size of `dY` that does not match.
    pub fn geometry_for_weight_grad(
        &self,
        input: [usize; 4],
        grad_output: [usize; 4],
        kernel: [usize; 2],
    ) -> Result<Conv2dGeometry> {
        let [n, c, h, w] = input;
        let [n2, k, p, q] = grad_output;
        if n2 != n {
            return Err(Error::shape("batch of the output gradient", n.to_string(), n2.to_string()));
        }
        self.check_groups(c, k)?;
        let geo = Conv2dGeometry::new(n, c, [h, w], k, kernel, *self)?;
        geo.check_output([p, q])?;
        Ok(geo)
    }

    /// Resolves the layer for the input gradient: output gradient `[N, K, P, Q]`, weights
    /// `[K, C/G, S, T]` and the input size `[H, W]`, which must be given because with a stride above 1
    /// several input sizes give the same output size.
    ///
    /// # Errors
    /// As [`Conv2dParams::geometry`], and an input size that does not give `[P, Q]`.
    pub fn geometry_for_input_grad(
        &self,
        grad_output: [usize; 4],
        weight: [usize; 4],
        input_size: [usize; 2],
    ) -> Result<Conv2dGeometry> {
        let [n, k, p, q] = grad_output;
        let [k2, cg, s, t] = weight;
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

/// Output size along one axis, `⌊(input + 2·padding − dilation·(kernel−1) − 1) / stride⌋ + 1`.
///
/// # Errors
/// [`Error::ZeroStep`] for a zero stride or dilation, [`Error::ZeroDimension`] for a zero size,
/// [`Error::KernelTooLarge`] when the dilated kernel exceeds the padded input, [`Error::Overflow`].
pub fn output_size(
    axis: &'static str,
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
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
        detail: format!("input {input}, kernel {kernel}, padding {padding}, dilation {dilation}"),
    };
    let padded = padding.checked_mul(2).and_then(|p2| input.checked_add(p2)).ok_or_else(overflow)?;
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
/// Shapes: input `X` is `[N, C, H, W]`, weights `W` are `[K, C/G, S, T]`, output `Y` is `[N, K, P, Q]`.
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
    /// Stride, padding, dilation and groups.
    pub params: Conv2dParams,
}

impl Conv2dGeometry {
    /// Resolves the geometry from the batch, channels, input size, filters and kernel size.
    ///
    /// # Errors
    /// Any zero size, zero stride or dilation, groups that do not divide `c` and `k`, a kernel that
    /// does not fit, or an element count that overflows `u32`.
    pub fn new(
        n: usize,
        c: usize,
        [h, w]: [usize; 2],
        k: usize,
        [s, t]: [usize; 2],
        params: Conv2dParams,
    ) -> Result<Self> {
        for (what, v) in [("batch N", n), ("input channels C", c), ("filters K", k)] {
            if v == 0 {
                return Err(Error::ZeroDimension { what });
            }
        }
        params.check_groups(c, k)?;
        let p = output_size("height", h, s, params.stride[0], params.padding[0], params.dilation[0])?;
        let q = output_size("width", w, t, params.stride[1], params.padding[1], params.dilation[1])?;
        let geo = Self { n, c, h, w, k, s, t, p, q, params };
        for (what, shape) in [
            ("input element count", geo.input_shape()),
            ("weight element count", geo.weight_shape()),
            ("output element count", geo.output_shape()),
        ] {
            count_u32(what, shape)?;
        }
        // The padded extents enter the kernels' index arithmetic as u32 too.
        for (what, v) in [("padded height", h + 2 * params.padding[0]), ("padded width", w + 2 * params.padding[1])] {
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

    /// `[N, C, H, W]`.
    #[must_use]
    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    /// `[K, C/G, S, T]`.
    #[must_use]
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.k, self.channels_per_group(), self.s, self.t]
    }

    /// `[N, K, P, Q]`.
    #[must_use]
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.k, self.p, self.q]
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

    /// A short human-readable description, e.g. `8×64×56×56 * 64×64×3×3 s1 p1 d1 g1`.
    #[must_use]
    pub fn describe(&self) -> String {
        let pr = &self.params;
        let pair = |a: [usize; 2]| {
            if a[0] == a[1] { a[0].to_string() } else { format!("{},{}", a[0], a[1]) }
        };
        format!(
            "{}×{}×{}×{} * {}×{}×{}×{} s{} p{} d{} g{}",
            self.n,
            self.c,
            self.h,
            self.w,
            self.k,
            self.channels_per_group(),
            self.s,
            self.t,
            pair(pr.stride),
            pair(pr.padding),
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
        assert_eq!(output_size("height", 224, 7, 2, 3, 1).unwrap(), 112);
        // (10 + 0 − 2·2 − 1) / 1 + 1 = 6
        assert_eq!(output_size("width", 10, 3, 1, 0, 2).unwrap(), 6);
        // kernel exactly the padded input: one output
        assert_eq!(output_size("height", 3, 5, 3, 1, 1).unwrap(), 1);
    }

    #[test]
    fn kernel_too_large_is_an_error() {
        let e = output_size("height", 4, 3, 1, 0, 2).unwrap_err();
        assert!(matches!(e, Error::KernelTooLarge { extent: 5, padded: 4, .. }), "{e}");
    }

    #[test]
    fn zero_sizes_and_steps_are_errors() {
        assert!(matches!(output_size("height", 4, 3, 0, 0, 1), Err(Error::ZeroStep { .. })));
        assert!(matches!(output_size("height", 4, 3, 1, 0, 0), Err(Error::ZeroStep { .. })));
        assert!(matches!(output_size("width", 0, 3, 1, 0, 1), Err(Error::ZeroDimension { .. })));
        assert!(matches!(output_size("width", 4, 0, 1, 0, 1), Err(Error::ZeroDimension { .. })));
        let p = Conv2dParams::default();
        assert!(matches!(Conv2dGeometry::new(0, 1, [3, 3], 1, [1, 1], p), Err(Error::ZeroDimension { .. })));
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
        let e = output_size("height", usize::MAX, 3, 1, 1, 1).unwrap_err();
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
    fn flops_formula() {
        let g = Conv2dParams::default().padding(1, 1).geometry([8, 64, 56, 56], [64, 64, 3, 3]).unwrap();
        assert_eq!(g.flops(), 2.0 * 8.0 * 64.0 * 56.0 * 56.0 * 64.0 * 9.0);
    }
}
