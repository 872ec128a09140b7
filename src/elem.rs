//! Element types and their exact conversions to and from `f32`, in integer arithmetic only: the host
//! reference of the half-precision storage that works on every adapter (the `u32`-word path of the
//! half-precision issue, #24), which a WGSL version must match bit for bit. Only shifts, masks, adds
//! and compares on `u32`, each of which WGSL has, so the shader can be this code line for line.
//!
//! Rounding is to nearest, ties to even; beyond the largest finite half the result is ±∞ (what users
//! of GPUs expect; SwiftShader's `pack2x16float` gives NaN there instead, so the integer path is the
//! one that gives the same bits everywhere); NaN stays NaN, quieted, with the top of its payload.
//!
//! Not yet used by the kernels: the dtype of tensors, plans and variants is still to come.

/// The element type of a tensor in memory; arithmetic is `f32` whatever it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    /// IEEE binary32.
    F32,
    /// IEEE binary16: 5 exponent bits, 10 mantissa bits.
    F16,
    /// bfloat16: the top half of a binary32.
    Bf16,
}

impl Elem {
    /// Bytes per element.
    #[must_use]
    pub fn bytes(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 | Elem::Bf16 => 2,
        }
    }
}

/// The binary16 nearest to the `f32` with bits `b` (ties to even), as its 16 bits.
#[must_use]
pub fn f32_to_f16_bits(b: u32) -> u32 {
    let sign = (b >> 16) & 0x8000;
    let abs = b & 0x7fff_ffff;
    if abs > 0x7f80_0000 {
        // NaN: quiet, with the top ten bits of the payload.
        return sign | 0x7e00 | ((abs >> 13) & 0x3ff);
    }
    if abs >= 0x477f_f000 {
        // From 65520 (the midpoint above 65504, whose mantissa is odd) up, and ∞: ∞.
        return sign | 0x7c00;
    }
    if abs >= 0x3880_0000 {
        // A normal half: rebias the exponent (127 → 15) and round off 13 mantissa bits.
        let m = abs - 0x3800_0000;
        return sign | ((m + 0xfff + ((m >> 13) & 1)) >> 13);
    }
    if abs < 0x3300_0000 {
        // Below 2^-25, half the smallest subnormal: ±0.
        return sign;
    }
    // A subnormal half: the value in units of 2^-24, rounded. `shift` is 14 to 24.
    let e = abs >> 23;
    let mant = (abs & 0x7f_ffff) | 0x80_0000;
    let shift = 126 - e;
    let q = mant >> shift;
    let rem = mant & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    let up = u32::from(rem > half || (rem == half && (q & 1) == 1));
    sign | (q + up)
}

/// The `f32` bits of the binary16 with bits `h` (exact: every half is an `f32`).
#[must_use]
pub fn f16_bits_to_f32(h: u32) -> u32 {
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if exp == 0x1f {
        // ∞ and NaN (payload kept).
        return sign | 0x7f80_0000 | (mant << 13);
    }
    if exp != 0 {
        return sign | ((exp + 112) << 23) | (mant << 13);
    }
    if mant == 0 {
        return sign;
    }
    // A subnormal half is a normal f32: shift the mantissa up to its leading one.
    let lead = 31 - mant.leading_zeros(); // 0..=9
    let e = lead + 103; // the value is mant · 2^-24 = 1.f · 2^(lead − 24)
    sign | (e << 23) | ((mant << (23 - lead)) & 0x7f_ffff)
}

/// The bfloat16 nearest to the `f32` with bits `b` (ties to even), as its 16 bits; NaN stays NaN.
#[must_use]
pub fn f32_to_bf16_bits(b: u32) -> u32 {
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return (b >> 16) | 0x40;
    }
    (b + 0x7fff + ((b >> 16) & 1)) >> 16
}

/// The `f32` bits of the bfloat16 with bits `h` (exact).
#[must_use]
pub fn bf16_bits_to_f32(h: u32) -> u32 {
    h << 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    /// Bit patterns of f32 that cover every exponent and sign, with the low bits that decide a
    /// rounding: exact, just below, at and just above each tie, for both parities of the kept bit.
    fn patterns() -> impl Iterator<Item = u32> {
        const LOW: [u32; 12] = [0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fff, 0x8000, 0x8001, 0x18000];
        (0..1u32 << 20).flat_map(|hi| LOW.iter().map(move |lo| (hi << 12) ^ lo))
    }

    #[test]
    fn f32_to_f16_matches_the_half_crate() {
        for b in patterns().chain([0x477f_efff, 0x477f_f000, 0x477f_f001, 0x3300_0000, 0x3300_0001, 0x7f80_0000]) {
            let want = u32::from(f16::from_f32(f32::from_bits(b)).to_bits());
            assert_eq!(f32_to_f16_bits(b), want, "f32 {b:#010x} ({})", f32::from_bits(b));
        }
    }

    #[test]
    fn every_f16_widens_exactly() {
        for h in 0..=0xffffu32 {
            let want = f16::from_bits(h as u16).to_f32().to_bits();
            let got = f16_bits_to_f32(h);
            if f32::from_bits(want).is_nan() {
                assert!(f32::from_bits(got).is_nan(), "f16 {h:#06x}");
            } else {
                assert_eq!(got, want, "f16 {h:#06x}");
            }
            // And back: unchanged, but a signalling NaN comes back quiet.
            let nan = h & 0x7c00 == 0x7c00 && h & 0x3ff != 0;
            assert_eq!(f32_to_f16_bits(got), if nan { h | 0x200 } else { h }, "f16 {h:#06x} round trip");
        }
    }

    #[test]
    fn f32_to_bf16_matches_the_half_crate_and_every_bf16_round_trips() {
        for b in patterns() {
            let want = u32::from(bf16::from_f32(f32::from_bits(b)).to_bits());
            assert_eq!(f32_to_bf16_bits(b), want, "f32 {b:#010x}");
        }
        for h in 0..=0xffffu32 {
            let nan = h & 0x7f80 == 0x7f80 && h & 0x7f != 0;
            assert_eq!(f32_to_bf16_bits(bf16_bits_to_f32(h)), if nan { h | 0x40 } else { h }, "bf16 {h:#06x}");
        }
    }

    #[test]
    fn the_cases_the_issue_names() {
        let f16 = |x: f32| f32_to_f16_bits(x.to_bits());
        assert_eq!(f16(65504.0), 0x7bff);
        assert_eq!(f16(65519.99), 0x7bff);
        assert_eq!(f16(65520.0), 0x7c00); // the tie above the largest half goes to ∞ (even)
        assert_eq!(f16(-1e9), 0xfc00);
        assert_eq!(f16(f32::INFINITY), 0x7c00);
        assert_eq!(f16(-0.0), 0x8000);
        assert_eq!(f16(2f32.powi(-24)), 0x0001); // the smallest subnormal
        assert_eq!(f16(2f32.powi(-25)), 0x0000); // half of it: the tie goes to even, 0
        assert_eq!(f16(1.5 * 2f32.powi(-25)), 0x0001);
        assert_eq!(f16(1.0 + 2f32.powi(-11)), 0x3c00); // a tie at 1: to even
        assert_eq!(f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02); // a tie at odd: up
        assert!(f32::from_bits(f16_bits_to_f32(f16(f32::NAN))).is_nan());
        assert_eq!(f32_to_bf16_bits(f32::NAN.to_bits()) & 0x7fc0, 0x7fc0);
        assert_eq!(f32_to_bf16_bits(f32::MAX.to_bits()), 0x7f80); // rounds up to ∞
        assert_eq!(Elem::F16.bytes() + Elem::Bf16.bytes(), Elem::F32.bytes());
    }
}
