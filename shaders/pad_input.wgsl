// Copies X (N×C×H×W) into a zero-padded buffer Xp (N×C×Hp×Wp), X at offset (ph, pw), so that the blocked
// kernels read every tap without bounds checks. Hp and Wp may exceed H + 2·ph and W + 2·pw: the extra
// zeros let the last tile of a row read past the last output without leaving the buffer.
//
// One invocation per row of Xp (`total` = N·C·Hp rows), written as vec4s (Wp % 4 = 0). A flat index per
// element would cost three integer divisions per element, which a CPU adapter runs lane by lane: on
// lavapipe that made this copy cost as much as the convolution after it on the small layers.

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> xp: array<vec4<f32>>;

// Element `wq` of a padded row whose source row starts at `src` (clamped in range, so every load is
// inside X; `row_in` says whether the row holds data at all).
fn padded(row_in: bool, src: u32, wq: u32) -> f32 {
    let inside = row_in && wq >= P.pw && wq < P.w + P.pw;
    return select(0.0, x[src + min(max(wq, P.pw) - P.pw, P.w - 1u)], inside);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = flat_id(wid, nwg, lid);
    if (row >= P.total) {
        return;
    }
    let pr = pad_row(row, P);
    let row_in = pr.in_x;
    let src = pr.src * P.w;
    let wv = P.wp / 4u;
    for (var m = 0u; m < wv; m++) {
        let wq = 4u * m;
        xp[row * wv + m] = vec4<f32>(padded(row_in, src, wq), padded(row_in, src, wq + 1u),
                                     padded(row_in, src, wq + 2u), padded(row_in, src, wq + 3u));
    }
}
