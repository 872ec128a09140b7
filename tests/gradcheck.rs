//! Finite-difference proof of every gradient.
//!
//! Cost: J(X, W, b) = ½‖conv(X, W) + b − T‖², evaluated with the f64 reference. Its gradients are
//! dW = weight_grad(X, dY), dX = input_grad(dY, W), dB = bias_grad(dY) with dY = Y − T.
//!
//! J is a quadratic in each single coordinate θ, so the central difference (J(θ+ε) − J(θ−ε)) / 2ε has
//! no truncation error at all: what separates it from the true derivative is the f64 rounding of the
//! two evaluations of J, at most 2·γ64_m·J_abs each (m = terms per output plus the outputs summed, J_abs
//! = J on absolute values), hence a finite-difference error bound of 2·γ64_m·J_abs / ε. The f64
//! analytic gradients must meet that bound; the GPU's f32 gradients must meet it plus their own f32
//! bound γ32_L·(the same operation on |inputs|) plus the rounding of dY to f32.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Rng, gamma};
use convgrad::{Conv2dGeometry, Conv2dParams, Layout, reference};
use ndarray::{Array, Array1, Array4, Dimension, Ix1, Ix4};

const EPS: f64 = 1e-2;

fn gamma64(m: usize) -> f64 {
    let mu = m as f64 * f64::EPSILON / 2.0;
    mu / (1.0 - mu)
}

struct Problem {
    x: Array4<f64>,
    w: Array4<f64>,
    b: Array1<f64>,
    target: Array4<f64>,
    params: Conv2dParams,
    geo: Conv2dGeometry,
}

impl Problem {
    fn cost(&self, x: &Array4<f64>, w: &Array4<f64>, b: &Array1<f64>) -> f64 {
        let y = reference::forward(x.view(), w.view(), Some(b.view()), &self.params).unwrap();
        0.5 * (&y - &self.target).mapv(|v| v * v).sum()
    }

    /// Upper bound on the f64 error of the finite differences.
    fn fd_bound(&self) -> f64 {
        let y_abs = reference::forward(
            self.x.mapv(f64::abs).view(),
            self.w.mapv(f64::abs).view(),
            Some(self.b.mapv(f64::abs).view()),
            &self.params,
        )
        .unwrap();
        let j_abs = 0.5 * (&y_abs + &self.target.mapv(f64::abs)).mapv(|v| v * v).sum();
        let m = self.geo.channels_per_group() * self.geo.s * self.geo.t + 3 + y_abs.len();
        2.0 * gamma64(m) * j_abs / EPS
    }
}

/// Central differences of `cost` along every coordinate of `a`.
fn central<D: Dimension>(a: &Array<f64, D>, cost: impl Fn(&Array<f64, D>) -> f64) -> Array<f64, D> {
    let mut fd = a.clone();
    for e in 0..a.len() {
        let (mut plus, mut minus) = (a.clone(), a.clone());
        plus.as_slice_mut().unwrap()[e] += EPS;
        minus.as_slice_mut().unwrap()[e] -= EPS;
        fd.as_slice_mut().unwrap()[e] = (cost(&plus) - cost(&minus)) / (2.0 * EPS);
    }
    fd
}

/// max |a − fd| over the bound, where the bound per element is `fd_tol + extra`.
fn worst_ratio<D: Dimension>(a: &Array<f64, D>, fd: &Array<f64, D>, fd_tol: f64, extra: Option<&Array<f64, D>>) -> f64 {
    a.iter()
        .zip(fd.iter())
        .enumerate()
        .map(|(e, (x, f))| {
            let tol = fd_tol + extra.map_or(0.0, |m| m.iter().nth(e).copied().unwrap_or(0.0));
            let r = (x - f).abs() / tol;
            if r.is_nan() { f64::INFINITY } else { r }
        })
        .fold(0.0, f64::max)
}

fn problems() -> Vec<(&'static str, Problem)> {
    let d = Conv2dParams::new();
    let mut rng = Rng::new(2024);
    let specs = [
        ("single-channel", 1, 1, [7, 8], 2, [3, 2], d),
        ("batch", 3, 2, [5, 6], 2, [2, 2], d),
        ("stride", 1, 2, [8, 7], 3, [3, 2], d.stride(2, 3)),
        ("padding", 2, 1, [5, 5], 2, [3, 3], d.padding(2, 1)),
        ("dilation", 1, 2, [8, 9], 2, [2, 3], d.dilation(3, 2)),
        ("groups", 2, 4, [5, 6], 4, [2, 2], d.groups(2)),
        ("all", 2, 4, [9, 8], 2, [3, 2], d.stride(2, 1).padding(1, 1).dilation(1, 2).groups(2)),
        ("same, even", 2, 2, [6, 5], 2, [2, 4], d.padding_same()),
        ("per side", 1, 2, [6, 7], 2, [3, 2], d.stride(2, 1).padding_sides(0, 2, 1, 0)),
        (
            "nhwc",
            2,
            4,
            [9, 8],
            2,
            [3, 2],
            d.stride(2, 1).padding_sides(1, 0, 0, 1).dilation(1, 2).groups(2).layout(Layout::Nhwc),
        ),
    ];
    specs
        .into_iter()
        .map(|(label, n, c, hw, k, st, params)| {
            let geo = Conv2dGeometry::new(n, c, hw, k, st, params).unwrap();
            let f = |a: Array<f32, Ix4>| a.mapv(f64::from);
            let p = Problem {
                x: f(rng.array(geo.input_shape())),
                w: f(rng.array(geo.weight_shape())),
                b: rng.array::<Ix1, _>(k).mapv(f64::from),
                target: f(rng.array(geo.output_shape())),
                params,
                geo,
            };
            (label, p)
        })
        .collect()
}

#[test]
fn finite_differences_agree_with_reference_and_gpu_gradients() {
    let ctx = common::ctx();
    let mut worst = [0.0f64; 6];
    for (label, pr) in problems() {
        let geo = &pr.geo;
        let y = reference::forward(pr.x.view(), pr.w.view(), Some(pr.b.view()), &pr.params).unwrap();
        let dy = &y - &pr.target;
        let st = [geo.s, geo.t];
        let hw = [geo.h, geo.w];

        let fd_w = central(&pr.w, |w| pr.cost(&pr.x, w, &pr.b));
        let fd_x = central(&pr.x, |x| pr.cost(x, &pr.w, &pr.b));
        let fd_b = central(&pr.b, |b| pr.cost(&pr.x, &pr.w, b));
        let tol = pr.fd_bound();

        // The f64 analytic gradients.
        let dw = reference::weight_grad(pr.x.view(), dy.view(), st, &pr.params).unwrap();
        let dx = reference::input_grad(dy.view(), pr.w.view(), hw, &pr.params).unwrap();
        let db = reference::bias_grad(dy.view(), pr.params.layout);
        let r = [
            worst_ratio(&dw, &fd_w, tol, None),
            worst_ratio(&dx, &fd_x, tol, None),
            worst_ratio(&db, &fd_b, tol, None),
        ];

        // The GPU's f32 gradients, from f32 copies of X, W and dY.
        let (x32, w32, dy32) = (pr.x.mapv(|v| v as f32), pr.w.mapv(|v| v as f32), dy.mapv(|v| v as f32));
        let gw = ctx.conv2d_weight_grad(x32.view(), dy32.view(), st, &pr.params).unwrap().mapv(f64::from);
        let gx = ctx.conv2d_input_grad(dy32.view(), w32.view(), hw, &pr.params).unwrap().mapv(f64::from);
        let gb = ctx.conv2d_bias_grad(dy32.view(), pr.params.layout).unwrap().mapv(f64::from);
        let (ax, aw, ady) = (pr.x.mapv(f64::abs), pr.w.mapv(f64::abs), dy.mapv(f64::abs));
        // f32 bound: γ_L for the sum, plus the three f32 roundings of X, W or dY and of the result.
        let lw = geo.n * geo.p * geo.q;
        let lx = geo.filters_per_group() * geo.s * geo.t;
        let u = common::U32;
        let mw =
            reference::weight_grad(ax.view(), ady.view(), st, &pr.params).unwrap().mapv(|m| (gamma(lw) + 3.0 * u) * m);
        let mx =
            reference::input_grad(ady.view(), aw.view(), hw, &pr.params).unwrap().mapv(|m| (gamma(lx) + 3.0 * u) * m);
        let mb = reference::bias_grad(ady.view(), pr.params.layout).mapv(|m| (gamma(lw) + 2.0 * u) * m);
        let g = [
            worst_ratio(&gw, &fd_w, tol, Some(&mw)),
            worst_ratio(&gx, &fd_x, tol, Some(&mx)),
            worst_ratio(&gb, &fd_b, tol, Some(&mb)),
        ];

        eprintln!(
            "{label:<15} {:<38} fd bound {tol:.1e}; worst |err|/bound: f64 dW {:.3} dX {:.3} dB {:.3}; gpu dW {:.3} dX {:.3} dB {:.3}",
            geo.describe(),
            r[0],
            r[1],
            r[2],
            g[0],
            g[1],
            g[2]
        );
        for (i, v) in r.iter().chain(g.iter()).enumerate() {
            worst[i] = worst[i].max(*v);
            assert!(*v <= 1.0, "{label}: gradient {i} misses the finite-difference bound by {v:.3}×");
        }
    }
    eprintln!("worst over all problems (1.0 = at the bound): {worst:.3?}");
}

/// The check has teeth: a gradient off by one part in 10⁴ in a single element fails the bound.
#[test]
fn a_slightly_wrong_gradient_fails_the_check() {
    let (_, pr) = problems().remove(0);
    let y = reference::forward(pr.x.view(), pr.w.view(), Some(pr.b.view()), &pr.params).unwrap();
    let dy = &y - &pr.target;
    let mut dw = reference::weight_grad(pr.x.view(), dy.view(), [pr.geo.s, pr.geo.t], &pr.params).unwrap();
    let fd_w = central(&pr.w, |w| pr.cost(&pr.x, w, &pr.b));
    assert!(worst_ratio(&dw, &fd_w, pr.fd_bound(), None) <= 1.0);
    dw[[0, 0, 1, 1]] *= 1.0 + 1e-4;
    assert!(worst_ratio(&dw, &fd_w, pr.fd_bound(), None) > 1.0);
}

/// The gradients in half precision against the same finite differences: X, W and b rounded to `elem`
/// first (so J is the cost of the values a half tensor holds), dY = Y − T rounded to `elem` on upload;
/// the weight and bias gradients come back in f32 (their default), the input gradient in `elem`. The
/// bound is the f32 one plus one unit roundoff of `elem` for the rounding of dY, and one more for the
/// input gradient's stored result, each times the same operation on |inputs|.
#[test]
fn half_precision_gradients_agree_with_finite_differences() {
    let ctx = common::ctx();
    for elem in [convgrad::Elem::F16, convgrad::Elem::Bf16] {
        let uh = convgrad::verify::unit_roundoff(elem);
        let round = |v: f64| f64::from(elem.to_f32(elem.from_f32(v as f32)));
        let mut worst = [0.0f64; 3];
        for (label, pr) in problems() {
            let pr = Problem { x: pr.x.mapv(round), w: pr.w.mapv(round), b: pr.b.mapv(round), ..pr };
            let geo = &pr.geo;
            let y = reference::forward(pr.x.view(), pr.w.view(), Some(pr.b.view()), &pr.params).unwrap();
            let dy = &y - &pr.target;
            let (st, hw) = ([geo.s, geo.t], [geo.h, geo.w]);
            let fd_w = central(&pr.w, |w| pr.cost(&pr.x, w, &pr.b));
            let fd_x = central(&pr.x, |x| pr.cost(x, &pr.w, &pr.b));
            let fd_b = central(&pr.b, |b| pr.cost(&pr.x, &pr.w, b));
            let tol = pr.fd_bound();
            let up = |a: &Array4<f64>| ctx.upload_as(a.mapv(|v| v as f32).view(), elem).unwrap();
            let (xd, wd, dyd) = (up(&pr.x), up(&pr.w), up(&dy));
            let down = |t: &convgrad::Tensor| ctx.download::<Ix4>(t).unwrap().mapv(f64::from);
            let gw = down(&ctx.weight_grad(&xd, &dyd, st, &pr.params).unwrap());
            let dx = ctx.input_grad(&dyd, &wd, hw, &pr.params).unwrap();
            assert_eq!(dx.dtype(), elem);
            let gx = down(&dx);
            let gb = ctx.download::<Ix1>(&ctx.bias_grad(&dyd, pr.params.layout).unwrap()).unwrap().mapv(f64::from);
            let (ax, aw, ady) = (pr.x.mapv(f64::abs), pr.w.mapv(f64::abs), dy.mapv(f64::abs));
            let (lw, lx, u) = (geo.n * geo.p * geo.q, geo.filters_per_group() * geo.s * geo.t, common::U32);
            let mw = reference::weight_grad(ax.view(), ady.view(), st, &pr.params).unwrap();
            let mw = mw.mapv(|m| (gamma(lw) + 3.0 * u + uh) * m);
            let mx = reference::input_grad(ady.view(), aw.view(), hw, &pr.params).unwrap();
            let mx = mx.mapv(|m| (gamma(lx) + 3.0 * u + 2.0 * uh) * m);
            let mb = reference::bias_grad(ady.view(), pr.params.layout).mapv(|m| (gamma(lw) + 2.0 * u + uh) * m);
            let g = [
                worst_ratio(&gw, &fd_w, tol, Some(&mw)),
                worst_ratio(&gx, &fd_x, tol, Some(&mx)),
                worst_ratio(&gb, &fd_b, tol, Some(&mb)),
            ];
            for (i, v) in g.iter().enumerate() {
                worst[i] = worst[i].max(*v);
                assert!(*v <= 1.0, "{elem} {label}: gradient {i} misses the finite-difference bound by {v:.3}×");
            }
        }
        eprintln!("{elem}: worst |err|/bound over all problems, dW dX dB: {worst:.3?}");
    }
}
