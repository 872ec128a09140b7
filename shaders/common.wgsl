// Prepended to every convolution kernel (see src/gpu/kernels.rs), after the uniform blocks of the four
// families, which src/gpu/kernels.rs declares from the same field lists as their Rust twins:
// ConvParams (the layer's shape: n, c, h, w, k, s, t, p, q, sh, sw, ph, pw, dh, dw, cpg = C/G,
// kpg = K/G, g, flags, total) for the direct kernels; PrepParams (+ hp, wp, kpad, splits) for the
// padding, spreading, transposing and summing passes; ForwardTileParams (+ hp, wp, qtiles, ptiles,
// ktiles, lanes, qlanes, row_step, row_off, i_step, kpad, one) for the tiled forward kernels;
// GradTileParams (+ hp, wp, ktiles, rtiles, lanes, splits, chunk, qp) for the tiled weight gradients.

// The tile of invocation `id` in the split weight-gradient kernels: reduction chunk `split`, group g,
// first filter k_in (within the group) of BK, and tap tile rt. Order, slowest first: split, filter
// tile (over all groups), tap tile, so neighbouring invocations read the same dY rows. `lanes`
// invocations per (split, filter tile): rtiles, or that rounded up to whole subgroups where a subgroup
// shares its dY loads; the extra ones repeat the last tap tile and store nothing (`live` false).
struct GradTile {
    split: u32, g: u32, k_in: u32, rt: u32, live: bool,
}

fn grad_tile(id: u32, bk: u32, c: GradTileParams) -> GradTile {
    let kt_all = (id / c.lanes) % (c.ktiles * c.g);
    let split = id / (c.lanes * c.ktiles * c.g);
    let rt = min(id % c.lanes, c.rtiles - 1u);
    return GradTile(split, kt_all / c.ktiles, (kt_all % c.ktiles) * bk, rt, id % c.lanes < c.rtiles);
}

// The first kernel row of output row p that reads a data row of the input (see row_step), or S if none
// does. Data rows repeat with period row_step, so a solution, if any, lies below row_step.
fn first_data_row(p: u32, c: ForwardTileParams) -> u32 {
    for (var i = 0u; i < c.row_step; i++) {
        if ((p * c.sh + i * c.dh + c.row_off) % c.row_step == 0u) {
            return i;
        }
    }
    return c.s;
}

// Row `row` of a zero-padded copy of the input, N×C×Hp rows (pad_input.wgsl): whether it holds a row
// of X, and the index of that row in X, N×C×H rows (clamped into X for the rows of padding).
struct PadRow {
    in_x: bool, src: u32,
}

fn pad_row(row: u32, c: PrepParams) -> PadRow {
    let hq = row % c.hp;
    let plane = row / c.hp;
    return PadRow(hq >= c.ph && hq < c.h + c.ph, plane * c.h + min(max(hq, c.ph) - c.ph, c.h - 1u));
}

// Workgroup size; a pipeline-overridable constant so that variants can be tuned per adapter.
override WG: u32 = 64u;

// The flat invocation index of a 2-D dispatch. A 1-D dispatch is capped at 65,535 workgroups, so large
// problems spread their workgroups over x and y.
fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// The output tile of invocation `id` in the tiled forward kernels: batch n, group g, first filter
// k_in (within the group) of BK, first row p of BR, first column q0 of BQ. Order, slowest first: n,
// filter tile (over all groups), row tile, column tile, so neighbouring invocations share their
// weights and read neighbouring inputs.
// Each (n, filter tile) has `lanes` invocations, `qlanes` per row tile. Where a subgroup shares its
// weights, `lanes` is rounded up to whole subgroups so that a subgroup works on one filter tile, and
// where the kernel rows depend on the output row, `qlanes` is too (qtiles otherwise), so that a
// subgroup works on one row. The invocations past the last tile repeat it and store nothing (`live`).
struct Tile {
    n: u32, g: u32, k_in: u32, p: u32, q0: u32, live: bool,
}

fn forward_tile(id: u32, bk: u32, br: u32, bq: u32, c: ForwardTileParams) -> Tile {
    let pq = id % c.lanes;
    let pt = pq / c.qlanes;
    let qt = pq % c.qlanes;
    let kt_all = (id / c.lanes) % (c.ktiles * c.g);
    let n = id / (c.lanes * c.ktiles * c.g);
    return Tile(n, kt_all / c.ktiles, (kt_all % c.ktiles) * bk, min(pt, c.ptiles - 1u) * br,
                min(qt, c.qtiles - 1u) * bq, pt < c.ptiles && qt < c.qtiles);
}

// A place in a reduction written as three digits (x, y, z), y < ry and z < rz (the GEMM kernels': a
// channel and the two tap indices, or a sample, a row and a column). The digits of r: the one
// division, at set-up.
fn digits_of(r: u32, ry: u32, rz: u32) -> vec3<u32> {
    return vec3<u32>(r / (ry * rz), (r / rz) % ry, r % rz);
}

// a + d digit by digit, both in digits (d.y < ry, d.z < rz): at most one carry per digit, so the
// kernels move through their reduction without dividing.
fn digits_add(a: vec3<u32>, d: vec3<u32>, ry: u32, rz: u32) -> vec3<u32> {
    var z = a.z + d.z;
    var y = a.y + d.y;
    if (z >= rz) {
        z -= rz;
        y += 1u;
    }
    var x = a.x + d.x;
    if (y >= ry) {
        y -= ry;
        x += 1u;
    }
    return vec3<u32>(x, y, z);
}
