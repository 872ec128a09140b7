// Weights rearranged for vector loads: Wt[g, r, kk] = W[g·K/G + kk, r] for each tap r = (cg, i, j), with
// the filters of a group contiguous and their count padded with zeros to `kpad` (a multiple of the
// tile's filter count, itself a multiple of 4), so a tile's weights for one tap are whole vec4s.

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> wt: array<f32>;       // K×(C/G)×S×T
@group(0) @binding(2) var<storage, read_write> wtt: array<f32>; // G×((C/G)·S·T)×kpad

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let taps = P.cpg * P.s * P.t;
    let kk = e % P.kpad;
    let r = (e / P.kpad) % taps;
    let g = e / (P.kpad * taps);
    var v = 0.0;
    if (kk < P.kpg) {
        v = wt[(g * P.kpg + kk) * taps + r];
    }
    wtt[e] = v;
}
