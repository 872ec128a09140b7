//! How the driver bounds shader loops, measured with a probe kernel, and the reading of the limit
//! that the planner's invariant relies on (`plan::MAX_LOOP_TRIPS`).
//!
//! Mesa's llvmpipe (lavapipe) ends a shader's loops after 65,535 iterations without a word. Measured
//! here on Mesa 22.3.6: the count is one per invocation, across all its loops (nested or one after the
//! other), and each test of a loop's condition counts, the last one too; loops of a constant trip count
//! up to 16 are unrolled by the compiler and do not count. So the planner bounds every invocation's loop
//! iterations in all (`plan::MAX_LOOP_TRIPS`). This test prints what the driver in use does, and fails
//! if it stops an invocation whose loops stay within that budget.

mod common;

use common::ctx;
use convgrad::plan::MAX_LOOP_TRIPS;
use wgpu::util::DeviceExt;

const PROBE: &str = r#"
@group(0) @binding(0) var<storage, read> trips: array<u32, 2>;
@group(0) @binding(1) var<storage, read_write> count: array<u32, 4>;

// One loop of a trips.
@compute @workgroup_size(1)
fn single() {
    var c = 0u;
    for (var i = 0u; i < trips[0]; i++) { c += 1u; }
    count[0] = c;
}

// A loop of b trips inside a loop of a trips: a·b in all, but never more than max(a, b) in one loop.
@compute @workgroup_size(1)
fn nested() {
    var c = 0u;
    for (var i = 0u; i < trips[0]; i++) {
        for (var j = 0u; j < trips[1]; j++) { c += 1u; }
    }
    count[0] = c;
}

// Two loops one after the other, of a and b trips.
@compute @workgroup_size(1)
fn sequential() {
    var c = 0u;
    for (var i = 0u; i < trips[0]; i++) { c += 1u; }
    for (var j = 0u; j < trips[1]; j++) { c += 1u; }
    count[0] = c;
}
"#;

/// Runs the probe's entry point `entry` with trip counts `a`, `b` and returns the iterations it counted.
fn probe(entry: &str, a: u32, b: u32) -> u32 {
    let ctx = ctx();
    let device = ctx.device();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("loop-limit probe"),
        source: wgpu::ShaderSource::Wgsl(PROBE.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    let trips = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("trips"),
        contents: bytemuck::cast_slice(&[a, b]),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let count = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("count"),
        contents: bytemuck::cast_slice(&[u32::MAX; 4]),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    });
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: trips.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: count.as_entire_binding() },
        ],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    ctx.queue().submit([encoder.finish()]);
    let t = ctx.wrap(&count, &[4]).unwrap();
    let host: ndarray::Array1<f32> = ctx.download(&t).unwrap();
    host[0].to_bits()
}

#[test]
fn loop_budget_is_one_count_per_invocation() {
    let limit = MAX_LOOP_TRIPS as u32;
    let info = ctx().adapter_info();
    // How the driver counts, reported rather than asserted (a driver may run every loop to its end):
    // per loop, nested(300, 300) gives 90,000 and sequential(40,000, 40,000) 80,000; one count for
    // all the loops of an invocation stops both near 65,535.
    let readings = [
        ("one loop of 65,536", probe("single", limit + 1, 0)),
        ("one loop of 589,824", probe("single", 589_824, 0)),
        ("300 in 300", probe("nested", 300, 300)),
        ("40,000 then 40,000", probe("sequential", 40_000, 40_000)),
    ];
    eprintln!("loop-limit probe on {} ({}): {readings:?}", info.name, info.driver_info);
    // What the kernels rely on (`plan::MAX_LOOP_TRIPS`): every invocation whose loops together take
    // at most the budget, counting each test of a loop's condition, the last one too, runs them all.
    assert_eq!(probe("single", limit - 1, 0), limit - 1, "one loop of {} trips", limit - 1);
    // 100 × (600 + 1) + 101 tests of a condition.
    assert_eq!(probe("nested", 100, 600), 60_000, "a 600-trip loop in a 100-trip loop");
    assert_eq!(probe("sequential", 32_000, 32_000), 64_000, "two 32,000-trip loops in a row");
}
