// The forward pass, or one stride phase of the input gradient, as an implicit GEMM through workgroup
// memory (src/plan/gemm.rs has the math):
//   out[g](m, col) = Σ_r A[g](m, r) · B[g](r, col),   r = (o, a, b) in the radix (·, rs, rt),
// A the weights read in place, B gathered from the source tensor as it is (X for the forward pass, dY
// for the input gradient): column col = (n, y, x) reads source row y·ys + yb + a·ya and column
// x·xs + xb + b·xa of channel o of its group, and a zero where that lies outside the plane (the
// padding is this mask: no padded copy).
//
// A workgroup computes BM rows × BN columns, staging BK steps of the reduction of both operands in
// workgroup memory per round; each of its THREADS invocations holds TM × TN accumulators, rows MT and
// columns NT apart. Each round's BK products go to fresh partial sums that are then added to the
// accumulators, so a long reduction rounds like BK + R/BK terms rather than R. With STAGES = 2 the
// slabs are double-buffered: round t stages steps t·BK … into slab pair t % 2 while it multiplies
// the pair staged in round t − 1, and one barrier ends the round (the next round writes the pair this
// one read only after it); one more round multiplies the last pair.
//
// The loads need no division: an invocation's place in the reduction is kept as digits (o, a, b)
// and moved on by digit-wise addition with one carry per digit (digits_add in common.wgsl). The marked lines are
// generated for the tile (src/gpu/tiled.rs): c{i}_{j} accumulators, p{i}_{j} partial sums.

const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const MT: u32 = {{MT}}u;        // invocations along the rows: BM / TM
const NT: u32 = {{NT}}u;        // invocations along the columns: BN / TN
const THREADS: u32 = {{THREADS}}u; // invocations of the workgroup: MT·NT (= WG)
const STAGES: u32 = {{STAGES}}u; // slab pairs: 1, or 2 when double-buffered
const A_LOADS: u32 = {{A_LOADS}}u; // A values each invocation stages per round: BM·BK / THREADS
const BNL: u32 = {{BNL}}u;      // columns one pass of the invocations covers: min(BN, THREADS)
const CPT: u32 = {{CPT}}u;      // columns of B each invocation stages: BN / BNL
const RPT: u32 = {{RPT}}u;      // reduction steps of B each invocation stages per round: BK·BNL / THREADS
const AS: u32 = BM + 1u;        // row pitch of the staged A (one word of padding: no bank conflicts)
const BS: u32 = BN + 1u;
const A_SLAB: u32 = BK * AS;    // one staged slab of A; slab pair s starts at s·A_SLAB (and s·B_SLAB)
const B_SLAB: u32 = BK * BS;
// A row index that no plane contains: the mask of a column past the end.
const NOWHERE: i32 = -1073741824;

@group(0) @binding(0) var<uniform> P: GemmParams;
@group(0) @binding(1) var<storage, read> src: array<{{B_ELEM}}>; // f32, or 16-bit pairs in words
@group(0) @binding(2) var<storage, read> wt: array<{{A_ELEM}}>;  // the weights, by element or by vec4
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> As: array<f32, {{A_LEN}}>; // STAGES × BK × AS: As[slab·A_SLAB + step·AS + row]
var<workgroup> Bs: array<f32, {{B_LEN}}>; // STAGES × BK × BS: Bs[slab·B_SLAB + step·BS + column]

// The operands' loads: src_at(i), and wt_at(i) or wt4_at(i) (generated: f32, or 16-bit words
// converted to f32 where they are staged).
{{LOADS}}
// A position r = (o, a, b) in the reduction, as digits (digits_of, digits_add in common.wgsl).
fn tap_of(r: u32) -> vec3<u32> {
    return digits_of(r, P.rs, P.rt);
}

fn tap_add(x: vec3<u32>, d: vec3<u32>) -> vec3<u32> {
    return digits_add(x, d, P.rs, P.rt);
}

// Writes the accumulator of row m (within group g) and column col, where both exist.
fn put(g: u32, m: u32, col: u32, v: f32) {
    if (m >= P.m || col >= P.cols) {
        return;
    }
    let plane = P.cy * P.cx;
    let n = col / plane;
    let y = (col % plane) / P.cx;
    let x = col % P.cx;
    let row = g * P.m + m;
    var value = v;
    if ((P.flags & 1u) != 0u) {
        value += bias[row];
    }
    out[n * P.o_ns + row * P.o_cs + (y * P.o_ys + P.o_yb) * P.o_w + x * P.o_xs + P.o_xb] = value;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    // One workgroup per tile: column tile fastest, then row tile, then group.
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= P.total) {
        return;
    }
    let c0 = (tile % P.ntiles) * BN;
    let m0 = ((tile / P.ntiles) % P.mtiles) * BM;
    let g = tile / (P.ntiles * P.mtiles);

{{A_SETUP}}
    // Staging B: columns bl + u·BNL (u < CPT), steps b0 … b0 + RPT − 1 of each round.
    let bl = lid % BNL;
    let b0 = (lid / BNL) * RPT;
    var tb = tap_of(b0);
    let b_round = tap_of(BK - RPT);
    let one = tap_of(1u);
    var base: array<u32, CPT>;
    var y0: array<i32, CPT>;
    var x0: array<i32, CPT>;
    let plane = P.cy * P.cx;
    for (var u = 0u; u < CPT; u++) {
        let col = c0 + bl + u * BNL;
        let n = col / plane;
        let y = (col % plane) / P.cx;
        let x = col % P.cx;
        base[u] = n * P.b_ns + g * P.b_gs;
        y0[u] = select(NOWHERE, i32(y * P.ys) + bitcast<i32>(P.yb), col < P.cols);
        x0[u] = i32(x * P.xs) + bitcast<i32>(P.xb);
    }
    let bh = i32(P.b_h);
    let bw = i32(P.b_w);
    let ya = bitcast<i32>(P.ya);
    let xa = bitcast<i32>(P.xa);

    let tr = lid / NT;
    let tc = lid % NT;
{{ACC_DECL}}
    for (var r0 = 0u; r0 < P.r + (STAGES - 1u) * BK; r0 += BK) {
        if (r0 < P.r) {
            let sa = ((r0 / BK) % STAGES) * A_SLAB;
            let sb = ((r0 / BK) % STAGES) * B_SLAB;
            // A: the weights of rows m0 … m0 + BM − 1 at reduction steps r0 … r0 + BK − 1.
{{A_STAGE}}
            // B: the source values of this invocation's columns at steps r0 + b0 + v.
            for (var v = 0u; v < RPT; v++) {
                let lk = b0 + v;
                let live = r0 + lk < P.r;
                let dy = i32(tb.y) * ya;
                let dx = i32(tb.z) * xa;
                let at = tb.x * P.b_cs;
                for (var u = 0u; u < CPT; u++) {
                    let yy = y0[u] + dy;
                    let xx = x0[u] + dx;
                    let ok = live && yy >= 0 && yy < bh && xx >= 0 && xx < bw;
                    let e = base[u] + at + u32(yy) * P.b_w + u32(xx);
                    Bs[sb + lk * BS + bl + u * BNL] = select(0.0, src_at(select(0u, e, ok)), ok);
                }
                tb = tap_add(tb, one);
            }
            tb = tap_add(tb, b_round);
        }
        // Multiply the staged slabs (the same generated round in both GEMM kernels).
{{ROUND}}
    }
{{STORE}}
}
