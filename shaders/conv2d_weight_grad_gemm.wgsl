// The weight gradient as an implicit GEMM through workgroup memory, over a split reduction
// (src/plan/gemm.rs has the math):
//   dW[g](m, r) = Σ_col dY[n, g·K/G + m, p, q] · X[n, g·C/G + cg, p·sh + i·dh − ph, q·sw + j·dw − pw],
// r = (cg, i, j), col = (n, p, q). Both operands are read in place (X's padding is a mask on its
// loads). The N·P·Q columns are cut into `splits` ranges of `chunk` (the last may be shorter; a
// range's last round masks the columns past its end): workgroup
// (split, group, row tile, column tile) sums its range into partial[split] with plain stores, and
// split_sum.wgsl adds the ranges in a fixed order. No atomics: the same bits every run.
//
// A workgroup computes BM filters × BN taps, staging BK columns of dY and of the gathered X in
// workgroup memory per round; each of its THREADS invocations holds TM × TN accumulators. Each round's
// BK products go to fresh partial sums that are then added to the accumulators. Double-buffered slabs
// (STAGES = 2) work as in conv2d_gemm.wgsl. The marked lines are generated for the tile
// (src/gpu/tiled.rs).

const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const MT: u32 = {{MT}}u;
const NT: u32 = {{NT}}u;
const THREADS: u32 = {{THREADS}}u; // MT·NT (= WG)
const STAGES: u32 = {{STAGES}}u;
const A_LOADS: u32 = {{A_LOADS}}u; // dY values each invocation stages per round: BM·BK / THREADS
const B_LOADS: u32 = {{B_LOADS}}u; // X values: BN·BK / THREADS
const AS: u32 = BM + 1u;
const BS: u32 = BN + 1u;
const A_SLAB: u32 = BK * AS;
const B_SLAB: u32 = BK * BS;
const NOWHERE: i32 = -1073741824;

@group(0) @binding(0) var<uniform> P: GradTileParams;
@group(0) @binding(1) var<storage, read> x: array<{{B_ELEM}}>;     // N×C×H×W (f32, or 16-bit pairs in words)
@group(0) @binding(2) var<storage, read> dy: array<{{A_ELEM}}>;    // N×K×P×Q, by element or by vec4
@group(0) @binding(3) var<storage, read_write> partial: array<f32>; // splits × K×(C/G)×S×T

var<workgroup> As: array<f32, {{A_LEN}}>;  // STAGES × BK × AS: dY
var<workgroup> Bs: array<f32, {{B_LEN}}>;  // STAGES × BK × BS: X gathered

// The operands' loads: x_at(i), and dy_at(i) or dy4_at(i) (generated: f32, or 16-bit words
// converted to f32 where they are staged).
{{LOADS}}
// The tile's taps: (offset of the channel's plane, i·dh, j·dw); i·dh = NOWHERE past the last tap.
var<workgroup> taps: array<vec3<i32>, BN>;

// A column (n, p, q) of the reduction, as digits (digits_of, digits_add in common.wgsl).
fn pix_of(col: u32) -> vec3<u32> {
    return digits_of(col, P.p, P.q);
}

fn pix_add(x: vec3<u32>, d: vec3<u32>) -> vec3<u32> {
    return digits_add(x, d, P.p, P.q);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= P.total) {
        return;
    }
    let tiles = P.rtiles * P.ktiles;
    let r0 = (tile % P.rtiles) * BN;
    let m0 = ((tile / P.rtiles) % P.ktiles) * BM;
    let g = (tile / tiles) % P.g;
    let split = tile / (tiles * P.g);
    let st = P.s * P.t;
    let taps_all = P.cpg * st;
    let hw = P.h * P.w;
    for (var e = lid; e < BN; e += THREADS) {
        let r = r0 + e;
        let cg = r / st;
        let i = (r % st) / P.t;
        let j = r % P.t;
        let ih = select(NOWHERE, i32(i * P.dh), r < taps_all);
        taps[e] = vec3<i32>(i32(cg * hw), ih, i32(j * P.dw));
    }
    workgroupBarrier();

    // This invocation stages reduction column lk of each round: dY rows and X taps
    // lid / BK + u·(THREADS / BK).
    let lk = lid % BK;
    let first = split * P.chunk;
    let end = min(first + P.chunk, P.n * P.p * P.q);
    var at = pix_of(first + lk);
    let round = pix_of(BK);
    let pq = P.p * P.q;
    let h = i32(P.h);
    let w = i32(P.w);
    let tr = lid / NT;
    let tc = lid % NT;
{{A_SETUP}}
{{ACC_DECL}}
    for (var c = 0u; c < P.chunk + (STAGES - 1u) * BK; c += BK) {
        if (c < P.chunk) {
            let sa = ((c / BK) % STAGES) * A_SLAB;
            let sb = ((c / BK) % STAGES) * B_SLAB;
            let live = first + c + lk < end;
            // A: dY of filters m0 … m0 + BM − 1 at this round's columns.
{{A_STAGE}}
            let y0 = i32(at.y * P.sh) - i32(P.ph);
            let x0 = i32(at.z * P.sw) - i32(P.pw);
            let b_at = (at.x * P.c + g * P.cpg) * hw;
            for (var u = 0u; u < B_LOADS; u++) {
                let ln = lid / BK + u * (THREADS / BK);
                let tap = taps[ln];
                let yy = y0 + tap.y;
                let xx = x0 + tap.z;
                let ok = live && yy >= 0 && yy < h && xx >= 0 && xx < w;
                let e = b_at + u32(tap.x) + u32(yy) * P.w + u32(xx);
                Bs[sb + lk * BS + ln] = select(0.0, x_at(select(0u, e, ok)), ok);
            }
            at = pix_add(at, round);
        }
        // Multiply the staged slabs (the same generated round in both GEMM kernels).
{{ROUND}}
    }
    let out = split * P.k * taps_all + (g * P.kpg + m0) * taps_all + r0;
{{STORE}}
}

// Stores accumulator (row lm, tap ln) of the tile at `out`, where both exist.
fn put(out: u32, m: u32, r: u32, lm: u32, ln: u32, v: f32) {
    if (m + lm < P.kpg && r + ln < P.cpg * P.s * P.t) {
        partial[out + lm * P.cpg * P.s * P.t + ln] = v;
    }
}
