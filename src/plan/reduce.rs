//! The canonical reduction of the weight and bias gradients over a batch: the same bits however the
//! batch is spread over devices or ranks. Pure arithmetic, no device.
//!
//! The batch of `N` samples is cut into chunks of `chunk` samples (the last may be shorter), chunk
//! `c` holding samples `[c·chunk, min((c+1)·chunk, N))`. Each chunk's partial gradient is computed on
//! its own by the fixed-order kernels, so it depends on that chunk's samples alone. The partials are
//! added along one binary tree over the chunk indices: node `(level, index)` covers the chunks
//! `[index·2^level, min((index+1)·2^level, n))`, and its value is its left child's plus its right
//! child's, left first, or the left child's alone where the right covers no chunk. The root is
//! `(depth, 0)` with `2^depth ≥ n`.
//!
//! A shard (a device or a rank) owning the chunks `[a, b)` evaluates the largest nodes inside its
//! run ([`shard_nodes`]), from its own partials; the owners exchange those node values; every owner
//! then evaluates the rest of the tree from them ([`evaluate`]) in the same order. Every node's value
//! is a function of its chunks' partials and the tree alone, so the root is bitwise the same for any
//! cut of the chunks into shards, one shard (a single device) included. The chunk size is part of the
//! reduction: another chunk size is another tree and other bits.
//!
//! A shard adds at most about `2·log2(n)` node values to the exchange, against a partial per chunk.

use std::ops::Range;

use crate::error::{Error, Result};

/// A batch cut into chunks of a fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunks {
    /// Samples in the batch.
    pub batch: usize,
    /// Samples per chunk (the last chunk may hold fewer).
    pub chunk: usize,
}

impl Chunks {
    /// `batch` samples in chunks of `chunk`.
    ///
    /// # Errors
    /// [`Error::ZeroDimension`] for a zero batch or chunk.
    pub fn new(batch: usize, chunk: usize) -> Result<Self> {
        if batch == 0 {
            return Err(Error::ZeroDimension { what: "batch" });
        }
        if chunk == 0 {
            return Err(Error::ZeroDimension { what: "chunk size" });
        }
        Ok(Self { batch, chunk })
    }

    /// How many chunks.
    #[must_use]
    pub fn count(&self) -> usize {
        self.batch.div_ceil(self.chunk)
    }

    /// The samples of chunk `c`.
    #[must_use]
    pub fn samples(&self, c: usize) -> Range<usize> {
        (c * self.chunk).min(self.batch)..((c + 1) * self.chunk).min(self.batch)
    }

    /// The chunks of the samples `samples`, which must start and end on chunk boundaries (or at the
    /// batch's end).
    ///
    /// # Errors
    /// [`Error::Sharding`] for a range past the batch or a boundary inside a chunk.
    pub fn chunks_of(&self, samples: Range<usize>) -> Result<Range<usize>> {
        let on_boundary = |s: usize| s.is_multiple_of(self.chunk) || s == self.batch;
        if samples.start > samples.end || samples.end > self.batch {
            return Err(Error::Sharding {
                message: format!("samples {samples:?} are not a range within the batch of {}", self.batch),
            });
        }
        for s in [samples.start, samples.end] {
            if !on_boundary(s) {
                return Err(Error::Sharding {
                    message: format!(
                        "a shard boundary at sample {s} falls inside a chunk of {} samples; shards must hold \
                         whole chunks",
                        self.chunk
                    ),
                });
            }
        }
        // The chunk that starts at boundary `s` (the batch's end is the end of the last chunk, not
        // the start of a chunk past it): an empty run at the end of the batch owns no chunk, where
        // `s.div_ceil(chunk)` would have handed it the last one.
        let index = |s: usize| if s == self.batch { self.count() } else { s / self.chunk };
        Ok(index(samples.start)..index(samples.end))
    }

    /// `shards` runs of whole chunks covering the batch, as even as can be (the first ones a chunk
    /// longer where they cannot all be equal; more shards than chunks leave the last ones empty): the
    /// sample range of each.
    #[must_use]
    pub fn even_shards(&self, shards: usize) -> Vec<Range<usize>> {
        let n = self.count();
        let shards = shards.max(1);
        let (each, extra) = (n / shards, n % shards);
        let mut start = 0;
        (0..shards)
            .map(|r| {
                let len = each + usize::from(r < extra);
                let chunks = start..start + len;
                start += len;
                self.samples_of(chunks)
            })
            .collect()
    }

    /// The samples of the chunks `chunks`.
    #[must_use]
    pub fn samples_of(&self, chunks: Range<usize>) -> Range<usize> {
        (chunks.start * self.chunk).min(self.batch)..(chunks.end * self.chunk).min(self.batch)
    }
}

/// A node of the tree over `n` chunks: it covers the chunks `[index·2^level, (index+1)·2^level)`,
/// cut at `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    /// 0 for a chunk itself.
    pub level: u32,
    /// The node's place among those of its level.
    pub index: usize,
}

impl Node {
    /// The chunks the node covers in a tree over `n` chunks (empty for a node past the end).
    #[must_use]
    pub fn chunks(&self, n: usize) -> Range<usize> {
        let start = self.index << self.level;
        start.min(n)..(start + (1 << self.level)).min(n)
    }

    /// Its two children, left first (a chunk has none).
    #[must_use]
    pub fn children(&self) -> Option<[Node; 2]> {
        let level = self.level.checked_sub(1)?;
        Some([Node { level, index: 2 * self.index }, Node { level, index: 2 * self.index + 1 }])
    }
}

/// The root of the tree over `n` chunks.
#[must_use]
pub fn root(n: usize) -> Node {
    Node { level: n.max(1).next_power_of_two().trailing_zeros(), index: 0 }
}

/// The nodes a shard owning the chunks `owned` evaluates itself: the largest nodes of the tree over
/// `n` chunks that lie inside `owned`, in chunk order. Empty for an empty shard.
#[must_use]
pub fn shard_nodes(n: usize, owned: Range<usize>) -> Vec<Node> {
    fn walk(node: Node, n: usize, owned: &Range<usize>, out: &mut Vec<Node>) {
        let r = node.chunks(n);
        if r.is_empty() || r.end <= owned.start || r.start >= owned.end {
            return;
        }
        if owned.start <= r.start && r.end <= owned.end {
            out.push(node);
        } else if let Some(children) = node.children() {
            for c in children {
                walk(c, n, owned, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root(n), n, &owned, &mut out);
    out
}

/// The value of `node` in the tree over `n` chunks: `known(node)` where it gives one, else its left
/// child's plus its right child's (`add(left, right)`), or the left child's alone where the right
/// covers no chunk. `None` where a chunk under it is unknown.
pub fn evaluate<T>(
    n: usize,
    node: Node,
    known: &mut impl FnMut(Node) -> Option<T>,
    add: &mut impl FnMut(T, T) -> T,
) -> Option<T> {
    if node.chunks(n).is_empty() {
        return None;
    }
    if let Some(v) = known(node) {
        return Some(v);
    }
    let [left, right] = node.children()?;
    let l = evaluate(n, left, known, add)?;
    if right.chunks(n).is_empty() {
        return Some(l);
    }
    let r = evaluate(n, right, known, add)?;
    Some(add(l, r))
}

/// Adds `b` into `a`, element by element: the one addition of tree nodes, on the host (Rust's `f32`
/// addition rounds to nearest and never contracts or flushes, so every machine gives the same bits).
pub fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    for (x, y) in a.iter_mut().zip(&b) {
        *x += *y;
    }
    a
}

/// The root of the tree over the chunk partials `partials` (chunk order): what one device computes
/// with all chunks, and what every shard ends with.
#[must_use]
pub fn tree_sum(partials: Vec<Vec<f32>>) -> Option<Vec<f32>> {
    let n = partials.len();
    let mut slots: Vec<Option<Vec<f32>>> = partials.into_iter().map(Some).collect();
    let mut leaf = |node: Node| if node.level == 0 { slots[node.index].take() } else { None };
    evaluate(n, root(n), &mut leaf, &mut add_into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Rng;

    /// Values of mixed magnitudes, so that the order of additions shows in the bits.
    fn partials(n: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        let e = (rng.uniform() * 24.0) as i32 - 12;
                        (rng.uniform() - 0.5) * 2f32.powi(e)
                    })
                    .collect()
            })
            .collect()
    }

    /// The root as shards `[a, b)` of chunks compute it: each its own nodes from its own partials,
    /// then the top from all shards' nodes.
    fn sharded(parts: &[Vec<f32>], bounds: &[usize]) -> Vec<f32> {
        let n = parts.len();
        let mut gathered = std::collections::HashMap::new();
        for w in bounds.windows(2) {
            let owned = w[0]..w[1];
            for node in shard_nodes(n, owned.clone()) {
                let mut leaf = |m: Node| (m.level == 0 && owned.contains(&m.index)).then(|| parts[m.index].clone());
                let v = evaluate(n, node, &mut leaf, &mut add_into).expect("a shard knows its chunks");
                gathered.insert(node, v);
            }
        }
        let mut known = |m: Node| gathered.get(&m).cloned();
        evaluate(n, root(n), &mut known, &mut add_into).expect("the shards cover every chunk")
    }

    /// Every way of cutting `n` chunks into `k` contiguous nonempty runs: the inner boundaries.
    fn cuts(n: usize, k: usize) -> Vec<Vec<usize>> {
        if k == 1 {
            return vec![vec![0, n]];
        }
        let mut out = Vec::new();
        for first in 1..n {
            for rest in cuts(n - first, k - 1) {
                let mut b = vec![0];
                b.extend(rest.iter().skip(1).map(|x| x + first));
                out.push(b);
            }
        }
        out
    }

    #[test]
    fn every_cut_into_one_to_eight_shards_gives_the_same_bits() {
        for n in 1..=12 {
            let parts = partials(n, 7, n as u64);
            let one = tree_sum(parts.clone()).unwrap();
            for k in 1..=8.min(n) {
                for bounds in cuts(n, k) {
                    let got = sharded(&parts, &bounds);
                    let same = got.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{n} chunks cut at {bounds:?}: {got:?} != {one:?}");
                }
            }
        }
    }

    #[test]
    fn the_tree_is_not_a_left_to_right_sum() {
        // The test above would pass for any fixed order that shards could reproduce; this pins the
        // tree itself: ((a + b) + (c + d)) + e for five chunks.
        let v = [1.0f32, 1e8, -1e8, 1.0, 0.5];
        let parts: Vec<Vec<f32>> = v.iter().map(|x| vec![*x]).collect();
        let got = tree_sum(parts).unwrap()[0];
        let want = ((v[0] + v[1]) + (v[2] + v[3])) + v[4];
        assert_eq!(got.to_bits(), want.to_bits());
        let left_to_right = (((v[0] + v[1]) + v[2]) + v[3]) + v[4];
        assert_ne!(got.to_bits(), left_to_right.to_bits());
    }

    #[test]
    fn shard_nodes_are_the_largest_nodes_inside_the_run() {
        // 10 chunks: root level 4. Chunks 3..9 → [3], [4,8), [8,9).
        let got = shard_nodes(10, 3..9);
        assert_eq!(got, [Node { level: 0, index: 3 }, Node { level: 2, index: 1 }, Node { level: 0, index: 8 }]);
        assert_eq!(shard_nodes(10, 0..10), [root(10)]);
        // [8, 10) is node (3, 1) cut at the end: its value is its only chunks' (1, 4).
        assert_eq!(shard_nodes(10, 8..10), [Node { level: 3, index: 1 }]);
        assert!(shard_nodes(10, 4..4).is_empty());
        // A shard sends O(log n) nodes, not a partial per chunk.
        for n in [64, 100, 1000] {
            for a in 0..n {
                assert!(shard_nodes(n, a..n).len() <= 2 * root(n).level as usize + 1);
            }
        }
    }

    #[test]
    fn shards_hold_whole_chunks() {
        let c = Chunks::new(10, 3).unwrap();
        assert_eq!(c.count(), 4);
        assert_eq!(c.samples(3), 9..10);
        assert_eq!(c.chunks_of(3..9).unwrap(), 1..3);
        assert_eq!(c.chunks_of(9..10).unwrap(), 3..4);
        assert_eq!(c.chunks_of(0..10).unwrap(), 0..4);
        assert!(matches!(c.chunks_of(2..9), Err(Error::Sharding { .. })));
        assert!(matches!(c.chunks_of(3..8), Err(Error::Sharding { .. })));
        assert!(matches!(c.chunks_of(3..11), Err(Error::Sharding { .. })));
        assert!(matches!(Chunks::new(0, 3), Err(Error::ZeroDimension { .. })));
        assert!(matches!(Chunks::new(4, 0), Err(Error::ZeroDimension { .. })));
    }

    /// Every batch, chunk size and member count of a small table (chunks larger than the batch, more
    /// members than chunks, batches that are not a multiple of the chunk): the shards cover the batch
    /// in order, each holds whole chunks, their chunks partition the chunks, an empty shard owns no
    /// chunk and no node, and the shards' nodes evaluate to the one-shard root bit for bit.
    #[test]
    fn shards_and_chunks_hold_for_every_batch_chunk_and_member_count() {
        for batch in 1..=13 {
            for chunk in 1..=15 {
                let c = Chunks::new(batch, chunk).unwrap();
                let n = c.count();
                let parts = partials(n, 3, (batch * 31 + chunk) as u64);
                let one = tree_sum(parts.clone()).unwrap();
                for members in 1..=7 {
                    let shards = c.even_shards(members);
                    let case = format!("batch {batch}, chunk {chunk}, {members} members: {shards:?}");
                    assert_eq!(shards.len(), members, "{case}");
                    let mut next_sample = 0;
                    let mut next_chunk = 0;
                    let mut bounds = vec![0];
                    for s in &shards {
                        assert_eq!(s.start, next_sample, "{case}");
                        let owned = c.chunks_of(s.clone()).unwrap();
                        assert_eq!(owned.start, next_chunk, "{case}: chunks of {s:?}");
                        assert_eq!(c.samples_of(owned.clone()), *s, "{case}");
                        assert!(owned.end <= n, "{case}: {s:?} owns {owned:?} of {n} chunks");
                        assert_eq!(s.is_empty(), owned.is_empty(), "{case}: {s:?} owns {owned:?}");
                        if owned.is_empty() {
                            assert!(shard_nodes(n, owned.clone()).is_empty(), "{case}");
                        } else {
                            bounds.push(owned.end);
                        }
                        next_sample = s.end;
                        next_chunk = owned.end;
                    }
                    assert_eq!((next_sample, next_chunk), (batch, n), "{case}");
                    let got = sharded(&parts, &bounds);
                    assert!(got.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()), "{case}");
                }
            }
        }
    }

    #[test]
    fn an_empty_run_at_the_end_of_the_batch_owns_no_chunk() {
        // 7 samples in chunks of 3; a chunk of 8 over 3 samples (the cases that panicked).
        assert_eq!(Chunks::new(7, 3).unwrap().chunks_of(7..7).unwrap(), 3..3);
        assert_eq!(Chunks::new(3, 8).unwrap().chunks_of(3..3).unwrap(), 1..1);
        assert_eq!(Chunks::new(3, 8).unwrap().chunks_of(0..3).unwrap(), 0..1);
        assert_eq!(Chunks::new(6, 3).unwrap().chunks_of(3..3).unwrap(), 1..1);
    }

    #[test]
    fn even_shards_cover_the_batch_in_whole_chunks() {
        let c = Chunks::new(10, 1).unwrap();
        assert_eq!(c.even_shards(3), [0..4, 4..7, 7..10]);
        let c = Chunks::new(7, 2).unwrap();
        assert_eq!(c.even_shards(2), [0..4, 4..7]);
        assert_eq!(c.even_shards(6), [0..2, 2..4, 4..6, 6..7, 7..7, 7..7]);
        for shards in 1..9 {
            let s = c.even_shards(shards);
            assert_eq!(s.first().unwrap().start, 0);
            assert_eq!(s.last().unwrap().end, 7);
            for w in s.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            for r in &s {
                c.chunks_of(r.clone()).unwrap();
            }
        }
    }
}
