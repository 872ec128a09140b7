//! Helpers shared by the integration tests: the context, seeded data, NaN sentinels and error bounds.
#![allow(dead_code, unused_imports)]
// `!(x <= bound)` on purpose: a NaN must fail the check.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use std::sync::OnceLock;

pub use convgrad::verify::{Rng, U32, bound_ratio, gamma, rel_err};
use convgrad::{Algorithm, Context, DeviceClass, Elem, GemmChoice, GemmShape, Strategy, Tensor};
use ndarray::{Array, Array4, ArrayD, Dimension, IxDyn};

/// The adapter every GPU test uses. Without one the tests fail, loudly, with what to do.
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| match Context::new() {
        Ok(c) => {
            eprintln!(
                "convgrad tests on {} ({:?}, {})",
                c.adapter_info().name,
                c.adapter_info().backend,
                c.adapter_info().driver
            );
            c
        }
        Err(e) => panic!(
            "the GPU tests need a wgpu adapter and none could be created: {e}\n\
             On Debian/Ubuntu without a GPU: apt-get install -y mesa-vulkan-drivers (lavapipe), or run bash .ci/run"
        ),
    })
}

/// A second context on the same adapter that runs the reference (simple) kernels, so tests can check
/// both paths without switching the shared one under another test's feet.
pub fn reference_ctx() -> &'static Context {
    path("reference")
}

/// Every path the planner can take, each on a context of its own (over the one device of [`ctx`]): the automatic plans of this
/// adapter's profile (`CONVGRAD_PROFILE` or detected) and of the other profile, each forced kernel
/// family on both profiles (and the tuner's huge and double-buffered GEMM tiles), and the reference
/// kernels. The other profile is what makes a software
/// adapter run the per-lane loads a GPU gets (and a GPU the subgroup-shared ones).
pub fn paths() -> &'static [(String, Context)] {
    static PATHS: OnceLock<Vec<(String, Context)>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let own = ctx().profile().class;
        let other = if own == DeviceClass::Cpu { DeviceClass::Gpu } else { DeviceClass::Cpu };
        let mut out = Vec::new();
        // The tuner's extra GEMM variants as paths of their own: the 128 × 128 tile of 256
        // invocations, and the planner's tiles double-buffered.
        let double = Strategy::Force(Algorithm::Gemm(GemmChoice { double: true, ..GemmChoice::default() }));
        let tuned = [Strategy::Force(Algorithm::gemm(GemmShape::Huge)), double];
        for strategy in Strategy::ALL.into_iter().chain(tuned) {
            for class in [own, other] {
                if strategy == Strategy::Reference && class == other {
                    continue; // the direct kernels do not depend on the profile
                }
                // One device for all: a device costs a software driver tens of MB of its own.
                let c = Context::from_device(ctx().device().clone(), ctx().queue().clone());
                let c = c.with_profile(class).with_strategy(strategy);
                out.push((format!("{strategy}/{}", class.name()), c));
            }
        }
        out
    })
}

/// The context of the path named `name` (`"auto/gpu"`, `"vec4-tile/cpu"`, …; `"reference"` for the
/// reference kernels).
pub fn path(name: &str) -> &'static Context {
    let name =
        if name == "reference" { format!("reference/{}", ctx().profile().class.name()) } else { name.to_string() };
    paths().iter().find(|(n, _)| *n == name).map(|(_, c)| c).unwrap_or_else(|| panic!("no path {name}"))
}

/// A device tensor of `shape` filled with NaN: an element a kernel forgets to write stays NaN and
/// fails every comparison.
pub fn nan_tensor(ctx: &Context, shape: &[usize]) -> Tensor {
    nan_tensor_as(ctx, shape, Elem::F32)
}

/// [`nan_tensor`] of element type `elem`.
pub fn nan_tensor_as(ctx: &Context, shape: &[usize], elem: Elem) -> Tensor {
    let a = ArrayD::<f32>::from_elem(IxDyn(shape), f32::NAN);
    ctx.upload_as(a.view(), elem).unwrap()
}

/// Checks every element of `gpu` against the f64 `reference` with the bound γ_len · `magnitude`
/// (`magnitude` is the same operation on |inputs|, so the bound holds whatever the signs), and the
/// normwise relative error against `max_rel`. Returns the normwise error, or a description of the
/// first failure. NaN fails.
pub fn check<D: Dimension>(
    gpu: &Array<f32, D>,
    reference: &Array<f64, D>,
    magnitude: &Array<f64, D>,
    len: usize,
    max_rel: f64,
) -> Result<f64, String> {
    check_as(gpu, reference, magnitude, len, max_rel, Elem::F32)
}

/// [`check`] for a result stored as `elem` ([`convgrad::verify::bound_ratio_as`]).
pub fn check_as<D: Dimension>(
    gpu: &Array<f32, D>,
    reference: &Array<f64, D>,
    magnitude: &Array<f64, D>,
    len: usize,
    max_rel: f64,
    elem: Elem,
) -> Result<f64, String> {
    let ratio = convgrad::verify::bound_ratio_as(gpu, reference, magnitude, len, elem);
    if !(ratio <= 1.0) {
        let (i, (g, r)) = gpu
            .iter()
            .zip(reference.iter())
            .enumerate()
            .max_by(|a, b| (f64::from(*a.1.0) - a.1.1).abs().total_cmp(&(f64::from(*b.1.0) - b.1.1).abs()))
            .map(|(i, (g, r))| (i, (*g, *r)))
            .unwrap_or((0, (f32::NAN, f64::NAN)));
        return Err(format!("error {ratio:.3}× its bound; largest at flat index {i}: gpu {g} vs reference {r}"));
    }
    let rel = rel_err(gpu, reference);
    if !(rel <= max_rel) {
        return Err(format!("normwise relative error {rel:e} > {max_rel:e}"));
    }
    Ok(rel)
}

pub fn abs4(a: &Array4<f32>) -> Array4<f32> {
    a.mapv(f32::abs)
}

/// ⟨a, b⟩ in f64.
pub fn dot<D: Dimension>(a: &Array<f32, D>, b: &Array<f32, D>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

/// The bytes one storage binding of [`small_device`] may hold: 512 `f32`s.
pub const BINDING: u64 = 2048;

/// A context over a new device on the test adapter whose storage bindings hold at most [`BINDING`]
/// bytes, planning with this run's profile: wgpu's own validation meets every pass of a chunked
/// program.
pub fn small_device() -> Context {
    let info = ctx().adapter_info().clone();
    let instance = Context::instance(wgpu::Backends::from(info.backend));
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::from(info.backend)));
    let adapter = adapters
        .into_iter()
        .find(|a| a.get_info().name == info.name && a.get_info().device == info.device)
        .expect("the test adapter, listed again");
    let mut limits = adapter.limits();
    limits.max_storage_buffer_binding_size = BINDING;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("convgrad tests: small bindings"),
        required_features: adapter.features() & ctx().device().features(),
        required_limits: limits,
        ..Default::default()
    }))
    .expect("a device with lowered limits");
    assert_eq!(device.limits().max_storage_buffer_binding_size, BINDING);
    Context::from_device(device, queue).with_profile(ctx().profile().class)
}
