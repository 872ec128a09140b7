//! One operation's GPU work: its passes and copies recorded into one command buffer, submitted once,
//! with validation and out-of-memory errors caught in error scopes around all of it.
//!
//! The host's share of a small layer is mostly wgpu objects made per dispatch, so a job makes as few
//! as it can: the uniforms of all its dispatches go into one buffer (each at its own dynamic offset),
//! written once when the command buffer is recorded, and dispatches that bind the same buffers to the
//! same pipeline share one bind group (the stride phases of an input gradient, say). Dispatches and
//! copies are therefore kept as steps and recorded in order at [`Job::flush`].

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::context::Context;
use crate::gpu::kernels::{KernelSpec, Pipeline};
#[cfg(target_arch = "wasm32")]
use crate::gpu::scopes::{Deferred, ScopeFuture};
use crate::plan::variant::Variant;

/// Recording of one operation. Created by [`Job::new`], ended by [`Job::finish`]; dropping it
/// unfinished discards the work (and pops its error scopes). Error scopes are per thread, so a job
/// stays on the thread that made it (it is not `Send`).
pub(crate) struct Job<'a> {
    ctx: &'a Context,
    /// What was recorded since the last flush, in order.
    steps: Vec<Step>,
    /// The uniforms of those dispatches, each in a slot of [`Job::slot`] bytes.
    uniforms: Vec<u8>,
    /// The first kernel recorded, to name in errors.
    first: Option<&'static str>,
    /// Resolved timestamp pairs of the passes, when profiling.
    stamps: Vec<wgpu::Buffer>,
    oom: Option<wgpu::ErrorScopeGuard>,
    validation: Option<wgpu::ErrorScopeGuard>,
}

/// A recorded dispatch or copy.
enum Step {
    Dispatch {
        name: &'static str,
        pipeline: Arc<Pipeline>,
        buffers: Vec<wgpu::Buffer>,
        /// Where its uniform is in the job's uniform buffer, and how long it is.
        at: u32,
        len: u64,
        grid: [u32; 2],
    },
    Clear {
        dst: wgpu::Buffer,
        at: u64,
        bytes: u64,
    },
    Copy {
        src: wgpu::Buffer,
        src_at: u64,
        dst: wgpu::Buffer,
        dst_at: u64,
        bytes: u64,
    },
}

/// Spreads `workgroups` over a 2-D grid within `max_compute_workgroups_per_dimension`.
fn grid(ctx: &Context, kernel: &str, workgroups: u32) -> Result<[u32; 2]> {
    let max = ctx.limits().max_compute_workgroups_per_dimension.max(1);
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

impl<'a> Job<'a> {
    /// Starts recording an operation on `ctx`.
    pub(crate) fn new(ctx: &'a Context) -> Self {
        let validation = Some(ctx.device.push_error_scope(wgpu::ErrorFilter::Validation));
        let oom = Some(ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory));
        Job { ctx, steps: Vec::new(), uniforms: Vec::new(), first: None, stamps: Vec::new(), oom, validation }
    }
}

impl Job<'_> {
    /// Bytes per uniform slot: the device's dynamic-offset alignment (256 on most), which every
    /// uniform block fits.
    fn slot(&self) -> usize {
        (self.ctx.limits().min_uniform_buffer_offset_alignment as usize).max(256)
    }

    /// Records a compute pass of `invocations` invocations of `spec` in `variant`, with `uniform` at
    /// binding 0 and `buffers` after it.
    ///
    /// # Errors
    /// A dispatch or buffer beyond the device's limits, or a kernel the device rejects.
    pub(crate) fn dispatch(
        &mut self,
        spec: &'static KernelSpec,
        variant: &Variant,
        uniform: &[u8],
        buffers: &[&wgpu::Buffer],
        invocations: u32,
    ) -> Result<()> {
        let ctx = self.ctx;
        let grid = grid(ctx, spec.name, invocations.div_ceil(variant.workgroup()))?;
        for b in buffers {
            crate::plan::bindings::fits(spec.name, b.size(), ctx.limits().max_storage_buffer_binding_size)?;
        }
        let pipeline = ctx.pipeline(spec, variant)?;
        self.first.get_or_insert(spec.name);
        let slot = self.slot();
        if uniform.len() > slot {
            return Err(Error::Overflow { what: "uniform block", detail: format!("{} > {slot} bytes", uniform.len()) });
        }
        let at = u32::try_from(self.uniforms.len())
            .map_err(|_| Error::Overflow { what: "uniforms of one job", detail: self.uniforms.len().to_string() })?;
        self.uniforms.extend_from_slice(uniform);
        self.uniforms.resize(self.uniforms.len() + slot - uniform.len(), 0);
        self.steps.push(Step::Dispatch {
            name: spec.name,
            pipeline,
            buffers: buffers.iter().map(|b| (*b).clone()).collect(),
            at,
            len: uniform.len() as u64,
            grid,
        });
        Ok(())
    }

    /// Records a copy of `bytes` bytes between buffers (offsets in bytes).
    pub(crate) fn copy_range(&mut self, src: &wgpu::Buffer, src_at: u64, dst: &wgpu::Buffer, dst_at: u64, bytes: u64) {
        self.steps.push(Step::Copy { src: src.clone(), src_at, dst: dst.clone(), dst_at, bytes });
    }

    /// Records zeros written over `bytes` bytes of `dst` from `at` (multiples of 4).
    pub(crate) fn clear_range(&mut self, dst: &wgpu::Buffer, at: u64, bytes: u64) {
        self.steps.push(Step::Clear { dst: dst.clone(), at, bytes });
    }

    /// Records the steps so far into one command buffer and submits it: lets a long chunked
    /// operation release each chunk's temporaries instead of holding them all until the end.
    pub(crate) fn flush(&mut self) {
        let ctx = self.ctx;
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("convgrad") });
        // Not create_buffer_init: mapping at creation panics inside wgpu on a lost device, while a
        // queued write reports an error. Queued writes land before the submission that follows.
        let ubuf = (!self.uniforms.is_empty()).then(|| {
            let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("convgrad uniforms"),
                size: self.uniforms.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue.write_buffer(&buf, 0, &self.uniforms);
            buf
        });
        self.uniforms.clear();
        // Bind groups of this command buffer, by pipeline and bound buffers (a pipeline's uniform
        // block has one size, so the binding of the uniform buffer is the same too).
        let mut groups: Vec<(Arc<Pipeline>, Vec<wgpu::Buffer>, wgpu::BindGroup)> = Vec::new();
        for step in self.steps.drain(..) {
            match step {
                Step::Copy { src, src_at, dst, dst_at, bytes } => {
                    enc.copy_buffer_to_buffer(&src, src_at, &dst, dst_at, bytes);
                }
                Step::Clear { dst, at, bytes } => enc.clear_buffer(&dst, at, Some(bytes)),
                Step::Dispatch { name, pipeline, buffers, at, len, grid } => {
                    let Some(ubuf) = ubuf.as_ref() else { continue };
                    let found = groups.iter().position(|(p, b, _)| Arc::ptr_eq(p, &pipeline) && *b == buffers);
                    let index = match found {
                        Some(i) => i,
                        None => {
                            let uniform =
                                wgpu::BufferBinding { buffer: ubuf, offset: 0, size: wgpu::BufferSize::new(len) };
                            let entries: Vec<wgpu::BindGroupEntry> =
                                std::iter::once(wgpu::BindingResource::Buffer(uniform))
                                    .chain(buffers.iter().map(wgpu::Buffer::as_entire_binding))
                                    .enumerate()
                                    .map(|(i, resource)| wgpu::BindGroupEntry { binding: i as u32, resource })
                                    .collect();
                            let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                                label: Some(name),
                                layout: &pipeline.layout,
                                entries: &entries,
                            });
                            groups.push((pipeline.clone(), buffers, bind));
                            groups.len() - 1
                        }
                    };
                    let stamps = ctx.timestamp_pair();
                    {
                        let timestamp_writes = stamps.as_ref().map(|(set, _)| wgpu::ComputePassTimestampWrites {
                            query_set: set,
                            beginning_of_pass_write_index: Some(0),
                            end_of_pass_write_index: Some(1),
                        });
                        let mut pass = enc
                            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(name), timestamp_writes });
                        pass.set_pipeline(&pipeline.pipeline);
                        pass.set_bind_group(0, &groups[index].2, &[at]);
                        pass.dispatch_workgroups(grid[0], grid[1], 1);
                    }
                    if let Some((set, buf)) = stamps {
                        enc.resolve_query_set(&set, 0..2, &buf, 0);
                        self.stamps.push(buf);
                    }
                }
            }
        }
        ctx.queue.submit([enc.finish()]);
        for buf in self.stamps.drain(..) {
            ctx.push_timestamps(buf);
        }
    }

    /// Submits the recorded work and reports any error wgpu found in it. In the browser the error
    /// scopes are popped now and awaited later, by [`Context::settle`] (every download calls it):
    /// there nothing may block.
    ///
    /// # Errors
    /// [`Error::Wgpu`] naming the job's first kernel, or [`Error::DeviceLost`].
    pub(crate) fn finish(mut self) -> Result<()> {
        self.flush();
        let kernel = self.first.unwrap_or("copy");
        // The out-of-memory scope was pushed last, so it is popped first.
        let oom = self.oom.take().map(wgpu::ErrorScopeGuard::pop);
        let invalid = self.validation.take().map(wgpu::ErrorScopeGuard::pop);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let oom = oom.and_then(pollster::block_on);
            let invalid = invalid.and_then(pollster::block_on);
            match oom.or(invalid) {
                Some(e) => {
                    Err(self.ctx.explain(Error::Wgpu { kernel: kernel.to_string(), message: crate::error::chain(&e) }))
                }
                None => Ok(()),
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            let scopes: Vec<ScopeFuture> = oom.into_iter().chain(invalid).map(|f| Box::pin(f) as ScopeFuture).collect();
            let mut deferred = self.ctx.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            deferred.push(Deferred::new(kernel, scopes));
            Ok(())
        }
    }
}
