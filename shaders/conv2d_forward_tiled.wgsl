// Forward correlation as an implicit GEMM, Y[k, (n,p,q)] = Σ_(cg,i,j) W[k, (cg,i,j)] · X[(cg,i,j), (n,p,q)],
// on the zero-padded input Xp (see pad_input.wgsl), so no tap needs a bounds check. Each invocation
// computes a register tile of BK filters (of one group) × BQ consecutive outputs of one row (n, p):
// per tap it loads BK weights and BQ inputs and does BK·BQ multiply-adds, which on a CPU adapter
// (an invocation is a SIMD lane) and on a GPU alike keeps the arithmetic ahead of the loads.
// Filters and columns past the end of a tile are computed on clamped indices and not stored.
//
// The marked lines are generated for the tile size (src/gpu/tiled.rs): a0_0 … a{BK-1}_{BQ-1}
// are the accumulators, w0 … w{BK-1} the weights of the current tap. Explicit scalars rather than
// arrays, because compilers keep those in registers. The kernel row (the ROW marker) is either a loop over the
// taps j that loads BQ inputs per tap, or, when T, sw and dw are fixed in the variant, the whole input
// window of the row (x0 … x{(BQ−1)·sw + (T−1)·dw}) loaded once and reused by every tap: BQ+T−1 loads
// instead of BQ·T for stride 1.

const BK: u32 = {{BK}}u;
const BQ: u32 = {{BQ}}u;

@group(0) @binding(0) var<uniform> P: ForwardTileParams;
@group(0) @binding(1) var<storage, read> xp: array<f32>;       // N×C×Hp×Wp, zero-padded
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
    let tile = forward_tile(id, BK, 1u, BQ, P);
    let n = tile.n;
    let g = tile.g;
    let k_in = tile.k_in;
    let p = tile.p;
    let q0 = tile.q0;
    let taps = P.cpg * P.s * P.t;
    // Row offset of each filter of the tile; filters past the group's end repeat its last.
{{W_OFFSETS}}
{{ACC_DECL}}
    let plane = P.hp * P.wp;
    let i_first = first_data_row(p, P);
    for (var cg = 0u; cg < P.cpg; cg++) {
        let x_plane = (n * P.c + g * P.cpg + cg) * plane;
        let w_cg = cg * P.s * P.t;
        for (var i = i_first; i < P.s; i += P.i_step) {
            let x_row = x_plane + (p * P.sh + i * P.dh) * P.wp + q0 * P.sw;
            let w_row = w_cg + i * P.t;
{{ROW}}
        }
    }
    if (!tile.live) {
        return;
    }
    var acc: array<array<f32, BQ>, BK>;
{{STORE}}
    let has_bias = (P.flags & 1u) != 0u;
    for (var v = 0u; v < BK; v++) {
        if (k_in + v >= P.kpg) {
            break;
        }
        let k = g * P.kpg + k_in + v;
        var b = 0.0;
        if (has_bias) {
            b = bias[k];
        }
        let y_row = ((n * P.k + k) * P.p + p) * P.q;
        for (var u = 0u; u < BQ; u++) {
            if (q0 + u < P.q) {
                y[y_row + q0 + u] = acc[v][u] + b;
            }
        }
    }
}
