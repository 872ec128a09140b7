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
    /// `act_bias_grad.wgsl`: the activation's backward and the bias gradient in one pass, over the
    /// bias gradient's split ranges, with the activation's code and parameters (as bits).
    ActGradUniform,
    "ActGradParams",
    [
        /// The ranges of each filter's positions (as [`ConvUniform`]'s).
        splits,
        chunk,
        /// `Activation::code` and `Activation::params`, as `f32` bits.
        kind,
        act_a,
        act_b,
        pad0,
        pad1,
        pad2,
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
        ActGradUniform::WGSL,
    ]
    .concat()
}

// The uniforms each pass of a program carries, computed from the geometry here, once per kernel
// family: the program builders (`plan/program.rs`, `plan/conv.rs`) call these and set no field.

use crate::error::{Error, Result};
use crate::geometry::u32_of;
use crate::plan::gemm::{AxisPhase, ConvGemm, WeightGradGemm};
use crate::plan::{ForwardTiles, ReductionSplit, WeightGradTiles};

/// An `i32` field of a uniform block, stored as its bits.
fn signed(v: isize) -> Result<u32> {
    i32::try_from(v)
        .map(|v| v.cast_unsigned())
        .map_err(|_| Error::Overflow { what: "kernel offset", detail: format!("{v} outside i32") })
}

impl ConvUniform {
    /// A direct kernel over `geo` reducing in the ranges `r`, one invocation per range and each of
    /// its `len` outputs (one range: one per output).
    pub(crate) fn split(geo: &Conv2dGeometry, flags: u32, r: ReductionSplit, len: usize) -> Result<Self> {
        let mut u = Self::new(geo, flags, u32_of(r.splits * len)?);
        u.splits = u32_of(r.splits)?;
        u.chunk = u32_of(r.chunk)?;
        Ok(u)
    }
}

impl ActGradUniform {
    /// `act_bias_grad` over `geo` (the bias gradient's 1×1 layer) in the ranges `r`, for `act`.
    pub(crate) fn new_for(
        geo: &Conv2dGeometry,
        r: ReductionSplit,
        len: usize,
        act: &crate::activation::Activation,
    ) -> Result<Self> {
        let mut u = Self::new(geo, 0, u32_of(r.splits * len)?);
        u.splits = u32_of(r.splits)?;
        u.chunk = u32_of(r.chunk)?;
        let [a, b] = act.params();
        (u.kind, u.act_a, u.act_b) = (act.code(), a.to_bits(), b.to_bits());
        Ok(u)
    }
}

impl PrepUniform {
    /// `pad_input(_vec4)` and `scatter_dy` over `rows` rows of `geo`'s planes, written `hp × wp`.
    pub(crate) fn planes(geo: &Conv2dGeometry, rows: usize, hp: usize, wp: usize) -> Result<Self> {
        let mut u = Self::new(geo, 0, u32_of(rows)?);
        u.hp = u32_of(hp)?;
        u.wp = u32_of(wp)?;
        Ok(u)
    }

    /// `place` over `rows` rows of planes `hp × wp` filled from `geo`'s `h × w` planes (of `geo.c`
    /// channels, for the bias), adding the bias where `bias`.
    pub(crate) fn place(geo: &Conv2dGeometry, rows: usize, hp: usize, wp: usize, bias: bool) -> Result<Self> {
        let mut u = Self::planes(geo, rows, hp, wp)?;
        u.flags = if bias { FLAG_BIAS } else { 0 };
        Ok(u)
    }

    /// `split_sum`: `len` sums of `splits` partials each.
    pub(crate) fn sum(geo: &Conv2dGeometry, splits: usize, len: usize) -> Result<Self> {
        let mut u = Self::new(geo, 0, u32_of(len)?);
        u.splits = u32_of(splits)?;
        Ok(u)
    }

    /// `transpose_weights`: `len` weights into tiles of `kpad` filters per group.
    pub(crate) fn weight_tiles(geo: &Conv2dGeometry, kpad: usize, len: usize) -> Result<Self> {
        let mut u = Self::new(geo, 0, u32_of(len)?);
        u.kpad = u32_of(kpad)?;
        Ok(u)
    }

    /// `transpose(_rows)` of the matrices `shape` describes, in `runs` runs of `run` per row.
    pub(crate) fn transpose(shape: &Conv2dGeometry, invocations: u32, runs: usize, run: usize) -> Result<Self> {
        let mut u = Self::new(shape, 0, invocations);
        u.splits = u32_of(runs)?;
        u.chunk = u32_of(run)?;
        Ok(u)
    }
}

impl ForwardTileUniform {
    /// The tiled forward kernels over `geo` as `t` covers it (`kpad` set for the vec4 kernel).
    pub(crate) fn tiles(geo: &Conv2dGeometry, t: &ForwardTiles, flags: u32) -> Result<Self> {
        let total = u32_of(geo.n * geo.params.groups * t.ktiles * t.lanes)?;
        let mut u = Self::new(geo, flags, total);
        u.one = 1;
        u.hp = u32_of(t.read.hp)?;
        u.wp = u32_of(t.read.wp)?;
        u.ph = u32_of(t.read.ph)?;
        u.pw = u32_of(t.read.pw)?;
        u.row_step = u32_of(t.skip.row_step)?;
        u.row_off = u32_of(t.skip.row_off)?;
        u.i_step = u32_of(t.skip.i_step)?;
        u.lanes = u32_of(t.lanes)?;
        u.qlanes = u32_of(t.qlanes)?;
        u.qtiles = u32_of(t.qtiles)?;
        u.ptiles = u32_of(t.ptiles)?;
        u.ktiles = u32_of(t.ktiles)?;
        // Only the vec4 kernel reads transposed weights.
        if let (crate::plan::variant::Variant::ForwardVec4(_), Some(kpad)) = (t.variant, t.kpad) {
            u.kpad = u32_of(kpad)?;
        }
        Ok(u)
    }
}

impl GradTileUniform {
    /// The tiled weight gradients over `geo` as `t` covers it.
    pub(crate) fn tiles(geo: &Conv2dGeometry, t: &WeightGradTiles) -> Result<Self> {
        let mut u = Self::new(geo, 0, u32_of(geo.params.groups * t.ktiles * t.lanes * t.splits)?);
        u.hp = u32_of(t.hp)?;
        u.wp = u32_of(t.wp)?;
        u.lanes = u32_of(t.lanes)?;
        u.ktiles = u32_of(t.ktiles)?;
        u.rtiles = u32_of(t.rtiles)?;
        u.splits = u32_of(t.splits)?;
        u.chunk = u32_of(t.chunk)?;
        u.fold = u32_of(t.fold)?;
        u.qp = u32_of(t.qp.unwrap_or(0))?;
        Ok(u)
    }

    /// `conv2d_weight_grad_gemm` over `geo` as `t` tiles it: one workgroup per (split, group, tile).
    pub(crate) fn gemm(geo: &Conv2dGeometry, t: &WeightGradGemm) -> Result<Self> {
        let mut u = Self::new(geo, 0, u32_of(t.splits * geo.params.groups * t.mtiles * t.ntiles)?);
        u.ktiles = u32_of(t.mtiles)?;
        u.rtiles = u32_of(t.ntiles)?;
        u.splits = u32_of(t.splits)?;
        u.chunk = u32_of(t.chunk)?;
        Ok(u)
    }
}

impl GemmUniform {
    /// The GEMM form of the forward pass of `geo` (see `conv2d_gemm.wgsl`): rows the filters of a
    /// group, the reduction (cg, i, j), columns (n, p, q); A the weights, B the input.
    pub(crate) fn forward(geo: &Conv2dGeometry, flags: u32, plan: &ConvGemm) -> Result<Self> {
        let pr = &geo.params;
        let (cpg, kpg, st) = (geo.channels_per_group(), geo.filters_per_group(), geo.s * geo.t);
        let hw = geo.h * geo.w;
        let mut u = Self::new(geo, flags, 0);
        u.m = u32_of(kpg)?;
        u.r = u32_of(cpg * st)?;
        u.cols = u32_of(geo.n * geo.p * geo.q)?;
        u.rs = u32_of(geo.s)?;
        u.rt = u32_of(geo.t)?;
        u.a_ms = u32_of(cpg * st)?;
        u.a_gs = u32_of(kpg * cpg * st)?;
        u.a_os = u32_of(st)?;
        u.a_hs = u32_of(geo.t)?;
        u.a_ws = 1;
        u.b_ns = u32_of(geo.c * hw)?;
        u.b_gs = u32_of(cpg * hw)?;
        u.b_cs = u32_of(hw)?;
        u.b_h = u32_of(geo.h)?;
        u.b_w = u32_of(geo.w)?;
        u.cy = u32_of(geo.p)?;
        u.cx = u32_of(geo.q)?;
        u.ys = u32_of(pr.stride[0])?;
        u.xs = u32_of(pr.stride[1])?;
        u.yb = signed(-(geo.pad.top as isize))?;
        u.xb = signed(-(geo.pad.left as isize))?;
        u.ya = u32_of(pr.dilation[0])?;
        u.xa = u32_of(pr.dilation[1])?;
        u.o_ns = u32_of(geo.k * geo.p * geo.q)?;
        u.o_cs = u32_of(geo.p * geo.q)?;
        u.o_w = u32_of(geo.q)?;
        u.o_ys = 1;
        u.o_xs = 1;
        u.tiled(geo, plan)
    }

    /// The GEMM form of the stride phase (`ph`, `pw`) of the input gradient of `geo` (see
    /// [`crate::plan::gemm`]): rows the channels of a group, the reduction (k, a, b) over the phase's
    /// taps, columns (n, h', w'); A the weights at taps (i0 + a·istep, j0 + b·jstep), B dY.
    pub(crate) fn input_phase(geo: &Conv2dGeometry, ph: &AxisPhase, pw: &AxisPhase, plan: &ConvGemm) -> Result<Self> {
        let pr = &geo.params;
        let (cpg, kpg, st) = (geo.channels_per_group(), geo.filters_per_group(), geo.s * geo.t);
        let pq = geo.p * geo.q;
        let mut u = Self::new(geo, 0, 0);
        u.m = u32_of(cpg)?;
        u.r = u32_of(kpg * ph.taps * pw.taps)?;
        u.cols = u32_of(geo.n * ph.len * pw.len)?;
        // A phase without taps has no reduction; its radix stays 1 so that the set-up divides by nothing.
        u.rs = u32_of(ph.taps.max(1))?;
        u.rt = u32_of(pw.taps.max(1))?;
        u.a_ms = u32_of(st)?;
        u.a_gs = u32_of(kpg * cpg * st)?;
        u.a_os = u32_of(cpg * st)?;
        u.a_hb = u32_of(ph.i0 * geo.t)?;
        u.a_hs = u32_of(ph.istep * geo.t)?;
        u.a_wb = u32_of(pw.i0)?;
        u.a_ws = u32_of(pw.istep)?;
        u.b_ns = u32_of(geo.k * pq)?;
        u.b_gs = u32_of(kpg * pq)?;
        u.b_cs = u32_of(pq)?;
        u.b_h = u32_of(geo.p)?;
        u.b_w = u32_of(geo.q)?;
        u.cy = u32_of(ph.len)?;
        u.cx = u32_of(pw.len)?;
        u.ys = 1;
        u.xs = 1;
        u.yb = signed(ph.base)?;
        u.xb = signed(pw.base)?;
        u.ya = signed(-(ph.step as isize))?;
        u.xa = signed(-(pw.step as isize))?;
        u.o_ns = u32_of(geo.c * geo.h * geo.w)?;
        u.o_cs = u32_of(geo.h * geo.w)?;
        u.o_w = u32_of(geo.w)?;
        u.o_ys = u32_of(pr.stride[0])?;
        u.o_yb = u32_of(ph.first)?;
        u.o_xs = u32_of(pr.stride[1])?;
        u.o_xb = u32_of(pw.first)?;
        u.tiled(geo, plan)
    }

    /// The tile counts of `plan` over the matrix and the groups of `geo`.
    fn tiled(mut self, geo: &Conv2dGeometry, plan: &ConvGemm) -> Result<Self> {
        let tile = &plan.tile;
        self.mtiles = self.m.div_ceil(u32_of(tile.bm)?);
        self.ntiles = self.cols.div_ceil(u32_of(tile.bn)?);
        let groups = u32_of(geo.params.groups)?;
        self.total =
            self.mtiles.checked_mul(self.ntiles).and_then(|t| t.checked_mul(groups)).ok_or(Error::Overflow {
                what: "GEMM tiles",
                detail: format!("{} x {} x {groups}", self.mtiles, self.ntiles),
            })?;
        Ok(self)
    }
}

/// The uniform of `axpby.wgsl`: `out = a·x + b·y` over `len` elements.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ElemUniform {
    pub(crate) len: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

impl ElemUniform {
    pub(crate) fn axpby(len: u32, a: f32, b: f32) -> Self {
        Self { len, a, b, _pad: 0 }
    }
}

/// The uniform of `activate.wgsl`: `len` elements, the activation's code and parameters, and the
/// mode (0: `act(z)`, 1: `g · act′(z)`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ActUniform {
    pub(crate) len: u32,
    kind: u32,
    a: f32,
    b: f32,
    mode: u32,
    _pad: [u32; 3],
}

impl ActUniform {
    pub(crate) fn new(len: u32, act: &crate::activation::Activation, grad: bool) -> Self {
        let [a, b] = act.params();
        Self { len, kind: act.code(), a, b, mode: u32::from(grad), _pad: [0; 3] }
    }
}

/// The uniform of `sum_squares.wgsl`: the sums (of squares, where `square` is 1) of consecutive blocks
/// of `chunk` of `len` elements.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ReduceUniform {
    len: u32,
    chunk: u32,
    square: u32,
    _pad: u32,
}

impl ReduceUniform {
    pub(crate) fn blocks(len: u32, chunk: u32, square: bool) -> Self {
        Self { len, chunk, square: u32::from(square), _pad: 0 }
    }
}

/// The uniform of `adam.wgsl`: one step over `len` parameters, with the bias corrections folded into
/// the step size and ε (`lr_t = lr·√(1−β2ᵗ)/(1−β1ᵗ)`, `eps_t = ε·√(1−β2ᵗ)`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct AdamUniform {
    pub(crate) len: u32,
    lr_t: f32,
    beta1: f32,
    beta2: f32,
    eps_t: f32,
    _pad: [u32; 3],
}

impl AdamUniform {
    /// Step `t` (from 1) of Adam with these hyper-parameters.
    pub(crate) fn step(len: u32, lr: f32, [beta1, beta2]: [f32; 2], eps: f32, t: i32) -> Self {
        let c1 = 1.0 - beta1.powi(t);
        let c2 = (1.0 - beta2.powi(t)).sqrt();
        Self { len, lr_t: lr * c2 / c1, beta1, beta2, eps_t: eps * c2, _pad: [0; 3] }
    }
}

const _: () = assert!(std::mem::size_of::<ElemUniform>().is_multiple_of(16));
const _: () = assert!(std::mem::size_of::<ActUniform>().is_multiple_of(16));
const _: () = assert!(std::mem::size_of::<ReduceUniform>().is_multiple_of(16));
const _: () = assert!(std::mem::size_of::<AdamUniform>().is_multiple_of(16));
