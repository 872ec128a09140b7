//! Small device-side helpers for training loops: element-wise `a·x + b·y`, a deterministic sum of
//! squares, and the Adam optimiser. With them a loop uploads its data once and reads back only the
//! scalars it wants to see.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::geometry::u32_of;
use crate::gpu::context::Context;
use crate::gpu::job::Job;
use crate::gpu::kernels;
use crate::gpu::tensor::Tensor;
use crate::plan;
use crate::plan::variant::Variant;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ElemUniform {
    len: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ReduceUniform {
    len: u32,
    chunk: u32,
    square: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct AdamUniform {
    len: u32,
    lr_t: f32,
    beta1: f32,
    beta2: f32,
    eps_t: f32,
    _pad: [u32; 3],
}

const _: () = assert!(std::mem::size_of::<ElemUniform>().is_multiple_of(16));
const _: () = assert!(std::mem::size_of::<ReduceUniform>().is_multiple_of(16));
const _: () = assert!(std::mem::size_of::<AdamUniform>().is_multiple_of(16));

/// Elements summed by one invocation of the first reduction pass.
const CHUNK: usize = 256;

/// The most values one invocation of `sum_squares.wgsl` sums: a block of `sum_squares_by`, or the last
/// pass of `sum_squares`. Within the loop budget of `plan::loops`.
const LAST_SUM: usize = 32_768;

fn len32(t: &Tensor) -> Result<u32> {
    u32::try_from(t.len()).map_err(|_| Error::Overflow { what: "tensor length", detail: format!("{}", t.len()) })
}

impl Context {
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
        let len = len32(x)?;
        let u = ElemUniform { len, a, b, _pad: 0 };
        self.dispatch(
            &kernels::AXPBY,
            &Variant::Plain,
            bytemuck::bytes_of(&u),
            &[&x.buffer, &y.buffer, &out.buffer],
            len,
        )
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
        if block == 0 {
            return Err(Error::ZeroDimension { what: "block" });
        }
        // One invocation sums a block: no longer than a kernel may loop (plan::loops).
        if block > LAST_SUM {
            return Err(Error::Unsupported {
                op: "sum_squares_by",
                layer: format!("blocks of {block} elements (at most {LAST_SUM})"),
                algorithm: "block sums",
                reason: plan::loops::OVER_BUDGET,
            });
        }
        let mut job = self.job();
        let sums = self.block_sums(&mut job, &x.buffer, x.len(), block, true)?;
        job.finish()?;
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
        let mut job = self.job();
        let mut partial = self.block_sums(&mut job, &x.buffer, x.len(), CHUNK, true)?;
        // One invocation adds the last partial sums in order; while there are more than its loop
        // budget allows (plan::loops), they are first summed in blocks of CHUNK again.
        while partial.len() > LAST_SUM {
            partial = self.block_sums(&mut job, &partial.buffer, partial.len(), CHUNK, false)?;
        }
        let total = self.block_sums(&mut job, &partial.buffer, partial.len(), partial.len(), false)?;
        job.finish()?;
        let v = self.read_buffer_async(&total.buffer, "sum of squares").await?;
        v.first().copied().ok_or_else(|| Error::Readback { what: "sum of squares".into(), message: "empty".into() })
    }

    /// The sums (of squares, with `square`) of consecutive blocks of `block` of the `len` elements of
    /// `src`, one invocation per block, each summing its block in order.
    fn block_sums(&self, job: &mut Job, src: &wgpu::Buffer, len: usize, block: usize, square: bool) -> Result<Tensor> {
        let parts = len.div_ceil(block);
        let sums = self.alloc("block sums", &[parts])?;
        let u = ReduceUniform { len: u32_of(len)?, chunk: u32_of(block)?, square: u32::from(square), _pad: 0 };
        job.dispatch(
            &kernels::SUM_SQUARES,
            &Variant::Plain,
            bytemuck::bytes_of(&u),
            &[src, &sums.buffer],
            u32_of(parts)?,
        )?;
        Ok(sums)
    }
}

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
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = (1.0 - self.beta2.powi(self.t)).sqrt();
        let u = AdamUniform {
            len: len32(w)?,
            lr_t: self.lr * c2 / c1,
            beta1: self.beta1,
            beta2: self.beta2,
            eps_t: self.eps * c2,
            _pad: [0; 3],
        };
        let bufs = [&grad.buffer, &self.m.buffer, &self.v.buffer, &w.buffer];
        ctx.dispatch(&kernels::ADAM, &Variant::Plain, bytemuck::bytes_of(&u), &bufs, u.len)
    }
}
