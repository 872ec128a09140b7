//! Activations: what follows a convolution's bias in a layer, `Y = act(Z)` with `Z = conv(X, W) + b`,
//! and their derivatives. Each is written twice: here in `f64` (the reference, [`Activation::apply`]
//! and [`Activation::derivative`]) and in `shaders/activation.wgsl` (`f32`, the device's), both in
//! forms that stay finite and accurate where the textbook ones do not, and checked against each other
//! over a dense grid with ±∞, NaN, ±0 and the kinks (`tests/activation.rs`).
//!
//! Conventions are PyTorch's (`torch.nn.functional`): at a kink the derivative is the one PyTorch's
//! autograd gives (relu′(0) = 0, leaky′(0) = α, clip′ = 0 at both bounds, elu′(0) = α), softplus is
//! linear above `β·z > 20`, and NaN propagates. Parameters are `f32`: they travel in a uniform, so one
//! pipeline serves every value.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::error::{Error, Result};

/// An activation and its parameters.
#[derive(Debug, Clone, Copy)]
pub enum Activation {
    /// `z`.
    Identity,
    /// `max(z, 0)`.
    Relu,
    /// `min(max(z, min), max)` (relu6 is `Clip { min: 0, max: 6 }`; PyTorch's `hardtanh`).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `z` for `z > 0`, else `α·z`.
    LeakyRelu {
        /// The slope below 0.
        alpha: f32,
    },
    /// `z` for `z > 0`, else `α·(eᶻ − 1)`.
    Elu {
        /// The limit below 0 is `−α`.
        alpha: f32,
    },
    /// `1 / (1 + e⁻ᶻ)`.
    Sigmoid,
    /// `tanh z`.
    Tanh,
    /// `min(max(α·z + β, 0), 1)` (ONNX's `HardSigmoid`; PyTorch's `hardsigmoid` is α = 1/6, β = ½).
    HardSigmoid {
        /// The slope.
        alpha: f32,
        /// The offset.
        beta: f32,
    },
    /// `z · min(max(z + 3, 0), 6) / 6` (PyTorch's `hardswish`).
    HardSwish,
    /// `z · Φ(z)`, Φ the standard normal distribution function (PyTorch's `gelu`, exact form).
    Gelu,
    /// `½·z·(1 + tanh(√(2/π)·(z + 0.044715·z³)))` (PyTorch's `gelu(approximate='tanh')`).
    GeluTanh,
    /// `z · σ(β·z)` (silu at β = 1; swish).
    Silu {
        /// The sigmoid's scale.
        beta: f32,
    },
    /// `log(1 + e^(β·z)) / β`, and `z` where `β·z > 20` (PyTorch's threshold).
    Softplus {
        /// The sharpness.
        beta: f32,
    },
}

/// The activations' names, for the command line and errors.
pub const NAMES: &str = "identity, relu, relu6, clip:MIN,MAX, leaky-relu[:A], elu[:A], sigmoid, tanh, \
                         hard-sigmoid[:A,B], hard-swish, gelu, gelu-tanh, silu[:B], softplus[:B]";

impl Activation {
    /// The kernel's code for this activation (`ACT_*` in `shaders/activation.wgsl`).
    #[must_use]
    pub fn code(&self) -> u32 {
        match self {
            Self::Identity => 0,
            Self::Relu => 1,
            Self::Clip { .. } => 2,
            Self::LeakyRelu { .. } => 3,
            Self::Elu { .. } => 4,
            Self::Sigmoid => 5,
            Self::Tanh => 6,
            Self::HardSigmoid { .. } => 7,
            Self::HardSwish => 8,
            Self::Gelu => 9,
            Self::GeluTanh => 10,
            Self::Silu { .. } => 11,
            Self::Softplus { .. } => 12,
        }
    }

    /// The two parameters, as the uniform carries them (0 where unused).
    #[must_use]
    pub fn params(&self) -> [f32; 2] {
        match *self {
            Self::Clip { min, max } => [min, max],
            Self::LeakyRelu { alpha } | Self::Elu { alpha } => [alpha, 0.0],
            Self::HardSigmoid { alpha, beta } => [alpha, beta],
            Self::Silu { beta } | Self::Softplus { beta } => [beta, 0.0],
            _ => [0.0, 0.0],
        }
    }

    /// Every activation with its default parameters (PyTorch's), and the parametrised ones once more
    /// with other values: what the tests sweep.
    #[must_use]
    pub fn all() -> Vec<Activation> {
        vec![
            Self::Identity,
            Self::Relu,
            Self::Clip { min: 0.0, max: 6.0 },
            Self::Clip { min: -1.5, max: 0.25 },
            Self::LeakyRelu { alpha: 0.01 },
            Self::LeakyRelu { alpha: 0.2 },
            Self::Elu { alpha: 1.0 },
            Self::Elu { alpha: 0.5 },
            Self::Sigmoid,
            Self::Tanh,
            Self::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 },
            Self::HardSigmoid { alpha: 0.2, beta: 0.5 },
            Self::HardSwish,
            Self::Gelu,
            Self::GeluTanh,
            Self::Silu { beta: 1.0 },
            Self::Silu { beta: 1.702 },
            Self::Softplus { beta: 1.0 },
            Self::Softplus { beta: 2.5 },
        ]
    }

    /// Parses `NAME[:P[,P]]` ([`NAMES`]): `relu`, `relu6`, `clip:0,6`, `leaky-relu:0.1`, `gelu-tanh`.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for an unknown name, a missing, extra or non-finite parameter, or
    /// bounds out of order (clip) or a β that is not positive (silu, softplus).
    pub fn parse(s: &str) -> Result<Activation> {
        let bad = || Error::InvalidOption { what: "activation", got: s.to_string(), expected: NAMES };
        let (name, args) = s.trim().split_once(':').unwrap_or((s.trim(), ""));
        let args: Vec<f32> = if args.is_empty() {
            Vec::new()
        } else {
            args.split(',')
                .map(|a| a.trim().parse::<f32>().ok().filter(|v| v.is_finite()).ok_or_else(bad))
                .collect::<Result<_>>()?
        };
        let one = |default: f32| match args.as_slice() {
            [] => Ok(default),
            [a] => Ok(*a),
            _ => Err(bad()),
        };
        let none = |a: Activation| if args.is_empty() { Ok(a) } else { Err(bad()) };
        let act = match name.to_ascii_lowercase().as_str() {
            "identity" | "linear" => none(Self::Identity)?,
            "relu" => none(Self::Relu)?,
            "relu6" => none(Self::Clip { min: 0.0, max: 6.0 })?,
            "clip" | "hardtanh" => match args.as_slice() {
                [min, max] if min < max => Self::Clip { min: *min, max: *max },
                [] if name == "hardtanh" => Self::Clip { min: -1.0, max: 1.0 },
                _ => return Err(bad()),
            },
            "leaky-relu" => Self::LeakyRelu { alpha: one(0.01)? },
            "elu" => Self::Elu { alpha: one(1.0)? },
            "sigmoid" => none(Self::Sigmoid)?,
            "tanh" => none(Self::Tanh)?,
            "hard-sigmoid" => match args.as_slice() {
                [] => Self::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 },
                [a, b] => Self::HardSigmoid { alpha: *a, beta: *b },
                _ => return Err(bad()),
            },
            "hard-swish" => none(Self::HardSwish)?,
            "gelu" => none(Self::Gelu)?,
            "gelu-tanh" => none(Self::GeluTanh)?,
            "silu" | "swish" => Self::Silu { beta: one(1.0)? },
            "softplus" => Self::Softplus { beta: one(1.0)? },
            _ => return Err(bad()),
        };
        if let Self::Silu { beta } | Self::Softplus { beta } = act
            && beta <= 0.0
        {
            return Err(bad());
        }
        Ok(act)
    }

    /// `act(z)` in `f64`, the reference.
    #[must_use]
    pub fn apply(&self, z: f64) -> f64 {
        let [a, b] = self.params().map(f64::from);
        if z.is_nan() {
            return z;
        }
        match self {
            Self::Identity => z,
            Self::Relu => {
                if z > 0.0 {
                    z
                } else {
                    0.0
                }
            }
            Self::Clip { .. } => z.clamp(a, b),
            Self::LeakyRelu { .. } => {
                if z > 0.0 {
                    z
                } else {
                    a * z
                }
            }
            Self::Elu { .. } => {
                if z > 0.0 {
                    z
                } else {
                    a * z.exp_m1()
                }
            }
            Self::Sigmoid => sigmoid(z),
            Self::Tanh => z.tanh(),
            Self::HardSigmoid { .. } => (a * z + b).clamp(0.0, 1.0),
            Self::HardSwish => times(z, (z + 3.0).clamp(0.0, 6.0) / 6.0),
            Self::Gelu => times(z, 0.5 * erfc(-z / std::f64::consts::SQRT_2)),
            // ½(1 + tanh u) = σ(2u): the form that keeps its digits where tanh u is near −1.
            Self::GeluTanh => times(z, sigmoid(2.0 * gelu_tanh_inner(z))),
            Self::Silu { .. } => times(z, sigmoid(a * z)),
            Self::Softplus { .. } => {
                if a * z > 20.0 {
                    z
                } else {
                    (a * z).exp().ln_1p() / a
                }
            }
        }
    }

    /// `act′(z)` in `f64`, the reference, with PyTorch's values at the kinks.
    #[must_use]
    pub fn derivative(&self, z: f64) -> f64 {
        let [a, b] = self.params().map(f64::from);
        if z.is_nan() {
            return z;
        }
        let step = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            Self::Identity => 1.0,
            Self::Relu => step(z > 0.0),
            Self::Clip { .. } => step(z > a && z < b),
            Self::LeakyRelu { .. } => {
                if z > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Self::Elu { .. } => {
                if z > 0.0 {
                    1.0
                } else {
                    a * z.exp()
                }
            }
            Self::Sigmoid => sigmoid(z) * sigmoid(-z),
            Self::Tanh => {
                let t = z.tanh();
                1.0 - t * t
            }
            Self::HardSigmoid { .. } => {
                let u = a * z + b;
                if u > 0.0 && u < 1.0 { a } else { 0.0 }
            }
            // PyTorch: 0 below −3, (2z + 3)/6 in [−3, 3], 1 above 3.
            Self::HardSwish => {
                if z < -3.0 {
                    0.0
                } else if z <= 3.0 {
                    (2.0 * z + 3.0) / 6.0
                } else {
                    1.0
                }
            }
            Self::Gelu => {
                let phi = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
                0.5 * erfc(-z / std::f64::consts::SQRT_2) + times(z, phi)
            }
            Self::GeluTanh => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                let u2 = 2.0 * gelu_tanh_inner(z);
                let dt = times(z, sigmoid(u2) * sigmoid(-u2) * 2.0 * k * (1.0 + 3.0 * 0.044715 * z * z));
                sigmoid(u2) + if dt.is_nan() { 0.0 } else { dt }
            }
            Self::Silu { .. } => sigmoid(a * z) + times(a * z, sigmoid(a * z) * sigmoid(-a * z)),
            Self::Softplus { .. } => {
                if a * z > 20.0 {
                    1.0
                } else {
                    sigmoid(a * z)
                }
            }
        }
    }

    /// The name [`Activation::parse`] reads back.
    #[must_use]
    pub fn name(&self) -> String {
        match *self {
            Self::Identity => "identity".into(),
            Self::Relu => "relu".into(),
            Self::Clip { min, max } => format!("clip:{min},{max}"),
            Self::LeakyRelu { alpha } => format!("leaky-relu:{alpha}"),
            Self::Elu { alpha } => format!("elu:{alpha}"),
            Self::Sigmoid => "sigmoid".into(),
            Self::Tanh => "tanh".into(),
            Self::HardSigmoid { alpha, beta } => format!("hard-sigmoid:{alpha},{beta}"),
            Self::HardSwish => "hard-swish".into(),
            Self::Gelu => "gelu".into(),
            Self::GeluTanh => "gelu-tanh".into(),
            Self::Silu { beta } => format!("silu:{beta}"),
            Self::Softplus { beta } => format!("softplus:{beta}"),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

// Equal and hashed by kind and parameter bits: an activation is part of a program's key.
impl PartialEq for Activation {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code() && self.params().map(f32::to_bits) == other.params().map(f32::to_bits)
    }
}

impl Eq for Activation {}

impl Hash for Activation {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.code().hash(state);
        self.params().map(f32::to_bits).hash(state);
    }
}

/// `z · g` where `g → 0` makes it 0 (the limits at −∞ of gelu, silu, hard swish, where `−∞ · 0`
/// would be NaN); the WGSL does the same.
fn times(z: f64, g: f64) -> f64 {
    if g == 0.0 { 0.0 } else { z * g }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn gelu_tanh_inner(z: f64) -> f64 {
    (2.0 / std::f64::consts::PI).sqrt() * (z + 0.044715 * z * z * z)
}

/// `erfc(x)` in `f64` to about 1e-14 relative: the Taylor series of `erf` below 1 in magnitude (where
/// `1 − erf` loses under a digit), the continued fraction of `erfc` (4,000 terms from the tail) above.
#[must_use]
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() < 1.0 {
        let (mut term, mut sum) = (x, x);
        let x2 = x * x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        return 1.0 - sum * 2.0 / std::f64::consts::PI.sqrt();
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), from the tail.
    let mut f = x;
    for k in (1..4000).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_against_known_values() {
        // erfc at 0, 0.5, 1, 2, 3, 5, 10 and −1 (Abramowitz & Stegun table 7.1; erfc(10) from mpmath).
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
            (10.0, 2.088_487_583_762_545e-45),
            (-1.0, 1.842_700_792_949_715),
        ] {
            let got = erfc(x);
            assert!((got - want).abs() <= 1e-12 * want, "erfc({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn names_parse_back_and_bad_ones_are_refused() {
        for a in Activation::all() {
            assert_eq!(Activation::parse(&a.name()).unwrap(), a, "{a}");
        }
        assert_eq!(Activation::parse("relu6").unwrap(), Activation::Clip { min: 0.0, max: 6.0 });
        assert_eq!(Activation::parse("leaky-relu").unwrap(), Activation::LeakyRelu { alpha: 0.01 });
        for bad in
            ["rellu", "relu:1", "clip:6,0", "clip:1", "leaky-relu:x", "silu:0", "softplus:-1", "elu:1,2", "clip:0,inf"]
        {
            assert!(matches!(Activation::parse(bad), Err(Error::InvalidOption { .. })), "{bad}");
        }
    }

    /// The derivatives are those of the functions: central differences of `apply` in f64 away from
    /// the kinks, and PyTorch's values at them.
    #[test]
    fn derivatives_are_the_functions_slopes() {
        for a in Activation::all() {
            for i in -80..=80 {
                let z = f64::from(i) * 0.1 + 0.0123;
                let h = 1e-6;
                let fd = (a.apply(z + h) - a.apply(z - h)) / (2.0 * h);
                let d = a.derivative(z);
                assert!((fd - d).abs() <= 1e-6 * d.abs().max(1.0), "{a} at {z}: {d} vs {fd}");
            }
        }
        assert_eq!(Activation::Relu.derivative(0.0), 0.0);
        assert_eq!(Activation::LeakyRelu { alpha: 0.2 }.derivative(0.0), f64::from(0.2f32));
        assert_eq!(Activation::Clip { min: 0.0, max: 6.0 }.derivative(6.0), 0.0);
        assert_eq!(Activation::Clip { min: 0.0, max: 6.0 }.derivative(0.0), 0.0);
        assert_eq!(Activation::Elu { alpha: 0.5 }.derivative(0.0), 0.5);
        assert!(Activation::Gelu.apply(f64::NAN).is_nan() && Activation::Relu.apply(f64::NAN).is_nan());
        assert_eq!(Activation::Gelu.apply(f64::NEG_INFINITY), 0.0);
        assert_eq!(Activation::Softplus { beta: 1.0 }.apply(30.0), 30.0);
    }
}
