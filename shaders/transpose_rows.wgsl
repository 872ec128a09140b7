// A batch of B matrices R×C transposed, out[b, c, r] = src[b, r, c], one invocation per run of at most
// P.chunk elements of an output row (b, c), P.splits runs per row: it reads its column of the source, C
// elements apart, and writes consecutive elements. Runs, not whole rows, keep one invocation's loop
// within the driver's budget on any plane (plan::loops::TRANSPOSE_RUN). For CPU adapters, where an
// invocation is one SIMD lane and a workgroup barrier costs far more than on a GPU (`transpose.wgsl`
// tiles through workgroup memory for the GPU class). PrepParams: n = B, h = R, w = C,
// total = B·C·splits.

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let row = id / P.splits;
    let r0 = (id % P.splits) * P.chunk;
    let r1 = min(r0 + P.chunk, P.h);
    var at = (row / P.w) * P.h * P.w + r0 * P.w + row % P.w;
    let out = row * P.h;
    for (var r = r0; r < r1; r++) {
        dst[out + r] = src[at];
        at += P.w;
    }
}
