//! Work larger than one storage binding, split along the batch.
//!
//! A tensor may be as large as `max_buffer_size`, but a kernel can bind at most
//! `max_storage_buffer_binding_size` bytes of it (128 MiB on lavapipe). When a layer's per-sample
//! buffers times the batch exceed that, the operation runs on chunks of whole samples: each chunk's
//! inputs are copied into buffers of their own, the kernels run on them, and outputs are copied back
//! in place. Reductions over the batch (the weight and bias gradients) write one result per chunk and
//! add them in chunk order, so chunked results are as deterministic as unchunked ones. The chunk size
//! depends only on the shapes and the device's limits.

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::geometry::Conv2dGeometry;
use crate::geometry::u32_of;
use crate::gpu::context::Context;
use crate::gpu::job::Job;
use crate::gpu::kernels::{self, PrepUniform};
use crate::gpu::layout::Nchw;
use crate::gpu::tensor::Tensor;
use crate::plan::variant::Variant;

impl Context {
    /// An error if a buffer of `bytes` cannot be bound to one kernel.
    pub(crate) fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.limits().max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(Error::DeviceLimit {
                what: format!("{what} (a binding of {bytes} bytes)"),
                needed: bytes,
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        Ok(())
    }

    /// Runs `f(chunk geometry, first sample)` over the batch in chunks that fit one binding.
    pub(crate) fn for_batches(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        per_sample: usize,
        mut f: impl FnMut(&mut Job, &Conv2dGeometry, usize) -> Result<()>,
    ) -> Result<()> {
        let nb = crate::plan::batch_chunk(geo, per_sample, self.profile())?;
        for n0 in (0..geo.n).step_by(nb) {
            f(job, &Conv2dGeometry { n: nb.min(geo.n - n0), ..*geo }, n0)?;
            if nb < geo.n {
                // Submit each chunk so that its temporaries can go before the next is made.
                job.flush();
            }
        }
        Ok(())
    }

    /// Like [`Context::for_batches`] for a sum over the batch of `len` elements into `out`: with one
    /// chunk `f` writes `out` directly; with several, each chunk writes its own slot and the slots are
    /// added in order.
    pub(crate) fn reduce_batches(
        &self,
        job: &mut Job,
        geo: &Conv2dGeometry,
        per_sample: usize,
        out: &wgpu::Buffer,
        len: usize,
        mut f: impl FnMut(&mut Job, &Conv2dGeometry, usize, &wgpu::Buffer) -> Result<()>,
    ) -> Result<()> {
        let nb = crate::plan::batch_chunk(geo, per_sample, self.profile())?;
        if nb >= geo.n {
            return f(job, geo, 0, out);
        }
        let chunks = geo.n.div_ceil(nb);
        // The partials of each range of elements in a buffer of their own, so that no sum binds more
        // than one binding holds (`plan::bindings::sum_ranges`); each element adds its chunks in the
        // same order whatever the ranges, so the bits are those of one range.
        let ranges = crate::plan::bindings::sum_ranges(chunks, len, self.profile().max_binding_bytes)?;
        let slots = ranges
            .iter()
            .map(|r| self.alloc("per-chunk partial sums", &[chunks, r.len()]))
            .collect::<Result<Vec<_>>>()?;
        let part = self.alloc("chunk result", &[len])?;
        for (idx, n0) in (0..geo.n).step_by(nb).enumerate() {
            f(job, &Conv2dGeometry { n: nb.min(geo.n - n0), ..*geo }, n0, &part.buffer)?;
            for (r, slot) in ranges.iter().zip(&slots) {
                job.copy(&part.buffer, r.start, &slot.buffer, idx * r.len(), r.len());
            }
            job.flush();
        }
        for (r, slot) in ranges.iter().zip(&slots) {
            let mut u = PrepUniform::new(geo, 0, u32_of(r.len())?);
            u.splits = u32_of(chunks)?;
            let whole = ranges.len() == 1;
            let sum = if whole { None } else { Some(self.alloc("range of the sum", &[r.len()])?) };
            let dst = sum.as_ref().map_or(out, |t| &t.buffer);
            job.dispatch(&kernels::SPLIT_SUM, &Variant::Plain, bytemuck::bytes_of(&u), &[&slot.buffer, dst], u.total)?;
            if let Some(t) = &sum {
                job.copy(&t.buffer, 0, out, r.start, r.len());
            }
        }
        Ok(())
    }

    /// Samples `[n0, n0 + nb)` of a batch tensor with `per` elements per sample: the buffer itself
    /// when that is all of it, else a copy.
    pub(crate) fn batch_slice(
        &self,
        job: &mut Job,
        src: &wgpu::Buffer,
        per: usize,
        n0: usize,
        nb: usize,
    ) -> Result<wgpu::Buffer> {
        if n0 == 0 && (nb * per * 4) as u64 == src.size() {
            return Ok(src.clone());
        }
        let t = self.alloc("batch chunk", &[nb, per])?;
        job.copy(src, n0 * per, &t.buffer, 0, nb * per);
        Ok(t.buffer.clone())
    }

    /// Where a chunk's output goes, in `f32`: the output itself when the chunk is all of an `f32`
    /// output, else a new buffer that [`Context::batch_done`] copies (or narrows) into place.
    pub(crate) fn batch_out(&self, dst: &Tensor, per: usize, n0: usize, nb: usize) -> Result<Nchw> {
        if dst.dtype() == Elem::F32 && n0 == 0 && (nb * per * 4) as u64 == dst.buffer.size() {
            return Ok(Nchw { buffer: dst.buffer.clone(), temp: None });
        }
        let t = self.temp("batch chunk output", &[nb, per])?;
        Ok(Nchw { buffer: t.buffer.clone(), temp: Some(t) })
    }

    /// Puts a chunk's output into its place in `dst`: a copy, or for a 16-bit output the narrowing
    /// (nothing if it was written there directly).
    pub(crate) fn batch_done(
        &self,
        job: &mut Job,
        chunk: &Nchw,
        dst: &Tensor,
        per: usize,
        n0: usize,
        nb: usize,
    ) -> Result<()> {
        if dst.dtype().is_half() {
            self.narrow(job, &chunk.buffer, 0, dst, n0 * per, nb * per)
        } else {
            if chunk.buffer != dst.buffer {
                job.copy(&chunk.buffer, 0, &dst.buffer, n0 * per, nb * per);
            }
            Ok(())
        }
    }

    /// Where a reduction over the batch writes an output `dst` of `len` elements: `dst` itself in
    /// `f32`, or an `f32` temporary that [`Context::result_done`] narrows into a 16-bit `dst`.
    pub(crate) fn result_out(&self, dst: &Tensor) -> Result<Nchw> {
        if dst.dtype() == Elem::F32 {
            return Ok(Nchw { buffer: dst.buffer.clone(), temp: None });
        }
        let t = self.temp("result in f32", &[dst.len()])?;
        Ok(Nchw { buffer: t.buffer.clone(), temp: Some(t) })
    }

    /// Narrows the result [`Context::result_out`] gave into `dst` where `dst` is 16-bit.
    pub(crate) fn result_done(&self, job: &mut Job, out: &Nchw, dst: &Tensor) -> Result<()> {
        if dst.dtype().is_half() { self.narrow(job, &out.buffer, 0, dst, 0, dst.len()) } else { Ok(()) }
    }
}
