//! Plans of the workgroup-memory GEMM kernels, the GPU class's kernels for all three operations.
//!
//! Each operation is a matrix product whose operands are gathered from the tensors as they are
//! (implicit GEMM: no im2col matrix, no padded copy; the padding is a mask on the loads):
//! - forward: `Y[g](k, col) = Σ_r W[g](k, r) · X̂[g](r, col)`, `r = (cg, i, j)`, `col = (n, p, q)`;
//! - weight gradient: `dW[g](k, r) = Σ_col dY[g](k, col) · X̂[g](r, col)`, the long sum over
//!   `col = (n, p, q)` split into fixed ranges whose partial tiles are stored and then added in order;
//! - input gradient, one stride phase `(φh, φw)` at a time: the inputs `h = φh + sh·h'`,
//!   `w = φw + sw·w'` receive only the taps `i` with `i·dh ≡ φh + pt (mod sh)` (likewise `j`), an
//!   arithmetic progression `i = i0 + a·istep`, and from each such tap the dY row
//!   `p = h' + base − a·(istep·dh/sh)`: a dense correlation of dY with the phase's taps. No zeros are
//!   inserted into dY and none are multiplied.
//!
//! Groups are a grid dimension. The tile sizes are constants the planner sets ([`GemmShape`]).

use std::fmt;
use std::num::NonZeroU32;

use crate::error::{Error, Result};
use crate::geometry::Conv2dGeometry;
use crate::plan::loops::{self, MAX_SPLITS};
use crate::plan::variant::{AStage, GemmTile};
use crate::plan::{AdapterProfile, gcd};

/// The tile shapes of the GEMM kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GemmShape {
    /// 64 × 64 outputs per workgroup, 8 × 8 per invocation: the most reuse of each loaded value.
    Large,
    /// 16 × 128: for layers of few filters (or, in the input gradient, few channels) per group.
    Narrow,
    /// 4 × 192, 4 × 3 per invocation: for at most 4 rows, such as the input gradient of an RGB or
    /// single-channel input (the narrow tile would leave 12 of its 16 rows idle there).
    Thin,
    /// 32 × 32, 4 × 4 per invocation: more workgroups for small outputs.
    Small,
    /// 128 × 128 outputs per workgroup of 256 invocations, 8 × 8 each: twice the large tile's reuse
    /// of each staged value, for large layers on GPUs. Never the planner's own choice: only the
    /// tuner (or a caller) picks it, by measuring.
    Huge,
}

impl GemmShape {
    /// Every shape, in the order the tests force them.
    pub const ALL: [GemmShape; 5] =
        [GemmShape::Large, GemmShape::Narrow, GemmShape::Small, GemmShape::Thin, GemmShape::Huge];

    /// `large`, `narrow`, `small`, `thin` or `huge`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Large => "large",
            Self::Narrow => "narrow",
            Self::Small => "small",
            Self::Thin => "thin",
            Self::Huge => "huge",
        }
    }

    /// The tile of this shape on an adapter with `workgroup_bytes` of workgroup memory: the large
    /// tile stages 32 reduction steps where 32 KiB are offered, 16 within WebGPU's 16 KiB (the huge
    /// tile 16 and 8).
    pub(crate) fn tile(self, workgroup_bytes: u32) -> GemmTile {
        let roomy = workgroup_bytes >= 32 * 1024;
        let tile = |bm, bn, bk, tm, tn| GemmTile { bm, bn, bk, tm, tn, stages: 1 };
        match self {
            Self::Large => tile(64, 64, if roomy { 32 } else { 16 }, 8, 8),
            Self::Narrow => tile(16, 128, 16, 4, 8),
            Self::Small => tile(32, 32, 16, 4, 4),
            Self::Thin => tile(4, 192, 16, 4, 3),
            Self::Huge => tile(128, 128, if roomy { 16 } else { 8 }, 8, 8),
        }
    }
}

/// What a caller forces of the GEMM kernels: a tile shape, a split count of the weight gradient's
/// reduction, a reduction depth, double-buffered slabs; `None` (and `false`): the planner's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GemmChoice {
    /// The tile shape.
    pub shape: Option<GemmShape>,
    /// The weight gradient's number of reduction ranges (clamped to the number of `bk`-column
    /// steps of the reduction).
    pub splits: Option<NonZeroU32>,
    /// Reduction steps staged per round (the tile's `bk`): 8, 16 or 32 where the tile's loads divide
    /// evenly among its invocations and both slabs fit the workgroup memory; `None`: the shape's own.
    pub depth: Option<NonZeroU32>,
    /// Double-buffered slabs: each round stages the next reduction steps into a second pair of slabs
    /// while it multiplies the pair staged last round (one barrier per round instead of two, twice
    /// the workgroup memory; without a forced depth, the tile is made shallower until both pairs
    /// fit). The planner never chooses it alone; the tuner measures it.
    pub double: bool,
}

impl GemmChoice {
    /// The planner's tile, forced to shape `shape`.
    #[must_use]
    pub const fn shape(shape: GemmShape) -> Self {
        Self { shape: Some(shape), splits: None, depth: None, double: false }
    }
}

/// Workgroup memory the weight-gradient kernel adds: a tap table of `bn` entries of 16 bytes.
pub(crate) fn weight_grad_bytes(tile: &GemmTile) -> usize {
    tile.operand_bytes() + 16 * tile.bn
}

/// The tile for an output of `rows × cols` (per group), or the forced one, at the forced depth if any;
/// `extra` adds the kernel's own workgroup memory to each tile's operands. `fill`: whether the tiles
/// alone must fill the GPU (not where a split reduction multiplies them).
#[allow(clippy::too_many_arguments)] // the output, the adapter, the caller's choice, and what to name in errors
fn choose(
    rows: usize,
    cols: usize,
    fill: bool,
    profile: &AdapterProfile,
    choice: GemmChoice,
    extra: fn(&GemmTile) -> usize,
    op: &'static str,
    geo: &Conv2dGeometry,
) -> Result<GemmTile> {
    let unsupported = |reason| Error::Unsupported { op, layer: geo.describe(), algorithm: "gemm", reason };
    let fits = |t: GemmTile| (extra(&t) <= profile.workgroup_bytes as usize).then_some(t);
    let shaped = |s: GemmShape| fits(s.tile(profile.workgroup_bytes));
    let tile = if let Some(shape) = choice.shape {
        shaped(shape).ok_or_else(|| unsupported("the tile needs more workgroup memory than the adapter offers"))?
    } else {
        // Few rows: the narrow tile wastes least. Otherwise the large tile, unless its padding wastes
        // a quarter more work than the small one's or it leaves the GPU short of workgroups (an H100
        // has 132 multiprocessors; two resident workgroups each want about 256).
        let padded = |t: &GemmTile| rows.next_multiple_of(t.bm) * cols.next_multiple_of(t.bn);
        let count = |t: &GemmTile| rows.div_ceil(t.bm) * cols.div_ceil(t.bn);
        let pick = if rows <= 4 {
            shaped(GemmShape::Thin)
        } else if rows <= 16 {
            shaped(GemmShape::Narrow)
        } else {
            match (shaped(GemmShape::Large), shaped(GemmShape::Small)) {
                (Some(l), Some(s)) if 4 * padded(&l) > 5 * padded(&s) || (fill && count(&l) < 256) => Some(s),
                (Some(l), _) => Some(l),
                (None, s) => s,
            }
        };
        pick.or_else(|| shaped(GemmShape::Small))
            .ok_or_else(|| unsupported("no tile fits the adapter's workgroup memory"))?
    };
    let tile = match choice.depth {
        None => tile,
        Some(depth) => {
            let deep = GemmTile { bk: depth.get() as usize, ..tile };
            fits(deep).filter(GemmTile::loads_divide).ok_or_else(|| {
                unsupported(
                    "the forced reduction depth does not divide the tile's loads among its invocations, or its slabs do not fit the workgroup memory",
                )
            })?
        }
    };
    if !choice.double {
        return Ok(tile);
    }
    // Two pairs of slabs: at the tile's depth, or (unless the depth is forced too) at the deepest
    // smaller one whose slabs fit and whose loads still divide.
    let mut double = GemmTile { stages: 2, ..tile };
    while choice.depth.is_none() && fits(double).is_none() && double.bk > DEPTHS[0] {
        double.bk /= 2;
    }
    fits(double)
        .filter(|t| t.bk == tile.bk || t.loads_divide())
        .ok_or_else(|| unsupported("the double-buffered slabs need more workgroup memory than the adapter offers"))
}

/// A forward pass (or an input-gradient phase) through `conv2d_gemm.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGemm {
    pub(crate) tile: GemmTile,
    pub(crate) a: AStage,
}

impl ConvGemm {
    /// The forward pass of `geo`: its weights staged as vec4s where their rows allow it and the
    /// tile's A slab is whole vec4 loads of all 64 invocations.
    pub(crate) fn forward(geo: &Conv2dGeometry, profile: &AdapterProfile, choice: GemmChoice) -> Result<Self> {
        let cols = geo.n * geo.p * geo.q;
        let tile =
            choose(geo.filters_per_group(), cols, true, profile, choice, GemmTile::operand_bytes, "forward", geo)?;
        let rows_of_4 = (geo.channels_per_group() * geo.s * geo.t).is_multiple_of(4);
        let a = if rows_of_4 && (tile.bm * tile.bk).is_multiple_of(256) { AStage::Vec4 } else { AStage::Taps };
        Ok(Self { tile, a })
    }

    /// The input gradient of `geo`, phase by phase.
    pub(crate) fn input_grad(geo: &Conv2dGeometry, profile: &AdapterProfile, choice: GemmChoice) -> Result<Self> {
        let [sh, sw] = geo.params.stride;
        let cols = geo.n * geo.h.div_ceil(sh) * geo.w.div_ceil(sw);
        let op = "input gradient";
        let tile = choose(geo.channels_per_group(), cols, true, profile, choice, GemmTile::operand_bytes, op, geo)?;
        Ok(Self { tile, a: AStage::Taps })
    }

    /// The kernel variant.
    pub(crate) fn variant(&self) -> crate::plan::variant::Variant {
        crate::plan::variant::Variant::ConvGemm(self.tile, self.a, crate::plan::variant::Load::F32)
    }
}

impl fmt::Display for ConvGemm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gemm {}", self.tile)?;
        if self.a == AStage::Vec4 {
            f.write_str(", vec4 weights")?;
        }
        Ok(())
    }
}

/// One axis of a stride phase of the input gradient (see the [module docs](self)): the inputs
/// `first + stride·x'` for `x' < len` take the taps `i0 + a·istep`, `a < taps`, from dY rows (or
/// columns) `x' + base − a·step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AxisPhase {
    pub(crate) first: usize,
    pub(crate) len: usize,
    pub(crate) i0: usize,
    pub(crate) istep: usize,
    pub(crate) taps: usize,
    pub(crate) base: isize,
    pub(crate) step: usize,
}

/// The phases of one axis: input extent `extent`, kernel extent `taps`, stride, dilation and the
/// leading padding. Phases with no input (`first ≥ extent`) are left out; a phase with no taps keeps
/// `taps = 0` (its inputs get zero gradient, which its pass still writes).
pub(crate) fn axis_phases(extent: usize, taps: usize, stride: usize, dilation: usize, lead: usize) -> Vec<AxisPhase> {
    let istep = stride / gcd(stride, dilation);
    (0..stride.min(extent))
        .map(|first| {
            let hits = |i: &usize| (first + lead + stride * taps * dilation - i * dilation).is_multiple_of(stride);
            let i0 = (0..taps.min(istep)).find(hits);
            let len = (extent - first).div_ceil(stride);
            match i0 {
                Some(i0) => {
                    // Exact: first + lead − i0·dh is a multiple of the stride (it may be negative).
                    let base = (first as isize + lead as isize - (i0 * dilation) as isize) / stride as isize;
                    let n = (taps - i0).div_ceil(istep);
                    AxisPhase { first, len, i0, istep, taps: n, base, step: istep * dilation / stride }
                }
                None => AxisPhase { first, len, i0: 0, istep, taps: 0, base: 0, step: 0 },
            }
        })
        .collect()
}

/// The weight gradient through `conv2d_weight_grad_gemm.wgsl`: its tile and the split of the
/// reduction over the `N·P·Q` columns into `splits` ranges of `chunk` columns (the last may be
/// shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightGradGemm {
    pub(crate) tile: GemmTile,
    pub(crate) a: AStage,
    pub(crate) mtiles: usize,
    pub(crate) ntiles: usize,
    pub(crate) splits: usize,
    pub(crate) chunk: usize,
}

/// The longest reduction range one workgroup sums: each invocation adds `bk` products into a fresh
/// partial sum per step and those per-step sums into its accumulator, so its rounding error grows
/// with `bk + RANGE / bk` rather than with the range (see `split_sum.wgsl` for the sum of ranges).
pub(crate) const RANGE: usize = 4096;

impl WeightGradGemm {
    pub(crate) fn new(geo: &Conv2dGeometry, profile: &AdapterProfile, choice: GemmChoice) -> Result<Self> {
        let kpg = geo.filters_per_group();
        let taps = geo.channels_per_group() * geo.s * geo.t;
        let tile = choose(kpg, taps, false, profile, choice, weight_grad_bytes, "weight gradient", geo)?;
        let (mtiles, ntiles) = (kpg.div_ceil(tile.bm), taps.div_ceil(tile.bn));
        let tiles = geo.params.groups * mtiles * ntiles;
        let cols = geo.n * geo.p * geo.q;
        // Partial tiles of all ranges must fit one binding.
        let max_splits = (profile.binding_elements() / (geo.k * taps)).max(1);
        let splits = match choice.splits {
            Some(s) => s.get() as usize,
            None => {
                // Enough workgroups to fill the adapter, ranges no longer than RANGE, and at least
                // four reduction steps per range (fewer only adds partial tiles to sum).
                let target = profile.gemm_split_target();
                target.div_ceil(tiles).min(cols.div_ceil(4 * tile.bk)).max(cols.div_ceil(RANGE))
            }
        };
        // Ranges of equal length but the last: the kernel masks the columns past a range's end, so a
        // range need not be whole reduction steps, and a forced count is kept wherever the columns
        // allow it.
        let splits = splits.clamp(1, cols.min(max_splits).min(MAX_SPLITS));
        let chunk = cols.div_ceil(splits);
        let splits = cols.div_ceil(chunk);
        // dY as vec4s where 4 columns in a row never leave a plane or a range, and the tile's A slab is
        // whole vec4 loads of all its invocations: the same staged values, fewer loads.
        let vec4 = (geo.p * geo.q).is_multiple_of(4)
            && chunk.is_multiple_of(4)
            && (tile.bm * tile.bk).is_multiple_of(4 * tile.threads());
        let a = if vec4 { AStage::Vec4 } else { AStage::Taps };
        Ok(Self { tile, a, mtiles, ntiles, splits, chunk })
    }

    /// The kernel variant.
    pub(crate) fn variant(&self) -> crate::plan::variant::Variant {
        crate::plan::variant::Variant::WeightGradGemm(self.tile, self.a, crate::plan::variant::Load::F32)
    }

    /// The most loop iterations one invocation runs: the reduction steps of a range (each with its
    /// constant loops of loads counted too), its set-up, and the ordered sum of the ranges.
    pub(crate) fn loop_trips(&self) -> usize {
        let t = &self.tile;
        let rounds = t.rounds(self.chunk);
        (1 + rounds * t.round_trips() + t.bn.div_ceil(t.threads()) + 1).max(loops::split_sum_trips(self.splits))
    }
}

impl ConvGemm {
    /// The most loop iterations one invocation of the forward GEMM (or of one input-gradient phase)
    /// runs over a reduction of `r` steps: each round with its constant loops of loads counted.
    pub(crate) fn loop_trips(&self, r: usize) -> usize {
        1 + self.tile.rounds(r) * self.tile.round_trips() + 16
    }
}

/// The reduction depths a tile may be forced to (see [`GemmChoice::depth`]).
pub const DEPTHS: [usize; 3] = [8, 16, 32];

impl GemmTile {
    /// Whether the tile's invocations share its loads evenly: each stages whole reduction steps of
    /// both slabs (`threads / bk` rows or columns per pass), and the forward kernel's B slab whole
    /// passes of `min(bn, threads)` columns.
    pub(crate) fn loads_divide(&self) -> bool {
        let (t, n) = (self.bk, self.threads());
        DEPTHS.contains(&t)
            && n.is_multiple_of(t)
            && (self.bm * t).is_multiple_of(n)
            && (self.bn * t).is_multiple_of(n)
            && (t * self.bn.min(n)).is_multiple_of(n)
    }

    /// An upper bound on the loop iterations of one round of a GEMM kernel, counting its constant
    /// loops as if they were not unrolled: the loads of both slabs (`(bm + bn)·bk / threads` per
    /// invocation, each loop's last test too), the steps of the round, and the round loop itself.
    fn round_trips(&self) -> usize {
        (self.bm + self.bn) * self.bk / self.threads() + self.bk + 8
    }

    /// Rounds of a reduction of `r` steps: a double-buffered tile runs one more, which only
    /// multiplies the slabs the last staged.
    fn rounds(&self, r: usize) -> usize {
        r.div_ceil(self.bk) + self.stages - 1
    }
}

/// Prints `64x64x16 (8x8)`: rows × columns × reduction steps of the tile, accumulators per invocation
/// (`, double-buffered` when it is).
impl fmt::Display for GemmTile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{} ({}x{})", self.bm, self.bn, self.bk, self.tm, self.tn)?;
        if self.stages == 2 {
            f.write_str(", double-buffered")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::profile::WORKGROUP;

    /// Invocations per workgroup of the GEMM kernels: every tile has `(bm/tm)·(bn/tn)` of them.
    const THREADS: usize = WORKGROUP as usize;

    #[test]
    fn every_tile_has_its_invocations_and_fits_its_memory() {
        for wb in [16 * 1024, 32 * 1024] {
            for s in GemmShape::ALL {
                let t = s.tile(wb);
                let threads = if s == GemmShape::Huge { 4 * THREADS } else { THREADS };
                assert_eq!(t.threads(), threads, "{t}");
                assert!(t.bm.is_multiple_of(t.tm) && t.bn.is_multiple_of(t.tn));
                // The loads: the invocations cover a slab of A (bm × bk) and of B (bk × bn) evenly.
                assert!(threads.is_multiple_of(t.bk) && (t.bm * t.bk).is_multiple_of(threads));
                assert!((t.bn * t.bk).is_multiple_of(threads) && t.bk.is_multiple_of(threads / t.bn.min(threads)));
                assert!(t.loads_divide(), "{t}");
                assert!(weight_grad_bytes(&t) <= wb as usize, "{t} in {wb}");
            }
        }
        assert_eq!(GemmShape::Large.tile(32 * 1024).bk, 32);
        assert!(GemmShape::Large.tile(32 * 1024).operand_bytes() > 16 * 1024);
        // WebGPU's 16 KiB hold the huge tile only 8 steps deep.
        assert_eq!(GemmShape::Huge.tile(16 * 1024).bk, 8);
        assert!(GemmShape::Huge.tile(32 * 1024).operand_bytes() > 16 * 1024);
    }

    /// Every input of every phase gets exactly the taps that reach it, checked against the
    /// definition by enumeration.
    #[test]
    fn phases_cover_each_input_with_its_taps() {
        for stride in 1..=4 {
            for dilation in 1..=3 {
                for taps in 1..=5 {
                    for lead in 0..=(dilation * (taps - 1) + 2) {
                        for extent in [1, 2, 5, 9] {
                            let phases = axis_phases(extent, taps, stride, dilation, lead);
                            for x in 0..extent {
                                // Taps i and output rows p with p·stride + i·dilation − lead = x.
                                let mut want: Vec<(usize, isize)> = (0..taps)
                                    .filter_map(|i| {
                                        let v = x as isize + lead as isize - (i * dilation) as isize;
                                        (v.rem_euclid(stride as isize) == 0).then(|| (i, v.div_euclid(stride as isize)))
                                    })
                                    .collect();
                                let ph = phases.iter().find(|p| p.first == x % stride).unwrap();
                                let xp = (x - ph.first) / stride;
                                assert!(xp < ph.len);
                                let mut got: Vec<(usize, isize)> = (0..ph.taps)
                                    .map(|a| (ph.i0 + a * ph.istep, xp as isize + ph.base - (a * ph.step) as isize))
                                    .collect();
                                want.sort_unstable();
                                got.sort_unstable();
                                assert_eq!(got, want, "x {x} stride {stride} dil {dilation} taps {taps} lead {lead}");
                            }
                        }
                    }
                }
            }
        }
    }
}
