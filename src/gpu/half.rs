//! Half-precision storage: `f16` and `bf16` tensors between the host and the `f32` kernels.
//!
//! The kernels compute in `f32` whatever the storage. A 16-bit operand is widened into an `f32`
//! temporary one batch chunk at a time (`widen.wgsl`), and a 16-bit output is narrowed from the `f32`
//! the kernels wrote (`narrow.wgsl`), one 32-bit word per invocation. The plans, tiles, summation
//! orders and so the determinism are the `f32` ones; only the rounding of the stored result differs.
//! How a word becomes two floats and back is rendered for the adapter's `HalfPath` by the kernel
//! renderer (`src/gpu/tiled.rs`); the integer conversions every path shares for the special cases are
//! `shaders/half.wgsl`. `Context::cast` (`gpu/ops.rs`) converts a whole tensor; the tests below run
//! the conversions inside the operations' programs.

#[cfg(test)]
mod tests {
    use ndarray::{Array4, Ix4};

    use crate::elem::Elem;
    use crate::geometry::{Conv2dGeometry, Conv2dParams, Layout};
    use crate::gpu::Context;
    use crate::plan::DeviceClass;
    use crate::verify::Rng;

    /// The GEMM kernels read 16-bit operands in place, converting where they stage them, so a layer
    /// whose f32 buffers need batch chunks runs whole in half precision: here a 16 KiB binding holds
    /// two samples of X in f32 and all four in f16 or bf16. The plan says so (`Context::chunking`),
    /// and the results are, to the bit, the f32 kernels' over the rounded operands on a context without
    /// the limit (the same plan, the same staged values, the same sums), narrowed where the output is
    /// 16-bit. The input gradient writes dX, the layer's largest buffer, in f32: it still chunks.
    #[test]
    fn half_operands_read_in_place_run_a_layer_whole_that_chunks_in_f32() {
        use crate::plan::Op;
        let base = Context::new().expect("a wgpu adapter (see README: apt-get install mesa-vulkan-drivers)");
        let whole = base.twin().with_profile(DeviceClass::Gpu);
        let limited = base.twin().with_profile(DeviceClass::Gpu).with_binding_limit(16 << 10);
        let params = Conv2dParams::new().stride(2, 2).padding(1, 1);
        let geo = Conv2dGeometry::new(4, 8, [16, 16], 8, [3, 3], params).unwrap();
        let mut rng = Rng::new(17);
        for elem in [Elem::F16, Elem::Bf16] {
            let round = |a: Array4<f32>| crate::verify::rounded(&a, elem);
            let x = round(rng.array(geo.input_shape()));
            let w = round(rng.array(geo.weight_shape()));
            let dy = round(rng.array(geo.output_shape()));
            for op in [Op::Forward, Op::WeightGrad] {
                assert_eq!(limited.chunking(op, &geo, Elem::F32).unwrap().samples, 2, "{op:?} in f32");
                let half = limited.chunking(op, &geo, elem).unwrap();
                assert_eq!(half, crate::Chunking { samples: 4, in_place: true }, "{op:?} in {elem}");
            }
            assert_eq!(limited.chunking(Op::InputGrad, &geo, elem).unwrap().samples, 2);
            let [xh, wh, dyh] = [&x, &w, &dy].map(|a| limited.upload_as(a.view(), elem).unwrap());
            let [x32, w32, dy32] = [&x, &w, &dy].map(|a| whole.upload(a.view()).unwrap());
            let bits = |ctx: &Context, t: &crate::Tensor| -> Vec<u32> {
                ctx.download::<Ix4>(t).unwrap().iter().map(|v| v.to_bits()).collect()
            };
            let y = limited.forward(&xh, &wh, None, &params).unwrap();
            let y32 = whole.forward(&x32, &w32, None, &params).unwrap();
            assert_eq!(bits(&limited, &y), bits(&whole, &whole.cast(&y32, elem).unwrap()), "{elem} forward");
            let dw = limited.weight_grad(&xh, &dyh, [3, 3], &params).unwrap();
            let dw32 = whole.weight_grad(&x32, &dy32, [3, 3], &params).unwrap();
            assert_eq!(bits(&limited, &dw), bits(&whole, &dw32), "{elem} weight gradient");
            let dx = limited.input_grad(&dyh, &wh, [16, 16], &params).unwrap();
            let dx32 = whole.input_grad(&dy32, &w32, [16, 16], &params).unwrap();
            assert_eq!(bits(&limited, &dx), bits(&whole, &whole.cast(&dx32, elem).unwrap()), "{elem} input gradient");
        }
    }

    /// Batch chunks of a 16-bit output that end inside a word: 5 samples of 3×7×7 = 147 outputs (odd),
    /// in chunks of an odd number of samples under a 2 KiB binding, so chunk boundaries fall mid-word and each
    /// narrowing keeps the neighbouring chunk's half. Chunked and whole give the same bits (forward and
    /// input gradient compute each sample alike), in both layouts and both profiles; a NaN-filled
    /// output shows any element left unwritten.
    #[test]
    fn chunks_that_end_inside_a_word_keep_their_neighbours() {
        let base = Context::new().expect("a wgpu adapter (see README: apt-get install mesa-vulkan-drivers)");
        let mut rng = Rng::new(11);
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let params = Conv2dParams::new().padding(1, 1).layout(layout);
            let geo = Conv2dGeometry::new(5, 3, [7, 7], 3, [3, 3], params).unwrap();
            let x: Array4<f32> = rng.array(geo.input_shape());
            let w: Array4<f32> = rng.array(geo.weight_shape());
            for elem in [Elem::F16, Elem::Bf16] {
                for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
                    let whole = base.twin().with_profile(class);
                    let chunked = base.twin().with_profile(class).with_binding_limit(2048);
                    let g = geo.nchw();
                    let per = chunked.plan_forward(&geo).unwrap().per_sample(&g);
                    let nb = crate::plan::batch_chunk(&g, per, chunked.profile()).unwrap();
                    assert!(nb % 2 == 1 && nb < 5, "chunks of {nb}: the test needs an odd chunk");
                    let run = |ctx: &Context| {
                        let xt = ctx.upload_as(x.view(), elem).unwrap();
                        let wt = ctx.upload_as(w.view(), elem).unwrap();
                        let nan = Array4::from_elem(geo.output_shape(), f32::NAN);
                        let y = ctx.upload_as(nan.view(), elem).unwrap();
                        ctx.forward_into(&xt, &wt, None, &params, &y).unwrap();
                        let dx = ctx.input_grad(&y, &wt, [7, 7], &params).unwrap();
                        (ctx.download::<Ix4>(&y).unwrap(), ctx.download::<Ix4>(&dx).unwrap())
                    };
                    let (y0, dx0) = run(&whole);
                    let (y, dx) = run(&chunked);
                    assert!(y0.iter().all(|v| v.is_finite()), "{elem} {class:?} {layout:?}: an output left unwritten");
                    let same =
                        |a: &Array4<f32>, b: &Array4<f32>| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                    assert!(same(&y, &y0), "{elem} {class:?} {layout:?}: forward");
                    assert!(same(&dx, &dx0), "{elem} {class:?} {layout:?}: input gradient");
                }
            }
        }
    }
}
