//! The weight gradient's plan: `dW[k,cg,i,j] = Σ_n Σ_p Σ_q X[n, c, p·sh + i·dh − ph, q·sw + j·dw − pw] · dY[n,k,p,q]`.
//!
//! The reduction over the `N·P` rows (n, p) is split into `splits` chunks of `chunk` rows; each chunk's
//! tile writes its partial sums with plain stores, and `split_sum.wgsl` adds the chunks in order, so
//! the result does not depend on timing.

use std::fmt;

use crate::error::Result;
use crate::geometry::Conv2dGeometry;
use crate::plan::loops::{self, MAX_SPLITS, ReductionSplit};
use crate::plan::variant::{AStage, Sharing, Variant, Window};
use crate::plan::{AdapterProfile, Algorithm, Strategy, WeightGradGemm, family};

/// How the weight gradient runs a layer.
// A plan is made per call and lives on the stack: boxing the tiled variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightGradPlan {
    /// `conv2d_weight_grad.wgsl`: one weight per invocation and range of the N·P rows, the ranges as
    /// long as the loop budget allows (one range, summing all N·P·Q terms, for most layers).
    Direct(ReductionSplit),
    /// A tiled kernel over a split reduction.
    Tiled(WeightGradTiles),
    /// `conv2d_weight_grad_gemm.wgsl`: the implicit GEMM through workgroup memory, over a split
    /// reduction.
    Gemm(WeightGradGemm),
}

/// How a tiled weight-gradient kernel covers a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightGradTiles {
    /// The kernel and its generated tile.
    pub(crate) variant: Variant,
    /// Tiles of filters in a group, and of taps (scalar kernel) or kernel rows (vec4 kernel) of the
    /// C/G channels.
    pub(crate) ktiles: usize,
    pub(crate) rtiles: usize,
    /// Invocations per (split, filter tile): `rtiles`, or that rounded up to whole subgroups where a
    /// subgroup shares its dY loads.
    pub(crate) lanes: usize,
    /// The reduction over N·P rows in `splits` chunks of `chunk` rows (the last may be shorter).
    pub(crate) splits: usize,
    pub(crate) chunk: usize,
    /// The zero-padded copy of X the kernel reads: `(H + top + bottom) × wp`.
    pub(crate) hp: usize,
    pub(crate) wp: usize,
    /// The vec4 kernel's dY row pitch, Q rounded up to 4: dY is padded to it first when Q is not a
    /// multiple of 4, read in place otherwise.
    pub(crate) qp: Option<usize>,
    /// Rows (of Q products each) per running sum before it is folded (see [`FOLD`]).
    pub(crate) fold: usize,
}

/// The weight gradient of `geo` on an adapter of `profile`.
///
/// # Errors
/// [`Error::Unsupported`](crate::Error::Unsupported) when `strategy` forces an algorithm the layer
/// has no variant of.
pub fn weight_grad(geo: &Conv2dGeometry, profile: &AdapterProfile, strategy: Strategy) -> Result<WeightGradPlan> {
    // A channels-last layer runs the kernels of its NCHW twin between transposes (`gpu/layout.rs`).
    let geo = &geo.nchw();
    loops::within_budget(strategy, "weight gradient", geo, |s| unchecked(geo, profile, s), |p| p.loop_trips(geo))
}

/// The plan of `strategy`, before the loop budget is checked.
fn unchecked(geo: &Conv2dGeometry, profile: &AdapterProfile, strategy: Strategy) -> Result<WeightGradPlan> {
    let pr = &geo.params;
    let wd = Window { t: geo.t, sw: pr.stride[1], dw: pr.dilation[1] };
    // Four output columns per step read 3·sw + (T−1)·dw + 1 inputs of a row.
    let span = wd.len(4);
    let fits = geo.t <= 11 && span <= 64;
    let why = "its kernel rows are wider than 11 taps, or four output columns read more than 64 inputs";
    let Some(algorithm) = family(strategy, profile, fits, "weight gradient", geo, why)? else {
        // Rows (n, p) of Q products per range, as many as the loop budget allows.
        let rows = geo.n * geo.p;
        let split = ReductionSplit::at_most(rows, loops::rows_within_budget(geo.q), "weight gradient", geo)?;
        return Ok(WeightGradPlan::Direct(split));
    };
    if let Algorithm::Gemm(choice) = algorithm {
        return Ok(WeightGradPlan::Gemm(WeightGradGemm::new(geo, profile, choice)?));
    }
    // The vec4 kernel measured 15–30% faster than the scalar one on the resnet and stem layers on
    // lavapipe, and 2× on MNIST (24 columns) and the deep layer (14) once padding dY stopped costing
    // integer divisions per element; left to itself the planner keeps the scalar kernel for rows of
    // fewer than two blocks of 4, where the vec4 one would be mostly its scalar tail.
    let vec4 = algorithm == Algorithm::Vec4Tile && (strategy != Strategy::Auto || geo.q >= 8);
    let kpg = geo.filters_per_group();
    let padded = geo.padded_size()[1];
    let (variant, ktiles, rtiles, share, wp, qp) = if vec4 {
        // Rows start on a multiple of 4 floats; the last full block of 4 columns reads whole vec4s.
        let q4 = geo.q / 4 * 4;
        let reach = if q4 >= 4 { (q4 - 4) * pr.stride[1] + span.div_ceil(4) * 4 } else { 0 };
        let wp = padded.max(reach).next_multiple_of(4);
        // `bk` filters × as many whole kernel rows as keep the tile near `acc` accumulators.
        let tile = |bk: usize, acc: usize| {
            let br = (acc / (bk * geo.t)).clamp(1, geo.s);
            let rtiles = geo.channels_per_group() * geo.s.div_ceil(br);
            // A subgroup shares dY among the tap tiles of one filter tile: at least 8 of them.
            let share =
                if profile.subgroup_sharing.is_some() && rtiles >= 8 { Sharing::Subgroup } else { Sharing::PerLane };
            (bk, br, rtiles, share)
        };
        // Where dY is shared, 16 filters × about 144 accumulators (2 rows of a 5×5, 3 of a 3×3) ran
        // the resnet, deep and stem layers 1.3–1.6× faster on lavapipe than 8 × 96; unshared, 16
        // filters cost 16 loads of dY per step and ran slower.
        let wide = tile(16, 144);
        let (bk, br, rtiles, share) =
            if kpg >= 16 && wide.3 == Sharing::Subgroup { wide } else { tile(kpg.min(8), 96) };
        let variant = Variant::WeightGradVec4 { bk, br, wd, share };
        (variant, kpg.div_ceil(bk), rtiles, share, wp, Some(geo.q.next_multiple_of(4)))
    } else {
        // 8×8 measured best of 4×8, 8×8, 4×16, 8×4 and 2×16 on lavapipe for the scalar kernel.
        let bk = kpg.min(8);
        let taps = geo.channels_per_group() * geo.s * geo.t;
        let br = if taps >= 8 { 8 } else { 4 };
        let variant = Variant::WeightGrad { bk, br };
        (variant, kpg.div_ceil(bk), taps.div_ceil(br), Sharing::PerLane, padded.next_multiple_of(4), None)
    };
    let tiles = pr.groups * ktiles * rtiles;
    // Enough independent sums to fill the adapter, no more partial results than fit one binding.
    let rows = geo.n * geo.p;
    let len = geo.k * geo.channels_per_group() * geo.s * geo.t;
    let max_splits = (profile.binding_elements() / len).max(1);
    let splits = profile.split_target().div_ceil(tiles).clamp(1, rows.min(max_splits).min(MAX_SPLITS));
    // No longer than the loop budget allows (rows of Q products); the check below refuses a layer
    // whose rows alone are over it.
    let chunk = rows.div_ceil(splits).min(loops::rows_within_budget(geo.q)).max(1);
    let splits = rows.div_ceil(chunk);
    let lanes = match (share, profile.subgroup_sharing) {
        (Sharing::Subgroup, Some(sg)) => rtiles.next_multiple_of(sg as usize),
        _ => rtiles,
    };
    let hp = geo.padded_size()[0];
    let fold = (FOLD / geo.q).max(1);
    Ok(WeightGradPlan::Tiled(WeightGradTiles { variant, ktiles, rtiles, lanes, splits, chunk, hp, wp, qp, fold }))
}

/// About the most products one running sum of the tiled kernels takes before it is folded into the
/// invocation's total (blocked summation). The 151 MB test layer (589,824 products per weight, 768
/// rows of 96 per chunk) had a normwise error of 4.2e-6 summed straight; chunks capped at 1,024
/// products instead brought it to 5.7e-7 but ran the stem layer's weight gradient 1.26× slower on
/// lavapipe (7 splits became 50).
const FOLD: usize = 1024;

impl WeightGradPlan {
    /// The most loop iterations one invocation of the plan's kernels runs (see [`loops`]).
    #[must_use]
    pub fn loop_trips(&self, geo: &Conv2dGeometry) -> usize {
        let geo = &geo.nchw();
        match self {
            WeightGradPlan::Direct(r) => loops::row_trips(r.chunk, geo.q).max(r.sum_trips()),
            WeightGradPlan::Tiled(t) => {
                loops::row_trips(t.chunk, geo.q).max(loops::split_sum_trips(t.splits)).max(t.wp + 1)
            }
            WeightGradPlan::Gemm(g) => g.loop_trips(),
        }
    }

    /// The largest per-sample buffer the plan binds, in `f32` elements: X, dY (padded to Qp), or X's
    /// padded copy.
    #[must_use]
    pub fn per_sample(&self, geo: &Conv2dGeometry) -> usize {
        let io = (geo.c * geo.h * geo.w).max(geo.k * geo.p * geo.q);
        match self {
            WeightGradPlan::Direct(_) | WeightGradPlan::Gemm(_) => io,
            WeightGradPlan::Tiled(t) => io.max(geo.k * geo.p * t.qp.unwrap_or(geo.q)).max(geo.c * t.hp * t.wp),
        }
    }
}

impl fmt::Display for WeightGradPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self {
            WeightGradPlan::Direct(r) if r.splits == 1 => return f.write_str("direct"),
            WeightGradPlan::Direct(r) => return write!(f, "direct, split {} x {} rows", r.splits, r.chunk),
            WeightGradPlan::Gemm(g) => {
                let tiles = format!("{}x{}", g.mtiles, g.ntiles);
                let vec4 = if g.a == AStage::Vec4 { ", vec4 dY" } else { "" };
                return write!(f, "gemm {}{vec4}; {tiles} tiles, split-K {} x {} columns", g.tile, g.splits, g.chunk);
            }
            WeightGradPlan::Tiled(t) => t,
        };
        match t.variant {
            Variant::WeightGradVec4 { bk, br, wd, share } => {
                write!(f, "vec4 {bk} filters x {br} rows t{}", wd.t)?;
                if share == Sharing::Subgroup {
                    f.write_str(", subgroup-shared")?;
                }
            }
            Variant::WeightGrad { bk, br } => write!(f, "register {bk} filters x {br} taps")?,
            _ => f.write_str("?")?,
        }
        write!(f, "; {}x{} tiles, split-K {} x {} rows", t.ktiles, t.rtiles, t.splits, t.chunk)
    }
}
