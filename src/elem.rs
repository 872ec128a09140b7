//! Element types and their exact conversions to and from `f32`, in integer arithmetic only: the host
//! reference of the half-precision storage that works on every adapter (the `u32`-word path of the
//! half-precision issue, #24), which a WGSL version must match bit for bit. Only shifts, masks, adds
//! and compares on `u32`, each of which WGSL has, so the shader can be this code line for line.
//!
//! Rounding is to nearest, ties to even; beyond the largest finite half the result is ±∞ (what users
//! of GPUs expect; SwiftShader's `pack2x16float` gives NaN there instead, so the integer path is the
//! one that gives the same bits everywhere); NaN stays NaN, quieted, with the top of its payload.
//!
//! The kernels read and write half-precision tensors through `shaders/half.wgsl`, the same functions in
//! WGSL, on the path [`HalfPath`] names; `tests/half.rs` checks every path against these bit for bit.

use crate::error::{Error, Result};

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

impl Elem {
    /// Bytes of a buffer holding `len` elements: whole 4-byte words, since buffers, copies and the
    /// kernels' writes go by words (an odd count of halves ends with a zero half).
    #[must_use]
    pub fn buffer_bytes(self, len: usize) -> u64 {
        ((len as u64).saturating_mul(self.bytes() as u64)).next_multiple_of(4)
    }

    /// The name users write: `f32`, `f16`, `bf16`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::F16 => "f16",
            Elem::Bf16 => "bf16",
        }
    }

    /// The element type named `name` (`f32`, `f16`, `bf16`; `float16`, `bfloat16` and `float32` too).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Elem::F32),
            "f16" | "float16" | "half" => Ok(Elem::F16),
            "bf16" | "bfloat16" => Ok(Elem::Bf16),
            other => Err(Error::InvalidOption { what: "dtype", got: other.to_string(), expected: "f32, f16 or bf16" }),
        }
    }

    /// Whether this is one of the 16-bit types.
    #[must_use]
    pub fn is_half(self) -> bool {
        self != Elem::F32
    }

    /// The `f32` value of the element whose bits are `bits` (the low 16 bits for the half types).
    #[must_use]
    pub fn to_f32(self, bits: u32) -> f32 {
        f32::from_bits(match self {
            Elem::F32 => bits,
            Elem::F16 => f16_bits_to_f32(bits & 0xffff),
            Elem::Bf16 => bf16_bits_to_f32(bits & 0xffff),
        })
    }

    /// The bits of the element nearest to `v` (ties to even; see the module's rules).
    #[must_use]
    pub fn from_f32(self, v: f32) -> u32 {
        match self {
            Elem::F32 => v.to_bits(),
            Elem::F16 => f32_to_f16_bits(v.to_bits()),
            Elem::Bf16 => f32_to_bf16_bits(v.to_bits()),
        }
    }
}

impl std::fmt::Display for Elem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the kernels read and write `f16` in memory. All three give the same bits (each is tested
/// against [`f32_to_f16_bits`] and [`f16_bits_to_f32`] on every driver CI has); they differ in what
/// the adapter must offer and in the instructions they take. bf16 needs nothing: it always goes by
/// integer operations on words, which are as cheap as any other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HalfPath {
    /// Reads through an `array<f16>` binding and the hardware's conversion (`enable f16;`); writes as
    /// [`HalfPath::Packed`] does (an `f16` binding cannot write the exact special values: naga cannot
    /// bitcast `f16` to bits, and WebGPU allows no second writable view of a buffer). Needs
    /// `SHADER_F16`, whose adapters allow the pack builtins too.
    Native,
    /// `u32` words through `unpack2x16float` / `pack2x16float`: needs WGSL's f16-in-f32 builtins
    /// (always in the browser; wgpu on Vulkan allows them only with `SHADER_F16`).
    Packed,
    /// `u32` words through the integer conversions of this module: every adapter.
    Bits,
}

impl HalfPath {
    /// Every path, best first.
    pub const ALL: [HalfPath; 3] = [HalfPath::Native, HalfPath::Packed, HalfPath::Bits];

    /// The best path an adapter offers: native `f16` where it has `SHADER_F16`, the pack builtins
    /// where it allows them, else integer operations.
    #[must_use]
    pub fn best(native: bool, packed: bool) -> Self {
        if native {
            HalfPath::Native
        } else if packed {
            HalfPath::Packed
        } else {
            HalfPath::Bits
        }
    }

    /// The paths an adapter that offers `native` and `packed` can run.
    #[must_use]
    pub fn offered(native: bool, packed: bool) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|p| match p {
                HalfPath::Native => native,
                HalfPath::Packed => packed,
                HalfPath::Bits => true,
            })
            .collect()
    }

    /// The name the tests, the CLI and `CONVGRAD_HALF_PATH` use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            HalfPath::Native => "native",
            HalfPath::Packed => "packed",
            HalfPath::Bits => "bits",
        }
    }

    /// The path `CONVGRAD_HALF_PATH` asks for: `None` when unset or empty (the adapter's best).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a value that names no path.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("CONVGRAD_HALF_PATH") {
            Ok(v) if !v.trim().is_empty() => Self::from_name(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// The path named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name.trim()).ok_or_else(|| Error::InvalidOption {
            what: "half-precision path",
            got: name.to_string(),
            expected: "native, packed or bits",
        })
    }
}

/// A host element type a tensor can be uploaded from and downloaded to: `f32`, [`half::f16`],
/// [`half::bf16`].
pub trait HostElem: bytemuck::Pod + Copy + Send + Sync + 'static {
    /// The tensor dtype it uploads as.
    const ELEM: Elem;
    /// Its value as `f32` (exact).
    fn to_f32(self) -> f32;
    /// The nearest value to `v` (ties to even).
    fn from_f32(v: f32) -> Self;
}

impl HostElem for f32 {
    const ELEM: Elem = Elem::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl HostElem for half::f16 {
    const ELEM: Elem = Elem::F16;
    fn to_f32(self) -> f32 {
        Elem::F16.to_f32(u32::from(self.to_bits()))
    }
    fn from_f32(v: f32) -> Self {
        half::f16::from_bits(Elem::F16.from_f32(v) as u16)
    }
}

impl HostElem for half::bf16 {
    const ELEM: Elem = Elem::Bf16;
    fn to_f32(self) -> f32 {
        Elem::Bf16.to_f32(u32::from(self.to_bits()))
    }
    fn from_f32(v: f32) -> Self {
        half::bf16::from_bits(Elem::Bf16.from_f32(v) as u16)
    }
}

/// The bytes of a buffer holding `values` as `elem` (rounded where `elem` is a half type), padded
/// to whole words.
pub(crate) fn encode(elem: Elem, values: impl ExactSizeIterator<Item = f32>) -> Vec<u8> {
    let len = values.len();
    let mut out = Vec::with_capacity(elem.buffer_bytes(len) as usize);
    match elem {
        Elem::F32 => values.for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Elem::F16 | Elem::Bf16 => values.for_each(|v| out.extend_from_slice(&(elem.from_f32(v) as u16).to_le_bytes())),
    }
    out.resize(elem.buffer_bytes(len) as usize, 0);
    out
}

/// The first `len` elements of a buffer's bytes holding `elem`, as `f32`s (exact).
pub(crate) fn decode(elem: Elem, bytes: &[u8], len: usize) -> Vec<f32> {
    match elem {
        Elem::F32 => bytes.chunks_exact(4).take(len).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Elem::F16 | Elem::Bf16 => {
            bytes.chunks_exact(2).take(len).map(|b| elem.to_f32(u32::from(u16::from_le_bytes([b[0], b[1]])))).collect()
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
