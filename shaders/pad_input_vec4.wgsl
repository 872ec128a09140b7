// pad_input.wgsl for inputs whose rows are whole vec4s (W % 4 = 0): each vec4 of a padded row is cut
// from two neighbouring aligned vec4s of the source row, the second of which the next one reuses, so a
// row costs W/4 + 1 vector loads instead of W scalar ones. On a CPU adapter every load runs lane by
// lane, four floats at a time as cheaply as one.
//
// Output vec4 m holds source columns 4m − pw … 4m − pw + 3, which start at element r of source vec4
// m − ⌈pw/4⌉, with r = 4·⌈pw/4⌉ − pw. Source vec4s outside the row, and rows of padding, read as zeros.

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> xp: array<vec4<f32>>;

// Vec4 `a` of the source row starting at vec4 `src`.
fn source(row_in: bool, src: u32, a: i32) -> vec4<f32> {
    let wv = i32(P.w / 4u);
    return select(vec4<f32>(0.0), x[src + u32(clamp(a, 0, wv - 1))], row_in && a >= 0 && a < wv);
}

// Elements r … r + 3 of lo followed by hi.
fn cut(lo: vec4<f32>, hi: vec4<f32>, r: u32) -> vec4<f32> {
    let low = select(lo, vec4<f32>(lo.yzw, hi.x), r == 1u);
    let high = select(vec4<f32>(lo.zw, hi.xy), vec4<f32>(lo.w, hi.xyz), r == 3u);
    return select(low, high, r >= 2u);
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
    let src = pr.src * (P.w / 4u);
    let lead = i32((P.pw + 3u) / 4u);
    let r = u32(lead) * 4u - P.pw;
    let wv = P.wp / 4u;
    var lo = source(row_in, src, -lead);
    for (var m = 0u; m < wv; m++) {
        let hi = source(row_in, src, i32(m) + 1 - lead);
        xp[row * wv + m] = cut(lo, hi, r);
        lo = hi;
    }
}
