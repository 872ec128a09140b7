//! Synthetic data for the filter-learning demo: seeded images and a bank of well-known filters.

use ndarray::{Array2, Array4, s};

use crate::verify::Rng;

/// Names of the filters [`hidden_filters`] returns, in order.
pub const FILTER_NAMES: [&str; 5] = ["sobel-x", "sobel-y", "laplacian", "gaussian", "random"];

/// The hidden bank, `5×1×S×S` (`S ≥ 3`): Sobel x and y and the 4-neighbour Laplacian (3×3, centred),
/// a normalised Gaussian blur over the whole `S×S` (σ = S/4), and a seeded random filter.
#[must_use]
pub fn hidden_filters(size: usize, seed: u64) -> Array4<f32> {
    let size = size.max(3);
    let mut w = Array4::<f32>::zeros((FILTER_NAMES.len(), 1, size, size));
    let c = (size - 3) / 2;
    let small: [[[f32; 3]; 3]; 3] = [
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
        [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]],
        [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
    ];
    for (k, f) in small.iter().enumerate() {
        for (i, row) in f.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                w[[k, 0, c + i, c + j]] = v;
            }
        }
    }
    let sigma = size as f32 / 4.0;
    let mid = (size as f32 - 1.0) / 2.0;
    let g = Array2::from_shape_fn((size, size), |(i, j)| {
        let (di, dj) = (i as f32 - mid, j as f32 - mid);
        (-(di * di + dj * dj) / (2.0 * sigma * sigma)).exp()
    });
    let total = g.sum();
    w.slice_mut(s![3, 0, .., ..]).assign(&(g / total));
    let mut rng = Rng::new(seed ^ 0xF11_7E25);
    w.slice_mut(s![4, 0, .., ..]).mapv_inplace(|_| rng.uniform());
    w
}

/// `n` single-channel `h×w` images, `n×1×h×w`: a smooth random field (a few random plane waves),
/// random rectangles and discs, and white noise, with the mean removed. The noise and the edges give
/// every spatial frequency, so the least-squares problem of recovering a filter is well conditioned.
#[must_use]
pub fn images(n: usize, h: usize, w: usize, seed: u64) -> Array4<f32> {
    let mut rng = Rng::new(seed);
    let mut x = Array4::<f32>::zeros((n, 1, h, w));
    for mut img in x.outer_iter_mut() {
        let mut img = img.index_axis_mut(ndarray::Axis(0), 0);
        for _ in 0..4 {
            let (fx, fy, ph) = (rng.uniform() * 0.3, rng.uniform() * 0.3, rng.uniform() * 3.2);
            let amp = 0.5 * rng.uniform();
            img.indexed_iter_mut().for_each(|((i, j), v)| *v += amp * (fx * i as f32 + fy * j as f32 + ph).sin());
        }
        for shape in 0..6 {
            let (ci, cj) = (rng.uniform() * 0.5 + 0.5, rng.uniform() * 0.5 + 0.5);
            let (ci, cj) = (ci * h as f32, cj * w as f32);
            let r = (0.05 + 0.15 * (rng.uniform() + 1.0)) * h.min(w) as f32;
            let amp = rng.uniform();
            img.indexed_iter_mut().for_each(|((i, j), v)| {
                let (di, dj) = (i as f32 - ci, j as f32 - cj);
                let inside =
                    if shape % 2 == 0 { di.abs() < r && dj.abs() < 0.6 * r } else { di * di + dj * dj < r * r };
                if inside {
                    *v += amp;
                }
            });
        }
        img.mapv_inplace(|v| v + 0.3 * rng.uniform());
        let mean = img.mean().unwrap_or(0.0);
        img.mapv_inplace(|v| v - mean);
    }
    x
}
