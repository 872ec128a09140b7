//! The Adam optimiser with its moment estimates on the device. With it and the helpers of
//! `gpu/ops.rs` (`axpby`, the sums of squares) a training loop uploads its data once and reads back
//! only the scalars it wants to see.

use crate::error::{Error, Result};
use crate::gpu::context::Context;
use crate::gpu::engine;
use crate::gpu::tensor::Tensor;

/// The Adam optimiser (Kingma & Ba, 2015) with its moment estimates on the device.
#[derive(Debug)]
pub struct Adam {
    /// Step size.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to √v̂.
    pub eps: f32,
    m: Tensor,
    v: Tensor,
    t: i32,
}

impl Adam {
    /// Adam for parameters shaped like `w`, with the usual β1 = 0.9, β2 = 0.999, ε = 1e-8.
    ///
    /// # Errors
    /// Device limits or wgpu errors.
    pub fn new(ctx: &Context, w: &Tensor, lr: f32) -> Result<Self> {
        let zeros = ndarray::ArrayD::<f32>::zeros(w.shape());
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            m: ctx.upload(zeros.view())?,
            v: ctx.upload(zeros.view())?,
            t: 0,
        })
    }

    /// One step: updates `w` in place from its gradient `grad`.
    ///
    /// # Errors
    /// Shapes that differ from the ones Adam was made for, wgpu errors.
    pub fn step(&mut self, ctx: &Context, w: &Tensor, grad: &Tensor) -> Result<()> {
        for t in [w, grad] {
            ctx.own_f32(t)?;
            if t.shape() != self.m.shape() {
                return Err(Error::shape(
                    "Adam parameter",
                    format!("{:?}", self.m.shape()),
                    format!("{:?}", t.shape()),
                ));
            }
        }
        if std::ptr::eq(w, grad) {
            return Err(Error::shape("Adam gradient", "a tensor distinct from the parameters", "the parameters"));
        }
        self.t = self.t.saturating_add(1);
        let program =
            crate::plan::train::adam(w.len(), self.lr, [self.beta1, self.beta2], self.eps, self.t, ctx.profile())?;
        engine::execute(ctx, &program, &[grad], &[&self.m, &self.v, w])
    }
}
