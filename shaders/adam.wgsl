// One Adam step on every parameter (Kingma & Ba, 2015):
//   m ← β1·m + (1−β1)·g,   v ← β2·v + (1−β2)·g²,   w ← w − lr·m̂ / (√v̂ + ε)
// with the bias corrections m̂ = m / (1−β1ᵗ), v̂ = v / (1−β2ᵗ) folded into lr_t and eps_t by the host.

struct AdamParams {
    len: u32, lr_t: f32, beta1: f32, beta2: f32,
    eps_t: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> A: AdamParams;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> w: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= A.len) {
        return;
    }
    let g = grad[e];
    let m1 = A.beta1 * m[e] + (1.0 - A.beta1) * g;
    let v1 = A.beta2 * v[e] + (1.0 - A.beta2) * g * g;
    m[e] = m1;
    v[e] = v1;
    w[e] = w[e] - A.lr_t * m1 / (sqrt(v1) + A.eps_t);
}
