//! Batch normalization over the last axis (channels of NHWC maps, units of
//! dense outputs) fused with the ReLU that follows it in every akida_models
//! block: statistics, forward and backward on `[rows, c]` slices.
//!
//! Forward `y = act(x * scale + shift)` with `scale = gamma / sqrt(var +
//! eps)` and `shift = beta - mean * scale`; `act` is the identity, ReLU, or
//! ReLU clipped at `max` (Keras `ReLU(max_value)`), whose gradient passes
//! where `0 < pre-activation < max` as TensorFlow's `relu6` does.
//! In training, mean and variance are the batch's (biased variance), and
//! the backward pass differentiates through them:
//! `dx = scale (g - sum(g)/M - xhat sum(g xhat)/M)`, `g` the gradient after
//! the activation's mask, `xhat = (x - mean) / sqrt(var + eps)`.

use rayon::prelude::*;

use core::mem::MaybeUninit;

use super::depthwise::add_into;
use super::fresh::{fresh, Out};
use super::simd;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 256;

/// The activation fused after the normalization.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    /// ReLU clipped at this value.
    ReluMax(f32),
}

impl Act {
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            Act::ReluMax(m) => v.max(0.0).min(m),
        }
    }

    /// The open interval of pre-activations where the gradient passes
    /// (as two bounds, so that loops compare without a branch on the
    /// kind; for no activation the whole finite line).
    #[inline(always)]
    fn gradient_bounds(self) -> (f32, f32) {
        match self {
            Act::None => (f32::NEG_INFINITY, f32::INFINITY),
            Act::Relu => (0.0, f32::INFINITY),
            Act::ReluMax(m) => (0.0, m),
        }
    }

    /// The activation as one number (for burn's extension arguments):
    /// negative is none, infinite is ReLU, finite is ReLU clipped there.
    pub fn code(self) -> f32 {
        match self {
            Act::None => -1.0,
            Act::Relu => f32::INFINITY,
            Act::ReluMax(m) => m,
        }
    }

    pub fn from_code(code: f32) -> Act {
        if code < 0.0 {
            Act::None
        } else if code.is_infinite() {
            Act::Relu
        } else {
            Act::ReluMax(code)
        }
    }
}

/// Per-channel mean and biased variance of `x` (`[rows, c]`), summed in
/// float64.
pub fn stats(x: &[f32], c: usize) -> (Vec<f32>, Vec<f32>) {
    assert!(c > 0 && x.len().is_multiple_of(c), "batch norm input");
    let rows = x.len() / c;
    let sums = x
        .par_chunks(ROWS_PER_TASK * c)
        .map(|chunk| {
            simd(
                #[inline(always)]
                || {
                    // Float32 sums over at most ROWS_PER_TASK rows, then float64.
                    let mut s = vec![0f32; c];
                    let mut q = vec![0f32; c];
                    for row in chunk.chunks_exact(c) {
                        for ((s, q), &v) in s.iter_mut().zip(q.iter_mut()).zip(row) {
                            *s += v;
                            *q += v * v;
                        }
                    }
                    s.iter().chain(&q).map(|&v| v as f64).collect::<Vec<f64>>()
                },
            )
        })
        .reduce(Vec::new, |mut a: Vec<f64>, b: Vec<f64>| {
            if a.is_empty() {
                return b;
            }
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        });
    let m = rows.max(1) as f64;
    let mean: Vec<f64> = sums[..c].iter().map(|s| s / m).collect();
    let var: Vec<f32> = sums[c..]
        .iter()
        .zip(&mean)
        .map(|(q, mu)| (q / m - mu * mu).max(0.0) as f32)
        .collect();
    (mean.iter().map(|&v| v as f32).collect(), var)
}

/// `scale` and `shift` of the normalization.
pub fn affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift)
}

/// `y = act(x * scale + shift)` row by row.
/// Sets every element of `y` once (see [`super::fresh`]).
pub fn forward<O: Out>(x: &[f32], scale: &[f32], shift: &[f32], act: Act, y: &mut [O]) {
    let c = scale.len();
    assert_eq!(x.len(), y.len(), "batch norm output");
    assert!(
        x.len().is_multiple_of(c) && shift.len() == c,
        "batch norm rows"
    );
    y.par_chunks_mut(ROWS_PER_TASK * c)
        .zip(x.par_chunks(ROWS_PER_TASK * c))
        .for_each(|(y, x)| {
            simd(
                #[inline(always)]
                || {
                    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                        for (((o, &v), &s), &t) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
                            o.set(act.apply(v * s + t));
                        }
                    }
                },
            )
        });
}

/// [`forward`] into a new vector (no zeroing pass).
#[allow(unsafe_code)]
pub fn forward_vec(x: &[f32], scale: &[f32], shift: &[f32], act: Act) -> Vec<f32> {
    // SAFETY: `forward` sets every element of an output as long as its
    // input (lengths asserted; each chunk pairs with one of `x`, whole rows
    // of `c`, every value of every row set).
    unsafe { fresh(x.len(), |y| forward(x, scale, shift, act, y)) }
}

/// Gradients of the forward: `dx`, `dgamma`, `dbeta`. `train`: the
/// statistics are the batch's and the gradient flows through them;
/// otherwise they are constants (moving statistics).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
    act: Act,
    train: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = gamma.len();
    let rows = x.len() / c;
    let (scale, shift) = affine(gamma, beta, mean, var, eps);
    let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (lo, hi) = act.gradient_bounds();
    // The gradient after the activation's mask, of one value. The loops
    // below vectorize: they index slices cut to the channel count (no
    // bounds checks), the mask compares with `&`, not `&&` (both sides, no
    // branch: compare, and, blend), and the bounds leave no branch on the
    // activation kind.
    let masked = move |v: f32, g: f32, s: f32, t: f32| -> f32 {
        let pre = v * s + t;
        if (pre > lo) & (pre < hi) {
            g
        } else {
            0.0
        }
    };
    // Pass 1: sum(g) and sum(g * xhat) per channel.
    let sums = x
        .par_chunks(ROWS_PER_TASK * c)
        .zip(dy.par_chunks(ROWS_PER_TASK * c))
        .map(|(x, dy)| {
            simd(
                #[inline(always)]
                || {
                    let mut acc = vec![0f32; 2 * c];
                    let (sg, sgx) = acc.split_at_mut(c);
                    let (s, t, mu, is) = (&scale[..c], &shift[..c], &mean[..c], &inv_std[..c]);
                    for (xr, gr) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
                        // Every slice `c` long: indexed without bounds checks.
                        let (sg, sgx) = (&mut sg[..c], &mut sgx[..c]);
                        for i in 0..c {
                            let g = masked(xr[i], gr[i], s[i], t[i]);
                            sg[i] += g;
                            sgx[i] += g * ((xr[i] - mu[i]) * is[i]);
                        }
                    }
                    acc
                },
            )
        })
        .reduce(Vec::new, add_into);
    let (dbeta, dgamma) = (sums[..c].to_vec(), sums[c..].to_vec());
    let m = rows as f32;
    let (mean_g, mean_gx): (Vec<f32>, Vec<f32>) = if train {
        (
            dbeta.iter().map(|s| s / m).collect(),
            dgamma.iter().map(|s| s / m).collect(),
        )
    } else {
        (vec![0.0; c], vec![0.0; c])
    };
    // Pass 2: dx, every element set once: the chunks of dx, x and dy pair
    // up (equal lengths, whole rows of `c`), and each row's `c` values.
    assert!(
        dy.len() == x.len() && x.len().is_multiple_of(c),
        "batch norm gradient"
    );
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(ROWS_PER_TASK * c)
            .zip(
                x.par_chunks(ROWS_PER_TASK * c)
                    .zip(dy.par_chunks(ROWS_PER_TASK * c)),
            )
            .for_each(|(dx, (x, dy))| {
                simd(
                    #[inline(always)]
                    || {
                        let (s, t, mu, is) = (&scale[..c], &shift[..c], &mean[..c], &inv_std[..c]);
                        let (mg, mgx) = (&mean_g[..c], &mean_gx[..c]);
                        for ((dr, xr), gr) in dx
                            .chunks_exact_mut(c)
                            .zip(x.chunks_exact(c))
                            .zip(dy.chunks_exact(c))
                        {
                            for i in 0..c {
                                let (v, g) = (xr[i], masked(xr[i], gr[i], s[i], t[i]));
                                dr[i].set(s[i] * (g - mg[i] - (v - mu[i]) * is[i] * mgx[i]));
                            }
                        }
                    },
                )
            });
    };
    #[allow(unsafe_code)]
    // SAFETY: `fill` sets every element (see its comment).
    let dx = unsafe { fresh(x.len(), fill) };
    (dx, dgamma, dbeta)
}
