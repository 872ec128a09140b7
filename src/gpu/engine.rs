//! The engine: runs a [`Program`] on a context's device, recording it into a [`Job`]. It makes the
//! program's temporaries (each at its first use, released at the first submission after its last),
//! binds slots to buffers, and records each pass and copy in order; the job checks each binding
//! against the device and holds the error scopes. Nothing here decides anything: the program did.

use crate::error::{Error, Result};
use crate::gpu::context::Context;
use crate::gpu::job::Job;
use crate::gpu::kernels::{ALL_KERNELS, KernelSpec};
use crate::gpu::tensor::Tensor;
use crate::plan::program::{Program, Slot, Step, View};

/// The kernel of a pass, by name.
fn kernel(name: &str) -> Result<&'static KernelSpec> {
    ALL_KERNELS
        .iter()
        .copied()
        .find(|k| k.name == name)
        .ok_or_else(|| Error::Overflow { what: "program pass", detail: format!("no kernel named {name}") })
}

/// Runs `program` over `inputs` and `outputs` as one job: recorded, submitted, its errors reported.
///
/// # Errors
/// As [`run`], and the job's wgpu errors.
pub(crate) fn execute(ctx: &Context, program: &Program, inputs: &[&Tensor], outputs: &[&Tensor]) -> Result<()> {
    let mut job = Job::new(ctx);
    run(ctx, &mut job, program, inputs, outputs)?;
    job.finish()
}

/// A 4-byte buffer bound where a kernel's optional input is absent ([`Slot::Unused`]).
fn placeholder(ctx: &Context) -> &wgpu::Buffer {
    ctx.placeholder.get_or_init(|| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("convgrad placeholder"),
            size: 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    })
}

/// Runs `program` into `job` over `inputs` and `outputs` (each of the size the program says).
///
/// # Errors
/// A tensor of the wrong size for its slot; device limits; wgpu errors of the job.
pub(crate) fn run(
    ctx: &Context,
    job: &mut Job,
    program: &Program,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
) -> Result<()> {
    let sized = |what: &str, want: &[u64], got: &[&Tensor]| -> Result<()> {
        let got: Vec<u64> = got.iter().map(|t| t.buffer.size()).collect();
        if got.len() != want.len() || got.iter().zip(want).any(|(g, w)| g < w) {
            return Err(Error::shape(
                format!("{what} of {}", program.what),
                format!("{want:?} bytes"),
                format!("{got:?}"),
            ));
        }
        Ok(())
    };
    sized("inputs", &program.inputs, inputs)?;
    sized("outputs", &program.outputs, outputs)?;
    let last: Vec<Option<usize>> = (0..program.temps.len()).map(|i| program.last_use(i as u16)).collect();
    // Each temporary is made where it is first used, so a chunked program holds one chunk's at a time
    // (a chunk's temporaries go back to the pool at its submission and the next chunk reuses them).
    let mut temps: Vec<Option<Tensor>> = (0..program.temps.len()).map(|_| None).collect();
    let mut made = vec![false; program.temps.len()];
    let buffer = |temps: &[Option<Tensor>], slot: Slot| -> Result<wgpu::Buffer> {
        let t = match slot {
            Slot::Input(i) => inputs.get(usize::from(i)).copied(),
            Slot::Output(i) => outputs.get(usize::from(i)).copied(),
            Slot::Temp(i) => temps.get(usize::from(i)).and_then(Option::as_ref),
            Slot::Unused => return Ok(placeholder(ctx).clone()),
        };
        t.map(|t| t.buffer.clone()).ok_or_else(|| Error::Overflow {
            what: "program slot",
            detail: format!("{slot:?} of {} is not bound (or used after its release)", program.what),
        })
    };
    for (i, step) in program.steps.iter().enumerate() {
        let views: &[View] = match step {
            Step::Pass(p) => &p.binds,
            Step::Copy { src, dst } => &[*src, *dst],
            Step::Clear { dst } => std::slice::from_ref(dst),
            Step::Submit => &[],
        };
        for v in views {
            if let Slot::Temp(t) = v.slot
                && let (Some(made), Some(spec)) = (made.get_mut(usize::from(t)), program.temps.get(usize::from(t)))
                && !*made
            {
                *made = true;
                temps[usize::from(t)] = Some(ctx.temp(spec.what, &[spec.bytes.div_ceil(4) as usize])?);
            }
        }
        match step {
            Step::Pass(p) => {
                let bound: Vec<wgpu::Buffer> =
                    p.binds.iter().map(|v: &View| buffer(&temps, v.slot)).collect::<Result<_>>()?;
                let refs: Vec<&wgpu::Buffer> = bound.iter().collect();
                job.dispatch(kernel(p.kernel)?, &p.variant, &p.uniform, &refs, p.invocations)?;
            }
            Step::Copy { src, dst } => {
                let (s, d) = (buffer(&temps, src.slot)?, buffer(&temps, dst.slot)?);
                job.copy_range(&s, src.at, &d, dst.at, src.len);
            }
            Step::Clear { dst } => job.clear_range(&buffer(&temps, dst.slot)?, dst.at, dst.len),
            Step::Submit => {
                job.flush();
                // A temporary no later step uses goes back to the pool now, not at the program's end.
                for (t, last) in temps.iter_mut().zip(&last) {
                    if last.is_none_or(|l| l < i) {
                        t.take();
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array4};

    use crate::geometry::{Conv2dGeometry, Conv2dParams, Layout};
    use crate::gpu::Context;
    use crate::plan::DeviceClass;
    use crate::reference;
    use crate::verify::{Rng, rel_err};

    /// The programs of NHWC layers in batch chunks: with a binding of 4 KiB a sample of 360 elements makes chunks of 2, 2
    /// and 1 samples, each transposed on its own. Forward and input gradient give the unchunked bits
    /// (each sample is computed alike); the reductions over the batch are summed per chunk, so those
    /// are checked against the reference. Both transpose kernels (GPU and CPU class).
    #[test]
    fn channels_last_in_batch_chunks() {
        let base = Context::new().expect("a wgpu adapter (see README: apt-get install mesa-vulkan-drivers)");
        let params = Conv2dParams::new().padding_same().layout(Layout::Nhwc);
        let geo = Conv2dGeometry::new(5, 3, [9, 10], 4, [3, 3], params).unwrap();
        let mut rng = Rng::new(3);
        let x: Array4<f32> = rng.array(geo.input_shape());
        let w: Array4<f32> = rng.array(geo.weight_shape());
        let dy: Array4<f32> = rng.array(geo.output_shape());
        for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
            let whole = Context::from_device(base.device.clone(), base.queue.clone()).with_profile(class);
            let chunked = Context::from_device(base.device.clone(), base.queue.clone())
                .with_profile(class)
                .with_binding_limit(4096);
            assert_eq!(crate::plan::batch_chunk(&geo, 360, chunked.profile()).unwrap(), 2);
            let run = |ctx: &Context| {
                let y = ctx.conv2d(x.view(), w.view(), None, &params).unwrap();
                let dw = ctx.conv2d_weight_grad(x.view(), dy.view(), [3, 3], &params).unwrap();
                let dx = ctx.conv2d_input_grad(dy.view(), w.view(), [9, 10], &params).unwrap();
                let db: Array1<f32> = ctx.conv2d_bias_grad(dy.view(), Layout::Nhwc).unwrap();
                (y, dw, dx, db)
            };
            let (y0, _, dx0, _) = run(&whole);
            let (y, dw, dx, db) = run(&chunked);
            assert_eq!(y, y0, "{class:?}: forward");
            assert_eq!(dx, dx0, "{class:?}: input gradient");
            let dw_ref = reference::weight_grad(x.view(), dy.view(), [3, 3], &params).unwrap();
            assert!(rel_err(&dw, &dw_ref) < 1e-6, "{class:?}: weight gradient");
            assert!(rel_err(&db, &reference::bias_grad(dy.view(), Layout::Nhwc)) < 1e-6, "{class:?}: bias");
        }
    }

    /// A context builds each program once per exact request and profile, and runs the kept one
    /// again: the same object for the same request, the one the builder makes; another for another
    /// dtype; and after `with_profile`, the new profile's.
    #[test]
    fn programs_are_kept_per_exact_request_and_profile() {
        use std::sync::Arc;

        use crate::elem::Elem;
        use crate::plan::key::ProgramKey;
        use crate::plan::{Op, Strategy};
        let base = Context::new().expect("a wgpu adapter (see README: apt-get install mesa-vulkan-drivers)");
        let geo = Conv2dGeometry::new(2, 8, [16, 16], 8, [3, 3], Conv2dParams::new().padding(1, 1)).unwrap();
        let conv =
            |elem| ProgramKey::Conv { op: Op::Forward, geo, bias: true, elem, out: elem, strategy: Strategy::Auto };
        let ctx = base.twin().with_profile(DeviceClass::Cpu);
        let a = ctx.program_for(conv(Elem::F32)).unwrap();
        assert!(Arc::ptr_eq(&a, &ctx.program_for(conv(Elem::F32)).unwrap()));
        assert_eq!(*a, conv(Elem::F32).build(ctx.profile()).unwrap());
        assert!(!Arc::ptr_eq(&a, &ctx.program_for(conv(Elem::F16)).unwrap()));
        let gpu = ctx.with_profile(DeviceClass::Gpu);
        let b = gpu.program_for(conv(Elem::F32)).unwrap();
        assert_eq!(*b, conv(Elem::F32).build(gpu.profile()).unwrap());
        assert_ne!(*a, *b, "the CPU profile's tiles and the GPU profile's GEMM");
    }
}
