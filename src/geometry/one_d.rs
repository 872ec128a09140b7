//! 1-D convolution (PyTorch's `conv1d` and `conv_transpose1d`) as the 2-D layer of height 1: an
//! input `[N, C, L]` is `[N, C, 1, L]`, weights `[K, C/G, S]` are `[K, C/G, 1, S]`, and every
//! parameter acts along the width. The 1-D tensors are those 2-D tensors in memory (in both layouts:
//! channels last `[N, L, C]` is `[N, 1, L, C]`), so a 1-D layer is planned and run as its 2-D layer,
//! with the 2-D kernels and their speed, and no copy.

use super::{Conv2dGeometry, Conv2dParams, ConvTranspose2dGeometry, ConvTranspose2dParams, Layout, Padding, Sides};
use crate::error::Result;

impl Layout {
    /// The 2-D shape of height 1 of a 1-D activation or weight shape in this layout: `[N, C, L]` is
    /// `[N, C, 1, L]`, and channels last `[N, L, C]` is `[N, 1, L, C]` (weights likewise).
    #[must_use]
    pub const fn lift_1d(self, [a, b, c]: [usize; 3]) -> [usize; 4] {
        match self {
            Layout::Nchw => [a, b, 1, c],
            Layout::Nhwc => [a, 1, b, c],
        }
    }

    /// The 1-D shape of a 2-D shape of height 1 in this layout (the inverse of [`Layout::lift_1d`]).
    #[must_use]
    pub const fn lower_1d(self, [a, b, c, d]: [usize; 4]) -> [usize; 3] {
        match self {
            Layout::Nchw => [a, b, d],
            Layout::Nhwc => [a, c, d],
        }
    }
}

/// Stride, padding, dilation, groups and layout of a 1-D convolution (PyTorch's `conv1d`): input
/// `[N, C, L]`, weights `[K, C/G, S]`, output `[N, K, Lout]` with
/// `Lout = ⌊(L + left + right − d·(S−1) − 1) / s⌋ + 1` and
/// `Y[n,k,l] = b[k] + Σ_cg Σ_i X[n, g·C/G + cg, l·s + i·d − left] · W[k,cg,i]`.
/// [`Layout::Nhwc`] is channels last, `[N, L, C]` and weights `[K, S, C/G]` (TensorFlow's `NWC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv1dParams {
    /// Step between outputs.
    pub stride: usize,
    /// Zeros around the input: [`Padding::Explicit`] uses `left` and `right` (`top`, `bottom` must be 0),
    /// [`Padding::Same`] is PyTorch's `'same'`, [`Padding::SameTf`] TensorFlow's `SAME`.
    pub padding: Padding,
    /// Step between taps.
    pub dilation: usize,
    /// Number of groups.
    pub groups: usize,
    /// How the tensors are laid out.
    pub layout: Layout,
}

impl Default for Conv1dParams {
    fn default() -> Self {
        Self { stride: 1, padding: Padding::Explicit(Sides::default()), dilation: 1, groups: 1, layout: Layout::Nchw }
    }
}

impl Conv1dParams {
    /// Stride 1, no padding (PyTorch's `'valid'`), one group, `[N, C, L]`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the stride.
    #[must_use]
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }

    /// `p` zeros before and after the input.
    #[must_use]
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = Padding::Explicit(Sides::symmetric(0, p));
        self
    }

    /// `left` zeros before the input and `right` after it.
    #[must_use]
    pub fn padding_sides(mut self, left: usize, right: usize) -> Self {
        self.padding = Padding::Explicit(Sides { top: 0, bottom: 0, left, right });
        self
    }

    /// PyTorch's `padding='same'` (stride 1; an even kernel's extra zero after the input).
    #[must_use]
    pub fn padding_same(mut self) -> Self {
        self.padding = Padding::Same;
        self
    }

    /// TensorFlow's `padding="SAME"` at any stride: output `⌈L/s⌉`.
    #[must_use]
    pub fn padding_same_tf(mut self) -> Self {
        self.padding = Padding::SameTf;
        self
    }

    /// Sets the dilation.
    #[must_use]
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }

    /// Sets the number of groups.
    #[must_use]
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Sets the layout.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The 2-D layer of height 1 this layer is: every parameter along the width, none along the
    /// height (explicit padding keeps only its left and right).
    #[must_use]
    pub fn conv2d(&self) -> Conv2dParams {
        let padding = match self.padding {
            Padding::Explicit(s) => Padding::Explicit(Sides { top: 0, bottom: 0, ..s }),
            other => other,
        };
        Conv2dParams {
            stride: [1, self.stride],
            padding,
            dilation: [1, self.dilation],
            groups: self.groups,
            layout: self.layout,
        }
    }

    /// The 2-D geometry of height 1 for an input of `[N, C, L]` and weights of `[K, C/G, S]` (in the
    /// layer's layout); its output shape, lowered ([`Layout::lower_1d`]), is `[N, K, Lout]`.
    ///
    /// # Errors
    /// As [`Conv2dParams::geometry`] (the length is the 2-D layer's width).
    pub fn geometry(&self, input: [usize; 3], weight: [usize; 3]) -> Result<Conv2dGeometry> {
        self.conv2d().geometry(self.layout.lift_1d(input), self.layout.lift_1d(weight))
    }
}

/// Stride, padding, output padding, dilation, groups and layout of a 1-D transposed convolution
/// (PyTorch's `conv_transpose1d`): input `[N, Cin, L]`, weights `[Cin, Cout/G, S]`, output
/// `[N, Cout, (L−1)·s − left − right + d·(S−1) + output_padding + 1]`; the 2-D transposed layer of
/// height 1 ([`ConvTranspose2dParams`] has the formula and the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvTranspose1dParams {
    /// Step between inputs in the output.
    pub stride: usize,
    /// Outputs taken off the full output, `[left, right]`.
    pub padding: [usize; 2],
    /// Outputs added after it; below the stride or the dilation.
    pub output_padding: usize,
    /// Step between taps.
    pub dilation: usize,
    /// Number of groups.
    pub groups: usize,
    /// How the tensors are laid out.
    pub layout: Layout,
}

impl Default for ConvTranspose1dParams {
    fn default() -> Self {
        Self { stride: 1, padding: [0, 0], output_padding: 0, dilation: 1, groups: 1, layout: Layout::Nchw }
    }
}

impl ConvTranspose1dParams {
    /// Stride 1, no padding, one group, `[N, C, L]`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the stride.
    #[must_use]
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }

    /// `p` outputs off each end.
    #[must_use]
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p, p];
        self
    }

    /// Sets the output padding.
    #[must_use]
    pub fn output_padding(mut self, op: usize) -> Self {
        self.output_padding = op;
        self
    }

    /// Sets the dilation.
    #[must_use]
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }

    /// Sets the number of groups.
    #[must_use]
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Sets the layout.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The 2-D transposed layer of height 1 this layer is.
    #[must_use]
    pub fn conv_transpose2d(&self) -> ConvTranspose2dParams {
        let [left, right] = self.padding;
        ConvTranspose2dParams {
            stride: [1, self.stride],
            padding: Sides { top: 0, bottom: 0, left, right },
            output_padding: [0, self.output_padding],
            dilation: [1, self.dilation],
            groups: self.groups,
            layout: self.layout,
        }
    }

    /// The 2-D transposed geometry of height 1 for an input of `[N, Cin, L]` and weights of
    /// `[Cin, Cout/G, S]`.
    ///
    /// # Errors
    /// As [`ConvTranspose2dParams::geometry`].
    pub fn geometry(&self, input: [usize; 3], weight: [usize; 3]) -> Result<ConvTranspose2dGeometry> {
        self.conv_transpose2d().geometry(self.layout.lift_1d(input), self.layout.lift_1d(weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's `conv1d` output length over a table, and the 1-D shapes as the 2-D ones of height 1.
    #[test]
    fn one_d_layers_are_two_d_layers_of_height_one() {
        // L, S, s, p, d → Lout = ⌊(L + 2p − d(S−1) − 1)/s⌋ + 1
        for ([l, k, s, p, d], out) in
            [([16, 3, 1, 0, 1], 14), ([16, 3, 2, 1, 1], 8), ([10, 4, 3, 2, 2], 3), ([5, 5, 1, 2, 1], 5)]
        {
            let params = Conv1dParams::new().stride(s).padding(p).dilation(d);
            let geo = params.geometry([2, 3, l], [4, 3, k]).unwrap();
            assert_eq!(Layout::Nchw.lower_1d(geo.output_shape()), [2, 4, out], "L {l} S {k} s {s} p {p} d {d}");
            assert_eq!((geo.h, geo.s, geo.p, geo.pad.top, geo.pad.bottom), (1, 1, 1, 0, 0));
        }
        let nwc = Conv1dParams::new().padding_same().layout(Layout::Nhwc);
        let geo = nwc.geometry([2, 9, 3], [4, 4, 3]).unwrap();
        assert_eq!(geo.input_shape(), [2, 1, 9, 3]);
        assert_eq!(Layout::Nhwc.lower_1d(geo.output_shape()), [2, 9, 4]);
        assert_eq!((geo.pad.left, geo.pad.right), (1, 2));
        let t = ConvTranspose1dParams::new().stride(2).padding(1).output_padding(1);
        let geo = t.geometry([1, 3, 5], [3, 2, 3]).unwrap();
        assert_eq!(Layout::Nchw.lower_1d(geo.output_shape()), [1, 2, 10]);
    }
}
