//! The uniform blocks of the kernel families: plain `#[repr(C)]` data a program carries with each
//! pass (bytes for the device, fields for a table), declared once with their WGSL twins. No wgpu.

use bytemuck::{Pod, Zeroable};

use crate::geometry::Conv2dGeometry;

/// Declares one family's uniform block: a `#[repr(C)]` struct of `u32`s whose first 20 fields are the
/// layer's shape (the same in every family) and then the family's own, and its WGSL twin, written out
/// from the same field list so that the two cannot disagree.
macro_rules! uniform {
    ($(#[$doc:meta])* $name:ident, $wgsl:literal, [$($(#[$fdoc:meta])* $f:ident),* $(,)?]) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Pod, Zeroable)]
        pub(crate) struct $name {
            n: u32,
            c: u32,
            h: u32,
            w: u32,
            k: u32,
            s: u32,
            t: u32,
            p: u32,
            q: u32,
            sh: u32,
            sw: u32,
            pub(crate) ph: u32,
            pub(crate) pw: u32,
            dh: u32,
            dw: u32,
            cpg: u32,
            kpg: u32,
            g: u32,
            /// Bit 0 ([`FLAG_BIAS`]): the forward pass adds the bias.
            flags: u32,
            /// Invocations that do work (the dispatch rounds up to whole workgroups).
            pub(crate) total: u32,
            $($(#[$fdoc])* pub(crate) $f: u32,)*
        }

        const _: () = assert!(std::mem::size_of::<$name>().is_multiple_of(16));

        impl $name {
            /// The WGSL declaration of this block, in the prelude of every convolution kernel.
            pub(crate) const WGSL: &'static str = concat!(
                "struct ", $wgsl, " {\n",
                "    n: u32, c: u32, h: u32, w: u32, k: u32, s: u32, t: u32, p: u32, q: u32,\n",
                "    sh: u32, sw: u32, ph: u32, pw: u32, dh: u32, dw: u32, cpg: u32, kpg: u32, g: u32,\n",
                "    flags: u32, total: u32,\n",
                $("    ", stringify!($f), ": u32,\n",)*
                "}\n"
            );

            /// The shape of `geo`, for `total` invocations; the family's own fields 0.
            ///
            /// Every value fits in `u32`: [`Conv2dGeometry::new`] checked the element counts and the
            /// padded extents, which bound every other field.
            pub(crate) fn new(geo: &Conv2dGeometry, flags: u32, total: u32) -> Self {
                let u = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
                let pr = &geo.params;
                Self {
                    n: u(geo.n),
                    c: u(geo.c),
                    h: u(geo.h),
                    w: u(geo.w),
                    k: u(geo.k),
                    s: u(geo.s),
                    t: u(geo.t),
                    p: u(geo.p),
                    q: u(geo.q),
                    sh: u(pr.stride[0]),
                    sw: u(pr.stride[1]),
                    // The kernels see only the leading padding, the offset of every tap: the trailing
                    // padding is already in P and Q (and in the extent of a padded copy).
                    ph: u(geo.pad.top),
                    pw: u(geo.pad.left),
                    dh: u(pr.dilation[0]),
                    dw: u(pr.dilation[1]),
                    cpg: u(geo.channels_per_group()),
                    kpg: u(geo.filters_per_group()),
                    g: u(pr.groups),
                    flags,
                    total,
                    $($f: 0,)*
                }
            }
        }
    };
}

uniform!(
    /// The direct kernels (`conv2d_forward`, `conv2d_weight_grad`, `conv2d_input_grad`,
    /// `conv2d_bias_grad`) and `flip_weights`: the shape, and the split of a reduction.
    ConvUniform,
    "ConvParams",
    [
        /// The weight and bias gradients' reductions in `splits` ranges of `chunk` rows (weight
        /// gradient: rows (n, p); bias gradient: positions (n, p, q)), each range's sums stored apart
        /// and added in order by `split_sum` (see `plan::ReductionSplit`).
        splits,
        chunk,
        pad0,
        pad1,
    ]
);

uniform!(
    /// The passes that prepare or finish a tiled kernel's buffers: `pad_input(_vec4)`, `scatter_dy`,
    /// `transpose_weights`, `split_sum`; and `transpose`, between layouts.
    PrepUniform,
    "PrepParams",
    [
        /// The padded (or spread) planes written: `hp × wp`.
        hp,
        wp,
        /// Filters per group of the transposed weights.
        kpad,
        /// Partial results added by `split_sum`; `transpose_rows`: runs per output row.
        splits,
        /// `transpose_rows`: elements per run (the last run of a row may be shorter).
        chunk,
        pad0,
        pad1,
        pad2,
    ]
);

uniform!(
    /// The tiled forward kernels (`conv2d_forward_tiled`, `conv2d_forward_vec4`), as
    /// [`ForwardTiles`](crate::plan::ForwardTiles) sets them.
    ForwardTileUniform,
    "ForwardTileParams",
    [
        /// The planes read, `hp × wp` (padded copy, or the input itself with `ph`, `pw` masked).
        hp,
        wp,
        /// Tiles along q, p and the filters of a group; invocations per (n, filter tile) and per row.
        qtiles,
        ptiles,
        ktiles,
        lanes,
        qlanes,
        /// Data rows of a spread dY (see `first_data_row` in `shaders/common.wgsl`).
        row_step,
        row_off,
        i_step,
        /// Filters per group of the transposed weights (the vec4 kernel).
        kpad,
        /// Always 1: the bound of the single-pass loops that fence generated straight-line code into
        /// basic blocks of their own (see `FENCE` in `tiled.rs`); a constant would be folded away.
        one,
    ]
);

uniform!(
    /// The tiled weight gradients (`conv2d_weight_grad_tiled`, `conv2d_weight_grad_vec4`), as
    /// [`WeightGradTiles`](crate::plan::WeightGradTiles) sets them.
    GradTileUniform,
    "GradTileParams",
    [
        /// The padded copy of X, `hp × wp`.
        hp,
        wp,
        /// Tiles of filters and of taps (or kernel rows); invocations per (split, filter tile).
        ktiles,
        rtiles,
        lanes,
        /// The reduction over N·P rows in `splits` chunks of `chunk` rows.
        splits,
        chunk,
        /// dY's row pitch in the vec4 kernel: Q rounded up to 4.
        qp,
        /// The register-tile kernels add their running sums into a second set every `fold` rows.
        fold,
        pad0,
        pad1,
        pad2,
    ]
);

uniform!(
    /// `conv2d_gemm.wgsl`: an implicit GEMM `out[g](m, col) = Σ_r A[g](m, r) · B[g](r, col)` in the
    /// general form that covers the forward pass and each stride phase of the input gradient (see
    /// the shader). Fields typed `i32` in meaning are stored as their bits.
    GemmUniform,
    "GemmParams",
    [
        /// Rows per group, reduction length, columns, tiles of rows and of columns.
        m,
        r,
        cols,
        mtiles,
        ntiles,
        /// The reduction's radix: r = (o, a, b) with a < rs, b < rt.
        rs,
        rt,
        /// A's element (m, r) of group g: g·a_gs + m·a_ms + o·a_os + a_hb + a·a_hs + a_wb + b·a_ws.
        a_ms,
        a_gs,
        a_os,
        a_hb,
        a_hs,
        a_wb,
        a_ws,
        /// B's source tensor: sample, group and channel strides, plane height and width.
        b_ns,
        b_gs,
        b_cs,
        b_h,
        b_w,
        /// Column col = (n, y, x) over cy × cx; it reads row y·ys + yb + a·ya, column x·xs + xb + b·xa.
        cy,
        cx,
        ys,
        xs,
        yb,
        xb,
        ya,
        xa,
        /// Output element (g·M + m, col): n·o_ns + (g·M + m)·o_cs + (y·o_ys + o_yb)·o_w + x·o_xs + o_xb.
        o_ns,
        o_cs,
        o_w,
        o_ys,
        o_yb,
        o_xs,
        o_xb,
        pad0,
        pad1,
    ]
);

uniform!(
    /// `widen.wgsl` and `narrow.wgsl`: a run of elements between an `f32` buffer and a 16-bit one.
    HalfUniform,
    "HalfParams",
    [
        /// The run's first element in the source and in the destination, and its length.
        src_off,
        dst_off,
        len,
        pad0,
    ]
);

/// `flags` bit: the forward pass adds the bias.
pub(crate) const FLAG_BIAS: u32 = 1;

/// The uniform blocks of every family, declared ahead of `shaders/common.wgsl`.
pub(crate) fn uniform_decls() -> String {
    [
        ConvUniform::WGSL,
        PrepUniform::WGSL,
        ForwardTileUniform::WGSL,
        GradTileUniform::WGSL,
        GemmUniform::WGSL,
        HalfUniform::WGSL,
    ]
    .concat()
}
