//! The operations of the public API: the forward pass, the weight, input and bias gradients, the
//! casts and the training-loop helpers on device tensors, and the ndarray-in, ndarray-out forms.
//!
//! Each operation validates its tensors, has the planner build its program ([`crate::plan::conv`]:
//! every pass, copy and temporary, as plain data) and hands it to the engine (`gpu/engine.rs`), the
//! one code that records device work. Nothing here decides how a layer runs.

#[cfg(not(target_arch = "wasm32"))]
use ndarray::{Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Ix1, Ix3, Ix4};

use crate::activation::Activation;
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::geometry::{
    Conv1dParams, Conv2dGeometry, Conv2dParams, ConvTranspose1dParams, ConvTranspose2dGeometry, ConvTranspose2dParams,
    Layout,
};
use crate::gpu::context::Context;
use crate::gpu::engine;
use crate::gpu::tensor::Tensor;
use crate::gpu::tune::TuneReport;
use crate::plan::key::ProgramKey;
use crate::plan::program::Program;
use crate::plan::{self, ForwardPlan, InputGradPlan, Op, WeightGradPlan};

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
        if let Some(b) = bias
            && b.shape() != [geo.k]
        {
            return Err(Error::shape("bias shape", format!("[{}]", geo.k), format!("{:?}", b.shape())));
        }
        let inputs: Vec<&Tensor> = [x, w].into_iter().chain(bias).collect();
        self.check_out(y, &geo.output_shape(), &inputs)?;
        let mut operands = vec![("input X", x), ("weights W", w)];
        operands.extend(bias.map(|b| ("bias", b)));
        let elem = operands_elem(&operands)?;
        check_out_elem("output Y", y, elem)?;
        let strategy = self.strategy_for(Op::Forward, &geo)?;
        let key = ProgramKey::Conv { op: Op::Forward, geo, bias: bias.is_some(), elem, out: y.dtype(), strategy };
        let program = self.program_for(key)?;
        engine::execute(self, &program, &inputs, &[y])
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
        if geo.n == 0 {
            // Nothing runs on an empty batch: nothing to tune.
            return Ok(self.strategy());
        }
        crate::gpu::tune::resolve(self, op, geo)
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
        // Resolved once, for the exact layer: each batch chunk is planned with the same choice.
        let strategy = self.strategy_for(Op::WeightGrad, &geo)?;
        let key = ProgramKey::Conv { op: Op::WeightGrad, geo, bias: false, elem, out: dw.dtype(), strategy };
        let program = self.program_for(key)?;
        engine::execute(self, &program, &[x, dy], &[dw])
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
        let strategy = self.strategy_for(Op::InputGrad, &geo)?;
        let key = ProgramKey::Conv { op: Op::InputGrad, geo, bias: false, elem, out: dx.dtype(), strategy };
        let program = self.program_for(key)?;
        engine::execute(self, &program, &[dy, w], &[dx])
    }

    /// Bias gradient on a device tensor: `dB[k] = Σ_n Σ_p Σ_q dY[n,k,p,q]`, `K` elements, with dY in
    /// `layout`.
    ///
    /// # Errors
    /// A `dY` that is not 4-D or has a zero dimension but the batch (an empty batch gives zeros), a
    /// tensor from another context, wgpu errors.
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
        let key = ProgramKey::BiasGrad { dims, layout, elem: dy.dtype(), out: db.dtype() };
        let program = self.program_for(key)?;
        engine::execute(self, &program, &[dy], &[db])
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

    /// The program `op` runs the layer `geo` (in its own layout) with on this context, with operands
    /// and result of `elem` (the forward pass without a bias): every pass with its kernel, variant and
    /// bindings, each binding's bytes, the temporaries and the chunk boundaries. Printed (`{}`) it is
    /// what `convgrad program` shows.
    ///
    /// # Errors
    /// As the operation: a forced strategy the layer cannot run, a sample or pass beyond the binding
    /// limit.
    pub fn program(&self, op: Op, geo: &Conv2dGeometry, elem: Elem) -> Result<Program> {
        let strategy = self.strategy_for(op, geo)?;
        ProgramKey::Conv { op, geo: *geo, bias: false, elem, out: elem, strategy }.build(self.profile())
    }
}

impl Context {
    // ---- the transposed convolution: the convolution's programs, roles exchanged ---------------

    /// Transposed convolution (PyTorch's `conv_transpose2d`) on device tensors: `X` is
    /// `[N, Cin, H, W]`, `W` is `[Cin, Cout/G, S, T]`, the optional bias has `Cout` elements; the
    /// result `Y` is `[N, Cout, Ho, Wo]` (sizes and formula in [`ConvTranspose2dParams`]). It runs as
    /// the input gradient of the convolution [`ConvTranspose2dGeometry::conv`], with that op's plans.
    ///
    /// # Errors
    /// Shape and parameter errors of [`ConvTranspose2dParams::geometry`], a bias of the wrong length,
    /// and as [`Context::input_grad`].
    pub fn conv_transpose(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        params: &ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let geo = params.geometry(x.shape4("input X")?, w.shape4("weights W")?)?;
        let y = self.alloc_as("output Y", &geo.output_shape(), x.dtype())?;
        self.conv_transpose_into(x, w, bias, params, &y)?;
        Ok(y)
    }

    /// [`Context::conv_transpose`] into an existing tensor of shape `[N, Cout, Ho, Wo]`. Every
    /// element of `y` is overwritten.
    ///
    /// # Errors
    /// As [`Context::conv_transpose`], and a `y` of the wrong shape or that is one of the inputs.
    pub fn conv_transpose_into(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        params: &ConvTranspose2dParams,
        y: &Tensor,
    ) -> Result<()> {
        let geo = params.geometry(x.shape4("input X")?, w.shape4("weights W")?)?;
        if let Some(b) = bias
            && b.shape() != [geo.conv.c]
        {
            return Err(Error::shape("bias shape", format!("[{}]", geo.conv.c), format!("{:?}", b.shape())));
        }
        let inputs: Vec<&Tensor> = [x, w].into_iter().chain(bias).collect();
        self.check_out(y, &geo.output_shape(), &inputs)?;
        let mut operands = vec![("input X", x), ("weights W", w)];
        operands.extend(bias.map(|b| ("bias", b)));
        let elem = operands_elem(&operands)?;
        check_out_elem("output Y", y, elem)?;
        let strategy = self.strategy_for(Op::InputGrad, &geo.conv)?;
        let key = ProgramKey::Transposed { op: Op::Forward, geo, bias: bias.is_some(), elem, out: y.dtype(), strategy };
        engine::execute(self, &*self.program_for(key)?, &inputs, &[y])
    }

    /// The input gradient of [`Context::conv_transpose`]: `dY` is `[N, Cout, Ho, Wo]`, `W` is
    /// `[Cin, Cout/G, S, T]`; the result `dX` is `[N, Cin, H, W]` (`H` follows from `Ho` and the
    /// output padding). The forward pass of the convolution the layer is computed as.
    ///
    /// `dX[n,k,p,q] = Σ_cg Σ_i Σ_j dY[n, g·Cout/G + cg, p·sh + i·dh − pt, q·sw + j·dw − pl] · W[k,cg,i,j]`
    ///
    /// # Errors
    /// As [`Context::conv_transpose`], and a `dY` whose size no input size gives.
    pub fn conv_transpose_input_grad(&self, dy: &Tensor, w: &Tensor, params: &ConvTranspose2dParams) -> Result<Tensor> {
        let geo = params.geometry_for_input_grad(dy.shape4("output gradient dY")?, w.shape4("weights W")?)?;
        let dx = self.alloc_as("input gradient dX", &geo.input_shape(), dy.dtype())?;
        self.conv_transpose_input_grad_into(dy, w, params, &dx)?;
        Ok(dx)
    }

    /// [`Context::conv_transpose_input_grad`] into an existing tensor of shape `[N, Cin, H, W]`.
    ///
    /// # Errors
    /// As [`Context::conv_transpose_input_grad`], and a `dx` of the wrong shape or that is an input.
    pub fn conv_transpose_input_grad_into(
        &self,
        dy: &Tensor,
        w: &Tensor,
        params: &ConvTranspose2dParams,
        dx: &Tensor,
    ) -> Result<()> {
        let geo = params.geometry_for_input_grad(dy.shape4("output gradient dY")?, w.shape4("weights W")?)?;
        self.check_out(dx, &geo.input_shape(), &[dy, w])?;
        let elem = operands_elem(&[("output gradient dY", dy), ("weights W", w)])?;
        check_out_elem("input gradient dX", dx, elem)?;
        let strategy = self.strategy_for(Op::Forward, &geo.conv)?;
        let key = ProgramKey::Transposed { op: Op::InputGrad, geo, bias: false, elem, out: dx.dtype(), strategy };
        engine::execute(self, &*self.program_for(key)?, &[dy, w], &[dx])
    }

    /// The weight gradient of [`Context::conv_transpose`]: `X` is `[N, Cin, H, W]`, `dY` is
    /// `[N, Cout, Ho, Wo]`, `kernel` is `[S, T]`; the result `dW` is `[Cin, Cout/G, S, T]`. The weight
    /// gradient of the convolution the layer is computed as, with dY as its input and X as its
    /// output gradient.
    ///
    /// `dW[k,cg,i,j] = Σ_n Σ_p Σ_q X[n,k,p,q] · dY[n, g·Cout/G + cg, p·sh + i·dh − pt, q·sw + j·dw − pl]`
    ///
    /// # Errors
    /// As [`Context::conv_transpose`], and a `dY` of another size than the layer's output.
    pub fn conv_transpose_weight_grad(
        &self,
        x: &Tensor,
        dy: &Tensor,
        kernel: [usize; 2],
        params: &ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let geo = params.geometry_for_weight_grad(x.shape4("input X")?, dy.shape4("output gradient dY")?, kernel)?;
        let dw = self.alloc("weight gradient dW", &geo.weight_shape())?;
        self.conv_transpose_weight_grad_into(x, dy, params, &dw)?;
        Ok(dw)
    }

    /// [`Context::conv_transpose_weight_grad`] into an existing tensor of shape `[Cin, Cout/G, S, T]`,
    /// whose shape gives the kernel size.
    ///
    /// # Errors
    /// As [`Context::conv_transpose_weight_grad`], and a `dw` of the wrong shape or that is an input.
    pub fn conv_transpose_weight_grad_into(
        &self,
        x: &Tensor,
        dy: &Tensor,
        params: &ConvTranspose2dParams,
        dw: &Tensor,
    ) -> Result<()> {
        let [_, _, s, t] = params.layout.weight_dims(dw.shape4("weight gradient dW")?);
        let geo = params.geometry_for_weight_grad(x.shape4("input X")?, dy.shape4("output gradient dY")?, [s, t])?;
        self.check_out(dw, &geo.weight_shape(), &[x, dy])?;
        let elem = operands_elem(&[("input X", x), ("output gradient dY", dy)])?;
        check_out_elem("weight gradient dW", dw, elem)?;
        let strategy = self.strategy_for(Op::WeightGrad, &geo.conv)?;
        let key = ProgramKey::Transposed { op: Op::WeightGrad, geo, bias: false, elem, out: dw.dtype(), strategy };
        // The convolution's input is dY, its output gradient X.
        engine::execute(self, &*self.program_for(key)?, &[dy, x], &[dw])
    }

    /// The program `op` of the transposed layer `geo` runs on this context (`Op::Forward`: its
    /// forward pass, without a bias), as [`Context::program`] prints a convolution's.
    ///
    /// # Errors
    /// As the operation.
    pub fn program_transposed(&self, op: Op, geo: &ConvTranspose2dGeometry, elem: Elem) -> Result<Program> {
        let conv_op = match op {
            Op::Forward => Op::InputGrad,
            Op::InputGrad => Op::Forward,
            Op::WeightGrad => Op::WeightGrad,
        };
        let strategy = self.strategy_for(conv_op, &geo.conv)?;
        ProgramKey::Transposed { op, geo: *geo, bias: false, elem, out: elem, strategy }.build(self.profile())
    }
}

impl Context {
    // ---- 1-D layers: the 2-D layers of height 1, on views of the same buffers -------------------

    /// 1-D convolution (PyTorch's `conv1d`) on device tensors: `X` `[N, C, L]`, `W` `[K, C/G, S]`, the
    /// optional bias `[K]`; the result is `[N, K, Lout]` (formula in [`Conv1dParams`]). Runs as
    /// [`Context::forward`] of the 2-D layer of height 1 on views of the same buffers.
    ///
    /// # Errors
    /// As [`Context::forward`], and tensors that are not 3-D.
    pub fn forward_1d(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, params: &Conv1dParams) -> Result<Tensor> {
        let lay = params.layout;
        let (x4, w4) =
            (x.reshape(&lay.lift_1d(x.shape3("input X")?))?, w.reshape(&lay.lift_1d(w.shape3("weights W")?))?);
        let y = self.forward(&x4, &w4, bias, &params.conv2d())?;
        y.reshape(&lay.lower_1d(y.shape4("output Y")?))
    }

    /// The weight gradient of [`Context::forward_1d`]: `X` `[N, C, L]`, `dY` `[N, K, Lout]`, the
    /// kernel size `S`; the result `dW` is `[K, C/G, S]`.
    ///
    /// # Errors
    /// As [`Context::weight_grad`], and tensors that are not 3-D.
    pub fn weight_grad_1d(&self, x: &Tensor, dy: &Tensor, kernel: usize, params: &Conv1dParams) -> Result<Tensor> {
        let lay = params.layout;
        let x4 = x.reshape(&lay.lift_1d(x.shape3("input X")?))?;
        let dy4 = dy.reshape(&lay.lift_1d(dy.shape3("output gradient dY")?))?;
        let dw = self.weight_grad(&x4, &dy4, [1, kernel], &params.conv2d())?;
        dw.reshape(&lay.lower_1d(dw.shape4("weight gradient dW")?))
    }

    /// The input gradient of [`Context::forward_1d`]: `dY` `[N, K, Lout]`, `W` `[K, C/G, S]`, the
    /// input length `L`; the result `dX` is `[N, C, L]`.
    ///
    /// # Errors
    /// As [`Context::input_grad`], and tensors that are not 3-D.
    pub fn input_grad_1d(&self, dy: &Tensor, w: &Tensor, length: usize, params: &Conv1dParams) -> Result<Tensor> {
        let lay = params.layout;
        let dy4 = dy.reshape(&lay.lift_1d(dy.shape3("output gradient dY")?))?;
        let w4 = w.reshape(&lay.lift_1d(w.shape3("weights W")?))?;
        let dx = self.input_grad(&dy4, &w4, [1, length], &params.conv2d())?;
        dx.reshape(&lay.lower_1d(dx.shape4("input gradient dX")?))
    }

    /// The bias gradient of a 1-D layer: `dB[k] = Σ_n Σ_l dY[n,k,l]` for dY `[N, K, L]` in `layout`.
    ///
    /// # Errors
    /// As [`Context::bias_grad`], and a `dy` that is not 3-D.
    pub fn bias_grad_1d(&self, dy: &Tensor, layout: Layout) -> Result<Tensor> {
        self.bias_grad(&dy.reshape(&layout.lift_1d(dy.shape3("output gradient dY")?))?, layout)
    }

    /// 1-D transposed convolution (PyTorch's `conv_transpose1d`): `X` `[N, Cin, L]`, `W`
    /// `[Cin, Cout/G, S]`, the optional bias `[Cout]`; the result is `[N, Cout, Lout]`
    /// ([`ConvTranspose1dParams`]).
    ///
    /// # Errors
    /// As [`Context::conv_transpose`], and tensors that are not 3-D.
    pub fn conv_transpose_1d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        params: &ConvTranspose1dParams,
    ) -> Result<Tensor> {
        let lay = params.layout;
        let (x4, w4) =
            (x.reshape(&lay.lift_1d(x.shape3("input X")?))?, w.reshape(&lay.lift_1d(w.shape3("weights W")?))?);
        let y = self.conv_transpose(&x4, &w4, bias, &params.conv_transpose2d())?;
        y.reshape(&lay.lower_1d(y.shape4("output Y")?))
    }

    /// The input gradient of [`Context::conv_transpose_1d`]: `dY` `[N, Cout, Lout]`, `W`
    /// `[Cin, Cout/G, S]`; the result is `[N, Cin, L]`.
    ///
    /// # Errors
    /// As [`Context::conv_transpose_input_grad`], and tensors that are not 3-D.
    pub fn conv_transpose_1d_input_grad(
        &self,
        dy: &Tensor,
        w: &Tensor,
        params: &ConvTranspose1dParams,
    ) -> Result<Tensor> {
        let lay = params.layout;
        let dy4 = dy.reshape(&lay.lift_1d(dy.shape3("output gradient dY")?))?;
        let w4 = w.reshape(&lay.lift_1d(w.shape3("weights W")?))?;
        let dx = self.conv_transpose_input_grad(&dy4, &w4, &params.conv_transpose2d())?;
        dx.reshape(&lay.lower_1d(dx.shape4("input gradient dX")?))
    }

    /// The weight gradient of [`Context::conv_transpose_1d`]: `X` `[N, Cin, L]`, `dY`
    /// `[N, Cout, Lout]`, the kernel size `S`; the result is `[Cin, Cout/G, S]`.
    ///
    /// # Errors
    /// As [`Context::conv_transpose_weight_grad`], and tensors that are not 3-D.
    pub fn conv_transpose_1d_weight_grad(
        &self,
        x: &Tensor,
        dy: &Tensor,
        kernel: usize,
        params: &ConvTranspose1dParams,
    ) -> Result<Tensor> {
        let lay = params.layout;
        let x4 = x.reshape(&lay.lift_1d(x.shape3("input X")?))?;
        let dy4 = dy.reshape(&lay.lift_1d(dy.shape3("output gradient dY")?))?;
        let dw = self.conv_transpose_weight_grad(&x4, &dy4, [1, kernel], &params.conv_transpose2d())?;
        dw.reshape(&lay.lower_1d(dw.shape4("weight gradient dW")?))
    }
}

impl Context {
    /// `t` as a new tensor of element type `to`: widened exactly, or rounded to nearest even (beyond
    /// the largest finite `f16`, ±∞); a copy where `to` is `t`'s own type. Master weights in `f32`
    /// cast to `f16` for a half-precision step, say. A tensor larger than one binding is cast in
    /// pieces (the program `plan::program::cast` builds; `gpu/half.rs` on the storage).
    ///
    /// # Errors
    /// A tensor of another context, device limits, wgpu errors.
    pub fn cast(&self, t: &Tensor, to: Elem) -> Result<Tensor> {
        self.own(t)?;
        let out = self.alloc_as("cast tensor", t.shape(), to)?;
        if t.is_empty() {
            return Ok(out);
        }
        let program = self.program_for(ProgramKey::Cast { len: t.len(), from: t.dtype(), to })?;
        engine::execute(self, &program, &[t], &[&out])?;
        Ok(out)
    }

    // ---- the training-loop helpers (`plan::train`; Adam in `gpu/train.rs`) ----------------------

    /// `out = a·x + b·y`, element-wise, on tensors of the same shape.
    ///
    /// # Errors
    /// Shapes that differ, an `out` that is `x` or `y`, a tensor from another context, wgpu errors.
    pub fn axpby(&self, a: f32, x: &Tensor, b: f32, y: &Tensor, out: &Tensor) -> Result<()> {
        for t in [x, y, out] {
            self.own_f32(t)?;
        }
        if x.shape() != y.shape() || x.shape() != out.shape() {
            return Err(Error::shape(
                "axpby operands",
                format!("{:?} for all three", x.shape()),
                format!("{:?}, {:?}, {:?}", x.shape(), y.shape(), out.shape()),
            ));
        }
        if std::ptr::eq(out, x) || std::ptr::eq(out, y) {
            return Err(Error::shape("axpby output", "a tensor distinct from the inputs", "one of the inputs"));
        }
        engine::execute(self, &plan::train::axpby(x.len(), a, b, self.profile())?, &[x, y], &[out])
    }

    /// `Y = act(Z)`, element-wise, on an `f32` tensor: the activation as a pass of its own
    /// (`shaders/activation.wgsl`; the functions and their conventions in [`Activation`]).
    ///
    /// # Errors
    /// An empty tensor, one of another context or dtype, one beyond a binding, wgpu errors.
    pub fn activate(&self, z: &Tensor, act: &Activation) -> Result<Tensor> {
        self.own_f32(z)?;
        let y = self.alloc("activation", z.shape())?;
        engine::execute(self, &plan::train::activation(z.len(), act, false, self.profile())?, &[z], &[&y])?;
        Ok(y)
    }

    /// `dZ = dY ⊙ act′(Z)`, element-wise, on `f32` tensors of one shape: the activation's backward as
    /// a pass of its own, with PyTorch's derivatives at the kinks.
    ///
    /// # Errors
    /// Shapes that differ, and as [`Context::activate`].
    pub fn activation_grad(&self, dy: &Tensor, z: &Tensor, act: &Activation) -> Result<Tensor> {
        for t in [dy, z] {
            self.own_f32(t)?;
        }
        if dy.shape() != z.shape() {
            return Err(Error::shape(
                "activation gradient operands",
                format!("{:?}", z.shape()),
                format!("{:?}", dy.shape()),
            ));
        }
        let dz = self.alloc("activation gradient", z.shape())?;
        engine::execute(self, &plan::train::activation(z.len(), act, true, self.profile())?, &[z, dy], &[&dz])?;
        Ok(dz)
    }

    /// The backward of `Y = act(Z)` with its bias gradient, in one pass: `dZ = dY ⊙ act′(Z)` and
    /// `dB[k] = Σ_{n,p,q} dZ[n,k,p,q]`, for `f32` dY and the saved pre-activation Z of one 4-D shape
    /// in `layout`. The sums are in the bias gradient's fixed order, so `dB` is, to the bit,
    /// [`Context::bias_grad`] of `dZ`, and `dZ` is [`Context::activation_grad`]'s. The weight and
    /// input gradients of the layer are then [`Context::weight_grad`] and [`Context::input_grad`] of
    /// `dZ`. Returns `(dZ, dB)`.
    ///
    /// # Errors
    /// Tensors that are not `f32`, of different shapes or not 4-D, a zero size but the batch, a
    /// sample beyond one binding, wgpu errors.
    pub fn act_bias_grad(&self, dy: &Tensor, z: &Tensor, act: &Activation, layout: Layout) -> Result<(Tensor, Tensor)> {
        let [_, k, _, _] = layout.activation_dims(dy.shape4("output gradient dY")?);
        let dz = self.alloc("pre-activation gradient dZ", dy.shape())?;
        let db = self.alloc("bias gradient dB", &[k])?;
        self.act_bias_grad_into(dy, z, act, layout, &dz, &db)?;
        Ok((dz, db))
    }

    /// [`Context::act_bias_grad`] into tensors of dY's shape and `[K]`.
    ///
    /// # Errors
    /// As [`Context::act_bias_grad`], and outputs of the wrong shape or that are inputs.
    pub fn act_bias_grad_into(
        &self,
        dy: &Tensor,
        z: &Tensor,
        act: &Activation,
        layout: Layout,
        dz: &Tensor,
        db: &Tensor,
    ) -> Result<()> {
        let dims = layout.activation_dims(dy.shape4("output gradient dY")?);
        for t in [dy, z, dz, db] {
            if t.dtype() != Elem::F32 {
                return Err(Error::DType {
                    what: "act_bias_grad tensor".into(),
                    expected: "f32".into(),
                    got: t.dtype().name().into(),
                });
            }
        }
        if z.shape() != dy.shape() {
            return Err(Error::shape(
                "saved pre-activation Z",
                format!("{:?}", dy.shape()),
                format!("{:?}", z.shape()),
            ));
        }
        self.check_out(dz, dy.shape(), &[dy, z])?;
        self.check_out(db, &[dims[1]], &[dy, z, dz])?;
        let program = plan::conv::act_bias_grad(dims, layout, act, self.profile())?;
        engine::execute(self, &program, &[dy, z], &[dz, db])
    }

    /// Sums of squares of consecutive blocks of `block` elements (the last may be shorter), computed on
    /// the device and read back: with `block = (C/G)·S·T` on a weight tensor, one value per filter.
    /// Native targets; [`Context::sum_squares_by_async`] everywhere.
    ///
    /// # Errors
    /// A zero `block`, a `block` over 32,768 elements ([`Error::Unsupported`]: one invocation sums a
    /// block, and kernels loop at most that long), a tensor from another context, wgpu errors, read-back
    /// errors.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn sum_squares_by(&self, x: &Tensor, block: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.sum_squares_by_async(x, block))
    }

    /// [`Context::sum_squares_by`] without blocking.
    ///
    /// # Errors
    /// As [`Context::sum_squares_by`].
    pub async fn sum_squares_by_async(&self, x: &Tensor, block: usize) -> Result<Vec<f32>> {
        self.own_f32(x)?;
        let program = plan::train::sum_squares_by(x.len(), block, self.profile())?;
        let sums = self.alloc("block sums", &[x.len().div_ceil(block)])?;
        engine::execute(self, &program, &[x], &[&sums])?;
        self.read_buffer_async(&sums.buffer, "block sums of squares").await
    }

    /// `Σ x[e]²` computed on the device in a fixed order (chunks of 256, then the chunk sums in order),
    /// read back as one `f32`. Native targets; [`Context::sum_squares_async`] everywhere.
    ///
    /// # Errors
    /// A tensor from another context, wgpu errors, read-back errors.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn sum_squares(&self, x: &Tensor) -> Result<f32> {
        pollster::block_on(self.sum_squares_async(x))
    }

    /// [`Context::sum_squares`] without blocking.
    ///
    /// # Errors
    /// As [`Context::sum_squares`].
    pub async fn sum_squares_async(&self, x: &Tensor) -> Result<f32> {
        self.own_f32(x)?;
        let total = self.alloc("sum of squares", &[1])?;
        engine::execute(self, &plan::train::sum_squares(x.len(), self.profile())?, &[x], &[&total])?;
        let v = self.read_buffer_async(&total.buffer, "sum of squares").await?;
        v.first().copied().ok_or_else(|| Error::Readback { what: "sum of squares".into(), message: "empty".into() })
    }
}

// ---- the ndarray-in, ndarray-out forms ------------------------------------------------------------
// They upload, run and block on the download, so they are native only; in the browser, upload, run
// the device-tensor operations and `download_async`.

#[cfg(not(target_arch = "wasm32"))]
impl Context {
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
    pub fn conv2d_bias_grad(&self, dy: ArrayView4<f32>, layout: Layout) -> Result<Array1<f32>> {
        let db = self.bias_grad(&self.upload(dy)?, layout)?;
        self.download::<Ix1>(&db)
    }

    /// [`Context::conv_transpose`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::conv_transpose`] and [`Context::download`].
    pub fn conv_transpose2d(
        &self,
        x: ArrayView4<f32>,
        w: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
        params: &ConvTranspose2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry(crate::dims4(&x), crate::dims4(&w))?;
        let b = bias.map(|b| self.upload(b)).transpose()?;
        let y = self.conv_transpose(&self.upload(x)?, &self.upload(w)?, b.as_ref(), params)?;
        self.download::<Ix4>(&y)
    }

    /// [`Context::conv_transpose_input_grad`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::conv_transpose_input_grad`] and [`Context::download`].
    pub fn conv_transpose2d_input_grad(
        &self,
        dy: ArrayView4<f32>,
        w: ArrayView4<f32>,
        params: &ConvTranspose2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry_for_input_grad(crate::dims4(&dy), crate::dims4(&w))?;
        let dx = self.conv_transpose_input_grad(&self.upload(dy)?, &self.upload(w)?, params)?;
        self.download::<Ix4>(&dx)
    }

    /// [`Context::conv_transpose_weight_grad`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::conv_transpose_weight_grad`] and [`Context::download`].
    pub fn conv_transpose2d_weight_grad(
        &self,
        x: ArrayView4<f32>,
        dy: ArrayView4<f32>,
        kernel: [usize; 2],
        params: &ConvTranspose2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry_for_weight_grad(crate::dims4(&x), crate::dims4(&dy), kernel)?;
        let dw = self.conv_transpose_weight_grad(&self.upload(x)?, &self.upload(dy)?, kernel, params)?;
        self.download::<Ix4>(&dw)
    }

    /// [`Context::forward_1d`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::forward_1d`] and [`Context::download`].
    pub fn conv1d(
        &self,
        x: ArrayView3<f32>,
        w: ArrayView3<f32>,
        bias: Option<ArrayView1<f32>>,
        params: &Conv1dParams,
    ) -> Result<Array3<f32>> {
        let b = bias.map(|b| self.upload(b)).transpose()?;
        self.download::<Ix3>(&self.forward_1d(&self.upload(x)?, &self.upload(w)?, b.as_ref(), params)?)
    }

    /// [`Context::weight_grad_1d`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::weight_grad_1d`] and [`Context::download`].
    pub fn conv1d_weight_grad(
        &self,
        x: ArrayView3<f32>,
        dy: ArrayView3<f32>,
        kernel: usize,
        params: &Conv1dParams,
    ) -> Result<Array3<f32>> {
        self.download::<Ix3>(&self.weight_grad_1d(&self.upload(x)?, &self.upload(dy)?, kernel, params)?)
    }

    /// [`Context::input_grad_1d`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::input_grad_1d`] and [`Context::download`].
    pub fn conv1d_input_grad(
        &self,
        dy: ArrayView3<f32>,
        w: ArrayView3<f32>,
        length: usize,
        params: &Conv1dParams,
    ) -> Result<Array3<f32>> {
        self.download::<Ix3>(&self.input_grad_1d(&self.upload(dy)?, &self.upload(w)?, length, params)?)
    }

    /// [`Context::conv_transpose_1d`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::conv_transpose_1d`] and [`Context::download`].
    pub fn conv_transpose1d(
        &self,
        x: ArrayView3<f32>,
        w: ArrayView3<f32>,
        bias: Option<ArrayView1<f32>>,
        params: &ConvTranspose1dParams,
    ) -> Result<Array3<f32>> {
        let b = bias.map(|b| self.upload(b)).transpose()?;
        self.download::<Ix3>(&self.conv_transpose_1d(&self.upload(x)?, &self.upload(w)?, b.as_ref(), params)?)
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

impl Context {
    // ---- tuning: which plan runs a layer, measured (`gpu/tune.rs`) ------------------------------

    /// Measures every candidate plan of `op` on `geo` (the exact layer) with the options of this
    /// context's [`Tuning::Tune`] mode (the defaults otherwise), and keeps the pick in the cache file;
    /// a layer already chosen in this process keeps its choice there. Native targets; a page calls
    /// [`Context::tune_async`].
    ///
    /// # Errors
    /// Device errors of the inputs, and [`Error::Tuning`] naming every candidate when all are out.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn tune(&self, op: Op, geo: &Conv2dGeometry) -> Result<TuneReport> {
        pollster::block_on(crate::gpu::tune::tune_async(self, op, geo))
    }

    /// [`Context::tune`] without blocking: what a page runs (the browser's event loop delivers the
    /// GPU's answers), timed by the page's clock. There the operations never measure on their own
    /// (they cannot wait): a page tunes its layers with this first, and a context in
    /// [`Tuning::Cached`] (or `Tune`) then runs the picks.
    ///
    /// # Errors
    /// As [`Context::tune`].
    pub async fn tune_async(&self, op: Op, geo: &Conv2dGeometry) -> Result<TuneReport> {
        crate::gpu::tune::tune_async(self, op, geo).await
    }

    /// Measures every candidate plan of `op` on `geo` as [`Context::tune`] does, but keeps nothing:
    /// neither in this process nor in the cache. For checking a pick against a fresh measurement
    /// (`convgrad tune --recheck`).
    ///
    /// # Errors
    /// As [`Context::tune`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn measure_candidates(&self, op: Op, geo: &Conv2dGeometry) -> Result<TuneReport> {
        pollster::block_on(crate::gpu::tune::measure_async(self, op, geo, crate::gpu::tune::tune_options(self)))
    }
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
        let route = plan::conv::route(op, &nchw, geo.params.layout, elem, gemm, per_sample, self.profile())?;
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
