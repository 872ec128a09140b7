// Weight gradient, one weight element per invocation and range of rows:
//   dW[k,cg,i,j] = Σ_n Σ_p Σ_q X[n, g·C/G + cg, p·sh + i·dh − ph, q·sw + j·dw − pw] · dY[n,k,p,q]
// The reduction over N·P·Q is long, so each output row (fixed n, p) is summed on its own and then added
// to the total: the rounding error grows with Q + N·P instead of N·P·Q, and the order is fixed. The N·P
// rows are cut into P.splits ranges of P.chunk rows, as many as keep one invocation's loops within the
// driver's budget (plan::loops): with one range the sum goes straight to dW; with more, range s writes
// its sum to slot s of a temporary and split_sum.wgsl adds the slots in order.

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // N×C×H×W
@group(0) @binding(2) var<storage, read> dy: array<f32>;         // N×K×P×Q
@group(0) @binding(3) var<storage, read_write> dw_out: array<f32>; // splits × K×(C/G)×S×T

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    if (id >= P.total) {
        return;
    }
    let len = P.k * P.cpg * P.s * P.t;
    let idx = id % len;
    let split = id / len;
    let j = idx % P.t;
    let i = (idx / P.t) % P.s;
    let cg = (idx / (P.t * P.s)) % P.cpg;
    let k = idx / (P.t * P.s * P.cpg);
    let c = (k / P.kpg) * P.cpg + cg;
    let first = split * P.chunk;
    let end = min(first + P.chunk, P.n * P.p);
    var acc = 0.0;
    for (var row = first; row < end; row++) {
        let n = row / P.p;
        let p = row % P.p;
        let hp = p * P.sh + i * P.dh;
        if (hp < P.ph || hp >= P.h + P.ph) {
            continue;
        }
        let x_row = ((n * P.c + c) * P.h + hp - P.ph) * P.w;
        let dy_row = ((n * P.k + k) * P.p + p) * P.q;
        var sum = 0.0;
        for (var q = 0u; q < P.q; q++) {
            let wp = q * P.sw + j * P.dw;
            if (wp < P.pw || wp >= P.w + P.pw) {
                continue;
            }
            sum += x[x_row + wp - P.pw] * dy[dy_row + q];
        }
        acc += sum;
    }
    dw_out[id] = acc;
}
