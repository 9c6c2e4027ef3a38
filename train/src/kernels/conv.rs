//! Convolutions as matrix products, NHWC with Keras-layout kernels
//! `[kh, kw, cin, cout]` (row-major: a `[kh*kw*cin, cout]` matrix).
//!
//! A 1x1, stride-1 convolution (the pointwise half of a separable layer) is
//! one product over the whole batch: `Y[N*H*W, cout] = X[N*H*W, cin] W`,
//! its weight gradient `X^T dY` and its input gradient `dY W^T`. Any other
//! convolution gathers each image's windows into rows (im2col) and runs the
//! same three products per image, images spread over the threads.

use rayon::prelude::*;

use core::mem::MaybeUninit;

use super::fresh::fresh;
use super::gemm::{matmul, matmul_fresh, MatMut, MatRef, Threads};
use super::{simd, Geometry};

/// Rows of one image's im2col matrix and its width.
fn col_shape(g: &Geometry) -> (usize, usize) {
    (g.out_pixels(), g.kh * g.kw * g.c)
}

/// Gathers the windows of one image into `col` (`oh*ow` rows of
/// `kh*kw*cin`, zeros where the window covers padding).
fn im2col(g: &Geometry, x: &[f32], col: &mut [f32]) {
    let c = g.c;
    let k = g.kh * g.kw * c;
    simd(
        #[inline(always)]
        || {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let row = &mut col[(oy * g.ow + ox) * k..][..k];
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let dst = &mut row[(ky * g.kw + kx) * c..][..c];
                            match (g.in_row(oy, ky), g.in_col(ox, kx)) {
                                (Some(iy), Some(ix)) => {
                                    dst.copy_from_slice(&x[(iy * g.w + ix) * c..][..c])
                                }
                                _ => dst.fill(0.0),
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Adds the rows of `col` back onto the windows of one image (`dx += ...`).
fn col2im(g: &Geometry, col: &[f32], dx: &mut [f32]) {
    let c = g.c;
    let k = g.kh * g.kw * c;
    simd(
        #[inline(always)]
        || {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let row = &col[(oy * g.ow + ox) * k..][..k];
                    for ky in 0..g.kh {
                        let Some(iy) = g.in_row(oy, ky) else { continue };
                        for kx in 0..g.kw {
                            let Some(ix) = g.in_col(ox, kx) else { continue };
                            let src = &row[(ky * g.kw + kx) * c..][..c];
                            let dst = &mut dx[(iy * g.w + ix) * c..][..c];
                            for (d, s) in dst.iter_mut().zip(src) {
                                *d += *s;
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `y = conv(x, w)`: `x` is `[n, h, w, cin]`, `w` `[kh, kw, cin, cout]`,
/// `y` `[n, oh, ow, cout]`, a new vector (no zeroing pass: the products
/// set every element).
#[allow(unsafe_code)]
pub fn forward(g: &Geometry, cout: usize, x: &[f32], w: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.n * g.in_image(), "conv input");
    assert_eq!(w.len(), g.kh * g.kw * g.c * cout, "conv kernel");
    let (m, k) = col_shape(g);
    let wm = MatRef::rows(w, k, cout);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        if g.is_pointwise() {
            let rows = g.n * m;
            matmul_fresh(y, rows, cout, MatRef::rows(x, rows, k), wm, Threads::All);
            return;
        }
        y.par_chunks_mut(m * cout)
            .zip(x.par_chunks(g.in_image()))
            .for_each_init(Vec::new, |col, (y, x)| {
                col.resize(m * k, 0.0);
                im2col(g, x, col);
                matmul_fresh(y, m, cout, MatRef::rows(col, m, k), wm, Threads::One);
            });
    };
    // SAFETY: `fill` sets all `n * m * cout` elements: one product of
    // `n * m` rows, or one of `m` rows per image (`x` holds `n` whole
    // images, so the chunks of `m * cout` pair with them one to one), and
    // `matmul_fresh` sets every element of its `rows x cols`.
    unsafe { fresh(g.n * m * cout, fill) }
}

/// The input gradient of `y = conv(x, w)` given `dy` as a new vector: for
/// a 1x1 convolution one product `dy · wᵀ` written straight into it (no
/// zeroing pass), else [`backward`] into a zeroed one.
#[allow(unsafe_code)]
pub fn input_gradient(g: &Geometry, cout: usize, x: &[f32], w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (m, k) = col_shape(g);
    assert_eq!(dy.len(), g.n * m * cout, "conv output gradient");
    if !g.is_pointwise() {
        let mut dx = vec![0f32; g.n * g.in_image()];
        backward(g, cout, x, w, dy, Some(&mut dx), None);
        return dx;
    }
    let rows = g.n * m;
    let (dym, wm) = (MatRef::rows(dy, rows, cout), MatRef::rows(w, k, cout));
    // SAFETY: `matmul_fresh` sets every element of its `rows x k`, the
    // whole vector (a 1x1 convolution's input holds `rows` pixels of `k`
    // channels).
    unsafe {
        fresh(rows * k, |dx| {
            matmul_fresh(dx, rows, k, dym, wm.t(), Threads::All)
        })
    }
}

/// Gradients of `y = conv(x, w)` given `dy`: `dx` (when asked) and `dw`
/// (when asked).
pub fn backward(
    g: &Geometry,
    cout: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
) {
    let (m, k) = col_shape(g);
    assert_eq!(dy.len(), g.n * m * cout, "conv output gradient");
    let wm = MatRef::rows(w, k, cout);
    if g.is_pointwise() {
        let rows = g.n * m;
        let dym = MatRef::rows(dy, rows, cout);
        if let Some(dw) = dw {
            matmul(
                MatMut {
                    data: dw,
                    rows: k,
                    cols: cout,
                },
                MatRef::rows(x, rows, k).t(),
                dym,
                false,
                Threads::All,
            );
        }
        if let Some(dx) = dx {
            matmul(
                MatMut {
                    data: dx,
                    rows,
                    cols: k,
                },
                dym,
                wm.t(),
                false,
                Threads::All,
            );
        }
        return;
    }
    if let Some(dw) = dw {
        let partial = x
            .par_chunks(g.in_image())
            .zip(dy.par_chunks(m * cout))
            .fold(
                || (vec![0f32; k * cout], Vec::new()),
                |(mut acc, mut col), (x, dy)| {
                    col.resize(m * k, 0.0);
                    im2col(g, x, &mut col);
                    matmul(
                        MatMut {
                            data: &mut acc,
                            rows: k,
                            cols: cout,
                        },
                        MatRef::rows(&col, m, k).t(),
                        MatRef::rows(dy, m, cout),
                        true,
                        Threads::One,
                    );
                    (acc, col)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(
                || vec![0f32; k * cout],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        dw.copy_from_slice(&partial);
    }
    if let Some(dx) = dx {
        dx.par_chunks_mut(g.in_image())
            .zip(dy.par_chunks(m * cout))
            .for_each_init(Vec::new, |col, (dx, dy)| {
                col.resize(m * k, 0.0);
                matmul(
                    MatMut {
                        data: col,
                        rows: m,
                        cols: k,
                    },
                    MatRef::rows(dy, m, cout),
                    wm.t(),
                    false,
                    Threads::One,
                );
                dx.fill(0.0);
                col2im(g, col, dx);
            });
    }
}
