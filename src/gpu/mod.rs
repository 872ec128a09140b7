//! Everything that talks to wgpu: the context, device tensors, the kernels and the operations.

pub(crate) mod context;
pub(crate) mod engine;
pub(crate) mod half;
pub(crate) mod job;
pub(crate) mod kernels;
pub(crate) mod ops;
pub(crate) mod pool;
pub(crate) mod scopes;
pub(crate) mod tensor;
pub(crate) mod tiled;
pub(crate) mod train;
pub(crate) mod tune;
pub(crate) mod wait;

#[cfg(not(target_arch = "wasm32"))]
pub use context::list_adapters;
pub use context::{AdapterListing, AdapterOptions, Context, backend_names};
pub use kernels::PipelineStats;
pub use ops::Chunking;
pub use tensor::Tensor;
pub use train::Adam;
pub use tune::{CandidateReport, TuneOptions, TuneReport, Tuning};

/// The WGSL of every kernel, the common prelude first (what `tune::key` fingerprints).
pub(crate) fn kernel_sources() -> Vec<&'static str> {
    std::iter::once(kernels::COMMON_WGSL).chain(kernels::ALL_KERNELS.iter().map(|k| k.source)).collect()
}
