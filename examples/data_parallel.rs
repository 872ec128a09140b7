//! `convgrad demo`'s filter learning, data-parallel: the images are spread over MPI ranks (or over
//! threads in one process), each rank computes the loss and the weight gradient of its chunks on its
//! own device, and the canonical reduction (`convgrad::dist`) adds them, so every rank takes the same
//! Adam step, and the loss curve and the final weights are bitwise the same on any number of ranks.
//!
//! ```text
//! cargo build --release --features mpi --example data_parallel
//! mpirun -np 4 target/release/examples/data_parallel            # 4 ranks
//! target/release/examples/data_parallel --local 3               # 3 threads, one process, no MPI
//! ```
//!
//! Rank 0 prints the loss every 10 steps and, last, `sha256 ` and the hex SHA-256 of the final
//! weights (f32, little-endian, in order). Options: `--steps N` (40), `--images N` (10), `--chunk N`
//! (1 image), `--size N` (image side, 32); for the tests, `--fail-rank R --fail error|exit|shape`: rank R
//! fails at step 3 (its gradient returns an error; the process exits at once; or it runs another layer).

use std::process::ExitCode;

use convgrad::dist::{Group, LocalGroup, abandon, reduce};
use convgrad::plan::reduce::Chunks;
use convgrad::synthetic::{hidden_filters, images};
use convgrad::verify::Rng;
use convgrad::{Context, Conv2dParams, Error, Tensor};
use ndarray::{Array4, Ix4, s};
use sha2::{Digest, Sha256};

/// What the command line asked for.
#[derive(Debug, Clone)]
struct Options {
    steps: usize,
    images: usize,
    chunk: usize,
    size: usize,
    local: Option<usize>,
    fail_rank: Option<usize>,
    fail: String,
}

fn options() -> Result<Options, String> {
    let mut o =
        Options { steps: 40, images: 10, chunk: 1, size: 32, local: None, fail_rank: None, fail: String::new() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{a}: {v:?} is not a count"));
        match a.as_str() {
            "--steps" => o.steps = number(value()?)?,
            "--images" => o.images = number(value()?)?,
            "--chunk" => o.chunk = number(value()?)?,
            "--size" => o.size = number(value()?)?,
            "--local" => o.local = Some(number(value()?)?),
            "--fail-rank" => o.fail_rank = Some(number(value()?)?),
            "--fail" => o.fail = value()?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if !["", "error", "exit", "shape"].contains(&o.fail.as_str()) {
        return Err(format!("--fail {}: choose error, exit or shape", o.fail));
    }
    Ok(o)
}

const FILTER: usize = 5;
const LR: f32 = 0.05;

/// One member's run: its chunks' images and targets on its device, then `steps` steps of Adam on
/// the canonically reduced gradient. Returns the final weights.
fn run(group: &dyn Group, o: &Options) -> convgrad::Result<Array4<f32>> {
    let rank = group.rank();
    let fails = |mode: &str| o.fail_rank == Some(rank) && o.fail == mode;
    let params = Conv2dParams::new();
    // Every member makes the same images and keeps its own chunks; a "shape" failure makes larger
    // ones. A member that fails here tells the others (`abandon`) rather than leave them waiting.
    let side = if fails("shape") { o.size + 1 } else { o.size };
    let setup = || -> convgrad::Result<_> {
        let ctx = Context::new()?;
        let chunks = Chunks::new(o.images, o.chunk)?;
        let samples = chunks.even_shards(group.size())[rank].clone();
        let all = images(o.images, side, side, 1);
        let w_star = ctx.upload(hidden_filters(FILTER, 1).view())?;
        let mut mine: Vec<(Tensor, Tensor)> = Vec::new();
        for c in chunks.chunks_of(samples.clone())? {
            let x = ctx.upload(all.slice(s![chunks.samples(c), .., .., ..]))?;
            let y_star = ctx.forward(&x, &w_star, None, &params)?;
            mine.push((x, y_star));
        }
        Ok((ctx, chunks, samples, mine))
    };
    let (ctx, chunks, samples, mine) = setup().map_err(|e| abandon(group, e))?;
    let first = samples.start / chunks.chunk;
    let mut w = Rng::new(8).array::<Ix4, _>((5, 1, FILTER, FILTER)).mapv(|v| 0.1 * v);
    let (mut m, mut v) = (w.mapv(|_| 0.0f32), w.mapv(|_| 0.0f32));
    let len = w.len() + 1;
    let layer = format!("filter learning on {side}x{side} images, {FILTER}x{FILTER} filters");
    for step in 0..o.steps {
        if step == 3 && fails("exit") {
            eprintln!("rank {rank}: exiting at step {step} without a word to the others (--fail exit)");
            std::process::exit(3);
        }
        // A leaf: ∂J/∂W of the chunk's images, then its loss ½‖X ⊗ W − Y*‖². Everything that can
        // fail runs inside, so that a failure reaches the others through the exchange.
        let mut wt = None;
        let sum = reduce(group, &layer, chunks, samples.clone(), len, |c| {
            if step == 3 && fails("error") {
                return Err(Error::Io {
                    what: format!("rank {rank}, chunk {c}"),
                    message: "failing on purpose".into(),
                });
            }
            if wt.is_none() {
                wt = Some(ctx.upload(w.view())?);
            }
            let wt = wt.as_ref().ok_or(Error::ZeroDimension { what: "weights" })?;
            let (x, y_star) = &mine[c - first];
            let y = ctx.forward(x, wt, None, &params)?;
            let dy = ctx.zeros(y.shape())?;
            ctx.axpby(1.0, &y, -1.0, y_star, &dy)?;
            let loss = 0.5 * ctx.sum_squares(&dy)?;
            let dw = ctx.download::<Ix4>(&ctx.weight_grad(x, &dy, [FILTER, FILTER], &params)?)?;
            Ok(dw.iter().copied().chain([loss]).collect())
        })?;
        let (grad, loss) = (&sum[..len - 1], sum[len - 1]);
        if rank == 0 && step % 10 == 0 {
            println!("step {step:3} loss {loss:.9e}");
        }
        // Adam on the host: the same f32 arithmetic on every member.
        let t = (step + 1) as i32;
        let lr = LR * 0.5f32.powf(step as f32 / 300.0);
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        for (((wi, mi), vi), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grad) {
            *mi = b1 * *mi + (1.0 - b1) * g;
            *vi = b2 * *vi + (1.0 - b2) * g * g;
            let (mh, vh) = (*mi / (1.0 - b1.powi(t)), *vi / (1.0 - b2.powi(t)));
            *wi -= lr * mh / (vh.sqrt() + eps);
        }
    }
    Ok(w)
}

fn sha256(w: &Array4<f32>) -> String {
    let mut h = Sha256::new();
    for x in w {
        h.update(x.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("data_parallel: {e}");
            return ExitCode::from(2);
        }
    };
    let results: Vec<(usize, convgrad::Result<Array4<f32>>)> = match o.local {
        Some(n) => {
            let groups = LocalGroup::new(n);
            let o = &o;
            std::thread::scope(|s| {
                // Each thread owns its member: one that panics leaves the group as it unwinds, and
                // the others' exchanges end with an error naming it instead of waiting for it.
                let hs: Vec<_> = groups.into_iter().map(|g| s.spawn(move || (g.rank(), run(&g, o)))).collect();
                hs.into_iter().map(|h| h.join().expect("a member's thread panicked")).collect()
            })
        }
        None => match convgrad::dist::mpi::MpiGroup::init() {
            Ok(g) => {
                let r = run(&g, &o);
                vec![(g.rank(), r)]
            }
            Err(e) => vec![(0, Err(e))],
        },
    };
    let mut code = ExitCode::SUCCESS;
    for (rank, r) in results {
        match r {
            Ok(w) if rank == 0 => println!("sha256 {}", sha256(&w)),
            Ok(_) => {}
            Err(e) => {
                eprintln!("rank {rank}: error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
