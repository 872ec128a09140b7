// A batch of B matrices R×C transposed, out[b, c, r] = src[b, r, c], one invocation per output row
// (b, c): it reads its column of the source, C elements apart, and writes R consecutive elements.
// For CPU adapters, where an invocation is one SIMD lane and a workgroup barrier costs far more than
// on a GPU (`transpose.wgsl` tiles through workgroup memory for the GPU class). PrepParams: n = B,
// h = R, w = C, total = B·C.

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = flat_id(wid, nwg, lid);
    if (row >= P.total) {
        return;
    }
    var at = (row / P.w) * P.h * P.w + row % P.w;
    let out = row * P.h;
    for (var r = 0u; r < P.h; r++) {
        dst[out + r] = src[at];
        at += P.w;
    }
}
