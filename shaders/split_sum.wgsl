// Adds `splits` partial results in a fixed order: out[e] = Σ_b Σ_{s in block b} partial[s·len + e],
// blocks of 16 consecutive splits summed first and the block sums then added in order, so that the
// rounding error grows with 16 + splits/16 rather than with splits. The second pass of the split
// reductions; the fixed order makes the sum the same bits every run.

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const BLOCK: u32 = 16u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    var acc = 0.0;
    for (var s0 = 0u; s0 < P.splits; s0 += BLOCK) {
        var block = 0.0;
        for (var s = s0; s < min(s0 + BLOCK, P.splits); s++) {
            block += partial[s * P.total + e];
        }
        acc += block;
    }
    out[e] = acc;
}
