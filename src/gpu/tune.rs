//! The measuring side of the tuner: times every candidate plan of a layer on this context's device,
//! checks each one's result, keeps the pick in memory and in the cache file, and answers the
//! operations' question "which strategy runs this layer" ([`resolve`]).
//!
//! Each candidate runs on a context of its own over the same device, queue and profile, with its
//! strategy fixed from the start: the caller's context is never switched from plan to plan, so a call
//! on another thread never runs a candidate. The candidates are the pure list of
//! [`plan::candidates`]; the pick is [`tune::pick`](crate::tune::pick) over samples taken in turn.

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

/// The strategy `op` runs `geo` with: the context's own, unless it is `Auto` and tuning is on; then
/// the choice made for this exact layer in this process, else the cache's for this adapter, else
/// (in [`Tuning::Tune`], on native targets) one measured now, else `Auto`. In a page `Tune` cannot
/// wait for a measurement here, and acts as `Cached` (see [`Context::tune_async`]).
///
/// # Errors
/// Tuning's: every candidate out (see [`Context::tune`]).
pub(crate) fn resolve(ctx: &Context, op: Op, geo: &Conv2dGeometry) -> Result<Strategy> {
    let own = ctx.strategy();
    if own != Strategy::Auto {
        return Ok(own);
    }
    let key = LayerKey::new(op, geo);
    {
        let mut t = ctx.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.mode == Tuning::Off {
            return Ok(Strategy::Auto);
        }
        if let Some(s) = t.chosen.get(&key) {
            return Ok(*s);
        }
        let fp = fingerprint(ctx.adapter_info(), ctx.profile());
        if let Some(e) = t.file().get(&fp, key.as_str()) {
            let s = e.strategy;
            // A well-formed entry may still name a plan this layer cannot run (written by another
            // version, or by hand): dropped, and the layer chosen as if it had none.
            if crate::plan::candidates::plan_text(op, &geo.nchw(), ctx.profile(), s).is_some() {
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
        let report = ctx.tune(op, geo)?;
        let mut t = ctx.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(*t.chosen.entry(key).or_insert(report.strategy()))
    }
}

/// [`Context::tune_async`]: measures, keeps the pick, and makes it this process' choice.
pub(crate) async fn tune_async(ctx: &Context, op: Op, geo: &Conv2dGeometry) -> Result<TuneReport> {
    let report = measure_async(ctx, op, geo, tune_options(ctx)).await?;
    keep(ctx, &report);
    ctx.tune
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .chosen
        .entry(report.layer.clone())
        .or_insert(report.strategy());
    Ok(report)
}

/// The options of this context's [`Tuning::Tune`] mode, else the defaults.
pub(crate) fn tune_options(ctx: &Context) -> TuneOptions {
    match ctx.tuning() {
        Tuning::Tune(o) => o,
        _ => TuneOptions::default(),
    }
}

pub(crate) async fn measure_async(
    ctx: &Context,
    op: Op,
    geo: &Conv2dGeometry,
    options: TuneOptions,
) -> Result<TuneReport> {
    let layer = LayerKey::new(op, geo);
    let list = candidates(op, geo, ctx.profile());
    let (inputs, magnitudes) = Inputs::with_magnitudes(ctx, *geo)?;
    // The reference result and its bound: the Auto plan's, and the same op on |inputs|.
    let auto = ctx.sibling(Strategy::Auto);
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
        && ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
    // Compile, warm up, check the result, and size the sample of each candidate; `once` adds up
    // how long one round of samples will take, in milliseconds.
    let mut once = 0.0;
    let mut runners: Vec<std::result::Result<Runner, String>> = Vec::new();
    for (strategy, _) in &list {
        let prepared = async {
            let ctx = ctx.sibling(*strategy);
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
pub(crate) fn keep(ctx: &Context, report: &TuneReport) {
    let fp = fingerprint(ctx.adapter_info(), ctx.profile());
    let mut t = ctx.tune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
