//! Measured plans: the pure parts of the tuner. Which candidate wins ([`select`]), what a tuned choice
//! is keyed on ([`key`]), and the file that keeps the choices between processes ([`cache`]). No wgpu
//! here; the measuring loop lives beside the runtime (`src/gpu/tune.rs`) and the candidates in
//! [`crate::plan::candidates`].

pub mod cache;
pub mod key;
pub mod select;
pub(crate) mod state;

pub use cache::Cache;
pub use key::{LayerKey, fingerprint};
pub use select::{Outcome, measure, pick};
