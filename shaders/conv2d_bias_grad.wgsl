// Bias gradient, one filter per invocation: dB[k] = Σ_n Σ_p Σ_q dY[n,k,p,q].
// Each output plane (fixed n) is summed on its own, then added in order of n: fixed order, no atomics.

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;       // N×K×P×Q
@group(0) @binding(2) var<storage, read_write> db: array<f32>; // K

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let k = id;
    let plane = P.p * P.q;
    var acc = 0.0;
    for (var n = 0u; n < P.n; n++) {
        let start = (n * P.k + k) * plane;
        var part = 0.0;
        for (var e = 0u; e < plane; e++) {
            part += dy[start + e];
        }
        acc += part;
    }
    db[k] = acc;
}
