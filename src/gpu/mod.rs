//! Everything that talks to wgpu: the context, device tensors, the kernels and the operations.

pub(crate) mod batch;
pub(crate) mod context;
pub(crate) mod job;
pub(crate) mod kernels;
pub(crate) mod layout;
pub(crate) mod ops;
pub(crate) mod pool;
pub(crate) mod tensor;
pub(crate) mod tiled;
pub(crate) mod train;

pub use context::{AdapterListing, AdapterOptions, Context, backend_names, list_adapters};
pub use kernels::PipelineStats;
pub use tensor::Tensor;
pub use train::Adam;
