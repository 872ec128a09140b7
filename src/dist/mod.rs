//! Data parallelism: the weight and bias gradients of a batch spread over several devices, in one
//! process ([`DataParallel`], a thread per device) or over MPI ranks (`mpi`, behind the cargo feature
//! of that name), bitwise the same for any number of devices or ranks.
//!
//! Every member (a device's thread, a rank) runs the same protocol ([`reduce`]) over a [`Group`], a
//! variable-length all-gather:
//! 1. the members agree on the layer, the batch, the chunk size and the shards (each member's run of
//!    whole chunks, in member order); any difference is an error on every member, before any work;
//! 2. each computes the partial of each of its chunks (a leaf: `dW` then `dB`, flattened, from the
//!    fixed-order kernels run on that chunk alone) and the values of the tree nodes its run owns
//!    ([`crate::plan::reduce`]);
//! 3. one all-gather carries each member's node values, or its error, which every member then returns
//!    (naming the member), so a failing member stops the others with its message;
//! 4. each evaluates the top of the tree from the gathered nodes on the host, in the same order.
//!
//! A member sends `(nodes it owns) × (|dW| + |dB|)` floats per layer, `O(log chunks)` nodes.

#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
pub mod mpi;

use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use ndarray::{Array1, Array4, ArrayView4, Axis, s};

use crate::error::{Error, Result};
use crate::geometry::Conv2dParams;
use crate::gpu::Context;
use crate::plan::Op;
use crate::plan::reduce::{Chunks, Node, add_into, evaluate, root, shard_nodes};
use crate::tune::LayerKey;

/// The members of a data-parallel run, and the one collective the protocol needs.
pub trait Group {
    /// This member's index, from 0.
    fn rank(&self) -> usize;
    /// How many members.
    fn size(&self) -> usize;
    /// Every member's `mine`, in member order (each member calls it with its own bytes, which may
    /// differ in length).
    ///
    /// # Errors
    /// The transport's.
    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;
}

/// A group of threads in one process: what [`DataParallel`] runs on, and how the protocol is tested
/// without MPI. [`LocalGroup::new`] makes all the members; each goes to its own thread.
///
/// A member whose thread panics while it holds its `LocalGroup` leaves the group as it unwinds: every
/// member waiting in an exchange, or arriving at one later, gets an [`Error::Peer`] naming it, so no
/// member waits for an answer that will never come.
#[derive(Debug, Clone)]
pub struct LocalGroup {
    rank: usize,
    shared: Arc<Exchange>,
}

/// The members' meeting point: a barrier that a departed member breaks, and the gathered slots.
#[derive(Debug)]
struct Exchange {
    state: Mutex<ExchangeState>,
    changed: Condvar,
}

#[derive(Debug)]
struct ExchangeState {
    size: usize,
    /// Members waiting at the barrier of the current generation.
    arrived: usize,
    /// Completed barriers.
    generation: u64,
    slots: Vec<Vec<u8>>,
    /// The first member that left the group, and why.
    departed: Option<(usize, String)>,
}

impl Exchange {
    fn lock(&self) -> std::sync::MutexGuard<'_, ExchangeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every member has arrived; an error as soon as some member has left instead.
    fn barrier(&self) -> Result<()> {
        let mut st = self.lock();
        let departed = |st: &ExchangeState| st.departed.clone().map(|(peer, message)| Error::Peer { peer, message });
        if let Some(e) = departed(&st) {
            return Err(e);
        }
        st.arrived += 1;
        if st.arrived == st.size {
            st.arrived = 0;
            st.generation += 1;
            self.changed.notify_all();
            return Ok(());
        }
        let generation = st.generation;
        while st.generation == generation && st.departed.is_none() {
            st = self.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if st.generation != generation {
            return Ok(());
        }
        Err(departed(&st).unwrap_or(Error::Peer { peer: 0, message: "left the group".into() }))
    }
}

impl LocalGroup {
    /// `size` members, in rank order.
    #[must_use]
    pub fn new(size: usize) -> Vec<LocalGroup> {
        let size = size.max(1);
        let state = ExchangeState { size, arrived: 0, generation: 0, slots: vec![Vec::new(); size], departed: None };
        let shared = Arc::new(Exchange { state: Mutex::new(state), changed: Condvar::new() });
        (0..size).map(|rank| LocalGroup { rank, shared: shared.clone() }).collect()
    }

    /// Takes this member out of the group: every exchange of the others, now or later, fails with
    /// an [`Error::Peer`] naming it and `why`. What dropping a member during a panic does.
    pub fn leave(&self, why: &str) {
        let mut st = self.shared.lock();
        st.departed.get_or_insert((self.rank, why.to_string()));
        self.shared.changed.notify_all();
    }
}

impl Drop for LocalGroup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.leave("its thread panicked");
        }
    }
}

impl Group for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.lock().size
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        // Everyone has read the last gather before anyone writes this one, and written before anyone reads.
        self.shared.barrier()?;
        self.shared.lock().slots[self.rank] = mine.to_vec();
        self.shared.barrier()?;
        Ok(self.shared.lock().slots.clone())
    }
}

/// What a member says about the run in step 1: a line all must agree on (`layer`, the batch, the
/// chunk size and `len`), then its run of samples.
fn agreement(layer: &str, chunks: Chunks, samples: &Range<usize>, len: usize) -> String {
    format!("{layer}; batch {}; chunk {}; len {len}\n{} {}", chunks.batch, chunks.chunk, samples.start, samples.end)
}

/// Marks a statement of step 1 that is an error rather than an agreement.
const FAILED: &str = "failed: ";

/// Takes a member that failed before [`reduce`] out of the run: it makes step 1's exchange with
/// `error` in place of its statement, so the others stop there with its message (an error naming
/// it) instead of waiting for it. Returns `error`, for the member to return.
pub fn abandon(group: &dyn Group, error: Error) -> Error {
    // The transport's own failure would say less than the error being reported.
    let _ = group.all_gather(format!("{FAILED}{error}").as_bytes());
    error
}

/// Checks step 1's statements: every member's against member 0's, and the runs in order. The same
/// answer on every member, since all see the same statements. Returns each member's run.
fn check_agreement(all: &[Vec<u8>], chunks: Chunks) -> Result<Vec<Range<usize>>> {
    let mut parsed = Vec::with_capacity(all.len());
    for (r, bytes) in all.iter().enumerate() {
        let text = String::from_utf8_lossy(bytes);
        if let Some(message) = text.strip_prefix(FAILED) {
            return Err(Error::Peer { peer: r, message: message.to_string() });
        }
        let unreadable = || Error::Peer { peer: r, message: format!("sent an unreadable statement {text:?}") };
        let (common, run) = text.split_once('\n').ok_or_else(unreadable)?;
        let (a, b) = run.split_once(' ').ok_or_else(unreadable)?;
        let (a, b) = (a.parse::<usize>().map_err(|_| unreadable())?, b.parse::<usize>().map_err(|_| unreadable())?);
        parsed.push((common.to_string(), a..b));
    }
    for (r, (common, _)) in parsed.iter().enumerate().skip(1) {
        if *common != parsed[0].0 {
            return Err(Error::Peer { peer: r, message: format!("runs {common} where member 0 runs {}", parsed[0].0) });
        }
    }
    let mut next = 0;
    for (r, (_, run)) in parsed.iter().enumerate() {
        if run.start != next {
            return Err(Error::Sharding {
                message: format!("member {r} holds samples {run:?}, but the previous member ended at {next}"),
            });
        }
        chunks.chunks_of(run.clone()).map_err(|e| Error::Sharding { message: format!("member {r}: {e}") })?;
        next = run.end;
    }
    if next != chunks.batch {
        return Err(Error::Sharding {
            message: format!("the members hold samples 0..{next} of a batch of {}", chunks.batch),
        });
    }
    Ok(parsed.into_iter().map(|(_, run)| run).collect())
}

/// The canonical sum over the batch of per-chunk vectors of `len` floats, on every member of `group`.
/// This member holds the samples `samples` of a batch cut into `chunks`; `leaf(c)` computes the vector
/// of its chunk `c` (global index). `layer` names what is being reduced (the layer and the op, say):
/// members that disagree on it, on the batch, the chunk size or `len`, or whose runs do not follow one
/// another in member order over the batch, fail on every member before any `leaf` runs. The result is
/// bitwise the same for any group size and any cut into whole chunks.
///
/// # Errors
/// [`Error::Peer`] naming a member that disagrees or whose `leaf` failed (the failing member returns
/// its own error), [`Error::Sharding`] for runs that are not whole chunks in order, the transport's.
pub fn reduce(
    group: &dyn Group,
    layer: &str,
    chunks: Chunks,
    samples: Range<usize>,
    len: usize,
    mut leaf: impl FnMut(usize) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    let n = chunks.count();
    let all = group.all_gather(agreement(layer, chunks, &samples, len).as_bytes())?;
    let runs = check_agreement(&all, chunks)?;
    let mine = chunks.chunks_of(samples)?;
    // Step 2: this member's nodes, each from its own leaves.
    let computed = (|| -> Result<Vec<f32>> {
        let mut leaves: Vec<Option<Vec<f32>>> = vec![None; mine.len()];
        for (slot, c) in leaves.iter_mut().zip(mine.clone()) {
            let v = leaf(c)?;
            if v.len() != len {
                return Err(Error::shape(format!("the partial of chunk {c}"), len.to_string(), v.len().to_string()));
            }
            *slot = Some(v);
        }
        let mut out = Vec::new();
        for node in shard_nodes(n, mine.clone()) {
            let mut known = |m: Node| if m.level == 0 { leaves[m.index - mine.start].take() } else { None };
            out.extend(evaluate(n, node, &mut known, &mut add_into).unwrap_or_default());
        }
        Ok(out)
    })();
    // Step 3: values or the error, from everyone.
    let message = match &computed {
        Ok(values) => std::iter::once(0u8).chain(values.iter().flat_map(|v| v.to_le_bytes())).collect::<Vec<u8>>(),
        Err(e) => std::iter::once(1u8).chain(e.to_string().into_bytes()).collect(),
    };
    let gathered = group.all_gather(&message)?;
    computed?;
    let mut nodes = std::collections::HashMap::new();
    for (r, (bytes, run)) in gathered.iter().zip(&runs).enumerate() {
        match bytes.split_first() {
            Some((0, floats)) => {
                let owned = shard_nodes(n, chunks.chunks_of(run.clone())?);
                let values: Vec<f32> =
                    floats.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                if values.len() != owned.len() * len {
                    return Err(Error::Peer {
                        peer: r,
                        message: format!("sent {} values for {} nodes of {len}", values.len(), owned.len()),
                    });
                }
                for (node, v) in owned.into_iter().zip(values.chunks_exact(len.max(1))) {
                    nodes.insert(node, v.to_vec());
                }
            }
            Some((_, text)) => {
                return Err(Error::Peer { peer: r, message: String::from_utf8_lossy(text).into_owned() });
            }
            None => return Err(Error::Peer { peer: r, message: "sent nothing".into() }),
        }
    }
    // Step 4: the top of the tree.
    let mut known = |m: Node| nodes.get(&m).cloned();
    evaluate(n, root(n), &mut known, &mut add_into)
        .ok_or_else(|| Error::Sharding { message: "the members' nodes do not cover the batch".into() })
}

/// The weight and bias gradients of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// `dW`, `[K, C/G, S, T]` (`[K, S, T, C/G]` in NHWC).
    pub dw: Array4<f32>,
    /// `dB`, `[K]`.
    pub db: Array1<f32>,
}

/// One chunk's leaf: `dW` then `dB` of the samples in `x` and `dy` alone, flattened.
///
/// # Errors
/// The operations'.
pub fn chunk_partial(
    ctx: &Context,
    x: ArrayView4<'_, f32>,
    dy: ArrayView4<'_, f32>,
    kernel: [usize; 2],
    params: &Conv2dParams,
) -> Result<Vec<f32>> {
    let (xt, dyt) = (ctx.upload(x)?, ctx.upload(dy)?);
    let dw = ctx.download::<ndarray::Ix4>(&ctx.weight_grad(&xt, &dyt, kernel, params)?)?;
    let db = ctx.download::<ndarray::Ix1>(&ctx.bias_grad(&dyt, params.layout)?)?;
    Ok(dw.iter().chain(db.iter()).copied().collect())
}

/// A member's share of a batch: the batch's chunks, and the samples the member holds (whole chunks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The whole batch, cut into chunks.
    pub chunks: Chunks,
    /// The member's samples.
    pub samples: Range<usize>,
}

/// The gradients of this member's share of a batch, reduced canonically over `group`: `x` and `dy`
/// hold the samples `share.samples` of the batch (in `params.layout`, batch first). Every member
/// ends with the same gradients, bitwise the same for any group size.
///
/// # Errors
/// As [`reduce`], and the operations'.
pub fn gradients(
    ctx: &Context,
    group: &dyn Group,
    x: ArrayView4<'_, f32>,
    dy: ArrayView4<'_, f32>,
    kernel: [usize; 2],
    params: &Conv2dParams,
    share: &Share,
) -> Result<Gradients> {
    let (chunks, samples) = (share.chunks, share.samples.clone());
    let setup = (|| {
        if x.shape()[0] != samples.len() || dy.shape()[0] != samples.len() {
            return Err(Error::shape(
                "the member's samples",
                format!("{} samples in X and dY", samples.len()),
                format!("{} and {}", x.shape()[0], dy.shape()[0]),
            ));
        }
        let whole = |a: &ArrayView4<'_, f32>| [chunks.batch, a.shape()[1], a.shape()[2], a.shape()[3]];
        params.geometry_for_weight_grad(whole(&x), whole(&dy), kernel)
    })();
    let geo = setup.map_err(|e| abandon(group, e))?;
    let (dw_dims, k) = (geo.weight_shape(), geo.k);
    let len = dw_dims.iter().product::<usize>() + k;
    let layer = format!("weight and bias gradients of {}", LayerKey::new(Op::WeightGrad, &geo));
    let start = samples.start;
    let sum = reduce(group, &layer, chunks, samples, len, |c| {
        let r = chunks.samples(c);
        let local = r.start - start..r.end - start;
        chunk_partial(ctx, x.slice(s![local.clone(), .., .., ..]), dy.slice(s![local, .., .., ..]), kernel, params)
    })?;
    let (dw, db) = sum.split_at(len - k);
    let dw = Array4::from_shape_vec(dw_dims, dw.to_vec())
        .map_err(|e| Error::shape("dW", format!("{dw_dims:?}"), e.to_string()))?;
    Ok(Gradients { dw, db: Array1::from(db.to_vec()) })
}

/// Data parallelism in one process: a batch's weight and bias gradients spread over several contexts
/// (several adapters, or several contexts on one), a thread each, reduced canonically in chunks of
/// `chunk` samples: bitwise the same result for any number of contexts, one included.
#[derive(Debug)]
pub struct DataParallel {
    contexts: Vec<Context>,
    chunk: usize,
}

impl DataParallel {
    /// Over `contexts`, in chunks of `chunk` samples.
    ///
    /// # Errors
    /// [`Error::ZeroDimension`] for no contexts or a zero chunk.
    pub fn new(contexts: Vec<Context>, chunk: usize) -> Result<Self> {
        if contexts.is_empty() {
            return Err(Error::ZeroDimension { what: "contexts" });
        }
        if chunk == 0 {
            return Err(Error::ZeroDimension { what: "chunk size" });
        }
        Ok(Self { contexts, chunk })
    }

    /// The contexts.
    #[must_use]
    pub fn contexts(&self) -> &[Context] {
        &self.contexts
    }

    /// `dW` and `dB` of the batch `x`, `dy` (host arrays in `params.layout`), the batch cut evenly in
    /// whole chunks over the contexts.
    ///
    /// # Errors
    /// Shapes, and what a context's operations returned (naming the context).
    pub fn gradients(
        &self,
        x: ArrayView4<'_, f32>,
        dy: ArrayView4<'_, f32>,
        kernel: [usize; 2],
        params: &Conv2dParams,
    ) -> Result<Gradients> {
        let chunks = Chunks::new(x.len_of(Axis(0)), self.chunk)?;
        if dy.len_of(Axis(0)) != chunks.batch {
            return Err(Error::shape("the batch of dY", chunks.batch.to_string(), dy.len_of(Axis(0)).to_string()));
        }
        let shards = chunks.even_shards(self.contexts.len());
        let groups = LocalGroup::new(self.contexts.len());
        let results: Vec<Result<Gradients>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .contexts
                .iter()
                .zip(groups)
                .zip(shards)
                .map(|((ctx, group), run)| {
                    let (xs, dys) = (x.slice(s![run.clone(), .., .., ..]), dy.slice(s![run.clone(), .., .., ..]));
                    scope
                        .spawn(move || gradients(ctx, &group, xs, dys, kernel, params, &Share { chunks, samples: run }))
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(i, h)| {
                    h.join().unwrap_or_else(|_| Err(Error::Peer { peer: i, message: "its thread panicked".into() }))
                })
                .collect()
        });
        // Every member ends with the same gradients (or the same error): the first is the answer.
        results.into_iter().next().unwrap_or(Err(Error::ZeroDimension { what: "contexts" }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f(group)` on `size` threads; each member's result, in rank order.
    /// Runs `f(group)` on `size` threads, each owning its member (so that a panicking one leaves the
    /// group as it unwinds); each member's result, in rank order.
    fn on_threads<T: Send>(size: usize, f: impl Fn(&LocalGroup) -> T + Sync) -> Vec<T> {
        on_threads_joined(size, f).into_iter().map(|r| r.expect("no member panics")).collect()
    }

    /// [`on_threads`], a panicking member's result `None`.
    fn on_threads_joined<T: Send>(size: usize, f: impl Fn(&LocalGroup) -> T + Sync) -> Vec<Option<T>> {
        let groups = LocalGroup::new(size);
        let f = &f;
        std::thread::scope(|s| {
            let hs: Vec<_> = groups.into_iter().map(|g| s.spawn(move || f(&g))).collect();
            hs.into_iter().map(|h| h.join().ok()).collect()
        })
    }

    /// A leaf of mixed magnitudes per chunk, a function of the chunk index alone.
    fn leaf(c: usize) -> Result<Vec<f32>> {
        Ok((0..5).map(|i| ((c * 7 + i * 3) % 11) as f32 * 10f32.powi((c % 5) as i32 - 2) - 3.3).collect())
    }

    #[test]
    fn any_member_count_gives_the_same_bits_as_one() {
        let chunks = Chunks::new(23, 2).unwrap();
        let one = on_threads(1, |g| reduce(g, "l", chunks, 0..23, 5, leaf)).remove(0).unwrap();
        for size in 2..=6 {
            let shards = chunks.even_shards(size);
            let all = on_threads(size, |g| reduce(g, "l", chunks, shards[g.rank()].clone(), 5, leaf));
            for got in all {
                let got = got.unwrap();
                assert!(got.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()), "{size} members");
            }
        }
    }

    #[test]
    fn a_member_with_another_layer_fails_every_member_before_any_work() {
        let chunks = Chunks::new(8, 2).unwrap();
        let shards = chunks.even_shards(3);
        let all = on_threads(3, |g| {
            let layer = if g.rank() == 2 { "X [3, 9, 9]" } else { "X [3, 8, 8]" };
            reduce(g, layer, chunks, shards[g.rank()].clone(), 5, |_| panic!("no work may run"))
        });
        for r in all {
            let e = r.unwrap_err();
            assert!(matches!(e, Error::Peer { peer: 2, .. }), "{e}");
            assert!(e.to_string().contains("X [3, 9, 9]"), "{e}");
        }
    }

    #[test]
    fn runs_that_are_not_whole_chunks_in_order_fail_every_member() {
        let chunks = Chunks::new(8, 2).unwrap();
        let all = on_threads(2, |g| {
            let run = if g.rank() == 0 { 0..3 } else { 3..8 };
            reduce(g, "l", chunks, run, 5, leaf)
        });
        for r in all {
            assert!(matches!(r, Err(Error::Sharding { .. })), "{r:?}");
        }
        let all = on_threads(2, |g| {
            let run = if g.rank() == 0 { 4..8 } else { 0..4 };
            reduce(g, "l", chunks, run, 5, leaf)
        });
        for r in all {
            assert!(matches!(r, Err(Error::Sharding { .. })), "{r:?}");
        }
    }

    #[test]
    fn a_member_that_fails_before_the_run_stops_the_others_at_once() {
        let chunks = Chunks::new(8, 2).unwrap();
        let shards = chunks.even_shards(3);
        let all = on_threads(3, |g| {
            if g.rank() == 0 {
                return Err(abandon(g, Error::ZeroDimension { what: "images" }));
            }
            reduce(g, "l", chunks, shards[g.rank()].clone(), 5, |_| panic!("no work may run"))
        });
        assert!(matches!(all[0], Err(Error::ZeroDimension { .. })));
        for r in &all[1..] {
            assert!(matches!(r, Err(Error::Peer { peer: 0, message }) if message.contains("images is zero")), "{r:?}");
        }
    }

    #[test]
    fn a_failing_member_stops_the_others_with_its_message() {
        let chunks = Chunks::new(8, 2).unwrap();
        let shards = chunks.even_shards(3);
        let all = on_threads(3, |g| {
            reduce(g, "l", chunks, shards[g.rank()].clone(), 5, |c| {
                if g.rank() == 1 {
                    Err(Error::Io { what: format!("chunk {c}"), message: "disk on fire".into() })
                } else {
                    leaf(c)
                }
            })
        });
        for (r, res) in all.into_iter().enumerate() {
            let e = res.unwrap_err();
            assert!(e.to_string().contains("disk on fire"), "member {r}: {e}");
            if r != 1 {
                assert!(matches!(e, Error::Peer { peer: 1, .. }), "member {r}: {e}");
            }
        }
    }

    /// A member that panics in its work, before the exchange of values: the others, waiting there,
    /// return an error naming it (this hung forever when the barrier could not be broken).
    #[test]
    fn a_member_that_panics_ends_every_members_call_with_an_error() {
        for (size, bad) in [(2, 0), (3, 1), (4, 3)] {
            let chunks = Chunks::new(8, 2).unwrap();
            let shards = chunks.even_shards(size);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let all = on_threads_joined(size, |g| {
                    reduce(g, "l", chunks, shards[g.rank()].clone(), 5, |c| {
                        assert!(g.rank() != bad, "member {bad} fails at chunk {c}");
                        leaf(c)
                    })
                });
                let _ = tx.send(all);
            });
            let all = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("every member returns");
            for (r, res) in all.into_iter().enumerate() {
                if r == bad {
                    assert!(res.is_none(), "member {r} panicked");
                    continue;
                }
                let e = res.expect("a member that did not panic returns").unwrap_err();
                assert!(matches!(&e, Error::Peer { peer, .. } if *peer == bad), "member {r}: {e}");
                assert!(e.to_string().contains("panicked"), "member {r}: {e}");
            }
        }
    }

    /// A member that panics before its first exchange, and one after the protocol is over: the first
    /// stops the others at their first exchange; the second disturbs nobody.
    #[test]
    fn a_panic_before_the_run_stops_the_others_and_one_after_it_does_not() {
        let chunks = Chunks::new(6, 2).unwrap();
        let shards = chunks.even_shards(3);
        let all = on_threads_joined(3, |g| {
            assert!(g.rank() != 2, "member 2 fails before the run");
            reduce(g, "l", chunks, shards[g.rank()].clone(), 5, leaf)
        });
        assert!(all[2].is_none());
        for r in &all[..2] {
            assert!(matches!(r, Some(Err(Error::Peer { peer: 2, .. }))), "{r:?}");
        }
        let all = on_threads_joined(3, |g| {
            let got = reduce(g, "l", chunks, shards[g.rank()].clone(), 5, leaf);
            assert!(g.rank() != 0, "member 0 fails after the run");
            got
        });
        assert!(all[0].is_none());
        for r in &all[1..] {
            assert!(matches!(r, Some(Ok(_))), "{r:?}");
        }
    }
}
