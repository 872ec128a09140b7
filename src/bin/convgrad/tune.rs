//! `convgrad tune`: measure every candidate plan of each layer and op of a suite (or of a file of
//! layers) on the chosen adapter, print each candidate's median and the pick, and keep the picks in
//! the tuning cache for `convgrad bench --tuned` and for programs whose context has tuning on. With
//! `--recheck`, every candidate is measured again afterwards and each pick compared with the fastest
//! of that second run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use convgrad::tune::cache;
use convgrad::{AdapterOptions, Conv2dGeometry, Layout, Strategy, TuneOptions, TuneReport, Tuning};
use indicatif::{ProgressBar, ProgressStyle};

use crate::CliError;

#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// Which layers: standard, quick, tiny or gpu (see `convgrad bench`).
    #[arg(long, default_value = "standard")]
    suite: String,
    /// Tune the layers of this file instead of a suite: one per line, `N C H W K S T` then any of
    /// `stride=SH[,SW] pad=P[,PW]|T,B,L,R|same dilation=DH[,DW] groups=G name=NAME`; `#` comments.
    #[arg(long, value_name = "FILE", conflicts_with = "suite")]
    layers: Option<PathBuf>,
    /// After tuning, measure every candidate again (each forced, in turn, fresh samples, nothing
    /// kept) and print each pick's median against the fastest of that run.
    #[arg(long)]
    recheck: bool,
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
    let (source, layers): (String, Vec<(String, Conv2dGeometry)>) = match &a.layers {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError(format!("cannot read the layers file {}: {e}", path.display())))?;
            let layers =
                convgrad::bench::parse_layers(&text).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
            (format!("layers of {}", path.display()), layers)
        }
        None => (format!("suite {}", a.suite), shapes.into_iter().map(|s| (s.name.to_string(), s.geo)).collect()),
    };
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
    let bar = ProgressBar::new((layers.len() * ops.len() * if a.recheck { 2 } else { 1 }) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}]")
            .map_err(|e| CliError(e.to_string()))?,
    );
    let start = Instant::now();
    let mut reports: Vec<(&str, Conv2dGeometry, TuneReport)> = Vec::new();
    for (name, geo) in &layers {
        let geo = Conv2dGeometry { params: geo.params.layout(layout), ..*geo };
        for &op in &ops {
            bar.set_message(format!("{name} {}", op.name()));
            reports.push((name, geo, ctx.tune(op, &geo)?));
            bar.inc(1);
        }
    }
    let tuned_s = start.elapsed().as_secs_f64();
    // The second measurement: every candidate forced again, in turn, after all the tuning.
    let mut rechecks = Vec::new();
    if a.recheck {
        for (name, geo, r) in &reports {
            bar.set_message(format!("recheck {name} {}", r.op.name()));
            rechecks.push(ctx.measure_candidates(r.op, geo)?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    println!(
        "convgrad tune, {source} ({}), on {} ({:?}), driver: {} {}",
        layout.name(),
        info.name,
        info.backend,
        info.driver,
        info.driver_info
    );
    println!("profile: {}", ctx.profile());
    for (name, _, r) in &reports {
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
        "\n{} layer ops tuned in {tuned_s:.0} s ({:.1} min); picks kept in {}",
        reports.len(),
        tuned_s / 60.0,
        path.map_or("memory only (no cache directory)".to_string(), |p| p.display().to_string())
    );
    if a.recheck {
        print_recheck(&reports, &rechecks, start.elapsed().as_secs_f64() - tuned_s);
    }
    Ok(ExitCode::SUCCESS)
}

/// The second measurement's table: per layer and op, the pick's median in it against the fastest
/// candidate's, and how many picks are within 10 %.
fn print_recheck(reports: &[(&str, Conv2dGeometry, TuneReport)], rechecks: &[TuneReport], secs: f64) {
    println!("\nrecheck ({secs:.0} s): every candidate forced again, in turn; the pick against the fastest");
    println!("{:<34} {:<12} {:<26} {:>10} {:<26} {:>10} {:>7}", "layer", "op", "pick", "ms", "fastest", "ms", "ratio");
    let mut within = 0;
    for ((name, _, r), fresh) in reports.iter().zip(rechecks) {
        let pick = r.strategy();
        let timed = |s: Strategy| fresh.candidates.iter().find(|c| c.strategy == s).and_then(|c| c.median_ms);
        let fastest = fresh
            .candidates
            .iter()
            .filter_map(|c| c.median_ms.map(|m| (c.strategy, m)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match (timed(pick), fastest) {
            (Some(p), Some((f, fm))) => {
                let ratio = p / fm;
                within += usize::from(ratio <= 1.10);
                println!(
                    "{name:<34} {:<12} {:<26} {p:>10.3} {:<26} {fm:>10.3} {ratio:>7.3}",
                    r.op.name(),
                    pick.key(),
                    f.key()
                );
            }
            _ => println!("{name:<34} {:<12} {:<26} out in the recheck", r.op.name(), pick.key()),
        }
    }
    println!("{within} of {} picks within 10 % of the fastest candidate of the recheck", reports.len());
}
