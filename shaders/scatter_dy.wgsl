// The input of the transposed convolution: dY spread out by the stride and framed in zeros,
//   B[n, k, p·sh + dh·(S−1) − ph, q·sw + dw·(T−1) − pw] = dY[n, k, p, q],  0 elsewhere,
// in an N×K×Hp×Wp buffer with Hp = H + dh·(S−1). The stride-1 valid correlation of B with the flipped
// filters (flip_weights.wgsl) is then exactly dX (docs/derivation.md), so the input gradient runs on
// the tiled forward kernel for every stride, at the price of the multiplications by inserted zeros.
//
// One invocation per row of B (`total` = N·K·Hp rows), written as vec4s (Wp % 4 = 0). Along the row the
// phase (col − ow) mod sw and the dY column (col − ow) / sw are counted up rather than divided out:
// integer division runs lane by lane on a CPU adapter (see pad_input.wgsl).

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;              // N×K×P×Q
@group(0) @binding(2) var<storage, read_write> b: array<vec4<f32>>;   // N×K×Hp×Wp

// The walk along a row: `col` the next column of B, `phase` and `qi` as above once col ≥ ow.
struct Walk {
    col: u32, phase: u32, qi: u32,
}

// B at column w.col of a row whose dY row starts at `src`, and the walk moved one column on.
fn step(w: ptr<function, Walk>, row_in: bool, src: u32, ow: u32) -> f32 {
    let at = (*w).col >= ow;
    let v = select(0.0, dy[src + min((*w).qi, P.q - 1u)], row_in && at && (*w).phase == 0u && (*w).qi < P.q);
    let wrap = at && (*w).phase + 1u == P.sw;
    (*w).qi = select((*w).qi, (*w).qi + 1u, wrap);
    (*w).phase = select((*w).phase, select((*w).phase + 1u, 0u, wrap), at);
    (*w).col += 1u;
    return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = flat_id(wid, nwg, lid);
    if (row >= P.total) {
        return;
    }
    let hrow = row % P.hp;
    let plane = row / P.hp;
    // The host checked ph ≤ dh·(S−1) and pw ≤ dw·(T−1), so the offsets are not negative.
    let oh = P.dh * (P.s - 1u) - P.ph;
    let ow = P.dw * (P.t - 1u) - P.pw;
    let r = max(hrow, oh) - oh;
    let row_in = hrow >= oh && r % P.sh == 0u && r / P.sh < P.p;
    let src = (plane * P.p + min(r / P.sh, P.p - 1u)) * P.q;
    var w = Walk(0u, 0u, 0u);
    let wv = P.wp / 4u;
    for (var m = 0u; m < wv; m++) {
        let v0 = step(&w, row_in, src, ow);
        let v1 = step(&w, row_in, src, ow);
        let v2 = step(&w, row_in, src, ow);
        let v3 = step(&w, row_in, src, ow);
        b[row * wv + m] = vec4<f32>(v0, v1, v2, v3);
    }
}
