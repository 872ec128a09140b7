// The weight gradient of conv2d_weight_grad_tiled.wgsl with vector loads along q. An invocation holds
// BK filters × BR kernel rows (cg, i .. i+BR−1) × all T taps of each row, and walks its chunk of rows
// (n, p) four output columns at a time: the four dY values of each filter are one vec4 (dY with its
// rows padded to a multiple of 4, Qp: read in place when Q is one, else a padded copy), and the input
// window those four columns read across the T taps of a kernel row is a few vec4s of the padded input
// (rows start on a multiple of 4, and 4·sw is one). Each dY vec4 then feeds BR·T·4 multiply-adds. The last Q mod 4 columns are summed one
// at a time from scalar views of the same buffers, so padded columns never enter a sum (0 · NaN would
// not be 0). Partial sums per split as in the tiled kernel, added in order by split_sum.wgsl.
//
// On CPU adapters (each load runs lane by lane) the lanes of a subgroup, which then work on one filter
// tile and differ only in their tap tiles (see grad_tile), share the dY vec4s: lane v of the first 8
// loads filter v's (and v + 8's) and subgroupBroadcast hands them to every lane; SG_PARAM names the
// lane index then.
//
// The marked lines are generated (src/gpu/tiled.rs): a{v}_{r}_{j} accumulators, d{v} the filters' dY
// vec4s, w{r}_{m} the window vec4s of kernel row r, ds{v} and x{r}_{j} the scalar tail's values.

const BK: u32 = {{BK}}u;
const BR: u32 = {{BR}}u;

@group(0) @binding(0) var<uniform> P: GradTileParams;
@group(0) @binding(1) var<storage, read> xv: array<vec4<f32>>;     // N×C×Hp×Wp, zero-padded, Wp % 4 = 0
@group(0) @binding(2) var<storage, read> xs: array<f32>;           // the same buffer, by element
@group(0) @binding(3) var<storage, read> dyv: array<vec4<f32>>;    // N×K×P×Qp, rows padded with zeros
@group(0) @binding(4) var<storage, read> dys: array<f32>;          // the same buffer, by element
@group(0) @binding(5) var<storage, read_write> partial: array<f32>; // splits × K×(C/G)×S×T

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32{{SG_PARAM}}) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    // Row tiles: rtiles = (C/G)·⌈S/BR⌉, each BR kernel rows of one channel.
    let tile = grad_tile(id, BK, P);
    let split = tile.split;
    let g = tile.g;
    let k_in = tile.k_in;
    let rt = tile.rt;
    let per_cg = (P.s + BR - 1u) / BR;
    let cg = rt / per_cg;
    let i0 = (rt % per_cg) * BR;
    let taps = P.cpg * P.s * P.t;
    let plane = P.hp * P.wp;
    // Qp, the padded row length of dY.
    let qp = P.qp;
    let q4 = P.q / 4u * 4u;
    // Kernel rows past S repeat the last one (computed, not stored).
{{ROW_OFFSETS}}
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
        let x_row = (n * P.c + g * P.cpg + cg) * plane + p * P.sh * P.wp;
{{DY_ROWS}}
        for (var q0 = 0u; q0 < q4; q0 += 4u) {
            let xb = x_row + q0 * P.sw;
{{BLOCK}}
        }
        for (var q = q4; q < P.q; q++) {
            let xq = x_row + q * P.sw;
{{TAIL}}
        }
        since += 1u;
        if (since == P.fold) {
            since = 0u;
{{FOLD}}
        }
    }
    let out = split * P.k * taps + cg * P.s * P.t;
    if (!tile.live) {
        return;
    }
{{STORE}}
}
