// The filters of the transposed convolution: W'[g·C/G + cg, kk, i, j] = W[g·K/G + kk, cg, S−1−i, T−1−j],
// flipped in both axes with filters and channels exchanged inside each group. With stride 1 the input
// gradient is then the forward correlation of dY, zero-padded by dh·(S−1) − ph (and likewise in
// width), with W' (see docs/derivation.md), so it runs on the tiled forward kernel.

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> wt: array<f32>;        // K×(C/G)×S×T
@group(0) @binding(2) var<storage, read_write> flipped: array<f32>; // C×(K/G)×S×T

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let j = e % P.t;
    let i = (e / P.t) % P.s;
    let kk = (e / (P.t * P.s)) % P.kpg;
    let c = e / (P.t * P.s * P.kpg);
    let g = c / P.cpg;
    let cg = c % P.cpg;
    let k = g * P.kpg + kk;
    flipped[e] = wt[((k * P.cpg + cg) * P.s + (P.s - 1u - i)) * P.t + (P.t - 1u - j)];
}
