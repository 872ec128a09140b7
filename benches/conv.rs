//! criterion benchmarks of the three operations over the suite layers.
//!
//! `cargo bench` runs the quick subset (the two small standard layers); `CONVGRAD_BENCH_SUITE=standard
//! cargo bench` runs all five. Each measurement is resident: inputs on the device, the operation plus
//! the read-back of its result (which synchronises) inside the timed region. Throughput is in
//! "elements" = floating-point operations, `2·N·K·P·Q·(C/G)·S·T`, so criterion reports FLOP/s.

use std::time::Duration;

use convgrad::Context;
use convgrad::bench::{Inputs, Op, suite};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn conv(c: &mut Criterion) {
    let ctx = match Context::new() {
        Ok(ctx) => ctx,
        Err(e) => panic!("the benchmarks need a wgpu adapter: {e}"),
    };
    let name = std::env::var("CONVGRAD_BENCH_SUITE").unwrap_or_else(|_| "quick".into());
    let Some(shapes) = suite(&name) else { panic!("unknown CONVGRAD_BENCH_SUITE {name:?}") };
    let mut group = c.benchmark_group(format!("conv2d/{}", ctx.adapter_info().name));
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for shape in &shapes {
        let inputs = match Inputs::new(&ctx, shape.geo) {
            Ok(i) => i,
            Err(e) => panic!("{}: {e}", shape.name),
        };
        group.throughput(Throughput::Elements(shape.geo.flops() as u64));
        for op in Op::ALL {
            group.bench_with_input(BenchmarkId::new(op.name(), shape.name), &op, |b, &op| {
                b.iter(|| {
                    if let Err(e) = inputs.run(&ctx, op) {
                        panic!("{} {}: {e}", shape.name, op.name());
                    }
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, conv);
criterion_main!(benches);
