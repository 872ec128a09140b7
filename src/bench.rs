//! The benchmark suites and the timing loop shared by `convgrad bench` and the criterion benches,
//! and the records and JSON shared with the browser's benchmark page (`web/bench.html`, which times
//! the same suites with its own, asynchronous loop).
//!
//! Resident mode: the inputs are on the device before the clock starts; the timed region is the
//! operation plus the read-back of its result to the host, so the time includes synchronisation. Where
//! the adapter has timestamp queries, the device time of the kernels alone is measured too, in runs of
//! its own (recording timestamps costs time).
//! GFLOP/s = `2·N·K·P·Q·(C/G)·S·T` / time, the same count for all three operations.

use std::fmt::Write as _;
#[cfg(not(target_arch = "wasm32"))]
use std::time::Instant;

use crate::elem::Elem;
use crate::error::Result;
use crate::geometry::{Conv2dGeometry, Conv2dParams};
use crate::gpu::{Context, Tensor};
use crate::verify::Rng;

pub use crate::plan::Op;

pub use crate::clock::now_ms;

/// A named layer of a suite.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The suite name, e.g. `resnet_8x64x56x56_k64_3x3_p1`.
    pub name: &'static str,
    /// The layer.
    pub geo: Conv2dGeometry,
}

#[allow(clippy::too_many_arguments)] // the columns of the suite table below
fn shape(name: &'static str, n: usize, c: usize, hw: usize, k: usize, st: usize, pad: usize, stride: usize) -> Shape {
    let params = Conv2dParams::new().padding(pad, pad).stride(stride, stride);
    match Conv2dGeometry::new(n, c, [hw, hw], k, [st, st], params) {
        Ok(geo) => Shape { name, geo },
        // The suites are constants; a failure here is a bug in this file, caught by its unit test.
        Err(e) => unreachable!("suite shape {name} is invalid: {e}"),
    }
}

/// The named suites: `standard` (the five layers results are reported on), `quick` (the criterion
/// default: the two small layers) and `tiny` (seconds on a software adapter, for tests).
#[must_use]
pub fn suite(name: &str) -> Option<Vec<Shape>> {
    let standard = || {
        vec![
            shape("seed_1x1x256x256_k8_5x5", 1, 1, 256, 8, 5, 0, 1),
            shape("mnist_32x1x28x28_k32_5x5", 32, 1, 28, 32, 5, 0, 1),
            shape("resnet_8x64x56x56_k64_3x3_p1", 8, 64, 56, 64, 3, 1, 1),
            shape("deep_8x256x14x14_k256_3x3_p1", 8, 256, 14, 256, 3, 1, 1),
            shape("stem_4x3x224x224_k64_7x7_p3_s2", 4, 3, 224, 64, 7, 3, 2),
        ]
    };
    match name {
        "standard" => Some(standard()),
        // The standard layers at the batch sizes a GPU trains with.
        "gpu" => Some(vec![
            shape("seed_32x1x256x256_k8_5x5", 32, 1, 256, 8, 5, 0, 1),
            shape("mnist_128x1x28x28_k32_5x5", 128, 1, 28, 32, 5, 0, 1),
            shape("resnet_32x64x56x56_k64_3x3_p1", 32, 64, 56, 64, 3, 1, 1),
            shape("resnet_128x64x56x56_k64_3x3_p1", 128, 64, 56, 64, 3, 1, 1),
            shape("deep_32x256x14x14_k256_3x3_p1", 32, 256, 14, 256, 3, 1, 1),
            shape("deep_128x256x14x14_k256_3x3_p1", 128, 256, 14, 256, 3, 1, 1),
            shape("stem_32x3x224x224_k64_7x7_p3_s2", 32, 3, 224, 64, 7, 3, 2),
            shape("stem_128x3x224x224_k64_7x7_p3_s2", 128, 3, 224, 64, 7, 3, 2),
        ]),
        "quick" => Some(standard().into_iter().take(2).collect()),
        "tiny" => Some(vec![
            shape("tiny_1x1x64x64_k4_5x5", 1, 1, 64, 4, 5, 0, 1),
            shape("tiny_2x8x16x16_k8_3x3_p1", 2, 8, 16, 8, 3, 1, 1),
        ]),
        _ => None,
    }
}

/// Names accepted by [`suite`].
pub const SUITES: [&str; 4] = ["standard", "quick", "tiny", "gpu"];

/// FP32 peaks (non-tensor-core, boost clock) of GPUs by a distinctive part of their adapter name,
/// in TFLOP/s, with where each figure comes from. The first match wins, so the more specific names
/// come first.
const PEAKS: [(&str, f64, &str); 12] = [
    ("H200 NVL", 60.0, "NVIDIA H200 NVL datasheet"),
    ("H200", 67.0, "NVIDIA H200 Tensor Core GPU datasheet (SXM)"),
    ("H100 PCIe", 51.0, "NVIDIA H100 Tensor Core GPU datasheet (PCIe)"),
    ("H100 NVL", 60.0, "NVIDIA H100 Tensor Core GPU datasheet (NVL)"),
    ("H100", 67.0, "NVIDIA H100 Tensor Core GPU datasheet (SXM)"),
    ("A100", 19.5, "NVIDIA A100 Tensor Core GPU datasheet"),
    ("L40S", 91.6, "NVIDIA L40S datasheet"),
    ("RTX 4090", 82.6, "NVIDIA Ada Lovelace architecture whitepaper (RTX 4090)"),
    ("RTX 3090", 35.6, "NVIDIA Ampere GA102 architecture whitepaper (RTX 3090)"),
    ("V100", 15.7, "NVIDIA Tesla V100 datasheet (SXM2)"),
    ("Tesla T4", 8.1, "NVIDIA T4 datasheet"),
    ("MI300X", 163.4, "AMD Instinct MI300X datasheet (FP32 vector)"),
];

/// The FP32 peak of the adapter named `adapter` in TFLOP/s and its source, where the table knows it.
#[must_use]
pub fn fp32_peak(adapter: &str) -> Option<(f64, &'static str)> {
    PEAKS.iter().find(|(name, _, _)| adapter.contains(name)).map(|&(_, tflops, source)| (tflops, source))
}

/// Device-resident inputs of one layer: `X`, `W` and `dY`, seeded.
#[derive(Debug)]
pub struct Inputs {
    /// The layer.
    pub geo: Conv2dGeometry,
    /// The operands' dtype.
    pub elem: Elem,
    x: Tensor,
    w: Tensor,
    dy: Tensor,
}

impl Inputs {
    /// Uploads seeded random inputs for `geo`.
    ///
    /// # Errors
    /// Device limits or wgpu errors.
    pub fn new(ctx: &Context, geo: Conv2dGeometry) -> Result<Self> {
        Self::new_as(ctx, geo, Elem::F32)
    }

    /// [`Inputs::new`] with the operands in `elem` (the same seeded values, rounded).
    ///
    /// # Errors
    /// Device limits or wgpu errors.
    pub fn new_as(ctx: &Context, geo: Conv2dGeometry, elem: Elem) -> Result<Self> {
        let [x, w, dy] = Self::arrays(&geo);
        let up = |a: &ndarray::Array4<f32>| ctx.upload_as(a.view(), elem);
        Ok(Self { geo, elem, x: up(&x)?, w: up(&w)?, dy: up(&dy)? })
    }

    /// The seeded host arrays of X, W and dY.
    fn arrays(geo: &Conv2dGeometry) -> [ndarray::Array4<f32>; 3] {
        let mut rng = Rng::new(42);
        [rng.array(geo.input_shape()), rng.array(geo.weight_shape()), rng.array(geo.output_shape())]
    }

    /// Runs `op` and reads its result back to the host: one timed unit of the benchmark. Returns the
    /// host's share in milliseconds: the call itself, which validates, plans, records and submits the
    /// work and returns before the device has run it (the read-back then waits for the device).
    ///
    /// # Errors
    /// wgpu or device errors.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self, ctx: &Context, op: Op) -> Result<f64> {
        let t0 = Instant::now();
        let out = self.launch(ctx, op)?;
        let host_ms = t0.elapsed().as_secs_f64() * 1e3;
        let back = ctx.download::<ndarray::IxDyn>(&out)?;
        std::hint::black_box(back);
        Ok(host_ms)
    }

    /// Seeded inputs for `geo` and, with the same seed, their absolute values (for the error bound of
    /// a result: the same op on |inputs|).
    ///
    /// # Errors
    /// Device limits or wgpu errors.
    pub fn with_magnitudes(ctx: &Context, geo: Conv2dGeometry) -> Result<(Self, Self)> {
        let [x, w, dy] = Self::arrays(&geo);
        let up = |a: &ndarray::Array4<f32>| ctx.upload(a.view());
        let abs = |a: &ndarray::Array4<f32>| ctx.upload(a.mapv(f32::abs).view());
        let elem = Elem::F32;
        Ok((
            Self { geo, elem, x: up(&x)?, w: up(&w)?, dy: up(&dy)? },
            Self { geo, elem, x: abs(&x)?, w: abs(&w)?, dy: abs(&dy)? },
        ))
    }

    /// The same inputs for another context on the same device: its tensors over these buffers.
    ///
    /// # Errors
    /// As [`Context::wrap`].
    pub fn on(&self, ctx: &Context) -> Result<Self> {
        let wrap = |t: &Tensor| ctx.wrap_as(&t.buffer, t.shape(), t.dtype());
        Ok(Self { geo: self.geo, elem: self.elem, x: wrap(&self.x)?, w: wrap(&self.w)?, dy: wrap(&self.dy)? })
    }

    /// Records `op` on `ctx` and returns its result tensor (not read back).
    ///
    /// # Errors
    /// The operation's.
    pub fn launch(&self, ctx: &Context, op: Op) -> Result<Tensor> {
        let g = &self.geo;
        match op {
            Op::Forward => ctx.forward(&self.x, &self.w, None, &g.params),
            Op::WeightGrad => ctx.weight_grad(&self.x, &self.dy, [g.s, g.t], &g.params),
            Op::InputGrad => ctx.input_grad(&self.dy, &self.w, [g.h, g.w], &g.params),
        }
    }

    /// Runs `op` `times` times and returns how many of the runs gave the first run's result to the
    /// bit (all of them, on a deterministic implementation), and a 64-bit FNV-1a digest of the first
    /// result's bits, which another process (or another machine) can compare.
    ///
    /// # Errors
    /// wgpu or device errors.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn repeats_identical(&self, ctx: &Context, op: Op, times: usize) -> Result<(usize, u64)> {
        repeat_digest(ctx, times, || self.launch(ctx, op))
    }

    /// The rows `convgrad bench --repeats` prints beyond the three ops: the forward pass with a
    /// seeded bias (`forward+bias`) and the bias gradient of dY (`bias-grad`), each run `times` times
    /// as [`Inputs::repeats_identical`] runs an op: the runs that gave the first one's bits, and its
    /// digest.
    ///
    /// # Errors
    /// wgpu or device errors.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn extra_repeats(&self, ctx: &Context, times: usize) -> Result<Vec<(&'static str, usize, u64)>> {
        let g = &self.geo;
        let b: ndarray::Array1<f32> = Rng::new(43).array(g.k);
        let b = ctx.upload_as(b.view(), self.elem)?;
        let (same, digest) = repeat_digest(ctx, times, || ctx.forward(&self.x, &self.w, Some(&b), &g.params))?;
        let (bsame, bdigest) = repeat_digest(ctx, times, || ctx.bias_grad(&self.dy, g.params.layout))?;
        Ok(vec![("forward+bias", same, digest), ("bias-grad", bsame, bdigest)])
    }
}

/// Runs `launch` `times` times: how many runs gave the first one's bits, and a 64-bit FNV-1a digest of
/// the first result's bits.
#[cfg(not(target_arch = "wasm32"))]
fn repeat_digest(ctx: &Context, times: usize, launch: impl Fn() -> Result<Tensor>) -> Result<(usize, u64)> {
    let bits = |t: &Tensor| -> Result<Vec<u32>> {
        Ok(ctx.download::<ndarray::IxDyn>(t)?.iter().map(|v| v.to_bits()).collect())
    };
    let first = bits(&launch()?)?;
    let mut same = 1;
    for _ in 1..times {
        same += usize::from(bits(&launch()?)? == first);
    }
    let digest = crate::tune::key::fnv(first.iter().flat_map(|b| b.to_le_bytes()), crate::tune::key::FNV_START);
    Ok((same.min(times), digest))
}

/// Timings of one layer and operation.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Wall-clock milliseconds of each timed run (operation + read-back), in run order.
    pub wall_ms: Vec<f64>,
    /// Of each, the milliseconds the call took on the host before returning (see [`Inputs::run`]).
    pub host_ms: Vec<f64>,
    /// Device milliseconds of the kernels, from as many separate runs, where the adapter has
    /// timestamp queries.
    pub device_ms: Option<Vec<f64>>,
    /// The plan the operation ran, as [`crate::plan`] prints it.
    pub plan: String,
    /// Pipelines the warm-up runs compiled (0 where an earlier op of the layer had compiled them all),
    /// and the milliseconds their compilation took.
    pub pipelines_compiled: u64,
    /// See `pipelines_compiled`.
    pub compile_ms: f64,
}

impl Timing {
    /// Median wall-clock milliseconds.
    #[must_use]
    pub fn median_ms(&self) -> f64 {
        median(&self.wall_ms)
    }

    /// Median host milliseconds.
    #[must_use]
    pub fn host_median_ms(&self) -> f64 {
        median(&self.host_ms)
    }

    /// Median device milliseconds.
    #[must_use]
    pub fn device_median_ms(&self) -> Option<f64> {
        self.device_ms.as_deref().map(median)
    }
}

pub use crate::tune::select::median;

/// Untimed runs before the timed ones.
pub const WARM_UP_RUNS: usize = 3;

/// [`WARM_UP_RUNS`] warm-up runs (pipeline creation, shader compilation and the first allocations of
/// buffers and pools stay out of the numbers: on lavapipe the first timed runs after a single warm-up
/// ran up to 1.5× slower), then `reps` timed runs, then, where the adapter has timestamp queries,
/// `reps` runs that measure the kernels' device time. The timed runs do not record timestamps: their
/// query sets and resolves cost a small layer about 0.2–0.3 ms on lavapipe.
///
/// # Errors
/// wgpu or device errors.
#[cfg(not(target_arch = "wasm32"))]
pub fn time_op(ctx: &Context, inputs: &Inputs, op: Op, reps: usize) -> Result<Timing> {
    let g = &inputs.geo;
    let plan = match op {
        Op::Forward => ctx.plan_forward(g)?.to_string(),
        Op::WeightGrad => ctx.plan_weight_grad(g)?.to_string(),
        Op::InputGrad => ctx.plan_input_grad(g)?.to_string(),
    };
    let before = ctx.pipeline_stats();
    for _ in 0..WARM_UP_RUNS {
        inputs.run(ctx, op)?;
    }
    let after = ctx.pipeline_stats();
    let mut wall_ms = Vec::with_capacity(reps);
    let mut host_ms = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        host_ms.push(inputs.run(ctx, op)?);
        wall_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let profiling = ctx.set_profiling(true);
    let mut device_ms = Vec::with_capacity(reps);
    if profiling {
        for _ in 0..reps {
            inputs.run(ctx, op)?;
            device_ms.push(ctx.take_device_ms()?);
        }
    }
    ctx.set_profiling(false);
    Ok(Timing {
        wall_ms,
        host_ms,
        device_ms: profiling.then_some(device_ms),
        plan,
        pipelines_compiled: after.compiled - before.compiled,
        compile_ms: after.compile_ms - before.compile_ms,
    })
}

/// Parses a file of layers, one per line: `N C H W K S T`, then any of `stride=SH[,SW]`,
/// `pad=P[,PW]`, `pad=TOP,BOTTOM,LEFT,RIGHT`, `pad=same`, `dilation=DH[,DW]`, `groups=G` and
/// `name=NAME` (default: the dimensions, `NxCxHxW_kK_SxT`, and the line number). Blank lines and text
/// after `#` are ignored. Returns each layer's name and geometry, or the first line that is wrong
/// and why.
///
/// # Errors
/// A message naming the line: a missing or non-numeric size, an unknown or repeated option, or a
/// layer the geometry refuses (a kernel larger than its padded input, channels not divisible by the
/// groups, …).
pub fn parse_layers(text: &str) -> std::result::Result<Vec<(String, Conv2dGeometry)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let at = |why: String| format!("line {}: {why} (in '{line}')", i + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 7 {
            return Err(at("expected N C H W K S T, then options".into()));
        }
        let number = |w: &str| w.parse::<usize>().map_err(|_| at(format!("'{w}' is not a size")));
        let dims = words[..7].iter().map(|w| number(w)).collect::<std::result::Result<Vec<_>, _>>()?;
        let numbers = |v: &str| v.split(',').map(number).collect::<std::result::Result<Vec<_>, _>>();
        let pair = |key: &str, v: &str| match numbers(v)?.as_slice() {
            [a] => Ok([*a, *a]),
            [a, b] => Ok([*a, *b]),
            _ => Err(at(format!("{key} takes one or two sizes"))),
        };
        let mut params = Conv2dParams::new();
        let mut name = None;
        let mut seen: Vec<&str> = Vec::new();
        for option in &words[7..] {
            let (key, value) = option.split_once('=').ok_or_else(|| at(format!("'{option}' is not KEY=VALUE")))?;
            if seen.contains(&key) {
                return Err(at(format!("{key} given twice")));
            }
            seen.push(key);
            params = match key {
                "stride" => pair(key, value).map(|[a, b]| params.stride(a, b))?,
                "dilation" => pair(key, value).map(|[a, b]| params.dilation(a, b))?,
                "groups" => params.groups(number(value)?),
                "pad" if value == "same" => params.padding_same(),
                "pad" if value == "same-tf" => params.padding_same_tf(),
                "pad" => match numbers(value)?.as_slice() {
                    [p] => params.padding(*p, *p),
                    [ph, pw] => params.padding(*ph, *pw),
                    [t, b, l, r] => params.padding_sides(*t, *b, *l, *r),
                    _ => return Err(at("pad takes one, two or four sizes, same or same-tf".into())),
                },
                "name" => {
                    name = Some(value.to_string());
                    params
                }
                _ => return Err(at(format!("unknown option '{key}'; use stride, pad, dilation, groups or name"))),
            };
        }
        let [n, c, h, w, k, s, t] = dims[..] else { unreachable!("seven sizes were parsed") };
        let geo = Conv2dGeometry::new(n, c, [h, w], k, [s, t], params).map_err(|e| at(e.to_string()))?;
        let name = name.unwrap_or_else(|| format!("{n}x{c}x{h}x{w}_k{k}_{s}x{t}_line{}", i + 1));
        out.push((name, geo));
    }
    if out.is_empty() {
        return Err("no layers: each line is N C H W K S T, then options".into());
    }
    Ok(out)
}

/// One timed layer and operation: a row of `convgrad bench` and of the browser's benchmark page, and
/// an element of their JSON ([`records_json`]).
#[derive(Debug, Clone)]
pub struct Record {
    /// The layer's name in its suite.
    pub shape: String,
    /// The operation.
    pub op: Op,
    /// `tuned` (the planner's kernels), `cached` (the tuning cache's picks) or `reference`.
    pub kernels: &'static str,
    /// `nchw` or `nhwc`.
    pub layout: &'static str,
    /// Wall-clock milliseconds per run (operation and read-back): median, fastest, slowest.
    pub median_ms: f64,
    /// See `median_ms`.
    pub min_ms: f64,
    /// See `median_ms`.
    pub max_ms: f64,
    /// `2·N·K·P·Q·(C/G)·S·T` / the median.
    pub gflops: f64,
    /// Median microseconds the call took on the host before returning.
    pub host_us: f64,
    /// Median device milliseconds of the kernels, where the adapter has timestamp queries.
    pub device_ms: Option<f64>,
    /// The plan, as [`crate::plan`] prints it.
    pub plan: String,
    /// Pipelines the warm-up compiled, and the milliseconds it took (0 where unmeasured).
    pub pipelines: u64,
    /// See `pipelines`.
    pub compile_ms: f64,
    /// The operands' dtype ([`Record::new`] says `f32`; [`Record::with_dtype`] sets another).
    pub dtype: Elem,
    /// Bytes of the operands read and the result written, in their dtypes ([`Op::bytes`]).
    pub bytes: u64,
}

impl Record {
    /// The record of `timing`, for layer `name` (`geo`) and `op`.
    #[must_use]
    pub fn new(name: &str, geo: &Conv2dGeometry, op: Op, kernels: &'static str, timing: &Timing) -> Self {
        let median_ms = timing.median_ms();
        Self {
            shape: name.to_string(),
            op,
            kernels,
            layout: geo.params.layout.name(),
            median_ms,
            min_ms: timing.wall_ms.iter().copied().fold(f64::INFINITY, f64::min),
            max_ms: timing.wall_ms.iter().copied().fold(0.0, f64::max),
            gflops: geo.flops() / (median_ms * 1e-3) / 1e9,
            host_us: timing.host_median_ms() * 1e3,
            device_ms: timing.device_median_ms(),
            plan: timing.plan.clone(),
            pipelines: timing.pipelines_compiled,
            compile_ms: timing.compile_ms,
            dtype: Elem::F32,
            bytes: op.bytes(geo, Elem::F32),
        }
    }

    /// This record of operands in `elem`.
    #[must_use]
    pub fn with_dtype(mut self, elem: Elem, geo: &Conv2dGeometry) -> Self {
        self.dtype = elem;
        self.bytes = self.op.bytes(geo, elem);
        self
    }
}

/// Where records were measured: the fields every JSON record repeats.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The adapter's name (a browser may give none).
    pub adapter: String,
    /// wgpu's backend, as `Vulkan` or `BrowserWebGpu`.
    pub backend: String,
    /// Driver name and driver information.
    pub driver: String,
    /// The adapter profile the plans were made for.
    pub profile: String,
    /// How `median_ms` was timed: `wall clock` (submission to read-back).
    pub timing: &'static str,
    /// The browser's name and version, for records made in a page.
    pub browser: Option<String>,
}

impl Platform {
    /// The platform of `ctx`'s adapter, outside a browser.
    #[must_use]
    pub fn of(ctx: &Context) -> Self {
        let info = ctx.adapter_info();
        Self {
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            profile: ctx.profile().to_string(),
            timing: WALL_CLOCK,
            browser: None,
        }
    }
}

/// How every record's `median_ms` is timed.
pub const WALL_CLOCK: &str = "wall clock, submission to read-back";

/// The JSON fields of every record, in order: what the native bench and the browser's page both write
/// and what their checks require.
pub const RECORD_FIELDS: [&str; 23] = [
    "shape",
    "op",
    "kernels",
    "layout",
    "dtype",
    "bytes",
    "median_ms",
    "min_ms",
    "max_ms",
    "gflops",
    "peak_fraction",
    "host_us",
    "device_ms",
    "plan",
    "profile",
    "pipelines_compiled",
    "compile_ms",
    "adapter",
    "backend",
    "driver",
    "timing",
    "device_timing",
    "browser",
];

/// `records` as a JSON array, one object per record with the fields of [`RECORD_FIELDS`]
/// (`peak_fraction`: of [`fp32_peak`], `null` for an adapter it does not know; `device_timing`:
/// `timestamp queries` where `device_ms` was measured, else `null`).
#[must_use]
pub fn records_json(records: &[Record], platform: &Platform) -> String {
    let rows: Vec<String> = records
        .iter()
        .map(|r| {
            let values = [
                esc(&r.shape),
                esc(r.op.name()),
                esc(r.kernels),
                esc(r.layout),
                esc(r.dtype.name()),
                r.bytes.to_string(),
                num(r.median_ms),
                num(r.min_ms),
                num(r.max_ms),
                num(r.gflops),
                fp32_peak(&platform.adapter).map_or("null".into(), |(tflops, _)| num(r.gflops / (tflops * 1e3))),
                num(r.host_us),
                r.device_ms.map_or("null".into(), num),
                esc(&r.plan),
                esc(&platform.profile),
                r.pipelines.to_string(),
                num(r.compile_ms),
                esc(&platform.adapter),
                esc(&platform.backend),
                esc(&platform.driver),
                esc(platform.timing),
                if r.device_ms.is_some() { esc("timestamp queries") } else { "null".into() },
                platform.browser.as_deref().map_or("null".into(), esc),
            ];
            let fields: Vec<String> = RECORD_FIELDS.iter().zip(values).map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("  {{{}}}", fields.join(", "))
        })
        .collect();
    format!("[\n{}\n]\n", rows.join(",\n"))
}

/// A JSON string.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A JSON number (`null` for a NaN or an infinity, which JSON has no words for).
fn num(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { "null".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_with_every_field() {
        let geo = suite("tiny").unwrap()[1].geo;
        let timing = Timing {
            wall_ms: vec![2.0, 1.0, 4.0],
            host_ms: vec![0.1, 0.1, 0.2],
            device_ms: None,
            plan: "gemm \"x\"".into(),
            pipelines_compiled: 2,
            compile_ms: 5.5,
        };
        let r = Record::new("tiny\n", &geo, Op::WeightGrad, "tuned", &timing);
        assert_eq!((r.median_ms, r.min_ms, r.max_ms), (2.0, 1.0, 4.0));
        let platform = Platform {
            adapter: "SwiftShader Device".into(),
            backend: "BrowserWebGpu".into(),
            driver: String::new(),
            profile: "cpu".into(),
            timing: WALL_CLOCK,
            browser: Some("Chrome 156".into()),
        };
        let text = records_json(&[r.clone(), Record { device_ms: Some(0.5), ..r }], &platform);
        for f in RECORD_FIELDS {
            assert_eq!(text.matches(&format!("\"{f}\": ")).count(), 2, "{f} in {text}");
        }
        assert!(text.contains("\"shape\": \"tiny\\u000a\""), "{text}");
        assert!(text.contains("\"plan\": \"gemm \\\"x\\\"\""), "{text}");
        assert!(text.contains("\"device_ms\": null") && text.contains("\"device_ms\": 0.5"));
        assert!(text.contains("\"browser\": \"Chrome 156\"") && text.contains("\"peak_fraction\": null"));
        assert!(text.starts_with("[\n  {") && text.ends_with("}\n]\n"));
    }

    #[test]
    fn a_file_of_layers_parses_or_names_its_wrong_line() {
        let text = "# layers to tune\n\
                    8 64 56 56 64 3 3 pad=1 name=resnet\n\
                    \n\
                    2 6 11 10 9 3 2 stride=2,1 pad=1,2,0,1 dilation=2,1 groups=3  # a gather layer\n\
                    1 4 9 9 4 3 3 pad=same\n";
        let layers = parse_layers(text).unwrap();
        assert_eq!(layers.len(), 3);
        assert_eq!(layers[0].0, "resnet");
        assert_eq!(layers[0].1, suite("standard").unwrap()[2].geo);
        assert_eq!(layers[1].0, "2x6x11x10_k9_3x2_line4");
        let g = &layers[1].1;
        assert_eq!((g.params.stride, g.params.dilation, g.params.groups), ([2, 1], [2, 1], 3));
        assert_eq!([g.pad.top, g.pad.bottom, g.pad.left, g.pad.right], [1, 2, 0, 1]);
        assert_eq!([layers[2].1.p, layers[2].1.q], [9, 9]);
        for (bad, why) in [
            ("8 64 56 56 64 3", "line 1: expected N C H W K S T"),
            ("8 64 56 56 64 3 x", "line 1: 'x' is not a size"),
            ("\n1 1 4 4 1 3 3 pad=1 pad=1", "line 2: pad given twice"),
            ("1 1 4 4 1 3 3 pad=1,2,3", "pad takes one, two or four"),
            ("1 1 4 4 1 3 3 stride=1,2,3", "stride takes one or two"),
            ("1 1 4 4 1 3 3 colour=red", "unknown option 'colour'"),
            ("1 1 4 4 1 3 3 groups", "'groups' is not KEY=VALUE"),
            ("1 3 4 4 2 3 3 groups=2", "line 1: "),
            ("1 1 2 2 1 3 3", "line 1: "),
            ("# nothing\n\n", "no layers"),
        ] {
            let e = parse_layers(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn suites_are_valid_and_named_after_their_shapes() {
        for name in SUITES {
            for s in suite(name).unwrap() {
                let g = &s.geo;
                let dims = format!("{}x{}x{}x{}_k{}_{}x{}", g.n, g.c, g.h, g.w, g.k, g.s, g.t);
                assert!(s.name.contains(&dims), "{} vs {dims}", s.name);
            }
        }
        assert_eq!(suite("standard").unwrap().len(), 5);
        assert_eq!(suite("gpu").unwrap().len(), 8);
        assert_eq!(fp32_peak("NVIDIA H200").map(|p| p.0), Some(67.0));
        assert_eq!(fp32_peak("NVIDIA H100 PCIe").map(|p| p.0), Some(51.0));
        assert_eq!(fp32_peak("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
        assert!(suite("nope").is_none());
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
