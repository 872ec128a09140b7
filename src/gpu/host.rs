//! The ndarray-in, ndarray-out conveniences: upload, run, download. They block on the download, so
//! they are native only; in the browser, upload, run the device-tensor operations and
//! `download_async`.

use ndarray::{Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Ix1, Ix4};

use crate::error::{Error, Result};
use crate::geometry::{Conv2dParams, Layout};
use crate::gpu::context::Context;

impl Context {
    /// [`Context::forward`] on host arrays: uploads, runs, downloads.
    ///
    /// # Errors
    /// As [`Context::forward`] and [`Context::download`].
    pub fn conv2d(
        &self,
        x: ArrayView4<f32>,
        w: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
        params: &Conv2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry(crate::dims4(&x), crate::dims4(&w))?;
        let b = bias.map(|b| self.upload(b)).transpose()?;
        let y = self.forward(&self.upload(x)?, &self.upload(w)?, b.as_ref(), params)?;
        self.download::<Ix4>(&y)
    }

    /// [`Context::weight_grad`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::weight_grad`] and [`Context::download`].
    pub fn conv2d_weight_grad(
        &self,
        x: ArrayView4<f32>,
        dy: ArrayView4<f32>,
        kernel: [usize; 2],
        params: &Conv2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry_for_weight_grad(crate::dims4(&x), crate::dims4(&dy), kernel)?;
        let dw = self.weight_grad(&self.upload(x)?, &self.upload(dy)?, kernel, params)?;
        self.download::<Ix4>(&dw)
    }

    /// [`Context::input_grad`] on host arrays.
    ///
    /// # Errors
    /// As [`Context::input_grad`] and [`Context::download`].
    pub fn conv2d_input_grad(
        &self,
        dy: ArrayView4<f32>,
        w: ArrayView4<f32>,
        input_size: [usize; 2],
        params: &Conv2dParams,
    ) -> Result<Array4<f32>> {
        params.geometry_for_input_grad(crate::dims4(&dy), crate::dims4(&w), input_size)?;
        let dx = self.input_grad(&self.upload(dy)?, &self.upload(w)?, input_size, params)?;
        self.download::<Ix4>(&dx)
    }

    /// [`Context::bias_grad`] on a host array.
    ///
    /// # Errors
    /// As [`Context::bias_grad`] and [`Context::download`].
    pub fn conv2d_bias_grad(&self, dy: ArrayView4<f32>, layout: Layout) -> Result<Array1<f32>> {
        let db = self.bias_grad(&self.upload(dy)?, layout)?;
        self.download::<Ix1>(&db)
    }

    // ---- the single-channel form ----------------------------------------------------------------

    /// The single-channel layer: one `U×V` image correlated with a bank of `K` filters of `S×T`,
    /// `Y^k(p,q) = Σ_i Σ_j X(p+i, q+j) · W^k(i,j)`, giving `K×(U−S+1)×(V−T+1)`.
    ///
    /// # Errors
    /// A filter larger than the image, a zero dimension, device limits, wgpu errors.
    pub fn correlate(&self, image: ArrayView2<f32>, filters: ArrayView3<f32>) -> Result<Array3<f32>> {
        let y = self.conv2d(
            image.insert_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)),
            filters.insert_axis(ndarray::Axis(1)),
            None,
            &Conv2dParams::default(),
        )?;
        Ok(y.index_axis_move(ndarray::Axis(0), 0))
    }

    /// The single-channel weight gradient: `∂J/∂W^k(i,j) = Σ_p Σ_q X(p+i, q+j) · ∂J/∂Y^k(p,q)`, the
    /// valid correlation of the `U×V` image with each `P×Q` output gradient, giving `K×S×T` with
    /// `S = U−P+1`, `T = V−Q+1`.
    ///
    /// # Errors
    /// An output gradient larger than the image, a zero dimension, device limits, wgpu errors.
    pub fn correlate_weight_grad(&self, image: ArrayView2<f32>, grad_output: ArrayView3<f32>) -> Result<Array3<f32>> {
        let (u, v) = image.dim();
        let (_, p, q) = grad_output.dim();
        let s = (u + 1).checked_sub(p).filter(|&s| s > 0);
        let t = (v + 1).checked_sub(q).filter(|&t| t > 0);
        let (Some(s), Some(t)) = (s, t) else {
            return Err(Error::shape(
                "output gradient size (at most the image size)",
                format!("≤ {u}×{v}"),
                format!("{p}×{q}"),
            ));
        };
        let dw = self.conv2d_weight_grad(
            image.insert_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)),
            grad_output.insert_axis(ndarray::Axis(0)),
            [s, t],
            &Conv2dParams::default(),
        )?;
        Ok(dw.index_axis_move(ndarray::Axis(1), 0))
    }

    /// The single-channel input gradient: `∂J/∂X(u,v) = Σ_k Σ_i Σ_j ∂J/∂Y^k(u−i, v−j) · W^k(i,j)`, a
    /// `U×V` image with `U = P+S−1`, `V = Q+T−1`.
    ///
    /// # Errors
    /// Filters and gradients of different counts, a zero dimension, device limits, wgpu errors.
    pub fn correlate_input_grad(&self, grad_output: ArrayView3<f32>, filters: ArrayView3<f32>) -> Result<Array2<f32>> {
        let (_, p, q) = grad_output.dim();
        let (_, s, t) = filters.dim();
        let size = [p.saturating_add(s).saturating_sub(1), q.saturating_add(t).saturating_sub(1)];
        let dx = self.conv2d_input_grad(
            grad_output.insert_axis(ndarray::Axis(0)),
            filters.insert_axis(ndarray::Axis(1)),
            size,
            &Conv2dParams::default(),
        )?;
        Ok(dx.index_axis_move(ndarray::Axis(0), 0).index_axis_move(ndarray::Axis(0), 0))
    }
}
