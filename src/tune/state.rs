//! A context's tuning state: its mode, its cache file and the choices made in this process. Plain
//! data, no device: the context holds one (`src/gpu/context.rs`) and the tuner's methods
//! (`src/gpu/tune.rs`) read and write it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::plan::Strategy;
use crate::tune::{Cache, LayerKey};

/// Whether the operations use measured plans (see [`Context::with_tuning`](crate::Context::with_tuning)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tuning {
    /// The planner's rules (`Strategy::Auto`), bitwise the plans of a context without a tuner.
    #[default]
    Off,
    /// The cache's choice where it has one for this adapter and layer, else `Auto`; never measures.
    Cached,
    /// As `Cached`, and a layer the cache lacks is measured on its first call.
    Tune(TuneOptions),
}

/// How a layer is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TuneOptions {
    /// About how long to spend sampling the candidates of one layer and op (compilation, warm-up and
    /// the correctness check come on top); at least 3 and at most `max_rounds` rounds are taken.
    pub budget: Duration,
    /// The most samples per candidate.
    pub max_rounds: usize,
    /// Time by the wall clock (submission to completion, read-back included) even where the adapter
    /// has timestamp queries.
    pub wall_clock: bool,
}

impl Default for TuneOptions {
    fn default() -> Self {
        Self { budget: Duration::from_secs(2), max_rounds: 9, wall_clock: false }
    }
}

/// A context's tuner: its mode, its cache file, and the choices made in this process, which never
/// change once made.
#[derive(Debug, Default)]
pub(crate) struct TuneState {
    pub(crate) mode: Tuning,
    pub(crate) path: Option<PathBuf>,
    pub(crate) file: Option<Cache>,
    pub(crate) chosen: HashMap<LayerKey, Strategy>,
}

impl TuneState {
    /// The cache file's entries, read on first use (a corrupt file is set aside with a warning).
    pub(crate) fn file(&mut self) -> &mut Cache {
        let path = self.path.clone();
        self.file.get_or_insert_with(|| match path {
            Some(p) => {
                let (c, warning) = Cache::load(&p);
                if let Some(w) = warning {
                    eprintln!("convgrad: warning: {w}");
                }
                c
            }
            None => Cache::default(),
        })
    }
}

/// Makes a [`TuneState`] for a new context.
pub(crate) fn state() -> Mutex<TuneState> {
    Mutex::new(TuneState::default())
}
