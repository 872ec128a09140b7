//! # convgrad
//!
//! The forward pass and the gradients of 2-D convolution layers, as WGSL compute shaders on wgpu, with
//! an `f64` CPU reference that every kernel is tested against.
//!
//! ## What it computes
//!
//! A layer correlates an input `X` of shape `N×C×H×W` (NCHW) with `K` filters `W` of shape
//! `K×(C/G)×S×T` (OIHW / KCST), with stride `(sh, sw)`, zero padding `(ph, pw)` on both sides,
//! dilation `(dh, dw)` and `G` groups (filter `k` sees the `C/G` channels of group `g = k / (K/G)`).
//! The output `Y` is `N×K×P×Q` with
//!
//! ```text
//! P = ⌊(H + 2·ph − dh·(S−1) − 1) / sh⌋ + 1        Q = ⌊(W + 2·pw − dw·(T−1) − 1) / sw⌋ + 1
//! ```
//!
//! and, writing `c = g·C/G + cg` and treating `X` outside the image as 0,
//!
//! ```text
//! forward       Y[n,k,p,q]   = b[k] + Σ_{cg<C/G} Σ_{i<S} Σ_{j<T} X[n, c, p·sh + i·dh − ph, q·sw + j·dw − pw] · W[k,cg,i,j]
//! weight grad   dW[k,cg,i,j] = Σ_{n<N} Σ_{p<P} Σ_{q<Q}         X[n, c, p·sh + i·dh − ph, q·sw + j·dw − pw] · dY[n,k,p,q]
//! input grad    dX[n,c,h,w]  = Σ_{k in g} Σ_{i<S} Σ_{j<T} dY[n,k,p,q] · W[k,cg,i,j]   over p·sh + i·dh − ph = h, q·sw + j·dw − pw = w
//! bias grad     dB[k]        = Σ_{n<N} Σ_{p<P} Σ_{q<Q} dY[n,k,p,q]
//! ```
//!
//! where `dY = ∂J/∂Y` for any scalar cost `J`. With `N = C = G = 1`, stride 1, no padding and no
//! dilation this is the single-channel layer `Y^k = X ⊗ W^k` of size `(U−S+1)×(V−T+1)`, and its weight
//! gradient `∂J/∂W^k = X ⊗ ∂J/∂Y^k` is again a valid cross-correlation, of the input with the output
//! gradient, of size `S×T` ([`Context::correlate`], [`Context::correlate_weight_grad`]).
//! `docs/derivation.md` derives these from the chain rule.
//!
//! ## Precision and determinism
//!
//! Tensors hold `f32`, `f16` or `bf16` ([`Elem`]); the kernels compute and accumulate in `f32` in a fixed
//! order whatever the storage (16-bit operands are widened exactly, results rounded to nearest even
//! once, ±∞ beyond the largest finite `f16`; see [`elem`]). The long reductions
//! of the weight and bias gradients are summed in pieces whose partial sums are then added in order
//! (blocks of 16 at a time): the tuned kernels split the reduction into fixed ranges, the GEMM kernels
//! add each slab's products into fresh partial sums, and the register tiles fold their running sums
//! every ~1,024 products, so the rounding error grows with the piece rather than the whole reduction
//! (a 589,824-term weight gradient is within 1e-6 normwise of `f64`). Every result is within the
//! worst-case bound γ_L·Σ|terms| that [`verify`] computes and the tests check. There are no atomics:
//! the same inputs on the same adapter give bitwise identical outputs. The [`reference`](mod@reference)
//! module accumulates in `f64`.
//!
//! ## Kernels and plans
//!
//! Each operation asks the planner ([`plan`]) how to run its layer: a pure function of the layer, the
//! adapter's [`AdapterProfile`] (read once: CPU or GPU class, subgroups, binding limit, workgroup
//! memory) and the context's [`Strategy`]. [`Strategy::Auto`] (the default) runs, on a GPU, implicit
//! GEMMs through workgroup memory for all three operations ([`plan::gemm`]: tiles staged in
//! workgroup memory, padding as load masks, a split weight-gradient reduction added in order, the
//! strided input gradient one dense GEMM per stride phase), and on a CPU adapter register-tiled
//! implicit GEMMs with tile sizes and variants chosen per layer, their WGSL generated from templates in
//! `shaders/`; [`Strategy::Reference`] runs one output element per invocation; `Strategy::Force`
//! pins one kernel family (for the GEMMs also a tile shape and split count), an
//! [`Error::Unsupported`] where it cannot run the layer. On CPU adapters with subgroups (lavapipe),
//! where every load runs lane by lane, the lanes of a subgroup share the weights (forward pass) or dY
//! (weight gradient) they would each load, through subgroup broadcasts: values move between lanes,
//! the arithmetic and its order stay those of every other path. `CONVGRAD_PROFILE=gpu` (or
//! [`Context::with_profile`]) plans for a GPU on any adapter, so a software adapter runs, and CI
//! tests, the kernels a GPU gets. Work larger than one storage binding is split along the batch.
//! `docs/ARCHITECTURE.md` has the layers; `docs/BENCHMARKS.md` the measurements.
//!
//! ## Example
//!
//! ```
//! use convgrad::{Context, Conv2dParams};
//! use ndarray::Array4;
//!
//! # fn main() -> convgrad::Result<()> {
//! let ctx = Context::new()?; // honours WGPU_BACKEND and WGPU_ADAPTER_NAME
//! let params = Conv2dParams::new().padding(1, 1);
//! let x = Array4::<f32>::from_shape_fn((2, 3, 8, 8), |(n, c, h, w)| (n + c + h * w) as f32 / 64.0);
//! let w = Array4::<f32>::from_elem((4, 3, 3, 3), 0.1);
//!
//! // Device-resident: upload once, run several ops, download what you need.
//! let (xd, wd) = (ctx.upload(x.view())?, ctx.upload(w.view())?);
//! let y = ctx.forward(&xd, &wd, None, &params)?;          // 2×4×8×8
//! let dw = ctx.weight_grad(&xd, &y, [3, 3], &params)?;     // ∂(½‖Y‖²)/∂W, 4×3×3×3
//! let dx = ctx.input_grad(&y, &wd, [8, 8], &params)?;      // ∂(½‖Y‖²)/∂X, 2×3×8×8
//! let dw_host: Array4<f32> = ctx.download(&dw)?;
//! # let _ = (dx, dw_host); Ok(()) }
//! ```

#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod activation;
pub mod bench;
mod clock;
#[cfg(not(target_arch = "wasm32"))]
pub mod dist;
pub mod elem;
mod error;
pub mod geometry;
pub mod gpu;
pub mod learn;
pub mod plan;
pub mod reference;
pub mod synthetic;
pub mod tune;
pub mod verify;

pub use activation::Activation;
pub use elem::{Elem, HalfPath, HostElem};
pub use error::{Error, Result};
pub use geometry::{
    Conv1dParams, Conv2dGeometry, Conv2dParams, ConvTranspose1dParams, ConvTranspose2dGeometry, ConvTranspose2dParams,
    Layout, Padding, Sides,
};
#[cfg(not(target_arch = "wasm32"))]
pub use gpu::list_adapters;
pub use gpu::{Adam, AdapterOptions, Chunking, Context, PipelineStats, Tensor};
pub use gpu::{CandidateReport, TuneOptions, TuneReport, Tuning};
pub use half::{bf16, f16};
pub use plan::program::Program;
pub use plan::{AdapterProfile, Algorithm, DeviceClass, GemmChoice, GemmShape, Op, Strategy};

/// The README's Rust example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The shape of a 4-D view as an array.
pub(crate) fn dims4<T>(a: &ndarray::ArrayView4<T>) -> [usize; 4] {
    let d = a.dim();
    [d.0, d.1, d.2, d.3]
}
