// Widens a run of a 16-bit tensor into f32: dst[i] = src element P.src_off + i, for i < P.total. This
// is how a half-precision operand reaches the kernels, which compute in f32 whatever the storage. One
// invocation per element; neighbours read one word, each writes its own f32 (by its bits: a bf16
// subnormal widens to an f32 subnormal, which a float store might flush). naga cannot bitcast f16s to
// u32, so the native path reads each element twice over: its bits from `hw`, its value from `hv`.

@group(0) @binding(0) var<uniform> P: HalfParams;
@group(0) @binding(1) var<storage, read> hw: array<u32>;              // the 16-bit tensor, by words
@group(0) @binding(2) var<storage, read> hv: array<{{HALF_TYPED}}>;  // the same buffer: f16s on the native path
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

{{HALF_CODE}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wid, nwg, lid);
    if (i >= P.total) {
        return;
    }
    dst[i] = half_get(P.src_off + i);
}
