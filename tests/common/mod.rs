//! Helpers shared by the integration tests: the context, seeded data, NaN sentinels and error bounds.
#![allow(dead_code)]

use std::sync::OnceLock;

use convgrad::{Context, Tensor};
use ndarray::{Array, Array4, ArrayD, Dimension, IxDyn};

/// The adapter every GPU test uses. Without one the tests fail, loudly, with what to do.
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| match Context::new() {
        Ok(c) => {
            eprintln!("convgrad tests on {} ({:?}, {})", c.adapter_info().name, c.adapter_info().backend, c.adapter_info().driver);
            c
        }
        Err(e) => panic!(
            "the GPU tests need a wgpu adapter and none could be created: {e}\n\
             On Debian/Ubuntu without a GPU: apt-get install -y mesa-vulkan-drivers (lavapipe), or run bash .ci/run"
        ),
    })
}

/// SplitMix64: a tiny seeded generator so that every test input is reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// An integer in [lo, hi].
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    pub fn array<D: Dimension, Sh: ndarray::ShapeBuilder<Dim = D>>(
        &mut self,
        shape: Sh,
    ) -> Array<f32, D> {
        Array::from_shape_simple_fn(shape, || self.uniform())
    }

    /// Small integers: every f32 sum of their products is exact.
    pub fn int_array<D: Dimension, Sh: ndarray::ShapeBuilder<Dim = D>>(
        &mut self,
        shape: Sh,
        lo: i64,
        hi: i64,
    ) -> Array<f32, D> {
        Array::from_shape_simple_fn(shape, || self.int(lo, hi) as f32)
    }
}

/// A device tensor of `shape` filled with NaN: an element a kernel forgets to write stays NaN and
/// fails every comparison.
pub fn nan_tensor(shape: &[usize]) -> Tensor {
    let a = ArrayD::<f32>::from_elem(IxDyn(shape), f32::NAN);
    ctx().upload(a.view()).unwrap()
}

/// Unit roundoff of f32.
pub const U32: f64 = f32::EPSILON as f64 / 2.0;

/// γ_L = L·u / (1 − L·u): the worst-case relative error of an f32 sum of L products in any order
/// (Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
pub fn gamma(len: usize) -> f64 {
    let lu = len as f64 * U32;
    lu / (1.0 - lu)
}

/// ‖gpu − ref‖₂ / ‖ref‖₂ (‖gpu‖₂ if the reference is zero; NaN if anything is NaN).
pub fn rel_err<D: Dimension>(gpu: &Array<f32, D>, reference: &Array<f64, D>) -> f64 {
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (g, r) in gpu.iter().zip(reference.iter()) {
        let d = f64::from(*g) - r;
        num += d * d;
        den += r * r;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Checks every element of `gpu` against the f64 `reference` with the bound γ_len · `magnitude`
/// (`magnitude` is the same operation on |inputs|, so the bound holds whatever the signs), and the
/// normwise relative error against `max_rel`. Returns the normwise error, or a description of the
/// first failure. NaN fails.
pub fn check<D: Dimension>(
    gpu: &Array<f32, D>,
    reference: &Array<f64, D>,
    magnitude: &Array<f64, D>,
    len: usize,
    max_rel: f64,
) -> Result<f64, String> {
    if gpu.shape() != reference.shape() {
        return Err(format!(
            "shape {:?} vs reference {:?}",
            gpu.shape(),
            reference.shape()
        ));
    }
    let g = gamma(len);
    for ((idx, &v), (&r, &m)) in gpu
        .indexed_iter()
        .zip(reference.iter().zip(magnitude.iter()))
    {
        let err = (f64::from(v) - r).abs();
        // The result is rounded to f32 once more when stored: half an ulp of |r|.
        let bound = g * m + U32 * r.abs() + f64::from(f32::MIN_POSITIVE);
        if !(err <= bound) {
            return Err(format!(
                "element {idx:?}: gpu {v} vs reference {r}, error {err:e} > bound {bound:e}"
            ));
        }
    }
    let rel = rel_err(gpu, reference);
    if !(rel <= max_rel) {
        return Err(format!("normwise relative error {rel:e} > {max_rel:e}"));
    }
    Ok(rel)
}

pub fn abs4(a: &Array4<f32>) -> Array4<f32> {
    a.mapv(f32::abs)
}

/// ⟨a, b⟩ in f64.
pub fn dot<D: Dimension>(a: &Array<f32, D>, b: &Array<f32, D>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}
