//! Convolutions as matrix products, NHWC with Keras-layout kernels
//! `[kh, kw, cin, cout]` (row-major: a `[kh*kw*cin, cout]` matrix).
//!
//! A 1x1, stride-1 convolution (the pointwise half of a separable layer) is
//! one product over the whole batch: `Y[N*H*W, cout] = X[N*H*W, cin] W`,
//! its weight gradient `X^T dY` and its input gradient `dY W^T`. Any other
//! convolution gathers each image's windows into rows (im2col) and runs the
//! same three products per image, images spread over the threads.

use rayon::prelude::*;

use super::gemm::{matmul, MatMut, MatRef, Threads};
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
/// `y` `[n, oh, ow, cout]`.
pub fn forward(g: &Geometry, cout: usize, x: &[f32], w: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), g.n * g.in_image(), "conv input");
    assert_eq!(w.len(), g.kh * g.kw * g.c * cout, "conv kernel");
    assert_eq!(y.len(), g.n * g.out_pixels() * cout, "conv output");
    let (m, k) = col_shape(g);
    let wm = MatRef::rows(w, k, cout);
    if g.is_pointwise() {
        let rows = g.n * m;
        matmul(
            MatMut {
                data: y,
                rows,
                cols: cout,
            },
            MatRef::rows(x, rows, k),
            wm,
            false,
            Threads::All,
        );
        return;
    }
    y.par_chunks_mut(m * cout)
        .zip(x.par_chunks(g.in_image()))
        .for_each_init(Vec::new, |col, (y, x)| {
            col.resize(m * k, 0.0);
            im2col(g, x, col);
            matmul(
                MatMut {
                    data: y,
                    rows: m,
                    cols: cout,
                },
                MatRef::rows(col, m, k),
                wm,
                false,
                Threads::One,
            );
        });
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
