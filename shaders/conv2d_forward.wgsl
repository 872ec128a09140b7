// Forward correlation, one output element per invocation:
//   Y[n,k,p,q] = b[k] + Σ_cg Σ_i Σ_j X[n, g·C/G + cg, p·sh + i·dh − ph, q·sw + j·dw − pw] · W[k,cg,i,j]
// with g = k / (K/G). Taps that land in the zero padding are skipped.

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // N×C×H×W
@group(0) @binding(2) var<storage, read> wt: array<f32>;       // K×(C/G)×S×T
@group(0) @binding(3) var<storage, read> bias: array<f32>;     // K (unused unless flags & 1)
@group(0) @binding(4) var<storage, read_write> y: array<f32>;  // N×K×P×Q

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let idx = id;
    let q = idx % P.q;
    let p = (idx / P.q) % P.p;
    let k = (idx / (P.q * P.p)) % P.k;
    let n = idx / (P.q * P.p * P.k);
    let g = k / P.kpg;
    var acc = 0.0;
    for (var cg = 0u; cg < P.cpg; cg++) {
        let c = g * P.cpg + cg;
        let x_plane = (n * P.c + c) * P.h;
        let w_plane = (k * P.cpg + cg) * P.s;
        for (var i = 0u; i < P.s; i++) {
            // Coordinates are shifted by the padding so that they stay unsigned.
            let hp = p * P.sh + i * P.dh;
            if (hp < P.ph || hp >= P.h + P.ph) {
                continue;
            }
            let x_row = (x_plane + hp - P.ph) * P.w;
            let w_row = (w_plane + i) * P.t;
            for (var j = 0u; j < P.t; j++) {
                let wp = q * P.sw + j * P.dw;
                if (wp < P.pw || wp >= P.w + P.pw) {
                    continue;
                }
                acc += x[x_row + wp - P.pw] * wt[w_row + j];
            }
        }
    }
    if ((P.flags & 1u) != 0u) {
        acc += bias[k];
    }
    y[idx] = acc;
}
