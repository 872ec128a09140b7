//! The forward pass's plan: `Y[n,k,p,q] = b[k] + Σ_cg Σ_i Σ_j X[n, c, p·sh + i·dh − ph, q·sw + j·dw − pw] · W[k,cg,i,j]`.

use std::fmt;

use crate::error::Result;
use crate::geometry::Conv2dGeometry;
use crate::plan::loops;
use crate::plan::variant::{Cols, ForwardVec4, Pad, Rows, Sharing, Store, Variant, Window};
use crate::plan::{AdapterProfile, Algorithm, ConvGemm, Strategy, family};

/// How the forward pass runs a layer.
// A plan is made per call and lives on the stack: boxing the tiled variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardPlan {
    /// `conv2d_forward.wgsl`: one output element per invocation.
    Direct,
    /// A tiled kernel.
    Tiled(ForwardTiles),
    /// `conv2d_gemm.wgsl`: the implicit GEMM through workgroup memory.
    Gemm(ConvGemm),
}

/// How a tiled forward kernel covers a layer: the forward pass's, or the one an input gradient runs
/// over its spread dY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardTiles {
    /// The kernel and its generated tile.
    pub(crate) variant: Variant,
    /// Tiles along q, along p, and of filters in a group.
    pub(crate) qtiles: usize,
    pub(crate) ptiles: usize,
    pub(crate) ktiles: usize,
    /// Invocations per (n, filter tile), and per row tile of them (see `forward_tile` in
    /// `shaders/common.wgsl`): rounded up to whole subgroups where a subgroup shares its weights.
    pub(crate) lanes: usize,
    pub(crate) qlanes: usize,
    /// The planes the kernel reads, `hp × wp` with its padding `ph`, `pw` read as zeros: a zero-padded
    /// copy the encoder makes first ([`Pad::Copy`], `ph = pw = 0`), or the input itself ([`Pad::Mask`]).
    pub(crate) read: Read,
    /// The vec4 kernel's weights, transposed to `G × taps × kpad` (`transpose_weights.wgsl`).
    pub(crate) kpad: Option<usize>,
    /// Rows of the input that hold data: all, or every `row_step`-th of a spread dY.
    pub(crate) skip: RowSkip,
}

/// The planes a forward kernel reads (see [`ForwardTiles::read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Read {
    pub(crate) pad: Pad,
    pub(crate) hp: usize,
    pub(crate) wp: usize,
    pub(crate) ph: usize,
    pub(crate) pw: usize,
}

/// Only input rows with `(row + row_off) % row_step == 0` hold data; the kernel rows that read them
/// are `i_step` apart (`first_data_row` in `shaders/common.wgsl`). `row_step = 1` reads every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowSkip {
    pub(crate) row_step: usize,
    pub(crate) row_off: usize,
    pub(crate) i_step: usize,
}

impl RowSkip {
    pub(crate) const NONE: RowSkip = RowSkip { row_step: 1, row_off: 0, i_step: 1 };
}

/// The forward pass of `geo` on an adapter of `profile`.
///
/// # Errors
/// [`Error::Unsupported`](crate::Error::Unsupported) when `strategy` forces an algorithm the layer
/// has no variant of.
pub fn forward(geo: &Conv2dGeometry, profile: &AdapterProfile, strategy: Strategy) -> Result<ForwardPlan> {
    // A channels-last layer runs the kernels of its NCHW twin between transposes (`gpu/layout.rs`).
    let geo = &geo.nchw();
    loops::within_budget(strategy, "forward", geo, |s| unchecked(geo, profile, s), |p| p.loop_trips(geo))
}

/// The plan of `strategy`, before the loop budget is checked.
fn unchecked(geo: &Conv2dGeometry, profile: &AdapterProfile, strategy: Strategy) -> Result<ForwardPlan> {
    let fits = window(geo).is_some();
    let Some(algorithm) = family(strategy, profile, fits, "forward", geo, WHY_NOT_VEC4)? else {
        return Ok(ForwardPlan::Direct);
    };
    if let Algorithm::Gemm(choice) = algorithm {
        return Ok(ForwardPlan::Gemm(ConvGemm::forward(geo, profile, choice)?));
    }
    let vec4 = algorithm == Algorithm::Vec4Tile;
    let shape = Shape::of(geo, vec4, false, profile.fence_blocks);
    // The vec4 kernel reads X itself where its rows and the left padding are whole vec4s, and masks
    // the padding: no copy pass.
    let read = if vec4 && geo.w.is_multiple_of(4) && geo.pad.left.is_multiple_of(4) {
        Read { pad: Pad::Mask, hp: geo.h, wp: geo.w, ph: geo.pad.top, pw: geo.pad.left }
    } else {
        Read { pad: Pad::Copy, hp: geo.padded_size()[0], wp: shape.wp, ph: 0, pw: 0 }
    };
    Ok(ForwardPlan::Tiled(tiles(geo, profile, &shape, read, RowSkip::NONE, None)))
}

pub(crate) const WHY_NOT_VEC4: &str =
    "its kernel rows are wider than 11 taps, or a tile's input window spans more than 64 inputs";

/// The specialised kernel row of the vec4 kernel, when a tile row's input window stays small.
pub(crate) fn window(geo: &Conv2dGeometry) -> Option<Window> {
    let window = Window { t: geo.t, sw: geo.params.stride[1], dw: geo.params.dilation[1] };
    (geo.t <= 11 && window.len(column_tile(geo)) <= 64).then_some(window)
}

/// Output columns per tile: narrower tiles keep rows from wasting much of their last tile. The
/// width with the fewest columns computed, counting about 4 columns' worth of set-up and window per
/// tile, the wider on a tie (MNIST's 24 columns: 2×12 rather than 2×16, 15% faster on lavapipe; the
/// seed's 252: 16×16 rather than 21×12).
fn column_tile(geo: &Conv2dGeometry) -> usize {
    [16, 12, 8, 4].into_iter().min_by_key(|&bq| geo.q.div_ceil(bq) * (bq + 4)).unwrap_or(16)
}

/// The tile sizes and the padded width a forward kernel needs.
pub(crate) struct Shape {
    bk: usize,
    pub(crate) bq: usize,
    window: Option<Window>,
    vec4: bool,
    rows: Option<Rows>,
    /// Width of a zero-padded copy of the input: the last tile of a row reads up to column
    /// (qtiles·bq − 1)·sw + (T−1)·dw (whole vec4s for the vec4 kernel); a multiple of 4, since rows
    /// are written as vec4s.
    pub(crate) wp: usize,
}

impl Shape {
    /// `skips_rows`: the input is a spread dY whose zero rows the kernel skips, which needs one output
    /// row per tile.
    pub(crate) fn of(geo: &Conv2dGeometry, vec4: bool, skips_rows: bool, fenced: bool) -> Self {
        let pr = &geo.params;
        let bq = column_tile(geo);
        let window = window(geo);
        let kpg = geo.filters_per_group();
        // Tiles of 8 filters, or 16 for kernels up to 5 wide: spills and all (the accumulators do not
        // fit a CPU's registers), each loaded input then feeds 8 or 16 sums. On lavapipe 16 filters ran
        // the resnet and deep layers 18–26% faster than 8 (with the weights shared in a subgroup),
        // MNIST 12%, and 24 or 32 slower; the 7×7 stem ran slower with 16.
        let mut bk = if window.is_some() && geo.t <= 5 && kpg >= 16 { 16 } else { kpg.min(8) };
        let qtiles = geo.q.div_ceil(bq);
        let padded = geo.padded_size()[1];
        let (wp, rows) =
            match window {
                Some(wd) if vec4 => {
                    // With fewer than 4 filters per group the vec4 kernel still reads the input as vec4s
                    // and computes only the real filters (a single tile, so its weights start a vec4).
                    if bk >= 4 {
                        bk -= bk % 4;
                    }
                    let wp = padded.max((qtiles - 1) * bq * pr.stride[1] + wd.len(bq).div_ceil(4) * 4);
                    // Fewer than 4 filters give each loaded input value too few multiply-adds on one row:
                    // the input gradients of 1- and 3-channel layers. Several rows share the loaded rows,
                    // while the fully unrolled kernel (bk·br·S·T·bq multiply-adds per channel) stays of
                    // moderate size. (Tiles of 2 or 3 rows of 8 filters measured no faster on the seed
                    // and MNIST forward passes.)
                    let br = geo.p.min(4);
                    let rows = (bk < 4 && !skips_rows && br > 1 && bk * br * geo.s * geo.t * bq <= 2048)
                        .then_some(Rows { br, s: geo.s, sh: pr.stride[0], dh: pr.dilation[0], fenced });
                    (wp, rows)
                }
                _ => (padded.max((qtiles * bq - 1) * pr.stride[1] + (geo.t - 1) * pr.dilation[1] + 1), None),
            };
        Shape { bk, bq, window, vec4: vec4 && window.is_some(), rows, wp: wp.next_multiple_of(4) }
    }
}

/// The plan of a tiled forward kernel with tiles `shape` over `read`, the input's data rows `skip`,
/// and for the vec4 kernel on a spread dY, its data columns `cols`.
pub(crate) fn tiles(
    geo: &Conv2dGeometry,
    profile: &AdapterProfile,
    shape: &Shape,
    read: Read,
    skip: RowSkip,
    cols: Option<Cols>,
) -> ForwardTiles {
    let Shape { bk, bq, window, vec4, rows, .. } = *shape;
    let qtiles = geo.q.div_ceil(bq);
    let ptiles = geo.p.div_ceil(rows.map_or(1, |r| r.br));
    let ktiles = geo.filters_per_group().div_ceil(bk);
    // Subgroups share their weights where the profile says so. Their lanes must run the same kernel
    // rows: where rows are skipped per output row (a strided input gradient), each output row's tiles
    // are rounded up to whole subgroups.
    let (share, qlanes, lanes) = match profile.subgroup_sharing.map(|sg| sg as usize) {
        Some(sg) if vec4 => {
            let qlanes = if skip.row_step == 1 { qtiles } else { qtiles.next_multiple_of(sg) };
            (Sharing::Subgroup, qlanes, (ptiles * qlanes).next_multiple_of(sg))
        }
        _ => (Sharing::PerLane, qtiles, ptiles * qtiles),
    };
    let (variant, kpad) = match window {
        Some(wd) if vec4 => {
            // Four columns are stored at a time where Q is a multiple of 4: then every row, and every
            // group of four columns of a tile, starts on a multiple of 4.
            let store = if geo.q.is_multiple_of(4) { Store::Vec4 } else { Store::Scalar };
            let v = ForwardVec4 { bk, bq, wd, rows, pad: read.pad, share, store, cols };
            (Variant::ForwardVec4(v), Some((ktiles * bk).next_multiple_of(4)))
        }
        _ => (Variant::Forward { bk, bq, window }, None),
    };
    ForwardTiles { variant, qtiles, ptiles, ktiles, lanes, qlanes, read, kpad, skip }
}

impl ForwardPlan {
    /// The most loop iterations one invocation of the plan's kernels runs (see [`loops`]).
    #[must_use]
    pub fn loop_trips(&self, geo: &Conv2dGeometry) -> usize {
        let geo = &geo.nchw();
        match self {
            ForwardPlan::Direct => loops::direct_trips(geo.channels_per_group(), geo.s, geo.t),
            ForwardPlan::Tiled(t) => t.loop_trips(geo),
            ForwardPlan::Gemm(g) => g.loop_trips(geo.channels_per_group() * geo.s * geo.t),
        }
    }

    /// The largest per-sample buffer the plan binds, in `f32` elements: X, Y, or the padded copy.
    #[must_use]
    pub fn per_sample(&self, geo: &Conv2dGeometry) -> usize {
        let io = (geo.c * geo.h * geo.w).max(geo.k * geo.p * geo.q);
        match self {
            ForwardPlan::Tiled(t) if t.read.pad == Pad::Copy => io.max(geo.c * t.read.hp * t.read.wp),
            _ => io,
        }
    }
}

impl ForwardTiles {
    /// The most loop iterations one invocation of a tiled forward kernel over `geo` runs: channels ×
    /// kernel rows × taps (a loop or unrolled), the search for the first data row, the stores; and one
    /// invocation of the copy that pads its input, a row of `wp` values.
    pub(crate) fn loop_trips(&self, geo: &Conv2dGeometry) -> usize {
        let stores = 2 * 16 * 18;
        (loops::direct_trips(geo.channels_per_group(), geo.s, geo.t) + self.skip.row_step + 2 + stores)
            .max(self.read.wp + 1)
    }
}

impl fmt::Display for ForwardPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPlan::Direct => f.write_str("direct"),
            ForwardPlan::Tiled(t) => t.fmt(f),
            ForwardPlan::Gemm(g) => g.fmt(f),
        }
    }
}

impl fmt::Display for ForwardTiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variant {
            Variant::ForwardVec4(v) => {
                write!(f, "vec4 {}x{}", v.bk, v.bq)?;
                if let Some(r) = v.rows {
                    write!(f, "x{} rows", r.br)?;
                    if r.fenced {
                        f.write_str(" fenced")?;
                    }
                }
                write!(f, " t{}", v.wd.t)?;
                write!(f, ", {}", if v.pad == Pad::Mask { "masked" } else { "padded copy" })?;
                if v.share == Sharing::Subgroup {
                    f.write_str(", subgroup-shared")?;
                }
                if v.store == Store::Vec4 {
                    f.write_str(", vec4 stores")?;
                }
                if let Some(c) = v.cols {
                    write!(f, ", column step {}", c.step)?;
                }
            }
            Variant::Forward { bk, bq, window } => {
                write!(f, "register {bk}x{bq}")?;
                if let Some(w) = window {
                    write!(f, " t{}", w.t)?;
                }
                f.write_str(", padded copy")?;
            }
            _ => f.write_str("?")?,
        }
        if self.skip.row_step > 1 {
            write!(f, ", row step {}", self.skip.row_step)?;
        }
        write!(f, "; {}x{}x{} tiles", self.ktiles, self.ptiles, self.qtiles)
    }
}
