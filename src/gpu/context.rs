//! The GPU context: adapter choice, device, limits and the shared pipeline cache.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::gpu::kernels::{KernelSpec, Pipeline, PipelineCache, PipelineStats};
use crate::plan::key::ProgramKey;
use crate::plan::program::Program;
use crate::plan::variant::Variant;
use crate::plan::{AdapterProfile, DeviceClass, Strategy};
use crate::tune::cache;
use crate::tune::state::Tuning;

/// How many programs a context keeps (see [`Context::program_for`]).
const MAX_PROGRAMS: usize = 256;

/// How to choose an adapter, and which profile its plans are made for.
///
/// [`AdapterOptions::from_env`] reads `WGPU_BACKEND` (a comma list such as `vulkan,gl`) and
/// `WGPU_ADAPTER_NAME` (a case-insensitive substring of the adapter name), as wgpu's own tools do.
/// [`Context::with_options`] reads `CONVGRAD_PROFILE` (`cpu` or `gpu`) where `profile` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterOptions {
    /// Backends to consider.
    pub backends: wgpu::Backends,
    /// Case-insensitive substring the adapter's name must contain.
    pub name: Option<String>,
    /// Plan for this device class instead of the adapter's own (see [`AdapterProfile`]): `Gpu` on a
    /// software adapter runs the kernels a discrete GPU gets.
    pub profile: Option<DeviceClass>,
}

impl Default for AdapterOptions {
    fn default() -> Self {
        Self { backends: wgpu::Backends::all(), name: None, profile: None }
    }
}

impl AdapterOptions {
    /// The options given by `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`, all backends and any name otherwise.
    #[must_use]
    pub fn from_env() -> Self {
        Self {
            backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
            name: std::env::var("WGPU_ADAPTER_NAME").ok().filter(|s| !s.is_empty()),
            profile: None,
        }
    }
}

/// One adapter as listed by [`list_adapters`].
#[derive(Debug, Clone)]
pub struct AdapterListing {
    /// wgpu's description of the adapter.
    pub info: wgpu::AdapterInfo,
    /// The limits it supports.
    pub limits: wgpu::Limits,
    /// Whether [`Context::with_options`] would pick it with the same options.
    pub chosen: bool,
}

/// Rank used to pick the default adapter: real GPUs first, then software, then OpenGL last because
/// its compute support is the most limited.
#[cfg(not(target_arch = "wasm32"))]
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (backend, ty)
}

fn new_instance(options: &AdapterOptions) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends = options.backends;
    wgpu::Instance::new(desc)
}

/// The process's one wgpu instance for `options.backends`, made on first use. Every context of the
/// process made by [`Context::new`] or [`Context::with_options`] (with the same backends) shares it,
/// so that wgpu knows all their devices and buffers: a buffer of one context's device wrapped by
/// another is a validation error wgpu reports (a typed [`Error::Wgpu`](crate::Error::Wgpu)). With an
/// instance each, wgpu looked the buffer up in the wrong instance's tables and either read another
/// buffer or panicked.
#[cfg(not(target_arch = "wasm32"))]
fn instance(options: &AdapterOptions) -> wgpu::Instance {
    static INSTANCES: std::sync::Mutex<Vec<(wgpu::Backends, wgpu::Instance)>> = std::sync::Mutex::new(Vec::new());
    let mut all = INSTANCES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, i)) = all.iter().find(|(b, _)| *b == options.backends) {
        return i.clone();
    }
    let i = new_instance(options);
    all.push((options.backends, i.clone()));
    i
}

/// In the browser each device is the browser's own object, which WebGPU checks itself.
#[cfg(target_arch = "wasm32")]
fn instance(options: &AdapterOptions) -> wgpu::Instance {
    new_instance(options)
}

#[cfg(target_arch = "wasm32")]
thread_local! {
    static KEEP_INSTANCE: std::cell::RefCell<Option<wgpu::Instance>> = const { std::cell::RefCell::new(None) };
}

/// Adapters matching `options`, in the order [`Context::with_options`] prefers them (the first is
/// chosen). WebGPU offers one adapter per request rather than a list.
#[cfg(target_arch = "wasm32")]
async fn candidates(options: &AdapterOptions) -> Vec<wgpu::Adapter> {
    let request =
        wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() };
    let mut adapters: Vec<wgpu::Adapter> = instance(options).request_adapter(&request).await.into_iter().collect();
    if let Some(name) = &options.name {
        let name = name.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&name));
    }
    adapters
}

/// Adapters matching `options`, in the order [`Context::with_options`] prefers them (the first is
/// chosen).
#[cfg(not(target_arch = "wasm32"))]
async fn candidates(options: &AdapterOptions) -> Vec<wgpu::Adapter> {
    let mut adapters = instance(options).enumerate_adapters(options.backends).await;
    if let Some(name) = &options.name {
        let name = name.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&name));
    }
    // Stable sort keeps the driver's order among equals, so the choice is repeatable.
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters
}

/// Every adapter wgpu finds on the given backends, marking the one `options` would choose. Native
/// targets only.
#[cfg(not(target_arch = "wasm32"))]
#[must_use]
pub fn list_adapters(options: &AdapterOptions) -> Vec<AdapterListing> {
    let chosen = pollster::block_on(candidates(options)).first().map(wgpu::Adapter::get_info);
    let all = AdapterOptions { name: None, ..options.clone() };
    let mut adapters = pollster::block_on(instance(&all).enumerate_adapters(all.backends));
    adapters.sort_by_key(|a| rank(&a.get_info()));
    let mut marked = false;
    adapters
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            let is = !marked && chosen.as_ref() == Some(&info);
            marked |= is;
            AdapterListing { limits: a.limits(), info, chosen: is }
        })
        .collect()
}

/// `vulkan, metal`, for messages.
#[must_use]
pub fn backend_names(backends: wgpu::Backends) -> String {
    let all = [
        (wgpu::Backends::VULKAN, wgpu::Backend::Vulkan),
        (wgpu::Backends::METAL, wgpu::Backend::Metal),
        (wgpu::Backends::DX12, wgpu::Backend::Dx12),
        (wgpu::Backends::GL, wgpu::Backend::Gl),
        (wgpu::Backends::BROWSER_WEBGPU, wgpu::Backend::BrowserWebGpu),
    ];
    let names: Vec<String> = all.iter().filter(|(f, _)| backends.contains(*f)).map(|(_, b)| b.to_string()).collect();
    if names.is_empty() { "(none)".into() } else { names.join(", ") }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A wgpu device and queue with convgrad's kernels, shareable between threads (`Send + Sync`).
///
/// Pipelines are compiled on first use and cached; each operation then creates only buffers, bind
/// groups and one command buffer.
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// What the plans are made for: read from the adapter once, or forced.
    profile: AdapterProfile,
    /// Which kernels the operations run.
    strategy: Mutex<Strategy>,
    pipelines: PipelineCache,
    /// Identifies the tensors this context made.
    pub(crate) id: u64,
    /// Set when the device is lost.
    lost: Arc<Mutex<Option<String>>>,
    /// The last error wgpu reported outside every error scope, if any.
    uncaptured: Arc<Mutex<Option<String>>>,
    /// When profiling, the resolved timestamp pairs of the passes run since the last
    /// [`Context::take_device_ms`].
    pub(crate) timings: Mutex<Option<Vec<wgpu::Buffer>>>,
    /// Readback buffers kept for reuse (see `Context::staging`).
    pub(crate) staging: crate::gpu::pool::Pool,
    /// The tuner's mode, cache file and choices (`src/gpu/tune.rs`).
    pub(crate) tune: Mutex<crate::tune::state::TuneState>,
    /// Buffers of finished temporaries kept for reuse (see `Context::temp`).
    pub(crate) temps: crate::gpu::pool::Pool,
    /// Bound where a kernel's optional input (the bias) is absent.
    pub(crate) placeholder: OnceLock<wgpu::Buffer>,
    /// The programs built so far, by exact request (see [`Context::program_for`]).
    programs: Mutex<HashMap<(ProgramKey, AdapterProfile), Arc<Program>>>,
    /// Whether every temporary is filled with NaN when handed out (see
    /// [`Context::set_poisoned_temporaries`]).
    pub(crate) poison: std::sync::atomic::AtomicBool,
    /// In the browser, the popped error scopes of the operations since the last download, awaited by
    /// [`Context::settle`]: nothing there may block on them.
    #[cfg(target_arch = "wasm32")]
    pub(crate) deferred: Mutex<Vec<crate::gpu::scopes::Deferred>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("device_type", &self.info.device_type)
            .field("profile", &self.profile.class)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context on the default adapter, honouring `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`.
    ///
    /// # Errors
    /// [`Error::NoAdapter`] when no adapter matches; [`Error::RequestDevice`] when it refuses a device.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self> {
        Self::with_options(&AdapterOptions::from_env())
    }

    /// [`Context::new`] without blocking: the form for the browser, where it asks `navigator.gpu` for
    /// an adapter (an [`Error::NoAdapter`] where the browser has no WebGPU).
    ///
    /// # Errors
    /// As [`Context::new`].
    pub async fn new_async() -> Result<Self> {
        Self::with_options_async(&AdapterOptions::from_env()).await
    }

    /// A context on the best adapter matching `options` (see [`list_adapters`] for the order).
    ///
    /// # Errors
    /// As [`Context::new`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options(options: &AdapterOptions) -> Result<Self> {
        pollster::block_on(Self::with_options_async(options))
    }

    /// The async form of [`Context::with_options`].
    ///
    /// # Errors
    /// As [`Context::new`].
    pub async fn with_options_async(options: &AdapterOptions) -> Result<Self> {
        let adapter = candidates(options).await.into_iter().next().ok_or_else(|| Error::NoAdapter {
            detail: match &options.name {
                Some(n) => format!(" whose name contains {n:?} on backends {}", backend_names(options.backends)),
                None => format!(" on backends {}", backend_names(options.backends)),
            },
        })?;
        let info = adapter.get_info();
        let class = match options.profile {
            Some(c) => Some(c),
            None => DeviceClass::from_env()?,
        };
        // Ask for everything the adapter supports: the default limits cap storage bindings at 128 MiB
        // even on GPUs that allow more.
        let limits = adapter.limits();
        // Subgroup operations let the tuned kernels share loads across a subgroup (see
        // `Context::subgroup_sharing`). Not in the browser: there WGSL needs `enable subgroups;`,
        // which the templates do not write, and its timestamps are coarsened.
        #[cfg(not(target_arch = "wasm32"))]
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16);
        // Native f16 where the page's adapter has `shader-f16` (Chromium's SwiftShader does not).
        #[cfg(target_arch = "wasm32")]
        let features = adapter.features() & wgpu::Features::SHADER_F16;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("convgrad"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;
        let mut ctx = Self::build(device, queue, info, limits, class);
        if let Some(path) = crate::HalfPath::from_env()? {
            ctx = ctx.with_half_path(path)?;
        }
        // Our own device: an error outside every scope (the read-back's copy is the only unscoped
        // work) is kept for the error that follows it, not a panic.
        let sink = ctx.uncaptured.clone();
        ctx.device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *slot = Some(crate::error::chain(&e));
        }));
        Ok(ctx)
    }

    /// The process's wgpu instance for `backends` (the one [`Context::new`] and
    /// [`Context::with_options`] use): request your own devices from its adapters so that wgpu can tell
    /// their buffers apart from this library's (see [`Context::wrap`]). Native targets.
    #[cfg(not(target_arch = "wasm32"))]
    #[must_use]
    pub fn instance(backends: wgpu::Backends) -> wgpu::Instance {
        instance(&AdapterOptions { backends, ..AdapterOptions::default() })
    }

    /// A context over a device and queue the caller already has (for example a renderer's). The
    /// device's own limits apply; its uncaptured-error handler is left as the caller set it. The
    /// profile is the adapter's own ([`Context::with_profile`] forces another; `CONVGRAD_PROFILE` is
    /// read only by [`Context::new`] and [`Context::with_options`], which can return its error).
    #[must_use]
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let info = device.adapter_info();
        let limits = device.limits();
        Self::build(device, queue, info, limits, None)
    }

    /// This context, planning for `class` rather than for its adapter: `DeviceClass::Gpu` on a
    /// software adapter runs the plans a discrete GPU gets (see [`AdapterProfile`]).
    #[must_use]
    pub fn with_profile(mut self, class: DeviceClass) -> Self {
        let half = self.profile.half;
        self.profile = Self::profile_of(&self.info, self.device.features(), &self.limits, Some(class));
        self.profile.half = half;
        self
    }

    /// This context reading and writing `f16` tensors on `path` rather than the best one its adapter
    /// offers (the tests run every path each driver has).
    ///
    /// # Errors
    /// [`Error::DType`](crate::Error::DType) when the adapter does not offer `path`.
    pub fn with_half_path(mut self, path: crate::HalfPath) -> Result<Self> {
        self.profile = self.profile.with_half_path(path)?;
        Ok(self)
    }

    /// This context planning as if the adapter offered at most `bytes` of workgroup memory per
    /// workgroup: the plans of an adapter with only WebGPU's guaranteed 16 KiB, say, on one that
    /// offers more.
    #[must_use]
    pub fn with_workgroup_limit(mut self, bytes: u32) -> Self {
        self.profile.workgroup_bytes = self.profile.workgroup_bytes.min(bytes);
        self
    }

    /// This context planning as if one storage binding held at most `bytes` (never more than the
    /// device's limit): layers whose buffers pass it run in batch chunks, 16-bit tensors are converted
    /// in windows. What `convgrad program --binding-limit` shows; tests use it to run the chunked paths
    /// without buffers of hundreds of MB. The results are the same bits for the operations that compute
    /// each sample alike (forward, input gradient); the reductions over the batch add their chunks in
    /// order, so theirs depend on the chunking, deterministically.
    #[must_use]
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        self.profile.max_binding_bytes = self.profile.max_binding_bytes.min(bytes);
        self
    }

    /// This context with [`Context::set_strategy`] applied.
    #[must_use]
    pub fn with_strategy(self, strategy: Strategy) -> Self {
        self.set_strategy(strategy);
        self
    }

    fn profile_of(
        info: &wgpu::AdapterInfo,
        features: wgpu::Features,
        limits: &wgpu::Limits,
        class: Option<DeviceClass>,
    ) -> AdapterProfile {
        let subgroups =
            features.contains(wgpu::Features::SUBGROUP).then_some((info.subgroup_min_size, info.subgroup_max_size));
        let is_cpu = info.device_type == wgpu::DeviceType::Cpu;
        // The pack builtins: WGSL core in the browser; wgpu on Vulkan allows them only with
        // SHADER_F16 (its SHADER_F16_IN_F32 downlevel flag; ../shared/HALF.md). A device given to
        // `from_device` has no adapter to ask, so the rule is the same for every native adapter.
        let native = features.contains(wgpu::Features::SHADER_F16);
        let packed = native || info.backend == wgpu::Backend::BrowserWebGpu;
        let profile = AdapterProfile::new(is_cpu, subgroups, limits.max_storage_buffer_binding_size, class)
            .for_driver(&info.name)
            .with_workgroup_bytes(limits.max_compute_workgroup_storage_size)
            .with_half(native, packed);
        // A browser's fallback adapter (the only WebGPU adapter wgpu reports as a CPU) is SwiftShader
        // in Chromium, whose compiler ran out of memory on the unfenced several-row tiles there too:
        // the GPU process died and took the device ("A valid external Instance reference no longer
        // exists").
        if info.backend == wgpu::Backend::BrowserWebGpu && is_cpu { profile.fenced() } else { profile }
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        limits: wgpu::Limits,
        class: Option<DeviceClass>,
    ) -> Self {
        let lost = Arc::new(Mutex::new(None));
        let sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.get_or_insert_with(|| {
                if message.is_empty() { format!("{reason:?}") } else { format!("{reason:?}: {message}") }
            });
        });
        Self::build_with(device, queue, info, limits, class, lost)
    }

    /// [`Context::build`] with the device's lost-slot given: a device has one lost callback, which a
    /// second context over it must share rather than replace.
    fn build_with(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        limits: wgpu::Limits,
        class: Option<DeviceClass>,
        lost: Arc<Mutex<Option<String>>>,
    ) -> Self {
        let profile = Self::profile_of(&info, device.features(), &limits, class);
        Self {
            device,
            queue,
            info,
            limits,
            profile,
            strategy: Mutex::new(Strategy::Auto),
            pipelines: PipelineCache::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            lost,
            uncaptured: Arc::new(Mutex::new(None)),
            placeholder: OnceLock::new(),
            programs: Mutex::default(),
            poison: std::sync::atomic::AtomicBool::new(false),
            staging: Arc::default(),
            temps: Arc::default(),
            timings: Mutex::new(None),
            tune: crate::tune::state::state(),
            #[cfg(target_arch = "wasm32")]
            deferred: Mutex::new(Vec::new()),
        }
    }

    /// A context over the same device and queue, with the same adapter profile, and with its own
    /// strategy (`Auto`), tuner (off) and pipeline cache: for running the same tensors two ways, such
    /// as a benchmark of `Auto` beside tuned plans. Tensors pass between the two with
    /// [`Context::wrap`].
    #[must_use]
    pub fn twin(&self) -> Context {
        let (device, queue) = (self.device.clone(), self.queue.clone());
        let mut c = Self::build_with(device, queue, self.info.clone(), self.limits.clone(), None, self.lost.clone());
        c.profile = self.profile;
        c.uncaptured = self.uncaptured.clone();
        c
    }

    /// A [`Context::twin`] running `strategy`: what the tuner times a candidate on.
    pub(crate) fn sibling(&self, strategy: Strategy) -> Context {
        self.twin().with_strategy(strategy)
    }

    /// The adapter's name, backend, type and driver.
    #[must_use]
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The device's limits.
    #[must_use]
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The wgpu device, for callers that mix their own passes with convgrad's.
    #[must_use]
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    #[must_use]
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Whether the adapter is a CPU (software) implementation such as lavapipe.
    #[must_use]
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// What the plans are made for: the adapter's class, subgroups and binding limit.
    #[must_use]
    pub fn profile(&self) -> &AdapterProfile {
        &self.profile
    }

    /// What the pipeline cache has compiled, and in how long, since the context was made.
    #[must_use]
    pub fn pipeline_stats(&self) -> PipelineStats {
        self.pipelines.stats()
    }

    /// Chooses the kernels later calls run ([`Strategy::Auto`] by default).
    pub fn set_strategy(&self, strategy: Strategy) {
        *self.strategy.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = strategy;
    }

    /// For tests of the kernels: fill every temporary an operation takes (padded copies, partial
    /// sums of a split reduction, transposes) with NaN first, so that an element a kernel reads
    /// before any pass wrote it shows in the result. Costs a write of each temporary; off by default.
    #[doc(hidden)]
    pub fn set_poisoned_temporaries(&self, on: bool) {
        self.poison.store(on, Ordering::Relaxed);
    }

    /// The kernels calls run now.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        *self.strategy.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Turns device timing of every kernel on or off; returns whether it is on (it stays off on
    /// adapters without timestamp queries).
    pub fn set_profiling(&self, on: bool) -> bool {
        let on = on && self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        *self.timings.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = on.then(Vec::new);
        on
    }

    /// In the browser, awaits the error scopes of the operations recorded since the last call and
    /// returns the first error they caught; on native targets every operation has already reported
    /// its own, and this returns at once.
    ///
    /// # Errors
    /// [`Error::Wgpu`] naming the operation's first kernel.
    pub async fn settle(&self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        {
            let pending = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            let mut first = None;
            for d in pending {
                if let Some(e) = d.wait().await {
                    first.get_or_insert(e);
                }
            }
            if let Some(e) = first {
                return Err(self.explain(e));
            }
        }
        Ok(())
    }

    /// Device milliseconds spent in the kernels run since profiling was turned on or this was last
    /// called (0 when profiling is off).
    ///
    /// # Errors
    /// [`Error::Readback`] if the timestamps cannot be read.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn take_device_ms(&self) -> Result<f64> {
        let pending = {
            let mut slot = self.timings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.as_mut().map(std::mem::take).unwrap_or_default()
        };
        let period_ns = f64::from(self.queue.get_timestamp_period());
        let mut total = 0.0;
        for buf in &pending {
            let ticks = bytemuck::pod_collect_to_vec::<u8, u64>(&self.read_bytes(buf, "timestamps")?);
            if let [start, end] = ticks[..] {
                total += end.saturating_sub(start) as f64 * period_ns * 1e-6;
            }
        }
        Ok(total)
    }

    /// A query set and resolve buffer for timing one pass, when profiling is on.
    pub(crate) fn timestamp_pair(&self) -> Option<(wgpu::QuerySet, wgpu::Buffer)> {
        let slot = self.timings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.as_ref()?;
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("convgrad timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("convgrad timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some((set, buf))
    }

    /// Records a resolved timestamp buffer for [`Context::take_device_ms`].
    pub(crate) fn push_timestamps(&self, buf: wgpu::Buffer) {
        let mut slot = self.timings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = slot.as_mut() {
            v.push(buf);
        }
    }

    pub(crate) fn pipeline(&self, spec: &KernelSpec, variant: &Variant) -> Result<Arc<Pipeline>> {
        self.check_alive()?;
        self.pipelines.get(&self.device, spec, variant)
    }

    /// The program of `key` on this context's profile: built once ([`ProgramKey::build`]) and kept, as the
    /// pipelines are, so that a training loop calling the same layer again pays only for recording it.
    /// A program is a pure function of its key and the profile (the key holds the resolved strategy),
    /// so a kept one is exactly what `build` would make again; the profile is part of the key because
    /// `with_profile` and the other `with_*` change it in place.
    pub(crate) fn program_for(&self, key: ProgramKey) -> Result<Arc<Program>> {
        let key = (key, self.profile);
        let lock = || self.programs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = lock().get(&key) {
            return Ok(p.clone());
        }
        let program = Arc::new(key.0.build(&self.profile)?);
        let mut kept = lock();
        // Bounded: a program of a chunked layer holds its uniforms for every chunk; a process that
        // sweeps thousands of shapes starts again rather than growing without end.
        if kept.len() >= MAX_PROGRAMS {
            kept.clear();
        }
        kept.insert(key, program.clone());
        Ok(program)
    }

    /// An error if the device was lost or reported an error outside every scope.
    pub(crate) fn check_alive(&self) -> Result<()> {
        let slot = self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.as_ref() {
            Some(m) => Err(Error::DeviceLost { message: m.clone() }),
            None => Ok(()),
        }
    }

    /// `err`, unless the device turns out to be lost, which explains it better: polling lets wgpu
    /// run a pending device-lost callback first.
    pub(crate) fn explain(&self, err: Error) -> Error {
        let _ = self.device.poll(wgpu::PollType::Poll);
        if let Err(lost) = self.check_alive() {
            return lost;
        }
        let uncaptured = self.uncaptured.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        match (err, uncaptured) {
            (Error::Readback { what, message }, Some(u)) => {
                Error::Readback { what, message: format!("{message} ({u})") }
            }
            (err, _) => err,
        }
    }

    // ---- tuning (measuring: `Context::tune` in `gpu/ops.rs`, `gpu/tune.rs`) ---------------------

    /// This context with tuning `mode` ([`Tuning::Off`] by default) and the cache file of
    /// [`cache::default_path`] (`$CONVGRAD_TUNE_CACHE`, else `$XDG_CACHE_HOME/convgrad/tuned.txt`,
    /// else `~/.cache/convgrad/tuned.txt`), unless [`Context::with_tune_cache`] names another.
    ///
    /// With the same cache file, the same adapter runs the same plans, and so gives bitwise identical
    /// results, run after run and process after process; a choice once made for a layer does not change
    /// within a process; and every candidate a tuner may pick was checked on the layer against the
    /// `Auto` plan's result within the error bound every kernel is tested to.
    #[must_use]
    pub fn with_tuning(self, mode: Tuning) -> Self {
        {
            let mut t = self.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            t.mode = mode;
            if t.path.is_none() {
                t.path = cache::default_path();
            }
        }
        self
    }

    /// This context keeping its tuned choices in `path` (`None`: in memory only).
    #[must_use]
    pub fn with_tune_cache(self, path: Option<PathBuf>) -> Self {
        {
            let mut t = self.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            t.path = path;
            t.file = None;
        }
        self
    }

    /// The tuning cache's entries, this process' picks included, as the cache file's text
    /// ([`Cache::export`]): how a page, which has no file, keeps its picks (to download, and to load
    /// with [`Cache::import`] into a file elsewhere).
    #[must_use]
    pub fn export_tuning(&self) -> String {
        let mut t = self.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.file().export()
    }

    /// The tuning mode.
    #[must_use]
    pub fn tuning(&self) -> Tuning {
        self.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner).mode
    }
}
