//! The one error type of the crate.

use thiserror::Error;

/// Every way a convgrad call can fail.
///
/// Messages are lowercase, name the numbers involved and, where there is one, what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor does not have the shape the operation needs.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which operand or dimension.
        what: String,
        /// The shape or size that was needed.
        expected: String,
        /// The shape or size that was given.
        got: String,
    },

    /// A dimension that must be positive is zero.
    #[error("{what} is zero; every dimension must be at least 1")]
    ZeroDimension {
        /// Which dimension.
        what: &'static str,
    },

    /// A stride or dilation of zero.
    #[error("{what} must be at least 1, got {value}")]
    ZeroStep {
        /// `"stride"` or `"dilation"` and its axis.
        what: &'static str,
        /// The value given.
        value: usize,
    },

    /// The dilated kernel does not fit in the padded input, so the output would be empty.
    #[error(
        "kernel does not fit along {axis}: dilated kernel extent {extent} (= {dilation}·({kernel}−1)+1) \
         exceeds padded input {padded} (= {input}+{padding} of padding)"
    )]
    KernelTooLarge {
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// Kernel size along the axis.
        kernel: usize,
        /// Dilation along the axis.
        dilation: usize,
        /// `dilation·(kernel−1)+1`.
        extent: usize,
        /// Input size along the axis.
        input: usize,
        /// Padding along the axis, both sides together.
        padding: usize,
        /// `input + padding`.
        padded: usize,
    },

    /// Channels or filters not divisible by the number of groups.
    #[error("{what} = {value} is not divisible by groups = {groups}")]
    GroupsMismatch {
        /// `"input channels"` or `"filters"`.
        what: &'static str,
        /// The channel or filter count.
        value: usize,
        /// The number of groups.
        groups: usize,
    },

    /// An input size that does not map to the given output gradient size.
    #[error("input size {input:?} does not give output size {output:?} with these parameters (it gives {expected:?})")]
    InputSizeMismatch {
        /// The input size (H, W) given.
        input: (usize, usize),
        /// The output size (P, Q) of the gradient given.
        output: (usize, usize),
        /// The output size the input size gives.
        expected: (usize, usize),
    },

    /// A size overflows the integer types used for indexing (usize on the host, u32 in WGSL).
    #[error("{what} overflows: {detail}")]
    Overflow {
        /// What was being computed.
        what: &'static str,
        /// The numbers involved.
        detail: String,
    },

    /// A tensor or dispatch is larger than the device allows.
    #[error("{what} needs {needed} but the device allows at most {limit} ({limit_name})")]
    DeviceLimit {
        /// What was too large.
        what: String,
        /// How much was needed.
        needed: u64,
        /// The device's limit.
        limit: u64,
        /// The name of the wgpu limit.
        limit_name: &'static str,
    },

    /// No adapter matched the request.
    #[error(
        "no GPU adapter found{detail}; on Linux without a GPU install the Vulkan software rasterizer \
         (`apt-get install mesa-vulkan-drivers`), or set WGPU_BACKEND / WGPU_ADAPTER_NAME to pick another"
    )]
    NoAdapter {
        /// What was asked for, or empty.
        detail: String,
    },

    /// The adapter refused to create a device.
    #[error("could not create a device on adapter {adapter}: {message}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },

    /// wgpu reported an error while building or running a kernel.
    #[error("wgpu error in {kernel}: {message}")]
    Wgpu {
        /// The kernel (or step) that failed.
        kernel: String,
        /// wgpu's message.
        message: String,
    },

    /// Reading a result back from the device failed (a buffer destroyed or mapped by its owner, a
    /// mapping error; a lost device is [`Error::DeviceLost`]).
    #[error("reading back {what} failed: {message}")]
    Readback {
        /// What was being read back.
        what: String,
        /// wgpu's message.
        message: String,
    },

    /// The device was lost (destroyed, reset, or its driver failed); no later call on the same
    /// context can succeed.
    #[error("the GPU device was lost ({message}); create a new Context, and if it keeps happening check the driver")]
    DeviceLost {
        /// What wgpu said.
        message: String,
    },

    /// A tensor made by one context was given to another.
    #[error("a tensor from another device was given to this context")]
    ForeignTensor,

    /// A setting (an environment variable or an option) with a value convgrad does not know.
    #[error("unknown {what} {got:?}; expected {expected}")]
    InvalidOption {
        /// Which setting.
        what: &'static str,
        /// The value given.
        got: String,
        /// The values it takes.
        expected: &'static str,
    },

    /// A kernel's generated WGSL does not match its template (a bug in convgrad: please report it).
    #[error("generated WGSL for {kernel} does not match its template: {message}")]
    Template {
        /// The kernel.
        kernel: &'static str,
        /// Which marker.
        message: String,
    },

    /// [`Padding::Same`](crate::Padding::Same) on a strided layer, whose output cannot have the
    /// input's size.
    #[error(
        "padding 'same' needs stride 1 (as in PyTorch), got stride {sh},{sw}; give the padding per side \
         (Conv2dParams::padding_sides) instead"
    )]
    SameNeedsStrideOne {
        /// The stride along the height.
        sh: usize,
        /// The stride along the width.
        sw: usize,
    },

    /// A transposed convolution's output padding that is not smaller than the stride or the
    /// dilation (PyTorch's rule: it only chooses among the output sizes one input size can come from).
    #[error("output padding {value} along {axis} must be smaller than the stride {stride} or the dilation {dilation}")]
    OutputPadding {
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// The output padding given.
        value: usize,
        /// The stride along the axis.
        stride: usize,
        /// The dilation along the axis.
        dilation: usize,
    },

    /// A transposed convolution whose padding removes its whole output along an axis.
    #[error(
        "transposed convolution output along {axis} is empty: (input {input} − 1)·stride {stride} + \
         dilation {dilation}·(kernel {kernel} − 1) + output padding {output_padding} + 1 − padding {padding} \
         is below 1"
    )]
    EmptyTransposedOutput {
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// Input size along the axis.
        input: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Dilation.
        dilation: usize,
        /// Padding, both sides together.
        padding: usize,
        /// Output padding.
        output_padding: usize,
    },

    /// A caller's buffer given to [`Context::wrap`](crate::Context::wrap) whose size does not hold
    /// exactly the tensor's elements.
    #[error("a buffer of {got} bytes cannot hold a tensor of shape {shape:?}, which needs exactly {needed} bytes")]
    BufferSize {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// `4 ·` its element count.
        needed: u64,
        /// The buffer's size.
        got: u64,
    },

    /// A caller's buffer given to [`Context::wrap`](crate::Context::wrap) without the usages the
    /// operations need.
    #[error("the buffer lacks usage {missing}; create it with STORAGE | COPY_SRC | COPY_DST (it has {has})")]
    BufferUsage {
        /// The flags it lacks.
        missing: String,
        /// The flags it has.
        has: String,
    },

    /// A forced [`Strategy`](crate::plan::Strategy) whose algorithm cannot run this layer.
    #[error("{op} of {layer}: the forced algorithm {algorithm} cannot run it: {reason}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The layer, as [`Conv2dGeometry::describe`](crate::Conv2dGeometry::describe) gives it.
        layer: String,
        /// The algorithm that was forced.
        algorithm: &'static str,
        /// Why it cannot.
        reason: &'static str,
    },

    /// Tuning found no usable plan: every candidate failed or gave a result outside the error bound.
    #[error("tuning {layer}: no candidate is usable ({candidates})")]
    Tuning {
        /// The layer and operation.
        layer: String,
        /// Each candidate's plan and why it is out.
        candidates: String,
    },

    /// A file could not be written or read.
    #[error("{what}: {message}")]
    Io {
        /// The file and what was being done.
        what: String,
        /// The system's message.
        message: String,
    },

    /// Tensors whose element types do not go together: operands of different dtypes, an output in a
    /// dtype the operation does not write, or a half-precision path the adapter does not offer.
    #[error("{what}: expected {expected}, got {got}")]
    DType {
        /// The tensor or setting.
        what: String,
        /// What the operation accepts there.
        expected: String,
        /// What it was given.
        got: String,
    },

    /// A batch cut into shards that do not hold whole chunks of the canonical reduction.
    #[error("sharding the batch: {message}")]
    Sharding {
        /// What is wrong.
        message: String,
    },

    /// A data-parallel peer disagreed or failed: another device's thread, or another MPI rank.
    #[error("data-parallel peer {peer}: {message}")]
    Peer {
        /// The device index or rank.
        peer: usize,
        /// What it reported, or what went wrong with it.
        message: String,
    },
}

/// `Result` with [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(what: impl Into<String>, expected: impl Into<String>, got: impl Into<String>) -> Self {
        Error::ShapeMismatch { what: what.into(), expected: expected.into(), got: got.into() }
    }
}

/// An error's message followed by its sources: wgpu's top-level messages ("Validation Error") say
/// little on their own.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_send_sync_static() {
        fn check<E: std::error::Error + Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn kernel_too_large_names_the_numbers() {
        let e = Error::KernelTooLarge {
            axis: "height",
            kernel: 5,
            dilation: 2,
            extent: 9,
            input: 4,
            padding: 1,
            padded: 6,
        };
        let m = e.to_string();
        assert!(m.contains('9') && m.contains('6') && m.contains("height"), "{m}");
    }
}
