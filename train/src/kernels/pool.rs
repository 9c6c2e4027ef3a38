//! Max pooling, NHWC: the maximum over each window of each channel
//! (padding never wins, as TensorFlow pads with -inf), the first maximum in
//! window order taking the gradient, as TensorFlow's `MaxPoolGrad` does.

use rayon::prelude::*;

use super::{simd, Geometry};

/// `y = maxpool(x)`; `argmax` receives, per output element, the index of
/// the winning input element within its image.
pub fn forward(g: &Geometry, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let c = g.c;
    let out_image = g.out_pixels() * c;
    assert_eq!(x.len(), g.n * g.in_image(), "max pool input");
    assert_eq!(y.len(), g.n * out_image, "max pool output");
    assert_eq!(argmax.len(), y.len(), "max pool indices");
    assert!(
        g.in_image() <= u32::MAX as usize,
        "max pool image too large"
    );
    y.par_chunks_mut(out_image)
        .zip(argmax.par_chunks_mut(out_image))
        .zip(x.par_chunks(g.in_image()))
        .for_each(|((y, arg), x)| {
            simd(
                #[inline(always)]
                || {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let at = (oy * g.ow + ox) * c;
                            let best = &mut y[at..][..c];
                            let idx = &mut arg[at..][..c];
                            best.fill(f32::NEG_INFINITY);
                            idx.fill(u32::MAX);
                            for ky in 0..g.kh {
                                let Some(iy) = g.in_row(oy, ky) else { continue };
                                for kx in 0..g.kw {
                                    let Some(ix) = g.in_col(ox, kx) else { continue };
                                    let base = (iy * g.w + ix) * c;
                                    let xin = &x[base..][..c];
                                    for (i, ((b, j), &v)) in
                                        best.iter_mut().zip(idx.iter_mut()).zip(xin).enumerate()
                                    {
                                        if v > *b || *j == u32::MAX {
                                            *b = v;
                                            *j = (base + i) as u32;
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            )
        });
}

/// `dx` of max pooling: each output gradient added to its winning input.
pub fn backward(g: &Geometry, argmax: &[u32], dy: &[f32], dx: &mut [f32]) {
    let out_image = g.out_pixels() * g.c;
    assert_eq!(dy.len(), g.n * out_image, "max pool output gradient");
    assert_eq!(dx.len(), g.n * g.in_image(), "max pool input gradient");
    dx.par_chunks_mut(g.in_image())
        .zip(dy.par_chunks(out_image).zip(argmax.par_chunks(out_image)))
        .for_each(|(dx, (dy, arg))| {
            dx.fill(0.0);
            for (&j, &d) in arg.iter().zip(dy) {
                dx[j as usize] += d;
            }
        });
}
