//! `convgrad bench`: time a suite of layers on the chosen adapter; print a table, and optionally write
//! JSON records and an SVG chart.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use convgrad::bench::{Inputs, Op, Platform, Record, SUITES, Shape, fp32_peak, records_json, suite, time_op};
use convgrad::{AdapterOptions, Conv2dGeometry, Layout, Strategy, Tuning};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

use crate::CliError;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which layers: standard (the five reported layers), quick (its two small ones), tiny, or gpu
    /// (the standard layers at batch 32 and 128).
    #[arg(long, default_value = "standard")]
    suite: String,
    /// Operations to time, comma-separated: forward, weight-grad, input-grad.
    #[arg(long, default_value = "forward,weight-grad,input-grad", value_delimiter = ',')]
    ops: Vec<String>,
    /// Timed runs per layer and op, after three warm-up runs (at least 5 for a median worth reading).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Write one JSON record per layer and op here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw GFLOP/s per layer and op here (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Which kernels: tuned (the default path), reference (the simple kernels) or both, timed
    /// alternately in the same run for a before/after comparison.
    #[arg(long, value_enum, default_value = "tuned")]
    kernels: KernelArg,
    /// Tensor layout: nchw, nhwc (channels last: the NCHW kernels between device transposes), or
    /// both, timed alternately in the same run so that each nhwc row states the transposes' cost.
    #[arg(long, value_enum, default_value = "nchw")]
    layout: LayoutArg,
    /// Instead of timing, run each layer and op this many times and check that every result has
    /// the first one's bits (exit status 1 otherwise).
    #[arg(long, value_name = "N")]
    repeats: Option<usize>,
    /// Run the plans `convgrad tune` measured and cached for this adapter (the planner's own where the
    /// cache has none); the table and JSON name each plan. Never measures candidates itself.
    #[arg(long)]
    tuned: bool,
    /// The tuning cache file (default: $CONVGRAD_TUNE_CACHE, else ~/.cache/convgrad/tuned.txt).
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
    /// The operands' dtype: f32, f16, bf16, or all three timed alternately in the same run (the
    /// weight gradient is written in f32 in every case).
    #[arg(long, default_value = "f32", value_parser = crate::parse_dtypes, value_name = "f32|f16|bf16|all")]
    dtype: crate::Dtypes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LayoutArg {
    Nchw,
    Nhwc,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KernelArg {
    Tuned,
    Reference,
    Both,
}

/// The layers of suite `name` and the operations named in `ops`, or what is wrong with them.
pub fn suite_and_ops(name: &str, ops: &[String]) -> Result<(Vec<Shape>, Vec<Op>), CliError> {
    let shapes =
        suite(name).ok_or_else(|| CliError(format!("unknown suite '{name}'; choose one of {}", SUITES.join(", "))))?;
    let ops = ops
        .iter()
        .map(|o| {
            Op::from_name(o.trim())
                .ok_or_else(|| CliError(format!("unknown op '{o}'; use forward, weight-grad or input-grad")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((shapes, ops))
}

pub fn run(options: &AdapterOptions, a: &BenchArgs) -> Result<ExitCode, CliError> {
    let (shapes, ops) = suite_and_ops(&a.suite, &a.ops)?;
    if a.reps == 0 {
        return Err(CliError("--reps must be at least 1".into()));
    }
    if let Some(p) = &a.plot
        && p.extension().and_then(|e| e.to_str()) != Some("svg")
    {
        return Err(CliError(format!("{}: --plot writes SVG; give a file name ending in .svg", p.display())));
    }
    let mut ctx = crate::context(options)?;
    if a.tuned {
        ctx = ctx.with_tuning(Tuning::Cached);
        if let Some(c) = &a.cache {
            ctx = ctx.with_tune_cache(Some(c.clone()));
        }
    }
    let layouts: Vec<Layout> = match a.layout {
        LayoutArg::Nchw => vec![Layout::Nchw],
        LayoutArg::Nhwc => vec![Layout::Nhwc],
        LayoutArg::Both => vec![Layout::Nchw, Layout::Nhwc],
    };
    if let Some(times) = a.repeats {
        return repeats(&ctx, &a.suite, &shapes, &ops, &a.dtype.0, &layouts, times);
    }
    let info = ctx.adapter_info().clone();
    let kernel_sets: Vec<Strategy> = match a.kernels {
        KernelArg::Tuned => vec![Strategy::Auto],
        KernelArg::Reference => vec![Strategy::Reference],
        KernelArg::Both => vec![Strategy::Reference, Strategy::Auto],
    };
    let bar = ProgressBar::new((shapes.len() * ops.len() * kernel_sets.len() * layouts.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}]")
            .map_err(|e| CliError(e.to_string()))?,
    );
    let mut records = Vec::new();
    for sh in &shapes {
        let inputs = layouts
            .iter()
            .flat_map(|&l| a.dtype.0.iter().map(move |&e| (l, e)))
            .map(|(l, e)| Inputs::new_as(&ctx, Conv2dGeometry { params: sh.geo.params.layout(l), ..sh.geo }, e))
            .collect::<Result<Vec<_>, _>>()?;
        let inputs = &inputs;
        let runs = ops.iter().flat_map(|o| kernel_sets.iter().flat_map(move |k| inputs.iter().map(move |i| (o, k, i))));
        for (&op, &kernels, inputs) in runs {
            let layout = inputs.geo.params.layout.name();
            let dtype = inputs.elem;
            bar.set_message(format!("{} {} ({}, {layout}, {dtype})", sh.name, op.name(), kernel_name(kernels)));
            ctx.set_strategy(kernels);
            let t = time_op(&ctx, inputs, op, a.reps)?;
            let name = if a.tuned && kernels == Strategy::Auto { "cached" } else { kernel_name(kernels) };
            records.push(Record::new(sh.name, &inputs.geo, op, name, &t).with_dtype(dtype, &inputs.geo));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    println!(
        "convgrad bench, suite {}, {} timed runs each (median), resident inputs, result read back",
        a.suite, a.reps
    );
    println!(
        "adapter: {} ({:?}, {:?}), driver: {} {}",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    println!("profile: {}", ctx.profile());
    let peak = fp32_peak(&info.name);
    match peak {
        Some((tflops, source)) => println!("FP32 peak: {tflops} TFLOP/s ({source})"),
        None => println!("FP32 peak: not in convgrad's table for this adapter (no % peak column)"),
    }
    println!(
        "{:<32} {:<12} {:<10} {:<7} {:<5} {:>8} {:>11} {:>9} {:>7} {:>9} {:>11}",
        "shape", "op", "kernels", "layout", "dtype", "MB", "median ms", "GFLOP/s", "% peak", "host µs", "device ms"
    );
    let fraction = |r: &Record| peak.map(|(tflops, _)| r.gflops / (tflops * 1e3));
    for r in &records {
        let dev = r.device_ms.map_or("-".to_string(), |d| format!("{d:.3}"));
        let pct = fraction(r).map_or("-".to_string(), |f| format!("{:.1}", 100.0 * f));
        println!(
            "{:<32} {:<12} {:<10} {:<7} {:<5} {:>8.2} {:>11.3} {:>9.2} {:>7} {:>9.0} {:>11}",
            r.shape,
            r.op.name(),
            r.kernels,
            r.layout,
            r.dtype.name(),
            r.bytes as f64 / 1e6,
            r.median_ms,
            r.gflops,
            pct,
            r.host_us,
            dev
        );
    }
    if let Some(p) = &a.json {
        let text = records_json(&records, &Platform::of(&ctx));
        write_atomic(p, text.as_bytes())?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.plot {
        plot(p, &records, &info).map_err(|e| CliError(format!("{}: {e}", p.display())))?;
        println!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench --repeats N`: each layer and op run N times, every result compared bit for bit with the first;
/// with all three ops asked for, also the forward pass with a bias and the bias gradient. Each row ends
/// with a digest of the first result's bits, which a second process, machine or build compares.
fn repeats(
    ctx: &convgrad::Context,
    suite: &str,
    shapes: &[convgrad::bench::Shape],
    ops: &[Op],
    dtypes: &[convgrad::Elem],
    layouts: &[Layout],
    times: usize,
) -> Result<ExitCode, CliError> {
    if times < 2 {
        return Err(CliError("--repeats must be at least 2".into()));
    }
    println!("convgrad bench --repeats {times}, suite {suite}, on {}", ctx.adapter_info().name);
    println!("profile: {}", ctx.profile());
    let mut all = true;
    for sh in shapes {
        for &layout in layouts {
            let geo = Conv2dGeometry { params: sh.geo.params.layout(layout), ..sh.geo };
            let name = if layout == Layout::Nchw { sh.name.to_string() } else { format!("{} nhwc", sh.name) };
            for &elem in dtypes {
                let inputs = Inputs::new_as(ctx, geo, elem)?;
                let mut rows: Vec<(&str, usize, u64)> = Vec::new();
                for &op in ops {
                    let (same, digest) = inputs.repeats_identical(ctx, op, times)?;
                    rows.push((op.name(), same, digest));
                }
                if ops.len() == Op::ALL.len() {
                    rows.extend(inputs.extra_repeats(ctx, times)?);
                }
                for (op, same, digest) in rows {
                    all &= same == times;
                    let verdict = if same == times { "identical" } else { "DIFFER" };
                    println!(
                        "{name:<37} {op:<12} {:<5} {same}/{times} runs {verdict}, bits {digest:016x}",
                        elem.name()
                    );
                }
            }
        }
    }
    Ok(if all { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn kernel_name(k: Strategy) -> &'static str {
    match k {
        Strategy::Reference => "reference",
        _ => "tuned",
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError(format!("{}: cannot write: {e}", path.display()))
    })
}

/// Grouped horizontal bars: one group per layer, one bar per op.
fn plot(path: &Path, records: &[Record], info: &wgpu::AdapterInfo) -> Result<(), Box<dyn std::error::Error>> {
    let mut shapes: Vec<&str> = Vec::new();
    for r in records {
        if !shapes.contains(&r.shape.as_str()) {
            shapes.push(&r.shape);
        }
    }
    let mut ops: Vec<(Op, &str, &str)> = Vec::new();
    for r in records {
        if !ops.contains(&(r.op, r.kernels, r.layout)) {
            ops.push((r.op, r.kernels, r.layout));
        }
    }
    // The bars take the left part of the chart and the legend the top right corner, above the first
    // group's bars: the x range runs to 1.75× the largest bar, and the top group is drawn last.
    let max = records.iter().map(|r| r.gflops).filter(|g| g.is_finite()).fold(1e-3, f64::max) * 1.75;
    // Rows of half a bar: bar `oi` of group `si` spans rows 2·(si·per + oi) to 2·(si·per + oi) + 2,
    // so the middle of a group of `ops.len()` bars falls on the whole row 2·si·per + ops.len(), where
    // its label goes. Groups are separated by one empty bar.
    let per = ops.len() + 1;
    let rows = 2 * shapes.len() * per;
    let root = SVGBackend::new(path, (900, (90 + rows * 9) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("convgrad GFLOP/s on {} ({:?})", info.name, info.backend), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(250)
        .build_cartesian_2d(0.0..max, 0..rows)?;
    // The first layer at the top.
    let top = |si: usize| shapes.len() - 1 - si;
    let labels = shapes.clone();
    let label_row =
        |y: usize| (0..labels.len()).find(|&si| 2 * top(si) * per + ops.len() == y).map(|si| labels[si].to_string());
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows + 1)
        .y_label_formatter(&|y| label_row(*y).unwrap_or_default())
        .x_desc("GFLOP/s (2·N·K·P·Q·(C/G)·S·T / median time)")
        .draw()?;
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(214, 39, 40),
    ];
    for (oi, &(op, kernels, layout)) in ops.iter().enumerate() {
        let color = colors[oi % colors.len()];
        chart
            .draw_series(records.iter().filter(|r| r.op == op && r.kernels == kernels && r.layout == layout).map(
                |r| {
                    let si = shapes.iter().position(|s| *s == r.shape).unwrap_or(0);
                    // Within a group the first op is the top bar.
                    let y = 2 * (top(si) * per + (ops.len() - 1 - oi));
                    Rectangle::new([(0.0, y), (r.gflops.max(0.0), y + 2)], color.filled())
                },
            ))?
            .label(format!("{} ({kernels}, {layout})", op.name()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
