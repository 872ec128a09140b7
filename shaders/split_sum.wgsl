// Adds `splits` partial results in order: out[e] = Σ_{s < splits} partial[s·len + e]. The second pass
// of the split reductions; the fixed order makes the sum the same bits every run.

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < P.splits; s++) {
        acc += partial[s * P.total + e];
    }
    out[e] = acc;
}
