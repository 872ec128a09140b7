//! The operations: forward, weight gradient, input gradient and bias gradient, on device tensors and
//! as ndarray-in, ndarray-out conveniences.
//!
//! Each operation validates its tensors, has the planner build its program ([`crate::plan::conv`]:
//! every pass, copy and temporary, as plain data) and hands it to the engine (`gpu/engine.rs`), the
//! one code that records device work. Nothing here decides how a layer runs.

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::geometry::{Conv2dGeometry, Conv2dParams, Layout};
use crate::gpu::context::Context;
use crate::gpu::engine;
use crate::gpu::tensor::Tensor;
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
        let program = plan::conv::forward(&geo, bias.is_some(), elem, y.dtype(), self.profile(), strategy)?;
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
        self.resolve(op, geo)
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
        let program = plan::conv::weight_grad(&geo, elem, dw.dtype(), self.profile(), strategy)?;
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
        let program = plan::conv::input_grad(&geo, elem, dx.dtype(), self.profile(), strategy)?;
        engine::execute(self, &program, &[dy, w], &[dx])
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
        let profile = self.profile();
        match op {
            Op::Forward => plan::conv::forward(geo, false, elem, elem, profile, strategy),
            Op::WeightGrad => plan::conv::weight_grad(geo, elem, elem, profile, strategy),
            Op::InputGrad => plan::conv::input_grad(geo, elem, elem, profile, strategy),
        }
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
