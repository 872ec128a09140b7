//! The CPU oracle: simple, slow, correct.
//!
//! Every function here is a direct transcription of the index formula in the crate docs, with
//! accumulation in `f64` and the same index names as the WGSL kernels (`n, k, p, q` over the output,
//! `c` over input channels with `cg` its index inside the group, `i, j` over kernel taps). They accept
//! `f32` or `f64` views of any memory layout and return `f64` arrays. The tests measure the GPU against
//! these; nothing else in the crate calls them.

use ndarray::{Array1, Array4, ArrayView1, ArrayView4};

use crate::error::{Error, Result};
use crate::geometry::{Conv2dGeometry, Conv2dParams, ConvTranspose2dParams, Layout};

/// NHWC activations as NCHW views, or OHWI weights as OIHW: `[0, 3, 1, 2]` does both, and its
/// inverse `[0, 2, 3, 1]` goes back. The reference computes in NCHW on views, copying nothing.
const TO_NCHW: [usize; 4] = [0, 3, 1, 2];
const FROM_NCHW: [usize; 4] = [0, 2, 3, 1];

/// `a` (a result computed in NCHW / OIHW) in `layout`.
fn in_layout(a: Array4<f64>, layout: Layout) -> Array4<f64> {
    match layout {
        Layout::Nchw => a,
        Layout::Nhwc => a.permuted_axes(FROM_NCHW).as_standard_layout().into_owned(),
    }
}

/// The input row (or column) read by output position `p` and kernel tap `i`: `p·stride + i·dilation −
/// padding`, or `None` in the zero padding.
#[inline]
fn tap(p: usize, i: usize, stride: usize, dilation: usize, padding: usize, size: usize) -> Option<usize> {
    (p * stride + i * dilation).checked_sub(padding).filter(|&h| h < size)
}

/// Forward correlation with optional bias:
/// `Y[n,k,p,q] = b[k] + Σ_cg Σ_i Σ_j X[n, g·C/G + cg, p·sh + i·dh − ph, q·sw + j·dw − pw] · W[k,cg,i,j]`
/// where `g = k / (K/G)`.
///
/// # Errors
/// Any shape or parameter error of [`Conv2dParams::geometry`]; a bias whose length is not `K`.
pub fn forward<T: Copy + Into<f64>>(
    x: ArrayView4<T>,
    w: ArrayView4<T>,
    bias: Option<ArrayView1<T>>,
    params: &Conv2dParams,
) -> Result<Array4<f64>> {
    if params.layout != Layout::Nchw {
        let nchw = params.layout(Layout::Nchw);
        let y = forward(x.permuted_axes(TO_NCHW), w.permuted_axes(TO_NCHW), bias, &nchw)?;
        return Ok(in_layout(y, params.layout));
    }
    let geo = params.geometry(crate::dims4(&x), crate::dims4(&w))?;
    if let Some(b) = &bias
        && b.len() != geo.k
    {
        return Err(Error::shape("bias length", geo.k.to_string(), b.len().to_string()));
    }
    let Conv2dGeometry { n: nn, h, w: ww, k: kk, s, t, p: pp, q: qq, .. } = geo;
    let [sh, sw] = params.stride;
    let [ph, pw] = geo.pad.lead();
    let [dh, dw] = params.dilation;
    let (cpg, kpg) = (geo.channels_per_group(), geo.filters_per_group());
    let mut y = Array4::<f64>::zeros(geo.output_shape());
    for n in 0..nn {
        for k in 0..kk {
            let g = k / kpg;
            for p in 0..pp {
                for q in 0..qq {
                    let mut acc = bias.as_ref().map_or(0.0, |b| b[k].into());
                    for cg in 0..cpg {
                        let c = g * cpg + cg;
                        for i in 0..s {
                            let Some(hh) = tap(p, i, sh, dh, ph, h) else {
                                continue;
                            };
                            for j in 0..t {
                                let Some(wi) = tap(q, j, sw, dw, pw, ww) else {
                                    continue;
                                };
                                acc += x[[n, c, hh, wi]].into() * w[[k, cg, i, j]].into();
                            }
                        }
                    }
                    y[[n, k, p, q]] = acc;
                }
            }
        }
    }
    Ok(y)
}

/// Weight gradient:
/// `dW[k,cg,i,j] = Σ_n Σ_p Σ_q X[n, g·C/G + cg, p·sh + i·dh − ph, q·sw + j·dw − pw] · dY[n,k,p,q]`.
///
/// # Errors
/// Any error of [`Conv2dParams::geometry_for_weight_grad`].
pub fn weight_grad<T: Copy + Into<f64>>(
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
    kernel: [usize; 2],
    params: &Conv2dParams,
) -> Result<Array4<f64>> {
    if params.layout != Layout::Nchw {
        let nchw = params.layout(Layout::Nchw);
        let dw = weight_grad(x.permuted_axes(TO_NCHW), dy.permuted_axes(TO_NCHW), kernel, &nchw)?;
        return Ok(in_layout(dw, params.layout));
    }
    let geo = params.geometry_for_weight_grad(crate::dims4(&x), crate::dims4(&dy), kernel)?;
    let Conv2dGeometry { n: nn, h, w: ww, k: kk, s, t, p: pp, q: qq, .. } = geo;
    let [sh, sw] = params.stride;
    let [ph, pw] = geo.pad.lead();
    let [dh, dw] = params.dilation;
    let (cpg, kpg) = (geo.channels_per_group(), geo.filters_per_group());
    let mut dw_out = Array4::<f64>::zeros(geo.weight_shape());
    for k in 0..kk {
        let g = k / kpg;
        for cg in 0..cpg {
            let c = g * cpg + cg;
            for i in 0..s {
                for j in 0..t {
                    let mut acc = 0.0f64;
                    for n in 0..nn {
                        for p in 0..pp {
                            let Some(hh) = tap(p, i, sh, dh, ph, h) else {
                                continue;
                            };
                            for q in 0..qq {
                                let Some(wi) = tap(q, j, sw, dw, pw, ww) else {
                                    continue;
                                };
                                acc += x[[n, c, hh, wi]].into() * dy[[n, k, p, q]].into();
                            }
                        }
                    }
                    dw_out[[k, cg, i, j]] = acc;
                }
            }
        }
    }
    Ok(dw_out)
}

/// Input gradient (the transposed convolution):
/// `dX[n,c,h,w] = Σ_{k in c's group} Σ_i Σ_j dY[n,k,p,q] · W[k,cg,i,j]` over the `(p, q)` with
/// `p·sh + i·dh − ph = h` and `q·sw + j·dw − pw = w`.
///
/// Written as a scatter over the forward index form, so it shares no logic with the GPU's gather.
///
/// # Errors
/// Any error of [`Conv2dParams::geometry_for_input_grad`].
pub fn input_grad<T: Copy + Into<f64>>(
    dy: ArrayView4<T>,
    w: ArrayView4<T>,
    input_size: [usize; 2],
    params: &Conv2dParams,
) -> Result<Array4<f64>> {
    if params.layout != Layout::Nchw {
        let nchw = params.layout(Layout::Nchw);
        let dx = input_grad(dy.permuted_axes(TO_NCHW), w.permuted_axes(TO_NCHW), input_size, &nchw)?;
        return Ok(in_layout(dx, params.layout));
    }
    let geo = params.geometry_for_input_grad(crate::dims4(&dy), crate::dims4(&w), input_size)?;
    let Conv2dGeometry { n: nn, h, w: ww, k: kk, s, t, p: pp, q: qq, .. } = geo;
    let [sh, sw] = params.stride;
    let [ph, pw] = geo.pad.lead();
    let [dh, dw] = params.dilation;
    let (cpg, kpg) = (geo.channels_per_group(), geo.filters_per_group());
    let mut dx = Array4::<f64>::zeros(geo.input_shape());
    for n in 0..nn {
        for k in 0..kk {
            let g = k / kpg;
            for p in 0..pp {
                for q in 0..qq {
                    let d: f64 = dy[[n, k, p, q]].into();
                    for cg in 0..cpg {
                        let c = g * cpg + cg;
                        for i in 0..s {
                            let Some(hh) = tap(p, i, sh, dh, ph, h) else {
                                continue;
                            };
                            for j in 0..t {
                                let Some(wi) = tap(q, j, sw, dw, pw, ww) else {
                                    continue;
                                };
                                dx[[n, c, hh, wi]] += d * w[[k, cg, i, j]].into();
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(dx)
}

/// Transposed convolution (PyTorch's `conv_transpose2d`), as a scatter of each input element:
/// `Y[n, g·Cout/G + cg, p·sh + i·dh − pt, q·sw + j·dw − pl] += X[n,k,p,q] · W[k,cg,i,j]` with
/// `g = k / (Cin/G)`, then `b[c]` added to every output. Written from the definition, not from the
/// convolution it is computed as on the device.
///
/// # Errors
/// Any error of [`ConvTranspose2dParams::geometry`]; a bias whose length is not `Cout`.
pub fn conv_transpose<T: Copy + Into<f64>>(
    x: ArrayView4<T>,
    w: ArrayView4<T>,
    bias: Option<ArrayView1<T>>,
    params: &ConvTranspose2dParams,
) -> Result<Array4<f64>> {
    if params.layout != Layout::Nchw {
        let y = conv_transpose(x.permuted_axes(TO_NCHW), w.permuted_axes(TO_NCHW), bias, &params.layout(Layout::Nchw))?;
        return Ok(in_layout(y, params.layout));
    }
    let geo = params.geometry(crate::dims4(&x), crate::dims4(&w))?;
    let [nn, cin, hh, ww] = geo.input_shape();
    let [_, cout, ho, wo] = geo.output_shape();
    if let Some(b) = &bias
        && b.len() != cout
    {
        return Err(Error::shape("bias length", cout.to_string(), b.len().to_string()));
    }
    let (s, t) = (geo.conv.s, geo.conv.t);
    let [sh, sw] = params.stride;
    let [dh, dw] = params.dilation;
    let [pt, pl] = params.padding.lead();
    let (kpg, cpg) = (cin / params.groups, cout / params.groups);
    let mut y = Array4::<f64>::zeros((nn, cout, ho, wo));
    for n in 0..nn {
        for k in 0..cin {
            let g = k / kpg;
            for p in 0..hh {
                for q in 0..ww {
                    let v: f64 = x[[n, k, p, q]].into();
                    for cg in 0..cpg {
                        for i in 0..s {
                            let Some(oh) = tap(p, i, sh, dh, pt, ho) else {
                                continue;
                            };
                            for j in 0..t {
                                let Some(ow) = tap(q, j, sw, dw, pl, wo) else {
                                    continue;
                                };
                                y[[n, g * cpg + cg, oh, ow]] += v * w[[k, cg, i, j]].into();
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = bias {
        for ((_, c, _, _), v) in y.indexed_iter_mut() {
            *v += b[c].into();
        }
    }
    Ok(y)
}

/// The input gradient of a transposed convolution, gathered:
/// `dX[n,k,p,q] = Σ_cg Σ_i Σ_j dY[n, g·Cout/G + cg, p·sh + i·dh − pt, q·sw + j·dw − pl] · W[k,cg,i,j]`.
///
/// # Errors
/// Any error of [`ConvTranspose2dParams::geometry_for_input_grad`].
pub fn conv_transpose_input_grad<T: Copy + Into<f64>>(
    dy: ArrayView4<T>,
    w: ArrayView4<T>,
    params: &ConvTranspose2dParams,
) -> Result<Array4<f64>> {
    if params.layout != Layout::Nchw {
        let nchw = params.layout(Layout::Nchw);
        let dx = conv_transpose_input_grad(dy.permuted_axes(TO_NCHW), w.permuted_axes(TO_NCHW), &nchw)?;
        return Ok(in_layout(dx, params.layout));
    }
    let geo = params.geometry_for_input_grad(crate::dims4(&dy), crate::dims4(&w))?;
    let [nn, cin, hh, ww] = geo.input_shape();
    let [_, cout, ho, wo] = geo.output_shape();
    let (s, t) = (geo.conv.s, geo.conv.t);
    let [sh, sw] = params.stride;
    let [dh, dw] = params.dilation;
    let [pt, pl] = params.padding.lead();
    let (kpg, cpg) = (cin / params.groups, cout / params.groups);
    Ok(Array4::from_shape_fn((nn, cin, hh, ww), |(n, k, p, q)| {
        let g = k / kpg;
        let mut acc = 0.0f64;
        for cg in 0..cpg {
            for i in 0..s {
                let Some(oh) = tap(p, i, sh, dh, pt, ho) else {
                    continue;
                };
                for j in 0..t {
                    let Some(ow) = tap(q, j, sw, dw, pl, wo) else {
                        continue;
                    };
                    acc += dy[[n, g * cpg + cg, oh, ow]].into() * w[[k, cg, i, j]].into();
                }
            }
        }
        acc
    }))
}

/// The weight gradient of a transposed convolution:
/// `dW[k,cg,i,j] = Σ_n Σ_p Σ_q X[n,k,p,q] · dY[n, g·Cout/G + cg, p·sh + i·dh − pt, q·sw + j·dw − pl]`.
///
/// # Errors
/// Any error of [`ConvTranspose2dParams::geometry_for_weight_grad`].
pub fn conv_transpose_weight_grad<T: Copy + Into<f64>>(
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
    kernel: [usize; 2],
    params: &ConvTranspose2dParams,
) -> Result<Array4<f64>> {
    if params.layout != Layout::Nchw {
        let nchw = params.layout(Layout::Nchw);
        let dw = conv_transpose_weight_grad(x.permuted_axes(TO_NCHW), dy.permuted_axes(TO_NCHW), kernel, &nchw)?;
        return Ok(in_layout(dw, params.layout));
    }
    let geo = params.geometry_for_weight_grad(crate::dims4(&x), crate::dims4(&dy), kernel)?;
    let [nn, cin, hh, ww] = geo.input_shape();
    let [_, cout, ho, wo] = geo.output_shape();
    let [s, t] = kernel;
    let [sh, sw] = params.stride;
    let [dh, dw] = params.dilation;
    let [pt, pl] = params.padding.lead();
    let (kpg, cpg) = (cin / params.groups, cout / params.groups);
    Ok(Array4::from_shape_fn((cin, cpg, s, t), |(k, cg, i, j)| {
        let c = (k / kpg) * cpg + cg;
        let mut acc = 0.0f64;
        for n in 0..nn {
            for p in 0..hh {
                let Some(oh) = tap(p, i, sh, dh, pt, ho) else {
                    continue;
                };
                for q in 0..ww {
                    let Some(ow) = tap(q, j, sw, dw, pl, wo) else {
                        continue;
                    };
                    acc += x[[n, k, p, q]].into() * dy[[n, c, oh, ow]].into();
                }
            }
        }
        acc
    }))
}

/// Bias gradient: `dB[k] = Σ_n Σ_p Σ_q dY[n,k,p,q]`, with dY in `layout`.
#[must_use]
pub fn bias_grad<T: Copy + Into<f64>>(dy: ArrayView4<T>, layout: Layout) -> Array1<f64> {
    let dy = if layout == Layout::Nchw { dy } else { dy.permuted_axes(TO_NCHW) };
    let (nn, kk, pp, qq) = dy.dim();
    Array1::from_shape_fn(kk, |k| {
        let mut acc = 0.0f64;
        for n in 0..nn {
            for p in 0..pp {
                for q in 0..qq {
                    acc += dy[[n, k, p, q]].into();
                }
            }
        }
        acc
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, array};

    #[test]
    fn single_channel_by_hand() {
        // X = [[1,2,3],[4,5,6],[7,8,9]], W = [[1,0],[0,-1]]: Y(p,q) = X(p,q) − X(p+1,q+1) = −4 everywhere.
        let x = Array::from_shape_vec((1, 1, 3, 3), (1..=9).map(|v| v as f32).collect()).unwrap();
        let w = array![[[[1.0f32, 0.0], [0.0, -1.0]]]];
        let y = forward(x.view(), w.view(), None, &Conv2dParams::default()).unwrap();
        assert_eq!(y, Array4::from_elem((1, 1, 2, 2), -4.0));
        // dW(i,j) = Σ_pq X(p+i,q+j)·dY(p,q) with dY = 1: sums of 2×2 windows' corners.
        let dy = Array4::from_elem((1, 1, 2, 2), 1.0f32);
        let dw = weight_grad(x.view(), dy.view(), [2, 2], &Conv2dParams::default()).unwrap();
        assert_eq!(dw, array![[[[12.0, 16.0], [24.0, 28.0]]]]);
    }
}
