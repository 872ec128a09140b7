//! Channels-last tensors: the kernels compute in NCHW / OIHW, and an NHWC / OHWI operation transposes
//! its inputs into temporaries on the device, runs the NCHW kernels, and transposes its outputs back
//! (`shaders/transpose.wgsl`). Nothing goes through the host. Along the batch both layouts keep each
//! sample contiguous, so the batch chunks of [`crate::gpu::batch`] work on either unchanged.

use crate::error::Result;
use crate::geometry::{Conv2dGeometry, Conv2dParams, Layout, u32_of};
use crate::gpu::context::Context;
use crate::gpu::job::Job;
use crate::gpu::kernels::{self, PrepUniform};
use crate::gpu::tensor::Tensor;
use crate::plan::variant::Variant;

/// 16×16 tiles, one workgroup of 64 each (see the shader).
const TILE: usize = 16;

impl Context {
    /// Records `dst[b, c, r] = src[b, r, c]` for `b` matrices of `r × c`.
    pub(crate) fn transpose(
        &self,
        job: &mut Job,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        [b, r, c]: [usize; 3],
    ) -> Result<()> {
        let shape = Conv2dGeometry::new(b, 1, [r, c], 1, [1, 1], Conv2dParams::new())?;
        let workgroups = b * r.div_ceil(TILE) * c.div_ceil(TILE);
        let invocations = u32_of(workgroups.saturating_mul(crate::plan::profile::WORKGROUP as usize))?;
        let u = PrepUniform::new(&shape, 0, invocations);
        job.dispatch(&kernels::TRANSPOSE, &Variant::Plain, bytemuck::bytes_of(&u), &[src, dst], invocations)
    }

    /// A chunk of `n` activations of `c` channels and `hw` positions in `layout`, as the kernels read
    /// them: `None` when it is NCHW already (read `src` itself), else an NCHW temporary, which the caller
    /// holds until the work reading it is recorded.
    pub(crate) fn activations_in(
        &self,
        job: &mut Job,
        layout: Layout,
        src: &wgpu::Buffer,
        [n, c, hw]: [usize; 3],
    ) -> Result<Option<Tensor>> {
        if layout == Layout::Nchw {
            return Ok(None);
        }
        let t = self.temp("activations in NCHW", &[n, c, hw])?;
        self.transpose(job, src, &t.buffer, [n, hw, c])?;
        Ok(Some(t))
    }

    /// The weights of `geo` in `layout`, as the kernels read them (see [`Context::activations_in`]).
    pub(crate) fn weights_in(
        &self,
        job: &mut Job,
        layout: Layout,
        src: &wgpu::Buffer,
        geo: &Conv2dGeometry,
    ) -> Result<Option<Tensor>> {
        self.activations_in(job, layout, src, [geo.k, geo.channels_per_group(), geo.s * geo.t])
    }

    /// Where a kernel writes an output chunk of `n × c × hw` that goes to `dst` in `layout`: `None`
    /// when it writes `dst` itself, else an NCHW temporary that [`Context::activations_out`] moves.
    pub(crate) fn nchw_scratch(&self, layout: Layout, [n, c, hw]: [usize; 3]) -> Result<Option<Tensor>> {
        match layout {
            Layout::Nchw => Ok(None),
            Layout::Nhwc => self.temp("output in NCHW", &[n, c, hw]).map(Some),
        }
    }

    /// Moves an output chunk from its NCHW scratch (if it has one) into `dst` in the layout it was made
    /// for by [`Context::nchw_scratch`].
    pub(crate) fn activations_out(
        &self,
        job: &mut Job,
        scratch: Option<&Tensor>,
        dst: &wgpu::Buffer,
        [n, c, hw]: [usize; 3],
    ) -> Result<()> {
        match scratch {
            None => Ok(()),
            Some(t) => self.transpose(job, &t.buffer, dst, [n, c, hw]),
        }
    }
}
