//! `convgrad demo`: recover hidden filters from inputs and outputs alone, by gradient descent on
//! J = ½‖X ⊗ W − Y*‖² with the GPU forward pass and the GPU weight gradient.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use convgrad::AdapterOptions;
use convgrad::learn::{FilterLearning, LearnConfig, Reading};
use convgrad::synthetic::FILTER_NAMES;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array4, s};
use plotters::prelude::*;
use pollster::block_on;

use crate::CliError;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Number of training images.
    #[arg(long, default_value_t = 8)]
    images: usize,
    /// Image height and width.
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    /// Filter size S (S×S, at least 3).
    #[arg(long, default_value_t = 5)]
    filter_size: usize,
    /// Most gradient steps.
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    /// Adam's learning rate at the first step.
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Steps over which the learning rate halves (0: constant; see `LearnConfig::lr_half_life`).
    #[arg(long, default_value_t = 300)]
    lr_half_life: usize,
    /// Seed of the images and the starting filters.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop when every filter's relative error ‖W^k − W*^k‖ / ‖W*^k‖ is below this.
    #[arg(long, default_value_t = 1e-3)]
    target: f64,
    /// Read the loss and filter error back every this many steps.
    #[arg(long, default_value_t = 10)]
    log_every: usize,
    /// Folder for the pictures (created if missing).
    #[arg(long, default_value = "convgrad-demo")]
    output: PathBuf,
}

pub fn run(options: &AdapterOptions, a: &DemoArgs) -> Result<ExitCode, CliError> {
    if a.filter_size < 3 {
        return Err(CliError(format!("--filter-size must be at least 3, got {}", a.filter_size)));
    }
    if a.images == 0 || a.image_size < a.filter_size || a.log_every == 0 || a.lr.is_nan() || a.lr <= 0.0 {
        return Err(CliError(
            "--images and --log-every must be positive, --lr above 0, and --image-size at least --filter-size".into(),
        ));
    }
    std::fs::create_dir_all(&a.output).map_err(|e| CliError(format!("{}: cannot create: {e}", a.output.display())))?;
    let ctx = crate::context(options)?;
    let info = ctx.adapter_info().clone();
    let config = LearnConfig {
        images: a.images,
        image_size: a.image_size,
        filter_size: a.filter_size,
        seed: a.seed,
        lr: a.lr,
        lr_half_life: a.lr_half_life,
    };
    let mut run = block_on(FilterLearning::new(&ctx, config))?;
    let sz = a.filter_size;
    eprintln!(
        "convgrad demo on {} ({:?}): learning {} hidden {sz}×{sz} filters ({}) from {} images of {}×{}",
        info.name,
        info.backend,
        FILTER_NAMES.len(),
        FILTER_NAMES.join(", "),
        a.images,
        a.image_size,
        a.image_size
    );
    let bar = ProgressBar::new(a.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed_precise}]")
            .map_err(|e| CliError(e.to_string()))?,
    );
    let start = Instant::now();
    let mut history: Vec<Reading> = Vec::new();
    let mut reached = false;
    loop {
        let step = run.steps();
        if step % a.log_every == 0 || step == a.steps {
            let r = block_on(run.reading(&ctx))?;
            bar.set_position(step as u64);
            bar.set_message(format!(
                "loss {:.3e}  filter error {:.2e} (worst filter {:.2e})",
                r.loss,
                r.err,
                r.worst()
            ));
            reached = r.worst() < a.target;
            history.push(r);
            if reached {
                break;
            }
        }
        if step == a.steps {
            break;
        }
        run.step(&ctx)?;
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();

    let learned = block_on(run.learned(&ctx))?;
    let w_true = run.hidden();
    println!(
        "{} after {} steps in {elapsed:.2} s on {} ({:?}, {})",
        if reached { "recovered every filter" } else { "did NOT reach the target" },
        run.steps(),
        info.name,
        info.backend,
        info.driver
    );
    let last = history.last().map_or((f64::NAN, f64::NAN), |r| (r.loss, r.err));
    println!("final loss ½‖X⊗W − Y*‖² = {:.3e}, relative filter error ‖W − W*‖/‖W*‖ = {:.2e}", last.0, last.1);
    println!("{:<10} {:>16}", "filter", "relative error");
    for (kk, name) in FILTER_NAMES.iter().enumerate() {
        let t = w_true.slice(s![kk, 0, .., ..]);
        let l = learned.slice(s![kk, 0, .., ..]);
        let num: f32 = (&l - &t).mapv(|v| v * v).sum();
        let den: f32 = t.mapv(|v| v * v).sum();
        println!("{name:<10} {:>16.2e}", (num / den).sqrt());
    }
    let filters = a.output.join("filters.svg");
    let curve = a.output.join("loss.svg");
    let table = a.output.join("history.csv");
    draw_filters(&filters, w_true, &learned).map_err(|e| CliError(format!("{}: {e}", filters.display())))?;
    draw_curve(&curve, &history).map_err(|e| CliError(format!("{}: {e}", curve.display())))?;
    let csv: String = std::iter::once("step,learning_rate,loss,filter_error\n".to_string())
        .chain(history.iter().map(|r| format!("{},{:e},{:e},{:e}\n", r.step, r.lr, r.loss, r.err)))
        .collect();
    std::fs::write(&table, csv).map_err(|e| CliError(format!("{}: {e}", table.display())))?;
    println!(
        "pictures: {} (hidden above, learned below) and {}; the readings in {}",
        filters.display(),
        curve.display(),
        table.display()
    );
    Ok(if reached { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Each hidden filter above the learned one, on one diverging colour scale per column.
fn draw_filters(path: &Path, hidden: &Array4<f32>, learned: &Array4<f32>) -> DrawResult {
    let (k, _, sz, _) = hidden.dim();
    let cell = 24u32;
    let pad = 16u32;
    let panel = cell * sz as u32;
    let width = k as u32 * (panel + pad) + pad;
    let height = 2 * (panel + pad) + 40;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    for (kk, name) in FILTER_NAMES.iter().enumerate().take(k) {
        let scale = hidden.slice(s![kk, 0, .., ..]).iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let x0 = pad + kk as u32 * (panel + pad);
        root.draw(&Text::new(name.to_string(), (x0 as i32, 4), ("sans-serif", 14).into_font()))?;
        for (row, bank) in [hidden, learned].into_iter().enumerate() {
            let y0 = 24 + row as u32 * (panel + pad);
            for i in 0..sz {
                for j in 0..sz {
                    let v = (bank[[kk, 0, i, j]] / scale).clamp(-1.0, 1.0);
                    // Blue for negative, red for positive, white at zero.
                    let c = if v >= 0.0 {
                        RGBColor(255, (255.0 * (1.0 - v)) as u8, (255.0 * (1.0 - v)) as u8)
                    } else {
                        RGBColor((255.0 * (1.0 + v)) as u8, (255.0 * (1.0 + v)) as u8, 255)
                    };
                    let (x, y) = ((x0 + j as u32 * cell) as i32, (y0 + i as u32 * cell) as i32);
                    root.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], c.filled()))?;
                }
            }
        }
    }
    root.draw(&Text::new(
        "top: hidden filters W*; bottom: learned W",
        (pad as i32, (height - 16) as i32),
        ("sans-serif", 13).into_font(),
    ))?;
    root.present()?;
    Ok(())
}

/// The loss and the relative filter error against the step, on a log scale.
fn draw_curve(path: &Path, history: &[Reading]) -> DrawResult {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let last = history.last().map_or(1, |r| r.step.max(1));
    let pos = |v: f64| if v > 0.0 && v.is_finite() { v } else { 1e-30 };
    let lo = history.iter().map(|r| pos(r.loss).min(pos(r.err))).fold(f64::INFINITY, f64::min).max(1e-30);
    let hi = history.iter().map(|r| pos(r.loss).max(pos(r.err))).fold(lo * 10.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("gradient descent on ½‖X ⊗ W − Y*‖²", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0..last, (lo / 2.0..hi * 2.0).log_scale())?;
    chart.configure_mesh().x_desc("step").y_desc("value (log scale)").draw()?;
    chart
        .draw_series(LineSeries::new(history.iter().map(|r| (r.step, pos(r.loss))), &RED))?
        .label("loss J")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    chart
        .draw_series(LineSeries::new(history.iter().map(|r| (r.step, pos(r.err))), &BLUE))?
        .label("‖W − W*‖ / ‖W*‖")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
