//! The WGSL kernels, their binding layouts, the uniform blocks of each kernel family and the pipeline
//! cache.
//!
//! Each kernel lives in `shaders/NAME.wgsl`; its name is also its wgpu label and its cache key. The
//! convolution kernels are compiled after the uniform blocks of the four families (declared here, from
//! the same field lists as their Rust structs) and `shaders/common.wgsl` (tile decompositions and the
//! flat-index helper).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

use crate::plan::variant::Variant;
// The uniform blocks are plain data of the plans; the kernels here declare and bind them.
pub(crate) use crate::plan::uniform::*;

/// How a kernel sees one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `var<uniform>`: the parameters.
    Uniform,
    /// `var<storage, read>`: an input tensor.
    Read,
    /// `var<storage, read_write>`: the output tensor.
    Write,
}

/// A kernel: its name, its WGSL source (without the common prelude) and its bindings in order.
#[derive(Debug)]
pub struct KernelSpec {
    /// Name of the file in `shaders/` without `.wgsl`, the wgpu label and the cache key.
    pub name: &'static str,
    /// The kernel's own WGSL.
    pub source: &'static str,
    pub(crate) bindings: &'static [Binding],
}

use Binding::{Read, Uniform, Write};

/// The prelude shared by all kernels.
pub const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");

macro_rules! kernel {
    ($ident:ident, $name:literal, [$($b:expr),*]) => {
        pub(crate) const $ident: KernelSpec = KernelSpec {
            name: $name,
            source: include_str!(concat!("../../shaders/", $name, ".wgsl")),
            bindings: &[$($b),*],
        };
    };
    // A kernel that uses the functions of another file (`shaders/activation.wgsl`), put before it.
    ($ident:ident, $name:literal, [$($b:expr),*], after $lib:literal) => {
        pub(crate) const $ident: KernelSpec = KernelSpec {
            name: $name,
            source: concat!(
                include_str!(concat!("../../shaders/", $lib, ".wgsl")),
                include_str!(concat!("../../shaders/", $name, ".wgsl"))
            ),
            bindings: &[$($b),*],
        };
    };
}

kernel!(FORWARD, "conv2d_forward", [Uniform, Read, Read, Read, Write]);
kernel!(WEIGHT_GRAD, "conv2d_weight_grad", [Uniform, Read, Read, Write]);
kernel!(INPUT_GRAD, "conv2d_input_grad", [Uniform, Read, Read, Write]);
kernel!(BIAS_GRAD, "conv2d_bias_grad", [Uniform, Read, Write]);
kernel!(AXPBY, "axpby", [Uniform, Read, Read, Write]);
kernel!(SUM_SQUARES, "sum_squares", [Uniform, Read, Write]);
kernel!(ADAM, "adam", [Uniform, Read, Write, Write, Write]);
kernel!(PAD_INPUT, "pad_input", [Uniform, Read, Write]);
kernel!(PAD_INPUT_VEC4, "pad_input_vec4", [Uniform, Read, Write]);
kernel!(FORWARD_TILED, "conv2d_forward_tiled", [Uniform, Read, Read, Read, Write]);
kernel!(WEIGHT_GRAD_TILED, "conv2d_weight_grad_tiled", [Uniform, Read, Read, Write]);
kernel!(SPLIT_SUM, "split_sum", [Uniform, Read, Write]);
kernel!(FLIP_WEIGHTS, "flip_weights", [Uniform, Read, Write]);
kernel!(SCATTER_DY, "scatter_dy", [Uniform, Read, Write]);
kernel!(TRANSPOSE_WEIGHTS, "transpose_weights", [Uniform, Read, Write]);
kernel!(TRANSPOSE, "transpose", [Uniform, Read, Write]);
kernel!(TRANSPOSE_ROWS, "transpose_rows", [Uniform, Read, Write]);
kernel!(FORWARD_VEC4, "conv2d_forward_vec4", [Uniform, Read, Read, Read, Write]);
kernel!(WEIGHT_GRAD_VEC4, "conv2d_weight_grad_vec4", [Uniform, Read, Read, Read, Read, Write]);
kernel!(CONV_GEMM, "conv2d_gemm", [Uniform, Read, Read, Read, Write]);
kernel!(WEIGHT_GRAD_GEMM, "conv2d_weight_grad_gemm", [Uniform, Read, Read, Write]);
kernel!(WIDEN, "widen", [Uniform, Read, Read, Write]);
kernel!(NARROW, "narrow", [Uniform, Read, Write]);
kernel!(PLACE, "place", [Uniform, Read, Read, Write]);
kernel!(ACTIVATE, "activate", [Uniform, Read, Read, Write], after "activation");
kernel!(ACT_BIAS_GRAD, "act_bias_grad", [Uniform, Read, Read, Write, Write], after "activation");

/// Every kernel the crate ships: the naga tests validate each (with the variants the planner emits
/// where it has markers) and check its bindings against the WGSL.
// Also what the tuner fingerprints (`tune::key`): a new kernel source is a new set of plans to measure.
pub(crate) const ALL_KERNELS: &[&KernelSpec] = &[
    &FORWARD,
    &WEIGHT_GRAD,
    &INPUT_GRAD,
    &BIAS_GRAD,
    &AXPBY,
    &SUM_SQUARES,
    &ADAM,
    &PAD_INPUT,
    &PAD_INPUT_VEC4,
    &FORWARD_TILED,
    &WEIGHT_GRAD_TILED,
    &SPLIT_SUM,
    &FLIP_WEIGHTS,
    &SCATTER_DY,
    &TRANSPOSE_WEIGHTS,
    &TRANSPOSE,
    &TRANSPOSE_ROWS,
    &FORWARD_VEC4,
    &WEIGHT_GRAD_VEC4,
    &CONV_GEMM,
    &WEIGHT_GRAD_GEMM,
    &WIDEN,
    &NARROW,
    &PLACE,
    &ACTIVATE,
    &ACT_BIAS_GRAD,
];

impl KernelSpec {
    /// The full WGSL that is compiled: the common prelude followed by the kernel, with each
    /// `{{NAME}}` marker replaced by the variant's generated code.
    ///
    /// # Errors
    /// [`Error::Template`] when the variant fills a marker the kernel does not have, or leaves one
    /// unfilled: a generator and its template that disagree never compile into something else.
    pub(crate) fn full_source_with(&self, variant: &Variant) -> Result<String> {
        // `enable` must open the module, ahead of the prelude.
        let enable = if variant.needs_f16() { "enable f16;\n" } else { "" };
        let mut src = format!("{enable}{}{COMMON_WGSL}\n{}", uniform_decls(), self.source);
        let template_error = |message: String| Error::Template { kernel: self.name, message };
        for (name, value) in &variant.subs() {
            let marker = format!("{{{{{name}}}}}");
            if !src.contains(&marker) {
                return Err(template_error(format!("{variant:?} fills {marker}, which the kernel does not have")));
            }
            src = src.replace(&marker, value);
        }
        if let Some(at) = src.find("{{") {
            let marker: String = src[at..].chars().take_while(|&c| c != '\n').take(40).collect();
            return Err(template_error(format!("{variant:?} leaves {marker} unfilled")));
        }
        Ok(src)
    }
}

/// A compiled kernel.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// Pipelines kept by a context: at most [`PIPELINE_CACHE_LIMIT`], the least recently used evicted.
///
/// A layer needs a handful of pipelines, but every layer shape may need its own tiled variants, and a
/// driver's compiled pipeline holds its machine code (SwiftShader's, about 1–2 MB each): a cache
/// without bound grows with every shape a long-running program meets.
#[derive(Debug, Default)]
pub(crate) struct PipelineCache {
    state: Mutex<CacheState>,
}

/// Pipelines a context keeps compiled.
pub(crate) const PIPELINE_CACHE_LIMIT: usize = 48;

#[derive(Debug, Default)]
struct CacheState {
    /// Each pipeline with the tick of its last use.
    map: HashMap<(&'static str, Variant), (Arc<Pipeline>, u64)>,
    tick: u64,
    stats: PipelineStats,
}

/// What a context's pipeline cache has done since the context was made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PipelineStats {
    /// Pipelines compiled (a pipeline evicted and needed again counts twice).
    pub compiled: u64,
    /// Wall-clock milliseconds spent compiling them (shader module and pipeline creation).
    pub compile_ms: f64,
    /// Pipelines evicted to stay within the limit.
    pub evicted: u64,
    /// Pipelines held now.
    pub held: usize,
}

impl PipelineCache {
    /// The pipeline of `spec` in `variant` (the cache key is the kernel's name and the variant),
    /// compiled on first use inside an error scope, so that a shader the device rejects is an
    /// [`Error::Wgpu`] naming the kernel rather than a panic.
    pub(crate) fn get(&self, device: &wgpu::Device, spec: &KernelSpec, variant: &Variant) -> Result<Arc<Pipeline>> {
        let key = (spec.name, *variant);
        {
            let mut st = self.lock();
            st.tick += 1;
            let tick = st.tick;
            if let Some((p, used)) = st.map.get_mut(&key) {
                *used = tick;
                return Ok(p.clone());
            }
        }
        // Compiled outside the lock: two threads may both compile a kernel the first time, and the
        // second result is dropped. That is cheaper than serialising every compilation.
        let label = match variant {
            Variant::Plain => spec.name.to_string(),
            v => format!("{}/{v:?}", spec.name),
        };
        // The browser has no monotonic clock in std: compile time is counted on native targets only.
        #[cfg(not(target_arch = "wasm32"))]
        let start = std::time::Instant::now();
        let built = Arc::new(build(device, spec, variant, &label)?);
        let mut st = self.lock();
        st.stats.compiled += 1;
        #[cfg(not(target_arch = "wasm32"))]
        {
            st.stats.compile_ms += start.elapsed().as_secs_f64() * 1e3;
        }
        let tick = st.tick;
        let p = st.map.entry(key).or_insert((built, tick)).0.clone();
        while st.map.len() > PIPELINE_CACHE_LIMIT {
            let oldest = st.map.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k);
            if let Some(k) = oldest {
                st.map.remove(&k);
                st.stats.evicted += 1;
            }
        }
        Ok(p)
    }

    /// Counts since the cache was made.
    pub(crate) fn stats(&self) -> PipelineStats {
        let st = self.lock();
        PipelineStats { held: st.map.len(), ..st.stats }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A poisoned map still holds only complete pipelines.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn build(device: &wgpu::Device, spec: &KernelSpec, variant: &Variant, label: &str) -> Result<Pipeline> {
    let source = spec.full_source_with(variant)?;
    // In the browser a scope cannot be awaited here: a rejected shader falls to the scope of the job
    // being recorded, and is reported when the job's errors are (`Context::settle`).
    #[cfg(not(target_arch = "wasm32"))]
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(dir) = std::env::var_os("CONVGRAD_DUMP_WGSL") {
        let name = label.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{name}.wgsl")), &source);
    }
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let entries: Vec<wgpu::BindGroupLayoutEntry> = spec
        .bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match b {
                // Each dispatch's uniform sits at its own offset of its job's one uniform buffer.
                Binding::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: None,
                },
                Binding::Read | Binding::Write => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: *b == Binding::Read },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            },
            count: None,
        })
        .collect();
    let layout =
        device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(spec.name), entries: &entries });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(spec.name),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(spec.name),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[("WG", f64::from(variant.workgroup()))],
            // Only `transpose` uses workgroup memory, and it reads only what it wrote.
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::Wgpu { kernel: label.to_string(), message: crate::error::chain(&e) });
    }
    Ok(Pipeline { pipeline, layout })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::variant::{
        Cols, Pad, Rows, Sharing, Store, Window, forward, forward_vec4, weight_grad, weight_grad_vec4,
    };
    use wgpu::naga;

    /// Parses and validates `spec` in `variant` with naga, and checks its bindings against Rust's list.
    fn validate(spec: &KernelSpec, v: &Variant) {
        validate_with(spec, v, naga::valid::Capabilities::all());
    }

    /// [`validate`] on a device with only `caps`.
    fn validate_with(spec: &KernelSpec, v: &Variant, caps: naga::valid::Capabilities) {
        let src = spec.full_source_with(v).unwrap_or_else(|e| panic!("{e}"));
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}/{v:?} does not parse:\n{}", spec.name, e.emit_to_string(&src)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}/{v:?} does not validate: {e:?}", spec.name));
        let bound = module.global_variables.iter().filter(|(_, g)| g.binding.is_some()).count();
        assert_eq!(bound, spec.bindings.len(), "{}: bindings in Rust and WGSL differ", spec.name);
    }

    /// The kernel a tiled variant belongs to.
    fn spec_of(v: &Variant) -> &'static KernelSpec {
        match v {
            Variant::Plain => &FORWARD,
            Variant::Forward { .. } => &FORWARD_TILED,
            Variant::WeightGrad { .. } => &WEIGHT_GRAD_TILED,
            Variant::ForwardVec4(_) => &FORWARD_VEC4,
            Variant::WeightGradVec4 { .. } => &WEIGHT_GRAD_VEC4,
            Variant::ConvGemm(..) => &CONV_GEMM,
            Variant::WeightGradGemm(..) => &WEIGHT_GRAD_GEMM,
            Variant::Widen(..) => &WIDEN,
            Variant::Narrow(..) => &NARROW,
        }
    }

    /// The half-precision kernels validate on every path, each with only the capabilities its
    /// adapters have: the bits path with neither `f16` nor the pack builtins, so a stray `f16` or
    /// `pack2x16float` there fails; bf16 is always the bits path.
    #[test]
    fn half_variants_validate_with_only_their_capabilities() {
        use crate::elem::{Elem, HalfPath};
        use naga::valid::Capabilities as C;
        let without = C::all() - C::SHADER_FLOAT16 - C::SHADER_FLOAT16_IN_FLOAT32;
        for elem in [Elem::F16, Elem::Bf16] {
            for path in HalfPath::ALL {
                let caps = |v: &Variant| match v {
                    Variant::Widen(_, HalfPath::Native) => C::all(),
                    Variant::Widen(_, HalfPath::Packed) | Variant::Narrow(_, HalfPath::Packed) => {
                        without | C::SHADER_FLOAT16_IN_FLOAT32
                    }
                    _ => without,
                };
                let (w, n) = (Variant::widen(elem, path), Variant::narrow(elem, path));
                validate_with(&WIDEN, &w, caps(&w));
                validate_with(&NARROW, &n, caps(&n));
            }
        }
        assert_eq!(Variant::widen(Elem::Bf16, HalfPath::Native), Variant::Widen(Elem::Bf16, HalfPath::Bits));
        // The GEMM kernels reading 16-bit operands in place, every planned tile and staging.
        let gemms: Vec<Variant> = crate::plan::tests::planned_variants()
            .into_iter()
            .filter(|v| matches!(v, Variant::ConvGemm(..) | Variant::WeightGradGemm(..)))
            .collect();
        assert!(gemms.len() >= 4, "{gemms:?}");
        for v in gemms {
            for (elem, path) in
                [(Elem::F16, HalfPath::Packed), (Elem::F16, HalfPath::Bits), (Elem::Bf16, HalfPath::Bits)]
            {
                let load = crate::plan::variant::Load::of(elem, path);
                let caps = if load.path == HalfPath::Packed { without | C::SHADER_FLOAT16_IN_FLOAT32 } else { without };
                validate_with(spec_of(&v), &v.with_load(load), caps);
            }
        }
        assert!(Variant::widen(Elem::F16, HalfPath::Native).needs_f16());
        assert_eq!(Variant::narrow(Elem::F16, HalfPath::Native), Variant::Narrow(Elem::F16, HalfPath::Packed));
    }

    /// Every kernel without markers parses and validates with naga; no adapter needed. The templated
    /// ones refuse to compile without their generated code.
    #[test]
    fn every_kernel_validates_with_naga() {
        let templated = [
            &FORWARD_TILED,
            &WEIGHT_GRAD_TILED,
            &FORWARD_VEC4,
            &WEIGHT_GRAD_VEC4,
            &CONV_GEMM,
            &WEIGHT_GRAD_GEMM,
            &WIDEN,
            &NARROW,
        ];
        for spec in ALL_KERNELS {
            if templated.iter().any(|t| t.name == spec.name) {
                assert!(matches!(spec.full_source_with(&Variant::Plain), Err(Error::Template { .. })), "{}", spec.name);
            } else {
                validate(spec, &Variant::Plain);
            }
        }
        // All but the three included files, common.wgsl, half.wgsl and activation.wgsl.
        assert_eq!(ALL_KERNELS.len(), std::fs::read_dir("shaders").unwrap().count() - 3, "a shader is not listed");
    }

    /// A variant filling a marker its kernel lacks is refused.
    #[test]
    fn a_variant_for_another_kernel_is_refused() {
        let v = weight_grad(8, 8);
        assert!(matches!(FORWARD_TILED.full_source_with(&v), Err(Error::Template { .. })));
    }

    /// Every variant the planner emits for the sweep's shapes and the standard layers, on both
    /// profiles and every strategy, parses and validates.
    #[test]
    fn planned_variants_validate_with_naga() {
        let variants = crate::plan::tests::planned_variants();
        assert!(variants.len() >= 20, "only {} variants planned", variants.len());
        for v in &variants {
            validate(spec_of(v), v);
        }
    }

    /// Hand-picked variants, some of which the planner does not emit today (the scalar kernel with a
    /// window row, dense spread columns without a row stride), parse and validate too.
    #[test]
    fn tiled_variants_validate_with_naga() {
        let mut variants = vec![forward(1, 16, None), weight_grad(2, 8), weight_grad(8, 8)];
        for (t, sw, dw) in [(1, 1, 1), (3, 1, 1), (5, 1, 2), (7, 2, 1)] {
            variants.push(forward(4, 8, Some(Window { t, sw, dw })));
            variants.push(forward(8, 16, Some(Window { t, sw, dw })));
            let wd = Window { t, sw, dw };
            variants.push(forward_vec4(4, 8, wd, None, Pad::Copy, Sharing::PerLane, Store::Scalar));
            variants.push(forward_vec4(1, 16, wd, None, Pad::Mask, Sharing::Subgroup, Store::Vec4));
            variants.push(forward_vec4(3, 16, wd, None, Pad::Copy, Sharing::Subgroup, Store::Scalar));
            variants.push(forward_vec4(8, 16, wd, None, Pad::Mask, Sharing::PerLane, Store::Vec4));
            variants.push(forward_vec4(16, 12, wd, None, Pad::Copy, Sharing::Subgroup, Store::Vec4));
            // A spread input whose columns hold data every 2nd column (an input gradient of stride 2).
            let mut v = forward_vec4(4, 8, wd, None, Pad::Copy, Sharing::Subgroup, Store::Scalar);
            if let Variant::ForwardVec4(f) = &mut v {
                f.cols = Some(Cols { step: 2, phase: 1, lead: None });
            }
            variants.push(v);
            // The same read from dY itself.
            let mut v = forward_vec4(4, 8, wd, None, Pad::Mask, Sharing::Subgroup, Store::Scalar);
            if let Variant::ForwardVec4(f) = &mut v {
                f.cols = Some(Cols { step: 2, phase: 1, lead: Some(-1) });
            }
            variants.push(v);
            // Several rows per tile, with strides and dilations that leave some input rows unread.
            let rows = Rows { br: 4, s: t, sh: sw, dh: dw, fenced: t == 3 };
            variants.push(forward_vec4(1, 16, wd, Some(rows), Pad::Mask, Sharing::Subgroup, Store::Vec4));
            let rows = Some(Rows { br: 2, s: 2, sh: 3, dh: 1, fenced: true });
            variants.push(forward_vec4(3, 8, wd, rows, Pad::Copy, Sharing::PerLane, Store::Vec4));
            variants.push(weight_grad_vec4(3, 2, wd, Sharing::PerLane));
            variants.push(weight_grad_vec4(8, 1, wd, Sharing::Subgroup));
            variants.push(weight_grad_vec4(16, 2, wd, Sharing::Subgroup));
        }
        for v in &variants {
            validate(spec_of(v), v);
        }
    }

    /// The cache holds at most its limit, evicting the least recently used.
    #[test]
    fn the_pipeline_cache_evicts_the_least_recently_used() {
        let Ok(ctx) = crate::Context::new() else { panic!("the cache test needs an adapter (see tests/common)") };
        let cache = PipelineCache::default();
        let v = |bk: usize| forward(bk, 4, None);
        let first = cache.get(ctx.device(), &FORWARD_TILED, &v(1)).unwrap();
        for bk in 2..=PIPELINE_CACHE_LIMIT + 2 {
            // Keep the first one in use: it must survive every eviction.
            assert!(Arc::ptr_eq(&first, &cache.get(ctx.device(), &FORWARD_TILED, &v(1)).unwrap()));
            cache.get(ctx.device(), &FORWARD_TILED, &v(bk)).unwrap();
        }
        let st = cache.stats();
        assert_eq!((st.held, st.compiled, st.evicted), (PIPELINE_CACHE_LIMIT, PIPELINE_CACHE_LIMIT as u64 + 2, 2));
        // bk = 2 was the least recently used: compiling it again counts.
        cache.get(ctx.device(), &FORWARD_TILED, &v(2)).unwrap();
        assert_eq!(cache.stats().compiled, PIPELINE_CACHE_LIMIT as u64 + 3);
    }

    #[test]
    fn uniform_blocks_match_their_wgsl() {
        for (wgsl, size) in [
            (ConvUniform::WGSL, std::mem::size_of::<ConvUniform>()),
            (PrepUniform::WGSL, std::mem::size_of::<PrepUniform>()),
            (ForwardTileUniform::WGSL, std::mem::size_of::<ForwardTileUniform>()),
            (GradTileUniform::WGSL, std::mem::size_of::<GradTileUniform>()),
            (GemmUniform::WGSL, std::mem::size_of::<GemmUniform>()),
            (HalfUniform::WGSL, std::mem::size_of::<HalfUniform>()),
        ] {
            assert_eq!(wgsl.matches(": u32").count() * 4, size, "{wgsl}");
        }
        assert!(!COMMON_WGSL.contains("struct ConvParams"), "the blocks are declared from Rust only");
    }
}
