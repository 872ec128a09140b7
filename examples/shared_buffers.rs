//! convgrad inside a program that already has its own wgpu device and buffers.
//!
//! The program below makes the device, fills an NHWC image with a compute shader of its own, hands
//! that buffer to convgrad (no copy), lets convgrad write the convolution into another buffer of its
//! own, applies its own ReLU pass to it in place, reads it back itself, and finally has convgrad write
//! the three gradients into buffers it owns. Layout NHWC with OHWI weights, padding 'same'.
//!
//! cargo run --release --example shared_buffers

use convgrad::{Context, Conv2dParams, Layout, reference};
use ndarray::{Array1, Array4};

/// The program's own kernels: a pattern generator and an in-place ReLU.
const OWN_WGSL: &str = "
@group(0) @binding(0) var<storage, read_write> buf: array<f32>;
@compute @workgroup_size(64)
fn fill(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&buf)) { buf[id.x] = sin(f32(id.x) * 0.37) + 0.25 * cos(f32(id.x % 7u)); }
}
@compute @workgroup_size(64)
fn relu(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&buf)) { buf[id.x] = max(buf[id.x], 0.0); }
}
";

const USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The host program's device, from the process's wgpu instance (the one convgrad's own contexts
    // use), so that wgpu tells this device's buffers from those of any other context's device.
    let instance = Context::instance(convgrad::AdapterOptions::from_env().backends);
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("host kernels"),
        source: wgpu::ShaderSource::Wgsl(OWN_WGSL.into()),
    });
    let pass = |entry: &str, buf: &wgpu::Buffer| {
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[wgpu::BindGroupEntry { binding: 0, resource: buf.as_entire_binding() }],
        });
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut cp = enc.begin_compute_pass(&Default::default());
            cp.set_pipeline(&pipeline);
            cp.set_bind_group(0, &bind, &[]);
            cp.dispatch_workgroups((buf.size() / 4).div_ceil(64) as u32, 1, 1);
        }
        queue.submit([enc.finish()]);
    };
    let buffer = |label: &str, elements: usize| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (elements * 4) as u64,
            usage: USAGE,
            mapped_at_creation: false,
        })
    };

    // A 2×20×24×3 NHWC image made on the GPU by the host's own shader; 8 filters of 4×4 (OHWI).
    let params = Conv2dParams::new().padding_same().layout(Layout::Nhwc);
    let geo = params.geometry([2, 20, 24, 3], [8, 4, 4, 3])?;
    let count = |s: [usize; 4]| s.iter().product::<usize>();
    let (x_buf, w_buf, y_buf) = (
        buffer("image", count(geo.input_shape())),
        buffer("filters", count(geo.weight_shape())),
        buffer("features", count(geo.output_shape())),
    );
    pass("fill", &x_buf);
    let w_host =
        Array4::from_shape_fn(geo.weight_shape(), |(k, i, j, c)| ((k + 2 * i + 3 * j + c) % 5) as f32 * 0.1 - 0.2);
    queue.write_buffer(&w_buf, 0, bytemuck::cast_slice(w_host.as_slice().ok_or("weights not contiguous")?));

    // convgrad on the same device, over the host's buffers: the forward pass writes into y_buf.
    let ctx = Context::from_device(device.clone(), queue.clone());
    let (x, w, y) = (
        ctx.wrap(&x_buf, &geo.input_shape())?,
        ctx.wrap(&w_buf, &geo.weight_shape())?,
        ctx.wrap(&y_buf, &geo.output_shape())?,
    );
    ctx.forward_into(&x, &w, None, &params, &y)?;
    println!(
        "forward on {}: {} → {:?} in the host's buffer",
        ctx.adapter_info().name,
        geo.describe(),
        geo.output_shape()
    );

    // The host's own pass runs on convgrad's output, in place; queue order keeps the two in sequence.
    pass("relu", &y_buf);
    let features: Array4<f32> = ctx.download(&y)?; // or map y_buf yourself
    let x_host: Array4<f32> = ctx.download(&x)?;
    let expect = reference::forward(x_host.view(), w_host.view(), None, &params)?.mapv(|v| v.max(0.0));
    let worst = features.iter().zip(expect.iter()).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
    println!("ReLU(X ⊗ W) read back by the host: worst difference from the f64 reference {worst:.2e}");

    // Gradients of J = ½‖ReLU(X ⊗ W)‖² where ReLU is active, written into more of the host's buffers.
    let (dw_buf, dx_buf, db_buf) =
        (buffer("dW", count(geo.weight_shape())), buffer("dX", count(geo.input_shape())), buffer("dB", geo.k));
    let (dw, dx, db) =
        (ctx.wrap(&dw_buf, &geo.weight_shape())?, ctx.wrap(&dx_buf, &geo.input_shape())?, ctx.wrap(&db_buf, &[geo.k])?);
    ctx.weight_grad_into(&x, &y, &params, &dw)?;
    ctx.input_grad_into(&y, &w, &params, &dx)?;
    ctx.bias_grad_into(&y, params.layout, &db)?;
    let db_host: Array1<f32> = ctx.download(&db)?;
    println!("dW {:?}, dX {:?} and dB {db_host:.3} are in the host's buffers", dw.shape(), dx.shape());
    if worst > 1e-4 {
        return Err(format!("the forward pass differs from the reference by {worst:.2e}").into());
    }
    Ok(())
}
