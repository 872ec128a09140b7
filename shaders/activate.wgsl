// y[e] = act(z[e]) (`P.mode` 0), or dz[e] = dy[e] · act′(z[e]) (`P.mode` 1, `g` the incoming
// gradient), over `len` elements: the activation as a pass of its own, for a layer that does not fuse
// it and as the baseline the fused stores are measured against. Functions in activation.wgsl.

struct ActParams {
    len: u32, kind: u32, a: f32, b: f32, mode: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> P: ActParams;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= P.len) {
        return;
    }
    if (P.mode == 0u) {
        out[e] = act(P.kind, P.a, P.b, z[e]);
    } else {
        out[e] = g[e] * act_grad(P.kind, P.a, P.b, z[e]);
    }
}
