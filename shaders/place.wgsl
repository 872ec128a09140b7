// Puts planes of h×w (X, N·C of them) into planes of hp×wp (Y), at the origin: the rows and columns
// of Y beyond X's are 0, those of X beyond Y's are left out; with the bias flag, b[c] is added to
// every element of plane c. A transposed convolution's output whose last rows only the bias reaches
// (its frame extends the convolution it is computed as), and its gradients' view of dY without them
// (the frame cropped), are this copy.
//
// One invocation per row of Y (`total` = N·C·hp rows), a loop along it: no division per element (see
// pad_input.wgsl).

@group(0) @binding(0) var<uniform> P: PrepParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = flat_id(wid, nwg, lid);
    if (row >= P.total) {
        return;
    }
    // pad_row with no leading padding (ph = 0): whether the row is one of X's, and its start.
    let pr = pad_row(row, P);
    let src = pr.src * P.w;
    let has_bias = (P.flags & 1u) != 0u;
    let b = select(0.0, bias[min((row / P.hp) % P.c, arrayLength(&bias) - 1u)], has_bias);
    for (var wq = 0u; wq < P.wp; wq++) {
        let v = select(0.0, x[src + min(wq, P.w - 1u)], pr.in_x && wq < P.w);
        // Added only with a bias: -0 + 0 would turn a copied -0 into +0.
        y[row * P.wp + wq] = select(v, v + b, has_bias);
    }
}
