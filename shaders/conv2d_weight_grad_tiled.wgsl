// Weight gradient as an implicit GEMM with a split reduction:
//   dW[k, r] = Σ_(n,p) Σ_q dY[n,k,p,q] · Xp[n, g·C/G + cg, p·sh + i·dh, q·sw + j·dw],   r = (cg, i, j),
// on the zero-padded input. The reduction over the N·P rows (n, p) is long and the output small, so it
// is cut into `splits` chunks of `chunk` rows: invocation (split, k-tile, r-tile) sums its chunk into
// partial[split] and split_sum.wgsl then adds the partials in order of split. Fixed order, no atomics:
// the same bits every run. Each invocation holds a register tile of BK filters × BR taps.
//
// The marked lines are generated for the tile size (src/gpu/tiled.rs): a{v}_{u} accumulators,
// xo{u} the offset of tap u inside an image's padded channel block, d{v} the output gradients.

const BK: u32 = {{BK}}u;
const BR: u32 = {{BR}}u;

@group(0) @binding(0) var<uniform> P: GradTileParams;
@group(0) @binding(1) var<storage, read> xp: array<f32>;          // N×C×Hp×Wp, zero-padded
@group(0) @binding(2) var<storage, read> dy: array<f32>;          // N×K×P×Q
@group(0) @binding(3) var<storage, read_write> partial: array<f32>; // splits × K×(C/G)×S×T

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let tile = grad_tile(id, BK, P);
    let split = tile.split;
    let g = tile.g;
    let k_in = tile.k_in;
    let rt = tile.rt;
    let r0 = rt * BR;
    let taps = P.cpg * P.s * P.t;
    let st = P.s * P.t;
    let plane = P.hp * P.wp;
    // Where tap r = (cg, i, j) reads, relative to the start of the row: taps past the end repeat
    // the last one and filters past the group's end repeat its last filter (computed, not stored).
{{TAP_OFFSETS}}
{{K_INDEX}}
{{ACC_DECL}}
    let rows = P.n * P.p;
    let row_end = min((split + 1u) * P.chunk, rows);
    // Every `fold` rows the running sums are added into the s accumulators and restart, so that no
    // sum runs over more than about a thousand products (blocked summation; see GradTileParams.fold).
    var since = 0u;
    for (var row = split * P.chunk; row < row_end; row++) {
        let n = row / P.p;
        let p = row % P.p;
        let xb = (n * P.c + g * P.cpg) * plane + p * P.sh * P.wp;
{{DY_ROWS}}
        for (var q = 0u; q < P.q; q++) {
            let xq = xb + q * P.sw;
{{FMA}}
        }
        since += 1u;
        if (since == P.fold) {
            since = 0u;
{{FOLD}}
        }
    }
    let out = split * P.k * taps;
    if (!tile.live) {
        return;
    }
{{STORE}}
}
