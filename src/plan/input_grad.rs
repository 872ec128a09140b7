//! The input gradient's plan: `dX[n,c,h,w] = Σ_{k in g} Σ_i Σ_j dY[n,k,p,q] · W[k,cg,i,j]` over
//! `p·sh + i·dh − pt = h`, `q·sw + j·dw − pl = w` (`pt`, `pl` the padding above and left of X).
//!
//! It is the stride-1 valid correlation of dY, spread by the stride (sh − 1 zero rows and sw − 1 zero
//! columns between its own) and framed by `oh = dh·(S−1) − pt` rows above and `ow = dw·(T−1) − pl`
//! columns left of it, and zeros below and right up to the frame's extent, with the flipped filters: a
//! forward pass whose input is `N×K×(H + dh·(S−1))×(W + dw·(T−1))` and whose output is `N×C×H×W`.
//! The frame exists where no side's padding exceeds the dilated kernel's reach `dh·(S−1)` (`dw·(T−1)`):
//! then dY's last row, at `oh + (P−1)·sh ≤ H + pb − 1`, lies inside it. The forward kernels skip the inserted zero rows, and the vec4 kernel
//! leaves out the multiply-adds by inserted zero columns; where the layout allows, it reads dY itself
//! with the frame masked, and nothing is spread or copied.

use std::fmt;

use crate::error::{Error, Result};
use crate::geometry::{Conv2dGeometry, Conv2dParams, Sides};
use crate::plan::forward::{ForwardTiles, Read, RowSkip, Shape, WHY_NOT_VEC4, tiles, window};
use crate::plan::loops;
use crate::plan::variant::{Cols, Pad};
use crate::plan::{AdapterProfile, Algorithm, ConvGemm, Strategy, family, gcd};

/// How the input gradient runs a layer.
// A plan is made per call and lives on the stack: boxing the tiled variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputGradPlan {
    /// `conv2d_input_grad.wgsl`: one input element per invocation, gathering its terms.
    Direct,
    /// A tiled forward kernel over dY.
    Tiled(InputGradTiles),
    /// `conv2d_gemm.wgsl` once per stride phase: an implicit GEMM of dY with the phase's taps.
    Gemm(ConvGemm),
}

/// The forward pass an input gradient runs, and where its input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputGradTiles {
    /// The forward pass: dY spread and framed is its input, the flipped filters its weights.
    pub(crate) fwd: Conv2dGeometry,
    /// Its tiles.
    pub(crate) tiles: ForwardTiles,
    /// What the kernel reads.
    pub(crate) source: DySource,
    /// The frame of zeros around dY: `oh` rows above, `ow` columns left, and below and right as many
    /// as fill the forward pass's input (`H + dh·(S−1) − oh − P` rows, likewise columns).
    pub(crate) frame: Sides,
}

/// What the input gradient's forward kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DySource {
    /// dY itself, the frame and the inserted zeros never loaded.
    InPlace,
    /// dY copied into its zero frame (stride 1: nothing to spread), by `pad_input.wgsl`.
    Framed,
    /// dY spread by the stride into its zero frame, by `scatter_dy.wgsl`.
    Spread,
}

/// The input gradient of `geo` on an adapter of `profile`.
///
/// # Errors
/// [`Error::Unsupported`] when `strategy` forces an algorithm the layer has no variant of (any tiled
/// one where the padding exceeds the dilated kernel).
pub fn input_grad(geo: &Conv2dGeometry, profile: &AdapterProfile, strategy: Strategy) -> Result<InputGradPlan> {
    // A channels-last layer runs the kernels of its NCHW twin between transposes (`gpu/layout.rs`).
    let geo = &geo.nchw();
    loops::within_budget(strategy, "input gradient", geo, |s| unchecked(geo, profile, s), |p| p.loop_trips(geo))
}

/// The plan of `strategy`, before the loop budget is checked.
fn unchecked(geo: &Conv2dGeometry, profile: &AdapterProfile, strategy: Strategy) -> Result<InputGradPlan> {
    let fwd = as_forward(geo);
    // Where the padding exceeds the kernel the frame's error below says why, not the vec4 rule.
    let fits = fwd.as_ref().is_none_or(|f| window(f).is_some());
    let Some(algorithm) = family(strategy, profile, fits, "input gradient", geo, WHY_NOT_VEC4)? else {
        return Ok(InputGradPlan::Direct);
    };
    // The GEMM kernels run every layer, whatever its padding: they gather dY phase by phase.
    if let Algorithm::Gemm(choice) = algorithm {
        return Ok(InputGradPlan::Gemm(ConvGemm::input_grad(geo, profile, choice)?));
    }
    let Some(fwd) = fwd else {
        // Padding beyond the dilated kernel: the frame would be negative; only the gather kernel.
        return match strategy {
            Strategy::Force(a) => Err(Error::Unsupported {
                op: "input gradient",
                layer: geo.describe(),
                algorithm: a.name(),
                reason: "its padding exceeds the dilated kernel, so dY has no zero frame to correlate",
            }),
            Strategy::Auto | Strategy::Reference => Ok(InputGradPlan::Direct),
        };
    };
    let vec4 = algorithm == Algorithm::Vec4Tile;
    let pr = &geo.params;
    let [sh, sw] = pr.stride;
    let shape = Shape::of(&fwd, vec4, sh > 1, profile.fence_blocks);
    let (oh, ow) = (pr.dilation[0] * (geo.s - 1) - geo.pad.top, pr.dilation[1] * (geo.t - 1) - geo.pad.left);
    // Rows of the spread dY hold data only every sh rows, from oh on: the kernel skips the others.
    let skip = RowSkip { row_step: sh, row_off: (sh - oh % sh) % sh, i_step: sh / gcd(sh, pr.dilation[0]) };
    // Columns hold data only every sw columns, from ow on. Where sw divides the tile width, every tile
    // starts on the same phase, and the vec4 kernel leaves out the multiply-adds by the zeros between.
    // Where it can, it reads dY itself, framed by oh rows and ow columns of zeros that it masks: at
    // stride 1 where the frame is whole vec4s; strided where the tiles also start on the same element of
    // a vec4 of dY's rows, whose data columns a window then reads consecutively.
    let bq = shape.bq;
    let in_place = vec4
        && geo.q.is_multiple_of(4)
        && if sw == 1 { sh == 1 && ow.is_multiple_of(4) } else { bq.is_multiple_of(4 * sw) };
    let cols = if vec4 && sw > 1 && bq.is_multiple_of(sw) {
        let lead = isize::try_from(ow / sw).map_err(|_| Error::Overflow { what: "frame", detail: ow.to_string() })?;
        Some(Cols { step: sw, phase: (sw - ow % sw) % sw, lead: in_place.then_some(-lead) })
    } else {
        None
    };
    let (source, read) = if in_place {
        (DySource::InPlace, Read { pad: Pad::Mask, hp: geo.p, wp: geo.q, ph: oh, pw: ow })
    } else {
        let source = if pr.stride == [1, 1] { DySource::Framed } else { DySource::Spread };
        (source, Read { pad: Pad::Copy, hp: fwd.h, wp: shape.wp, ph: 0, pw: 0 })
    };
    let tiles = tiles(&fwd, profile, &shape, read, skip, cols);
    let frame = Sides { top: oh, bottom: fwd.h - oh - geo.p, left: ow, right: fwd.w - ow - geo.q };
    Ok(InputGradPlan::Tiled(InputGradTiles { fwd, tiles, source, frame }))
}

/// The forward pass whose output is the input gradient of `geo` (see the module docs), or `None` when
/// the padding exceeds the dilated kernel.
pub(crate) fn as_forward(geo: &Conv2dGeometry) -> Option<Conv2dGeometry> {
    let pr = &geo.params;
    let eh = pr.dilation[0] * (geo.s - 1);
    let ew = pr.dilation[1] * (geo.t - 1);
    let pd = &geo.pad;
    if pd.top.max(pd.bottom) > eh || pd.left.max(pd.right) > ew {
        return None;
    }
    let params = Conv2dParams::new().dilation(pr.dilation[0], pr.dilation[1]).groups(pr.groups);
    let fwd = Conv2dGeometry::new(geo.n, geo.k, [geo.h + eh, geo.w + ew], geo.c, [geo.s, geo.t], params).ok()?;
    (fwd.output_shape() == geo.input_shape()).then_some(fwd)
}

impl InputGradPlan {
    /// The most loop iterations one invocation of the plan's kernels runs (see [`loops`]).
    #[must_use]
    pub fn loop_trips(&self, geo: &Conv2dGeometry) -> usize {
        let geo = &geo.nchw();
        match self {
            InputGradPlan::Direct => loops::direct_trips(geo.filters_per_group(), geo.s, geo.t),
            InputGradPlan::Tiled(t) => t.tiles.loop_trips(&t.fwd),
            // Each stride phase reduces over the filters of a group and the taps that reach it.
            InputGradPlan::Gemm(g) => g.loop_trips(geo.filters_per_group() * geo.s * geo.t),
        }
    }

    /// The largest per-sample buffer the plan binds, in `f32` elements: dY, dX, or the framed copy.
    #[must_use]
    pub fn per_sample(&self, geo: &Conv2dGeometry) -> usize {
        let io = (geo.c * geo.h * geo.w).max(geo.k * geo.p * geo.q);
        match self {
            InputGradPlan::Tiled(t) if t.source != DySource::InPlace => {
                io.max(geo.k * t.tiles.read.hp * t.tiles.read.wp)
            }
            _ => io,
        }
    }
}

impl fmt::Display for InputGradPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputGradPlan::Direct => f.write_str("direct"),
            InputGradPlan::Gemm(g) => write!(f, "{g} by stride phase"),
            InputGradPlan::Tiled(t) => {
                let source = match t.source {
                    DySource::InPlace => "dY in place",
                    DySource::Framed => "dY framed",
                    DySource::Spread => "dY spread",
                };
                write!(f, "{source}, {}", t.tiles)
            }
        }
    }
}
