//! Recover hidden filters from inputs and outputs alone, with the GPU forward pass and weight
//! gradient: gradient descent (Adam) on J = ½‖X ⊗ W − Y*‖², everything on the device.
//!
//! cargo run --release --example learn_filters

use convgrad::synthetic::{hidden_filters, images};
use convgrad::{Adam, Context, Conv2dParams};
use ndarray::Array4;

fn main() -> convgrad::Result<()> {
    let ctx = Context::new()?;
    let params = Conv2dParams::new(); // single-channel valid correlation
    let w_true = hidden_filters(5, 1); // Sobel x/y, Laplacian, Gaussian, random: 5×1×5×5

    // Upload once: images, hidden filters, targets Y* = X ⊗ W*, and a zero start W.
    let x = ctx.upload(images(8, 64, 64, 1).view())?;
    let w_star = ctx.upload(w_true.view())?;
    let y_star = ctx.forward(&x, &w_star, None, &params)?;
    let w = ctx.zeros(w_star.shape())?;
    let (y, dy) = (ctx.zeros(y_star.shape())?, ctx.zeros(y_star.shape())?);
    let (dw, diff) = (ctx.zeros(w.shape())?, ctx.zeros(w.shape())?);
    let w_norm = ctx.sum_squares(&w_star)?.sqrt();
    let mut adam = Adam::new(&ctx, &w, 0.02)?;

    for step in 0..5000 {
        ctx.forward_into(&x, &w, None, &params, &y)?; // Y = X ⊗ W
        ctx.axpby(1.0, &y, -1.0, &y_star, &dy)?; // dY = ∂J/∂Y = Y − Y*
        if step % 50 == 0 {
            ctx.axpby(1.0, &w, -1.0, &w_star, &diff)?; // only two scalars come back to the host
            let err = ctx.sum_squares(&diff)?.sqrt() / w_norm;
            println!("step {step:4}: J = {:.3e}, ‖W − W*‖/‖W*‖ = {err:.2e}", 0.5 * ctx.sum_squares(&dy)?);
            if err < 1e-3 {
                break;
            }
        }
        ctx.weight_grad_into(&x, &dy, &params, &dw)?; // ∂J/∂W = X ⊗ dY
        adam.step(&ctx, &w, &dw)?;
    }

    let learned: Array4<f32> = ctx.download(&w)?;
    let err = (&learned - &w_true).mapv(|v| v * v).sum().sqrt() / w_true.mapv(|v| v * v).sum().sqrt();
    println!("relative filter error ‖W − W*‖/‖W*‖ = {err:.2e}");
    Ok(())
}
