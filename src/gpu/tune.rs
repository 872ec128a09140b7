//! The measuring side of the tuner: times every candidate plan of a layer on this context's device,
//! checks each one's result, keeps the pick in memory and in the cache file, and answers the
//! operations' question "which strategy runs this layer" ([`Context::resolve`]).
//!
//! Each candidate runs on a context of its own over the same device, queue and profile, with its
//! strategy fixed from the start: the caller's context is never switched from plan to plan, so a call
//! on another thread never runs a candidate. The candidates are the pure list of
//! [`plan::candidates`]; the pick is [`tune::pick`](crate::tune::pick) over samples taken in turn.

use std::path::PathBuf;

use ndarray::{ArrayD, IxDyn};

use crate::bench::Inputs;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::geometry::Conv2dGeometry;
use crate::gpu::context::Context;
use crate::plan::{Op, Strategy, candidates::candidates};
pub use crate::tune::state::{TuneOptions, Tuning};
use crate::tune::{LayerKey, Outcome, cache, fingerprint, measure, pick};
use crate::verify::gamma;

/// Each sample runs a candidate this many milliseconds at least, repeating it as often as needed:
/// longer in a page, whose clock Chromium rounds to 100 µs.
const MIN_SAMPLE_MS: f64 = if cfg!(target_arch = "wasm32") { 10.0 } else { 1.0 };

/// One candidate's measurement.
#[derive(Debug, Clone)]
pub struct CandidateReport {
    /// The strategy.
    pub strategy: Strategy,
    /// The plan it gives the layer.
    pub plan: String,
    /// Its samples' median in milliseconds per run, where it stayed in.
    pub median_ms: Option<f64>,
    /// Why it is out, where it is.
    pub out: Option<String>,
}

/// What tuning one layer and op measured and chose.
#[derive(Debug, Clone)]
pub struct TuneReport {
    /// The operation.
    pub op: Op,
    /// The exact layer.
    pub layer: LayerKey,
    /// Every candidate, the `Auto` plan first.
    pub candidates: Vec<CandidateReport>,
    /// The index of the pick in `candidates`.
    pub pick: usize,
    /// `device timestamps` or `wall clock`.
    pub timer: &'static str,
    /// Samples per candidate, and runs per sample.
    pub rounds: usize,
    /// See `rounds`.
    pub runs_per_sample: usize,
}

impl TuneReport {
    /// The chosen strategy.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.candidates[self.pick].strategy
    }
}

impl Context {
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

    /// The strategy `op` runs `geo` with: the context's own, unless it is `Auto` and tuning is on; then
    /// the choice made for this exact layer in this process, else the cache's for this adapter, else
    /// (in [`Tuning::Tune`], on native targets) one measured now, else `Auto`. In a page `Tune` cannot
    /// wait for a measurement here, and acts as `Cached` (see [`Context::tune_async`]).
    ///
    /// # Errors
    /// Tuning's: every candidate out (see [`Context::tune`]).
    pub(crate) fn resolve(&self, op: Op, geo: &Conv2dGeometry) -> Result<Strategy> {
        let own = self.strategy();
        if own != Strategy::Auto {
            return Ok(own);
        }
        let key = LayerKey::new(op, geo);
        {
            let mut t = self.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if t.mode == Tuning::Off {
                return Ok(Strategy::Auto);
            }
            if let Some(s) = t.chosen.get(&key) {
                return Ok(*s);
            }
            let fp = fingerprint(self.adapter_info(), self.profile());
            if let Some(e) = t.file().get(&fp, key.as_str()) {
                let s = e.strategy;
                // A well-formed entry may still name a plan this layer cannot run (written by another
                // version, or by hand): dropped, and the layer chosen as if it had none.
                if crate::plan::candidates::plan_text(op, &geo.nchw(), self.profile(), s).is_some() {
                    t.chosen.insert(key, s);
                    return Ok(s);
                }
                t.file().remove(&fp, key.as_str());
                eprintln!(
                    "convgrad: warning: the tuning cache's choice {} for {key} is not a plan this layer can run; \
                     it is dropped and the layer chosen again",
                    s.key()
                );
            }
            if cfg!(target_arch = "wasm32") || !matches!(t.mode, Tuning::Tune(_)) {
                t.chosen.insert(key, Strategy::Auto);
                return Ok(Strategy::Auto);
            }
        }
        // A page returned above. Measured outside the lock: the candidates' own contexts never come
        // back here.
        #[cfg(target_arch = "wasm32")]
        return Ok(Strategy::Auto);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let report = self.tune(op, geo)?;
            let mut t = self.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Ok(*t.chosen.entry(key).or_insert(report.strategy()))
        }
    }

    /// Measures every candidate plan of `op` on `geo` (the exact layer) with the options of this
    /// context's [`Tuning::Tune`] mode (the defaults otherwise), and keeps the pick in the cache file;
    /// a layer already chosen in this process keeps its choice there. Native targets; a page calls
    /// [`Context::tune_async`].
    ///
    /// # Errors
    /// Device errors of the inputs, and [`Error::Tuning`] naming every candidate when all are out.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn tune(&self, op: Op, geo: &Conv2dGeometry) -> Result<TuneReport> {
        pollster::block_on(self.tune_async(op, geo))
    }

    /// [`Context::tune`] without blocking: what a page runs (the browser's event loop delivers the
    /// GPU's answers), timed by the page's clock. There the operations never measure on their own
    /// (they cannot wait): a page tunes its layers with this first, and a context in
    /// [`Tuning::Cached`] (or `Tune`) then runs the picks.
    ///
    /// # Errors
    /// As [`Context::tune`].
    pub async fn tune_async(&self, op: Op, geo: &Conv2dGeometry) -> Result<TuneReport> {
        let report = self.measure_async(op, geo, self.tune_options()).await?;
        self.keep(&report);
        self.tune
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .chosen
            .entry(report.layer.clone())
            .or_insert(report.strategy());
        Ok(report)
    }

    /// Measures every candidate plan of `op` on `geo` as [`Context::tune`] does, but keeps nothing:
    /// neither in this process nor in the cache. For checking a pick against a fresh measurement
    /// (`convgrad tune --recheck`).
    ///
    /// # Errors
    /// As [`Context::tune`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn measure_candidates(&self, op: Op, geo: &Conv2dGeometry) -> Result<TuneReport> {
        pollster::block_on(self.measure_async(op, geo, self.tune_options()))
    }

    /// The options of this context's [`Tuning::Tune`] mode, else the defaults.
    fn tune_options(&self) -> TuneOptions {
        match self.tuning() {
            Tuning::Tune(o) => o,
            _ => TuneOptions::default(),
        }
    }

    async fn measure_async(&self, op: Op, geo: &Conv2dGeometry, options: TuneOptions) -> Result<TuneReport> {
        let layer = LayerKey::new(op, geo);
        let list = candidates(op, geo, self.profile());
        let (inputs, magnitudes) = Inputs::with_magnitudes(self, *geo)?;
        // The reference result and its bound: the Auto plan's, and the same op on |inputs|.
        let auto = self.sibling(Strategy::Auto);
        let base = auto.download_async::<IxDyn>(&inputs.on(&auto)?.launch(&auto, op)?).await?;
        let mag = auto.download_async::<IxDyn>(&magnitudes.on(&auto)?.launch(&auto, op)?).await?;
        auto.settle().await?;
        let len = match op {
            Op::Forward => geo.channels_per_group() * geo.s * geo.t + 1,
            Op::WeightGrad => geo.n * geo.p * geo.q,
            Op::InputGrad => geo.filters_per_group() * geo.s * geo.t,
        };
        let bound = 2.0 * gamma(len);
        // Device timestamps for every candidate where the adapter has them (and they can be read
        // back: not in a page, where the clock is the page's), else the wall clock for all.
        let device = cfg!(not(target_arch = "wasm32"))
            && !options.wall_clock
            && self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        // Compile, warm up, check the result, and size the sample of each candidate; `once` adds up
        // how long one round of samples will take, in milliseconds.
        let mut once = 0.0;
        let mut runners: Vec<std::result::Result<Runner, String>> = Vec::new();
        for (strategy, _) in &list {
            let prepared = async {
                let ctx = self.sibling(*strategy);
                let inputs = inputs.on(&ctx).map_err(|e| e.to_string())?;
                let got = run_once(&ctx, &inputs, op).await?;
                for ((g, b), m) in got.iter().zip(base.iter()).zip(mag.iter()) {
                    let err = (f64::from(*g) - f64::from(*b)).abs();
                    if !g.is_finite() || err > bound * f64::from(*m) * 1.01 + f64::MIN_POSITIVE {
                        return Err(format!(
                            "result {g} where the Auto plan gives {b} (bound {:e})",
                            bound * f64::from(*m)
                        ));
                    }
                }
                let t0 = now_ms();
                run_once(&ctx, &inputs, op).await?;
                let run = (now_ms() - t0).max(1e-3);
                let reps = (MIN_SAMPLE_MS / run).ceil().clamp(1.0, 1000.0) as usize;
                once += run * reps as f64;
                ctx.set_profiling(device);
                Ok(Runner { ctx, inputs, reps })
            };
            runners.push(prepared.await);
        }
        let runs_per_sample = runners.iter().flatten().map(|r| r.reps).max().unwrap_or(1);
        // As many rounds as the budget allows, at least 3.
        let per_round = once.max(1e-3) * 1e-3;
        let rounds = ((options.budget.as_secs_f64() / per_round) as usize).clamp(3, options.max_rounds.max(3));
        let runners = &runners;
        let outcomes = measure(list.len(), rounds, move |i| async move {
            sample(runners[i].as_ref().map_err(Clone::clone)?, op, device).await
        })
        .await;
        let report_of = |(i, o): (usize, &Outcome)| CandidateReport {
            strategy: list[i].0,
            plan: list[i].1.clone(),
            median_ms: o.median_ms(),
            out: match o {
                Outcome::Out(e) => Some(e.clone()),
                Outcome::Samples(_) => None,
            },
        };
        let reports: Vec<CandidateReport> = outcomes.iter().enumerate().map(report_of).collect();
        let Some(chosen) = pick(&outcomes) else {
            let why: Vec<String> =
                reports.iter().map(|c| format!("{}: {}", c.plan, c.out.clone().unwrap_or_default())).collect();
            return Err(Error::Tuning { layer: layer.to_string(), candidates: why.join("; ") });
        };
        let report = TuneReport {
            op,
            layer,
            candidates: reports,
            pick: chosen,
            timer: if device { "device timestamps" } else { "wall clock" },
            rounds,
            runs_per_sample,
        };
        Ok(report)
    }

    /// Keeps a pick in memory and in the cache file (where the context has one). A cache is an
    /// optimisation: a pick the file cannot take (an unwritable directory, a path that is not a
    /// regular file) is a warning, and the pick still holds for this process.
    fn keep(&self, report: &TuneReport) {
        let fp = fingerprint(self.adapter_info(), self.profile());
        let mut t = self.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = cache::Entry {
            strategy: report.strategy(),
            median_ms: report.candidates[report.pick].median_ms.unwrap_or(0.0),
        };
        t.file().insert(&fp, report.layer.as_str(), entry);
        if let Some(path) = t.path.clone() {
            match t.file().save(&path) {
                // Other writers' picks, merged in, are this context's to use from now on too.
                Ok(merged) => t.file = Some(merged),
                Err(why) => eprintln!("convgrad: warning: the pick for {} is not kept on disk: {why}", report.layer),
            }
        }
    }
}

/// A candidate ready to be sampled: its context (strategy fixed), its inputs, and runs per sample.
struct Runner {
    ctx: Context,
    inputs: Inputs,
    reps: usize,
}

/// Runs `op` once on `ctx` and reads its result back (and, in a page, its errors).
async fn run_once(ctx: &Context, inputs: &Inputs, op: Op) -> std::result::Result<ArrayD<f32>, String> {
    let out = inputs.launch(ctx, op).map_err(|e| e.to_string())?;
    let got = ctx.download_async::<IxDyn>(&out).await.map_err(|e| e.to_string())?;
    ctx.settle().await.map_err(|e| e.to_string())?;
    Ok(got)
}

/// One sample: `r.reps` runs, then the last result read back (the wall clock's end) or the kernels'
/// device time read; milliseconds per run.
async fn sample(r: &Runner, op: Op, device: bool) -> std::result::Result<f64, String> {
    let t0 = now_ms();
    let mut last = None;
    for _ in 0..r.reps {
        last = Some(r.inputs.launch(&r.ctx, op).map_err(|e| e.to_string())?);
    }
    if let Some(t) = last {
        r.ctx.download_async::<IxDyn>(&t).await.map_err(|e| e.to_string())?;
    }
    r.ctx.settle().await.map_err(|e| e.to_string())?;
    let wall = now_ms() - t0;
    #[cfg(not(target_arch = "wasm32"))]
    let ms = if device { r.ctx.take_device_ms().map_err(|e| e.to_string())? } else { wall };
    #[cfg(target_arch = "wasm32")]
    let ms = {
        let _ = device;
        wall
    };
    Ok(ms / r.reps as f64)
}
