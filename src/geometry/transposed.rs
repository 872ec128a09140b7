//! The transposed convolution's parameters and geometry: the convolution it is the input gradient
//! of, and its own output size (PyTorch's `conv_transpose2d`).

use super::{Conv2dGeometry, Conv2dParams, Layout, Padding, Sides, count_u32};
use crate::error::{Error, Result};

/// Stride, padding, output padding, dilation, groups and memory layout of a transposed convolution
/// (PyTorch's `conv_transpose2d`): input `X` of `[N, Cin, H, W]`, weights `[Cin, Cout/G, S, T]`, output
/// `Y` of `[N, Cout, Ho, Wo]` with, along each axis (padding `pt` before and `pb` after),
///
/// ```text
/// Ho = (H − 1)·s − pt − pb + d·(S − 1) + output_padding + 1
/// Y[n, g·Cout/G + cg, h, w] = b[..] + Σ_{k in group g} Σ_{i,j} X[n, k, p, q] · W[k, cg, i, j]
///                             over p·s + i·d − pt = h and q·sw + j·dw − pl = w
/// ```
///
/// which is the input gradient of the convolution whose input is `Y`'s size, whose weights are these
/// and whose output is `X`'s size ([`ConvTranspose2dGeometry::conv`]); convgrad computes it as that.
/// The output padding only picks among the output sizes that a strided convolution maps to one
/// input size, so it must be smaller than the stride or the dilation (PyTorch's rule); rows it adds
/// that no tap reaches (possible when `stride ≤ output_padding < dilation`) hold the bias alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dParams {
    /// Step between input positions in the output, `[sh, sw]`.
    pub stride: [usize; 2],
    /// Rows and columns taken off the full output, per side (PyTorch's `padding`, the same both sides).
    pub padding: Sides,
    /// Rows and columns added after the output, `[oh, ow]`.
    pub output_padding: [usize; 2],
    /// Step between kernel taps, `[dh, dw]`.
    pub dilation: [usize; 2],
    /// Number of groups `G`: input channels `Cin` and outputs `Cout` split in `G` blocks.
    pub groups: usize,
    /// How the tensors are laid out (weights `[Cin, S, T, Cout/G]` in [`Layout::Nhwc`]).
    pub layout: Layout,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        let c = Conv2dParams::default();
        Self {
            stride: c.stride,
            padding: Sides::default(),
            output_padding: [0, 0],
            dilation: c.dilation,
            groups: 1,
            layout: c.layout,
        }
    }
}

impl ConvTranspose2dParams {
    /// Stride 1, no padding, one group, NCHW (same as `Default`).
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

    /// Sets the padding: `ph` rows off the top and the bottom, `pw` columns off each side.
    #[must_use]
    pub fn padding(mut self, ph: usize, pw: usize) -> Self {
        self.padding = Sides::symmetric(ph, pw);
        self
    }

    /// Sets the padding per side.
    #[must_use]
    pub fn padding_sides(mut self, top: usize, bottom: usize, left: usize, right: usize) -> Self {
        self.padding = Sides { top, bottom, left, right };
        self
    }

    /// Sets the output padding `[oh, ow]`.
    #[must_use]
    pub fn output_padding(mut self, oh: usize, ow: usize) -> Self {
        self.output_padding = [oh, ow];
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

    /// Sets the memory layout.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Resolves the layer for an input of `[N, Cin, H, W]` and weights of `[Cin, Cout/G, S, T]` (in
    /// the layer's layout).
    ///
    /// # Errors
    /// A zero size, stride or dilation; channels not divisible by the groups; weights whose first
    /// dimension is not `Cin`; an output padding not below the stride or the dilation
    /// ([`Error::OutputPadding`]); padding that leaves no output ([`Error::EmptyTransposedOutput`]);
    /// an overflow.
    pub fn geometry(&self, input: [usize; 4], weight: [usize; 4]) -> Result<ConvTranspose2dGeometry> {
        let [n, cin, h, w] = self.layout.activation_dims(input);
        let [cin2, coutg, s, t] = self.layout.weight_dims(weight);
        if cin2 != cin {
            return Err(Error::shape("weights' input channels (dimension 0)", cin.to_string(), cin2.to_string()));
        }
        if self.groups == 0 {
            return Err(Error::ZeroDimension { what: "groups" });
        }
        let cout = coutg.checked_mul(self.groups).ok_or_else(|| Error::Overflow {
            what: "output channel count",
            detail: format!("{coutg} × {} groups", self.groups),
        })?;
        self.resolve(n, cin, [h, w], cout, [s, t])
    }

    /// Resolves the layer for the input gradient: output gradient `[N, Cout, Ho, Wo]` and weights
    /// `[Cin, Cout/G, S, T]`. The input size follows, as the output padding is given.
    ///
    /// # Errors
    /// As [`ConvTranspose2dParams::geometry`], and an output gradient size no input size gives.
    pub fn geometry_for_input_grad(
        &self,
        grad_output: [usize; 4],
        weight: [usize; 4],
    ) -> Result<ConvTranspose2dGeometry> {
        let [n, cout, ho, wo] = self.layout.activation_dims(grad_output);
        let [cin, coutg, s, t] = self.layout.weight_dims(weight);
        // H from Ho: (H − 1)·s = Ho − 1 + pt + pb − d·(S − 1) − op, rounded down; checked below.
        let input = |axis: usize, out: usize, kernel: usize, pad: usize| {
            let (st, d, op) = (self.stride[axis].max(1), self.dilation[axis], self.output_padding[axis]);
            let back = d.saturating_mul(kernel.saturating_sub(1)).saturating_add(op);
            (out.saturating_sub(1).saturating_add(pad)).saturating_sub(back) / st + 1
        };
        let pd = self.padding;
        let size = [input(0, ho, s, pd.top + pd.bottom), input(1, wo, t, pd.left + pd.right)];
        let geo =
            self.geometry(self.layout.activation([n, cin, size[0], size[1]]), self.layout.weights([cin, coutg, s, t]))?;
        if geo.conv.c != cout || geo.out != [ho, wo] {
            return Err(Error::shape(
                "output gradient of the transposed convolution",
                format!("{:?}", geo.output_shape()),
                format!("{grad_output:?}"),
            ));
        }
        Ok(geo)
    }

    /// Resolves the layer for the weight gradient: input `[N, Cin, H, W]`, output gradient
    /// `[N, Cout, Ho, Wo]` and kernel size `[S, T]`.
    ///
    /// # Errors
    /// As [`ConvTranspose2dParams::geometry`], and an output gradient of another size.
    pub fn geometry_for_weight_grad(
        &self,
        input: [usize; 4],
        grad_output: [usize; 4],
        [s, t]: [usize; 2],
    ) -> Result<ConvTranspose2dGeometry> {
        let [_, cin, _, _] = self.layout.activation_dims(input);
        let [_, cout, _, _] = self.layout.activation_dims(grad_output);
        if self.groups == 0 {
            return Err(Error::ZeroDimension { what: "groups" });
        }
        if !cout.is_multiple_of(self.groups) {
            return Err(Error::GroupsMismatch { what: "output channels", value: cout, groups: self.groups });
        }
        let geo = self.geometry(input, self.layout.weights([cin, cout / self.groups, s, t]))?;
        if geo.output_shape() != grad_output {
            return Err(Error::shape(
                "output gradient of the transposed convolution",
                format!("{:?}", geo.output_shape()),
                format!("{grad_output:?}"),
            ));
        }
        Ok(geo)
    }

    fn resolve(
        &self,
        n: usize,
        cin: usize,
        [h, w]: [usize; 2],
        cout: usize,
        [s, t]: [usize; 2],
    ) -> Result<ConvTranspose2dGeometry> {
        // Per axis: the output size, and the convolution it is the input gradient of. That
        // convolution's input is the output less `extra` trailing rows no tap reaches, and its
        // trailing padding `bottom` is any value that maps that input back to `H` outputs: from
        // `(H−1)·s + op + bottom − pb ∈ [0, s−1]`, the least one at or above 0.
        let axis = |name: &'static str, size: usize, kernel: usize, i: usize, [lead, trail]: [usize; 2]| {
            let (st, d, op) = (self.stride[i], self.dilation[i], self.output_padding[i]);
            if st == 0 {
                return Err(Error::ZeroStep {
                    what: if i == 0 { "stride (height)" } else { "stride (width)" },
                    value: 0,
                });
            }
            if d == 0 {
                let what = if i == 0 { "dilation (height)" } else { "dilation (width)" };
                return Err(Error::ZeroStep { what, value: 0 });
            }
            if size == 0 || kernel == 0 {
                return Ok((0, 0, 0)); // reported by the convolution's geometry
            }
            if op >= st && op >= d {
                return Err(Error::OutputPadding { axis: name, value: op, stride: st, dilation: d });
            }
            let overflow = || Error::Overflow { what: "transposed output size", detail: format!("input {size}") };
            let full = (size - 1)
                .checked_mul(st)
                .and_then(|a| d.checked_mul(kernel - 1).and_then(|b| a.checked_add(b)))
                .and_then(|a| a.checked_add(op + 1))
                .ok_or_else(overflow)?;
            let padding = lead + trail;
            let empty = || Error::EmptyTransposedOutput {
                axis: name,
                input: size,
                kernel,
                stride: st,
                dilation: d,
                padding,
                output_padding: op,
            };
            let out = full.checked_sub(padding).filter(|&o| o > 0).ok_or_else(empty)?;
            let extra = op.saturating_sub(trail + st - 1);
            let inner = out.checked_sub(extra).filter(|&o| o > 0).ok_or_else(empty)?;
            Ok((out, inner, trail.saturating_sub(op)))
        };
        let pd = self.padding;
        let (ho, ch, bottom) = axis("height", h, s, 0, [pd.top, pd.bottom])?;
        let (wo, cw, right) = axis("width", w, t, 1, [pd.left, pd.right])?;
        let conv_params = Conv2dParams {
            stride: self.stride,
            padding: Padding::Explicit(Sides { top: pd.top, bottom, left: pd.left, right }),
            dilation: self.dilation,
            groups: self.groups,
            layout: self.layout,
        };
        // A zero size is named as the transposed layer's (its input is the convolution's output).
        for (what, v) in [("input height", h), ("input width", w), ("kernel height", s), ("kernel width", t)] {
            if v == 0 {
                return Err(Error::ZeroDimension { what });
            }
        }
        let conv = Conv2dGeometry::new(n, cout, [ch, cw], cin, [s, t], conv_params)?;
        count_u32("output element count", self.layout.activation([n, cout, ho, wo]))?;
        debug_assert_eq!([conv.p, conv.q], [h, w], "the convolution maps the output back to the input");
        if [conv.p, conv.q] != [h, w] {
            return Err(Error::Overflow {
                what: "transposed geometry", detail: format!("{conv:?} for input {h}×{w}")
            });
        }
        Ok(ConvTranspose2dGeometry { conv, out: [ho, wo], params: *self })
    }
}

/// A resolved transposed convolution: the convolution it is the input gradient of, and its own
/// output size.
///
/// Its input `X` `[N, Cin, H, W]` is `conv`'s output (`conv.k = Cin`, `conv.p = H`), its weights are
/// `conv`'s, and its output `Y` `[N, Cout, Ho, Wo]` is `conv`'s input (`conv.c = Cout`) with
/// `out[0] − conv.h` more rows and `out[1] − conv.w` more columns after it (0 unless
/// `stride ≤ output_padding < dilation`), which only the bias reaches. So its forward pass is `conv`'s
/// input gradient, its input gradient `conv`'s forward pass on `dY` without those rows, and its weight
/// gradient `conv`'s weight gradient of `dY` (as the input) and `X` (as the output gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dGeometry {
    /// The convolution whose input gradient this layer is.
    pub conv: Conv2dGeometry,
    /// The output size `[Ho, Wo]`.
    pub out: [usize; 2],
    /// The parameters, as given.
    pub params: ConvTranspose2dParams,
}

impl ConvTranspose2dGeometry {
    /// The shape of X (and dX): `[N, Cin, H, W]` in the layer's layout.
    #[must_use]
    pub fn input_shape(&self) -> [usize; 4] {
        self.conv.output_shape()
    }

    /// The shape of W (and dW): `[Cin, Cout/G, S, T]` in the layer's layout.
    #[must_use]
    pub fn weight_shape(&self) -> [usize; 4] {
        self.conv.weight_shape()
    }

    /// The shape of Y (and dY): `[N, Cout, Ho, Wo]` in the layer's layout.
    #[must_use]
    pub fn output_shape(&self) -> [usize; 4] {
        self.params.layout.activation([self.conv.n, self.conv.c, self.out[0], self.out[1]])
    }

    /// Whether the output has rows or columns beyond the convolution's input.
    #[must_use]
    pub fn extends(&self) -> bool {
        self.out != [self.conv.h, self.conv.w]
    }

    /// Floating-point operations of the forward pass (and of each gradient), as the convolution's.
    #[must_use]
    pub fn flops(&self) -> f64 {
        self.conv.flops()
    }

    /// A short description, e.g. `transposed 8×64×28×28 * 64×32×3×3 s2 p1 op1 d1 g1 → 56×56`: input,
    /// weights `[Cin, Cout/G, S, T]`, parameters (per side `p0,1,0,1` where asymmetric) and output size.
    #[must_use]
    pub fn describe(&self) -> String {
        let c = &self.conv;
        let pr = &self.params;
        let pair = |a: [usize; 2]| if a[0] == a[1] { a[0].to_string() } else { format!("{},{}", a[0], a[1]) };
        let pd = pr.padding;
        let padding = if pd.is_symmetric() {
            pair(pd.lead())
        } else {
            format!("{},{},{},{}", pd.top, pd.bottom, pd.left, pd.right)
        };
        let layout = if pr.layout == Layout::Nchw { "" } else { " nhwc" };
        format!(
            "transposed {}×{}×{}×{} * {}×{}×{}×{} s{} p{padding} op{} d{} g{} → {}×{}{layout}",
            c.n,
            c.k,
            c.p,
            c.q,
            c.k,
            c.channels_per_group(),
            c.s,
            c.t,
            pair(pr.stride),
            pair(pr.output_padding),
            pair(pr.dilation),
            pr.groups,
            self.out[0],
            self.out[1]
        )
    }
}
