//! The programs of the three convolutions: the forward pass, the weight gradient and the input
//! gradient of a layer, for its layout, the operands' dtype and the result's, on a profile with a
//! strategy (the context's, or the tuner's pick). Each is the whole of the operation's device work,
//! as plain data ([`Program`]): the operands read as the kernels take them (whole, a batch chunk
//! copied out, widened from 16 bits, transposed from channels last), the plan's passes per chunk, the
//! chunk's result put in place (copied, transposed back, narrowed), and for a reduction over the batch
//! the chunks' results added in order. Built and checked without a device; `src/gpu/engine.rs` runs it.

use crate::elem::Elem;
use crate::error::Result;
use crate::geometry::{Conv2dGeometry, Conv2dParams, ConvTranspose2dGeometry, Layout, u32_of};
use crate::plan::gemm::axis_phases;
use crate::plan::loops;
use crate::plan::program::{Program, Slot, View};
use crate::plan::uniform::{ConvUniform, FLAG_BIAS, ForwardTileUniform, GemmUniform, GradTileUniform, PrepUniform};
use crate::plan::variant::{Load, Pad, Variant};
use crate::plan::{
    AdapterProfile, ConvGemm, DySource, ForwardPlan, ForwardTiles, InputGradPlan, InputGradTiles, Op, Strategy,
    WeightGradGemm, WeightGradPlan, WeightGradTiles,
};

/// How an operation reads its operands: the loads of its kernels and the batch chunking, as `f32`
/// elements per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) load: Load,
    pub(crate) per_sample: usize,
}

/// The route of `op` on `geo` (NCHW) in `layout` with operands of `elem`: a GEMM plan reads 16-bit
/// operands in place, in NCHW, where the whole batch fits one binding at their size (the result in
/// `f32`); otherwise the operands are widened per chunk, chunked as `f32` (`f32_per_sample`).
///
/// # Errors
/// The invariant of [`crate::plan::bindings`]: a sample or a pass beyond the binding limit.
pub(crate) fn route(
    op: Op,
    geo: &Conv2dGeometry,
    layout: Layout,
    elem: Elem,
    gemm: bool,
    f32_per_sample: usize,
    profile: &AdapterProfile,
) -> Result<Route> {
    let mut route = Route { load: Load::F32, per_sample: f32_per_sample };
    if elem.is_half() && gemm && layout == Layout::Nchw {
        let per_sample = super::gemm_sample_bytes(op, geo, elem).div_ceil(4);
        if super::batch_chunk(geo, per_sample, profile)? >= geo.n {
            route = Route { load: Load::of(elem, profile.half), per_sample };
        }
    }
    super::bindings::check_op(op, geo, elem, route.load.elem.is_half(), route.per_sample, profile)?;
    Ok(route)
}

/// The weights of `geo` widened or transposed into `f32`: one binding.
fn weights_fit(geo: &Conv2dGeometry, profile: &AdapterProfile) -> Result<()> {
    let bytes = 4 * (geo.k * geo.channels_per_group() * geo.s * geo.t) as u64;
    super::bindings::fits("weights W in f32", bytes, profile.max_binding_bytes)
}

/// The description of a program: the op, the layer, the dtypes.
fn title(op: Op, geo: &Conv2dGeometry, elem: Elem, out: Elem) -> String {
    format!("{} of {} ({:?}), {elem} operands, {out} result", op.name(), geo.describe(), geo.params.layout)
}

/// The program of `Context::forward_into`: `Y = X ⋆ W (+ b)` for `geo` in its own layout, the
/// operands (and the bias, where `bias`) of `elem`, `Y` of `out`. Inputs: X, W and the bias; output Y.
///
/// # Errors
/// A forced strategy the layer cannot run; a sample, the weights or a pass beyond the binding limit;
/// sizes beyond `u32`.
pub fn forward(
    geo: &Conv2dGeometry,
    bias: bool,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
) -> Result<Program> {
    let what = title(Op::Forward, geo, elem, out);
    forward_framed(geo, Frame::none(geo, Op::Forward), bias, elem, out, profile, strategy, what)
}

/// The program of `Context::conv_transpose_input_grad`: `dX = dY ⋆ W`, the forward pass of the
/// convolution `t` is computed as, on dY without the rows and columns only the bias reaches. Inputs:
/// dY and W; output dX.
///
/// # Errors
/// As [`forward`].
pub fn transpose_input_grad(
    t: &ConvTranspose2dGeometry,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
) -> Result<Program> {
    let frame = Frame { src: t.out, ..Frame::none(&t.conv, Op::Forward) };
    let what = transposed_title("input gradient", t, elem, out);
    forward_framed(&t.conv, frame, false, elem, out, profile, strategy, what)
}

#[allow(clippy::too_many_arguments)] // the layer, its frame, the dtypes, where it runs, its name
fn forward_framed(
    geo: &Conv2dGeometry,
    frame: Frame,
    bias: bool,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
    what: String,
) -> Result<Program> {
    if geo.n == 0 {
        return Ok(empty_batch(what, geo, bias, elem, out, Op::Forward));
    }
    let plan = super::forward(geo, profile, strategy)?;
    let layout = geo.params.layout;
    let g = geo.nchw();
    let ws = g.k * g.channels_per_group() * g.s * g.t;
    let mut inputs = vec![elem.buffer_bytes(g.n * frame.src_len(g.c)), elem.buffer_bytes(ws)];
    if bias {
        inputs.push(elem.buffer_bytes(g.k));
    }
    let mut p = Program::new(what, inputs, vec![out.buffer_bytes(g.n * g.k * g.p * g.q)]);
    let limit = profile.max_binding_bytes;
    let (flags, b) = p.bias(bias, g.k, elem, profile)?;
    weights_fit(&g, profile)?;
    let gemm = matches!(plan, ForwardPlan::Gemm(_)) && !frame.crops([g.h, g.w]);
    let per_sample = plan.per_sample(&g).max(frame.src_len(g.c));
    let route = route(Op::Forward, &g, layout, elem, gemm, per_sample, profile)?;
    let w = p.read(Slot::Input(1), ws, elem, layout, 0, [g.k, g.channels_per_group(), g.s * g.t], route, profile)?;
    let io = Io { elem, out, layout, route, src: [g.c, g.h, g.w], dst: [g.k, g.p, g.q], frame };
    p.each_chunk(&g, io, profile, |p, chunk, x, y| match &plan {
        ForwardPlan::Direct => {
            let trips = plan.loop_trips(&g);
            p.direct("conv2d_forward", chunk, flags, vec![x, w, b], y, chunk.n * g.k * g.p * g.q, trips)
        }
        ForwardPlan::Tiled(t) => {
            let xr = match t.read.pad {
                Pad::Copy => p.padded_input(chunk, x, t.read.wp)?,
                Pad::Mask => x,
            };
            p.forward_tiles(chunk, t, flags, [xr, w, b, y])
        }
        ForwardPlan::Gemm(gm) => {
            let u = GemmUniform::forward(chunk, flags, gm)?;
            p.conv_gemm(gm, route.load, u, [x, w, b, y], plan.loop_trips(&g))
        }
    })?;
    p.check(limit)?;
    Ok(p)
}

/// The program of `Context::weight_grad_into`: `dW = Σ_n X ⋆ dY` for `geo` in its own layout, X and
/// dY of `elem`, dW of `out`. Inputs: X and dY; output dW. Over batch chunks each chunk's dW goes to
/// its slot and the slots are added in order, so the bits do not depend on timing; a chunk of fewer
/// samples is planned anew with the layer's strategy (never one tuned for the chunk's batch).
///
/// # Errors
/// As [`forward`].
pub fn weight_grad(
    geo: &Conv2dGeometry,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
) -> Result<Program> {
    let what = title(Op::WeightGrad, geo, elem, out);
    weight_grad_framed(geo, Frame::none(geo, Op::WeightGrad), elem, out, profile, strategy, what)
}

/// The program of `Context::conv_transpose_weight_grad`: the weight gradient of the convolution `t`
/// is computed as, with dY (without the rows only the bias reaches) as its input and X as its output
/// gradient. Inputs: dY and X; output dW.
///
/// # Errors
/// As [`forward`].
pub fn transpose_weight_grad(
    t: &ConvTranspose2dGeometry,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
) -> Result<Program> {
    let frame = Frame { src: t.out, ..Frame::none(&t.conv, Op::WeightGrad) };
    let what = transposed_title("weight gradient", t, elem, out);
    weight_grad_framed(&t.conv, frame, elem, out, profile, strategy, what)
}

fn weight_grad_framed(
    geo: &Conv2dGeometry,
    frame: Frame,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
    what: String,
) -> Result<Program> {
    if geo.n == 0 {
        return Ok(empty_batch(what, geo, false, elem, out, Op::WeightGrad));
    }
    let layout = geo.params.layout;
    let g = geo.nchw();
    let plan = super::weight_grad(&g, profile, strategy)?;
    let (xs, ys) = (frame.src_len(g.c), g.k * g.p * g.q);
    let taps = [g.k, g.channels_per_group(), g.s * g.t];
    let len = taps.iter().product::<usize>();
    let inputs = vec![elem.buffer_bytes(g.n * xs), elem.buffer_bytes(g.n * ys)];
    let mut p = Program::new(what, inputs, vec![out.buffer_bytes(len)]);
    let limit = profile.max_binding_bytes;
    let crop = frame.crops([g.h, g.w]);
    let gemm = matches!(plan, WeightGradPlan::Gemm(_)) && !crop;
    let route = route(Op::WeightGrad, &g, layout, elem, gemm, plan.per_sample(&g).max(xs), profile)?;
    let (dw32, dwn) = p.write_to(Slot::Output(0), out, len, 0, taps, layout);
    let nb = super::batch_chunk(&g, route.per_sample, profile)?;
    p.reduce_chunks(&g, nb, dwn, len, limit, |p, chunk, n0, dst| {
        let [sh, sw] = frame.src;
        let x = p.read(Slot::Input(0), g.n * xs, elem, layout, n0, [chunk.n, g.c, sh * sw], route, profile)?;
        let x = if crop { p.crop(x, [chunk.n * g.c, sh, sw], [g.h, g.w])? } else { x };
        let dy = p.read(Slot::Input(1), g.n * ys, elem, layout, n0, [chunk.n, g.k, g.p * g.q], route, profile)?;
        let chunk_plan = if chunk.n == g.n { plan } else { super::weight_grad(chunk, profile, strategy)? };
        match chunk_plan {
            WeightGradPlan::Direct(r) => {
                let trips = loops::row_trips(r.chunk, g.q);
                p.split_reduction("conv2d_weight_grad", chunk, r, vec![x, dy], dst, len, trips)
            }
            WeightGradPlan::Tiled(t) => p.weight_grad_tiles(chunk, &t, [x, dy, dst], len),
            WeightGradPlan::Gemm(t) => p.weight_grad_gemm(chunk, &t, route.load, [x, dy, dst], len),
        }
    })?;
    p.put(dw32, dwn, Slot::Output(0), out, len, 0, taps, profile)?;
    p.check(limit)?;
    Ok(p)
}

/// The program of `Context::input_grad_into`: `dX = dY ⋆ᵀ W` for `geo` in its own layout, dY and W of
/// `elem`, dX of `out`. Inputs: dY and W; output dX.
///
/// # Errors
/// As [`forward`].
pub fn input_grad(
    geo: &Conv2dGeometry,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
) -> Result<Program> {
    let what = title(Op::InputGrad, geo, elem, out);
    input_grad_framed(geo, Frame::none(geo, Op::InputGrad), false, elem, out, profile, strategy, what)
}

/// The program of `Context::conv_transpose_into`: `Y = X ⋆ᵀ W (+ b)`, the input gradient of the
/// convolution `t` is computed as, put into the frame of `t`'s output with the bias added. Inputs: X,
/// W and the bias; output Y.
///
/// # Errors
/// As [`forward`].
pub fn transpose_forward(
    t: &ConvTranspose2dGeometry,
    bias: bool,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
) -> Result<Program> {
    let frame = Frame { dst: t.out, ..Frame::none(&t.conv, Op::InputGrad) };
    let what = transposed_title("forward pass", t, elem, out);
    input_grad_framed(&t.conv, frame, bias, elem, out, profile, strategy, what)
}

#[allow(clippy::too_many_arguments)] // the layer, its frame, the dtypes, where it runs, its name
fn input_grad_framed(
    geo: &Conv2dGeometry,
    frame: Frame,
    bias: bool,
    elem: Elem,
    out: Elem,
    profile: &AdapterProfile,
    strategy: Strategy,
    what: String,
) -> Result<Program> {
    if geo.n == 0 {
        return Ok(empty_batch(what, geo, bias, elem, out, Op::InputGrad));
    }
    let plan = super::input_grad(geo, profile, strategy)?;
    let layout = geo.params.layout;
    let g = geo.nchw();
    let (xs, ys) = (g.c * g.h * g.w, g.k * g.p * g.q);
    let ws = g.k * g.channels_per_group() * g.s * g.t;
    let mut inputs = vec![elem.buffer_bytes(g.n * ys), elem.buffer_bytes(ws)];
    if bias {
        inputs.push(elem.buffer_bytes(g.c));
    }
    let mut p = Program::new(what, inputs, vec![out.buffer_bytes(g.n * frame.dst_len(g.c))]);
    let limit = profile.max_binding_bytes;
    let (_, b) = p.bias(bias, g.c, elem, profile)?;
    let frame = Frame { bias: bias.then_some(b), ..frame };
    weights_fit(&g, profile)?;
    // A framed result is written in f32 before `place`: 16-bit operands are read in place (a whole
    // batch) only where the whole batch's framed f32 result fits one binding too.
    let framed = frame.dst != [g.h, g.w] || frame.bias.is_some();
    let whole_frame = 4 * (g.n * frame.dst_len(g.c)) as u64;
    let gemm = matches!(plan, InputGradPlan::Gemm(_)) && (!framed || whole_frame <= limit);
    let per_sample = plan.per_sample(&g).max(frame.dst_len(g.c));
    let route = route(Op::InputGrad, &g, layout, elem, gemm, per_sample, profile)?;
    let w = p.read(Slot::Input(1), ws, elem, layout, 0, [g.k, g.channels_per_group(), g.s * g.t], route, profile)?;
    let io = Io { elem, out, layout, route, src: [g.k, g.p, g.q], dst: [g.c, g.h, g.w], frame };
    p.each_chunk(&g, io, profile, |p, chunk, dy, dx| match &plan {
        InputGradPlan::Direct => {
            let trips = plan.loop_trips(&g);
            p.direct("conv2d_input_grad", chunk, 0, vec![dy, w], dx, chunk.n * xs, trips)
        }
        InputGradPlan::Tiled(t) => p.input_grad_tiles(chunk, t, [dy, w, dx]),
        InputGradPlan::Gemm(gm) => {
            let pr = &chunk.params;
            let rows = axis_phases(chunk.h, chunk.s, pr.stride[0], pr.dilation[0], chunk.pad.top);
            let cols = axis_phases(chunk.w, chunk.t, pr.stride[1], pr.dilation[1], chunk.pad.left);
            let none = p.whole(Slot::Unused);
            for ph in &rows {
                for pw in &cols {
                    let u = GemmUniform::input_phase(chunk, ph, pw, gm)?;
                    p.conv_gemm(gm, route.load, u, [dy, w, none, dx], plan.loop_trips(&g))?;
                }
            }
            Ok(())
        }
    })?;
    p.check(limit)?;
    Ok(p)
}

/// The program of `op` on an empty batch (`geo.n = 0`), as PyTorch defines it: nothing to compute
/// for the forward pass and the input gradient (empty results), and the weight gradient, a sum of no
/// terms, all zeros. No pass is dispatched. The operands' sizes are those of the layer (the weights
/// and a bias are still whole tensors).
fn empty_batch(what: String, geo: &Conv2dGeometry, bias: bool, elem: Elem, out: Elem, op: Op) -> Program {
    let g = geo.nchw();
    let ws = elem.buffer_bytes(g.k * g.channels_per_group() * g.s * g.t);
    let (inputs, outputs) = match op {
        Op::Forward | Op::InputGrad => {
            // Which convolution operand carries the bias: the forward pass's K, the transposed C.
            let b = if op == Op::Forward { g.k } else { g.c };
            let mut inputs = vec![0, ws];
            inputs.extend(bias.then(|| elem.buffer_bytes(b)));
            (inputs, vec![0])
        }
        Op::WeightGrad => (vec![0, 0], vec![out.buffer_bytes(g.k * g.channels_per_group() * g.s * g.t)]),
    };
    let mut p = Program::new(format!("{what} (empty batch)"), inputs, outputs);
    if op == Op::WeightGrad {
        p.steps.push(crate::plan::program::Step::Clear { dst: p.whole(Slot::Output(0)) });
    }
    p
}

/// The planes of a transposed layer's tensor around those of the convolution it is computed as
/// ([`ConvTranspose2dGeometry`]): the operand `Input(0)`'s planes `src` (cropped to the
/// convolution's when larger), the result's `dst` (the convolution's put at their origin, the rest 0),
/// and a bias added to every element of the result. A plain convolution's frame is its own planes.
#[derive(Debug, Clone, Copy)]
struct Frame {
    src: [usize; 2],
    dst: [usize; 2],
    bias: Option<View>,
}

impl Frame {
    /// No frame: the planes `op` reads and writes on `geo`.
    fn none(geo: &Conv2dGeometry, op: Op) -> Self {
        let (x, y) = ([geo.h, geo.w], [geo.p, geo.q]);
        let (src, dst) = match op {
            Op::Forward => (x, y),
            Op::WeightGrad => (x, [0, 0]),
            Op::InputGrad => (y, x),
        };
        Self { src, dst, bias: None }
    }

    /// Elements per sample of `channels` planes of the operand.
    fn src_len(&self, channels: usize) -> usize {
        channels * self.src[0] * self.src[1]
    }

    /// Elements per sample of `channels` planes of the result.
    fn dst_len(&self, channels: usize) -> usize {
        channels * self.dst[0] * self.dst[1]
    }

    /// Whether the operand is cropped to planes of `inner`.
    fn crops(&self, inner: [usize; 2]) -> bool {
        self.src != inner
    }
}

fn transposed_title(what: &str, t: &ConvTranspose2dGeometry, elem: Elem, out: Elem) -> String {
    format!("{what} of {} ({:?}), {elem} operands, {out} result", t.describe(), t.params.layout)
}

/// The program of `Context::act_bias_grad_into`: the backward of `Y = act(Z)` for dY and the saved
/// Z of `dims` (`[N, K, P, Q]`) in `layout`, all `f32`: `dZ = dY ⊙ act′(Z)` and, in the same pass,
/// `dB[k] = Σ_{n,p,q} dZ[n,k,p,q]` in the bias gradient's fixed-order ranges. Inputs: dY and Z;
/// outputs: dZ and dB. Batches beyond a binding run in chunks, their dB added in order.
///
/// # Errors
/// A zero size but the batch; a sample beyond one binding; sizes beyond `u32`.
pub fn act_bias_grad(
    dims: [usize; 4],
    layout: Layout,
    act: &crate::activation::Activation,
    profile: &AdapterProfile,
) -> Result<Program> {
    let [n, k, p, q] = dims;
    let ys = k * p * q;
    let what = format!("{act} backward and bias gradient of dY {dims:?} ({layout:?})");
    let mut prog = Program::new(what, vec![4 * (n * ys) as u64; 2], vec![4 * (n * ys) as u64, 4 * k as u64]);
    if n == 0 {
        prog.steps.push(crate::plan::program::Step::Clear { dst: prog.whole(Slot::Output(1)) });
        return Ok(prog);
    }
    // dB depends on dZ as the bias gradient on dY: the same 1×1 layer of K groups.
    let geo = Conv2dGeometry::new(n, k, [p, q], k, [1, 1], Conv2dParams::default().groups(k))?;
    let limit = profile.max_binding_bytes;
    // Three per-sample buffers (dY, Z, dZ) at most, each within the limit.
    let nb = super::bindings::check_op_chunks(&geo, ys, Elem::F32, profile)?;
    let db = prog.whole(Slot::Output(1));
    let route = Route { load: Load::F32, per_sample: ys };
    prog.reduce_chunks(&geo, nb, db, k, limit, |prog, chunk, n0, dst| {
        let dims3 = [chunk.n, k, p * q];
        let dy = prog.read(Slot::Input(0), n * ys, Elem::F32, layout, n0, dims3, route, profile)?;
        let z = prog.read(Slot::Input(1), n * ys, Elem::F32, layout, n0, dims3, route, profile)?;
        let (result, nchw) = prog.write_to(Slot::Output(0), Elem::F32, n * ys, n0, dims3, layout);
        let r = super::loops::bias_grad(chunk.n * p * q);
        let partial = (r.splits > 1).then(|| prog.temp("split-reduction partial sums", 4 * (r.splits * k) as u64));
        let u = crate::plan::uniform::ActGradUniform::new_for(chunk, r, k, act)?;
        let binds = vec![dy, z, nchw, partial.unwrap_or(dst)];
        prog.pass("act_bias_grad", bytemuck::bytes_of(&u), binds, u.total, r.chunk + 1);
        prog.sum_splits(chunk, partial, r.splits, dst, k)?;
        prog.put(result, nchw, Slot::Output(0), Elem::F32, n * ys, n0, dims3, profile)
    })?;
    prog.check(limit)?;
    Ok(prog)
}

/// What an operation that computes each sample alike reads and writes per sample: the operand
/// `Input(0)` of `elem` (the kernels' `src` = `[channels, rows, columns]`, in its frame), the output
/// `Output(0)` of `out` (the kernels' `dst`, put into its frame), in `layout`, read by the kernels of
/// `route`.
struct Io {
    elem: Elem,
    out: Elem,
    layout: Layout,
    route: Route,
    src: [usize; 3],
    dst: [usize; 3],
    frame: Frame,
}

impl Program {
    /// The batch of `g` (NCHW) in the chunks `io.route` sizes: per chunk the operand read as the
    /// kernels take it, `pass(program, chunk, operand, where to write)` for the plan's passes, the
    /// result put in its place in the output, and a submission between chunks (so that a chunk's
    /// temporaries can go before the next is made).
    fn each_chunk(
        &mut self,
        g: &Conv2dGeometry,
        io: Io,
        profile: &AdapterProfile,
        mut pass: impl FnMut(&mut Program, &Conv2dGeometry, View, View) -> Result<()>,
    ) -> Result<()> {
        let ([sc, sh, sw], [dc, dh, dw]) = (io.src, io.dst);
        let (f, [fh, fw]) = (io.frame, io.frame.dst);
        let (src_total, dst_total) = (g.n * f.src_len(sc), g.n * f.dst_len(dc));
        let nb = super::batch_chunk(g, io.route.per_sample, profile)?;
        for n0 in (0..g.n).step_by(nb) {
            let chunk = Conv2dGeometry { n: nb.min(g.n - n0), ..*g };
            let dims = [chunk.n, sc, f.src_len(1)];
            let src = self.read(Slot::Input(0), src_total, io.elem, io.layout, n0, dims, io.route, profile)?;
            let src =
                if f.crops([sh, sw]) { self.crop(src, [chunk.n * sc, f.src[0], f.src[1]], [sh, sw])? } else { src };
            let dims = [chunk.n, dc, fh * fw];
            let (result, nchw) = self.write_to(Slot::Output(0), io.out, dst_total, n0, dims, io.layout);
            if f.dst == [dh, dw] && f.bias.is_none() {
                pass(self, &chunk, src, nchw)?;
            } else {
                let inner = self.temp("result before its frame", 4 * (chunk.n * dc * dh * dw) as u64);
                pass(self, &chunk, src, inner)?;
                self.place(inner, [chunk.n * dc, dh, dw], [fh, fw], f.bias.map(|b| (dc, b)), nchw)?;
            }
            self.put(result, nchw, Slot::Output(0), io.out, dst_total, n0, dims, profile)?;
            if nb < g.n {
                self.submit();
            }
        }
        Ok(())
    }

    /// Samples `[n0, n0 + n)` of the operand `slot` as the kernels of `route` read it: a 16-bit operand
    /// read in place is its own slot (the route chose this only for a whole NCHW batch); otherwise
    /// `f32` in NCHW ([`Program::operand`]).
    #[allow(clippy::too_many_arguments)] // the operand, its chunk, and how to read it
    fn read(
        &mut self,
        slot: Slot,
        total: usize,
        elem: Elem,
        layout: Layout,
        n0: usize,
        dims: [usize; 3],
        route: Route,
        profile: &AdapterProfile,
    ) -> Result<View> {
        if route.load.elem.is_half() {
            return Ok(self.whole(slot));
        }
        self.operand(slot, total, elem, layout, n0, dims, profile)
    }

    /// Where the kernels write samples `[n0, n0 + n)` (`dims` = `[n, c, hw]`) of the output `slot` of
    /// `total` elements of `elem` in `layout`: the chunk's `f32` result (the slot itself when the chunk
    /// is all of an `f32` output, else a temporary), and the NCHW buffer the kernels write (that
    /// result itself where the layout's bytes are NCHW's, else a temporary transposed into it).
    fn write_to(
        &mut self,
        slot: Slot,
        elem: Elem,
        total: usize,
        n0: usize,
        [n, c, hw]: [usize; 3],
        layout: Layout,
    ) -> (View, View) {
        let len = n * c * hw;
        let result = if elem == Elem::F32 && n0 == 0 && len == total {
            self.whole(slot)
        } else {
            self.temp(if len == total { "result in f32" } else { "batch chunk output" }, 4 * len as u64)
        };
        let nchw = if crate::plan::program::nchw_bytes(layout, c, hw) {
            result
        } else {
            self.temp("output in NCHW", 4 * len as u64)
        };
        (result, nchw)
    }

    /// Puts the chunk the kernels wrote into `nchw` ([`Program::write_to`]) in its place in the output
    /// `slot`: transposed back into `result` where the layout needs it, then copied, or narrowed into a
    /// 16-bit output.
    #[allow(clippy::too_many_arguments)] // the two buffers, the output and the chunk's place in it
    fn put(
        &mut self,
        result: View,
        nchw: View,
        slot: Slot,
        elem: Elem,
        total: usize,
        n0: usize,
        [n, c, hw]: [usize; 3],
        profile: &AdapterProfile,
    ) -> Result<()> {
        if nchw != result {
            self.transpose(nchw, result, [n, c, hw], profile)?;
        }
        let (off, len) = (n0 * c * hw, n * c * hw);
        if elem.is_half() {
            self.narrow(result, 0, slot, total, off, len, elem, profile.half, profile.max_binding_bytes)
        } else {
            if result.slot != slot {
                let dst = View { slot, at: 4 * off as u64, len: result.len };
                self.steps.push(crate::plan::program::Step::Copy { src: result, dst });
            }
            Ok(())
        }
    }

    /// The bias the kernels read (`Input(2)` where `bias`, widened once whole from 16 bits) and the
    /// flags that say so; where there is none, the unused binding.
    fn bias(&mut self, bias: bool, len: usize, elem: Elem, profile: &AdapterProfile) -> Result<(u32, View)> {
        if !bias {
            return Ok((0, self.whole(Slot::Unused)));
        }
        if !elem.is_half() {
            return Ok((FLAG_BIAS, self.whole(Slot::Input(2))));
        }
        let t = self.temp("widened half-precision operand", 4 * len as u64);
        self.widen(Slot::Input(2), len, 0, len, t, elem, profile.half, profile.max_binding_bytes)?;
        Ok((FLAG_BIAS, t))
    }

    /// `place.wgsl`: the `planes` planes of `h × w` in `src` put at the origin of planes of `hp × wp`
    /// in `dst` (zeros beyond them, the part beyond `dst`'s left out), with `bias = (channels, b)`
    /// adding `b[plane % channels]` to every element.
    fn place(
        &mut self,
        src: View,
        [planes, h, w]: [usize; 3],
        [hp, wp]: [usize; 2],
        bias: Option<(usize, View)>,
        dst: View,
    ) -> Result<()> {
        let channels = bias.map_or(1, |(c, _)| c);
        let shape = Conv2dGeometry::new(planes / channels, channels, [h, w], 1, [1, 1], Conv2dParams::new())?;
        let u = PrepUniform::place(&shape, planes * hp, hp, wp, bias.is_some())?;
        let b = bias.map_or_else(|| self.whole(Slot::Unused), |(_, b)| b);
        // One invocation writes a row of `wp`.
        self.pass("place", bytemuck::bytes_of(&u), vec![src, b, dst], u.total, wp);
        Ok(())
    }

    /// The `planes` planes of `h × w` in `src` cropped to their first `hp × wp`, in a temporary.
    fn crop(&mut self, src: View, [planes, h, w]: [usize; 3], [hp, wp]: [usize; 2]) -> Result<View> {
        let t = self.temp("operand without the frame", 4 * (planes * hp * wp) as u64);
        self.place(src, [planes, h, w], [hp, wp], None, t)?;
        Ok(t)
    }

    /// A direct kernel, one invocation per output element (`total`), each looping at most `trips`
    /// times: the uniform, `inputs`, `out`.
    #[allow(clippy::too_many_arguments)] // the kernel, the layer, its bindings, its loops
    fn direct(
        &mut self,
        kernel: &'static str,
        geo: &Conv2dGeometry,
        flags: u32,
        inputs: Vec<View>,
        out: View,
        total: usize,
        trips: usize,
    ) -> Result<()> {
        let u = ConvUniform::new(geo, flags, u32_of(total)?);
        let mut binds = inputs;
        binds.push(out);
        self.pass(kernel, bytemuck::bytes_of(&u), binds, u.total, trips);
        Ok(())
    }

    /// `x`, the `N×C×H×W` input of `geo`, copied into a zero-padded `N×C×(H+top+bottom)×wp` temporary
    /// (`wp ≥ W + left + right`, a multiple of 4 for the vec4 stores of `pad_input_vec4.wgsl`).
    fn padded_input(&mut self, geo: &Conv2dGeometry, x: View, wp: usize) -> Result<View> {
        let hp = geo.padded_size()[0];
        let xp = self.temp("padded input", 4 * (geo.n * geo.c * hp * wp) as u64);
        let u = PrepUniform::planes(geo, geo.n * geo.c * hp, hp, wp)?;
        let kernel = if geo.w.is_multiple_of(4) { "pad_input_vec4" } else { "pad_input" };
        // One invocation copies a padded row.
        self.pass(kernel, bytemuck::bytes_of(&u), vec![x, xp], u.total, wp + 1);
        Ok(xp)
    }

    /// A tiled forward kernel of plan `t` over the layer `geo` (one batch chunk): `[x, w, bias, y]`
    /// the planes `t.read` describes, the weights `K×(C/G)×S×T`, the bias and the output.
    fn forward_tiles(
        &mut self,
        geo: &Conv2dGeometry,
        t: &ForwardTiles,
        flags: u32,
        [x, w, bias, y]: [View; 4],
    ) -> Result<()> {
        let u = ForwardTileUniform::tiles(geo, t, flags)?;
        let trips = t.loop_trips(geo);
        match (t.variant, t.kpad) {
            (Variant::ForwardVec4(_), Some(kpad)) => {
                // The tile's filters contiguous in each tap, for the vec4 weight loads.
                let taps = geo.channels_per_group() * geo.s * geo.t;
                let len = geo.params.groups * taps * kpad;
                let wt = self.temp("transposed weights", 4 * len as u64);
                let ut = PrepUniform::weight_tiles(geo, kpad, len)?;
                self.pass("transpose_weights", bytemuck::bytes_of(&ut), vec![w, wt], ut.total, 0);
                let binds = vec![x, wt, bias, y];
                self.pass_in("conv2d_forward_vec4", t.variant, bytemuck::bytes_of(&u), binds, u.total, trips);
            }
            _ => {
                let binds = vec![x, w, bias, y];
                self.pass_in("conv2d_forward_tiled", t.variant, bytemuck::bytes_of(&u), binds, u.total, trips);
            }
        }
        Ok(())
    }

    /// `conv2d_gemm.wgsl` of `plan` with the uniform `u`: `[src, w, bias, out]`, each invocation
    /// looping at most `trips` times.
    fn conv_gemm(&mut self, plan: &ConvGemm, load: Load, u: GemmUniform, binds: [View; 4], trips: usize) -> Result<()> {
        let invocations = u32_of(u.total as usize * plan.tile.threads())?;
        let variant = plan.variant().with_load(load);
        self.pass_in("conv2d_gemm", variant, bytemuck::bytes_of(&u), binds.into(), invocations, trips);
        Ok(())
    }

    /// The tiled weight gradient of plan `t` on one batch chunk: X padded, the tile over the split
    /// reduction, then the splits added in order. `[x, dy, dw]`; `len` elements of dW.
    fn weight_grad_tiles(
        &mut self,
        geo: &Conv2dGeometry,
        t: &WeightGradTiles,
        [x, dy, dw]: [View; 3],
        len: usize,
    ) -> Result<()> {
        let xp = self.padded_input(geo, x, t.wp)?;
        let u = GradTileUniform::tiles(geo, t)?;
        let partial = (t.splits > 1).then(|| self.temp("split-reduction partial sums", 4 * (t.splits * len) as u64));
        let out = partial.unwrap_or(dw);
        let trips = loops::row_trips(t.chunk, geo.q);
        match t.qp {
            Some(qp) => {
                // dY with its rows padded to Qp, a multiple of 4, for aligned vec4 loads: pad_input over
                // the N·K planes of P×Q with no padding but the extra columns. Rows already of a
                // multiple of 4 are read in place.
                let dyp = if qp == geo.q {
                    dy
                } else {
                    let planes = Conv2dGeometry::new(geo.n, geo.k, [geo.p, geo.q], 1, [1, 1], Conv2dParams::new())?;
                    let dyp = self.temp("padded output gradient", 4 * (geo.n * geo.k * geo.p * qp) as u64);
                    let ud = PrepUniform::planes(&planes, geo.n * geo.k * geo.p, geo.p, qp)?;
                    self.pass("pad_input", bytemuck::bytes_of(&ud), vec![dy, dyp], ud.total, qp + 1);
                    dyp
                };
                let binds = vec![xp, xp, dyp, dyp, out];
                self.pass_in("conv2d_weight_grad_vec4", t.variant, bytemuck::bytes_of(&u), binds, u.total, trips);
            }
            None => {
                let binds = vec![xp, dy, out];
                self.pass_in("conv2d_weight_grad_tiled", t.variant, bytemuck::bytes_of(&u), binds, u.total, trips);
            }
        }
        self.sum_splits(geo, partial, t.splits, dw, len)
    }

    /// The GEMM weight gradient of plan `t` on one batch chunk: the tiles over the split reduction,
    /// then the ranges added in order. `[x, dy, dw]`; `len` elements of dW.
    fn weight_grad_gemm(
        &mut self,
        geo: &Conv2dGeometry,
        t: &WeightGradGemm,
        load: Load,
        [x, dy, dw]: [View; 3],
        len: usize,
    ) -> Result<()> {
        let u = GradTileUniform::gemm(geo, t)?;
        let partial = (t.splits > 1).then(|| self.temp("split-reduction partial sums", 4 * (t.splits * len) as u64));
        let invocations = u32_of(u.total as usize * t.tile.threads())?;
        let binds = vec![x, dy, partial.unwrap_or(dw)];
        self.pass_in(
            "conv2d_weight_grad_gemm",
            t.variant().with_load(load),
            bytemuck::bytes_of(&u),
            binds,
            invocations,
            t.loop_trips(),
        );
        self.sum_splits(geo, partial, t.splits, dw, len)
    }

    /// The tiled input gradient of plan `t` on one batch chunk `geo`: the filters flipped, dY brought
    /// into the form `t.source` names, then the forward kernel. `[dy, w, dx]`.
    fn input_grad_tiles(&mut self, geo: &Conv2dGeometry, t: &InputGradTiles, [dy, w, dx]: [View; 3]) -> Result<()> {
        let len = geo.c * geo.filters_per_group() * geo.s * geo.t;
        let flipped = self.temp("flipped weights", 4 * len as u64);
        let u = ConvUniform::new(geo, 0, u32_of(len)?);
        self.pass("flip_weights", bytemuck::bytes_of(&u), vec![w, flipped], u.total, 0);
        let fwd = Conv2dGeometry { n: geo.n, ..t.fwd };
        let f = t.frame;
        let (hp, wp) = (t.tiles.read.hp, t.tiles.read.wp);
        let input = match t.source {
            DySource::InPlace => dy,
            DySource::Framed => {
                // Nothing to spread: dY in its frame of zeros is a padded input.
                let frame = Conv2dParams::new().padding_sides(f.top, f.bottom, f.left, f.right);
                let planes = Conv2dGeometry::new(geo.n, geo.k, [geo.p, geo.q], 1, [1, 1], frame)?;
                self.padded_input(&planes, dy, wp)?
            }
            DySource::Spread => {
                let spread = self.temp("spread output gradient", 4 * (geo.n * geo.k * hp * wp) as u64);
                let u = PrepUniform::planes(geo, geo.n * geo.k * hp, hp, wp)?;
                self.pass("scatter_dy", bytemuck::bytes_of(&u), vec![dy, spread], u.total, wp + 1);
                spread
            }
        };
        let none = self.whole(Slot::Unused);
        self.forward_tiles(&fwd, &t.tiles, 0, [input, flipped, none, dx])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::plan::DeviceClass::{self, Cpu, Gpu};
    use crate::plan::program::{Step, Temp};

    fn profile(class: DeviceClass, limit: u64) -> AdapterProfile {
        AdapterProfile::new(true, Some((8, 8)), limit, Some(class))
    }

    /// The steps of a program as names: a pass's kernel, "copy" or "submit".
    fn kernels(p: &Program) -> Vec<&'static str> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::Pass(p) => p.kernel,
                Step::Copy { .. } => "copy",
                Step::Clear { .. } => "clear",
                Step::Submit => "submit",
            })
            .collect()
    }

    fn passes(p: &Program) -> impl Iterator<Item = &crate::plan::program::Pass> {
        p.steps.iter().filter_map(|s| if let Step::Pass(q) = s { Some(q) } else { None })
    }

    const BIG: u64 = 128 << 20;

    fn layer(n: usize, c: usize, hw: usize, k: usize, st: usize, params: Conv2dParams) -> Conv2dGeometry {
        Conv2dGeometry::new(n, c, [hw, hw], k, [st, st], params).unwrap()
    }

    /// Whole NCHW f32 layers: the forward pass is its kernel alone on each profile, bound to the
    /// operation's own buffers (the CPU profile's register tile reads X in place, masked; the GPU
    /// profile's GEMM likewise).
    #[test]
    fn whole_nchw_f32_forward_passes_are_the_kernel_on_the_operands() {
        let geo = layer(2, 8, 16, 8, 3, Conv2dParams::new().padding(1, 1));
        let p = forward(&geo, true, Elem::F32, Elem::F32, &profile(Cpu, BIG), Strategy::Auto).unwrap();
        assert_eq!(p.inputs, [4 * 2 * 8 * 256, 4 * 8 * 8 * 9, 4 * 8]);
        assert_eq!(p.outputs, [4 * 2 * 8 * 256]);
        let q = passes(&p).last().unwrap();
        assert!(q.kernel.starts_with("conv2d_forward"), "{p}");
        assert_eq!(q.binds.last().unwrap().slot, Slot::Output(0), "{p}");
        assert!(q.binds.iter().any(|v| v.slot == Slot::Input(2)), "the bias is bound: {p}");
        let p = forward(&geo, false, Elem::F32, Elem::F32, &profile(Gpu, BIG), Strategy::Auto).unwrap();
        assert_eq!(kernels(&p), ["conv2d_gemm"], "{p}");
        let Step::Pass(q) = &p.steps[0] else { unreachable!() };
        let slots: Vec<Slot> = q.binds.iter().map(|v| v.slot).collect();
        assert_eq!(slots, [Slot::Input(0), Slot::Input(1), Slot::Unused, Slot::Output(0)]);
        assert!(p.temps.is_empty());
    }

    /// An NHWC f16 forward pass that chunks (5 samples of 3×7×7 under a 2 KiB binding: chunks of one
    /// sample): the weights widened and transposed once; per chunk the sample widened, transposed to
    /// NCHW, padded, the weights transposed to vec4 tiles, the kernel, the result transposed back and
    /// narrowed into its place, then a submission. No binding over 2 KiB.
    #[test]
    fn an_nhwc_f16_forward_that_chunks_is_each_sample_converted_computed_and_put_back() {
        let geo = layer(5, 3, 7, 3, 3, Conv2dParams::new().padding(1, 1).layout(Layout::Nhwc));
        let pr = profile(Cpu, 2048);
        let p = forward(&geo, false, Elem::F16, Elem::F16, &pr, Strategy::Auto).unwrap();
        let chunk = [
            "widen",
            "transpose_rows",
            "pad_input",
            "transpose_weights",
            "conv2d_forward_vec4",
            "transpose_rows",
            "narrow",
            "submit",
        ];
        let mut want = vec!["widen", "transpose_rows"];
        want.extend(chunk.repeat(5));
        assert_eq!(kernels(&p), want, "{p}");
        assert!(passes(&p).all(|q| q.binds.iter().all(|v| v.len <= 2048)), "{p}");
        // Each chunk narrows its 147 halves into its place: sample 3 starts at element 441, word 220.
        let narrows: Vec<&crate::plan::program::Pass> = passes(&p).filter(|q| q.kernel == "narrow").collect();
        assert_eq!(narrows.len(), 5);
        let u: &crate::plan::uniform::HalfUniform = bytemuck::from_bytes(&narrows[3].uniform);
        assert_eq!((u.dst_off, u.len), (441, 147));
        assert_eq!(narrows[3].variant, Variant::narrow(Elem::F16, pr.half));
        assert_eq!(p.temps[2], Temp { what: "widened half-precision operand", bytes: 4 * 147 });
    }

    /// A stride-2 input gradient: the CPU profile flips the filters, spreads dY (7×7) by the stride
    /// into its frame (16 rows of 20, a multiple of 4) and runs the forward tile over it; the GPU profile runs one GEMM per stride phase
    /// (2 × 2), each writing its own positions of dX, with no temporary at all.
    #[test]
    fn a_strided_input_gradient_on_each_profile() {
        let geo = layer(2, 16, 14, 32, 3, Conv2dParams::new().stride(2, 2).padding(1, 1));
        let p = input_grad(&geo, Elem::F32, Elem::F32, &profile(Cpu, BIG), Strategy::Auto).unwrap();
        // The vec4 tile reads its filters transposed into tiles of `kpad`.
        assert_eq!(kernels(&p), ["flip_weights", "scatter_dy", "transpose_weights", "conv2d_forward_vec4"], "{p}");
        assert_eq!(p.temps[1], Temp { what: "spread output gradient", bytes: 4 * 2 * 32 * 16 * 20 });
        assert_eq!(p.temps[0], Temp { what: "flipped weights", bytes: 4 * 16 * 32 * 9 });
        let p = input_grad(&geo, Elem::F32, Elem::F32, &profile(Gpu, BIG), Strategy::Auto).unwrap();
        assert_eq!(kernels(&p), ["conv2d_gemm"; 4], "{p}");
        assert!(p.temps.is_empty(), "{p}");
        let starts: Vec<(u32, u32)> = passes(&p)
            .map(|q| {
                let u: &GemmUniform = bytemuck::from_bytes(&q.uniform);
                (u.o_yb, u.o_xb)
            })
            .collect();
        assert_eq!(starts, [(0, 0), (0, 1), (1, 0), (1, 1)], "each phase its own rows and columns");
    }

    /// The GPU profile's weight gradient of a layer with a long reduction (N·P·Q = 2·32·32) over few
    /// weights splits it: the GEMM writes `splits × |dW|` partial sums, and `split_sum` adds them in
    /// order into dW.
    #[test]
    fn a_split_k_weight_gradient_writes_partials_then_adds_them() {
        let geo = layer(2, 16, 32, 32, 3, Conv2dParams::new().padding(1, 1));
        let p = weight_grad(&geo, Elem::F32, Elem::F32, &profile(Gpu, BIG), Strategy::Auto).unwrap();
        assert_eq!(kernels(&p), ["conv2d_weight_grad_gemm", "split_sum"], "{p}");
        let len = 32 * 16 * 9;
        let Step::Pass(gemm) = &p.steps[0] else { unreachable!() };
        let u: &GradTileUniform = bytemuck::from_bytes(&gemm.uniform);
        assert!(u.splits > 1, "{p}");
        assert_eq!(p.temps, [Temp { what: "split-reduction partial sums", bytes: 4 * u64::from(u.splits) * len }]);
        let Step::Pass(sum) = &p.steps[1] else { unreachable!() };
        assert_eq!(sum.binds[1], View { slot: Slot::Output(0), at: 0, len: 4 * len });
    }

    /// f16 operands of a whole NCHW batch are read in place by the GEMM kernels of the GPU profile
    /// (the inputs bound as they are, 16-bit), the f32 result narrowed at the end; a weight gradient
    /// whose batch chunks in f32 sums the chunks' results in order after the last chunk.
    #[test]
    fn f16_in_place_and_a_weight_gradient_over_chunks() {
        let geo = layer(4, 8, 16, 8, 3, Conv2dParams::new().stride(2, 2).padding(1, 1));
        let p = forward(&geo, false, Elem::F16, Elem::F16, &profile(Gpu, BIG), Strategy::Auto).unwrap();
        assert_eq!(kernels(&p), ["conv2d_gemm", "narrow"], "{p}");
        let Step::Pass(q) = &p.steps[0] else { unreachable!() };
        assert_eq!(q.binds[0], View { slot: Slot::Input(0), at: 0, len: 2 * 4 * 8 * 256 });
        // 16 KiB: two samples of X in f32 per chunk, the f16 batch whole (tests/half.rs runs this).
        let p = weight_grad(&geo, Elem::F32, Elem::F32, &profile(Gpu, 16 << 10), Strategy::Auto).unwrap();
        let k = kernels(&p);
        assert_eq!(k.iter().filter(|s| **s == "submit").count(), 2, "{p}");
        assert_eq!(k.last(), Some(&"split_sum"), "{p}");
        assert_eq!(p.temps[0], Temp { what: "per-chunk partial sums", bytes: 4 * 2 * 8 * 8 * 9 });
        let p = weight_grad(&geo, Elem::F16, Elem::F32, &profile(Gpu, 16 << 10), Strategy::Auto).unwrap();
        assert!(!kernels(&p).contains(&"submit"), "in place, whole: {p}");
    }

    /// Every op of every layout, dtype and profile on layers that chunk under small bindings (and the
    /// 16-bit tensors beyond one, converted in windows) builds a program whose passes bind at most the
    /// limit — the invariant `Program::check` asserts, here over a table without an adapter.
    #[test]
    fn no_pass_of_any_program_binds_more_than_its_limit() {
        let layers = [
            layer(5, 3, 7, 3, 3, Conv2dParams::new().padding(1, 1)),
            layer(11, 4, 9, 6, 3, Conv2dParams::new().stride(2, 2).padding(1, 1)),
            layer(3, 4, 8, 4, 3, Conv2dParams::new().groups(2).dilation(2, 1).padding(2, 1)),
            layer(7, 2, 6, 5, 1, Conv2dParams::new()),
        ];
        let mut built = 0;
        for geo in layers {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                let geo = Conv2dGeometry { params: geo.params.layout(layout), ..geo };
                for elem in [Elem::F32, Elem::F16, Elem::Bf16] {
                    for class in [Cpu, Gpu] {
                        for limit in [2048, 4096, 16 << 10, BIG] {
                            let pr = profile(class, limit);
                            let programs = [
                                forward(&geo, true, elem, elem, &pr, Strategy::Auto),
                                weight_grad(&geo, elem, elem, &pr, Strategy::Auto),
                                input_grad(&geo, elem, elem, &pr, Strategy::Auto),
                            ];
                            for p in programs {
                                let p = match p {
                                    Ok(p) => p,
                                    // A sample (or the weights) beyond the limit is refused, naming
                                    // it; a pass that binds more would be a planner's bug, and fails.
                                    Err(Error::DeviceLimit { what, .. })
                                        if what.starts_with("one sample") || what.starts_with("weights W") =>
                                    {
                                        continue;
                                    }
                                    Err(e) => panic!("{}: {e}", geo.describe()),
                                };
                                for q in passes(&p) {
                                    assert!(q.binds.iter().all(|v| v.len <= limit), "{p}");
                                }
                                built += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(built > 250, "only {built} programs built");
    }

    /// A transposed layer's programs are the convolution's with its frame: the forward pass (the
    /// input gradient's kernels) writes a temporary that `place` puts into the output with the bias
    /// and the rows only the bias reaches; the gradients crop dY to the convolution's input first.
    /// Under small bindings they chunk like any other op, no pass over the limit.
    #[test]
    fn transposed_programs_frame_the_convolution_s() {
        use crate::geometry::ConvTranspose2dParams;
        // s1 d3 op2: 2 rows and 1 column beyond the convolution's 10×9 input.
        let t = ConvTranspose2dParams::new().dilation(3, 3).output_padding(2, 1);
        let geo = t.geometry([2, 2, 4, 3], [2, 3, 3, 3]).unwrap();
        assert_eq!((geo.out, [geo.conv.h, geo.conv.w]), ([12, 10], [10, 9]));
        let pr = profile(Gpu, BIG);
        let p = transpose_forward(&geo, true, Elem::F32, Elem::F32, &pr, Strategy::Auto).unwrap();
        assert_eq!(kernels(&p).last(), Some(&"place"), "{p}");
        let Some(Step::Pass(place)) = p.steps.last() else { unreachable!() };
        let slots: Vec<Slot> = place.binds.iter().map(|v| v.slot).collect();
        assert_eq!(slots[1..], [Slot::Input(2), Slot::Output(0)], "{p}");
        assert_eq!(p.outputs, [4 * 2 * 3 * 12 * 10]);
        let u: &PrepUniform = bytemuck::from_bytes(&place.uniform);
        assert_eq!((u.total, u.hp, u.wp), (2 * 3 * 12, 12, 10));
        let p = transpose_input_grad(&geo, Elem::F32, Elem::F32, &pr, Strategy::Auto).unwrap();
        assert_eq!(kernels(&p)[0], "place", "{p}");
        assert_eq!(p.inputs[0], 4 * 2 * 3 * 12 * 10);
        assert_eq!(p.temps[0], Temp { what: "operand without the frame", bytes: 4 * 2 * 3 * 10 * 9 });
        let p = transpose_weight_grad(&geo, Elem::F16, Elem::F32, &pr, Strategy::Auto).unwrap();
        assert_eq!(&kernels(&p)[..2], ["widen", "place"], "f16 read widened, then cropped: {p}");
        // Without a frame or a bias the forward pass is the input gradient's program itself.
        let plain = ConvTranspose2dParams::new().stride(2, 2).padding(1, 1).output_padding(1, 1);
        let g2 = plain.geometry([2, 4, 5, 5], [4, 3, 3, 3]).unwrap();
        assert!(!g2.extends());
        let p = transpose_forward(&g2, false, Elem::F32, Elem::F32, &pr, Strategy::Auto).unwrap();
        let q = input_grad(&g2.conv, Elem::F32, Elem::F32, &pr, Strategy::Auto).unwrap();
        assert_eq!(p.steps, q.steps);
        for class in [Cpu, Gpu] {
            for elem in [Elem::F32, Elem::F16] {
                for layout in [Layout::Nchw, Layout::Nhwc] {
                    let geo = t.layout(layout).geometry(layout.activation([4, 2, 4, 3]), layout.weights([2, 3, 3, 3]));
                    let geo = geo.unwrap();
                    let pr = profile(class, 4096);
                    for p in [
                        transpose_forward(&geo, true, elem, elem, &pr, Strategy::Auto).unwrap(),
                        transpose_input_grad(&geo, elem, elem, &pr, Strategy::Auto).unwrap(),
                        transpose_weight_grad(&geo, elem, Elem::F32, &pr, Strategy::Auto).unwrap(),
                    ] {
                        assert!(kernels(&p).contains(&"submit"), "chunks under 4 KiB: {p}");
                        assert!(passes(&p).all(|q| q.binds.iter().all(|v| v.len <= 4096)), "{p}");
                    }
                }
            }
        }
        // f16 operands the GPU profile would read in place (the whole batch fits at 16 bits) whose
        // framed f32 result does not fit a binding: read widened in chunks instead (a device with
        // 2 KiB bindings refused the first version's `place`, which bound the whole result).
        let t2 = ConvTranspose2dParams::new().dilation(3, 3).output_padding(2, 1);
        let geo = t2.geometry([7, 2, 3, 2], [2, 2, 2, 2]).unwrap();
        let p = transpose_forward(&geo, true, Elem::F16, Elem::F16, &profile(Gpu, 2048), Strategy::Auto).unwrap();
        assert!(passes(&p).all(|q| q.binds.iter().all(|v| v.len <= 2048)), "{p}");
    }

    /// The fused activation backward: one `act_bias_grad` pass binding dY, Z, dZ and dB for a whole
    /// NCHW batch (dZ written in place, dB the output itself with one range); channels last with the
    /// transposes around it; batches in chunks under a small binding, dB summed over the chunks; the
    /// separate activation in windows of the binding.
    #[test]
    fn the_fused_activation_backward_program() {
        use crate::activation::Activation;
        let act = Activation::Gelu;
        let pr = profile(Cpu, BIG);
        let p = act_bias_grad([2, 3, 5, 7], Layout::Nchw, &act, &pr).unwrap();
        assert_eq!(kernels(&p), ["act_bias_grad"], "{p}");
        let Step::Pass(q) = &p.steps[0] else { unreachable!() };
        let slots: Vec<Slot> = q.binds.iter().map(|v| v.slot).collect();
        assert_eq!(slots, [Slot::Input(0), Slot::Input(1), Slot::Output(0), Slot::Output(1)]);
        let p = act_bias_grad([2, 3, 5, 7], Layout::Nhwc, &act, &pr).unwrap();
        assert_eq!(kernels(&p).iter().filter(|k| k.starts_with("transpose")).count(), 3, "{p}");
        let p = act_bias_grad([9, 3, 7, 5], Layout::Nchw, &act, &profile(Gpu, 2048)).unwrap();
        let k = kernels(&p);
        assert!(k.contains(&"submit") && k.last() == Some(&"split_sum"), "{p}");
        assert!(passes(&p).all(|q| q.binds.iter().all(|v| v.len <= 2048)), "{p}");
        let p = crate::plan::train::activation(1000, &act, true, &profile(Cpu, 1024)).unwrap();
        assert_eq!(kernels(&p).iter().filter(|k| **k == "activate").count(), 4, "{p}");
        assert!(passes(&p).all(|q| q.binds.iter().all(|v| v.len <= 1024)), "{p}");
        let e = act_bias_grad([1, 1, 0, 3], Layout::Nchw, &act, &pr).unwrap_err();
        assert!(matches!(e, Error::ZeroDimension { .. }), "{e}");
    }

    /// The loop budget per pass: in whole NCHW `f32` programs (no copies, transposes or chunk sums)
    /// the longest pass loops exactly as long as the plan says its kernels do, for every family each
    /// profile can run; no pass of any program is over the budget; and a pass over it is refused when
    /// the program is checked, naming the pass.
    #[test]
    fn each_pass_carries_its_loop_count_within_the_budget() {
        let layers = [
            layer(2, 3, 9, 4, 3, Conv2dParams::new().padding(1, 1)),
            layer(3, 4, 12, 6, 3, Conv2dParams::new().stride(2, 2).padding(1, 1)),
            layer(2, 4, 8, 4, 3, Conv2dParams::new().groups(2).dilation(2, 1).padding(2, 1)),
            // A long reduction: the weight gradient's rows split into ranges.
            layer(64, 2, 40, 2, 3, Conv2dParams::new()),
        ];
        let strategies = [
            Strategy::Auto,
            Strategy::Reference,
            Strategy::Force(crate::plan::Algorithm::RegisterTile),
            Strategy::Force(crate::plan::Algorithm::Vec4Tile),
            Strategy::Force(crate::plan::Algorithm::GEMM),
        ];
        let longest = |p: &Program| passes(p).map(|q| q.trips).max().unwrap();
        let mut compared = 0;
        for geo in layers {
            for class in [Cpu, Gpu] {
                let pr = profile(class, BIG);
                for s in strategies {
                    use crate::plan as planner;
                    let f32 = Elem::F32;
                    let pairs = [
                        (
                            planner::forward(&geo, &pr, s).map(|t| t.loop_trips(&geo)),
                            forward(&geo, false, f32, f32, &pr, s),
                        ),
                        (
                            planner::weight_grad(&geo, &pr, s).map(|t| t.loop_trips(&geo)),
                            weight_grad(&geo, f32, f32, &pr, s),
                        ),
                        (
                            planner::input_grad(&geo, &pr, s).map(|t| t.loop_trips(&geo)),
                            input_grad(&geo, f32, f32, &pr, s),
                        ),
                    ];
                    for (trips, p) in pairs {
                        if let (Ok(trips), Ok(p)) = (trips, p) {
                            assert_eq!(longest(&p), trips, "{p}");
                            compared += 1;
                        }
                    }
                }
                for layout in [Layout::Nchw, Layout::Nhwc] {
                    let geo = Conv2dGeometry { params: geo.params.layout(layout), ..geo };
                    let pr = profile(class, 4096);
                    for p in [
                        forward(&geo, true, Elem::F16, Elem::F16, &pr, Strategy::Auto),
                        weight_grad(&geo, Elem::F16, Elem::F32, &pr, Strategy::Auto),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        assert!(passes(&p).all(|q| q.trips <= loops::LOOP_BUDGET), "{p}");
                    }
                }
            }
        }
        assert!(compared > 60, "only {compared} programs compared");
        let mut p = forward(&layers[0], false, Elem::F32, Elem::F32, &profile(Cpu, BIG), Strategy::Auto).unwrap();
        let Some(Step::Pass(q)) = p.steps.iter_mut().find(|s| matches!(s, Step::Pass(_))) else { panic!() };
        q.trips = loops::LOOP_BUDGET + 1;
        let e = p.check(BIG).unwrap_err();
        assert!(matches!(e, Error::DeviceLimit { needed: 60_001, .. }), "{e}");
        assert!(e.to_string().starts_with("pad_input (pass 0) of forward"), "{e}");
    }
}
