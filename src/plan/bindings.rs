//! What each pass of an operation binds, and the invariant that keeps it within the device: **no pass
//! binds more than `max_storage_buffer_binding_size`, for any dtype, batch or chunking.** Pure
//! functions, no device; the encoders (`src/gpu/batch.rs`, `src/gpu/half.rs`) take their windows
//! and ranges from here, and every operation checks its passes with [`check_chunked`] before it
//! records any, so a layer the device cannot bind is an [`Error::DeviceLimit`] naming the pass at
//! planning time rather than a failed dispatch.
//!
//! Three kinds of pass bind buffers whose size is not one batch chunk's by construction:
//! - the widening of a 16-bit operand and the narrowing of a 16-bit result convert one chunk's run
//!   of elements, but the 16-bit tensor is the whole batch: where it is larger than a binding, the
//!   run's words are copied into a window of their own ([`half_window`]) and converted there (and,
//!   for a result, copied back, the run's end words keeping their other halves);
//! - the sum of the per-chunk partials of a reduction over the batch (the weight and bias gradients)
//!   reads `chunks × len` floats: where that is larger than a binding, the elements are summed in
//!   ranges ([`sum_ranges`]), each range's partials in a buffer of their own, each element's chunks
//!   added in the same order, so the bits do not depend on the ranges;
//! - a cast converts a whole tensor: it runs in pieces ([`cast_runs`]).

use std::ops::Range;

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::geometry::Conv2dGeometry;
use crate::plan::{AdapterProfile, Op};

/// One pass's largest binding in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The pass (kernel) and which of its buffers.
    pub pass: String,
    /// Bytes bound.
    pub bytes: u64,
}

/// The words of a 16-bit tensor that hold its elements `[off, off + len)` (two to a word).
#[must_use]
pub fn words_of(off: usize, len: usize) -> Range<usize> {
    off / 2..(off + len).div_ceil(2)
}

/// How a pass converting the 16-bit elements `[off, off + len)` of a tensor of `total` elements
/// binds it: `None`, the tensor itself (it fits one binding); `Some(words)`, a window holding just
/// those words, copied in (and back, for a result). The window's first element is element
/// `off − 2·words.start` of the window.
#[must_use]
pub fn half_window(total: usize, off: usize, len: usize, limit: u64) -> Option<Range<usize>> {
    if Elem::F16.buffer_bytes(total) <= limit { None } else { Some(words_of(off, len)) }
}

/// An error unless a binding of `bytes`, named `what`, fits a binding limit of `limit` bytes.
///
/// # Errors
/// [`Error::DeviceLimit`] naming it.
pub fn fits(what: &str, bytes: u64, limit: u64) -> Result<()> {
    if bytes > limit {
        return Err(Error::DeviceLimit {
            what: format!("{what} (a binding of {bytes} bytes)"),
            needed: bytes,
            limit,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    Ok(())
}

/// The element ranges in which the sum of `chunks` partials of `len` elements each is added, so that
/// each range's `chunks × range` floats fit a binding of `limit` bytes: one range, all of `len`,
/// where they fit together.
///
/// # Errors
/// [`Error::DeviceLimit`] when not even one element's partials fit.
pub fn sum_ranges(chunks: usize, len: usize, limit: u64) -> Result<Vec<Range<usize>>> {
    let per = usize::try_from(limit / 4).unwrap_or(usize::MAX) / chunks.max(1);
    if per == 0 {
        return Err(Error::DeviceLimit {
            what: format!("split_sum: the partials of {chunks} batch chunks for one element"),
            needed: (chunks as u64).saturating_mul(4),
            limit,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    Ok((0..len.max(1)).step_by(per).map(|a| a..(a + per).min(len)).filter(|r| !r.is_empty()).collect())
}

/// The pieces a cast of `len` elements runs in: an even number of elements each (so a piece starts
/// on a word of a 16-bit tensor), few enough that the piece's `f32`s fit a binding of `limit` bytes.
#[must_use]
pub fn cast_runs(len: usize, limit: u64) -> Vec<Range<usize>> {
    let per = (usize::try_from(limit / 4).unwrap_or(usize::MAX) & !1).max(2);
    (0..len).step_by(per).map(|a| a..(a + per).min(len)).collect()
}

/// The widest binding of a chunked operation's passes besides its kernels: a batch of `n` samples in
/// chunks of `nb`, `per` elements per sample in each 16-bit operand and output (`halves`: the
/// element counts per sample of the 16-bit tensors the operation converts), and, for a reduction
/// over the batch, `reduce` elements summed over the chunks. The kernels' own bindings are
/// `nb × per_sample` `f32`s, within the limit by the choice of `nb` ([`super::batch_chunk`]).
#[must_use]
pub fn chunked_passes(
    n: usize,
    nb: usize,
    halves: &[(&str, usize)],
    reduce: Option<usize>,
    limit: u64,
) -> Vec<Binding> {
    let mut out = Vec::new();
    let nb = nb.clamp(1, n.max(1));
    for &(name, per) in halves {
        // Every chunk's run; the widest is a full chunk's, the window at most one word longer.
        let mut widest = 0u64;
        for n0 in (0..n).step_by(nb) {
            let len = nb.min(n - n0) * per;
            let bound = match half_window(n * per, n0 * per, len, limit) {
                None => Elem::F16.buffer_bytes(n * per),
                Some(words) => 4 * words.len() as u64,
            };
            widest = widest.max(bound).max(4 * len as u64);
        }
        out.push(Binding { pass: format!("widen/narrow of {name}"), bytes: widest });
    }
    let chunks = n.div_ceil(nb);
    if let Some(len) = reduce.filter(|_| chunks > 1) {
        let bytes = match sum_ranges(chunks, len, limit) {
            Ok(ranges) => ranges.iter().map(|r| 4 * (chunks * r.len()) as u64).max().unwrap_or(0),
            Err(_) => 4 * chunks as u64,
        };
        out.push(Binding { pass: "split_sum of the chunks' partials".into(), bytes });
    }
    out
}

/// Checks [`chunked_passes`] against the profile's binding limit.
///
/// # Errors
/// [`Error::DeviceLimit`] naming the first pass that binds more.
pub fn check_chunked(
    layer: &str,
    n: usize,
    nb: usize,
    halves: &[(&str, usize)],
    reduce: Option<usize>,
    profile: &AdapterProfile,
) -> Result<()> {
    let limit = profile.max_binding_bytes;
    for b in chunked_passes(n, nb, halves, reduce, limit) {
        if b.bytes > limit {
            return Err(Error::DeviceLimit {
                what: format!("{} of {layer}", b.pass),
                needed: b.bytes,
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
    }
    Ok(())
}

/// The 16-bit tensors `op` converts on `geo` (NCHW) with operands of `elem` (none in `f32`), as
/// (name, elements per sample), and the elements of its reduction over the batch. Operands read in
/// place (`in_place`, the GEMM route) are not converted: only a 16-bit result is, narrowed from `f32`.
#[must_use]
pub fn converted(
    op: Op,
    geo: &Conv2dGeometry,
    elem: Elem,
    in_place: bool,
) -> (Vec<(&'static str, usize)>, Option<usize>) {
    let (x, y) = (geo.c * geo.h * geo.w, geo.k * geo.p * geo.q);
    let dw = geo.k * geo.channels_per_group() * geo.s * geo.t;
    let (inputs, output, reduce) = match op {
        Op::Forward => (vec![("X", x)], Some(("Y", y)), None),
        Op::WeightGrad => (vec![("X", x), ("dY", y)], None, Some(dw)),
        Op::InputGrad => (vec![("dY", y)], Some(("dX", x)), None),
    };
    if !elem.is_half() {
        return (Vec::new(), reduce);
    }
    let inputs = if in_place { Vec::new() } else { inputs };
    (inputs.into_iter().chain(output).collect(), reduce)
}

/// Checks every pass of `op` on `geo` (NCHW) whose bindings are not its kernels' own: the batch in
/// chunks of `per_sample` `f32`s per sample (the plan's, or the in-place route's), the 16-bit
/// conversions and the sum of the chunks' partials ([`check_chunked`]). Returns the chunk size.
///
/// # Errors
/// [`Error::DeviceLimit`]: one sample beyond a binding, or the pass that would bind more.
pub fn check_op(
    op: Op,
    geo: &Conv2dGeometry,
    elem: Elem,
    in_place: bool,
    per_sample: usize,
    profile: &AdapterProfile,
) -> Result<usize> {
    let nb = super::batch_chunk(geo, per_sample, profile)?;
    let (halves, reduce) = converted(op, geo, elem, in_place);
    check_chunked(&geo.describe(), geo.n, nb, &halves, reduce, profile)?;
    Ok(nb)
}

/// [`check_op`] for the bias gradient: dY of `ys` elements per sample, a sum of `geo.k` over the
/// batch. Returns the chunk size.
///
/// # Errors
/// As [`check_op`].
pub fn check_op_chunks(geo: &Conv2dGeometry, ys: usize, elem: Elem, profile: &AdapterProfile) -> Result<usize> {
    let nb = super::batch_chunk(geo, ys, profile)?;
    let halves: &[(&str, usize)] = if elem.is_half() { &[("dY", ys)] } else { &[] };
    check_chunked(&geo.describe(), geo.n, nb, halves, Some(geo.k), profile)?;
    Ok(nb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DeviceClass, Strategy, forward, input_grad, weight_grad};

    /// No pass of any op binds more than the limit: every edge layer of the sweep with its batch
    /// made 11 samples (so that it chunks), under limits from 2 KiB to 128 MiB, both profiles,
    /// every dtype and both routes: the kernels' `nb × per_sample` `f32`s and every conversion and
    /// sum pass within the limit, wherever one sample fits at all.
    #[test]
    fn no_pass_of_a_chunking_layer_binds_more_than_the_limit() {
        let mut checked = 0;
        for limit in [2048u64, 4096, 16 << 10, 1 << 20, 128 << 20] {
            for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
                let profile = AdapterProfile::new(true, Some((8, 8)), limit, Some(class));
                for (label, (_, c, hw, k, st, params)) in crate::verify::edge_layers() {
                    let Ok(geo) = Conv2dGeometry::new(11, c, hw, k, st, params) else { continue };
                    let geo = geo.nchw();
                    for op in Op::ALL {
                        let per_sample = match op {
                            Op::Forward => forward(&geo, &profile, Strategy::Auto).map(|p| p.per_sample(&geo)),
                            Op::WeightGrad => weight_grad(&geo, &profile, Strategy::Auto).map(|p| p.per_sample(&geo)),
                            Op::InputGrad => input_grad(&geo, &profile, Strategy::Auto).map(|p| p.per_sample(&geo)),
                        };
                        let Ok(per_sample) = per_sample else { continue };
                        for elem in [Elem::F32, Elem::F16, Elem::Bf16] {
                            for in_place in [false, true] {
                                let per = if in_place {
                                    super::super::gemm_sample_bytes(op, &geo, elem).div_ceil(4)
                                } else {
                                    per_sample
                                };
                                let case =
                                    format!("{label} {} {op:?} {elem} {class:?} {limit} {in_place}", geo.describe());
                                let Ok(nb) = super::super::batch_chunk(&geo, per, &profile) else { continue };
                                assert!(4 * (nb * per) as u64 <= limit, "{case}: kernels");
                                let (halves, reduce) = converted(op, &geo, elem, in_place);
                                for b in chunked_passes(geo.n, nb, &halves, reduce, limit) {
                                    assert!(b.bytes <= limit, "{case}: {} binds {} bytes", b.pass, b.bytes);
                                }
                                check_op(op, &geo, elem, in_place, per, &profile).unwrap();
                                checked += usize::from(nb < geo.n);
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "only {checked} chunked cases");
    }

    /// Before the windows and ranges, these were the passes that bound too much: the probe's
    /// 11×3×7×7 f16 input (1,617 halves) widened whole under 2 KiB, and 11 chunks of 81-element
    /// partials summed in one binding. The check names each pass where a window or range is missing.
    #[test]
    fn the_probes_passes_fit_with_windows_and_ranges() {
        let passes = chunked_passes(11, 2, &[("X", 147)], Some(81), 2048);
        assert_eq!(passes.len(), 2);
        assert!(passes.iter().all(|b| b.bytes <= 2048), "{passes:?}");
        // Whole, they would not: the tensor and the partials.
        assert!(Elem::F16.buffer_bytes(11 * 147) > 2048 && 4 * 11 * 81 > 2048);
    }

    #[test]
    fn windows_hold_the_words_of_the_run_and_only_where_the_tensor_does_not_fit() {
        assert_eq!(words_of(0, 4), 0..2);
        assert_eq!(words_of(3, 4), 1..4, "elements 3..7 start and end mid-word");
        assert_eq!(words_of(147, 147), 73..147);
        // 1,617 halves (809 words, 3,236 bytes) in a 2 KiB binding: windowed; in 4 KiB: whole.
        assert_eq!(half_window(1617, 441, 441, 2048), Some(220..441));
        assert_eq!(half_window(1617, 441, 441, 4096), None);
    }

    #[test]
    fn sum_ranges_cover_the_elements_and_each_fits() {
        // The probe's case: 11 chunks of 81 elements (3,564 bytes) in 2 KiB: ranges of 46.
        let r = sum_ranges(11, 81, 2048).unwrap();
        assert_eq!(r, [0..46, 46..81]);
        assert_eq!(sum_ranges(4, 81, 2048).unwrap(), vec![0..81], "fits whole");
        assert!(matches!(sum_ranges(600, 3, 2048), Err(Error::DeviceLimit { .. })));
        for chunks in 1..40 {
            for len in 1..200 {
                for limit in [64u64, 256, 2048] {
                    let Ok(r) = sum_ranges(chunks, len, limit) else { continue };
                    assert_eq!(r.first().unwrap().start, 0);
                    assert_eq!(r.last().unwrap().end, len);
                    assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                    assert!(r.iter().all(|x| 4 * (chunks * x.len()) as u64 <= limit));
                }
            }
        }
    }

    #[test]
    fn cast_runs_are_even_and_fit() {
        assert_eq!(cast_runs(5, 8), [0..2, 2..4, 4..5]);
        assert_eq!(cast_runs(1000, 2048), [0..512, 512..1000]);
        for len in 0..300 {
            let r = cast_runs(len, 100);
            assert_eq!(r.iter().map(ExactSizeIterator::len).sum::<usize>(), len);
            assert!(r.iter().all(|x| x.start % 2 == 0 && 4 * x.len() as u64 <= 100));
        }
    }
}
