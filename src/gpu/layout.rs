//! Channels-last tensors: the kernels compute in NCHW / OIHW, and an NHWC / OHWI operation transposes
//! its inputs into temporaries on the device, runs the NCHW kernels, and transposes its outputs back
//! (`shaders/transpose.wgsl`). Nothing goes through the host. Along the batch both layouts keep each
//! sample contiguous, so the batch chunks of [`crate::gpu::batch`] work on either unchanged.

use crate::elem::Elem;
use crate::error::Result;
use crate::geometry::{Conv2dGeometry, Conv2dParams, Layout, u32_of};
use crate::gpu::context::Context;
use crate::gpu::job::Job;
use crate::gpu::kernels::{self, PrepUniform};
use crate::gpu::tensor::Tensor;
use crate::plan::loops::TRANSPOSE_RUN;
use crate::plan::profile::WORKGROUP;
use crate::plan::variant::{Load, Variant};
use crate::plan::{self, Transpose};

/// Whether `n × c × hw` in `layout` is laid out as NCHW: always in NCHW, and in NHWC where one of the
/// two transposed axes has a single element (single-channel images, 1×1 maps, one-filter banks).
fn same_bytes(layout: Layout, c: usize, hw: usize) -> bool {
    layout == Layout::Nchw || c == 1 || hw == 1
}

/// 16×16 tiles, one workgroup of 64 each (see the shader).
const TILE: usize = 16;

impl Context {
    /// Records `dst[b, c, r] = src[b, r, c]` for `b` matrices of `r × c`, with the kernel the
    /// planner picks for the profile ([`plan::transpose`]).
    pub(crate) fn transpose(
        &self,
        job: &mut Job,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        [b, r, c]: [usize; 3],
    ) -> Result<()> {
        let shape = Conv2dGeometry::new(b, 1, [r, c], 1, [1, 1], Conv2dParams::new())?;
        // Runs of at most TRANSPOSE_RUN elements per invocation of the rows kernel (plan::loops).
        let runs = r.div_ceil(TRANSPOSE_RUN);
        let (spec, invocations) = match plan::transpose(self.profile()) {
            Transpose::Tiles => {
                let workgroups = b * r.div_ceil(TILE) * c.div_ceil(TILE);
                (&kernels::TRANSPOSE, workgroups.saturating_mul(WORKGROUP as usize))
            }
            Transpose::Rows => (&kernels::TRANSPOSE_ROWS, b * c * runs),
        };
        let invocations = u32_of(invocations)?;
        let mut u = PrepUniform::new(&shape, 0, invocations);
        u.splits = u32_of(runs)?;
        u.chunk = u32_of(TRANSPOSE_RUN)?;
        job.dispatch(spec, &Variant::Plain, bytemuck::bytes_of(&u), &[src, dst], invocations)
    }

    /// A chunk of `n` activations of `c` channels and `hw` positions in `layout`, as the kernels read
    /// them: `src` itself where its memory is NCHW already (with one channel or one position the two
    /// layouts are the same bytes), else an NCHW temporary with the transpose recorded.
    pub(crate) fn activations_in(
        &self,
        job: &mut Job,
        layout: Layout,
        src: &wgpu::Buffer,
        [n, c, hw]: [usize; 3],
    ) -> Result<Nchw> {
        if same_bytes(layout, c, hw) {
            return Ok(Nchw { buffer: src.clone(), temp: None });
        }
        let t = self.temp("activations in NCHW", &[n, c, hw])?;
        self.transpose(job, src, &t.buffer, [n, hw, c])?;
        Ok(Nchw { buffer: t.buffer.clone(), temp: Some(t) })
    }

    /// Samples `[n0, n0 + n)` of the operand `t`, `n × c × hw` in `layout`, as the kernels read them:
    /// `f32` in NCHW. An `f32` operand is sliced ([`Context::batch_slice`]) and transposed where its
    /// layout needs it; a 16-bit one is widened into an `f32` temporary first (`gpu/half.rs`).
    pub(crate) fn operand_in(
        &self,
        job: &mut Job,
        t: &Tensor,
        layout: Layout,
        n0: usize,
        [n, c, hw]: [usize; 3],
    ) -> Result<Nchw> {
        let per = c * hw;
        if t.dtype() == Elem::F32 {
            let chunk = self.batch_slice(job, &t.buffer, per, n0, n)?;
            return self.activations_in(job, layout, &chunk, [n, c, hw]);
        }
        let wide = self.widen(job, t, n0 * per, n * per)?;
        let nchw = self.activations_in(job, layout, &wide.buffer, [n, c, hw])?;
        // The widened temporary is what the kernels read unless a transpose made another.
        Ok(if nchw.temp.is_some() { nchw } else { Nchw { buffer: wide.buffer.clone(), temp: Some(wide) } })
    }

    /// [`Context::operand_in`] for kernels that read their operands as `load` says: a 16-bit
    /// operand read in place is its own buffer (the route chose this only for a whole NCHW batch).
    pub(crate) fn operand_in_by(
        &self,
        job: &mut Job,
        t: &Tensor,
        layout: Layout,
        n0: usize,
        dims: [usize; 3],
        load: Load,
    ) -> Result<Nchw> {
        if load.elem.is_half() {
            debug_assert!(n0 == 0 && layout == Layout::Nchw && t.dtype() == load.elem);
            return Ok(Nchw { buffer: t.buffer.clone(), temp: None });
        }
        self.operand_in(job, t, layout, n0, dims)
    }

    /// The weights `w` of `geo` in `layout`, as kernels reading `load` take them (see
    /// [`Context::operand_in_by`]).
    pub(crate) fn weights_in_by(
        &self,
        job: &mut Job,
        layout: Layout,
        w: &Tensor,
        geo: &Conv2dGeometry,
        load: Load,
    ) -> Result<Nchw> {
        self.operand_in_by(job, w, layout, 0, [geo.k, geo.channels_per_group(), geo.s * geo.t], load)
    }

    /// Where a kernel writes an output chunk of `n × c × hw` that goes to `dst` in `layout`: `dst`
    /// itself, or an NCHW temporary that [`Context::activations_out`] then moves into `dst`.
    pub(crate) fn nchw_scratch(&self, layout: Layout, dst: &wgpu::Buffer, [n, c, hw]: [usize; 3]) -> Result<Nchw> {
        if same_bytes(layout, c, hw) {
            return Ok(Nchw { buffer: dst.clone(), temp: None });
        }
        let t = self.temp("output in NCHW", &[n, c, hw])?;
        Ok(Nchw { buffer: t.buffer.clone(), temp: Some(t) })
    }

    /// Moves an output chunk from the scratch [`Context::nchw_scratch`] gave into `dst`, in the layout
    /// it was made for (nothing where the kernel wrote `dst` itself).
    pub(crate) fn activations_out(
        &self,
        job: &mut Job,
        scratch: &Nchw,
        dst: &wgpu::Buffer,
        [n, c, hw]: [usize; 3],
    ) -> Result<()> {
        match &scratch.temp {
            None => Ok(()),
            Some(t) => self.transpose(job, &t.buffer, dst, [n, c, hw]),
        }
    }
}

/// A buffer the kernels read or write in NCHW: the operand's own, or a transposed temporary, which
/// this holds until the work using it is recorded (a temporary dropped earlier could be handed to
/// another pass of the same job).
pub(crate) struct Nchw {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) temp: Option<Tensor>,
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array4};

    use crate::geometry::{Conv2dGeometry, Conv2dParams, Layout};
    use crate::gpu::Context;
    use crate::plan::DeviceClass;
    use crate::reference;
    use crate::verify::{Rng, rel_err};

    /// NHWC in batch chunks: with a binding of 4 KiB a sample of 360 elements makes chunks of 2, 2
    /// and 1 samples, each transposed on its own. Forward and input gradient give the unchunked bits
    /// (each sample is computed alike); the reductions over the batch are summed per chunk, so those
    /// are checked against the reference. Both transpose kernels (GPU and CPU class).
    #[test]
    fn channels_last_in_batch_chunks() {
        let base = Context::new().expect("a wgpu adapter (see README: apt-get install mesa-vulkan-drivers)");
        let params = Conv2dParams::new().padding_same().layout(Layout::Nhwc);
        let geo = Conv2dGeometry::new(5, 3, [9, 10], 4, [3, 3], params).unwrap();
        let mut rng = Rng::new(3);
        let x: Array4<f32> = rng.array(geo.input_shape());
        let w: Array4<f32> = rng.array(geo.weight_shape());
        let dy: Array4<f32> = rng.array(geo.output_shape());
        for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
            let whole = Context::from_device(base.device.clone(), base.queue.clone()).with_profile(class);
            let chunked = Context::from_device(base.device.clone(), base.queue.clone())
                .with_profile(class)
                .with_binding_limit(4096);
            assert_eq!(crate::plan::batch_chunk(&geo, 360, chunked.profile()).unwrap(), 2);
            let run = |ctx: &Context| {
                let y = ctx.conv2d(x.view(), w.view(), None, &params).unwrap();
                let dw = ctx.conv2d_weight_grad(x.view(), dy.view(), [3, 3], &params).unwrap();
                let dx = ctx.conv2d_input_grad(dy.view(), w.view(), [9, 10], &params).unwrap();
                let db: Array1<f32> = ctx.conv2d_bias_grad(dy.view(), Layout::Nhwc).unwrap();
                (y, dw, dx, db)
            };
            let (y0, _, dx0, _) = run(&whole);
            let (y, dw, dx, db) = run(&chunked);
            assert_eq!(y, y0, "{class:?}: forward");
            assert_eq!(dx, dx0, "{class:?}: input gradient");
            let dw_ref = reference::weight_grad(x.view(), dy.view(), [3, 3], &params).unwrap();
            assert!(rel_err(&dw, &dw_ref) < 1e-6, "{class:?}: weight gradient");
            assert!(rel_err(&db, &reference::bias_grad(dy.view(), Layout::Nhwc)) < 1e-6, "{class:?}: bias");
        }
    }
}
