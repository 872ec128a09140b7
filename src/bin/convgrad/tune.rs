//! `convgrad tune`: measure every candidate plan of each layer and op of a suite on the chosen adapter,
//! print each candidate's median and the pick, and keep the picks in the tuning cache for
//! `convgrad bench --tuned` and for programs whose context has tuning on.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use convgrad::tune::cache;
use convgrad::{AdapterOptions, Conv2dGeometry, Layout, TuneOptions, TuneReport, Tuning};
use indicatif::{ProgressBar, ProgressStyle};

use crate::CliError;

#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// Which layers: standard, quick, tiny or gpu (see `convgrad bench`).
    #[arg(long, default_value = "standard")]
    suite: String,
    /// Operations to tune, comma-separated: forward, weight-grad, input-grad.
    #[arg(long, default_value = "forward,weight-grad,input-grad", value_delimiter = ',')]
    ops: Vec<String>,
    /// About how long to sample the candidates of each layer and op, in milliseconds (compiling,
    /// warming up and checking each candidate's result come on top).
    #[arg(long, default_value_t = 2000)]
    budget_ms: u64,
    /// Time by the wall clock (submission to read-back) even where the adapter has timestamp queries.
    #[arg(long)]
    wall_clock: bool,
    /// Tensor layout of the layers: nchw or nhwc.
    #[arg(long, default_value = "nchw")]
    layout: String,
    /// The tuning cache file (default: $CONVGRAD_TUNE_CACHE, else $XDG_CACHE_HOME/convgrad/tuned.txt,
    /// else ~/.cache/convgrad/tuned.txt).
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
}

pub fn run(options: &AdapterOptions, a: &TuneArgs) -> Result<ExitCode, CliError> {
    let (shapes, ops) = crate::bench::suite_and_ops(&a.suite, &a.ops)?;
    let layout = match a.layout.as_str() {
        "nchw" => Layout::Nchw,
        "nhwc" => Layout::Nhwc,
        other => return Err(CliError(format!("unknown layout '{other}'; use nchw or nhwc"))),
    };
    let tune_options =
        TuneOptions { budget: Duration::from_millis(a.budget_ms), wall_clock: a.wall_clock, ..TuneOptions::default() };
    let mut ctx = crate::context(options)?.with_tuning(Tuning::Tune(tune_options));
    let path = a.cache.clone().or_else(cache::default_path);
    ctx = ctx.with_tune_cache(path.clone());
    let info = ctx.adapter_info().clone();
    let bar = ProgressBar::new((shapes.len() * ops.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}]")
            .map_err(|e| CliError(e.to_string()))?,
    );
    let start = Instant::now();
    let mut reports: Vec<(&'static str, TuneReport)> = Vec::new();
    for sh in &shapes {
        let geo = Conv2dGeometry { params: sh.geo.params.layout(layout), ..sh.geo };
        for &op in &ops {
            bar.set_message(format!("{} {}", sh.name, op.name()));
            reports.push((sh.name, ctx.tune(op, &geo)?));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    println!(
        "convgrad tune, suite {} ({}), on {} ({:?}), driver: {} {}",
        a.suite,
        layout.name(),
        info.name,
        info.backend,
        info.driver,
        info.driver_info
    );
    println!("profile: {}", ctx.profile());
    for (name, r) in &reports {
        let auto = r.candidates[0].median_ms;
        println!(
            "\n{name} {}: {} candidates, {} samples of {} run(s) each, {}",
            r.op.name(),
            r.candidates.len(),
            r.rounds,
            r.runs_per_sample,
            r.timer
        );
        for (i, c) in r.candidates.iter().enumerate() {
            let mark = if i == r.pick { "*" } else { " " };
            let time = match (c.median_ms, auto) {
                (Some(m), Some(a)) => format!("{m:>10.3} ms {:>6.2}x Auto", a / m),
                (Some(m), None) => format!("{m:>10.3} ms"),
                (None, _) => format!("out: {}", c.out.clone().unwrap_or_default()),
            };
            println!(" {mark} {:<22} {time}  {}", c.strategy.key(), c.plan);
        }
    }
    println!(
        "\n{} layer ops tuned in {:.0} s; picks kept in {}",
        reports.len(),
        start.elapsed().as_secs_f64(),
        path.map_or("memory only (no cache directory)".to_string(), |p| p.display().to_string())
    );
    Ok(ExitCode::SUCCESS)
}
