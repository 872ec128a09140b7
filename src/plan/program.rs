//! Programs: what an operation does on the device, as plain data. A program is a list of steps —
//! passes (a kernel, its [`Variant`], its uniform block and the views it binds), copies between views,
//! and submissions (a chunk boundary, after which the temporaries no later step uses are released) —
//! over symbolic slots: the operation's inputs and outputs and the program's own sized temporaries.
//! Built by pure functions of the operation, the dtypes and the profile; run by the engine
//! (`src/gpu/engine.rs`), the only code that turns a program into wgpu work; printed pass by pass
//! with each binding's size; checked when built ([`Program::check`]): every view inside its slot, no
//! pass binding more than the binding limit it was planned for.
//!
//! Built here: [`cast`], [`bias_grad`] and the training helpers; the convolutions' programs are in
//! [`crate::plan::conv`], from the helpers below (operands read, chunks, transposes, split sums).

use std::fmt;

use crate::elem::{Elem, HalfPath};
use crate::error::{Error, Result};
use crate::geometry::{Conv2dGeometry, Conv2dParams, Layout, u32_of};
use crate::plan::bindings::{cast_runs, half_window, sum_ranges, words_of};
use crate::plan::loops::{LOOP_BUDGET, TRANSPOSE_RUN, split_sum_trips};
use crate::plan::profile::WORKGROUP;
use crate::plan::uniform::{ConvUniform, HalfUniform, PrepUniform};
use crate::plan::variant::Variant;
use crate::plan::{AdapterProfile, ReductionSplit};

/// A buffer a program names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The operation's input `i`.
    Input(u8),
    /// The operation's output `i`.
    Output(u8),
    /// The program's temporary `i`.
    Temp(u16),
    /// Bound where a kernel's optional input is absent (a bias the layer does not have): 4 bytes the
    /// kernel never reads.
    Unused,
}

/// A byte range of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct View {
    /// The buffer.
    pub slot: Slot,
    /// The first byte.
    pub at: u64,
    /// Bytes.
    pub len: u64,
}

/// A temporary buffer of the program.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Temp {
    /// What it holds, for errors and listings.
    pub what: &'static str,
    /// Its size.
    pub bytes: u64,
}

/// One compute pass.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pass {
    /// The kernel's name (`shaders/<name>.wgsl`).
    pub kernel: &'static str,
    /// Its variant: with the name, the pipeline.
    pub(crate) variant: Variant,
    /// The uniform block's bytes, at binding 0.
    pub uniform: Vec<u8>,
    /// The storage bindings 1.., in order.
    pub binds: Vec<View>,
    /// Invocations that do work.
    pub invocations: u32,
    /// The most loop iterations one invocation runs, all its loops together (`plan::loops`): an
    /// upper bound written from the kernel's loops, held to [`LOOP_BUDGET`] by [`Program::check`].
    pub trips: usize,
}

/// One step of a program.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// A compute pass.
    Pass(Pass),
    /// A copy of `src` into `dst` (the same length, multiples of 4 bytes).
    Copy {
        /// From.
        src: View,
        /// To.
        dst: View,
    },
    /// Zeros over `dst` (a multiple of 4 bytes): the reduction over an empty batch.
    Clear {
        /// What is zeroed.
        dst: View,
    },
    /// Submit what came before: the end of a chunk.
    Submit,
}

/// An operation's device work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Program {
    /// What it computes, in words.
    pub what: String,
    /// The sizes the inputs must have, in bytes.
    pub inputs: Vec<u64>,
    /// The sizes the outputs must have, in bytes.
    pub outputs: Vec<u64>,
    /// Its temporaries.
    pub temps: Vec<Temp>,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

impl Program {
    pub(crate) fn new(what: String, inputs: Vec<u64>, outputs: Vec<u64>) -> Self {
        Self { what, inputs, outputs, temps: Vec::new(), steps: Vec::new() }
    }

    /// A new temporary of `bytes`, bound whole.
    pub(crate) fn temp(&mut self, what: &'static str, bytes: u64) -> View {
        self.temps.push(Temp { what, bytes });
        View { slot: Slot::Temp((self.temps.len() - 1) as u16), at: 0, len: bytes }
    }

    /// The size of `slot`.
    #[must_use]
    pub fn size(&self, slot: Slot) -> Option<u64> {
        match slot {
            Slot::Input(i) => self.inputs.get(usize::from(i)).copied(),
            Slot::Output(i) => self.outputs.get(usize::from(i)).copied(),
            Slot::Temp(i) => self.temps.get(usize::from(i)).map(|t| t.bytes),
            Slot::Unused => Some(4),
        }
    }

    /// The whole of `slot`.
    pub(crate) fn whole(&self, slot: Slot) -> View {
        View { slot, at: 0, len: self.size(slot).unwrap_or(0) }
    }

    /// The last step that uses temporary `i` (`None`: no step does).
    #[must_use]
    pub fn last_use(&self, i: u16) -> Option<usize> {
        let uses = |v: &View| v.slot == Slot::Temp(i);
        self.steps.iter().rposition(|s| match s {
            Step::Pass(p) => p.binds.iter().any(uses),
            Step::Copy { src, dst } => uses(src) || uses(dst),
            Step::Clear { dst } => uses(dst),
            Step::Submit => false,
        })
    }

    /// Checks the program against a binding limit of `limit` bytes: every view inside its slot, every
    /// copy a multiple of 4 bytes, every pass binding whole slots (what the engine binds today) of at
    /// most `limit` bytes and looping within [`LOOP_BUDGET`] per invocation, and no input written.
    ///
    /// # Errors
    /// [`Error::DeviceLimit`] naming the pass that binds more, or that loops longer than the budget
    /// (the plans keep within it, so that is a planner's bug, caught before it runs as a silently
    /// truncated loop); [`Error::Overflow`] for a view outside its
    /// slot or a misaligned copy (a planner's bug, reported rather than run).
    pub fn check(&self, limit: u64) -> Result<()> {
        let bad = |detail: String| Error::Overflow { what: "program step", detail };
        let inside = |v: &View, i: usize| -> Result<()> {
            let size = self.size(v.slot).ok_or_else(|| bad(format!("step {i}: no slot {:?}", v.slot)))?;
            if v.at.checked_add(v.len).is_none_or(|end| end > size) {
                return Err(bad(format!("step {i}: {v:?} outside its {size} bytes")));
            }
            Ok(())
        };
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Pass(p) => {
                    if p.trips > LOOP_BUDGET {
                        return Err(Error::DeviceLimit {
                            what: format!("{} (pass {i}) of {}: loop iterations per invocation", p.kernel, self.what),
                            needed: p.trips as u64,
                            limit: LOOP_BUDGET as u64,
                            limit_name: "plan::loops::LOOP_BUDGET (drivers such as lavapipe stop loops at 65,535)",
                        });
                    }
                    for (b, v) in p.binds.iter().enumerate() {
                        inside(v, i)?;
                        if v.at != 0 || Some(v.len) != self.size(v.slot) {
                            return Err(bad(format!("step {i}: {} binds part of a buffer ({v:?})", p.kernel)));
                        }
                        if v.len > limit {
                            return Err(Error::DeviceLimit {
                                what: format!(
                                    "{} of {}: binding {} ({})",
                                    p.kernel,
                                    self.what,
                                    b + 1,
                                    slot_name(v.slot)
                                ),
                                needed: v.len,
                                limit,
                                limit_name: "max_storage_buffer_binding_size",
                            });
                        }
                    }
                    // The last binding is the one each kernel writes.
                    if p.binds.last().is_some_and(|v| matches!(v.slot, Slot::Input(_))) {
                        return Err(bad(format!("step {i}: {} writes an input", p.kernel)));
                    }
                }
                Step::Copy { src, dst } => {
                    inside(src, i)?;
                    inside(dst, i)?;
                    if src.len != dst.len || src.len % 4 != 0 || src.at % 4 != 0 || dst.at % 4 != 0 {
                        return Err(bad(format!("step {i}: copy {src:?} → {dst:?}")));
                    }
                    if matches!(dst.slot, Slot::Input(_)) {
                        return Err(bad(format!("step {i}: a copy into an input")));
                    }
                }
                Step::Clear { dst } => {
                    inside(dst, i)?;
                    if dst.len % 4 != 0 || dst.at % 4 != 0 || matches!(dst.slot, Slot::Input(_)) {
                        return Err(bad(format!("step {i}: clear {dst:?}")));
                    }
                }
                Step::Submit => {}
            }
        }
        Ok(())
    }
}

fn slot_name(s: Slot) -> String {
    match s {
        Slot::Input(i) => format!("in{i}"),
        Slot::Output(i) => format!("out{i}"),
        Slot::Temp(i) => format!("t{i}"),
        Slot::Unused => "unused".to_string(),
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}..{})", slot_name(self.slot), self.at, self.at + self.len)
    }
}

impl fmt::Display for Program {
    /// One line per step, each binding with its byte range: what `convgrad` prints for a program.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[u64]| v.iter().map(|b| format!("{b} B")).collect::<Vec<_>>().join(", ");
        writeln!(f, "program: {}", self.what)?;
        writeln!(f, "  inputs: {}; outputs: {}", list(&self.inputs), list(&self.outputs))?;
        for (i, t) in self.temps.iter().enumerate() {
            writeln!(f, "  t{i}: {} B, {}", t.bytes, t.what)?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            match s {
                Step::Pass(p) => {
                    let binds: Vec<String> = p.binds.iter().map(ToString::to_string).collect();
                    let trips = if p.trips > 0 { format!(", ≤ {} loop trips", p.trips) } else { String::new() };
                    writeln!(
                        f,
                        "  {i:>3} pass {} {:?}: {} ({} invocations{trips})",
                        p.kernel,
                        p.variant,
                        binds.join(", "),
                        p.invocations
                    )?;
                }
                Step::Copy { src, dst } => writeln!(f, "  {i:>3} copy {src} → {dst}")?,
                Step::Clear { dst } => writeln!(f, "  {i:>3} clear {dst}")?,
                Step::Submit => writeln!(f, "  {i:>3} submit")?,
            }
        }
        Ok(())
    }
}

/// Whether `n × c × hw` in `layout` is laid out as NCHW: always in NCHW, and in NHWC where one of the
/// two transposed axes has a single element (single-channel images, 1×1 maps, one-filter banks).
pub(crate) fn nchw_bytes(layout: Layout, c: usize, hw: usize) -> bool {
    layout == Layout::Nchw || c == 1 || hw == 1
}

/// The uniform of a run of `len` elements of the half-precision passes (a shape of one element:
/// these kernels read none of it).
pub(crate) fn run_uniform(total: usize, src_off: usize, dst_off: usize, len: usize) -> Result<HalfUniform> {
    let unit = Conv2dGeometry::new(1, 1, [1, 1], 1, [1, 1], Conv2dParams::new())?;
    let end = src_off.max(dst_off).checked_add(len).ok_or(Error::Overflow {
        what: "half-precision run",
        detail: format!("{len} elements from {}", src_off.max(dst_off)),
    })?;
    u32_of(end + 1)?;
    let mut u = HalfUniform::new(&unit, 0, u32_of(total)?);
    u.src_off = u32_of(src_off)?;
    u.dst_off = u32_of(dst_off)?;
    u.len = u32_of(len)?;
    Ok(u)
}

impl Program {
    /// `dst = src[off..off + len)` widened to `f32`, for the 16-bit slot `src` of `total` elements of
    /// `elem`: the slot itself where it fits a binding, else a window of the run's words copied in.
    #[allow(clippy::too_many_arguments)] // the run, both ends, the dtype and path, the limit
    pub(crate) fn widen(
        &mut self,
        src: Slot,
        total: usize,
        off: usize,
        len: usize,
        dst: View,
        elem: Elem,
        path: HalfPath,
        limit: u64,
    ) -> Result<()> {
        let (from, at) = self.half_window_in(src, total, off, len, limit);
        let u = run_uniform(len, at, 0, len)?;
        self.steps.push(Step::Pass(Pass {
            kernel: "widen",
            variant: Variant::widen(elem, path),
            uniform: bytemuck::bytes_of(&u).to_vec(),
            binds: vec![from, from, dst],
            invocations: u.total,
            trips: 0,
        }));
        Ok(())
    }

    /// Elements `[off, off + len)` of the 16-bit slot `dst` (`total` elements of `elem`) = the `f32`s
    /// of `src` from element `src_off`, rounded; where `dst` is larger than a binding, narrowed in a
    /// window of the run's words, copied in and back (the run's end words keep their neighbours).
    #[allow(clippy::too_many_arguments)] // the run, both ends, the dtype and path, the limit
    pub(crate) fn narrow(
        &mut self,
        src: View,
        src_off: usize,
        dst: Slot,
        total: usize,
        off: usize,
        len: usize,
        elem: Elem,
        path: HalfPath,
        limit: u64,
    ) -> Result<()> {
        let (into, at) = self.half_window_in(dst, total, off, len, limit);
        let u = run_uniform(words_of(at, len).len(), src_off, at, len)?;
        self.steps.push(Step::Pass(Pass {
            kernel: "narrow",
            variant: Variant::narrow(elem, path),
            uniform: bytemuck::bytes_of(&u).to_vec(),
            binds: vec![src, into],
            invocations: u.total,
            trips: 0,
        }));
        if into.slot != dst {
            let words = words_of(off, len);
            let back = View { slot: dst, at: 4 * words.start as u64, len: into.len };
            self.steps.push(Step::Copy { src: into, dst: back });
        }
        Ok(())
    }

    /// The view a conversion of elements `[off, off + len)` of the 16-bit `slot` binds, and where
    /// element `off` is in it (`plan::bindings::half_window`).
    fn half_window_in(&mut self, slot: Slot, total: usize, off: usize, len: usize, limit: u64) -> (View, usize) {
        match half_window(total, off, len, limit) {
            None => (self.whole(slot), off),
            Some(words) => {
                let window = self.temp("16-bit window", 4 * words.len() as u64);
                let src = View { slot, at: 4 * words.start as u64, len: window.len };
                self.steps.push(Step::Copy { src, dst: window });
                (window, off - 2 * words.start)
            }
        }
    }
}

/// The program of `Context::cast`: `len` elements of `from` as `to` — a copy where they are the same
/// type, else in pieces that fit a binding of `limit` bytes ([`cast_runs`]), each widened, narrowed
/// or both, and submitted on its own so its temporaries can go before the next.
///
/// # Errors
/// Sizes beyond `u32` indexing; the program's [`Program::check`].
pub fn cast(len: usize, from: Elem, to: Elem, path: HalfPath, limit: u64) -> Result<Program> {
    let what = format!("cast of {len} elements from {from} to {to}");
    let mut p = Program::new(what, vec![from.buffer_bytes(len)], vec![to.buffer_bytes(len)]);
    let (input, output) = (Slot::Input(0), Slot::Output(0));
    if from == to {
        p.steps.push(Step::Copy { src: p.whole(input), dst: p.whole(output) });
        p.check(limit)?;
        return Ok(p);
    }
    for run in cast_runs(len, limit) {
        let (a, n) = (run.start, run.len());
        match (from, to) {
            (Elem::F32, _) => {
                // The piece's f32s in a buffer of their own, unless the piece is the whole input.
                let piece = if a == 0 && n == len {
                    p.whole(input)
                } else {
                    let t = p.temp("batch chunk", 4 * n as u64);
                    p.steps.push(Step::Copy { src: View { slot: input, at: 4 * a as u64, len: t.len }, dst: t });
                    t
                };
                p.narrow(piece, 0, output, len, a, n, to, path, limit)?;
            }
            (_, Elem::F32) => {
                let wide = p.temp("widened half-precision operand", 4 * n as u64);
                p.widen(input, len, a, n, wide, from, path, limit)?;
                p.steps.push(Step::Copy { src: wide, dst: View { slot: output, at: 4 * a as u64, len: wide.len } });
            }
            _ => {
                let wide = p.temp("widened half-precision operand", 4 * n as u64);
                p.widen(input, len, a, n, wide, from, path, limit)?;
                p.narrow(wide, 0, output, len, a, n, to, path, limit)?;
            }
        }
        p.steps.push(Step::Submit);
    }
    p.check(limit)?;
    Ok(p)
}

impl Program {
    /// A pass of `kernel` with no generated variant, `trips` loop iterations per invocation at most.
    pub(crate) fn pass(
        &mut self,
        kernel: &'static str,
        uniform: &[u8],
        binds: Vec<View>,
        invocations: u32,
        trips: usize,
    ) {
        self.pass_in(kernel, Variant::Plain, uniform, binds, invocations, trips);
    }

    /// A pass of `kernel` compiled as `variant`.
    pub(crate) fn pass_in(
        &mut self,
        kernel: &'static str,
        variant: Variant,
        uniform: &[u8],
        binds: Vec<View>,
        invocations: u32,
        trips: usize,
    ) {
        let uniform = uniform.to_vec();
        self.steps.push(Step::Pass(Pass { kernel, variant, uniform, binds, invocations, trips }));
    }

    /// Submits what came before: a batch chunk ends.
    pub(crate) fn submit(&mut self) {
        self.steps.push(Step::Submit);
    }

    /// `dst[b, c, r] = src[b, r, c]` for `b` matrices of `r × c`, with the kernel `plan::transpose`
    /// picks for the profile.
    pub(crate) fn transpose(
        &mut self,
        src: View,
        dst: View,
        [b, r, c]: [usize; 3],
        profile: &AdapterProfile,
    ) -> Result<()> {
        let shape = Conv2dGeometry::new(b, 1, [r, c], 1, [1, 1], Conv2dParams::new())?;
        // Runs of at most TRANSPOSE_RUN elements per invocation of the rows kernel (plan::loops).
        let runs = r.div_ceil(TRANSPOSE_RUN);
        // The tiles kernel loops twice over 4 rows; the rows kernel over one run.
        let (kernel, invocations, trips) = match super::transpose(profile) {
            super::Transpose::Tiles => {
                let workgroups = b * r.div_ceil(16) * c.div_ceil(16);
                ("transpose", workgroups.saturating_mul(WORKGROUP as usize), 2 * (4 + 1))
            }
            super::Transpose::Rows => ("transpose_rows", b * c * runs, TRANSPOSE_RUN + 1),
        };
        let invocations = u32_of(invocations)?;
        let u = PrepUniform::transpose(&shape, invocations, runs, TRANSPOSE_RUN)?;
        self.pass(kernel, bytemuck::bytes_of(&u), vec![src, dst], invocations, trips);
        Ok(())
    }

    /// Samples `[n0, n0 + n)` of the operand `slot` (`total` elements of `elem`, `n × c × hw` per
    /// chunk in `layout`), as the kernels read them: `f32` in NCHW — the slot itself, a copy of the
    /// chunk, a widened temporary, each transposed where the layout needs it.
    #[allow(clippy::too_many_arguments)] // the operand, its chunk, and how to read it
    pub(crate) fn operand(
        &mut self,
        slot: Slot,
        total: usize,
        elem: Elem,
        layout: Layout,
        n0: usize,
        [n, c, hw]: [usize; 3],
        profile: &AdapterProfile,
    ) -> Result<View> {
        let per = c * hw;
        let chunk = if elem == Elem::F32 {
            if n0 == 0 && n * per == total {
                self.whole(slot)
            } else {
                let t = self.temp("batch chunk", 4 * (n * per) as u64);
                self.steps.push(Step::Copy { src: View { slot, at: 4 * (n0 * per) as u64, len: t.len }, dst: t });
                t
            }
        } else {
            let t = self.temp("widened half-precision operand", 4 * (n * per) as u64);
            self.widen(slot, total, n0 * per, n * per, t, elem, profile.half, profile.max_binding_bytes)?;
            t
        };
        if nchw_bytes(layout, c, hw) {
            return Ok(chunk);
        }
        let t = self.temp("activations in NCHW", 4 * (n * per) as u64);
        self.transpose(chunk, t, [n, hw, c], profile)?;
        Ok(t)
    }

    /// A direct kernel reducing in `r.splits` ranges (one writes `out` itself, looping at most `trips`
    /// times), then `split_sum` adding the ranges' partials in order.
    #[allow(clippy::too_many_arguments)] // the kernel, its reduction, its bindings, its loops
    pub(crate) fn split_reduction(
        &mut self,
        kernel: &'static str,
        geo: &Conv2dGeometry,
        r: ReductionSplit,
        inputs: Vec<View>,
        out: View,
        len: usize,
        trips: usize,
    ) -> Result<()> {
        let partial = (r.splits > 1).then(|| self.temp("split-reduction partial sums", 4 * (r.splits * len) as u64));
        let u = ConvUniform::split(geo, 0, r, len)?;
        let mut binds = inputs;
        binds.push(partial.unwrap_or(out));
        self.pass(kernel, bytemuck::bytes_of(&u), binds, u.total, trips);
        self.sum_splits(geo, partial, r.splits, out, len)
    }

    /// `split_sum`, adding the `splits` partial sums of `partial` into the `len` elements of `out` in
    /// order; nothing where there is one split (no partials: the kernel wrote `out`).
    pub(crate) fn sum_splits(
        &mut self,
        geo: &Conv2dGeometry,
        partial: Option<View>,
        splits: usize,
        out: View,
        len: usize,
    ) -> Result<()> {
        if let Some(partial) = partial {
            let u = PrepUniform::sum(geo, splits, len)?;
            self.pass("split_sum", bytemuck::bytes_of(&u), vec![partial, out], u.total, split_sum_trips(splits));
        }
        Ok(())
    }

    /// A sum over the batch of `len` elements into `out`, the batch in chunks of `nb` samples:
    /// `chunk(program, chunk geometry, first sample, where it writes)` builds each chunk's steps.
    /// With one chunk it writes `out` itself; with several, each chunk's result is copied into the
    /// slots of each range of elements (`plan::bindings::sum_ranges`) and the slots added in order.
    pub(crate) fn reduce_chunks(
        &mut self,
        geo: &Conv2dGeometry,
        nb: usize,
        out: View,
        len: usize,
        limit: u64,
        mut chunk: impl FnMut(&mut Program, &Conv2dGeometry, usize, View) -> Result<()>,
    ) -> Result<()> {
        if nb >= geo.n {
            return chunk(self, geo, 0, out);
        }
        let chunks = geo.n.div_ceil(nb);
        let ranges = sum_ranges(chunks, len, limit)?;
        let slots: Vec<View> =
            ranges.iter().map(|r| self.temp("per-chunk partial sums", 4 * (chunks * r.len()) as u64)).collect();
        let part = self.temp("chunk result", 4 * len as u64);
        for (idx, n0) in (0..geo.n).step_by(nb).enumerate() {
            chunk(self, &Conv2dGeometry { n: nb.min(geo.n - n0), ..*geo }, n0, part)?;
            for (r, slot) in ranges.iter().zip(&slots) {
                let (at, bytes) = (4 * r.start as u64, 4 * r.len() as u64);
                let dst = View { slot: slot.slot, at: idx as u64 * bytes, len: bytes };
                self.steps.push(Step::Copy { src: View { slot: part.slot, at, len: bytes }, dst });
            }
            self.steps.push(Step::Submit);
        }
        for (r, slot) in ranges.iter().zip(&slots) {
            let u = PrepUniform::sum(geo, chunks, r.len())?;
            let sum = (ranges.len() > 1).then(|| self.temp("range of the sum", 4 * r.len() as u64));
            let binds = vec![*slot, sum.unwrap_or(out)];
            self.pass("split_sum", bytemuck::bytes_of(&u), binds, u.total, split_sum_trips(chunks));
            if let Some(sum) = sum {
                let dst = View { slot: out.slot, at: out.at + 4 * r.start as u64, len: sum.len };
                self.steps.push(Step::Copy { src: sum, dst });
            }
        }
        Ok(())
    }
}

/// The program of `Context::bias_grad`: `dB[k] = Σ_{n,p,q} dY[n, k, p, q]` for dY of `[n, k, p, q]`
/// (in `layout`) of `elem`, in `f32` or narrowed to a 16-bit `out` — the batch in chunks that fit a
/// binding, each chunk's positions reduced in fixed ranges, the chunks added in order.
///
/// # Errors
/// A sample beyond one binding; sizes beyond `u32`; the program's [`Program::check`].
pub fn bias_grad(dims: [usize; 4], layout: Layout, elem: Elem, out: Elem, profile: &AdapterProfile) -> Result<Program> {
    let [n, k, p, q] = dims;
    if n == 0 && k > 0 {
        // An empty batch: dB = 0, as PyTorch gives, and nothing to dispatch.
        let mut prog =
            Program::new(format!("bias gradient of an empty dY {dims:?}"), vec![0], vec![out.buffer_bytes(k)]);
        prog.steps.push(Step::Clear { dst: prog.whole(Slot::Output(0)) });
        return Ok(prog);
    }
    // dB depends only on dY: a 1×1 layer over a P×Q input with K groups has exactly dY's shape.
    let geo = Conv2dGeometry::new(n, k, [p, q], k, [1, 1], Conv2dParams::default().groups(k))?;
    let ys = k * p * q;
    let nb = super::bindings::check_op_chunks(&geo, ys, elem, profile)?;
    let what = format!("bias gradient of dY {dims:?} ({layout:?}, {elem})");
    let mut prog = Program::new(what, vec![elem.buffer_bytes(n * ys)], vec![out.buffer_bytes(k)]);
    let limit = profile.max_binding_bytes;
    let result = if out == Elem::F32 { prog.whole(Slot::Output(0)) } else { prog.temp("result in f32", 4 * k as u64) };
    prog.reduce_chunks(&geo, nb, result, k, limit, |prog, chunk, n0, dst| {
        let dy = prog.operand(Slot::Input(0), n * ys, elem, layout, n0, [chunk.n, k, p * q], profile)?;
        // Ranges of each filter's N·P·Q positions, added in order where there are several.
        let r = super::loops::bias_grad(chunk.n * p * q);
        prog.split_reduction("conv2d_bias_grad", chunk, r, vec![dy], dst, k, r.chunk + 1)
    })?;
    if out.is_half() {
        prog.narrow(result, 0, Slot::Output(0), k, 0, k, out, profile.half, limit)?;
    }
    prog.check(limit)?;
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernels(p: &Program) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::Pass(p) => p.kernel.to_string(),
                Step::Copy { .. } => "copy".into(),
                Step::Clear { .. } => "clear".into(),
                Step::Submit => "submit".into(),
            })
            .collect()
    }

    /// The cast programs, pass by pass: a same-type cast is one copy; a tensor that fits one binding is
    /// one conversion; the probe's 1,617-element input under a 2 KiB binding runs in pieces of 512,
    /// each 16-bit side through a window of its words.
    #[test]
    fn cast_programs_table() {
        let path = HalfPath::Bits;
        let p = cast(10, Elem::F16, Elem::F16, path, 2048).unwrap();
        assert_eq!(kernels(&p), ["copy"]);
        let p = cast(100, Elem::F32, Elem::F16, path, 2048).unwrap();
        assert_eq!(kernels(&p), ["narrow", "submit"]);
        assert!(matches!(&p.steps[0], Step::Pass(q) if q.variant == Variant::narrow(Elem::F16, path)));
        assert_eq!((p.inputs[0], p.outputs[0]), (400, 200));
        let p = cast(100, Elem::Bf16, Elem::F32, path, 2048).unwrap();
        assert_eq!(kernels(&p), ["widen", "copy", "submit"]);
        assert_eq!(p.temps, [Temp { what: "widened half-precision operand", bytes: 400 }]);

        let p = cast(1617, Elem::F16, Elem::Bf16, path, 2048).unwrap();
        let piece = ["copy", "widen", "copy", "narrow", "copy", "submit"];
        assert_eq!(kernels(&p), piece.repeat(4), "{p}");
        // Every binding within 2 KiB; the windows of the last piece (elements 1536..1617).
        for s in &p.steps {
            if let Step::Pass(q) = s {
                assert!(q.binds.iter().all(|v| v.len <= 2048), "{p}");
            }
        }
        let Step::Copy { src, dst } = p.steps[18] else { panic!("{p}") };
        assert_eq!((src.slot, src.at, src.len, dst.slot), (Slot::Input(0), 768 * 4, 41 * 4, Slot::Temp(10)));
        // Whole buffers where they fit: a 4 KiB binding holds the 16-bit tensors.
        let p = cast(1617, Elem::F16, Elem::Bf16, path, 4096).unwrap();
        assert_eq!(kernels(&p), ["widen", "narrow", "submit"].repeat(2));
    }

    #[test]
    fn check_names_the_pass_that_binds_too_much_and_refuses_bad_views() {
        let mut p = cast(1000, Elem::F32, Elem::F16, HalfPath::Bits, 1 << 20).unwrap();
        let e = p.check(1024).unwrap_err();
        assert!(matches!(&e, Error::DeviceLimit { needed: 4000, .. }), "{e}");
        assert!(e.to_string().contains("narrow of cast"), "{e}");
        p.steps
            .push(Step::Copy { src: View { slot: Slot::Input(0), at: 3996, len: 8 }, dst: p.whole(Slot::Output(0)) });
        assert!(matches!(p.check(1 << 20), Err(Error::Overflow { .. })));
    }

    #[test]
    fn a_program_prints_pass_by_pass_with_each_binding() {
        let text = cast(1617, Elem::F16, Elem::Bf16, HalfPath::Bits, 2048).unwrap().to_string();
        assert!(text.starts_with("program: cast of 1617 elements from f16 to bf16\n"), "{text}");
        assert!(
            text.contains("pass widen Widen(F16, Bits): t1[0..1024), t1[0..1024), t0[0..2048) (512 invocations)"),
            "{text}"
        );
        assert!(text.contains("copy t2[0..1024) → out0[0..1024)"), "{text}");
    }

    fn profile(class: crate::plan::DeviceClass, limit: u64) -> AdapterProfile {
        AdapterProfile::new(true, Some((8, 8)), limit, Some(class))
    }

    /// The bias gradient's programs: whole NCHW f32 is one pass (one range of positions); an NHWC
    /// f16 batch that chunks under 2 KiB widens each chunk's window, transposes it, reduces, copies
    /// the chunk's sums into their slot and submits, then adds the slots and narrows.
    #[test]
    fn bias_grad_programs_table() {
        use crate::plan::DeviceClass::{Cpu, Gpu};
        let p = bias_grad([2, 3, 4, 5], Layout::Nchw, Elem::F32, Elem::F32, &profile(Cpu, 128 << 20)).unwrap();
        assert_eq!(kernels(&p), ["conv2d_bias_grad"], "{p}");
        assert!(p.temps.is_empty());
        // 11 samples of 3×7×7 (147 halves) under 2 KiB: chunks of 3, four chunks.
        for class in [Cpu, Gpu] {
            let p = bias_grad([11, 3, 7, 7], Layout::Nhwc, Elem::F16, Elem::F16, &profile(class, 2048)).unwrap();
            let transpose = if class == Gpu { "transpose" } else { "transpose_rows" };
            let chunk = ["copy", "widen", transpose, "conv2d_bias_grad", "copy", "submit"];
            let mut want: Vec<&str> = chunk.repeat(4);
            want.extend(["split_sum", "narrow"]);
            assert_eq!(kernels(&p), want, "{class:?}\n{p}");
            assert!(p.temps.iter().all(|t| t.bytes <= 2048), "{p}");
        }
        // Whole f16 batch under the default limit: the tensor is bound as it is.
        let p = bias_grad([11, 3, 7, 7], Layout::Nchw, Elem::F16, Elem::F32, &profile(Cpu, 128 << 20)).unwrap();
        assert_eq!(kernels(&p), ["widen", "conv2d_bias_grad"], "{p}");
        assert!(matches!(&p.steps[0], Step::Pass(q) if q.binds[0] == View { slot: Slot::Input(0), at: 0, len: 3236 }));
    }
}
