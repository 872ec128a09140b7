// A batch of B matrices R×C transposed: out[b, c, r] = src[b, r, c]. It moves activations between NHWC
// and NCHW ([N, H·W, C] ↔ [N, C, H·W]) and weights between OHWI and OIHW ([K, S·T, C/G] ↔ [K, C/G, S·T])
// on the device, so that a channels-last caller's tensors never go through the host.
//
// PrepParams: n = B, h = R, w = C. Each workgroup of 64 moves one 16×16 tile through workgroup memory:
// it reads the tile's rows (16 consecutive source elements per row) and writes its columns (16
// consecutive output elements), so both sides touch memory in runs rather than C or R elements apart.
// The tile's pitch of 17 keeps a column's 16 elements in different banks. Workgroups past the last
// tile return before the barrier; the test is uniform across the workgroup.

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

var<workgroup> tile: array<array<f32, 17>, 16>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let tr = (P.h + 15u) / 16u;
    let tc = (P.w + 15u) / 16u;
    let wg = wid.y * nwg.x + wid.x;
    if (wg >= P.n * tr * tc) {
        return;
    }
    let base = (wg / (tr * tc)) * P.h * P.w;
    let r0 = ((wg / tc) % tr) * 16u;
    let c0 = (wg % tc) * 16u;
    // 64 invocations over 16 columns × 4 rows, four times down the tile. WG is 64 for every kernel.
    let lx = lid % 16u;
    let ly = lid / 16u;
    for (var m = 0u; m < 16u; m += 4u) {
        let r = r0 + ly + m;
        let c = c0 + lx;
        if (r < P.h && c < P.w) {
            tile[ly + m][lx] = src[base + r * P.w + c];
        }
    }
    workgroupBarrier();
    for (var m = 0u; m < 16u; m += 4u) {
        let c = c0 + ly + m;
        let r = r0 + lx;
        if (r < P.h && c < P.w) {
            dst[base + c * P.h + r] = tile[lx][ly + m];
        }
    }
}
