//! The operations: forward, weight gradient, input gradient and bias gradient, on device tensors and
//! as ndarray-in, ndarray-out conveniences.

use ndarray::{Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Ix1, Ix4};

use crate::error::{Error, Result};
use crate::geometry::{Conv2dGeometry, Conv2dParams};
use crate::gpu::context::{Context, Kernels};
use crate::gpu::job::Job;
use crate::gpu::kernels::{self, ConvUniform, KernelSpec};
use crate::gpu::tensor::Tensor;
use crate::gpu::tiled::{self, Cols, ForwardVec4, Pad, Sharing, Store, Variant};

impl Context {
    /// Forward correlation on device tensors: `X` is `[N, C, H, W]`, `W` is `[K, C/G, S, T]`, the
    /// optional bias has `K` elements; the result `Y` is `[N, K, P, Q]`.
    ///
    /// `Y[n,k,p,q] = b[k] + Σ_cg Σ_i Σ_j X[n, g·C/G + cg, p·sh + i·dh − ph, q·sw + j·dw − pw] · W[k,cg,i,j]`
    ///
    /// # Errors
    /// Shape and parameter errors of [`Conv2dParams::geometry`], a bias of the wrong length, device
    /// limits, a tensor from another context, wgpu errors.
    pub fn forward(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, params: &Conv2dParams) -> Result<Tensor> {
        let geo = params.geometry(x.shape4("input X")?, w.shape4("weights W")?)?;
        let y = self.alloc("output Y", &geo.output_shape())?;
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
        self.check_binding("weights W", w.len())?;
        let [xs, ys] = [geo.c * geo.h * geo.w, geo.k * geo.p * geo.q];
        let per_sample = xs.max(ys).max(geo.c * (geo.h + 2 * geo.params.padding[0]) * tiles::forward(&geo, false).wp);
        let mut job = self.job();
        self.for_batches(&mut job, &geo, per_sample, |job, cg, n0| {
            let xc = self.batch_slice(job, &x.buffer, xs, n0, cg.n)?;
            let yc = self.batch_out(&y.buffer, ys, n0, cg.n)?;
            match self.kernels() {
                Kernels::Reference => {
                    self.run(job, &kernels::FORWARD, cg, flags, &[&xc, &w.buffer, bias_buf], &yc, cg.n * ys)
                }
                Kernels::Tuned => self.forward_tiled(job, cg, flags, &xc, &w.buffer, bias_buf, &yc),
            }?;
            self.batch_done(job, &yc, &y.buffer, ys, n0, cg.n);
            Ok(())
        })?;
        job.finish()
    }

    /// The tuned forward pass: pad the input once, then the register-tiled implicit GEMM.
    #[allow(clippy::too_many_arguments)] // the job, the layer, and the kernel's five bindings
    pub(crate) fn forward_tiled(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        flags: u32,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<()> {
        let plan = tiles::forward(geo, false);
        if plan.vec4 && geo.w.is_multiple_of(4) && geo.params.padding[1].is_multiple_of(4) {
            let mut u = ConvUniform::new(geo, 0, 0, 0);
            u.hp = u32_of(geo.h)?;
            u.wp = u32_of(geo.w)?;
            return self.forward_tiled_on(job, geo, &plan, Pad::Mask, u, flags, x, w, bias, y);
        }
        let (xp, u) = self.padded_input(job, geo, x, plan.wp)?;
        self.forward_tiled_on(job, geo, &plan, Pad::Copy, u, flags, &xp.buffer, w, bias, y)
    }

    /// The tiled forward kernel on the `N×C×u.hp×u.wp` buffer `xp`: with [`Pad::Copy`] the
    /// zero-padded input (`u.wp ≥ plan.wp`), with [`Pad::Mask`] the input itself (`u.ph`, `u.pw` its
    /// padding; the vec4 kernel only).
    #[allow(clippy::too_many_arguments)]
    fn forward_tiled_on(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        plan: &tiles::ForwardPlan,
        pad: Pad,
        mut u: ConvUniform,
        flags: u32,
        xp: &wgpu::Buffer,
        w: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<()> {
        u.flags = flags;
        if pad == Pad::Copy {
            // The copy holds the padding: the kernel reads it from row 0, column 0.
            u.ph = 0;
            u.pw = 0;
        }
        // Subgroups share their weights where the adapter gains by it. Their lanes must run the same
        // kernel rows: where rows are skipped per output row (a strided input gradient), each
        // output row's tiles are rounded up to whole subgroups.
        let (share, qlanes, lanes) = match self.subgroup_sharing().map(|sg| sg as usize) {
            Some(sg) if plan.vec4 => {
                let qlanes = if u.row_step == 1 { plan.qtiles } else { plan.qtiles.next_multiple_of(sg) };
                (Sharing::Subgroup, qlanes, (plan.ptiles * qlanes).next_multiple_of(sg))
            }
            _ => (Sharing::PerLane, plan.qtiles, plan.ptiles * plan.qtiles),
        };
        let total = u32_of(geo.n * geo.params.groups * plan.ktiles * lanes)?;
        u.lanes = u32_of(lanes)?;
        u.qlanes = u32_of(qlanes)?;
        u.qtiles = u32_of(plan.qtiles)?;
        u.ptiles = u32_of(plan.ptiles)?;
        u.ktiles = u32_of(plan.ktiles)?;
        match (plan.vec4, plan.window) {
            (true, Some(window)) => {
                let kpad = (plan.ktiles * plan.bk).next_multiple_of(4);
                let taps = geo.channels_per_group() * geo.s * geo.t;
                let wt = self.temp("transposed weights", &[geo.params.groups, taps, kpad])?;
                u.chunk = u32_of(kpad)?;
                u.total = u32_of(wt.len())?;
                job.dispatch(
                    &kernels::TRANSPOSE_WEIGHTS,
                    &Variant::none(),
                    bytemuck::bytes_of(&u),
                    &[w, &wt.buffer],
                    u.total,
                )?;
                u.total = total;
                let store = if geo.q.is_multiple_of(4) { Store::Vec4 } else { Store::Scalar };
                let variant = Variant::ForwardVec4(ForwardVec4 {
                    bk: plan.bk,
                    bq: plan.bq,
                    wd: window,
                    rows: plan.rows,
                    pad,
                    share,
                    store,
                    cols: plan.cols,
                });
                job.dispatch(
                    &kernels::FORWARD_VEC4,
                    &variant,
                    bytemuck::bytes_of(&u),
                    &[xp, &wt.buffer, bias, y],
                    total,
                )
            }
            _ => {
                u.total = total;
                let variant = tiled::forward(plan.bk, plan.bq, plan.window);
                job.dispatch(&kernels::FORWARD_TILED, &variant, bytemuck::bytes_of(&u), &[xp, w, bias, y], total)
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
        let [_, _, s, t] = dw.shape4("weight gradient dW")?;
        let geo = params.geometry_for_weight_grad(x.shape4("input X")?, dy.shape4("output gradient dY")?, [s, t])?;
        self.check_out(dw, &geo.weight_shape(), &[x, dy])?;
        let [xs, ys] = [geo.c * geo.h * geo.w, geo.k * geo.p * geo.q];
        let per_sample = (geo.k * geo.p * geo.q.next_multiple_of(4))
            .max(geo.c * (geo.h + 2 * geo.params.padding[0]) * tiles::weight_grad(&geo, false).wp);
        // Over batch chunks dW is a sum: each chunk's dW goes to its slot, then the slots are added in
        // order (split_sum.wgsl), so the result does not depend on timing.
        let mut job = self.job();
        self.reduce_batches(&mut job, &geo, per_sample, &dw.buffer, dw.len(), |job, cg, n0, out| {
            let xc = self.batch_slice(job, &x.buffer, xs, n0, cg.n)?;
            let dyc = self.batch_slice(job, &dy.buffer, ys, n0, cg.n)?;
            match self.kernels() {
                Kernels::Reference => self.run(job, &kernels::WEIGHT_GRAD, cg, 0, &[&xc, &dyc], out, dw.len()),
                Kernels::Tuned => self.weight_grad_tiled(job, cg, &xc, &dyc, out, dw.len()),
            }
        })?;
        job.finish()
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
        let dx = self.alloc("input gradient dX", &geo.input_shape())?;
        self.input_grad_into(dy, w, params, &dx)?;
        Ok(dx)
    }

    /// [`Context::input_grad`] into an existing tensor of shape `[N, C, H, W]`, whose shape gives the
    /// input size. Every element of `dx` is overwritten.
    ///
    /// # Errors
    /// As [`Context::input_grad`], and a `dx` of the wrong shape or that is one of the inputs.
    pub fn input_grad_into(&self, dy: &Tensor, w: &Tensor, params: &Conv2dParams, dx: &Tensor) -> Result<()> {
        let [_, _, h, wd] = dx.shape4("input gradient dX")?;
        let geo = params.geometry_for_input_grad(dy.shape4("output gradient dY")?, w.shape4("weights W")?, [h, wd])?;
        self.check_out(dx, &geo.input_shape(), &[dy, w])?;
        self.check_binding("weights W", w.len())?;
        let [xs, ys] = [geo.c * geo.h * geo.w, geo.k * geo.p * geo.q];
        let fwd = Self::input_grad_as_forward(&geo);
        let spread = fwd.as_ref().map_or(0, |f| geo.k * f.h * tiles::forward(f, geo.params.stride[0] > 1).wp);
        let mut job = self.job();
        self.for_batches(&mut job, &geo, xs.max(ys).max(spread), |job, cg, n0| {
            let dyc = self.batch_slice(job, &dy.buffer, ys, n0, cg.n)?;
            let dxc = self.batch_out(&dx.buffer, xs, n0, cg.n)?;
            match (self.kernels(), Self::input_grad_as_forward(cg)) {
                (Kernels::Tuned, Some(f)) => self.input_grad_tiled(job, cg, &f, &dyc, &w.buffer, &dxc),
                // Padding beyond the dilated kernel keeps the gather kernel.
                _ => self.run(job, &kernels::INPUT_GRAD, cg, 0, &[&dyc, &w.buffer], &dxc, cg.n * xs),
            }?;
            self.batch_done(job, &dxc, &dx.buffer, xs, n0, cg.n);
            Ok(())
        })?;
        job.finish()
    }

    /// The input gradient as the stride-1 valid correlation of dY, spread by the stride into a zero
    /// frame (`scatter_dy.wgsl`), with the flipped filters: the geometry of that forward pass, whose
    /// input is `H + dh·(S−1)` by `W + dw·(T−1)` and whose output is `N×C×H×W`. `None` when the padding
    /// exceeds the dilated kernel (the frame would need a negative width).
    fn input_grad_as_forward(geo: &Conv2dGeometry) -> Option<Conv2dGeometry> {
        let pr = &geo.params;
        let eh = pr.dilation[0] * (geo.s - 1);
        let ew = pr.dilation[1] * (geo.t - 1);
        if pr.padding[0] > eh || pr.padding[1] > ew {
            return None;
        }
        let params = Conv2dParams::new().dilation(pr.dilation[0], pr.dilation[1]).groups(pr.groups);
        let fwd = Conv2dGeometry::new(geo.n, geo.k, [geo.h + eh, geo.w + ew], geo.c, [geo.s, geo.t], params).ok()?;
        (fwd.output_shape() == geo.input_shape()).then_some(fwd)
    }

    fn input_grad_tiled(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        fwd: &Conv2dGeometry,
        dy: &wgpu::Buffer,
        w: &wgpu::Buffer,
        dx: &wgpu::Buffer,
    ) -> Result<()> {
        let flipped = self.temp("flipped weights", &[geo.c, geo.filters_per_group(), geo.s, geo.t])?;
        let u = ConvUniform::new(geo, 0, u32_of(flipped.len())?, 0);
        job.dispatch(&kernels::FLIP_WEIGHTS, &Variant::none(), bytemuck::bytes_of(&u), &[w, &flipped.buffer], u.total)?;
        let pr = &geo.params;
        let mut plan = tiles::forward(fwd, pr.stride[0] > 1);
        let (hp, wp) = (fwd.h, plan.wp);
        let (oh, ow) = (pr.dilation[0] * (geo.s - 1) - pr.padding[0], pr.dilation[1] * (geo.t - 1) - pr.padding[1]);
        let mut uf = ConvUniform::new(fwd, 0, 0, 0);
        // Rows of the spread dY hold data only every sh rows, from dh·(S−1) − ph on: skip the others.
        let sh = pr.stride[0];
        uf.row_step = u32_of(sh)?;
        uf.row_off = u32_of((sh - oh % sh) % sh)?;
        uf.i_step = u32_of(sh / gcd(sh, geo.params.dilation[0]))?;
        // Columns hold data only every sw columns, from ow on. Where sw divides the tile width, every
        // tile starts on the same phase, and the multiply-adds by the zeros between are left out.
        let sw = pr.stride[1];
        let phase = (sw - ow % sw) % sw;
        // Where it can, the kernel reads dY itself, framed by oh rows and ow columns of zeros that it
        // masks: at stride 1 where the frame is whole vec4s; strided where the tiles also start on the
        // same element of a vec4 of dY's rows, whose data columns a window then reads consecutively
        // (neither the frame nor the inserted zeros are copied or loaded).
        let in_place = plan.vec4
            && geo.q.is_multiple_of(4)
            && if sw == 1 { sh == 1 && ow.is_multiple_of(4) } else { plan.bq.is_multiple_of(4 * sw) };
        if sw > 1 && plan.bq.is_multiple_of(sw) {
            let lead =
                isize::try_from(ow / sw).map_err(|_| Error::Overflow { what: "frame", detail: ow.to_string() })?;
            plan.cols = Some(Cols { step: sw, phase, lead: in_place.then_some(-lead) });
        }
        if in_place {
            uf.hp = u32_of(geo.p)?;
            uf.wp = u32_of(geo.q)?;
            uf.ph = u32_of(oh)?;
            uf.pw = u32_of(ow)?;
            let none = self.placeholder();
            return self.forward_tiled_on(job, fwd, &plan, Pad::Mask, uf, 0, dy, &flipped.buffer, none, dx);
        }
        let spread = if pr.stride == [1, 1] {
            // Nothing to spread: dY framed by oh rows and ow columns of zeros is a padded input.
            let planes =
                Conv2dGeometry::new(geo.n, geo.k, [geo.p, geo.q], 1, [1, 1], Conv2dParams::new().padding(oh, ow))?;
            self.padded_input(job, &planes, dy, wp)?.0
        } else {
            let spread = self.temp("spread output gradient", &[geo.n, geo.k, hp, wp])?;
            let mut u = ConvUniform::new(geo, 0, u32_of(geo.n * geo.k * hp)?, 0);
            u.hp = u32_of(hp)?;
            u.wp = u32_of(wp)?;
            let bufs = [dy, &spread.buffer];
            job.dispatch(&kernels::SCATTER_DY, &Variant::none(), bytemuck::bytes_of(&u), &bufs, u.total)?;
            spread
        };
        uf.hp = u32_of(hp)?;
        uf.wp = u32_of(wp)?;
        self.forward_tiled_on(
            job,
            fwd,
            &plan,
            Pad::Copy,
            uf,
            0,
            &spread.buffer,
            &flipped.buffer,
            self.placeholder(),
            dx,
        )
    }

    /// Bias gradient on a device tensor: `dB[k] = Σ_n Σ_p Σ_q dY[n,k,p,q]`, `K` elements.
    ///
    /// # Errors
    /// A `dY` that is not 4-D or has a zero dimension, a tensor from another context, wgpu errors.
    pub fn bias_grad(&self, dy: &Tensor) -> Result<Tensor> {
        let [_, k, _, _] = dy.shape4("output gradient dY")?;
        let db = self.alloc("bias gradient dB", &[k])?;
        self.bias_grad_into(dy, &db)?;
        Ok(db)
    }

    /// [`Context::bias_grad`] into an existing tensor of shape `[K]`.
    ///
    /// # Errors
    /// As [`Context::bias_grad`], and a `db` of the wrong shape or that is `dy` itself.
    pub fn bias_grad_into(&self, dy: &Tensor, db: &Tensor) -> Result<()> {
        let [n, k, p, q] = dy.shape4("output gradient dY")?;
        // dB depends only on dY: a 1×1 layer over a P×Q input with K groups has exactly dY's shape.
        let geo = Conv2dGeometry::new(n, k, [p, q], k, [1, 1], Conv2dParams::default().groups(k))?;
        self.check_out(db, &[k], &[dy])?;
        let ys = k * p * q;
        let mut job = self.job();
        self.reduce_batches(&mut job, &geo, ys, &db.buffer, k, |job, cg, n0, out| {
            let dyc = self.batch_slice(job, &dy.buffer, ys, n0, cg.n)?;
            self.run(job, &kernels::BIAS_GRAD, cg, 0, &[&dyc], out, k)
        })?;
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
        if inputs.iter().any(|t| std::ptr::eq(*t, out)) {
            return Err(Error::shape("output tensor", "a tensor distinct from the inputs", "one of the inputs"));
        }
        Ok(())
    }

    /// Runs a simple convolution kernel with `total` invocations (one per output element), binding
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
        let uniform = ConvUniform::new(geo, flags, total32, 0);
        let buffers: Vec<&wgpu::Buffer> = inputs.iter().copied().chain(std::iter::once(out)).collect();
        job.dispatch(spec, &Variant::none(), bytemuck::bytes_of(&uniform), &buffers, total32)
    }

    /// Copies `x` into a zero-padded `N×C×(H+2ph)×wp` tensor (`wp ≥ W + 2pw`, a multiple of 4
    /// for the vec4 stores of `pad_input.wgsl`); returns it and the uniform with the padded sizes set.
    fn padded_input(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        x: &wgpu::Buffer,
        wp: usize,
    ) -> Result<(Tensor, ConvUniform)> {
        let hp = geo.h + 2 * geo.params.padding[0];
        let xp = self.temp("padded input", &[geo.n, geo.c, hp, wp])?;
        let mut u = ConvUniform::new(geo, 0, u32_of(geo.n * geo.c * hp)?, 0);
        u.hp = u32_of(hp)?;
        u.wp = u32_of(wp)?;
        let kernel = if geo.w.is_multiple_of(4) { &kernels::PAD_INPUT_VEC4 } else { &kernels::PAD_INPUT };
        job.dispatch(kernel, &Variant::none(), bytemuck::bytes_of(&u), &[x, &xp.buffer], u.total)?;
        Ok((xp, u))
    }

    /// The tuned weight gradient: pad the input, the register-tiled implicit GEMM over a split
    /// reduction, then the ordered sum of the splits.
    fn weight_grad_tiled(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        x: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        dw: &wgpu::Buffer,
        len: usize,
    ) -> Result<()> {
        let sharing = self.subgroup_sharing();
        let plan = tiles::weight_grad(geo, sharing.is_some());
        let rows = geo.n * geo.p;
        // Enough independent sums to fill the adapter, no more partial results than fit one binding.
        let want: usize = if self.is_software() { 512 } else { 16_384 };
        let max_splits = (self.limits().max_storage_buffer_binding_size as usize / 4 / len).max(1);
        let splits = want.div_ceil(plan.tiles).clamp(1, rows.min(max_splits));
        let chunk = rows.div_ceil(splits);
        let splits = rows.div_ceil(chunk);
        let (xp, mut u) = self.padded_input(job, geo, x, plan.wp)?;
        // Where a subgroup shares its dY loads, one filter tile's tap tiles fill whole subgroups.
        let lanes = match (plan.share, sharing) {
            (Sharing::Subgroup, Some(sg)) => plan.rtiles.next_multiple_of(sg as usize),
            _ => plan.rtiles,
        };
        u.total = u32_of(geo.params.groups * plan.ktiles * lanes * splits)?;
        u.lanes = u32_of(lanes)?;
        u.ktiles = u32_of(plan.ktiles)?;
        u.rtiles = u32_of(plan.rtiles)?;
        u.splits = u32_of(splits)?;
        u.chunk = u32_of(chunk)?;
        let partial = if splits > 1 { Some(self.temp("weight-gradient partial sums", &[splits, len])?) } else { None };
        let out = partial.as_ref().map_or(dw, |p| &p.buffer);
        match plan.window {
            Some(wd) => {
                // dY with its rows padded to Qp, a multiple of 4, for aligned vec4 loads: pad_input
                // over the N·K planes of P×Q with no padding but the extra columns. Rows already
                // of a multiple of 4 are read in place.
                let qp = geo.q.next_multiple_of(4);
                let dyp = if qp == geo.q {
                    None
                } else {
                    let planes = Conv2dGeometry::new(geo.n, geo.k, [geo.p, geo.q], 1, [1, 1], Conv2dParams::new())?;
                    let dyp = self.temp("padded output gradient", &[geo.n, geo.k, geo.p, qp])?;
                    let mut ud = ConvUniform::new(&planes, 0, u32_of(geo.n * geo.k * geo.p)?, 0);
                    ud.wp = u32_of(qp)?;
                    let bufs = [dy, &dyp.buffer];
                    job.dispatch(&kernels::PAD_INPUT, &Variant::none(), bytemuck::bytes_of(&ud), &bufs, ud.total)?;
                    Some(dyp)
                };
                let dyp = dyp.as_ref().map_or(dy, |t| &t.buffer);
                u.qtiles = u32_of(qp)?;
                let variant = tiled::weight_grad_vec4(plan.bk, plan.br, wd, plan.share);
                let bufs = [&xp.buffer, &xp.buffer, dyp, dyp, out];
                job.dispatch(&kernels::WEIGHT_GRAD_VEC4, &variant, bytemuck::bytes_of(&u), &bufs, u.total)?;
            }
            None => {
                let variant = tiled::weight_grad(plan.bk, plan.br);
                let bufs = [&xp.buffer, dy, out];
                job.dispatch(&kernels::WEIGHT_GRAD_TILED, &variant, bytemuck::bytes_of(&u), &bufs, u.total)?;
            }
        }
        if let Some(partial) = partial {
            u.total = u32_of(len)?;
            job.dispatch(
                &kernels::SPLIT_SUM,
                &Variant::none(),
                bytemuck::bytes_of(&u),
                &[&partial.buffer, dw],
                u.total,
            )?;
        }
        Ok(())
    }

    /// Spreads `workgroups` over a 2-D grid within `max_compute_workgroups_per_dimension`.
    pub(crate) fn grid(&self, kernel: &str, workgroups: u32) -> Result<[u32; 2]> {
        let max = self.limits().max_compute_workgroups_per_dimension.max(1);
        let gx = workgroups.clamp(1, max);
        let gy = workgroups.div_ceil(gx).max(1);
        if gy > max {
            return Err(Error::DeviceLimit {
                what: format!("{kernel} dispatch of {workgroups} workgroups"),
                needed: u64::from(workgroups),
                limit: u64::from(max) * u64::from(max),
                limit_name: "max_compute_workgroups_per_dimension (squared)",
            });
        }
        Ok([gx, gy])
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

    // ---- ndarray conveniences -------------------------------------------------------------------

    /// [`Context::forward`] on host arrays: uploads, runs, downloads.
    ///
    /// # Errors
    /// As [`Context::forward`] and [`Context::download`].
    pub fn conv2d(
        &self,
        x: ArrayView4<f32>,
        w: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
        params: &Conv2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry(crate::dims4(&x), crate::dims4(&w))?;
        let b = bias.map(|b| self.upload(b)).transpose()?;
        let y = self.forward(&self.upload(x)?, &self.upload(w)?, b.as_ref(), params)?;
        self.download::<Ix4>(&y)
    }

    /// [`Context::weight_grad`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::weight_grad`] and [`Context::download`].
    pub fn conv2d_weight_grad(
        &self,
        x: ArrayView4<f32>,
        dy: ArrayView4<f32>,
        kernel: [usize; 2],
        params: &Conv2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry_for_weight_grad(crate::dims4(&x), crate::dims4(&dy), kernel)?;
        let dw = self.weight_grad(&self.upload(x)?, &self.upload(dy)?, kernel, params)?;
        self.download::<Ix4>(&dw)
    }

    /// [`Context::input_grad`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::input_grad`] and [`Context::download`].
    pub fn conv2d_input_grad(
        &self,
        dy: ArrayView4<f32>,
        w: ArrayView4<f32>,
        input_size: [usize; 2],
        params: &Conv2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry_for_input_grad(crate::dims4(&dy), crate::dims4(&w), input_size)?;
        let dx = self.input_grad(&self.upload(dy)?, &self.upload(w)?, input_size, params)?;
        self.download::<Ix4>(&dx)
    }

    /// [`Context::bias_grad`] on a host array.
    ///
    /// # Errors
    /// As [`Context::bias_grad`] and [`Context::download`].
    pub fn conv2d_bias_grad(&self, dy: ArrayView4<f32>) -> Result<Array1<f32>> {
        let db = self.bias_grad(&self.upload(dy)?)?;
        self.download::<Ix1>(&db)
    }

    // ---- the single-channel form ----------------------------------------------------------------

    /// The single-channel layer: one `U×V` image correlated with a bank of `K` filters of `S×T`,
    /// `Y^k(p,q) = Σ_i Σ_j X(p+i, q+j) · W^k(i,j)`, giving `K×(U−S+1)×(V−T+1)`.
    ///
    /// # Errors
    /// A filter larger than the image, a zero dimension, device limits, wgpu errors.
    pub fn correlate(&self, image: ArrayView2<f32>, filters: ArrayView3<f32>) -> Result<Array3<f32>> {
        let y = self.conv2d(
            image.insert_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)),
            filters.insert_axis(ndarray::Axis(1)),
            None,
            &Conv2dParams::default(),
        )?;
        Ok(y.index_axis_move(ndarray::Axis(0), 0))
    }

    /// The single-channel weight gradient: `∂J/∂W^k(i,j) = Σ_p Σ_q X(p+i, q+j) · ∂J/∂Y^k(p,q)`, the
    /// valid correlation of the `U×V` image with each `P×Q` output gradient, giving `K×S×T` with
    /// `S = U−P+1`, `T = V−Q+1`.
    ///
    /// # Errors
    /// An output gradient larger than the image, a zero dimension, device limits, wgpu errors.
    pub fn correlate_weight_grad(&self, image: ArrayView2<f32>, grad_output: ArrayView3<f32>) -> Result<Array3<f32>> {
        let (u, v) = image.dim();
        let (_, p, q) = grad_output.dim();
        let s = (u + 1).checked_sub(p).filter(|&s| s > 0);
        let t = (v + 1).checked_sub(q).filter(|&t| t > 0);
        let (Some(s), Some(t)) = (s, t) else {
            return Err(Error::shape(
                "output gradient size (at most the image size)",
                format!("≤ {u}×{v}"),
                format!("{p}×{q}"),
            ));
        };
        let dw = self.conv2d_weight_grad(
            image.insert_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)),
            grad_output.insert_axis(ndarray::Axis(0)),
            [s, t],
            &Conv2dParams::default(),
        )?;
        Ok(dw.index_axis_move(ndarray::Axis(1), 0))
    }

    /// The single-channel input gradient: `∂J/∂X(u,v) = Σ_k Σ_i Σ_j ∂J/∂Y^k(u−i, v−j) · W^k(i,j)`, a
    /// `U×V` image with `U = P+S−1`, `V = Q+T−1`.
    ///
    /// # Errors
    /// Filters and gradients of different counts, a zero dimension, device limits, wgpu errors.
    pub fn correlate_input_grad(&self, grad_output: ArrayView3<f32>, filters: ArrayView3<f32>) -> Result<Array2<f32>> {
        let (_, p, q) = grad_output.dim();
        let (_, s, t) = filters.dim();
        let size = [p.saturating_add(s).saturating_sub(1), q.saturating_add(t).saturating_sub(1)];
        let dx = self.conv2d_input_grad(
            grad_output.insert_axis(ndarray::Axis(0)),
            filters.insert_axis(ndarray::Axis(1)),
            size,
            &Conv2dParams::default(),
        )?;
        Ok(dx.index_axis_move(ndarray::Axis(0), 0).index_axis_move(ndarray::Axis(0), 0))
    }
}

/// Greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A size as `u32`, for a uniform field or an invocation count.
pub(crate) fn u32_of(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Overflow { what: "kernel size parameter", detail: format!("{v} > 2^32−1") })
}

/// Tile sizes chosen per adapter and shape.
pub(crate) mod tiles {
    use crate::geometry::Conv2dGeometry;
    use crate::gpu::tiled::{Cols, Rows, Sharing, Window};

    /// How the tiled forward pass covers a layer.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct ForwardPlan {
        /// Filters per tile.
        pub(crate) bk: usize,
        /// Output columns per tile.
        pub(crate) bq: usize,
        /// The specialised kernel row, when the input window of a tile row stays small.
        pub(crate) window: Option<Window>,
        /// Whether the vec4 kernel runs (a window; a multiple of 4 filters per tile, or one tile).
        pub(crate) vec4: bool,
        /// Several output rows per tile (vec4 kernel only); `None` is one row.
        pub(crate) rows: Option<Rows>,
        /// The input columns that hold data, on a spread dY (vec4 kernel only); `None`: all.
        pub(crate) cols: Option<Cols>,
        pub(crate) qtiles: usize,
        pub(crate) ptiles: usize,
        pub(crate) ktiles: usize,
        /// Width of the padded input: the last tile of a row reads up to column
        /// (qtiles·BQ − 1)·sw + (T−1)·dw; a multiple of 4 (rows are written as vec4s).
        pub(crate) wp: usize,
    }

    /// The tile sizes and padded width of the tiled forward pass for `geo`; `skips_rows` when the
    /// input is a spread dY whose zero rows the kernel skips (which needs one row per tile). The same
    /// on every adapter for now: only lavapipe has been measured (docs/BENCHMARKS.md).
    pub(crate) fn forward(geo: &Conv2dGeometry, skips_rows: bool) -> ForwardPlan {
        let (mut bk, bq, window) = forward_tiles(geo);
        let pr = &geo.params;
        let qtiles = geo.q.div_ceil(bq);
        let padded = geo.w + 2 * pr.padding[1];
        // With fewer than 4 filters per group the vec4 kernel still reads the input as vec4s, and
        // computes only the real filters (a single tile, so its weights start a vec4).
        let vec4 = window.is_some();
        let wp = match window {
            Some(wd) if vec4 => {
                if bk >= 4 {
                    bk -= bk % 4;
                }
                // Rows start on a multiple of 4 floats, and the last tile's whole vec4s stay inside.
                padded.max((qtiles - 1) * bq * pr.stride[1] + wd.len(bq).div_ceil(4) * 4).next_multiple_of(4)
            }
            _ => padded.max((qtiles * bq - 1) * pr.stride[1] + (geo.t - 1) * pr.dilation[1] + 1).next_multiple_of(4),
        };
        // Fewer than 4 filters give each loaded input value too few multiply-adds on one row: the
        // input gradients of 1- and 3-channel layers. Several rows share the loaded rows, while the
        // fully unrolled kernel (bk·br·S·T·bq multiply-adds per channel) stays of moderate size.
        // (Tiles of 2 or 3 rows of 8 filters measured no faster on the seed and MNIST forward passes.)
        let br = geo.p.min(4);
        let rows = (vec4 && bk < 4 && !skips_rows && br > 1 && bk * br * geo.s * geo.t * bq <= 2048).then_some(Rows {
            br,
            s: geo.s,
            sh: pr.stride[0],
            dh: pr.dilation[0],
        });
        let ptiles = geo.p.div_ceil(rows.map_or(1, |r| r.br));
        let ktiles = geo.filters_per_group().div_ceil(bk);
        ForwardPlan { bk, bq, window, vec4, rows, cols: None, qtiles, ptiles, ktiles, wp }
    }

    fn forward_tiles(geo: &Conv2dGeometry) -> (usize, usize, Option<Window>) {
        // Tiles of 16 columns, and of 8 filters, or 16 for kernels up to 5 wide: spills and all (the
        // accumulators do not fit a CPU's registers), each loaded input then feeds 8 or 16 sums. On
        // lavapipe 16 filters ran the resnet and deep layers 18–26% faster than 8 (with the weights
        // shared in a subgroup), MNIST 12%, and 24 or 32 slower; the 7×7 stem ran slower with 16.
        // Narrower tiles keep rows from wasting much of their last tile: the width with the fewest
        // columns computed, counting about 4 columns' worth of set-up and window per tile, the wider on
        // a tie (MNIST's 24 columns: 2×12 rather than 2×16, 15% faster; the seed's 252: 16×16 rather
        // than 21×12).
        let bq = [16, 12, 8, 4].into_iter().min_by_key(|&bq| geo.q.div_ceil(bq) * (bq + 4)).unwrap_or(16);
        let pr = &geo.params;
        let window = Window { t: geo.t, sw: pr.stride[1], dw: pr.dilation[1] };
        let window = (geo.t <= 11 && window.len(bq) <= 64).then_some(window);
        let kpg = geo.filters_per_group();
        let bk = if window.is_some() && geo.t <= 5 && kpg >= 16 { 16 } else { kpg.min(8) };
        (bk, bq, window)
    }

    /// How the tiled weight gradient covers a layer.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct WeightGradPlan {
        /// Filters per tile.
        pub(crate) bk: usize,
        /// Taps per tile (scalar kernel), or kernel rows per tile (vec4 kernel).
        pub(crate) br: usize,
        /// The kernel row the vec4 kernel is generated for; `None` runs the scalar kernel.
        pub(crate) window: Option<Window>,
        /// Whether a subgroup shares its dY loads (the vec4 kernel only).
        pub(crate) share: Sharing,
        pub(crate) ktiles: usize,
        pub(crate) rtiles: usize,
        /// Groups × filter tiles × tap (or row) tiles.
        pub(crate) tiles: usize,
        /// Width of the padded input, a multiple of 4.
        pub(crate) wp: usize,
    }

    /// The tiles and padded width of the tiled weight gradient for `geo`.
    /// The tiles and padded width of the tiled weight gradient for `geo`; `shares` when the adapter
    /// lets a subgroup share its dY loads ([`crate::Context`]'s `subgroup_sharing`).
    pub(crate) fn weight_grad(geo: &Conv2dGeometry, shares: bool) -> WeightGradPlan {
        let kpg = geo.filters_per_group();
        let bk = kpg.min(8);
        let pr = &geo.params;
        let wd = Window { t: geo.t, sw: pr.stride[1], dw: pr.dilation[1] };
        let span = 3 * wd.sw + (wd.t - 1) * wd.dw + 1;
        let padded = geo.w + 2 * pr.padding[1];
        // The vec4 kernel measured 15–30% faster than the scalar one on the resnet and stem layers on
        // lavapipe, and 2× on MNIST (24 columns) and the deep layer (14) once padding dY stopped
        // costing integer divisions per element; rows of fewer than two blocks of 4 keep the scalar
        // kernel, where the vec4 one would be mostly its scalar tail.
        if geo.t <= 11 && span <= 64 && geo.q >= 8 {
            // Rows start on a multiple of 4 floats; the last full block of 4 columns reads whole vec4s.
            let q4 = geo.q / 4 * 4;
            let reach = if q4 >= 4 { (q4 - 4) * pr.stride[1] + span.div_ceil(4) * 4 } else { 0 };
            let wp = padded.max(reach).next_multiple_of(4);
            // `bk` filters × as many whole kernel rows as keep the tile near `acc` accumulators.
            let plan = |bk: usize, acc: usize| {
                let br = (acc / (bk * geo.t)).clamp(1, geo.s);
                let rtiles = geo.channels_per_group() * geo.s.div_ceil(br);
                // A subgroup shares dY among tap tiles of one filter tile: at least 8 of them.
                let share = if shares && rtiles >= 8 { Sharing::Subgroup } else { Sharing::PerLane };
                let ktiles = kpg.div_ceil(bk);
                WeightGradPlan {
                    bk,
                    br,
                    window: Some(wd),
                    share,
                    ktiles,
                    rtiles,
                    tiles: pr.groups * ktiles * rtiles,
                    wp,
                }
            };
            // Where dY is shared, 16 filters × about 144 accumulators (2 rows of a 5×5, 3 of a 3×3)
            // ran the resnet, deep and stem layers 1.3–1.6× faster on lavapipe than 8 × 96; unshared,
            // 16 filters cost 16 loads of dY per step and ran slower.
            let wide = plan(16, 144);
            if kpg >= 16 && wide.share == Sharing::Subgroup {
                return wide;
            }
            return plan(bk, 96);
        }
        // 8×8 measured best of 4×8, 8×8, 4×16, 8×4 and 2×16 on lavapipe for the scalar kernel.
        let ktiles = kpg.div_ceil(bk);
        let taps = geo.channels_per_group() * geo.s * geo.t;
        let br = if taps >= 8 { 8 } else { 4 };
        let rtiles = taps.div_ceil(br);
        let wp = padded.next_multiple_of(4);
        let share = Sharing::PerLane;
        WeightGradPlan { bk, br, window: None, share, ktiles, rtiles, tiles: pr.groups * ktiles * rtiles, wp }
    }
}
