//! The engine: runs a [`Program`] on a context's device, recording it into a [`Job`]. It makes the
//! program's temporaries (each released at the first submission after its last use), binds slots to
//! buffers, and records each pass and copy in order; the job checks each binding against the device
//! and holds the error scopes. Nothing here decides anything: the program did.

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
    let mut temps: Vec<Option<Tensor>> = Vec::with_capacity(program.temps.len());
    for t in &program.temps {
        temps.push(Some(ctx.temp(t.what, &[t.bytes.div_ceil(4) as usize])?));
    }
    let buffer = |temps: &[Option<Tensor>], slot: Slot| -> Result<wgpu::Buffer> {
        let t = match slot {
            Slot::Input(i) => inputs.get(usize::from(i)).copied(),
            Slot::Output(i) => outputs.get(usize::from(i)).copied(),
            Slot::Temp(i) => temps.get(usize::from(i)).and_then(Option::as_ref),
        };
        t.map(|t| t.buffer.clone()).ok_or_else(|| Error::Overflow {
            what: "program slot",
            detail: format!("{slot:?} of {} is not bound (or used after its release)", program.what),
        })
    };
    for (i, step) in program.steps.iter().enumerate() {
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
