// The input of the transposed convolution: dY spread out by the stride and framed in zeros,
//   B[n, k, p·sh + dh·(S−1) − ph, q·sw + dw·(T−1) − pw] = dY[n, k, p, q],  0 elsewhere,
// in an N×K×Hp×Wp buffer with Hp = H + dh·(S−1). The stride-1 valid correlation of B with the flipped
// filters (flip_weights.wgsl) is then exactly dX (docs/derivation.md), so the input gradient runs on
// the tiled forward kernel for every stride, at the price of the multiplications by inserted zeros.

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;        // N×K×P×Q
@group(0) @binding(2) var<storage, read_write> b: array<f32>;   // N×K×Hp×Wp

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let col = e % P.wp;
    let row = (e / P.wp) % P.hp;
    let plane = e / (P.wp * P.hp);
    // The host checked ph ≤ dh·(S−1) and pw ≤ dw·(T−1), so the offsets are not negative.
    let oh = P.dh * (P.s - 1u) - P.ph;
    let ow = P.dw * (P.t - 1u) - P.pw;
    var v = 0.0;
    if (row >= oh && col >= ow) {
        let r = row - oh;
        let c = col - ow;
        if (r % P.sh == 0u && c % P.sw == 0u && r / P.sh < P.p && c / P.sw < P.q) {
            v = dy[(plane * P.p + r / P.sh) * P.q + c / P.sw];
        }
    }
    b[e] = v;
}
