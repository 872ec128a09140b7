// out[e] = a·x[e] + b·y[e]: residuals (Y − Y*) and differences (W − W*) for training on the device.

struct ElemParams {
    len: u32, a: f32, b: f32, _pad: u32,
}

@group(0) @binding(0) var<uniform> E: ElemParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= E.len) {
        return;
    }
    out[e] = E.a * x[e] + E.b * y[e];
}
