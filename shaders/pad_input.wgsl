// Copies X (N×C×H×W) into a zero-padded buffer Xp (N×C×Hp×Wp), X at offset (ph, pw), so that the blocked
// kernels read every tap without bounds checks. Hp and Wp may exceed H + 2·ph and W + 2·pw: the extra
// zeros let the last tile of a row read past the last output without leaving the buffer.

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> xp: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let wq = id % P.wp;
    let hq = (id / P.wp) % P.hp;
    let plane = id / (P.wp * P.hp);
    var v = 0.0;
    if (hq >= P.ph && hq < P.h + P.ph && wq >= P.pw && wq < P.w + P.pw) {
        v = x[(plane * P.h + hq - P.ph) * P.w + wq - P.pw];
    }
    xp[id] = v;
}
