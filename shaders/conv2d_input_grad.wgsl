// Input gradient (transposed convolution), one input element per invocation, as a gather:
//   dX[n,c,h,w] = Σ_{k in c's group} Σ_i Σ_j dY[n,k,p,q] · W[k,cg,i,j]
// over the (p, q) with p·sh + i·dh − ph = h and q·sw + j·dw − pw = w. A tap contributes only when
// h + ph − i·dh is a non-negative multiple of sh below P·sh (likewise for w), so with a stride above 1
// some inputs receive nothing and are written as 0.

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;         // N×K×P×Q
@group(0) @binding(2) var<storage, read> wt: array<f32>;         // K×(C/G)×S×T
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;   // N×C×H×W

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let idx = id;
    let w = idx % P.w;
    let h = (idx / P.w) % P.h;
    let c = (idx / (P.w * P.h)) % P.c;
    let n = idx / (P.w * P.h * P.c);
    let g = c / P.cpg;
    let cg = c % P.cpg;
    let hp = h + P.ph;
    let wp = w + P.pw;
    var acc = 0.0;
    for (var kk = 0u; kk < P.kpg; kk++) {
        let k = g * P.kpg + kk;
        let dy_plane = (n * P.k + k) * P.p;
        let w_plane = (k * P.cpg + cg) * P.s;
        for (var i = 0u; i < P.s; i++) {
            let di = i * P.dh;
            if (di > hp || (hp - di) % P.sh != 0u) {
                continue;
            }
            let p = (hp - di) / P.sh;
            if (p >= P.p) {
                continue;
            }
            let dy_row = (dy_plane + p) * P.q;
            let w_row = (w_plane + i) * P.t;
            for (var j = 0u; j < P.t; j++) {
                let dj = j * P.dw;
                if (dj > wp || (wp - dj) % P.sw != 0u) {
                    continue;
                }
                let q = (wp - dj) / P.sw;
                if (q >= P.q) {
                    continue;
                }
                acc += dy[dy_row + q] * wt[w_row + j];
            }
        }
    }
    dx[idx] = acc;
}
