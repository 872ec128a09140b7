// Bias gradient: dB[k] = Σ_n Σ_p Σ_q dY[n,k,p,q], over P.splits ranges of P.chunk positions (n, p, q)
// of each filter, one invocation per (range, filter) summing its range in order: as many ranges as keep
// one invocation's loop within the driver's budget and its sum near f32 precision (plan::loops). With
// one range the sum goes straight to dB; with more, range s of filter k writes slot s·K + k of a
// temporary and split_sum.wgsl adds the slots in order. Fixed order, no atomics.

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;       // N×K×P×Q
@group(0) @binding(2) var<storage, read_write> db: array<f32>; // splits × K

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let k = id % P.k;
    let split = id / P.k;
    let plane = P.p * P.q;
    let first = split * P.chunk;
    let end = min(first + P.chunk, P.n * plane);
    // Position (n, e) of the range's first element, e < P·Q, and its index in dY; past a plane's end
    // the index jumps over the other filters' planes of the sample.
    var e = first % plane;
    var at = ((first / plane) * P.k + k) * plane + e;
    let skip = (P.k - 1u) * plane;
    var acc = 0.0;
    for (var pos = first; pos < end; pos++) {
        acc += dy[at];
        at += 1u;
        e += 1u;
        if (e == plane) {
            e = 0u;
            at += skip;
        }
    }
    db[id] = acc;
}
