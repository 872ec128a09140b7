// The forward pass of conv2d_forward_tiled.wgsl with vector loads: the input row window and the
// weights of a tap are read as vec4s. On a CPU adapter every per-invocation load is a gather across the
// SIMD lanes, so reading four floats per load instead of one cuts the gathers per multiply-add about
// fourfold; GPUs like wide loads too. It needs the padded input's rows to start on a multiple of 4
// floats (the host pads Wp to a multiple of 4, and q0·sw is one since BQ is) and the weights transposed
// so that a tile's filters are contiguous (transpose_weights.wgsl, kpad filters per group).
//
// The marked lines are generated (src/gpu/tiled.rs): a{v}_{u} accumulators; xv0 … the row window as
// vec4s, x{m} its elements; wv0 … the tile's weights of one tap as vec4s, w{v} their elements.

const BK: u32 = {{BK}}u;
const BQ: u32 = {{BQ}}u;

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> xp: array<vec4<f32>>;   // N×C×Hp×Wp, zero-padded, Wp % 4 = 0
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;   // G×((C/G)·S·T)×kpad
@group(0) @binding(3) var<storage, read> bias: array<f32>;       // K (unused unless flags & 1)
@group(0) @binding(4) var<storage, read_write> y: array<f32>;    // N×K×P×Q

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let tile = forward_tile(id, BK, BQ, P);
    let n = tile.n;
    let g = tile.g;
    let k_in = tile.k_in;
    let p = tile.p;
    let q0 = tile.q0;
    let taps = P.cpg * P.s * P.t;
    // `chunk` carries kpad: vec4s per tap, and this tile's first vec4 within a tap.
    let kv = P.chunk / 4u;
    let w_base = g * taps * kv + k_in / 4u;
{{ACC_DECL}}
    let plane = P.hp * P.wp;
    let i_first = first_data_row(p, P);
    for (var cg = 0u; cg < P.cpg; cg++) {
        let x_plane = (n * P.c + g * P.cpg + cg) * plane;
        for (var i = i_first; i < P.s; i += P.i_step) {
            let x_row = (x_plane + (p * P.sh + i * P.dh) * P.wp + q0 * P.sw) / 4u;
            let tap_row = (cg * P.s + i) * P.t;
{{ROW}}
        }
    }
    let has_bias = (P.flags & 1u) != 0u;
{{STORE}}
}
