// Deterministic Σ v[e]² in two passes without atomics. Pass 1 (len = element count): invocation g sums
// the squares of the contiguous chunk [g·chunk, (g+1)·chunk) into partial[g]. Pass 2 (square = 0) sums
// `len` partials, in order, into partial[0] of the second buffer. The chunking depends only on the
// length, so the result is the same bits every run.

struct ReduceParams {
    len: u32, chunk: u32, square: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> R: ReduceParams;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let g = flat_id(wid, nwg, lid);
    let start = g * R.chunk;
    if (start >= R.len) {
        return;
    }
    let end = min(start + R.chunk, R.len);
    var acc = 0.0;
    for (var e = start; e < end; e++) {
        let t = v[e];
        acc += select(t, t * t, R.square != 0u);
    }
    partial[g] = acc;
}
