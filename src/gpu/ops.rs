//! The operations: forward, weight gradient, input gradient and bias gradient, on device tensors and
//! as ndarray-in, ndarray-out conveniences.
//!
//! Each operation validates its tensors, asks the planner ([`crate::plan`]) how to run the layer,
//! and records the plan's passes; the encoders below decide nothing.

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::geometry::{Conv2dGeometry, Conv2dParams, Layout, u32_of};
use crate::gpu::context::Context;
use crate::gpu::job::Job;
use crate::gpu::kernels::{
    self, ConvUniform, ForwardTileUniform, GemmUniform, GradTileUniform, KernelSpec, PrepUniform,
};
use crate::gpu::tensor::Tensor;
use crate::plan::gemm::{AxisPhase, axis_phases};
use crate::plan::variant::{Load, Pad, Variant};
use crate::plan::{
    self, ConvGemm, DySource, ForwardPlan, ForwardTiles, InputGradPlan, Op, ReductionSplit, WeightGradGemm,
    WeightGradPlan, WeightGradTiles,
};

impl Context {
    /// Forward correlation on device tensors: `X` is `[N, C, H, W]`, `W` is `[K, C/G, S, T]`, the
    /// optional bias has `K` elements; the result `Y` is `[N, K, P, Q]`.
    ///
    /// `Y[n,k,p,q] = b[k] + Σ_cg Σ_i Σ_j X[n, g·C/G + cg, p·sh + i·dh − ph, q·sw + j·dw − pw] · W[k,cg,i,j]`
    ///
    /// # Errors
    /// Shape and parameter errors of [`Conv2dParams::geometry`], a bias of the wrong length, device
    /// limits, a tensor from another context, a forced [`Strategy`](crate::plan::Strategy) the layer
    /// cannot run, wgpu errors.
    pub fn forward(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, params: &Conv2dParams) -> Result<Tensor> {
        let geo = params.geometry(x.shape4("input X")?, w.shape4("weights W")?)?;
        let y = self.alloc_as("output Y", &geo.output_shape(), x.dtype())?;
        self.forward_into(x, w, bias, params, &y)?;
        Ok(y)
    }

    /// [`Context::forward`] into an existing tensor of shape `[N, K, P, Q]` (a training loop reuses its
    /// buffers this way). Every element of `y` is overwritten.
    ///
    /// # Errors
    /// As [`Context::forward`], and a `y` of the wrong shape or that is one of the inputs.
    pub fn forward_into(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        params: &Conv2dParams,
        y: &Tensor,
    ) -> Result<()> {
        let geo = params.geometry(x.shape4("input X")?, w.shape4("weights W")?)?;
        let mut flags = 0;
        if let Some(b) = bias {
            if b.shape() != [geo.k] {
                return Err(Error::shape("bias shape", format!("[{}]", geo.k), format!("{:?}", b.shape())));
            }
            flags |= kernels::FLAG_BIAS;
        }
        let bias_buf = match bias {
            Some(b) => &b.buffer,
            None => self.placeholder(),
        };
        let inputs: Vec<&Tensor> = [x, w].into_iter().chain(bias).collect();
        self.check_out(y, &geo.output_shape(), &inputs)?;
        let mut operands = vec![("input X", x), ("weights W", w)];
        operands.extend(bias.map(|b| ("bias", b)));
        let elem = operands_elem(&operands)?;
        check_out_elem("output Y", y, elem)?;
        // A 16-bit bias is widened once, whole.
        let mut job = self.job();
        let bias_wide = match bias {
            Some(b) if b.dtype().is_half() => Some(self.widen(&mut job, b, 0, b.len())?),
            _ => None,
        };
        let bias_buf = bias_wide.as_ref().map_or(bias_buf, |t| &t.buffer);
        self.check_binding("weights W in f32", 4 * w.len() as u64)?;
        let layout = geo.params.layout;
        let plan = self.plan_forward(&geo)?;
        let geo = geo.nchw();
        let ys = geo.k * geo.p * geo.q;
        let gemm = matches!(plan, ForwardPlan::Gemm(_));
        let route = self.route(Op::Forward, &geo, layout, elem, gemm, plan.per_sample(&geo))?;
        let wn = self.weights_in_by(&mut job, layout, w, &geo, route.load)?;
        let wb = &wn.buffer;
        self.for_batches(&mut job, &geo, route.per_sample, |job, chunk, n0| {
            let xn = self.operand_in_by(job, x, layout, n0, [chunk.n, geo.c, geo.h * geo.w], route.load)?;
            let xc = &xn.buffer;
            let yc = self.batch_out(y, ys, n0, chunk.n)?;
            let out = [chunk.n, geo.k, geo.p * geo.q];
            let yn = self.nchw_scratch(layout, &yc.buffer, out)?;
            let yk = &yn.buffer;
            match &plan {
                ForwardPlan::Direct => {
                    self.run(job, &kernels::FORWARD, chunk, flags, &[xc, wb, bias_buf], yk, chunk.n * ys)
                }
                ForwardPlan::Tiled(t) => {
                    let padded = match t.read.pad {
                        Pad::Copy => Some(self.padded_input(job, chunk, xc, t.read.wp)?),
                        Pad::Mask => None,
                    };
                    let xr = padded.as_ref().map_or(xc, |p| &p.buffer);
                    self.forward_tiles(job, chunk, t, flags, [xr, wb, bias_buf, yk])
                }
                ForwardPlan::Gemm(gm) => {
                    let u = forward_gemm(chunk, flags)?;
                    self.conv_gemm(job, chunk, gm, route.load, u, [xc, wb, bias_buf, yk])
                }
            }?;
            self.activations_out(job, &yn, &yc.buffer, out)?;
            self.batch_done(job, &yc, y, ys, n0, chunk.n)
        })?;
        job.finish()
    }

    /// Compiles now the pipelines that the three operations of each layer run with this context's
    /// profile and strategy, so that later calls (and benchmarks) do not pay for it. It runs each
    /// operation once on zeros: what it compiles is, by construction, what the planner picks.
    ///
    /// # Errors
    /// As the operations: device limits, a forced strategy a layer cannot run, wgpu errors.
    pub fn warm_up(&self, layers: &[Conv2dGeometry]) -> Result<()> {
        for geo in layers {
            let x = self.zeros(&geo.input_shape())?;
            let w = self.zeros(&geo.weight_shape())?;
            let dy = self.zeros(&geo.output_shape())?;
            self.forward(&x, &w, None, &geo.params)?;
            self.weight_grad(&x, &dy, [geo.s, geo.t], &geo.params)?;
            self.input_grad(&dy, &w, [geo.h, geo.w], &geo.params)?;
        }
        Ok(())
    }

    /// The plan [`Context::forward`] runs `geo` with on this context.
    ///
    /// # Errors
    /// A forced strategy the layer cannot run.
    pub fn plan_forward(&self, geo: &Conv2dGeometry) -> Result<ForwardPlan> {
        plan::forward(geo, self.profile(), self.strategy_for(Op::Forward, geo)?)
    }

    /// The plan [`Context::weight_grad`] runs `geo` with on this context.
    ///
    /// # Errors
    /// A forced strategy the layer cannot run.
    pub fn plan_weight_grad(&self, geo: &Conv2dGeometry) -> Result<WeightGradPlan> {
        plan::weight_grad(geo, self.profile(), self.strategy_for(Op::WeightGrad, geo)?)
    }

    /// The plan [`Context::input_grad`] runs `geo` with on this context.
    ///
    /// # Errors
    /// A forced strategy the layer cannot run.
    pub fn plan_input_grad(&self, geo: &Conv2dGeometry) -> Result<InputGradPlan> {
        plan::input_grad(geo, self.profile(), self.strategy_for(Op::InputGrad, geo)?)
    }

    /// The strategy `op` runs the exact layer `geo` (in its own layout) with: the context's, or with
    /// tuning on, the measured choice (see [`Context::with_tuning`]).
    fn strategy_for(&self, op: Op, geo: &Conv2dGeometry) -> Result<plan::Strategy> {
        self.resolve(op, geo)
    }

    /// Records a tiled forward kernel of plan `t` over the layer `geo` (one batch chunk): `[x, w, bias,
    /// y]` are the planes `t.read` describes, the weights `K×(C/G)×S×T`, the bias and the output.
    fn forward_tiles(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        t: &ForwardTiles,
        flags: u32,
        [x, w, bias, y]: [&wgpu::Buffer; 4],
    ) -> Result<()> {
        let mut u = ForwardTileUniform::new(geo, flags, 0);
        u.one = 1;
        u.hp = u32_of(t.read.hp)?;
        u.wp = u32_of(t.read.wp)?;
        u.ph = u32_of(t.read.ph)?;
        u.pw = u32_of(t.read.pw)?;
        u.row_step = u32_of(t.skip.row_step)?;
        u.row_off = u32_of(t.skip.row_off)?;
        u.i_step = u32_of(t.skip.i_step)?;
        u.lanes = u32_of(t.lanes)?;
        u.qlanes = u32_of(t.qlanes)?;
        u.qtiles = u32_of(t.qtiles)?;
        u.ptiles = u32_of(t.ptiles)?;
        u.ktiles = u32_of(t.ktiles)?;
        let total = u32_of(geo.n * geo.params.groups * t.ktiles * t.lanes)?;
        match (t.variant, t.kpad) {
            (Variant::ForwardVec4(_), Some(kpad)) => {
                // The tile's filters contiguous in each tap, for the vec4 weight loads.
                let taps = geo.channels_per_group() * geo.s * geo.t;
                let wt = self.temp("transposed weights", &[geo.params.groups, taps, kpad])?;
                let mut ut = PrepUniform::new(geo, 0, u32_of(wt.len())?);
                ut.kpad = u32_of(kpad)?;
                u.kpad = ut.kpad;
                job.dispatch(
                    &kernels::TRANSPOSE_WEIGHTS,
                    &Variant::Plain,
                    bytemuck::bytes_of(&ut),
                    &[w, &wt.buffer],
                    ut.total,
                )?;
                u.total = total;
                job.dispatch(
                    &kernels::FORWARD_VEC4,
                    &t.variant,
                    bytemuck::bytes_of(&u),
                    &[x, &wt.buffer, bias, y],
                    total,
                )
            }
            _ => {
                u.total = total;
                job.dispatch(&kernels::FORWARD_TILED, &t.variant, bytemuck::bytes_of(&u), &[x, w, bias, y], total)
            }
        }
    }

    /// Weight gradient on device tensors: `X` is `[N, C, H, W]`, `dY` is `[N, K, P, Q]`, `kernel` is
    /// `[S, T]`; the result `dW` is `[K, C/G, S, T]`.
    ///
    /// `dW[k,cg,i,j] = Σ_n Σ_p Σ_q X[n, g·C/G + cg, p·sh + i·dh − ph, q·sw + j·dw − pw] · dY[n,k,p,q]`
    ///
    /// # Errors
    /// As [`Context::forward`], and a `dY` whose size does not match `X`, `kernel` and `params`.
    pub fn weight_grad(&self, x: &Tensor, dy: &Tensor, kernel: [usize; 2], params: &Conv2dParams) -> Result<Tensor> {
        let geo = params.geometry_for_weight_grad(x.shape4("input X")?, dy.shape4("output gradient dY")?, kernel)?;
        let dw = self.alloc("weight gradient dW", &geo.weight_shape())?;
        self.weight_grad_into(x, dy, params, &dw)?;
        Ok(dw)
    }

    /// [`Context::weight_grad`] into an existing tensor of shape `[K, C/G, S, T]`, whose shape gives
    /// the kernel size. Every element of `dw` is overwritten.
    ///
    /// # Errors
    /// As [`Context::weight_grad`], and a `dw` of the wrong shape or that is one of the inputs.
    pub fn weight_grad_into(&self, x: &Tensor, dy: &Tensor, params: &Conv2dParams, dw: &Tensor) -> Result<()> {
        let [_, _, s, t] = params.layout.weight_dims(dw.shape4("weight gradient dW")?);
        let geo = params.geometry_for_weight_grad(x.shape4("input X")?, dy.shape4("output gradient dY")?, [s, t])?;
        self.check_out(dw, &geo.weight_shape(), &[x, dy])?;
        let elem = operands_elem(&[("input X", x), ("output gradient dY", dy)])?;
        check_out_elem("weight gradient dW", dw, elem)?;
        let layout = geo.params.layout;
        // Resolved once, for the exact layer: each batch chunk below is planned with the same choice.
        let strategy = self.strategy_for(Op::WeightGrad, &geo)?;
        let geo = geo.nchw();
        let plan = plan::weight_grad(&geo, self.profile(), strategy)?;
        let gemm = matches!(plan, WeightGradPlan::Gemm(_));
        let route = self.route(Op::WeightGrad, &geo, layout, elem, gemm, plan.per_sample(&geo))?;
        let taps = [geo.k, geo.channels_per_group(), geo.s * geo.t];
        let dw32 = self.result_out(dw)?;
        let dwn = self.nchw_scratch(layout, &dw32.buffer, taps)?;
        let dwk = &dwn.buffer;
        // Over batch chunks dW is a sum: each chunk's dW goes to its slot, then the slots are added in
        // order (split_sum.wgsl), so the result does not depend on timing.
        let mut job = self.job();
        self.reduce_batches(&mut job, &geo, route.per_sample, dwk, dw.len(), |job, chunk, n0, out| {
            let xn = self.operand_in_by(job, x, layout, n0, [chunk.n, geo.c, geo.h * geo.w], route.load)?;
            let xc = &xn.buffer;
            let dyn_ = self.operand_in_by(job, dy, layout, n0, [chunk.n, geo.k, geo.p * geo.q], route.load)?;
            let dyc = &dyn_.buffer;
            // The split of the reduction depends on the batch: a chunk of fewer samples is planned anew,
            // with the strategy chosen for the whole layer (never one tuned for the chunk's batch).
            let chunk_plan = if chunk.n == geo.n { plan } else { plan::weight_grad(chunk, self.profile(), strategy)? };
            match chunk_plan {
                WeightGradPlan::Direct(r) => {
                    self.run_split(job, &kernels::WEIGHT_GRAD, chunk, r, &[xc, dyc], out, dw.len())
                }
                WeightGradPlan::Tiled(t) => self.weight_grad_tiles(job, chunk, &t, [xc, dyc, out], dw.len()),
                WeightGradPlan::Gemm(t) => self.weight_grad_gemm(job, chunk, &t, route.load, [xc, dyc, out], dw.len()),
            }
        })?;
        self.activations_out(&mut job, &dwn, &dw32.buffer, taps)?;
        self.result_done(&mut job, &dw32, dw)?;
        job.finish()
    }

    /// Records the tiled weight gradient of plan `t` on one batch chunk: pad X, run the tile over the
    /// split reduction, then add the splits in order. `[x, dy, dw]`; `len` elements of dW.
    fn weight_grad_tiles(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        t: &WeightGradTiles,
        [x, dy, dw]: [&wgpu::Buffer; 3],
        len: usize,
    ) -> Result<()> {
        let xp = self.padded_input(job, geo, x, t.wp)?;
        let mut u = GradTileUniform::new(geo, 0, 0);
        u.hp = u32_of(t.hp)?;
        u.wp = u32_of(t.wp)?;
        u.total = u32_of(geo.params.groups * t.ktiles * t.lanes * t.splits)?;
        u.lanes = u32_of(t.lanes)?;
        u.ktiles = u32_of(t.ktiles)?;
        u.rtiles = u32_of(t.rtiles)?;
        u.splits = u32_of(t.splits)?;
        u.chunk = u32_of(t.chunk)?;
        u.fold = u32_of(t.fold)?;
        let partial = self.split_partials(t.splits, len)?;
        let out = partial.as_ref().map_or(dw, |p| &p.buffer);
        match t.qp {
            Some(qp) => {
                // dY with its rows padded to Qp, a multiple of 4, for aligned vec4 loads: pad_input
                // over the N·K planes of P×Q with no padding but the extra columns. Rows already of a
                // multiple of 4 are read in place.
                let dyp = if qp == geo.q {
                    None
                } else {
                    let planes = Conv2dGeometry::new(geo.n, geo.k, [geo.p, geo.q], 1, [1, 1], Conv2dParams::new())?;
                    let dyp = self.temp("padded output gradient", &[geo.n, geo.k, geo.p, qp])?;
                    let mut ud = PrepUniform::new(&planes, 0, u32_of(geo.n * geo.k * geo.p)?);
                    ud.hp = u32_of(geo.p)?;
                    ud.wp = u32_of(qp)?;
                    let bufs = [dy, &dyp.buffer];
                    job.dispatch(&kernels::PAD_INPUT, &Variant::Plain, bytemuck::bytes_of(&ud), &bufs, ud.total)?;
                    Some(dyp)
                };
                let dyp = dyp.as_ref().map_or(dy, |t| &t.buffer);
                u.qp = u32_of(qp)?;
                let bufs = [&xp.buffer, &xp.buffer, dyp, dyp, out];
                job.dispatch(&kernels::WEIGHT_GRAD_VEC4, &t.variant, bytemuck::bytes_of(&u), &bufs, u.total)?;
            }
            None => {
                let bufs = [&xp.buffer, dy, out];
                job.dispatch(&kernels::WEIGHT_GRAD_TILED, &t.variant, bytemuck::bytes_of(&u), &bufs, u.total)?;
            }
        }
        self.sum_splits(job, geo, partial, u.splits, dw, len)
    }

    /// Records a direct kernel `spec` over the ranges `r` of its reduction on one batch chunk
    /// (`len` outputs per range), then adds the ranges in order into `out`: the direct weight gradient
    /// and the bias gradient.
    #[allow(clippy::too_many_arguments)] // the kernel, its layer and split, its buffers and outputs
    fn run_split(
        &self,
        job: &mut Job,
        spec: &'static KernelSpec,
        geo: &Conv2dGeometry,
        r: ReductionSplit,
        inputs: &[&wgpu::Buffer],
        out: &wgpu::Buffer,
        len: usize,
    ) -> Result<()> {
        let partial = self.split_partials(r.splits, len)?;
        let dst = partial.as_ref().map_or(out, |p| &p.buffer);
        let mut u = ConvUniform::new(geo, 0, u32_of(r.splits * len)?);
        u.splits = u32_of(r.splits)?;
        u.chunk = u32_of(r.chunk)?;
        let buffers: Vec<&wgpu::Buffer> = inputs.iter().copied().chain(std::iter::once(dst)).collect();
        job.dispatch(spec, &Variant::Plain, bytemuck::bytes_of(&u), &buffers, u.total)?;
        self.sum_splits(job, geo, partial, u.splits, out, len)
    }

    /// The temporary of a split reduction's partial sums, `splits × len`, where it has more than one
    /// split (one split writes the output itself).
    fn split_partials(&self, splits: usize, len: usize) -> Result<Option<Tensor>> {
        if splits > 1 { Ok(Some(self.temp("split-reduction partial sums", &[splits, len])?)) } else { Ok(None) }
    }

    /// Records `split_sum.wgsl`, adding the `splits` partial sums of `partial` into the `len`
    /// elements of `dw` in order; nothing where there is one split.
    fn sum_splits(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        partial: Option<Tensor>,
        splits: u32,
        dw: &wgpu::Buffer,
        len: usize,
    ) -> Result<()> {
        let Some(partial) = partial else { return Ok(()) };
        let mut us = PrepUniform::new(geo, 0, u32_of(len)?);
        us.splits = splits;
        job.dispatch(&kernels::SPLIT_SUM, &Variant::Plain, bytemuck::bytes_of(&us), &[&partial.buffer, dw], us.total)
    }

    /// Input gradient on device tensors: `dY` is `[N, K, P, Q]`, `W` is `[K, C/G, S, T]`, `input_size`
    /// is `[H, W]` (needed because with a stride above 1 several input sizes give the same output
    /// size); the result `dX` is `[N, C, H, W]`.
    ///
    /// `dX[n,c,h,w] = Σ_k Σ_i Σ_j dY[n,k,p,q] · W[k,cg,i,j]` over the `(p,q)` with
    /// `p·sh + i·dh − ph = h` and `q·sw + j·dw − pw = w`; inputs that no output reads get 0.
    ///
    /// # Errors
    /// As [`Context::forward`], and an `input_size` that does not give `dY`'s `[P, Q]`.
    pub fn input_grad(&self, dy: &Tensor, w: &Tensor, input_size: [usize; 2], params: &Conv2dParams) -> Result<Tensor> {
        let geo =
            params.geometry_for_input_grad(dy.shape4("output gradient dY")?, w.shape4("weights W")?, input_size)?;
        let dx = self.alloc_as("input gradient dX", &geo.input_shape(), dy.dtype())?;
        self.input_grad_into(dy, w, params, &dx)?;
        Ok(dx)
    }

    /// [`Context::input_grad`] into an existing tensor of shape `[N, C, H, W]`, whose shape gives the
    /// input size. Every element of `dx` is overwritten.
    ///
    /// # Errors
    /// As [`Context::input_grad`], and a `dx` of the wrong shape or that is one of the inputs.
    pub fn input_grad_into(&self, dy: &Tensor, w: &Tensor, params: &Conv2dParams, dx: &Tensor) -> Result<()> {
        let [_, _, h, wd] = params.layout.activation_dims(dx.shape4("input gradient dX")?);
        let geo = params.geometry_for_input_grad(dy.shape4("output gradient dY")?, w.shape4("weights W")?, [h, wd])?;
        self.check_out(dx, &geo.input_shape(), &[dy, w])?;
        let elem = operands_elem(&[("output gradient dY", dy), ("weights W", w)])?;
        check_out_elem("input gradient dX", dx, elem)?;
        self.check_binding("weights W in f32", 4 * w.len() as u64)?;
        let layout = geo.params.layout;
        let plan = self.plan_input_grad(&geo)?;
        let geo = geo.nchw();
        let xs = geo.c * geo.h * geo.w;
        let gemm = matches!(plan, InputGradPlan::Gemm(_));
        let route = self.route(Op::InputGrad, &geo, layout, elem, gemm, plan.per_sample(&geo))?;
        let mut job = self.job();
        let wn = self.weights_in_by(&mut job, layout, w, &geo, route.load)?;
        let wb = &wn.buffer;
        self.for_batches(&mut job, &geo, route.per_sample, |job, chunk, n0| {
            let dyn_ = self.operand_in_by(job, dy, layout, n0, [chunk.n, geo.k, geo.p * geo.q], route.load)?;
            let dyc = &dyn_.buffer;
            let dxc = self.batch_out(dx, xs, n0, chunk.n)?;
            let out = [chunk.n, geo.c, geo.h * geo.w];
            let dxn = self.nchw_scratch(layout, &dxc.buffer, out)?;
            let dxk = &dxn.buffer;
            match &plan {
                InputGradPlan::Direct => self.run(job, &kernels::INPUT_GRAD, chunk, 0, &[dyc, wb], dxk, chunk.n * xs),
                InputGradPlan::Tiled(t) => self.input_grad_tiles(job, chunk, t, [dyc, wb, dxk]),
                InputGradPlan::Gemm(gm) => {
                    let [pt, pl] = [chunk.pad.top, chunk.pad.left];
                    let pr = &chunk.params;
                    let rows = axis_phases(chunk.h, chunk.s, pr.stride[0], pr.dilation[0], pt);
                    let cols = axis_phases(chunk.w, chunk.t, pr.stride[1], pr.dilation[1], pl);
                    for ph in &rows {
                        for pw in &cols {
                            let u = input_grad_gemm(chunk, ph, pw)?;
                            self.conv_gemm(job, chunk, gm, route.load, u, [dyc, wb, self.placeholder(), dxk])?;
                        }
                    }
                    Ok(())
                }
            }?;
            self.activations_out(job, &dxn, &dxc.buffer, out)?;
            self.batch_done(job, &dxc, dx, xs, n0, chunk.n)
        })?;
        job.finish()
    }

    /// Records the tiled input gradient of plan `t` on one batch chunk `geo`: flip the filters, bring
    /// dY into the form `t.source` names, then the forward kernel. `[dy, w, dx]`.
    fn input_grad_tiles(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        t: &plan::InputGradTiles,
        [dy, w, dx]: [&wgpu::Buffer; 3],
    ) -> Result<()> {
        let flipped = self.temp("flipped weights", &[geo.c, geo.filters_per_group(), geo.s, geo.t])?;
        let u = ConvUniform::new(geo, 0, u32_of(flipped.len())?);
        job.dispatch(&kernels::FLIP_WEIGHTS, &Variant::Plain, bytemuck::bytes_of(&u), &[w, &flipped.buffer], u.total)?;
        let fwd = Conv2dGeometry { n: geo.n, ..t.fwd };
        let f = t.frame;
        let (hp, wp) = (t.tiles.read.hp, t.tiles.read.wp);
        let source = match t.source {
            DySource::InPlace => None,
            DySource::Framed => {
                // Nothing to spread: dY in its frame of zeros is a padded input.
                let frame = Conv2dParams::new().padding_sides(f.top, f.bottom, f.left, f.right);
                let planes = Conv2dGeometry::new(geo.n, geo.k, [geo.p, geo.q], 1, [1, 1], frame)?;
                Some(self.padded_input(job, &planes, dy, wp)?)
            }
            DySource::Spread => {
                let spread = self.temp("spread output gradient", &[geo.n, geo.k, hp, wp])?;
                let mut u = PrepUniform::new(geo, 0, u32_of(geo.n * geo.k * hp)?);
                u.hp = u32_of(hp)?;
                u.wp = u32_of(wp)?;
                let bufs = [dy, &spread.buffer];
                job.dispatch(&kernels::SCATTER_DY, &Variant::Plain, bytemuck::bytes_of(&u), &bufs, u.total)?;
                Some(spread)
            }
        };
        let input = source.as_ref().map_or(dy, |s| &s.buffer);
        self.forward_tiles(job, &fwd, &t.tiles, 0, [input, &flipped.buffer, self.placeholder(), dx])
    }

    /// Records `conv2d_gemm.wgsl` of plan `plan` over the groups of `geo` with the uniform `u` (its
    /// tile counts set here): `[src, w, bias, out]`.
    fn conv_gemm(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        plan: &ConvGemm,
        load: Load,
        mut u: GemmUniform,
        bufs: [&wgpu::Buffer; 4],
    ) -> Result<()> {
        let tile = &plan.tile;
        u.mtiles = u.m.div_ceil(u32_of(tile.bm)?);
        u.ntiles = u.cols.div_ceil(u32_of(tile.bn)?);
        let groups = u32_of(geo.params.groups)?;
        u.total = u
            .mtiles
            .checked_mul(u.ntiles)
            .and_then(|t| t.checked_mul(groups))
            .ok_or(Error::Overflow { what: "GEMM tiles", detail: format!("{} x {} x {groups}", u.mtiles, u.ntiles) })?;
        let invocations = u32_of(u.total as usize * tile.threads())?;
        job.dispatch(&kernels::CONV_GEMM, &plan.variant().with_load(load), bytemuck::bytes_of(&u), &bufs, invocations)
    }

    /// Records the GEMM weight gradient of plan `t` on one batch chunk: the tiles over the split
    /// reduction, then the ranges added in order. `[x, dy, dw]`; `len` elements of dW.
    fn weight_grad_gemm(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        t: &WeightGradGemm,
        load: Load,
        [x, dy, dw]: [&wgpu::Buffer; 3],
        len: usize,
    ) -> Result<()> {
        let workgroups = u32_of(t.splits * geo.params.groups * t.mtiles * t.ntiles)?;
        let mut u = GradTileUniform::new(geo, 0, workgroups);
        u.ktiles = u32_of(t.mtiles)?;
        u.rtiles = u32_of(t.ntiles)?;
        u.splits = u32_of(t.splits)?;
        u.chunk = u32_of(t.chunk)?;
        let partial = self.split_partials(t.splits, len)?;
        let out = partial.as_ref().map_or(dw, |p| &p.buffer);
        let invocations = u32_of(workgroups as usize * t.tile.threads())?;
        let variant = t.variant().with_load(load);
        job.dispatch(&kernels::WEIGHT_GRAD_GEMM, &variant, bytemuck::bytes_of(&u), &[x, dy, out], invocations)?;
        self.sum_splits(job, geo, partial, u.splits, dw, len)
    }

    /// Bias gradient on a device tensor: `dB[k] = Σ_n Σ_p Σ_q dY[n,k,p,q]`, `K` elements, with dY in
    /// `layout`.
    ///
    /// # Errors
    /// A `dY` that is not 4-D or has a zero dimension, a tensor from another context, wgpu errors.
    pub fn bias_grad(&self, dy: &Tensor, layout: Layout) -> Result<Tensor> {
        let [_, k, _, _] = layout.activation_dims(dy.shape4("output gradient dY")?);
        let db = self.alloc("bias gradient dB", &[k])?;
        self.bias_grad_into(dy, layout, &db)?;
        Ok(db)
    }

    /// [`Context::bias_grad`] into an existing tensor of shape `[K]`.
    ///
    /// # Errors
    /// As [`Context::bias_grad`], and a `db` of the wrong shape or that is `dy` itself.
    pub fn bias_grad_into(&self, dy: &Tensor, layout: Layout, db: &Tensor) -> Result<()> {
        let dims = layout.activation_dims(dy.shape4("output gradient dY")?);
        self.check_out(db, &[dims[1]], &[dy])?;
        check_out_elem("bias gradient dB", db, dy.dtype())?;
        let program = plan::program::bias_grad(dims, layout, dy.dtype(), db.dtype(), self.profile())?;
        let mut job = self.job();
        crate::gpu::engine::run(self, &mut job, &program, &[dy], &[db])?;
        job.finish()
    }

    /// Checks the tensors of an operation: all made here, the output of the expected shape and not one
    /// of the inputs.
    fn check_out(&self, out: &Tensor, shape: &[usize], inputs: &[&Tensor]) -> Result<()> {
        for t in inputs.iter().chain(std::iter::once(&out)) {
            self.own(t)?;
        }
        if out.shape() != shape {
            return Err(Error::shape("output tensor", format!("{shape:?}"), format!("{:?}", out.shape())));
        }
        // The same buffer, not just the same tensor: two tensors may wrap one caller's buffer.
        if inputs.iter().any(|t| t.buffer == out.buffer) {
            return Err(Error::shape("output tensor", "a tensor distinct from the inputs", "one of the inputs"));
        }
        Ok(())
    }

    /// Runs a direct convolution kernel with `total` invocations (one per output element), binding
    /// the uniform, `inputs` and `out` in that order. The caller has checked the tensors with
    /// [`Context::check_out`].
    #[allow(clippy::too_many_arguments)] // the job, the kernel, its layer and its bindings
    fn run(
        &self,
        job: &mut Job,
        spec: &'static KernelSpec,
        geo: &Conv2dGeometry,
        flags: u32,
        inputs: &[&wgpu::Buffer],
        out: &wgpu::Buffer,
        total: usize,
    ) -> Result<()> {
        let total32 = u32::try_from(total)
            .map_err(|_| Error::Overflow { what: "invocation count", detail: format!("{total} > 2^32−1") })?;
        let uniform = ConvUniform::new(geo, flags, total32);
        let buffers: Vec<&wgpu::Buffer> = inputs.iter().copied().chain(std::iter::once(out)).collect();
        job.dispatch(spec, &Variant::Plain, bytemuck::bytes_of(&uniform), &buffers, total32)
    }

    /// Copies `x`, the `N×C×H×W` input of `geo`, into a zero-padded `N×C×(H+top+bottom)×wp` temporary
    /// (`wp ≥ W + left + right`, a multiple of 4 for the vec4 stores of `pad_input.wgsl`).
    fn padded_input(&self, job: &mut Job, geo: &Conv2dGeometry, x: &wgpu::Buffer, wp: usize) -> Result<Tensor> {
        let hp = geo.padded_size()[0];
        let xp = self.temp("padded input", &[geo.n, geo.c, hp, wp])?;
        let mut u = PrepUniform::new(geo, 0, u32_of(geo.n * geo.c * hp)?);
        u.hp = u32_of(hp)?;
        u.wp = u32_of(wp)?;
        let kernel = if geo.w.is_multiple_of(4) { &kernels::PAD_INPUT_VEC4 } else { &kernels::PAD_INPUT };
        job.dispatch(kernel, &Variant::Plain, bytemuck::bytes_of(&u), &[x, &xp.buffer], u.total)?;
        Ok(xp)
    }

    /// A 4-byte buffer bound where a kernel's optional input is absent.
    fn placeholder(&self) -> &wgpu::Buffer {
        self.placeholder.get_or_init(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("convgrad placeholder"),
                size: 4,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
    }
}

/// How an operation reads its operands (see [`Context::chunking`]): the loads of its kernels and the
/// batch chunking, as `f32` elements per sample.
#[derive(Debug, Clone, Copy)]
struct Route {
    load: Load,
    per_sample: usize,
}

/// How an operation on a layer runs its batch: samples per chunk, and whether its kernels read
/// 16-bit operands in place (else they are widened into `f32` temporaries, chunk by chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// Samples per batch chunk (the batch itself where it runs in one).
    pub samples: usize,
    /// Whether the kernels read the 16-bit operands in place.
    pub in_place: bool,
}

impl Context {
    /// The route of `op` on `geo` (NCHW) in `layout` with operands of `elem`: a GEMM plan reads
    /// 16-bit operands in place, in NCHW, where the whole batch fits one binding at their size (the
    /// result in `f32`); otherwise the operands are widened per chunk, chunked as `f32`
    /// (`f32_per_sample`).
    fn route(
        &self,
        op: Op,
        geo: &Conv2dGeometry,
        layout: Layout,
        elem: Elem,
        gemm: bool,
        f32_per_sample: usize,
    ) -> Result<Route> {
        let mut route = Route { load: Load::F32, per_sample: f32_per_sample };
        if elem.is_half() && gemm && layout == Layout::Nchw {
            let per_sample = plan::gemm_sample_bytes(op, geo, elem).div_ceil(4);
            if plan::batch_chunk(geo, per_sample, self.profile())? >= geo.n {
                route = Route { load: Load::of(elem, self.profile().half), per_sample };
            }
        }
        // The invariant of `plan::bindings`, checked before any pass is recorded.
        plan::bindings::check_op(op, geo, elem, route.load.elem.is_half(), route.per_sample, self.profile())?;
        Ok(route)
    }

    /// How `op` runs the layer `geo` (in its own layout) with operands of `elem` on this context:
    /// the batch chunks and whether the kernels read 16-bit operands in place. A layer whose `f32`
    /// buffers need chunks may run whole in half precision.
    ///
    /// # Errors
    /// A forced strategy the layer cannot run; a sample beyond one binding.
    pub fn chunking(&self, op: Op, geo: &Conv2dGeometry, elem: Elem) -> Result<Chunking> {
        let (per_sample, gemm) = match op {
            Op::Forward => {
                let p = self.plan_forward(geo)?;
                (p.per_sample(&geo.nchw()), matches!(p, ForwardPlan::Gemm(_)))
            }
            Op::WeightGrad => {
                let p = self.plan_weight_grad(geo)?;
                (p.per_sample(&geo.nchw()), matches!(p, WeightGradPlan::Gemm(_)))
            }
            Op::InputGrad => {
                let p = self.plan_input_grad(geo)?;
                (p.per_sample(&geo.nchw()), matches!(p, InputGradPlan::Gemm(_)))
            }
        };
        let nchw = geo.nchw();
        let route = self.route(op, &nchw, geo.params.layout, elem, gemm, per_sample)?;
        let samples = plan::batch_chunk(&nchw, route.per_sample, self.profile())?;
        Ok(Chunking { samples, in_place: route.load.elem.is_half() })
    }
}

/// The element type of an operation's operands: one for all of them, else [`Error::DType`] (mixed
/// types are not converted behind the caller's back: cast them with [`Context::cast`]).
fn operands_elem(operands: &[(&str, &Tensor)]) -> Result<Elem> {
    let (first, t0) = operands[0];
    match operands.iter().find(|(_, t)| t.dtype() != t0.dtype()) {
        None => Ok(t0.dtype()),
        Some((what, t)) => Err(Error::DType {
            what: (*what).to_string(),
            expected: format!("{}, the dtype of {first} (cast one with Context::cast)", t0.dtype()),
            got: t.dtype().name().to_string(),
        }),
    }
}

/// Checks an output's element type: `f32`, or the operands' own `elem`.
fn check_out_elem(what: &str, out: &Tensor, elem: Elem) -> Result<()> {
    if out.dtype() == Elem::F32 || out.dtype() == elem {
        return Ok(());
    }
    Err(Error::DType {
        what: what.to_string(),
        expected: format!("f32 or {elem}, the operands' dtype"),
        got: out.dtype().name().to_string(),
    })
}

/// An `i32` field of a uniform block, stored as its bits.
fn signed(v: isize) -> Result<u32> {
    i32::try_from(v)
        .map(|v| v.cast_unsigned())
        .map_err(|_| Error::Overflow { what: "kernel offset", detail: format!("{v} outside i32") })
}

/// The GEMM form of the forward pass of `geo` (see `conv2d_gemm.wgsl`): rows the filters of a group,
/// the reduction (cg, i, j), columns (n, p, q); A the weights, B the input.
fn forward_gemm(geo: &Conv2dGeometry, flags: u32) -> Result<GemmUniform> {
    let pr = &geo.params;
    let (cpg, kpg, st) = (geo.channels_per_group(), geo.filters_per_group(), geo.s * geo.t);
    let hw = geo.h * geo.w;
    let mut u = GemmUniform::new(geo, flags, 0);
    u.m = u32_of(kpg)?;
    u.r = u32_of(cpg * st)?;
    u.cols = u32_of(geo.n * geo.p * geo.q)?;
    u.rs = u32_of(geo.s)?;
    u.rt = u32_of(geo.t)?;
    u.a_ms = u32_of(cpg * st)?;
    u.a_gs = u32_of(kpg * cpg * st)?;
    u.a_os = u32_of(st)?;
    u.a_hs = u32_of(geo.t)?;
    u.a_ws = 1;
    u.b_ns = u32_of(geo.c * hw)?;
    u.b_gs = u32_of(cpg * hw)?;
    u.b_cs = u32_of(hw)?;
    u.b_h = u32_of(geo.h)?;
    u.b_w = u32_of(geo.w)?;
    u.cy = u32_of(geo.p)?;
    u.cx = u32_of(geo.q)?;
    u.ys = u32_of(pr.stride[0])?;
    u.xs = u32_of(pr.stride[1])?;
    u.yb = signed(-(geo.pad.top as isize))?;
    u.xb = signed(-(geo.pad.left as isize))?;
    u.ya = u32_of(pr.dilation[0])?;
    u.xa = u32_of(pr.dilation[1])?;
    u.o_ns = u32_of(geo.k * geo.p * geo.q)?;
    u.o_cs = u32_of(geo.p * geo.q)?;
    u.o_w = u32_of(geo.q)?;
    u.o_ys = 1;
    u.o_xs = 1;
    Ok(u)
}

/// The GEMM form of the stride phase (`ph`, `pw`) of the input gradient of `geo` (see
/// [`plan::gemm`]): rows the channels of a group, the reduction (k, a, b) over the phase's taps,
/// columns (n, h', w'); A the weights at taps (i0 + a·istep, j0 + b·jstep), B dY.
fn input_grad_gemm(geo: &Conv2dGeometry, ph: &AxisPhase, pw: &AxisPhase) -> Result<GemmUniform> {
    let pr = &geo.params;
    let (cpg, kpg, st) = (geo.channels_per_group(), geo.filters_per_group(), geo.s * geo.t);
    let pq = geo.p * geo.q;
    let mut u = GemmUniform::new(geo, 0, 0);
    u.m = u32_of(cpg)?;
    u.r = u32_of(kpg * ph.taps * pw.taps)?;
    u.cols = u32_of(geo.n * ph.len * pw.len)?;
    // A phase without taps has no reduction; its radix stays 1 so that the set-up divides by nothing.
    u.rs = u32_of(ph.taps.max(1))?;
    u.rt = u32_of(pw.taps.max(1))?;
    u.a_ms = u32_of(st)?;
    u.a_gs = u32_of(kpg * cpg * st)?;
    u.a_os = u32_of(cpg * st)?;
    u.a_hb = u32_of(ph.i0 * geo.t)?;
    u.a_hs = u32_of(ph.istep * geo.t)?;
    u.a_wb = u32_of(pw.i0)?;
    u.a_ws = u32_of(pw.istep)?;
    u.b_ns = u32_of(geo.k * pq)?;
    u.b_gs = u32_of(kpg * pq)?;
    u.b_cs = u32_of(pq)?;
    u.b_h = u32_of(geo.p)?;
    u.b_w = u32_of(geo.q)?;
    u.cy = u32_of(ph.len)?;
    u.cx = u32_of(pw.len)?;
    u.ys = 1;
    u.xs = 1;
    u.yb = signed(ph.base)?;
    u.xb = signed(pw.base)?;
    u.ya = signed(-(ph.step as isize))?;
    u.xa = signed(-(pw.step as isize))?;
    u.o_ns = u32_of(geo.c * geo.h * geo.w)?;
    u.o_cs = u32_of(geo.h * geo.w)?;
    u.o_w = u32_of(geo.w)?;
    u.o_ys = u32_of(pr.stride[0])?;
    u.o_yb = u32_of(ph.first)?;
    u.o_xs = u32_of(pr.stride[1])?;
    u.o_xb = u32_of(pw.first)?;
    Ok(u)
}
