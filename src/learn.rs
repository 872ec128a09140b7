//! The filter-learning demo's loop, shared by `convgrad demo` and the browser page (`web/`): recover
//! hidden filters `W*` from images `X` and their filtered outputs `Y* = X ⊗ W*` alone, by Adam on
//! `J = ½‖X ⊗ W − Y*‖²` with the GPU forward pass and the GPU weight gradient, everything on the device.
//! Only the readings (the loss and the filter errors, a few numbers) come back to the host.

use ndarray::{Array4, Ix4};

use crate::error::{Error, Result};
use crate::geometry::Conv2dParams;
use crate::gpu::{Adam, Context, Tensor};
use crate::synthetic::{FILTER_NAMES, hidden_filters, images};
use crate::verify::Rng;

/// The problem and the optimiser's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnConfig {
    /// Training images.
    pub images: usize,
    /// Their height and width.
    pub image_size: usize,
    /// Filter size `S` (`S×S`, at least 3).
    pub filter_size: usize,
    /// Seed of the images, the random hidden filter and the starting filters.
    pub seed: u64,
    /// Adam's learning rate at the first step.
    pub lr: f32,
    /// Steps over which the learning rate halves (0: constant). At a constant rate Adam's steps stay
    /// as long as the rate near the minimum and overshoot along the stiffest directions: the loss rose
    /// 18× in the last 10 steps of a run while the filter error still fell. Halving every 300 steps,
    /// the loss fell at every reading on every seed, filter size and image set tried.
    pub lr_half_life: usize,
}

impl Default for LearnConfig {
    fn default() -> Self {
        Self { images: 8, image_size: 64, filter_size: 5, seed: 1, lr: 0.05, lr_half_life: 300 }
    }
}

impl LearnConfig {
    /// The learning rate of `step`: `lr · 2^(−step / half_life)`.
    #[must_use]
    pub fn learning_rate(&self, step: usize) -> f32 {
        if self.lr_half_life == 0 { self.lr } else { self.lr * 0.5f32.powf(step as f32 / self.lr_half_life as f32) }
    }
}

/// One reading of the loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Steps taken.
    pub step: usize,
    /// The learning rate of the next step.
    pub lr: f32,
    /// `½‖X ⊗ W − Y*‖²`.
    pub loss: f64,
    /// `‖W − W*‖ / ‖W*‖`.
    pub err: f64,
    /// Each filter's `‖W^k − W*^k‖ / ‖W*^k‖`, in [`FILTER_NAMES`] order.
    pub per_filter: Vec<f64>,
}

impl Reading {
    /// The worst filter's relative error.
    #[must_use]
    pub fn worst(&self) -> f64 {
        self.per_filter.iter().copied().fold(0.0, f64::max)
    }
}

/// The loop's state on the device.
#[derive(Debug)]
pub struct FilterLearning {
    config: LearnConfig,
    params: Conv2dParams,
    hidden: Array4<f32>,
    x: Tensor,
    w_star: Tensor,
    y_star: Tensor,
    w: Tensor,
    y: Tensor,
    dy: Tensor,
    dw: Tensor,
    diff: Tensor,
    adam: Adam,
    norms: Vec<f64>,
    w_norm: f64,
    step: usize,
}

impl FilterLearning {
    /// Uploads the images and the hidden filters, computes `Y* = X ⊗ W*` and a small random start.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a filter under 3, images smaller than it, no images or a
    /// learning rate that is not positive; device limits and wgpu errors.
    pub async fn new(ctx: &Context, config: LearnConfig) -> Result<Self> {
        let c = &config;
        if c.filter_size < 3 || c.images == 0 || c.image_size < c.filter_size || c.lr.is_nan() || c.lr <= 0.0 {
            return Err(Error::InvalidOption {
                what: "filter-learning settings",
                got: format!("{c:?}"),
                expected: "a filter size of at least 3, at least one image no smaller than it, and a positive rate",
            });
        }
        let params = Conv2dParams::new();
        let (k, sz) = (FILTER_NAMES.len(), c.filter_size);
        let hidden = hidden_filters(sz, c.seed);
        let x = ctx.upload(images(c.images, c.image_size, c.image_size, c.seed).view())?;
        let w_star = ctx.upload(hidden.view())?;
        let y_star = ctx.forward(&x, &w_star, None, &params)?;
        let mut rng = Rng::new(c.seed.wrapping_add(7));
        let w = ctx.upload(rng.array::<Ix4, _>((k, 1, sz, sz)).mapv(|v| 0.1 * v).view())?;
        let (y, dy) = (ctx.zeros(y_star.shape())?, ctx.zeros(y_star.shape())?);
        let (dw, diff) = (ctx.zeros(w.shape())?, ctx.zeros(w.shape())?);
        let adam = Adam::new(ctx, &w, c.lr)?;
        let w_norm = f64::from(ctx.sum_squares_async(&w_star).await?).sqrt();
        let norms =
            ctx.sum_squares_by_async(&w_star, sz * sz).await?.into_iter().map(|v| f64::from(v).sqrt()).collect();
        let mut me =
            Self { config, params, hidden, x, w_star, y_star, w, y, dy, dw, diff, adam, norms, w_norm, step: 0 };
        me.residual(ctx)?;
        Ok(me)
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &LearnConfig {
        &self.config
    }

    /// The hidden filters `W*`, `5×1×S×S`.
    #[must_use]
    pub fn hidden(&self) -> &Array4<f32> {
        &self.hidden
    }

    /// Steps taken.
    #[must_use]
    pub fn steps(&self) -> usize {
        self.step
    }

    /// `Y = X ⊗ W` and `dY = ∂J/∂Y = Y − Y*`, for the current `W`.
    fn residual(&mut self, ctx: &Context) -> Result<()> {
        ctx.forward_into(&self.x, &self.w, None, &self.params, &self.y)?;
        ctx.axpby(1.0, &self.y, -1.0, &self.y_star, &self.dy)
    }

    /// One step: `∂J/∂W = X ⊗ dY` (the weight gradient), Adam at the scheduled rate, and the new
    /// residual. Records and submits; nothing is read back.
    ///
    /// # Errors
    /// wgpu errors.
    pub fn step(&mut self, ctx: &Context) -> Result<()> {
        ctx.weight_grad_into(&self.x, &self.dy, &self.params, &self.dw)?;
        self.adam.lr = self.config.learning_rate(self.step);
        self.adam.step(ctx, &self.w, &self.dw)?;
        self.step += 1;
        self.residual(ctx)
    }

    /// The loss and the filter errors now: `K + 1` sums of squares come back.
    ///
    /// # Errors
    /// wgpu and read-back errors.
    pub async fn reading(&self, ctx: &Context) -> Result<Reading> {
        let loss = 0.5 * f64::from(ctx.sum_squares_async(&self.dy).await?);
        ctx.axpby(1.0, &self.w, -1.0, &self.w_star, &self.diff)?;
        let sz = self.config.filter_size;
        let sq = ctx.sum_squares_by_async(&self.diff, sz * sz).await?;
        let err = sq.iter().map(|&v| f64::from(v)).sum::<f64>().sqrt() / self.w_norm;
        let per_filter = sq.iter().zip(&self.norms).map(|(&v, n)| f64::from(v).sqrt() / n).collect();
        Ok(Reading { step: self.step, lr: self.config.learning_rate(self.step), loss, err, per_filter })
    }

    /// The learned filters `W`, `5×1×S×S`.
    ///
    /// # Errors
    /// Read-back errors.
    pub async fn learned(&self, ctx: &Context) -> Result<Array4<f32>> {
        ctx.download_async::<Ix4>(&self.w).await
    }
}
