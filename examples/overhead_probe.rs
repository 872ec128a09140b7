use convgrad::{Context, Conv2dParams};
use ndarray::{Array4, IxDyn};
use std::time::Instant;
fn main() -> convgrad::Result<()> {
    let ctx = Context::new()?;
    let p = Conv2dParams::new();
    let x = ctx.upload(
        Array4::<f32>::ones((
            1,
            1,
            std::env::var("HW").map(|v| v.parse().unwrap()).unwrap_or(256),
            std::env::var("HW").map(|v| v.parse().unwrap()).unwrap_or(256),
        ))
        .view(),
    )?;
    let w = ctx.upload(Array4::<f32>::ones((8, 1, 5, 5)).view())?;
    for _ in 0..3 {
        let y = ctx.forward(&x, &w, None, &p)?;
        ctx.download::<IxDyn>(&y)?;
    }
    let mut a = vec![];
    let mut b = vec![];
    let mut c = vec![];
    let mut d = vec![];
    for _ in 0..40 {
        let t0 = Instant::now();
        let y = ctx.forward(&x, &w, None, &p)?;
        let t1 = Instant::now();
        ctx.device().poll(wgpu::PollType::wait_indefinitely()).ok();
        let t2 = Instant::now();
        let h = ctx.download::<IxDyn>(&y)?;
        let t3 = Instant::now();
        std::hint::black_box(h);
        let h2 = ctx.download::<IxDyn>(&w)?;
        std::hint::black_box(h2);
        let t4 = Instant::now();
        a.push((t1 - t0).as_secs_f64() * 1e3);
        b.push((t2 - t1).as_secs_f64() * 1e3);
        c.push((t3 - t2).as_secs_f64() * 1e3);
        d.push((t4 - t3).as_secs_f64() * 1e3);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "record+submit {:.3} ms, gpu wait {:.3} ms, download 2MB {:.3} ms, download tiny {:.3} ms",
        med(&mut a),
        med(&mut b),
        med(&mut c),
        med(&mut d)
    );
    Ok(())
}
