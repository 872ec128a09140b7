//! One operation's GPU work: its passes and copies recorded into one command buffer, submitted once,
//! with validation and out-of-memory errors caught in error scopes around all of it.

use crate::error::{Error, Result};
use crate::gpu::context::Context;
use crate::gpu::kernels::KernelSpec;
use crate::plan::profile::WORKGROUP;
use crate::plan::variant::Variant;

/// Recording of one operation. Created by [`Context::job`], ended by [`Job::finish`]; dropping it
/// unfinished discards the work (and pops its error scopes). Error scopes are per thread, so a job
/// stays on the thread that made it (it is not `Send`).
pub(crate) struct Job<'a> {
    ctx: &'a Context,
    enc: wgpu::CommandEncoder,
    /// The first kernel recorded, to name in errors.
    first: Option<&'static str>,
    /// Resolved timestamp pairs of the passes, when profiling.
    stamps: Vec<wgpu::Buffer>,
    oom: Option<wgpu::ErrorScopeGuard>,
    validation: Option<wgpu::ErrorScopeGuard>,
}

impl Context {
    /// Starts recording an operation.
    pub(crate) fn job(&self) -> Job<'_> {
        let validation = Some(self.device.push_error_scope(wgpu::ErrorFilter::Validation));
        let oom = Some(self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory));
        Job { ctx: self, enc: self.encoder(), first: None, stamps: Vec::new(), oom, validation }
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("convgrad") })
    }

    /// A job of one dispatch (see [`Job::dispatch`]).
    pub(crate) fn dispatch(
        &self,
        spec: &'static KernelSpec,
        variant: &Variant,
        uniform: &[u8],
        buffers: &[&wgpu::Buffer],
        invocations: u32,
    ) -> Result<()> {
        let mut job = self.job();
        job.dispatch(spec, variant, uniform, buffers, invocations)?;
        job.finish()
    }
}

impl Context {
    /// Spreads `workgroups` over a 2-D grid within `max_compute_workgroups_per_dimension`.
    fn grid(&self, kernel: &str, workgroups: u32) -> Result<[u32; 2]> {
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
}

impl Job<'_> {
    /// Records a compute pass of `invocations` invocations of `spec` in `variant`, binding a fresh
    /// uniform buffer holding `uniform` at binding 0 and `buffers` after it.
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
        let [gx, gy] = ctx.grid(spec.name, invocations.div_ceil(WORKGROUP))?;
        for b in buffers {
            ctx.check_binding(spec.name, (b.size() / 4) as usize)?;
        }
        let pipeline = ctx.pipeline(spec, variant)?;
        self.first.get_or_insert(spec.name);
        // Not create_buffer_init: mapping at creation panics inside wgpu on a lost device, while a
        // queued write reports an error. Queued writes land before the submission that follows.
        let ubuf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(spec.name),
            size: uniform.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue.write_buffer(&ubuf, 0, uniform);
        let entries: Vec<wgpu::BindGroupEntry> = std::iter::once(&ubuf)
            .chain(buffers.iter().copied())
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(spec.name),
            layout: &pipeline.layout,
            entries: &entries,
        });
        let stamps = ctx.timestamp_pair();
        {
            let timestamp_writes = stamps.as_ref().map(|(set, _)| wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            });
            let mut pass =
                self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(spec.name), timestamp_writes });
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        if let Some((set, buf)) = stamps {
            self.enc.resolve_query_set(&set, 0..2, &buf, 0);
            self.stamps.push(buf);
        }
        Ok(())
    }

    /// Records a copy of `len` f32 elements between buffers (offsets in elements).
    pub(crate) fn copy(&mut self, src: &wgpu::Buffer, src_at: usize, dst: &wgpu::Buffer, dst_at: usize, len: usize) {
        self.enc.copy_buffer_to_buffer(src, (src_at * 4) as u64, dst, (dst_at * 4) as u64, (len * 4) as u64);
    }

    /// Submits what was recorded so far and starts a new command buffer: lets a long chunked
    /// operation release each chunk's temporaries instead of holding them all until the end.
    pub(crate) fn flush(&mut self) {
        let enc = std::mem::replace(&mut self.enc, self.ctx.encoder());
        self.ctx.queue.submit([enc.finish()]);
        for buf in self.stamps.drain(..) {
            self.ctx.push_timestamps(buf);
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
            deferred.push(Deferred { kernel, scopes });
            Ok(())
        }
    }
}

/// A popped error scope's result, to await.
#[cfg(target_arch = "wasm32")]
type ScopeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>;

/// The error scopes of one finished job in the browser, popped and not yet awaited.
#[cfg(target_arch = "wasm32")]
pub(crate) struct Deferred {
    kernel: &'static str,
    scopes: Vec<ScopeFuture>,
}

#[cfg(target_arch = "wasm32")]
impl Deferred {
    /// The first error the job's scopes caught.
    pub(crate) async fn wait(self) -> Option<Error> {
        let mut first = None;
        for scope in self.scopes {
            if let Some(e) = scope.await {
                first.get_or_insert(Error::Wgpu { kernel: self.kernel.to_string(), message: crate::error::chain(&e) });
            }
        }
        first
    }
}
