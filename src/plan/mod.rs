//! Plans: which kernels run a layer, with which tiles, splits and temporaries. No wgpu here (like
//! [`geometry`](crate::geometry)): every decision is a pure function of the layer's
//! [`Conv2dGeometry`], the adapter's [`AdapterProfile`] and the caller's [`Strategy`], returning a
//! plan that carries every derived number. The encoders in `src/gpu/ops.rs` record passes from a plan
//! and decide nothing, so a plan can be printed, asserted in a table, or forced.
//!
//! The GPU class gets the GEMM kernels of [`gemm`] for all three operations: implicit GEMMs through
//! workgroup memory ([`Algorithm::Gemm`]). The CPU class gets register-tiled implicit GEMMs: each
//! invocation computes a tile of `bk` filters × `bq` output columns (× `br` rows) of `Y`, or `bk`
//! filters × a block of taps of `dW`, its accumulators unrolled into named scalars
//! (`src/gpu/tiled.rs`). Two families:
//! - [`Algorithm::RegisterTile`]: scalar loads (`conv2d_forward_tiled.wgsl`,
//!   `conv2d_weight_grad_tiled.wgsl`); runs every layer.
//! - [`Algorithm::Vec4Tile`]: vec4 loads along the row (`conv2d_forward_vec4.wgsl`,
//!   `conv2d_weight_grad_vec4.wgsl`), for kernel rows of up to 11 taps whose tile window stays within
//!   64 inputs; on CPU adapters the lanes of a subgroup share the weights (forward) or dY (weight
//!   gradient) they would each load.
//!
//! Their input gradient runs the forward kernels over dY spread by the stride, framed by zeros, with
//! flipped filters ([`input_grad`]); where the padding exceeds the dilated kernel that frame would be
//! negative and only the direct (gather) kernel runs it. Every family can be forced on either class.

pub mod bindings;
pub mod candidates;
pub mod conv;
mod forward;
pub mod gemm;
mod input_grad;
pub(crate) mod key;
pub mod loops;
pub mod profile;
pub mod program;
pub mod reduce;
pub mod train;
pub(crate) mod uniform;
pub(crate) mod variant;
mod weight_grad;

use std::fmt;

pub use forward::{ForwardPlan, ForwardTiles, forward};
pub use gemm::{ConvGemm, GemmChoice, GemmShape, WeightGradGemm};
pub use input_grad::{DySource, InputGradPlan, InputGradTiles, input_grad};
pub use loops::{MAX_LOOP_TRIPS, ReductionSplit};
pub use profile::{AdapterProfile, DeviceClass};
pub use weight_grad::{WeightGradPlan, WeightGradTiles, weight_grad};

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::geometry::Conv2dGeometry;

/// An operation with a choice of kernels: what the benchmarks time and the tuner chooses for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `Y = X ⊗ W`.
    Forward,
    /// `dW` from `X` and `dY`.
    WeightGrad,
    /// `dX` from `dY` and `W`.
    InputGrad,
}

impl Op {
    /// All three, in suite order.
    pub const ALL: [Op; 3] = [Op::Forward, Op::WeightGrad, Op::InputGrad];

    /// The name used in tables, JSON and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Op::Forward => "forward",
            Op::WeightGrad => "weight-grad",
            Op::InputGrad => "input-grad",
        }
    }

    /// The operation with this name.
    #[must_use]
    pub fn from_name(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }

    /// The bytes this operation reads and writes at least on `geo` with operands of `elem`: its two
    /// operands once and its result once (the forward pass and input gradient in `elem`, the weight
    /// gradient in `f32`, their defaults). What a byte-bound kernel's time follows.
    #[must_use]
    pub fn bytes(self, geo: &Conv2dGeometry, elem: Elem) -> u64 {
        let len = |shape: [usize; 4]| shape.iter().product::<usize>();
        let (x, w, y) = (len(geo.input_shape()), len(geo.weight_shape()), len(geo.output_shape()));
        let (a, b, out, out_elem) = match self {
            Op::Forward => (x, w, y, elem),
            Op::WeightGrad => (x, y, w, Elem::F32),
            Op::InputGrad => (y, w, x, elem),
        };
        elem.buffer_bytes(a) + elem.buffer_bytes(b) + out_elem.buffer_bytes(out)
    }
}

/// How a channels-last operation moves its tensors between NHWC and the kernels' NCHW
/// (`src/gpu/layout.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transpose {
    /// `transpose.wgsl`: 16×16 tiles through workgroup memory, both sides read and written in runs.
    Tiles,
    /// `transpose_rows.wgsl`: one output row per invocation, no workgroup memory or barrier.
    Rows,
}

/// The transpose for `profile`. A GPU wants the tiles, whose loads and stores coalesce. On lavapipe
/// the tiles' barrier and workgroup memory cost more than the strided reads of the rows: in two runs
/// of the standard layers with the CPU profile's plans, the seed layer's NHWC forward pass took 4.2×
/// its NCHW time with tiles and 1.4× with rows, the stem's 2.1× and 1.2× (docs/BENCHMARKS.md).
/// The tiles need their 16×17 `f32`s of workgroup memory (1,088 bytes, far under WebGPU's 16 KiB).
pub(crate) fn transpose(profile: &AdapterProfile) -> Transpose {
    const TILE_BYTES: u32 = 16 * 17 * 4;
    match profile.class {
        profile::DeviceClass::Gpu if profile.workgroup_bytes >= TILE_BYTES => Transpose::Tiles,
        _ => Transpose::Rows,
    }
}

/// Which kernels an operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// The planner's choice for the layer and the adapter's profile (the default).
    #[default]
    Auto,
    /// The direct kernels, one output element per invocation: the simple path the tuned kernels are
    /// compared with.
    Reference,
    /// One algorithm for every layer it can run; a layer it cannot run is an [`Error::Unsupported`].
    Force(Algorithm),
}

/// A family of tuned kernels (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Register tiles with scalar loads.
    RegisterTile,
    /// Register tiles with vec4 loads.
    Vec4Tile,
    /// Implicit GEMMs through workgroup memory ([`gemm`]), the GPU class's kernels; the choice may
    /// force a tile shape and the weight gradient's split count.
    Gemm(GemmChoice),
}

impl Algorithm {
    /// `register-tile`, `vec4-tile`, `gemm`, or `gemm-large`, `gemm-narrow`, `gemm-small`, `gemm-thin`,
    /// `gemm-huge` where a tile shape is forced (a forced split count, depth or double buffering is
    /// not part of the name; see [`Strategy::key`] and the `Display` form).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RegisterTile => "register-tile",
            Self::Vec4Tile => "vec4-tile",
            Self::Gemm(c) => match c.shape {
                None => "gemm",
                Some(GemmShape::Large) => "gemm-large",
                Some(GemmShape::Narrow) => "gemm-narrow",
                Some(GemmShape::Small) => "gemm-small",
                Some(GemmShape::Thin) => "gemm-thin",
                Some(GemmShape::Huge) => "gemm-huge",
            },
        }
    }

    /// The GEMM kernels with the planner's tiles and splits.
    pub const GEMM: Algorithm = Algorithm::Gemm(GemmChoice { shape: None, splits: None, depth: None, double: false });

    /// The GEMM kernels with tile shape `shape` forced.
    #[must_use]
    pub const fn gemm(shape: GemmShape) -> Self {
        Self::Gemm(GemmChoice::shape(shape))
    }
}

impl Strategy {
    /// Every strategy, in the order the tests sweep them.
    pub const ALL: [Strategy; 5] = [
        Strategy::Auto,
        Strategy::Reference,
        Strategy::Force(Algorithm::RegisterTile),
        Strategy::Force(Algorithm::Vec4Tile),
        Strategy::Force(Algorithm::GEMM),
    ];

    /// Every strategy with a name: [`Strategy::ALL`] and each forced GEMM tile shape.
    pub const NAMED: [Strategy; 10] = [
        Strategy::Auto,
        Strategy::Reference,
        Strategy::Force(Algorithm::RegisterTile),
        Strategy::Force(Algorithm::Vec4Tile),
        Strategy::Force(Algorithm::GEMM),
        Strategy::Force(Algorithm::gemm(GemmShape::Large)),
        Strategy::Force(Algorithm::gemm(GemmShape::Narrow)),
        Strategy::Force(Algorithm::gemm(GemmShape::Small)),
        Strategy::Force(Algorithm::gemm(GemmShape::Thin)),
        Strategy::Force(Algorithm::gemm(GemmShape::Huge)),
    ];

    /// `auto`, `reference`, or an [`Algorithm::name`].
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Reference => "reference",
            Self::Force(a) => a.name(),
        }
    }

    /// The strategy with this [`name`](Strategy::name).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::NAMED.into_iter().find(|s| s.name() == name.trim()).ok_or_else(|| Error::InvalidOption {
            what: "strategy",
            got: name.to_string(),
            expected: "auto, reference, register-tile, vec4-tile, gemm, gemm-large, gemm-narrow, gemm-small, gemm-thin or gemm-huge",
        })
    }
}

impl Strategy {
    /// The strategy as a tuned choice is stored: its [name](Strategy::name), then `:splits=N`,
    /// `:depth=N` and `:double` where a GEMM split count, reduction depth or double buffering is
    /// forced (the choice itself, not only its family).
    #[must_use]
    pub fn key(self) -> String {
        let mut key = self.name().to_string();
        if let Strategy::Force(Algorithm::Gemm(c)) = self {
            if let Some(s) = c.splits {
                key += &format!(":splits={s}");
            }
            if let Some(d) = c.depth {
                key += &format!(":depth={d}");
            }
            if c.double {
                key += ":double";
            }
        }
        key
    }

    /// The strategy of a [`key`](Strategy::key).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for anything else.
    pub fn from_key(key: &str) -> Result<Self> {
        let bad = || Error::InvalidOption {
            what: "stored strategy",
            got: key.to_string(),
            expected: "NAME, then :splits=N, :depth=N and :double for a GEMM tile",
        };
        let mut parts = key.split(':');
        let mut strategy = Self::from_name(parts.next().unwrap_or_default())?;
        for part in parts {
            let Strategy::Force(Algorithm::Gemm(c)) = &mut strategy else { return Err(bad()) };
            if part == "double" && !c.double {
                c.double = true;
                continue;
            }
            let (field, n) = part.split_once('=').ok_or_else(bad)?;
            let n = n.parse::<std::num::NonZeroU32>().map_err(|_| bad())?;
            match field {
                "splits" if c.splits.is_none() => c.splits = Some(n),
                "depth" if c.depth.is_none() => c.depth = Some(n),
                _ => return Err(bad()),
            }
        }
        Ok(strategy)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if let Strategy::Force(Algorithm::Gemm(c)) = self {
            if let Some(s) = c.splits {
                write!(f, " split-K {s}")?;
            }
            if let Some(d) = c.depth {
                write!(f, " depth {d}")?;
            }
            if c.double {
                f.write_str(" double-buffered")?;
            }
        }
        Ok(())
    }
}

/// The tuned kernel family a strategy asks for on a layer; `None`: the direct kernels.
/// `vec4_fits`: whether the layer's kernel rows have a vec4 variant; `why_not` says why when not.
/// Left to itself the planner gives a GPU the GEMM kernels and a CPU adapter the register tiles.
fn family(
    strategy: Strategy,
    profile: &AdapterProfile,
    vec4_fits: bool,
    op: &'static str,
    geo: &Conv2dGeometry,
    why_not: &'static str,
) -> Result<Option<Algorithm>> {
    match strategy {
        Strategy::Reference => Ok(None),
        Strategy::Auto if profile.class == DeviceClass::Gpu => Ok(Some(Algorithm::GEMM)),
        Strategy::Auto => Ok(Some(if vec4_fits { Algorithm::Vec4Tile } else { Algorithm::RegisterTile })),
        Strategy::Force(Algorithm::Vec4Tile) if !vec4_fits => Err(Error::Unsupported {
            op,
            layer: geo.describe(),
            algorithm: Algorithm::Vec4Tile.name(),
            reason: why_not,
        }),
        Strategy::Force(a) => Ok(Some(a)),
    }
}

/// Samples per chunk so that `per_sample` `f32` elements per sample fit one binding: work larger than
/// one storage binding runs on chunks of whole samples (`src/gpu/batch.rs`).
///
/// # Errors
/// [`Error::DeviceLimit`] when not even one sample fits.
pub fn batch_chunk(geo: &Conv2dGeometry, per_sample: usize, profile: &AdapterProfile) -> Result<usize> {
    let limit = profile.binding_elements();
    let nb = limit / per_sample.max(1);
    if nb == 0 {
        return Err(Error::DeviceLimit {
            what: format!("one sample of {} ({per_sample} f32 elements per buffer)", geo.describe()),
            needed: (per_sample as u64).saturating_mul(4),
            limit: profile.max_binding_bytes,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    Ok(nb.min(geo.n))
}

/// Bytes per sample of the largest batch buffer a GEMM plan binds when it reads 16-bit operands of
/// `elem` in place: the operands at their own size, the result in `f32` (the kernels write `f32`; a
/// 16-bit result is narrowed from it). The forward pass binds X and Y, the weight gradient X and dY,
/// the input gradient dY and dX.
#[must_use]
pub fn gemm_sample_bytes(op: Op, geo: &Conv2dGeometry, elem: Elem) -> usize {
    let (x, y, eb) = (geo.c * geo.h * geo.w, geo.k * geo.p * geo.q, elem.bytes());
    match op {
        Op::Forward => (x * eb).max(y * 4),
        Op::WeightGrad => x.max(y) * eb,
        Op::InputGrad => (y * eb).max(x * 4),
    }
}

/// Greatest common divisor.
pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
pub(crate) mod tests;
