//! How long a kernel may loop, and the plans' bounds on it.
//!
//! Mesa's llvmpipe (lavapipe) stops a shader's loops after 65,535 iterations without a word
//! (`LP_MAX_TGSI_LOOP_ITERATIONS`): measured on Mesa 22.3.6 by `tests/loop_limit.rs`, the count is one
//! per invocation, kept across all its loops, nested or one after the other, and every test of a loop's
//! condition counts, the last one too (a loop of `n` trips costs `n + 1`); loops of a constant trip count
//! up to 16 are unrolled and cost nothing. Any driver may have such a limit, so the planner holds every
//! invocation of every kernel to [`MAX_LOOP_TRIPS`] iterations in all, on every layer the API accepts:
//!
//! - reductions that would run longer in one invocation are split into ranges, each range's sums stored
//!   apart and added in a fixed order by `split_sum.wgsl` ([`ReductionSplit`]): the direct weight
//!   gradient, the bias gradient and the tiled weight gradients;
//! - copies run in bounded pieces (`transpose_rows.wgsl`: runs of [`TRANSPOSE_RUN`]);
//! - each plan's longest invocation is computed here from the kernel's loops (`*_trips`), and a plan
//!   over [`LOOP_BUDGET`] is not chosen: `Strategy::Auto` takes the next family that stays within it,
//!   and a forced family that cannot is an [`Error::Unsupported`](crate::Error::Unsupported).
//!
//! The counts are upper bounds written from each kernel's loops (constant loops counted too); the plan
//! tables assert them on the edge layers and on layers built to reach the limit.

use crate::error::{Error, Result};
use crate::geometry::Conv2dGeometry;
use crate::plan::{Algorithm, Strategy};

/// The most loop iterations one invocation of a kernel may run, all its loops together (lavapipe's
/// limit).
pub const MAX_LOOP_TRIPS: usize = 65_535;

/// What the planner allows an invocation: the limit less a margin for the few constant loops of a
/// kernel's set-up and stores that the counts below leave out.
pub const LOOP_BUDGET: usize = 60_000;

/// Elements one invocation of `transpose_rows.wgsl` moves along an output row.
pub const TRANSPOSE_RUN: usize = 4096;

/// Ranges a split reduction may have: `split_sum.wgsl` adds them in one invocation, in blocks of 16
/// (`splits + splits / 16 + 2` iterations).
pub const MAX_SPLITS: usize = 32_768;

/// The reason a plan, or a call, over the budget gives.
pub const OVER_BUDGET: &str =
    "one invocation would loop more than the 65,535 iterations drivers such as lavapipe run (plan::loops)";

/// A reduction of `len` rows cut into `splits` ranges of `chunk` rows (the last may be shorter), each
/// summed by one invocation into a slot of its own, the slots then added in order by `split_sum.wgsl`.
/// `splits = 1` writes the result directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReductionSplit {
    /// Ranges.
    pub splits: usize,
    /// Rows per range.
    pub chunk: usize,
}

impl ReductionSplit {
    /// The split of `len` rows into the fewest ranges of at most `most` rows.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when that takes more than [`MAX_SPLITS`] ranges or `most` is 0 (one row
    /// alone is over the budget).
    pub(crate) fn at_most(len: usize, most: usize, op: &'static str, geo: &Conv2dGeometry) -> Result<Self> {
        let splits = if most == 0 { usize::MAX } else { len.div_ceil(most).max(1) };
        if splits > MAX_SPLITS {
            return Err(Error::Unsupported {
                op,
                layer: geo.describe(),
                algorithm: "split reduction",
                reason: OVER_BUDGET,
            });
        }
        let chunk = len.div_ceil(splits).max(1);
        Ok(Self { splits: len.div_ceil(chunk).max(1), chunk })
    }

    /// The iterations of `split_sum.wgsl` adding the ranges (none when there is one range).
    #[must_use]
    pub fn sum_trips(&self) -> usize {
        if self.splits == 1 { 0 } else { split_sum_trips(self.splits) }
    }
}

/// Iterations of one invocation of `split_sum.wgsl` over `splits` slots: the blocks of 16, and the
/// slots in them.
#[must_use]
pub fn split_sum_trips(splits: usize) -> usize {
    let blocks = splits.div_ceil(16);
    blocks + 1 + splits + blocks
}

/// The bias gradient's split of the `N·P·Q` positions of each filter: ranges of at most 4,096
/// positions (one loop iteration each), so that the sum of each range stays near f32 precision and
/// K·splits invocations share the work; longer ranges only where 32,768 of them would not cover it.
#[must_use]
pub fn bias_grad(positions: usize) -> ReductionSplit {
    let chunk = positions.div_ceil(MAX_SPLITS).max(4096).min(positions.max(1));
    ReductionSplit { splits: positions.div_ceil(chunk).max(1), chunk }
}

/// Iterations of one invocation of the direct forward kernel (`conv2d_forward.wgsl`) or the direct
/// input gradient (`conv2d_input_grad.wgsl`): `outer` channels (or filters) × S kernel rows × T taps.
#[must_use]
pub fn direct_trips(outer: usize, s: usize, t: usize) -> usize {
    1 + outer * (2 + s * (t + 2))
}

/// Iterations of one invocation of a kernel that sums `rows` rows of `q` columns each (the direct and
/// tiled weight gradients): the row loop, and a loop over the columns (with a tail) per row.
#[must_use]
pub fn row_trips(rows: usize, q: usize) -> usize {
    1 + rows * (q + 3)
}

/// The row loop's length the budget allows for rows of `q` columns (0: not even one row).
#[must_use]
pub fn rows_within_budget(q: usize) -> usize {
    (LOOP_BUDGET - 1) / (q + 3)
}

/// The plan `plan_of(strategy)` if its longest invocation (`trips`) is within the budget. Left to
/// itself (`Strategy::Auto`) the planner then tries the GEMM kernels and the direct ones in turn; a
/// forced family over the budget is an error.
///
/// # Errors
/// The plan's own errors, and [`Error::Unsupported`] over the budget.
pub(crate) fn within_budget<P>(
    strategy: Strategy,
    op: &'static str,
    geo: &Conv2dGeometry,
    plan_of: impl Fn(Strategy) -> Result<P>,
    trips: impl Fn(&P) -> usize,
) -> Result<P> {
    let plan = plan_of(strategy)?;
    if trips(&plan) <= LOOP_BUDGET {
        return Ok(plan);
    }
    if strategy == Strategy::Auto {
        for s in [Strategy::Force(Algorithm::GEMM), Strategy::Reference] {
            if let Ok(p) = plan_of(s)
                && trips(&p) <= LOOP_BUDGET
            {
                return Ok(p);
            }
        }
    }
    Err(Error::Unsupported { op, layer: geo.describe(), algorithm: strategy.name(), reason: OVER_BUDGET })
}
