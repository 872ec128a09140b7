// The activations, in f32, for the kernels that apply them: `act(kind, a, b, z)` and its derivative
// `act_grad(kind, a, b, z)`, `kind` and the parameters `a`, `b` as `Activation::code` and
// `Activation::params` give them (src/activation.rs, which has the same functions in f64 and their
// conventions: PyTorch's at the kinks). Written so that no input gives a NaN that the function does
// not have: a NaN in is a NaN out (tested by bits, since a shader compiler may assume no NaN is
// compared), exp and tanh never overflow into ∞/∞, and z · g is 0 where g is (the limits at −∞).

const ACT_IDENTITY: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_CLIP: u32 = 2u;
const ACT_LEAKY_RELU: u32 = 3u;
const ACT_ELU: u32 = 4u;
const ACT_SIGMOID: u32 = 5u;
const ACT_TANH: u32 = 6u;
const ACT_HARD_SIGMOID: u32 = 7u;
const ACT_HARD_SWISH: u32 = 8u;
const ACT_GELU: u32 = 9u;
const ACT_GELU_TANH: u32 = 10u;
const ACT_SILU: u32 = 11u;
const ACT_SOFTPLUS: u32 = 12u;

fn act_is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// v with the sign bit of s.
fn act_copysign(v: f32, s: f32) -> f32 {
    return bitcast<f32>((bitcast<u32>(v) & 0x7fffffffu) | (bitcast<u32>(s) & 0x80000000u));
}

// min(max(v, lo), hi) by comparisons, whose NaN behaviour the caller has already handled.
fn act_clamp(v: f32, lo: f32, hi: f32) -> f32 {
    return select(select(v, lo, v < lo), hi, v > hi);
}

fn act_sigmoid(v: f32) -> f32 {
    // e^(−|v|) ≤ 1: no overflow on either side.
    let e = exp(-abs(v));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// σ(v)·(1 − σ(v)) as σ(v)·σ(−v): no cancellation where σ(v) rounds to 1.
fn act_sigmoid_slope(v: f32) -> f32 {
    return act_sigmoid(v) * act_sigmoid(-v);
}

// e^v − 1 without the cancellation near 0: the Taylor series to v⁹/9! below 0.35 in magnitude (its
// remainder under 1e-9 relative), e^v − 1 above (where it loses at most two bits).
fn act_expm1(v: f32) -> f32 {
    let series = v * (1.0 + v / 2.0 * (1.0 + v / 3.0 * (1.0 + v / 4.0 * (1.0 + v / 5.0 * (1.0 + v / 6.0
        * (1.0 + v / 7.0 * (1.0 + v / 8.0 * (1.0 + v / 9.0))))))));
    return select(exp(v) - 1.0, series, abs(v) < 0.35);
}

fn act_tanh(v: f32) -> f32 {
    // tanh|v| = −m / (2 + m) with m = e^(−2|v|) − 1 ∈ (−1, 0]: accurate near 0, finite for any v
    // (WGSL's tanh is NaN beyond about ±88 on some drivers).
    let m = act_expm1(-2.0 * abs(v));
    return act_copysign(-m / (2.0 + m), v);
}

// log(1 + e) for 0 ≤ e ≤ 1 by arithmetic alone (WGSL's log is only within 2⁻²¹ absolute near 1):
// 2·atanh(s) with s = e/(2 + e) ≤ 1/3, the series to s¹⁷.
fn act_log1p(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let q = s * s;
    return 2.0 * s * (1.0 + q * (1.0 / 3.0 + q * (1.0 / 5.0 + q * (1.0 / 7.0 + q * (1.0 / 9.0 + q * (1.0 / 11.0
        + q * (1.0 / 13.0 + q * (1.0 / 15.0 + q / 17.0))))))));
}

// erfc(x), fractional error under 1.2e-7 everywhere (the Chebyshev fit of Numerical Recipes' erfcc),
// so Φ(z) = erfc(−z/√2)/2 keeps its relative accuracy in the lower tail, where gelu is tiny.
fn act_erfc(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807
        + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(-z * z + p);
    return select(2.0 - r, r, x >= 0.0);
}

// z · g, and 0 where g is 0 (where −∞ · 0 would be NaN).
fn act_times(z: f32, g: f32) -> f32 {
    return select(z * g, 0.0, g == 0.0);
}

fn act(kind: u32, a: f32, b: f32, z: f32) -> f32 {
    if (act_is_nan(z)) {
        return z;
    }
    switch kind {
        case ACT_RELU: { return select(z, 0.0, z <= 0.0); }
        case ACT_CLIP: { return act_clamp(z, a, b); }
        case ACT_LEAKY_RELU: { return select(a * z, z, z > 0.0); }
        case ACT_ELU: { return select(a * act_expm1(z), z, z > 0.0); }
        case ACT_SIGMOID: { return act_sigmoid(z); }
        case ACT_TANH: { return act_tanh(z); }
        case ACT_HARD_SIGMOID: { return act_clamp(a * z + b, 0.0, 1.0); }
        case ACT_HARD_SWISH: { return act_times(z, act_clamp(z + 3.0, 0.0, 6.0) / 6.0); }
        case ACT_GELU: { return act_times(z, 0.5 * act_erfc(-z * 0.70710678)); }
        case ACT_GELU_TANH: {
            // ½(1 + tanh u) = σ(2u), which keeps its digits where tanh u is near −1. The cube
            // overflows to ±∞ for large |z|, where σ is 0 or 1: still finite.
            let u = 0.7978845608 * (z + 0.044715 * z * z * z);
            return act_times(z, act_sigmoid(2.0 * u));
        }
        case ACT_SILU: { return act_times(z, act_sigmoid(a * z)); }
        case ACT_SOFTPLUS: {
            let v = a * z;
            return select((max(v, 0.0) + act_log1p(exp(-abs(v)))) / a, z, v > 20.0);
        }
        default: { return z; }
    }
}

fn act_grad(kind: u32, a: f32, b: f32, z: f32) -> f32 {
    if (act_is_nan(z)) {
        return z;
    }
    switch kind {
        case ACT_RELU: { return select(0.0, 1.0, z > 0.0); }
        case ACT_CLIP: { return select(0.0, 1.0, z > a && z < b); }
        case ACT_LEAKY_RELU: { return select(a, 1.0, z > 0.0); }
        case ACT_ELU: { return select(a * exp(z), 1.0, z > 0.0); }
        case ACT_SIGMOID: { return act_sigmoid_slope(z); }
        // 1 − tanh² z = 4·σ(2z)·σ(−2z): no cancellation where tanh z is near ±1.
        case ACT_TANH: { return 4.0 * act_sigmoid_slope(2.0 * z); }
        case ACT_HARD_SIGMOID: {
            let u = a * z + b;
            return select(0.0, a, u > 0.0 && u < 1.0);
        }
        case ACT_HARD_SWISH: {
            return select(select((2.0 * z + 3.0) / 6.0, 1.0, z > 3.0), 0.0, z < -3.0);
        }
        case ACT_GELU: {
            let phi = exp(-0.5 * z * z) * 0.39894228;
            return 0.5 * act_erfc(-z * 0.70710678) + act_times(z, phi);
        }
        case ACT_GELU_TANH: {
            // d/dz z·σ(2u) = σ(2u) + z·σ′(2u)·2u′; the second term is 0 where σ′ is (∞·0 aside).
            let u = 0.7978845608 * (z + 0.044715 * z * z * z);
            let dt = act_times(z, act_sigmoid_slope(2.0 * u) * 1.5957691216 * (1.0 + 0.134145 * z * z));
            return act_sigmoid(2.0 * u) + select(dt, 0.0, act_is_nan(dt));
        }
        case ACT_SILU: {
            return act_sigmoid(a * z) + act_times(a * z, act_sigmoid_slope(a * z));
        }
        case ACT_SOFTPLUS: { return select(act_sigmoid(a * z), 1.0, a * z > 20.0); }
        default: { return 1.0; }
    }
}
