//! The kernel variants: which generated code a tiled kernel is compiled with. Plain data, chosen by
//! the planner ([`crate::plan`]) and rendered to WGSL by `src/gpu/tiled.rs`; the pipeline cache is
//! keyed by it.

use crate::elem::{Elem, HalfPath};

/// A kernel variant: the tile code to splice into its WGSL. Small and cheap to compare, so that a
/// call looks its pipeline up without generating any code; the WGSL text is generated only when the
/// pipeline cache misses (a large unrolled tile is thousands of lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Variant {
    /// No substitutions: the plain kernels.
    Plain,
    /// `conv2d_forward_tiled.wgsl`, see [`forward`].
    Forward { bk: usize, bq: usize, window: Option<Window> },
    /// `conv2d_weight_grad_tiled.wgsl`, see [`weight_grad`].
    WeightGrad { bk: usize, br: usize },
    /// `conv2d_forward_vec4.wgsl`, see [`forward_vec4`].
    ForwardVec4(ForwardVec4),
    /// `conv2d_weight_grad_vec4.wgsl`, see [`weight_grad_vec4`].
    WeightGradVec4 { bk: usize, br: usize, wd: Window, share: Sharing },
    /// `conv2d_gemm.wgsl`: the forward pass, or one stride phase of the input gradient; its operands
    /// read as [`Load`] says.
    ConvGemm(GemmTile, AStage, Load),
    /// `conv2d_weight_grad_gemm.wgsl`: the weight gradient over a split reduction, dY staged as
    /// scalars or vec4s; X and dY read as [`Load`] says.
    WeightGradGemm(GemmTile, AStage, Load),
    /// `widen.wgsl`: a 16-bit tensor read into `f32`, by the path given (see [`Variant::widen`]).
    Widen(Elem, HalfPath),
    /// `narrow.wgsl`: `f32` written into a 16-bit tensor, by the path given.
    Narrow(Elem, HalfPath),
}

impl Variant {
    /// The widening kernel's variant for `elem` on `path`: bf16 always goes by integer operations,
    /// so its variant is one whatever the adapter's `f16` path.
    pub(crate) fn widen(elem: Elem, path: HalfPath) -> Self {
        Self::Widen(elem, Self::half_path(elem, path))
    }

    /// The narrowing kernel's variant (see [`Variant::widen`]). The native path narrows with the pack
    /// builtins, which every adapter with native `f16` has: an `f16` binding cannot write the exact
    /// special values (naga cannot bitcast `f16`s to bits), and WebGPU forbids a second, word-typed
    /// writable view of the same buffer.
    pub(crate) fn narrow(elem: Elem, path: HalfPath) -> Self {
        let path = if path == HalfPath::Native { HalfPath::Packed } else { path };
        Self::Narrow(elem, Self::half_path(elem, path))
    }

    fn half_path(elem: Elem, path: HalfPath) -> HalfPath {
        if elem == Elem::F16 { path } else { HalfPath::Bits }
    }

    /// This variant reading its operands as `load` says: the GEMM kernels stage 16-bit operands
    /// straight from their tensors (converted where they are staged; the sums stay `f32`). Other
    /// variants are returned as they are.
    pub(crate) fn with_load(self, load: Load) -> Self {
        match self {
            Self::ConvGemm(t, a, _) => Self::ConvGemm(t, a, load),
            Self::WeightGradGemm(t, a, _) => Self::WeightGradGemm(t, a, load),
            v => v,
        }
    }

    /// Whether the generated WGSL declares `f16` (it then starts with `enable f16;`).
    pub(crate) fn needs_f16(&self) -> bool {
        matches!(self, Self::Widen(Elem::F16, HalfPath::Native))
    }

    /// Invocations per workgroup of this variant's kernel (the WGSL override `WG`): 64, but for a
    /// GEMM tile of more invocations.
    pub(crate) fn workgroup(&self) -> u32 {
        match self {
            Self::ConvGemm(t, ..) | Self::WeightGradGemm(t, ..) => t.threads() as u32,
            _ => crate::plan::profile::WORKGROUP,
        }
    }
}

/// How a kernel reads its operands: `f32`, or 16-bit words converted where they are staged, by the
/// integer path or the pack builtins (the native path reads as the packed one here: a second, typed
/// binding per operand is not worth it for a load that is converted once per staged value). The
/// conversion is the widening kernel's, so a staged value has the bits a widened operand has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Load {
    pub(crate) elem: Elem,
    pub(crate) path: HalfPath,
}

impl Load {
    /// Plain `f32` loads.
    pub(crate) const F32: Load = Load { elem: Elem::F32, path: HalfPath::Bits };

    /// Loads of `elem` on the adapter's f16 `path`, normalised so that equal code is one variant.
    pub(crate) fn of(elem: Elem, path: HalfPath) -> Self {
        let path = match (elem, path) {
            (Elem::F16, HalfPath::Native | HalfPath::Packed) => HalfPath::Packed,
            _ => HalfPath::Bits,
        };
        Load { elem, path }
    }
}

/// A row of the forward kernel specialised for its kernel width `t`, stride `sw` and dilation `dw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Window {
    pub(crate) t: usize,
    pub(crate) sw: usize,
    pub(crate) dw: usize,
}

impl Window {
    /// Inputs one row of a tile of `bq` columns reads.
    pub(crate) fn len(&self, bq: usize) -> usize {
        (bq - 1) * self.sw + (self.t - 1) * self.dw + 1
    }
}

/// The forward pass's tile of `bk` filters × `bq` output columns (`conv2d_forward_tiled.wgsl`), with
/// the kernel row unrolled over a loaded input window when `window` is given.
#[cfg(test)]
pub(crate) fn forward(bk: usize, bq: usize, window: Option<Window>) -> Variant {
    Variant::Forward { bk, bq, window }
}

/// The weight gradient's tile of `bk` filters × `br` taps (`conv2d_weight_grad_tiled.wgsl`).
#[cfg(test)]
pub(crate) fn weight_grad(bk: usize, br: usize) -> Variant {
    Variant::WeightGrad { bk, br }
}

/// How the vec4 forward kernel finds the zeros around its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Pad {
    /// It reads a zero-padded copy (`pad_input.wgsl`): no test on any load.
    Copy,
    /// It reads X itself (rows of whole vec4s, a left padding of whole vec4s) and reads vec4s
    /// outside it as zeros: no copy pass, a test per vec4 load.
    Mask,
}

/// Several output rows per tile of the vec4 forward kernel: `br` rows of a layer with `s` kernel
/// rows, stride `sh` and dilation `dh` along the height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Rows {
    pub(crate) br: usize,
    pub(crate) s: usize,
    pub(crate) sh: usize,
    pub(crate) dh: usize,
    /// Each input row's block of multiply-adds in a basic block of its own (see
    /// [`AdapterProfile::fence_blocks`](crate::plan::AdapterProfile::fence_blocks)).
    pub(crate) fenced: bool,
}

/// The forward pass with vec4 loads (`conv2d_forward_vec4.wgsl`): `bk` filters (a multiple of 4, or
/// fewer than 4 in a single tile) × `bq` columns (a multiple of 4), the kernel row unrolled over its
/// input window; one output row per tile, or the `rows` of a [`Rows`] tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ForwardVec4 {
    pub(crate) bk: usize,
    pub(crate) bq: usize,
    pub(crate) wd: Window,
    pub(crate) rows: Option<Rows>,
    pub(crate) pad: Pad,
    pub(crate) share: Sharing,
    pub(crate) store: Store,
    /// Which window columns hold data, where the others are known zeros; `None`: all of them.
    pub(crate) cols: Option<Cols>,
}

/// The columns of an input spread by a stride (the input gradient's dY, `scatter_dy.wgsl`) as a tile
/// of the vec4 forward kernel sees them: window column m holds data only when (m + phase) is a multiple
/// of `step`, the same in every tile (`step` divides the tile width). The multiply-adds of the other
/// columns, by inserted zeros, are left out of the generated code.
///
/// With `lead` the kernel reads dY itself rather than the spread copy (with [`Pad::Mask`]): rows
/// (ρ − ph) / row_step of dY for the rows ρ of the spread it visits, and for a tile at column q0 the
/// data columns of its window, dense, from dY column q0 / step + lead on (4·step divides the tile
/// width, so that they start at the same element of a vec4 in every tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Cols {
    pub(crate) step: usize,
    pub(crate) phase: usize,
    pub(crate) lead: Option<isize>,
}

/// The variant of the vec4 forward kernel with these fields (see [`ForwardVec4`]).
#[cfg(test)]
pub(crate) fn forward_vec4(
    bk: usize,
    bq: usize,
    wd: Window,
    rows: Option<Rows>,
    pad: Pad,
    share: Sharing,
    store: Store,
) -> Variant {
    Variant::ForwardVec4(ForwardVec4 { bk, bq, wd, rows, pad, share, store, cols: None })
}

/// How the vec4 forward kernel writes its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Store {
    /// One element at a time.
    Scalar,
    /// Four columns at a time, where Q is a multiple of 4 (then every row, and every group of four
    /// columns of a tile, starts on a multiple of 4). On a CPU adapter each store runs lane by lane,
    /// and a small layer's tile stores nearly as often as it loads.
    Vec4,
}

/// How the invocations of a tiled kernel get the operand that all lanes of a subgroup read alike:
/// the weights of a filter tile in the forward kernel, the dY rows of a filter tile in the weight
/// gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sharing {
    /// Each lane loads it.
    PerLane,
    /// The first 8 lanes of a subgroup load it and broadcast it to the rest: the subgroup works on
    /// one filter tile, and its lanes run the same loops (no kernel rows skipped per lane).
    Subgroup,
}

/// The weight gradient with vec4 loads along q (`conv2d_weight_grad_vec4.wgsl`): `bk` filters × `br`
/// kernel rows × the `wd.t` taps of each row, four output columns per step; with
/// [`Sharing::Subgroup`] lane v of a subgroup loads filter v's dY and broadcasts it.
#[cfg(test)]
pub(crate) fn weight_grad_vec4(bk: usize, br: usize, wd: Window, share: Sharing) -> Variant {
    Variant::WeightGradVec4 { bk, br, wd, share }
}

/// The tile of the workgroup-memory GEMM kernels (`conv2d_gemm.wgsl`, `conv2d_weight_grad_gemm.wgsl`):
/// a workgroup computes `bm` rows (filters or channels) × `bn` columns of the output, staging `bk`
/// reduction steps of both operands in workgroup memory at a time; each of its
/// `(bm / tm)·(bn / tn)` invocations (64, or 256 for the 128 × 128 tile) holds `tm × tn`
/// accumulators, rows `bm / tm` and columns `bn / tn` apart (so that neighbouring invocations read
/// neighbouring words of workgroup memory and store neighbouring outputs). With `stages = 2` the
/// slabs are double-buffered: a round stages the next slabs while it multiplies the last ones, with
/// one barrier per round instead of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct GemmTile {
    pub(crate) bm: usize,
    pub(crate) bn: usize,
    pub(crate) bk: usize,
    pub(crate) tm: usize,
    pub(crate) tn: usize,
    pub(crate) stages: usize,
}

/// How a GEMM kernel stages its A operand: the weights (`conv2d_gemm.wgsl`) or dY
/// (`conv2d_weight_grad_gemm.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AStage {
    /// One value per load, its place in the reduction kept as digits: any layout of A (the input
    /// gradient reads the weights of a stride phase's taps, strided).
    Taps,
    /// Four consecutive reduction steps per load: the forward pass, whose weights are rows of
    /// `(C/G)·S·T` contiguous values, where that length is a multiple of 4; the weight gradient,
    /// whose dY rows are planes of `P·Q` contiguous values, where `P·Q` and the reduction's range are
    /// multiples of 4. The staged values, and so the results, are those of `Taps` to the bit.
    Vec4,
}

impl GemmTile {
    /// Bytes of workgroup memory the tile's two operands take (both slabs of each when
    /// double-buffered), each row padded by one word (so that the column-wise stores of a slab fall in
    /// different banks).
    pub(crate) fn operand_bytes(&self) -> usize {
        4 * self.stages * self.bk * (self.bm + 1 + self.bn + 1)
    }

    /// Invocations per workgroup: one per `tm × tn` accumulators.
    pub(crate) fn threads(&self) -> usize {
        (self.bm / self.tm) * (self.bn / self.tn)
    }
}
