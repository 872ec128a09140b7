// Exact conversions between f32 and the 16-bit storage types, in u32 operations only: the whole of the
// bits path, and the cases the hardware paths hand over (subnormals, overflow, infinities, NaN).
// Line for line `src/elem.rs`, which is tested against the `half` crate; tests/half.rs checks these on
// every driver. Rounding is to nearest, ties to even; beyond the largest finite half the result is ±∞;
// NaN stays NaN (quiet). Tested on the integer bits: WGSL may assume a float is never NaN.

// The binary16 nearest to the f32 with bits `b`, as its 16 bits.
fn f32_to_f16_bits(b: u32) -> u32 {
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
    }
    if (a >= 0x477ff000u) {
        // 65520, the tie above 65504, and up: ∞.
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        // A normal half: rebias the exponent (127 → 15), round off 13 mantissa bits.
        let m = a - 0x38000000u;
        return sign | ((m + 0xfffu + ((m >> 13u) & 1u)) >> 13u);
    }
    if (a < 0x33000000u) {
        return sign;
    }
    // A subnormal half, in units of 2^-24; `shift` is 14 to 24.
    let mant = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - (a >> 23u);
    let q = mant >> shift;
    let rem = mant & ((1u << shift) - 1u);
    let tie = 1u << (shift - 1u);
    let up = select(0u, 1u, rem > tie || (rem == tie && (q & 1u) == 1u));
    return sign | (q + up);
}

// The f32 bits of the binary16 with bits `h` (exact).
fn f16_bits_to_f32(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let mant = h & 0x3ffu;
    if (e == 0x1fu) {
        return sign | 0x7f800000u | (mant << 13u);
    }
    if (e != 0u) {
        return sign | ((e + 112u) << 23u) | (mant << 13u);
    }
    if (mant == 0u) {
        return sign;
    }
    // A subnormal half is a normal f32: shift the mantissa up to its leading one.
    let lead = 31u - countLeadingZeros(mant);
    return sign | ((lead + 103u) << 23u) | ((mant << (23u - lead)) & 0x7fffffu);
}

// The bfloat16 nearest to the f32 with bits `b`, as its 16 bits.
fn f32_to_bf16_bits(b: u32) -> u32 {
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

// Whether the f32 with bits `b` becomes a normal, finite half: the range the hardware paths convert.
fn f16_normal_f32(b: u32) -> bool {
    let a = b & 0x7fffffffu;
    return a >= 0x38800000u && a < 0x477ff000u;
}

// Whether the half with bits `h` is normal and finite.
fn f16_normal(h: u32) -> bool {
    let e = (h >> 10u) & 0x1fu;
    return e != 0u && e != 0x1fu;
}
