// Narrows P.len f32s of src, from element P.src_off, into elements [P.dst_off, P.dst_off + P.len) of a
// 16-bit tensor. One invocation per 32-bit word of the destination, so that no two invocations write
// one word; the word at either end of the run keeps the half outside it, read from the destination
// first (a batch chunk of an odd number of elements ends inside a word). Words only: naga cannot
// bitcast f16s to bits, and WebGPU allows no second writable view of the buffer, so an f16 binding could
// not write the exact special values; the native path narrows with the pack builtins.

@group(0) @binding(0) var<uniform> P: HalfParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> hw: array<u32>; // the 16-bit tensor, by words

{{HALF_CODE}}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wid, nwg, lid);
    if (i >= P.total) {
        return;
    }
    let wi = P.dst_off / 2u + i;
    let e0 = 2u * wi;
    let end = P.dst_off + P.len;
    let in0 = e0 >= P.dst_off && e0 < end;
    let in1 = e0 + 1u >= P.dst_off && e0 + 1u < end;
    var lo = 0u;
    if (in0) {
        lo = src[P.src_off + e0 - P.dst_off];
    }
    var hi = 0u;
    if (in1) {
        hi = src[P.src_off + e0 + 1u - P.dst_off];
    }
    // The bits of the word to keep: the half outside the run, if any.
    let keep = select(0u, 0xffffu, !in0) | select(0u, 0xffff0000u, !in1);
    half_write(wi, lo, hi, keep);
}
