//! The plans a tuner chooses among for one layer and operation on one profile: a short list, pure and
//! tested as tables, that always starts with the plan `Strategy::Auto` makes.
//!
//! A candidate is a [`Strategy`]: plain data that the planners turn into a plan for the exact layer
//! (and for each batch chunk of it, with the same choice). Two strategies that give the same plan are
//! one candidate. The list covers every family that can run the layer: the register tiles (scalar and
//! vec4 loads), the GEMM kernels in each tile shape (the 128 × 128 tile of 256 invocations too), the
//! planner's GEMM tile double-buffered and at its other reduction depths, the weight gradient's split
//! counts around the planner's own, and the direct kernels; a strategy the layer refuses (a forced family it has no
//! variant of, or over the loop budget) is left out.

use std::num::NonZeroU32;

use crate::geometry::Conv2dGeometry;
use crate::plan::gemm::DEPTHS;
use crate::plan::variant::GemmTile;
use crate::plan::{
    AdapterProfile, Algorithm, ForwardPlan, GemmChoice, GemmShape, InputGradPlan, Op, Strategy, WeightGradPlan,
    forward, input_grad, weight_grad,
};

/// The most candidates a layer gets: each is compiled and timed.
pub const MAX_CANDIDATES: usize = 12;

/// The plan `strategy` gives `op` on `geo`, as text (`None`: the layer refuses it).
#[must_use]
pub fn plan_text(op: Op, geo: &Conv2dGeometry, profile: &AdapterProfile, strategy: Strategy) -> Option<String> {
    match op {
        Op::Forward => forward(geo, profile, strategy).ok().map(|p| p.to_string()),
        Op::WeightGrad => weight_grad(geo, profile, strategy).ok().map(|p| p.to_string()),
        Op::InputGrad => input_grad(geo, profile, strategy).ok().map(|p| p.to_string()),
    }
}

/// The candidates for `op` on `geo` and `profile`, first the `Auto` plan, each a distinct plan, at
/// most [`MAX_CANDIDATES`], each with its plan as text.
#[must_use]
pub fn candidates(op: Op, geo: &Conv2dGeometry, profile: &AdapterProfile) -> Vec<(Strategy, String)> {
    let mut strategies = vec![
        Strategy::Auto,
        Strategy::Force(Algorithm::RegisterTile),
        Strategy::Force(Algorithm::Vec4Tile),
        Strategy::Force(Algorithm::GEMM),
    ];
    strategies.extend(GemmShape::ALL.map(Algorithm::gemm).map(Strategy::Force));
    strategies.push(Strategy::Reference);
    // The planner's GEMM tile (Auto's, or the GEMM family's on a CPU profile) double-buffered, at the
    // other reduction depths its loads allow; for the weight gradient, at half and twice the planner's split count,
    // which trades a longer range per workgroup against more partial tiles to add.
    for strategy in [Strategy::Auto, Strategy::Force(Algorithm::GEMM)] {
        let Some((tile, splits)) = gemm_tile(op, geo, profile, strategy) else { continue };
        let Some(shape) = GemmShape::ALL.into_iter().find(|s| s.tile(profile.workgroup_bytes).bm == tile.bm) else {
            continue;
        };
        let choice = GemmChoice::shape(shape);
        strategies.push(Strategy::Force(Algorithm::Gemm(GemmChoice { double: true, ..choice })));
        for d in DEPTHS.into_iter().filter(|&d| d != tile.bk) {
            let depth = u32::try_from(d).ok().and_then(NonZeroU32::new);
            strategies.push(Strategy::Force(Algorithm::Gemm(GemmChoice { depth, ..choice })));
        }
        for s in splits.into_iter().flat_map(|s| [s / 2, s * 2]) {
            let splits = u32::try_from(s).ok().and_then(NonZeroU32::new);
            strategies.push(Strategy::Force(Algorithm::Gemm(GemmChoice { splits, ..choice })));
        }
    }
    let mut out: Vec<(Strategy, String)> = Vec::new();
    for s in strategies {
        if out.len() == MAX_CANDIDATES {
            break;
        }
        if let Some(plan) = plan_text(op, geo, profile, s)
            && !out.iter().any(|(_, p)| *p == plan)
        {
            out.push((s, plan));
        }
    }
    out
}

/// The GEMM tile `strategy` plans for `op` on `geo`, and the weight gradient's split count, where it
/// plans the GEMM kernels.
fn gemm_tile(
    op: Op,
    geo: &Conv2dGeometry,
    profile: &AdapterProfile,
    strategy: Strategy,
) -> Option<(GemmTile, Option<usize>)> {
    match op {
        Op::Forward => match forward(geo, profile, strategy) {
            Ok(ForwardPlan::Gemm(g)) => Some((g.tile, None)),
            _ => None,
        },
        Op::WeightGrad => match weight_grad(geo, profile, strategy) {
            Ok(WeightGradPlan::Gemm(g)) => Some((g.tile, Some(g.splits))),
            _ => None,
        },
        Op::InputGrad => match input_grad(geo, profile, strategy) {
            Ok(InputGradPlan::Gemm(g)) => Some((g.tile, None)),
            _ => None,
        },
    }
}
