// The forward pass of conv2d_forward_tiled.wgsl with vector loads: the input row window and the
// weights of a tap are read as vec4s. On a CPU adapter every per-invocation load is a gather across the
// SIMD lanes, so reading four floats per load instead of one cuts the gathers per multiply-add about
// fourfold; GPUs like wide loads too. It needs the padded input's rows to start on a multiple of 4
// floats (the host pads Wp to a multiple of 4, and q0·sw is one since BQ is) and the weights transposed
// so that a tile's filters are contiguous (transpose_weights.wgsl, kpad filters per group).
//
// The marked lines are generated (src/gpu/tiled.rs): a{v}_{r}_{u} accumulators of filter v, row r,
// column u; xv0 … a row window as vec4s; wv0 … the tile's weights of one tap as vec4s.
//
// The weights of a tile are loaded one vec4 per invocation, or (on CPU adapters, where each load runs
// lane by lane) shared in a subgroup: lane e of the first 8 loads vec4 e of the row's (or channel's)
// weights and subgroupBroadcast hands each to every lane, so a subgroup's 8 lanes, which work on one
// filter tile (see forward_tile), make one load where they made 8. SG_PARAM names the lane index then.
//
// A tile covers BR output rows. With one row (BR = 1) the kernel rows i are a loop, which can skip
// the inserted zero rows of a spread dY (first_data_row). With several rows (for tiles of fewer than 4
// filters, where one row gives each loaded input too few multiply-adds), the kernel size S×T is fixed
// in the variant: the channel's weights are loaded once, and each input row window once, feeding
// every (output row, kernel row) pair that reads it.

const BK: u32 = {{BK}}u;
const BR: u32 = {{BR}}u;
const BQ: u32 = {{BQ}}u;
const MASKED: bool = {{MASKED}};

@group(0) @binding(0) var<uniform> P: ForwardTileParams;
@group(0) @binding(1) var<storage, read> xp: array<vec4<f32>>;   // N×C×Hp×Wp, zero-padded, Wp % 4 = 0; or X
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;   // G×((C/G)·S·T)×kpad
@group(0) @binding(3) var<storage, read> bias: array<f32>;       // K (unused unless flags & 1)
@group(0) @binding(4) var<storage, read_write> y: array<{{Y_TYPE}}>; // N×K×P×Q

// Vec4 c of the input row that starts at vec4 `row`; `row_ok` tells whether that row lies in the input.
// On a zero-padded copy (MASKED false, ph = pw = 0) every read is inside. Reading X itself (MASKED
// true: W and pw multiples of 4, Hp×Wp = H×W), vec4s left or right of the row and rows above or below
// X read as the zeros of the padding.
fn xw(row: u32, c: i32, row_ok: bool) -> vec4<f32> {
    if (MASKED) {
        let wv = i32(P.wp / 4u);
        return select(vec4<f32>(0.0), xp[row + u32(clamp(c, 0, wv - 1))], row_ok && c >= 0 && c < wv);
    }
    return xp[row + u32(c)];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32{{SG_PARAM}}) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let tile = forward_tile(id, BK, BR, BQ, P);
    let n = tile.n;
    let g = tile.g;
    let k_in = tile.k_in;
    let p = tile.p;
    let q0 = tile.q0;
    let taps = P.cpg * P.s * P.t;
    // Vec4s per tap of the transposed weights, and this tile's first vec4 within a tap.
    let kv = P.kpad / 4u;
    let w_base = g * taps * kv + k_in / 4u;
{{ACC_DECL}}
    let plane = P.hp * P.wp;
    // The tile's first input vec4 along the row: q0·sw is a multiple of 4 (BQ is), and so is pw; or
    // where the input is dY itself for a strided input gradient, see Cols in src/gpu/tiled.rs.
{{COL_START}}
    let i_first = first_data_row(p, P);
    for (var cg = 0u; cg < P.cpg; cg++) {
        let x_plane = (n * P.c + g * P.cpg + cg) * plane;
{{CHANNEL}}
    }
    if (!tile.live) {
        return;
    }
    let has_bias = (P.flags & 1u) != 0u;
{{STORE}}
}
