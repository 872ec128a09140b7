//! The key of a context's kept programs: what a program is built for, less the profile.

use crate::elem::Elem;
use crate::error::Result;
use crate::geometry::{Conv2dGeometry, ConvTranspose2dGeometry, Layout};
use crate::plan::program::{self, Program};
use crate::plan::{AdapterProfile, Op, Strategy};

/// What a program is built for, all of it but the adapter profile: an operation's request with the
/// strategy already resolved. A context keeps the programs it built by this key and the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ProgramKey {
    /// A convolution ([`crate::plan::conv`]): the op, the exact layer, whether the forward pass has a
    /// bias, the operands' and the result's dtypes, the strategy.
    Conv { op: Op, geo: Conv2dGeometry, bias: bool, elem: Elem, out: Elem, strategy: Strategy },
    /// A transposed convolution's `op` (its forward pass, weight or input gradient), built from the
    /// programs of the convolution it is computed as.
    Transposed { op: Op, geo: ConvTranspose2dGeometry, bias: bool, elem: Elem, out: Elem, strategy: Strategy },
    /// [`program::bias_grad`] of dY's dims in `layout`.
    BiasGrad { dims: [usize; 4], layout: Layout, elem: Elem, out: Elem },
    /// [`program::cast`] of `len` elements.
    Cast { len: usize, from: Elem, to: Elem },
}

impl ProgramKey {
    /// The program of this request on `profile`.
    ///
    /// # Errors
    /// The builder's: a forced strategy the layer cannot run, a sample beyond one binding, sizes
    /// beyond `u32`.
    pub(crate) fn build(&self, profile: &AdapterProfile) -> Result<Program> {
        match *self {
            Self::Conv { op: Op::Forward, geo, bias, elem, out, strategy } => {
                crate::plan::conv::forward(&geo, bias, elem, out, profile, strategy)
            }
            Self::Conv { op: Op::WeightGrad, geo, elem, out, strategy, .. } => {
                crate::plan::conv::weight_grad(&geo, elem, out, profile, strategy)
            }
            Self::Conv { op: Op::InputGrad, geo, elem, out, strategy, .. } => {
                crate::plan::conv::input_grad(&geo, elem, out, profile, strategy)
            }
            Self::Transposed { op: Op::Forward, geo, bias, elem, out, strategy } => {
                crate::plan::conv::transpose_forward(&geo, bias, elem, out, profile, strategy)
            }
            Self::Transposed { op: Op::WeightGrad, geo, elem, out, strategy, .. } => {
                crate::plan::conv::transpose_weight_grad(&geo, elem, out, profile, strategy)
            }
            Self::Transposed { op: Op::InputGrad, geo, elem, out, strategy, .. } => {
                crate::plan::conv::transpose_input_grad(&geo, elem, out, profile, strategy)
            }
            Self::BiasGrad { dims, layout, elem, out } => program::bias_grad(dims, layout, elem, out, profile),
            Self::Cast { len, from, to } => program::cast(len, from, to, profile.half, profile.max_binding_bytes),
        }
    }
}
