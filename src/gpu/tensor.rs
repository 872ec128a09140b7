//! Device-resident tensors: upload once, run many operations, download explicitly.

use ndarray::{Array, ArrayView, Dimension, IxDyn};

use crate::elem::{Elem, HostElem};
use crate::error::{Error, Result};
use crate::gpu::context::Context;
use crate::gpu::pool::{Pool, STAGING_POOL_BYTES, TEMP_POOL_BYTES, give_back};

/// A tensor in a device buffer, in C (row-major) order, of `f32`, `f16` or `bf16` elements (its
/// [`dtype`](Tensor::dtype)); 16-bit elements are packed two to a 32-bit word, and an odd count ends
/// with a zero half.
///
/// Made by [`Context::upload`] or by an operation; read with [`Context::download`]. Dropping it frees
/// the device memory.
#[derive(Debug)]
pub struct Tensor {
    pub(crate) buffer: wgpu::Buffer,
    shape: Vec<usize>,
    elem: Elem,
    pub(crate) ctx_id: u64,
    /// For an operation's temporaries (never handed out): the pool its buffer returns to on drop.
    recycle: Option<Pool>,
}

impl Drop for Tensor {
    fn drop(&mut self) {
        if let Some(pool) = self.recycle.take() {
            give_back(&pool, self.buffer.clone(), TEMP_POOL_BYTES);
        }
    }
}

impl Tensor {
    /// The shape, outermost dimension first.
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type in memory.
    #[must_use]
    pub fn dtype(&self) -> Elem {
        self.elem
    }

    /// Number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements: the result of an operation on a batch of no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape as `[d0, d1, d2, d3]`, or an error naming `what` if the rank is not 4.
    pub(crate) fn shape4(&self, what: &str) -> Result<[usize; 4]> {
        <[usize; 4]>::try_from(self.shape.as_slice())
            .map_err(|_| Error::shape(format!("rank of {what}"), "4", self.shape.len().to_string()))
    }

    /// The shape as `[d0, d1, d2]`, or an error naming `what` if the rank is not 3.
    pub(crate) fn shape3(&self, what: &str) -> Result<[usize; 3]> {
        <[usize; 3]>::try_from(self.shape.as_slice())
            .map_err(|_| Error::shape(format!("rank of {what}"), "3", self.shape.len().to_string()))
    }

    /// The same elements under another shape of the same element count, sharing this tensor's
    /// buffer (what an operation writes through one is seen through the other), as PyTorch's
    /// `view` of a contiguous tensor: the 1-D layers' `[N, C, L]` as `[N, C, 1, L]`, say.
    ///
    /// # Errors
    /// A shape of another element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(self.len()) {
            return Err(Error::shape(
                "reshaped tensor",
                format!("a shape of {} elements, as {:?}", self.len(), self.shape),
                format!("{shape:?}"),
            ));
        }
        Ok(Tensor {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
            elem: self.elem,
            ctx_id: self.ctx_id,
            recycle: None,
        })
    }

    /// The underlying buffer, for callers that bind it in their own passes.
    #[must_use]
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// The number of elements of `shape`.
fn shape_len(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Overflow { what: "tensor size", detail: format!("shape {shape:?}") })
}

const USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

impl Context {
    /// A mappable buffer of at least `size` bytes: the smallest pooled one that fits, else a new one.
    fn staging(&self, size: u64) -> wgpu::Buffer {
        let mut pool = self.staging.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let best =
            pool.iter().enumerate().filter(|(_, b)| b.size() >= size).min_by_key(|(_, b)| b.size()).map(|(i, _)| i);
        match best {
            Some(i) => pool.swap_remove(i),
            None => self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("convgrad readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }

    /// Gives a staging buffer back to the pool, dropping the largest ones while the pool holds more
    /// than [`STAGING_POOL_BYTES`], so memory stays bounded however many sizes are read.
    fn return_staging(&self, buf: wgpu::Buffer) {
        give_back(&self.staging, buf, STAGING_POOL_BYTES);
    }

    /// A temporary of one operation, its contents undefined: a pooled buffer of the same size when
    /// one is free, else a new one. Its buffer goes back to the pool when it is dropped, which may be
    /// before the work using it is submitted: work is submitted in recording order and every user of
    /// a temporary writes it before reading it, so a later user never sees an earlier one's data.
    pub(crate) fn temp(&self, what: &str, shape: &[usize]) -> Result<Tensor> {
        let len = shape_len(shape)?;
        let bytes = self.check_tensor_size(what, len, Elem::F32)?;
        self.check_alive()?;
        let reused = {
            let mut pool = self.temps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            pool.iter().position(|b| b.size() == bytes).map(|i| pool.swap_remove(i))
        };
        let buffer = match reused {
            Some(b) => b,
            None => self.new_buffer(bytes),
        };
        if self.poison.load(std::sync::atomic::Ordering::Relaxed) {
            let nan: Vec<u8> = std::iter::repeat_n(f32::NAN.to_le_bytes(), len).flatten().collect();
            self.queue.write_buffer(&buffer, 0, &nan);
        }
        Ok(Tensor {
            buffer,
            shape: shape.to_vec(),
            elem: Elem::F32,
            ctx_id: self.id,
            recycle: Some(self.temps.clone()),
        })
    }

    fn new_buffer(&self, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("convgrad tensor"),
            // wgpu refuses to bind or map nothing: an empty tensor still gets a word of its own.
            size: bytes.max(4),
            usage: USAGE,
            mapped_at_creation: false,
        })
    }

    /// Checks that a tensor of `len` elements of `elem` can be bound by the kernels; its bytes.
    pub(crate) fn check_tensor_size(&self, what: &str, len: usize, elem: Elem) -> Result<u64> {
        // An empty tensor (a batch of no samples) is valid: nothing binds it.
        let bytes = elem.buffer_bytes(len);
        let limits = self.limits();
        if bytes > limits.max_buffer_size {
            return Err(Error::DeviceLimit {
                what: format!("{what} ({len} {elem} elements)"),
                needed: bytes,
                limit: limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        // Larger than one binding is allowed: the operations split such tensors along the batch.
        Ok(bytes)
    }

    /// Copies an array of any layout (non-contiguous and transposed views included) to the device,
    /// as a tensor of its element type: `f32`, [`half::f16`] or [`half::bf16`].
    ///
    /// # Errors
    /// An array larger than the device's buffer limits. An empty array (a batch of no samples) gives
    /// an empty tensor.
    pub fn upload<E: HostElem, D: Dimension>(&self, a: ArrayView<'_, E, D>) -> Result<Tensor> {
        self.check_tensor_size("uploaded tensor", a.len(), E::ELEM)?;
        let standard = a.as_standard_layout();
        let data = standard.as_slice().ok_or_else(|| Error::Wgpu {
            kernel: "upload".into(),
            message: "array is not contiguous after as_standard_layout".into(),
        })?;
        // The host's elements are the device's bytes (both little-endian); 16-bit data is padded to
        // whole words, as `write_buffer` and the kernels need.
        let mut bytes = bytemuck::cast_slice::<E, u8>(data).to_vec();
        bytes.resize(E::ELEM.buffer_bytes(data.len()) as usize, 0);
        self.write_new("uploaded tensor", a.shape(), E::ELEM, &bytes)
    }

    /// Copies an `f32` array to the device as a tensor of `elem`, each value rounded to the nearest
    /// `elem` (ties to even; beyond the largest finite half, ±∞).
    ///
    /// # Errors
    /// As [`Context::upload`].
    pub fn upload_as<D: Dimension>(&self, a: ArrayView<'_, f32, D>, elem: Elem) -> Result<Tensor> {
        if elem == Elem::F32 {
            // Nothing to round: the array's own bytes.
            return self.upload(a);
        }
        self.check_tensor_size("uploaded tensor", a.len(), elem)?;
        // `iter` walks any layout in logical (C) order.
        let bytes = crate::elem::encode(elem, a.iter().copied());
        self.write_new("uploaded tensor", a.shape(), elem, &bytes)
    }

    /// A new tensor holding `bytes`, its buffer's whole contents.
    fn write_new(&self, what: &str, shape: &[usize], elem: Elem, bytes: &[u8]) -> Result<Tensor> {
        self.check_alive()?;
        let t = self.alloc_as(what, shape, elem)?;
        // A queued write rather than a buffer mapped at creation: the latter panics inside wgpu when
        // the device is lost.
        if !bytes.is_empty() {
            self.queue.write_buffer(&t.buffer, 0, bytes);
        }
        Ok(t)
    }

    /// A tensor over a buffer the caller made on this context's device, for example one a render or
    /// compute pipeline of its own writes or reads: the operations read it and the `*_into` forms
    /// write into it directly, with no copy. The tensor holds a handle to the same buffer; dropping the
    /// tensor leaves the buffer to the caller.
    ///
    /// The buffer must hold exactly the shape's `f32` elements in C order (see [`Context::wrap_as`]
    /// for the 16-bit types) and have the usages
    /// `STORAGE | COPY_SRC | COPY_DST` (the kernels bind it; downloads and batch chunks copy from and
    /// into it). Work on it is ordered with the caller's by the queue: submit yours before calling an
    /// operation that reads it, and an operation's work is submitted before it returns.
    ///
    /// A buffer of another device is not detected here (wgpu exposes no owner); wgpu detects it when an
    /// operation binds or copies it, and that operation (or the download) fails with [`Error::Wgpu`]
    /// (or [`Error::Readback`]), as long as both devices come from the same wgpu instance: every
    /// context made by [`Context::new`] or [`Context::with_options`] with the same backends shares the
    /// process's one instance, and so does a device you request from an adapter of
    /// [`Context::instance`]. What is not detected: a device of a `wgpu::Instance` you made yourself
    /// given to [`Context::from_device`] beside a buffer of another instance: wgpu looks the buffer up
    /// in the wrong instance's tables, and may read another buffer or panic. Keep one instance per
    /// process. A buffer its owner destroyed fails the operation, and a download of it says so.
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::BufferUsage`], a zero or overflowing shape, a buffer beyond the
    /// device's limits.
    pub fn wrap(&self, buffer: &wgpu::Buffer, shape: &[usize]) -> Result<Tensor> {
        self.wrap_as(buffer, shape, Elem::F32)
    }

    /// [`Context::wrap`] for a buffer of `elem`s: for `f16` and `bf16`, two to a 32-bit word, the
    /// buffer's size the shape's bytes rounded up to whole words.
    ///
    /// # Errors
    /// As [`Context::wrap`].
    pub fn wrap_as(&self, buffer: &wgpu::Buffer, shape: &[usize], elem: Elem) -> Result<Tensor> {
        let len = shape_len(shape)?;
        if len == 0 {
            return Err(Error::ZeroDimension { what: "wrapped tensor size" });
        }
        let needed = self.check_tensor_size("wrapped buffer", len, elem)?;
        if buffer.size() != needed {
            return Err(Error::BufferSize { shape: shape.to_vec(), needed, got: buffer.size() });
        }
        let missing = USAGE - buffer.usage();
        if !missing.is_empty() {
            return Err(Error::BufferUsage { missing: format!("{missing:?}"), has: format!("{:?}", buffer.usage()) });
        }
        self.check_alive()?;
        Ok(Tensor { buffer: buffer.clone(), shape: shape.to_vec(), elem, ctx_id: self.id, recycle: None })
    }

    /// A new device tensor of zeros (wgpu zero-initialises every buffer), for the `*_into`
    /// operations and training loops.
    ///
    /// # Errors
    /// A shape larger than the device's buffer limits.
    pub fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        self.alloc("tensor", shape)
    }

    /// [`Context::zeros`] of element type `elem`.
    ///
    /// # Errors
    /// As [`Context::zeros`].
    pub fn zeros_as(&self, shape: &[usize], elem: Elem) -> Result<Tensor> {
        self.alloc_as("tensor", shape, elem)
    }

    /// A new `f32` device tensor of zeros; `what` names it in errors.
    pub(crate) fn alloc(&self, what: &str, shape: &[usize]) -> Result<Tensor> {
        self.alloc_as(what, shape, Elem::F32)
    }

    /// A new device tensor of zeros of `elem`; `what` names it in errors.
    pub(crate) fn alloc_as(&self, what: &str, shape: &[usize], elem: Elem) -> Result<Tensor> {
        let bytes = self.check_tensor_size(what, shape_len(shape)?, elem)?;
        self.check_alive()?;
        Ok(Tensor { buffer: self.new_buffer(bytes), shape: shape.to_vec(), elem, ctx_id: self.id, recycle: None })
    }

    /// Checks that `t` was made by this context.
    pub(crate) fn own(&self, t: &Tensor) -> Result<()> {
        if t.ctx_id == self.id { Ok(()) } else { Err(Error::ForeignTensor) }
    }

    /// Checks that `t` was made by this context and holds `f32`s: the training helpers' operands
    /// (master weights, their gradients and moments stay `f32`).
    pub(crate) fn own_f32(&self, t: &Tensor) -> Result<()> {
        if t.is_empty() {
            return Err(Error::ZeroDimension { what: "tensor size" });
        }
        self.own(t)?;
        if t.elem != Elem::F32 {
            return Err(Error::DType {
                what: "operand of a training helper".into(),
                expected: "f32 (cast it with Context::cast)".into(),
                got: t.elem.name().into(),
            });
        }
        Ok(())
    }

    /// Copies a tensor back to the host as an `f32` array of dimension `D` (use `IxDyn` for any rank);
    /// `f16` and `bf16` elements are widened, exactly ([`Context::download_as`] keeps them).
    ///
    /// Blocks until the work queued before it has finished. Native targets only; in the browser use
    /// [`Context::download_async`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the tensor's rank is not `D`'s; [`Error::Readback`] if mapping fails or
    /// the device is lost.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn download<D: Dimension>(&self, t: &Tensor) -> Result<Array<f32, D>> {
        pollster::block_on(self.download_async(t))
    }

    /// [`Context::download`] without blocking: the form for the browser, where the page's event loop
    /// completes the mapping. In the browser it first awaits the error scopes of the operations run
    /// since the last download, so a wgpu error in any of them is returned here.
    ///
    /// # Errors
    /// As [`Context::download`], and [`Error::Wgpu`] for an earlier operation's deferred error.
    pub async fn download_async<D: Dimension>(&self, t: &Tensor) -> Result<Array<f32, D>> {
        self.download_as_async(t).await
    }

    /// A tensor as a host array of `E`: its own elements where `E` is its dtype, else converted
    /// (widened exactly, or rounded to nearest even). Native targets only.
    ///
    /// # Errors
    /// As [`Context::download`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn download_as<E: HostElem, D: Dimension>(&self, t: &Tensor) -> Result<Array<E, D>> {
        pollster::block_on(self.download_as_async(t))
    }

    /// [`Context::download_as`] without blocking.
    ///
    /// # Errors
    /// As [`Context::download_async`].
    pub async fn download_as_async<E: HostElem, D: Dimension>(&self, t: &Tensor) -> Result<Array<E, D>> {
        self.own(t)?;
        self.settle().await?;
        let elem = t.elem;
        let len = t.len();
        let data = self
            .read_mapped(&t.buffer, "tensor", |bytes| {
                if elem == E::ELEM {
                    // The tensor's own type: its bytes, as they are.
                    bytemuck::pod_collect_to_vec::<u8, E>(&bytes[..len * std::mem::size_of::<E>()])
                } else {
                    crate::elem::decode(elem, bytes, len).into_iter().map(E::from_f32).collect::<Vec<E>>()
                }
            })
            .await?;
        let a = Array::from_shape_vec(IxDyn(&t.shape), data)
            .map_err(|e| Error::Readback { what: "tensor".into(), message: e.to_string() })?;
        let rank = t.shape.len();
        a.into_dimensionality::<D>().map_err(|_| {
            Error::shape(
                "rank of the downloaded tensor",
                D::NDIM.map_or("any".into(), |n| n.to_string()),
                rank.to_string(),
            )
        })
    }

    /// A buffer's `f32`s, once the operations recorded before have finished (see
    /// [`Context::read_mapped`], the one readback path).
    pub(crate) async fn read_buffer_async(&self, src: &wgpu::Buffer, what: &str) -> Result<Vec<f32>> {
        self.settle().await?;
        self.read_mapped(src, what, bytemuck::pod_collect_to_vec::<u8, f32>).await
    }

    /// The bytes of `src` (see [`Context::read_mapped`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn read_bytes(&self, src: &wgpu::Buffer, what: &str) -> Result<Vec<u8>> {
        pollster::block_on(self.read_mapped(src, what, <[u8]>::to_vec))
    }

    /// The one readback path: copies `src` into a staging buffer (reused from a small pool: allocating
    /// and clearing a fresh one cost as much as the copy), maps it, waits for that submission and hands
    /// the bytes to `take`. Errors are returned, never panicked on.
    /// On native targets it polls the device until the copy is done (the mapping's callback may still
    /// run on another thread's poll just after); in the browser the event loop completes it.
    async fn read_mapped<T>(&self, src: &wgpu::Buffer, what: &str, take: impl FnOnce(&[u8]) -> T) -> Result<T> {
        self.check_alive()?;
        let size = src.size();
        let staging = self.staging(size);
        // The copy out of `src` in a scope of its own: a buffer its owner destroyed, or mapped, is
        // refused there, and the error says so (native targets; the browser's scopes are the job's).
        #[cfg(not(target_arch = "wasm32"))]
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        let index = self.queue.submit([enc.finish()]);
        let fail = |message: String| self.explain(Error::Readback { what: what.to_string(), message });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = scope.pop().await {
            self.return_staging(staging);
            return Err(fail(format!(
                "the copy out of its buffer was refused (a wrapped buffer its owner destroyed, or one mapped?): {}",
                crate::error::chain(&e)
            )));
        }
        let (tx, rx) = crate::gpu::wait::once();
        staging.slice(..size).map_async(wgpu::MapMode::Read, move |r| tx.set(r));
        // Native targets drive the device here; the browser's event loop does it there. Another
        // thread's poll may be the one to run the callback, a moment after this poll returns, so the
        // value is awaited either way (the callback always runs or is dropped, ending the wait).
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
            .map_err(|e| fail(e.to_string()))?;
        #[cfg(target_arch = "wasm32")]
        let _ = index;
        let mapped = rx.await.ok_or_else(|| fail("the mapping callback was dropped without running".into()))?;
        mapped.map_err(|e| fail(e.to_string()))?;
        let out = {
            let view = staging.slice(..size).get_mapped_range().map_err(|e| fail(e.to_string()))?;
            take(&view)
        };
        staging.unmap();
        self.return_staging(staging);
        self.check_alive()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array4, Ix4};

    use crate::geometry::{Conv2dGeometry, Conv2dParams};
    use crate::gpu::Context;
    use crate::verify::Rng;

    /// The operations take their temporaries (padded inputs, spread dY, transposed weights, partial
    /// sums) from the pool without clearing them. With every pooled buffer filled with NaN between two
    /// runs of the same operations, the second run must give the first one's bits: a temporary read
    /// where it was not written would show as NaN (the first run read wgpu's zeros there).
    #[test]
    fn reused_temporaries_hold_nothing_of_earlier_calls() {
        let ctx = Context::new().expect("a wgpu adapter (see README: apt-get install mesa-vulkan-drivers)");
        let mut rng = Rng::new(5);
        for params in [Conv2dParams::new().padding(1, 1).stride(2, 2), Conv2dParams::new().padding(2, 0)] {
            let geo = Conv2dGeometry::new(2, 3, [21, 22], 8, [3, 3], params).unwrap();
            let x = ctx.upload(rng.array::<Ix4, _>(geo.input_shape()).view()).unwrap();
            let w = ctx.upload(rng.array::<Ix4, _>(geo.weight_shape()).view()).unwrap();
            let dy = ctx.upload(rng.array::<Ix4, _>(geo.output_shape()).view()).unwrap();
            let run = || -> Vec<Vec<u32>> {
                let outs = [
                    ctx.forward(&x, &w, None, &params).unwrap(),
                    ctx.weight_grad(&x, &dy, [3, 3], &params).unwrap(),
                    ctx.input_grad(&dy, &w, [21, 22], &params).unwrap(),
                ];
                let host = outs.iter().map(|t| ctx.download::<Ix4>(t).unwrap());
                host.map(|a: Array4<f32>| a.iter().map(|v| v.to_bits()).collect()).collect()
            };
            let first = run();
            let pooled = ctx.temps.lock().unwrap().clone();
            assert!(!pooled.is_empty(), "the operations must have pooled their temporaries");
            for buf in &pooled {
                ctx.queue.write_buffer(buf, 0, &f32::NAN.to_ne_bytes().repeat(buf.size() as usize / 4));
            }
            assert_eq!(first, run(), "{params:?}");
        }
    }
}
