// The backward of Y = act(Z), Z = conv + b, from the saved Z, in one pass: dZ = dY ⊙ act′(Z), written
// element by element, and its sums over (n, p, q) per filter, dB[k] = Σ dZ[n,k,p,q], as the bias
// gradient computes them (conv2d_bias_grad.wgsl): P.splits ranges of P.chunk positions of each
// filter, one invocation per (range, filter) in order, range s of filter k into slot s·K + k, the
// slots added in order by split_sum.wgsl where there are several. Fixed order, no atomics. The
// activation's functions are in activation.wgsl.

@group(0) @binding(0) var<uniform> P: ActGradParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;        // N×K×P×Q
@group(0) @binding(2) var<storage, read> z: array<f32>;         // N×K×P×Q
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;  // N×K×P×Q
@group(0) @binding(4) var<storage, read_write> db: array<f32>;  // splits × K

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
    let a = bitcast<f32>(P.act_a);
    let b = bitcast<f32>(P.act_b);
    var e = first % plane;
    var at = ((first / plane) * P.k + k) * plane + e;
    let skip = (P.k - 1u) * plane;
    var acc = 0.0;
    for (var pos = first; pos < end; pos++) {
        let g = dy[at] * act_grad(P.kind, a, b, z[at]);
        dz[at] = g;
        acc += g;
        at += 1u;
        e += 1u;
        if (e == plane) {
            e = 0u;
            at += skip;
        }
    }
    db[id] = acc;
}
