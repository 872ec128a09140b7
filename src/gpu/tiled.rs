//! Generated parts of the tiled kernels: the register tile unrolled into named scalars.
//!
//! A tile of `BK × BQ` accumulators written as an array indexed in loops is left in memory by some
//! shader compilers (lavapipe's among them: measured 2–4× slower here), so the lines that touch the
//! tile are generated for each tile size and spliced into the `{{...}}` markers of the WGSL file.
//! Which variant runs is the planner's decision ([`crate::plan`]); this file only renders it.

use crate::elem::{Elem, HalfPath};
use crate::plan::variant::{AStage, ForwardVec4, GemmTile, Load, Pad, Sharing, Store, Variant, Window};

/// Values for the `{{NAME}}` markers of a kernel's WGSL.
pub(crate) type Subs = Vec<(&'static str, String)>;

impl Variant {
    /// The generated code of this variant.
    pub(crate) fn subs(&self) -> Subs {
        match *self {
            Self::Plain => Vec::new(),
            Self::Forward { bk, bq, window } => forward_code(bk, bq, window),
            Self::WeightGrad { bk, br } => weight_grad_code(bk, br),
            Self::ForwardVec4(v) => forward_vec4_code(v),
            Self::WeightGradVec4 { bk, br, wd, share } => weight_grad_vec4_code(bk, br, wd, share),
            Self::ConvGemm(t, a, load) => {
                let put = |i, j| format!("put(g, m0 + tr + {i}u * MT, c0 + tc + {j}u * NT, c{i}_{j});");
                let mut subs = gemm_code(t, "r0", put);
                subs.extend(a_stage(t, a));
                subs.extend(loads(load, "src", "wt", a));
                // B is staged a column per invocation and pass of min(BN, THREADS) columns,
                // BK·min(BN, THREADS)/THREADS steps each.
                let bnl = t.bn.min(t.threads());
                subs.push(("BNL", bnl.to_string()));
                subs.push(("CPT", (t.bn / bnl).to_string()));
                subs.push(("RPT", (t.bk * bnl / t.threads()).to_string()));
                subs
            }
            Self::WeightGradGemm(t, a, load) => {
                let put = |i, j| format!("put(out, m0, r0, tr + {i}u * MT, tc + {j}u * NT, c{i}_{j});");
                let mut subs = gemm_code(t, "c", put);
                subs.extend(dy_stage(t, a));
                subs.extend(loads(load, "x", "dy", a));
                subs.push(("B_LOADS", (t.bn * t.bk / t.threads()).to_string()));
                subs
            }
            Self::Widen(elem, path) => widen_code(elem, path),
            Self::Narrow(elem, path) => narrow_code(elem, path),
        }
    }
}

/// How `conv2d_gemm.wgsl` stages the weights (see [`AStage`]): the binding's element type, the
/// set-up and the staging lines of each round.
fn a_stage(t: GemmTile, a: AStage) -> Subs {
    match a {
        AStage::Taps => vec![
            (
                "A_SETUP",
                "    // Staging A: this invocation's reduction step ak of each round, rows\n    \
                 // lid / BK + u·(THREADS / BK).\n    \
                 let ak = lid % BK;\n    var ta = tap_of(ak);\n    let a_round = tap_of(BK);"
                    .into(),
            ),
            (
                "A_STAGE",
                "            let ra = r0 + ak;
            let a_at = g * P.a_gs + ta.x * P.a_os + P.a_hb + ta.y * P.a_hs + P.a_wb + ta.z * P.a_ws;
            for (var u = 0u; u < A_LOADS; u++) {
                let lm = lid / BK + u * (THREADS / BK);
                let m = m0 + lm;
                let ok = ra < P.r && m < P.m;
                As[sa + ak * AS + lm] = select(0.0, wt_at(select(0u, a_at + m * P.a_ms, ok)), ok);
            }
            ta = tap_add(ta, a_round);"
                    .into(),
            ),
        ],
        AStage::Vec4 => {
            let stores =
                lines((0..4).map(|e| format!("                As[sa + (4u * a4 + {e}u) * AS + lm] = v.{};", LANE[e])));
            vec![
                (
                    "A_SETUP",
                    "    // Staging A as vec4s along the reduction: steps 4·a4 … 4·a4 + 3 of each round, rows\n    \
                     // lid / (BK / 4) + u·(4·THREADS / BK).\n    let a4 = lid % (BK / 4u);"
                        .into(),
                ),
                (
                    "A_STAGE",
                    format!(
                        "            let r4 = r0 + 4u * a4;
            for (var u = 0u; u < {}u; u++) {{
                let lm = lid / (BK / 4u) + u * (4u * THREADS / BK);
                let m = m0 + lm;
                // R is a multiple of 4: a vec4 lies wholly inside the reduction or wholly past it.
                let ok = r4 < P.r && m < P.m;
                let v = select(vec4<f32>(0.0), wt4_at(select(0u, (g * P.a_gs + m * P.a_ms + r4) / 4u, ok)), ok);
{stores}
            }}",
                        t.bm * t.bk / (4 * t.threads())
                    ),
                ),
            ]
        }
    }
}

/// How a GEMM kernel reads its two operands, `b` (gathered, by element) and `a` (staged by element or,
/// with [`AStage::Vec4`], by vec4): the element types of their bindings (`B_ELEM`, `A_ELEM`) and the
/// functions the staging calls, `{b}_at(i)`, and `{a}_at(i)` or `{a}4_at(i)` (i in vec4s). 16-bit
/// operands are `u32` words (a vec4 is two), converted as `widen.wgsl` converts them.
fn loads(load: Load, b: &str, a: &str, stage: AStage) -> Subs {
    let vec4 = stage == AStage::Vec4;
    if load.elem == Elem::F32 {
        let a_fn = if vec4 {
            format!("fn {a}4_at(i: u32) -> vec4<f32> {{\n    return {a}[i];\n}}")
        } else {
            format!("fn {a}_at(i: u32) -> f32 {{\n    return {a}[i];\n}}")
        };
        return vec![
            ("B_ELEM", "f32".into()),
            ("A_ELEM", if vec4 { "vec4<f32>" } else { "f32" }.into()),
            ("LOADS", format!("fn {b}_at(i: u32) -> f32 {{\n    return {b}[i];\n}}\n\n{a_fn}\n")),
        ];
    }
    let a_fn = if vec4 {
        format!(
            "fn {a}4_at(i: u32) -> vec4<f32> {{\n    let v = {a}[i];\n    \
             return vec4<f32>(h2f(v.x, false), h2f(v.x, true), h2f(v.y, false), h2f(v.y, true));\n}}"
        )
    } else {
        format!("fn {a}_at(i: u32) -> f32 {{\n    return h2f({a}[i >> 1u], (i & 1u) == 1u);\n}}")
    };
    vec![
        ("B_ELEM", "u32".into()),
        ("A_ELEM", if vec4 { "vec2<u32>" } else { "u32" }.into()),
        (
            "LOADS",
            format!(
                "{}\nfn {b}_at(i: u32) -> f32 {{\n    return h2f({b}[i >> 1u], (i & 1u) == 1u);\n}}\n\n{a_fn}\n",
                h2f_code(load.elem, load.path)
            ),
        ),
    ]
}

/// How `conv2d_weight_grad_gemm.wgsl` stages its A operand, dY (see [`AStage`]): the binding's
/// element type, the set-up and the staging lines of each round.
fn dy_stage(t: GemmTile, a: AStage) -> Subs {
    match a {
        AStage::Taps => vec![
            ("A_SETUP", String::new()),
            (
                "A_STAGE",
                "            let a_at = at.x * P.k * pq + (g * P.kpg + m0) * pq + at.y * P.q + at.z;
            for (var u = 0u; u < A_LOADS; u++) {
                let lm = lid / BK + u * (THREADS / BK);
                let ok = live && m0 + lm < P.kpg;
                As[sa + lk * AS + lm] = select(0.0, dy_at(select(0u, a_at + lm * pq, ok)), ok);
            }"
                .into(),
            ),
        ],
        AStage::Vec4 => {
            let stores =
                lines((0..4).map(|e| format!("                As[sa + (4u * a4 + {e}u) * AS + lm] = v.{};", LANE[e])));
            vec![
                (
                    "A_SETUP",
                    "    // Staging dY as vec4s along the reduction: columns 4·a4 … 4·a4 + 3 of each round, rows\n    \
                     // lid / (BK / 4) + u·(4·THREADS / BK). P·Q and the range are multiples of 4: a vec4 lies\n    \
                     // in one plane, wholly inside the range or wholly past its end.\n    \
                     let a4 = lid % (BK / 4u);\n    var at4 = pix_of(first + 4u * a4);"
                        .into(),
                ),
                (
                    "A_STAGE",
                    format!(
                        "            let live4 = first + c + 4u * a4 < end;
            let a_at = at4.x * P.k * pq + (g * P.kpg + m0) * pq + at4.y * P.q + at4.z;
            for (var u = 0u; u < {}u; u++) {{
                let lm = lid / (BK / 4u) + u * (4u * THREADS / BK);
                let ok = live4 && m0 + lm < P.kpg;
                let v = select(vec4<f32>(0.0), dy4_at(select(0u, (a_at + lm * pq) / 4u, ok)), ok);
{stores}
            }}
            at4 = pix_add(at4, round);",
                        t.bm * t.bk / (4 * t.threads())
                    ),
                ),
            ]
        }
    }
}

/// The tile constants and the generated lines of the GEMM kernels: `c{i}_{j}` accumulators, the
/// round that multiplies the staged slabs (`p{i}_{j}` its partial sums, `a{i}`, `b{j}` the operands
/// of one reduction step); `step` names the kernel's round variable (the reduction step the round
/// stages), `store(i, j)` writes accumulator (i, j).
fn gemm_code(t: GemmTile, step: &str, store: impl Fn(usize, usize) -> String) -> Subs {
    let GemmTile { bm, bn, bk, tm, tn, stages } = t;
    let cells = grid(tm, tn);
    let loads = lines((0..tm).map(|i| format!("            let a{i} = As[ao + kk * AS + tr + {i}u * MT];")))
        + "\n"
        + &lines((0..tn).map(|j| format!("            let b{j} = Bs[bo + kk * BS + tc + {j}u * NT];")));
    let fma = lines(cells.clone().map(|(i, j)| format!("            p{i}_{j} = fma(a{i}, b{j}, p{i}_{j});")));
    // One round on the staged slabs: the BK products of each accumulator into a fresh partial sum,
    // then into the accumulator.
    let parts = lines(cells.clone().map(|(i, j)| format!("        var p{i}_{j} = 0.0;")));
    let adds = lines(cells.clone().map(|(i, j)| format!("        c{i}_{j} += p{i}_{j};")));
    let multiply = |at: &str| {
        format!(
            "        let ao = {at} * A_SLAB;\n        let bo = {at} * B_SLAB;\n{parts}\n        for (var kk = 0u; kk < BK; kk++) {{\n{loads}\n{fma}\n        }}\n{adds}"
        )
    };
    let round = if stages == 1 {
        // Barriers on both sides: the slabs just staged are read, then rewritten next round.
        format!("        workgroupBarrier();\n        {{\n{}\n        }}\n        workgroupBarrier();", multiply("0u"))
    } else {
        // The slabs staged last round (none in the first): this round's stores went to the other
        // pair, and the one barrier after both keeps next round's stores off the pair read here.
        format!(
            "        if ({step} >= BK) {{\n{}\n        }}\n        workgroupBarrier();",
            multiply(&format!("(({step} / BK + 1u) % STAGES)"))
        )
    };
    let threads = t.threads();
    vec![
        ("BM", bm.to_string()),
        ("BN", bn.to_string()),
        ("BK", bk.to_string()),
        ("MT", (bm / tm).to_string()),
        ("NT", (bn / tn).to_string()),
        ("THREADS", threads.to_string()),
        ("STAGES", stages.to_string()),
        ("A_LOADS", (bm * bk / threads).to_string()),
        ("A_LEN", (stages * bk * (bm + 1)).to_string()),
        ("B_LEN", (stages * bk * (bn + 1)).to_string()),
        ("ACC_DECL", lines(cells.clone().map(|(i, j)| format!("    var c{i}_{j} = 0.0;")))),
        ("ROUND", round),
        ("STORE", lines(cells.map(|(i, j)| format!("    {}", store(i, j))))),
    ]
}

/// Opens a loop that runs once, around a block of generated straight-line code. Its bound is the
/// uniform `P.one` (always 1), which no compiler can fold, so the block stays a basic block of its
/// own: for drivers whose compilers grow superlinearly with a block's length
/// ([`AdapterProfile::fence_blocks`](crate::plan::AdapterProfile::fence_blocks)).
const FENCE: &str = "for (var once = 0u; once < P.one; once++)";

/// The components of a vec4, by index.
const LANE: [&str; 4] = ["x", "y", "z", "w"];

/// Value `e` of a subgroup's shared loads: the first 8 lanes each load one value into
/// `{name}0`, `{name}1` … (lane l's `{name}m` is value 8·m + l), and every lane reads value e from lane
/// e % 8.
fn broadcast(name: &str, e: usize) -> String {
    format!("subgroupBroadcast({name}{}, {}u)", e / 8, e % 8)
}

/// `k{v}`, the filter of tile row v, clamped into the group (rows past its end repeat the last filter
/// and store nothing).
fn k_index(bk: usize) -> String {
    lines((0..bk).map(|v| format!("    let k{v} = g * P.kpg + min(k_in + {v}u, P.kpg - 1u);")))
}

fn lines(it: impl Iterator<Item = String>) -> String {
    it.collect::<Vec<_>>().join("\n")
}

fn grid(a: usize, b: usize) -> impl Iterator<Item = (usize, usize)> + Clone {
    (0..a).flat_map(move |v| (0..b).map(move |u| (v, u)))
}

fn forward_code(bk: usize, bq: usize, window: Option<Window>) -> Subs {
    let t = grid(bk, bq);
    let fmas = |indent: &str, x: &dyn Fn(usize) -> String, tap: &str| {
        lines((0..bk).map(|v| {
            let f = lines((0..bq).map(|u| format!("{indent}a{v}_{u} = fma(w{v}, {}, a{v}_{u});", x(u))));
            format!("{indent}let w{v} = wt[wo{v} + {tap}];\n{f}")
        }))
    };
    let row = match window {
        None => {
            let loads = lines((0..bq).map(|u| format!("                let x{u} = xp[xb + {u}u * P.sw];")));
            let body = fmas("                ", &|u| format!("x{u}"), "w_row + j");
            format!(
                "            for (var j = 0u; j < P.t; j++) {{\n                let xb = x_row + j * P.dw;\n{loads}\n{body}\n            }}"
            )
        }
        Some(wd) => {
            let loads = lines((0..wd.len(bq)).map(|m| format!("            let x{m} = xp[x_row + {m}u];")));
            // Each tap in its own block: the weights w0 … are named afresh per tap.
            let taps = lines((0..wd.t).map(|j| {
                let body =
                    fmas("                ", &|u| format!("x{}", u * wd.sw + j * wd.dw), &format!("w_row + {j}u"));
                format!("            {{\n{body}\n            }}")
            }));
            format!("{loads}\n{taps}")
        }
    };
    vec![
        ("BK", bk.to_string()),
        ("BQ", bq.to_string()),
        (
            "W_OFFSETS",
            lines((0..bk).map(|v| format!("    let wo{v} = (g * P.kpg + min(k_in + {v}u, P.kpg - 1u)) * taps;"))),
        ),
        ("ACC_DECL", lines(t.clone().map(|(v, u)| format!("    var a{v}_{u} = 0.0;")))),
        ("ROW", row),
        ("STORE", lines(t.map(|(v, u)| format!("    acc[{v}][{u}] = a{v}_{u};")))),
    ]
}

fn weight_grad_code(bk: usize, br: usize) -> Subs {
    let t = grid(bk, br);
    vec![
        ("BK", bk.to_string()),
        ("BR", br.to_string()),
        (
            "TAP_OFFSETS",
            lines((0..br).map(|u| {
                format!(
                    "    let t{u} = min(r0 + {u}u, taps - 1u);\n    let xo{u} = (t{u} / st) * plane + ((t{u} % st) / P.t) * P.dh * P.wp + (t{u} % P.t) * P.dw;"
                )
            })),
        ),
        ("K_INDEX", k_index(bk)),
        ("ACC_DECL", lines(t.clone().map(|(v, u)| format!("    var a{v}_{u} = 0.0;\n    var s{v}_{u} = 0.0;")))),
        ("FOLD", lines(t.clone().map(|(v, u)| format!("            s{v}_{u} += a{v}_{u};\n            a{v}_{u} = 0.0;")))),
        ("DY_ROWS", lines((0..bk).map(|v| format!("        let dr{v} = ((n * P.k + k{v}) * P.p + p) * P.q;")))),
        (
            "FMA",
            lines((0..br).map(|u| format!("            let x{u} = xp[xq + xo{u}];")).chain((0..bk).map(|v| {
                let fmas = lines((0..br).map(|u| format!("            a{v}_{u} = fma(d{v}, x{u}, a{v}_{u});")));
                format!("            let d{v} = dy[dr{v} + q];\n{fmas}")
            }))),
        ),
        (
            "STORE",
            lines(t.map(|(v, u)| {
                format!(
                    "    if (k_in + {v}u < P.kpg && r0 + {u}u < taps) {{ partial[out + k{v} * taps + r0 + {u}u] = s{v}_{u} + a{v}_{u}; }}"
                )
            })),
        ),
    ]
}

/// Loads the `count` vec4s of `wt` whose offsets `at(e)` gives (a WGSL expression in `e`) into
/// `{name}0`, `{name}1` …, one vec4 per lane of 8, and returns the lines and, for each vec4, the
/// expression that reads it.
fn shared_loads(indent: &str, name: &str, count: usize, at: &dyn Fn(&str) -> String) -> (String, Vec<String>) {
    let loads = lines((0..count.div_ceil(8)).map(|m| {
        let e = format!("min(sg % 8u + {}u, {}u)", 8 * m, count - 1);
        format!("{indent}let {name}{m} = wt[{}];", at(&format!("({e})")))
    }));
    let reads = (0..count).map(|e| broadcast(name, e)).collect();
    (loads, reads)
}

fn forward_vec4_code(v: ForwardVec4) -> Subs {
    let ForwardVec4 { bk, bq, wd, rows, pad, share, store, cols } = v;
    let br = rows.map_or(1, |r| r.br);
    let acc = || (0..bk).flat_map(move |v| (0..br).flat_map(move |r| (0..bq).map(move |u| (v, r, u))));
    // Reading dY itself (Cols::lead): window column m, when it holds data, is element (m − m0) / step
    // of the dense window, which starts at element r of vec4 c0.
    let dense = cols.and_then(|c| c.lead.map(|lead| (c, lead)));
    let m0 = cols.map_or(0, |c| (c.step - c.phase) % c.step);
    let r = dense.map_or(0, |(_, lead)| lead.rem_euclid(4) as usize);
    let element = |m: usize| match dense {
        Some((c, _)) => r + (m - m0) / c.step,
        None => m,
    };
    let len = wd.len(bq);
    let width = match dense {
        Some((c, _)) => r + len.saturating_sub(m0).div_ceil(c.step),
        None => len,
    };
    let col_start = match dense {
        Some((c, lead)) => format!("    let c0 = i32(q0 / {}u) + ({});", 4 * c.step, lead.div_euclid(4)),
        None => "    let c0 = (i32(q0 * P.sw) - i32(P.pw)) / 4;".to_string(),
    };
    // Row xr of the input plane (negative or past the end for padding rows) as vec4 index x_row.
    let row_start = format!(
        "            let xi = {};\n            let row_ok = xi >= 0 && xi < i32(P.hp);\n            let x_row = (x_plane + u32(clamp(xi, 0, i32(P.hp) - 1)) * P.wp) / 4u;",
        if dense.is_some() { "xr / i32(P.row_step)" } else { "xr" }
    );
    let window = |indent: &str| {
        lines((0..width.div_ceil(4)).map(|m| format!("{indent}let xv{m} = xw(x_row, c0 + {m}, row_ok);")))
    };
    // The multiply-adds of output row r and kernel row i over the current window, with the weights of
    // tap j of filter v named by `w(i, j, v)`.
    let data = move |m: usize| cols.is_none_or(|c| (m + c.phase).is_multiple_of(c.step));
    let fmas = |indent: &str, r: usize, j: usize, w: &dyn Fn(usize) -> String| {
        lines((0..bk).flat_map(|v| {
            let w = w(v);
            (0..bq).map(move |u| u * wd.sw + j * wd.dw).enumerate().filter(move |&(_, m)| data(m)).map(move |(u, m)| {
                let e = element(m);
                format!("{indent}a{v}_{r}_{u} = fma({w}, xv{}.{}, a{v}_{r}_{u});", e / 4, LANE[e % 4])
            })
        }))
    };
    let channel = match rows {
        None => {
            let nb = bk.div_ceil(4);
            // Vec4 b of tap j's weights, and the loads that precede the taps.
            let (shared, wv): (String, Vec<String>) = match share {
                Sharing::PerLane => (String::new(), Vec::new()),
                Sharing::Subgroup => shared_loads("            ", "wl", wd.t * nb, &|e| {
                    format!("w_base + (tap_row + {e} / {nb}u) * kv + {e} % {nb}u")
                }),
            };
            let taps = lines((0..wd.t).map(|j| {
                let wl = lines((0..nb).map(|b| match share {
                    Sharing::PerLane => {
                        format!("                let wv{b} = wt[w_base + (tap_row + {j}u) * kv + {b}u];")
                    }
                    Sharing::Subgroup => format!("                let wv{b} = {};", wv[j * nb + b]),
                }));
                let f = fmas("                ", 0, j, &|v| format!("wv{}.{}", v / 4, LANE[v % 4]));
                format!("            {{\n{wl}\n{f}\n            }}")
            }));
            format!(
                "        for (var i = i_first; i < P.s; i += P.i_step) {{\n            let xr = i32(p * P.sh + i * P.dh) - i32(P.ph);\n{row_start}\n            let tap_row = (cg * P.s + i) * P.t;\n{shared}\n{}\n{taps}\n        }}",
                window("            ")
            )
        }
        Some(rt) => {
            let nb = bk.div_ceil(4);
            let count = rt.s * wd.t * nb;
            let (shared, wv) = match share {
                Sharing::PerLane => (String::new(), Vec::new()),
                Sharing::Subgroup => {
                    shared_loads("        ", "wl", count, &|e| format!("w_cg + {e} / {nb}u * kv + {e} % {nb}u"))
                }
            };
            let named = lines((0..count).map(|e| {
                let (tap, b) = (e / nb, e % nb);
                let (i, j) = (tap / wd.t, tap % wd.t);
                match share {
                    Sharing::PerLane => format!("        let w{i}_{j}_{b} = wt[w_cg + {tap}u * kv + {b}u];"),
                    Sharing::Subgroup => format!("        let w{i}_{j}_{b} = {};", wv[e]),
                }
            }));
            let weights = format!("{shared}\n{named}");
            // Input row d (from the tile's first row) feeds output row r through kernel row i when
            // r·sh + i·dh = d. Rows past the plane (only read by output rows past P) read as zeros.
            let last = (br - 1) * rt.sh + (rt.s - 1) * rt.dh;
            let blocks = lines((0..=last).filter_map(|d| {
                let pairs: Vec<(usize, usize)> = (0..br)
                    .flat_map(|r| (0..rt.s).map(move |i| (r, i)))
                    .filter(|&(r, i)| r * rt.sh + i * rt.dh == d)
                    .collect();
                if pairs.is_empty() {
                    return None;
                }
                let f = lines(pairs.iter().flat_map(|&(r, i)| {
                    (0..wd.t).map(move |j| fmas("            ", r, j, &|v| format!("w{i}_{j}_{}.{}", v / 4, LANE[v % 4])))
                }));
                Some(format!(
                    "        {}{{\n            let xr = i32(p * P.sh + {d}u) - i32(P.ph);\n{row_start}\n{}\n{f}\n        }}",
                    if rt.fenced { format!("{FENCE} ") } else { String::new() },
                    window("            ")
                ))
            }));
            format!("        let w_cg = w_base + cg * {}u * kv;\n{weights}\n{blocks}", rt.s * wd.t)
        }
    };
    let stores = lines((0..bk).map(|v| {
        let rows = lines((0..br).map(|r| {
            let cols = match store {
                Store::Scalar => lines(
                    (0..bq).map(|u| format!("            if (q0 + {u}u < P.q) {{ y[yr + {u}u] = a{v}_{r}_{u} + b; }}")),
                ),
                Store::Vec4 => lines((0..bq / 4).map(|m| {
                    let u = 4 * m;
                    format!(
                        "            if (q0 + {u}u < P.q) {{ y[(yr + {u}u) / 4u] = vec4<f32>(a{v}_{r}_{u}, a{v}_{r}_{}, a{v}_{r}_{}, a{v}_{r}_{}) + b; }}",
                        u + 1,
                        u + 2,
                        u + 3
                    )
                })),
            };
            format!(
                "        if (p + {r}u < P.p) {{\n            let yr = ((n * P.k + k) * P.p + p + {r}u) * P.q + q0;\n{cols}\n        }}"
            )
        }));
        format!(
            "    if (k_in + {v}u < P.kpg) {{\n        let k = g * P.kpg + k_in + {v}u;\n        var b = 0.0;\n        if (has_bias) {{\n            b = bias[k];\n        }}\n{rows}\n    }}"
        )
    }));
    vec![
        ("BK", bk.to_string()),
        ("BR", br.to_string()),
        ("BQ", bq.to_string()),
        ("MASKED", (pad == Pad::Mask).to_string()),
        ("COL_START", col_start),
        (
            "Y_TYPE",
            match store {
                Store::Scalar => "f32",
                Store::Vec4 => "vec4<f32>",
            }
            .to_string(),
        ),
        ("SG_PARAM", sg_param(share)),
        ("ACC_DECL", lines(acc().map(|(v, r, u)| format!("    var a{v}_{r}_{u} = 0.0;")))),
        ("CHANNEL", channel),
        ("STORE", stores),
    ]
}

/// The subgroup lane index parameter of an entry point that shares loads across a subgroup.
fn sg_param(share: Sharing) -> String {
    match share {
        Sharing::PerLane => String::new(),
        Sharing::Subgroup => ",\n        @builtin(subgroup_invocation_id) sg: u32".to_string(),
    }
}

fn weight_grad_vec4_code(bk: usize, br: usize, wd: Window, share: Sharing) -> Subs {
    let t = wd.t;
    let span = 3 * wd.sw + (t - 1) * wd.dw + 1;
    let acc = || (0..bk).flat_map(move |v| (0..br).flat_map(move |r| (0..t).map(move |j| (v, r, j))));
    // Filter v's dY values `{name}{v}`, read by `load` from the dY row that starts at a given offset:
    // each from row dr{v}, or, shared, lanes 0–7 reading rows drl0, drl1 (filters l and l + 8) and
    // broadcasting them.
    let dy_loads = |name: &str, load: &dyn Fn(&str) -> String| match share {
        Sharing::PerLane => lines((0..bk).map(|v| format!("            let {name}{v} = {};", load(&format!("dr{v}"))))),
        Sharing::Subgroup => format!(
            "{}\n{}",
            lines((0..bk.div_ceil(8)).map(|h| format!("            let {name}l{h} = {};", load(&format!("drl{h}"))))),
            lines((0..bk).map(|v| format!("            let {name}{v} = {};", broadcast(&format!("{name}l"), v))))
        ),
    };
    let block = {
        let xl = lines((0..br).flat_map(|r| {
            (0..span.div_ceil(4)).map(move |m| format!("            let w{r}_{m} = xv[(xb + ro{r}) / 4u + {m}u];"))
        }));
        let dl = dy_loads("d", &|row| format!("dyv[({row} + q0) / 4u]"));
        let f = lines(acc().flat_map(|(v, r, j)| {
            (0..4).map(move |u| {
                let m = u * wd.sw + j * wd.dw;
                format!(
                    "            a{v}_{r}_{j} = fma(d{v}.{}, w{r}_{}.{}, a{v}_{r}_{j});",
                    LANE[u],
                    m / 4,
                    LANE[m % 4]
                )
            })
        }));
        format!("{xl}\n{dl}\n{f}")
    };
    let tail = {
        let xl =
            lines((0..br).flat_map(|r| {
                (0..t).map(move |j| format!("            let x{r}_{j} = xs[xq + ro{r} + {j}u * P.dw];"))
            }));
        let dl = dy_loads("ds", &|row| format!("dys[{row} + q]"));
        let f = lines(acc().map(|(v, r, j)| format!("            a{v}_{r}_{j} = fma(ds{v}, x{r}_{j}, a{v}_{r}_{j});")));
        format!("{xl}\n{dl}\n{f}")
    };
    vec![
        ("BK", bk.to_string()),
        ("BR", br.to_string()),
        // Offset of kernel row i0 + r inside the (n, cg, p) input block; aligned: Wp % 4 = 0.
        ("ROW_OFFSETS", lines((0..br).map(|r| format!("    let ro{r} = min(i0 + {r}u, P.s - 1u) * P.dh * P.wp;")))),
        ("K_INDEX", k_index(bk)),
        ("ACC_DECL", lines(acc().map(|(v, r, j)| format!("    var a{v}_{r}_{j} = 0.0;\n    var s{v}_{r}_{j} = 0.0;")))),
        (
            "FOLD",
            lines(acc().map(|(v, r, j)| format!("            s{v}_{r}_{j} += a{v}_{r}_{j};\n            a{v}_{r}_{j} = 0.0;"))),
        ),
        (
            "DY_ROWS",
            match share {
                Sharing::PerLane => {
                    lines((0..bk).map(|v| format!("        let dr{v} = ((n * P.k + k{v}) * P.p + p) * qp;")))
                }
                // This lane's filters: lane l of the first 8 loads the rows of filters l, l + 8 ….
                Sharing::Subgroup => lines((0..bk.div_ceil(8)).map(|h| {
                    format!(
                        "        let kl{h} = g * P.kpg + min(k_in + min(sg % 8u + {}u, {}u), P.kpg - 1u);\n        let drl{h} = ((n * P.k + kl{h}) * P.p + p) * qp;",
                        8 * h,
                        bk - 1
                    )
                })),
            },
        ),
        ("SG_PARAM", sg_param(share)),
        ("BLOCK", block),
        ("TAIL", tail),
        (
            "STORE",
            lines(acc().map(|(v, r, j)| {
                format!(
                    "    if (k_in + {v}u < P.kpg && i0 + {r}u < P.s) {{ partial[out + k{v} * taps + (i0 + {r}u) * P.t + {j}u] = s{v}_{r}_{j} + a{v}_{r}_{j}; }}"
                )
            })),
        ),
    ]
}

// The half-precision conversions, rendered for an adapter's `HalfPath`: what `widen.wgsl`,
// `narrow.wgsl` and the GEMM kernels' 16-bit loads convert with.

/// The integer conversions, shared by every path.
const HALF_WGSL: &str = include_str!("../../shaders/half.wgsl");

/// The element type of `widen.wgsl`'s typed binding `hv`: `f16` on the native path; elsewhere plain
/// words, bound but unread. (A read-only alias: WebGPU allows those.)
fn typed(elem: Elem, path: HalfPath, ty: &str) -> String {
    if elem == Elem::F16 && path == HalfPath::Native { ty.to_string() } else { "u32".to_string() }
}

/// `shaders/half.wgsl` and `fn h2f(w: u32, hi: bool) -> f32`, the half of word `w` that `hi` names,
/// for 16-bit words of `elem` on `path`: what `widen.wgsl` and the GEMM kernels' loads
/// (`gpu/tiled.rs`) both convert with, so a staged value has the bits of a widened one. The hardware
/// converts normal halves; zeros, subnormals, infinities and NaN go by integers, so every path gives
/// the bits of `src/elem.rs` even where a driver flushes or canonicalises. The native path converts
/// words as the packed one does (its typed reads are `widen.wgsl`'s own).
pub(crate) fn h2f_code(elem: Elem, path: HalfPath) -> String {
    let body = match (elem, path) {
        (Elem::F16, HalfPath::Packed | HalfPath::Native) => {
            "let h = select(w & 0xffffu, w >> 16u, hi);\n    let v = unpack2x16float(w);\n    \
             return select(bitcast<f32>(f16_bits_to_f32(h)), select(v.x, v.y, hi), f16_normal(h));"
        }
        (Elem::F16, HalfPath::Bits) => "return bitcast<f32>(f16_bits_to_f32(select(w & 0xffffu, w >> 16u, hi)));",
        (Elem::Bf16 | Elem::F32, _) => "return bitcast<f32>(select(w << 16u, w & 0xffff0000u, hi));",
    };
    format!("{HALF_WGSL}\nfn h2f(w: u32, hi: bool) -> f32 {{\n    {body}\n}}\n")
}

/// `widen.wgsl`'s code: `half_get(e)`, the `f32` bits of element `e`.
pub(crate) fn widen_code(elem: Elem, path: HalfPath) -> Subs {
    let code = if elem == Elem::F16 && path == HalfPath::Native {
        // Normal halves through the f16 binding; the rest by integers, as `h2f` does.
        format!(
            "{HALF_WGSL}\nfn half_get(e: u32) -> u32 {{\n    \
             let h = (hw[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu;\n    \
             if (f16_normal(h)) {{\n        return bitcast<u32>(f32(hv[e]));\n    }}\n    \
             return f16_bits_to_f32(h);\n}}\n"
        )
    } else {
        format!(
            "{}\nfn half_get(e: u32) -> u32 {{\n    return bitcast<u32>(h2f(hw[e >> 1u], (e & 1u) == 1u));\n}}\n",
            h2f_code(elem, path)
        )
    };
    vec![("HALF_TYPED", typed(elem, path, "f16")), ("HALF_CODE", code)]
}

/// `narrow.wgsl`'s code: `half_write(wi, lo, hi, keep)`, word `wi` from two `f32`s by their bits,
/// keeping the bits `keep` of the word there.
pub(crate) fn narrow_code(elem: Elem, path: HalfPath) -> Subs {
    let word = match (elem, path) {
        (Elem::Bf16 | Elem::F32, _) => "f32_to_bf16_bits(lo) | (f32_to_bf16_bits(hi) << 16u)".to_string(),
        (Elem::F16, HalfPath::Bits) => "f32_to_f16_bits(lo) | (f32_to_f16_bits(hi) << 16u)".to_string(),
        // The hardware rounds the normal range; the rest goes by integers (SwiftShader's pack gives
        // NaN beyond 65520 where users expect ±∞; drivers may flush subnormals). The native path
        // narrows this way too (see `Variant::narrow`).
        (Elem::F16, HalfPath::Packed | HalfPath::Native) => {
            let pair = "pack2x16float(vec2<f32>(bitcast<f32>(lo), bitcast<f32>(hi)))";
            format!(
                "select(f32_to_f16_bits(lo), {pair} & 0xffffu, f16_normal_f32(lo)) |\n        \
                 select(f32_to_f16_bits(hi) << 16u, {pair} & 0xffff0000u, f16_normal_f32(hi))"
            )
        }
    };
    let code = format!(
        "{HALF_WGSL}\nfn half_write(wi: u32, lo: u32, hi: u32, keep: u32) {{\n    \
         let word = {word};\n    hw[wi] = (word & ~keep) | (hw[wi] & keep);\n}}\n"
    );
    vec![("HALF_CODE", code)]
}
