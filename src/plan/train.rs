//! The programs of the training-loop helpers: element-wise `a·x + b·y`, an activation and its
//! derivative, deterministic sums of squares (by blocks, and of a whole tensor in fixed-order
//! stages), and one step of Adam. Each binds its
//! tensors whole, as `f32`; their shapes are checked by the callers.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::geometry::u32_of;
use crate::plan::program::{Program, Slot, Step, View};
use crate::plan::uniform::{ActUniform, AdamUniform, ElemUniform, ReduceUniform};
use crate::plan::{AdapterProfile, loops};

/// Elements summed by one invocation of the first stage of a whole sum of squares.
pub const CHUNK: usize = 256;

/// The most values one invocation of `sum_squares.wgsl` sums: a block of `sum_squares_by`, or the
/// last stage of a whole sum. Within the loop budget of `plan::loops`.
pub const LAST_SUM: usize = 32_768;

/// `out = a·x + b·y` over `len` elements. Inputs: x, y; output: out.
///
/// # Errors
/// A length beyond `u32`; a tensor beyond one binding ([`Program::check`]).
pub fn axpby(len: usize, a: f32, b: f32, profile: &AdapterProfile) -> Result<Program> {
    let bytes = 4 * len as u64;
    let mut p = Program::new(format!("axpby of {len} elements"), vec![bytes, bytes], vec![bytes]);
    let u = ElemUniform::axpby(u32_of(len)?, a, b);
    let binds = vec![p.whole(Slot::Input(0)), p.whole(Slot::Input(1)), p.whole(Slot::Output(0))];
    p.pass("axpby", bytemuck::bytes_of(&u), binds, u.len, 0);
    p.check(profile.max_binding_bytes)?;
    Ok(p)
}

/// The activation as a pass of its own over `len` `f32` elements: `Y = act(Z)`, or with `grad`
/// `dZ = dY ⊙ act′(Z)`. Inputs: Z (and dY); output: Y (or dZ). A tensor beyond one binding is run
/// in windows that fit, each copied into temporaries and back (element-wise, so the same bits).
///
/// # Errors
/// Sizes beyond `u32`.
pub fn activation(len: usize, act: &Activation, grad: bool, profile: &AdapterProfile) -> Result<Program> {
    let bytes = 4 * len as u64;
    let (what, inputs) = if grad { ("derivative", vec![bytes, bytes]) } else { ("activation", vec![bytes]) };
    let mut p = Program::new(format!("{act} {what} of {len} elements"), inputs, vec![bytes]);
    let limit = profile.max_binding_bytes;
    let window = if bytes <= limit { len } else { ((limit / 4) as usize / 4 * 4).max(4) };
    let slots = if grad { vec![Slot::Input(0), Slot::Input(1)] } else { vec![Slot::Input(0)] };
    for start in (0..len).step_by(window.max(1)) {
        let n = window.min(len - start);
        let at = 4 * start as u64;
        let part = |p: &mut Program, slot: Slot| {
            if n == len {
                return p.whole(slot);
            }
            let t = p.temp("window of the tensor", 4 * n as u64);
            p.steps.push(Step::Copy { src: View { slot, at, len: t.len }, dst: t });
            t
        };
        let srcs: Vec<View> = slots.iter().map(|&s| part(&mut p, s)).collect();
        let out = if n == len { p.whole(Slot::Output(0)) } else { p.temp("window of the result", 4 * n as u64) };
        let u = ActUniform::new(u32_of(n)?, act, grad);
        let g = if grad { srcs[1] } else { p.whole(Slot::Unused) };
        p.pass("activate", bytemuck::bytes_of(&u), vec![srcs[0], g, out], u.len, 0);
        if n != len {
            p.steps.push(Step::Copy { src: out, dst: View { slot: Slot::Output(0), at, len: out.len } });
        }
    }
    p.check(limit)?;
    Ok(p)
}

/// The sums of squares of consecutive blocks of `block` of `len` elements (the last may be shorter),
/// one invocation a block. Input: x; output: `⌈len / block⌉` sums.
///
/// # Errors
/// A zero `block`; a `block` over [`LAST_SUM`] ([`Error::Unsupported`]: one invocation sums a block,
/// and a kernel loops at most that long); as [`axpby`].
pub fn sum_squares_by(len: usize, block: usize, profile: &AdapterProfile) -> Result<Program> {
    if block == 0 {
        return Err(Error::ZeroDimension { what: "block" });
    }
    if block > LAST_SUM {
        return Err(Error::Unsupported {
            op: "sum_squares_by",
            layer: format!("blocks of {block} elements (at most {LAST_SUM})"),
            algorithm: "block sums",
            reason: loops::OVER_BUDGET,
        });
    }
    let parts = len.div_ceil(block);
    let what = format!("sums of squares of {len} elements in blocks of {block}");
    let mut p = Program::new(what, vec![4 * len as u64], vec![4 * parts as u64]);
    p.block_sums(Slot::Input(0), len, block, true, Slot::Output(0))?;
    p.check(profile.max_binding_bytes)?;
    Ok(p)
}

/// `Σ x[e]²` over `len` elements in a fixed order: blocks of [`CHUNK`] squared and summed, the block
/// sums summed again in blocks of [`CHUNK`] while there are more than one invocation may add, then
/// all of them in order by one invocation. Input: x; output: one value.
///
/// # Errors
/// As [`axpby`].
pub fn sum_squares(len: usize, profile: &AdapterProfile) -> Result<Program> {
    let mut p = Program::new(format!("sum of squares of {len} elements"), vec![4 * len as u64], vec![4]);
    let (mut src, mut n, mut square) = (Slot::Input(0), len, true);
    while n > LAST_SUM || square {
        let parts = n.div_ceil(CHUNK);
        let sums = p.temp("block sums", 4 * parts as u64).slot;
        p.block_sums(src, n, CHUNK, square, sums)?;
        (src, n, square) = (sums, parts, false);
    }
    p.block_sums(src, n, n, false, Slot::Output(0))?;
    p.check(profile.max_binding_bytes)?;
    Ok(p)
}

/// One Adam step over `len` parameters (see [`AdamUniform::step`]). Input: the gradient; outputs,
/// read and written: the first and second moments, the parameters.
///
/// # Errors
/// As [`axpby`].
pub fn adam(len: usize, lr: f32, betas: [f32; 2], eps: f32, t: i32, profile: &AdapterProfile) -> Result<Program> {
    let bytes = 4 * len as u64;
    let mut p = Program::new(format!("Adam step {t} over {len} parameters"), vec![bytes], vec![bytes; 3]);
    let u = AdamUniform::step(u32_of(len)?, lr, betas, eps, t);
    let binds = [Slot::Input(0), Slot::Output(0), Slot::Output(1), Slot::Output(2)].map(|s| p.whole(s));
    p.pass("adam", bytemuck::bytes_of(&u), binds.into(), u.len, 0);
    p.check(profile.max_binding_bytes)?;
    Ok(p)
}

impl Program {
    /// `sum_squares.wgsl` over the `len` elements of `src` in blocks of `block` into `dst`.
    fn block_sums(&mut self, src: Slot, len: usize, block: usize, square: bool, dst: Slot) -> Result<()> {
        let parts = len.div_ceil(block);
        let u = ReduceUniform::blocks(u32_of(len)?, u32_of(block)?, square);
        let binds = vec![self.whole(src), self.whole(dst)];
        // One invocation loops over its block.
        self.pass("sum_squares", bytemuck::bytes_of(&u), binds, u32_of(parts)?, block + 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::program::{Step, Temp};

    fn profile(limit: u64) -> AdapterProfile {
        AdapterProfile::new(true, None, limit, None)
    }

    /// Each pass's kernel, invocations and loop count, and its bindings' slots.
    fn passes(p: &Program) -> Vec<(&'static str, u32, usize, Vec<Slot>)> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::Pass(q) => Some((q.kernel, q.invocations, q.trips, q.binds.iter().map(|v| v.slot).collect())),
                _ => None,
            })
            .collect()
    }

    /// The helpers' programs, pass by pass: one pass each for axpby, Adam and block sums; a whole sum
    /// in one stage of 256-element blocks and one final invocation, and a third stage only beyond
    /// 256 · 32,768 elements; blocks beyond the loop budget and tensors beyond a binding refused.
    #[test]
    fn training_helper_programs_table() {
        let big = profile(1 << 30);
        let (i0, i1, o0, t0, t1) = (Slot::Input(0), Slot::Input(1), Slot::Output(0), Slot::Temp(0), Slot::Temp(1));
        assert_eq!(passes(&axpby(10, 2.0, 3.0, &big).unwrap()), [("axpby", 10, 0, vec![i0, i1, o0])]);
        let p = adam(7, 1e-3, [0.9, 0.999], 1e-8, 1, &big).unwrap();
        assert_eq!(passes(&p), [("adam", 7, 0, vec![i0, o0, Slot::Output(1), Slot::Output(2)])]);
        assert_eq!(p.outputs, [28, 28, 28]);
        let p = sum_squares_by(1000, 300, &big).unwrap();
        assert_eq!(passes(&p), [("sum_squares", 4, 301, vec![i0, o0])]);
        assert_eq!(p.outputs, [16]);

        let p = sum_squares(1000, &big).unwrap();
        assert_eq!(passes(&p), [("sum_squares", 4, 257, vec![i0, t0]), ("sum_squares", 1, 5, vec![t0, o0])]);
        assert_eq!(p.temps, [Temp { what: "block sums", bytes: 16 }]);
        let n = CHUNK * LAST_SUM + 1;
        let p = sum_squares(n, &big).unwrap();
        let stages = [
            ("sum_squares", LAST_SUM as u32 + 1, 257, vec![i0, t0]),
            ("sum_squares", 129, 257, vec![t0, t1]),
            ("sum_squares", 1, 130, vec![t1, o0]),
        ];
        assert_eq!(passes(&p), stages);

        assert!(matches!(sum_squares_by(10, 0, &big), Err(Error::ZeroDimension { .. })));
        assert!(matches!(sum_squares_by(1 << 20, LAST_SUM + 1, &big), Err(Error::Unsupported { .. })));
        let e = axpby(1000, 1.0, 1.0, &profile(2048)).unwrap_err();
        assert!(matches!(e, Error::DeviceLimit { needed: 4000, limit: 2048, .. }), "{e}");
    }
}
