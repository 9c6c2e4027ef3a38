//! Depthwise convolutions (depth multiplier 1), NHWC with Keras-layout
//! kernels `[kh, kw, c, 1]`: every output pixel is a sum over the window's
//! taps of an input row times a kernel row, each a run of `c` contiguous
//! channels, so the inner loops are channel vectors.

use rayon::prelude::*;

use super::fresh::zeroed_by_chunks;
use super::{simd, Geometry};

/// `y = depthwise(x, w)`: `x` `[n, h, w, c]`, `w` `[kh, kw, c]`, `y`
/// `[n, oh, ow, c]`, a new vector (each image's output zeroed as its turn
/// comes, see [`super::fresh::zeroed_by_chunks`]).
pub fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let c = g.c;
    assert_eq!(x.len(), g.n * g.in_image(), "depthwise input");
    assert_eq!(w.len(), g.kh * g.kw * c, "depthwise kernel");
    let image_out = g.out_pixels() * c;
    zeroed_by_chunks(g.n * image_out, image_out, |i, y| {
        forward_image(g, &x[i * g.in_image()..][..g.in_image()], w, y)
    })
}

/// One image of [`forward`] into its zeroed output `y`.
fn forward_image(g: &Geometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    let c = g.c;
    simd(
        #[inline(always)]
        || {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let out = &mut y[(oy * g.ow + ox) * c..][..c];
                    for ky in 0..g.kh {
                        let Some(iy) = g.in_row(oy, ky) else { continue };
                        for kx in 0..g.kw {
                            let Some(ix) = g.in_col(ox, kx) else { continue };
                            let xin = &x[(iy * g.w + ix) * c..][..c];
                            let wt = &w[(ky * g.kw + kx) * c..][..c];
                            for ((o, &a), &b) in out.iter_mut().zip(xin).zip(wt) {
                                *o += a * b;
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Gradients of `y = depthwise(x, w)` given `dy`: `dx` and `dw`, each when
/// asked, in one pass over the windows.
pub fn backward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
) {
    let c = g.c;
    let taps = g.kh * g.kw * c;
    let image_out = g.out_pixels() * c;
    assert_eq!(dy.len(), g.n * image_out, "depthwise output gradient");
    let want_dw = dw.is_some();
    // One image: its input gradient (if asked) and its share of dw.
    let image = |x: &[f32], dy: &[f32], dx: Option<&mut [f32]>, acc: &mut [f32]| {
        simd(
            #[inline(always)]
            || {
                let mut dx = dx;
                if let Some(dx) = dx.as_deref_mut() {
                    dx.fill(0.0);
                }
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let gy = &dy[(oy * g.ow + ox) * c..][..c];
                        for ky in 0..g.kh {
                            let Some(iy) = g.in_row(oy, ky) else { continue };
                            for kx in 0..g.kw {
                                let Some(ix) = g.in_col(ox, kx) else { continue };
                                let at = (iy * g.w + ix) * c;
                                let tap = (ky * g.kw + kx) * c;
                                if let Some(dx) = dx.as_deref_mut() {
                                    let wt = &w[tap..][..c];
                                    let d = &mut dx[at..][..c];
                                    for ((d, &a), &b) in d.iter_mut().zip(gy).zip(wt) {
                                        *d += a * b;
                                    }
                                }
                                if want_dw {
                                    let xin = &x[at..][..c];
                                    let a = &mut acc[tap..][..c];
                                    for ((s, &p), &q) in a.iter_mut().zip(xin).zip(gy) {
                                        *s += p * q;
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    };
    let xs = x.par_chunks(g.in_image());
    let dys = dy.par_chunks(image_out);
    let partial = match dx {
        Some(dx) => dx
            .par_chunks_mut(g.in_image())
            .zip(xs.zip(dys))
            .fold(
                || vec![0f32; if want_dw { taps } else { 0 }],
                |mut acc, (dx, (x, dy))| {
                    image(x, dy, Some(dx), &mut acc);
                    acc
                },
            )
            .reduce(Vec::new, add_into),
        None => xs
            .zip(dys)
            .fold(
                || vec![0f32; taps],
                |mut acc, (x, dy)| {
                    image(x, dy, None, &mut acc);
                    acc
                },
            )
            .reduce(Vec::new, add_into),
    };
    if let Some(dw) = dw {
        if partial.is_empty() {
            dw.fill(0.0);
        } else {
            dw.copy_from_slice(&partial);
        }
    }
}

/// Element-wise sum of two partial sums (an empty one is zero).
pub(crate) fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    if a.is_empty() {
        return b;
    }
    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
    a
}
