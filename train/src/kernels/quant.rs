//! cnn2snn's fake quantization (`AKIDA_V1_SEMANTICS.md` section 1), the
//! forward pass of quantization-aware training, and the gradients
//! TensorFlow's autodiff gives it.
//!
//! **Weights** (`MaxQuantizer`, `MaxPerAxisQuantizer`): the forward pass is
//! `akida_host::cnn2snn::quantizer`, the very code `cnn2snn convert` uses:
//! `q = clip(round(w sf), -kmax, kmax) / sf` with `sf = clip(kmax / max|w|,
//! 0, 1000)` per tensor or per output channel. TensorFlow differentiates
//! `round_through` as the identity (straight-through estimator) and the
//! rest as written, scale factor included, so
//! `dL/dw_i = g_i` plus, for the element(s) holding `max|w|` of their
//! channel (the gradient shared equally among ties, as `reduce_max`'s is),
//! `sign(w) * dsf/dmax * sum_j g_j (w_j - r_j/sf) / sf` with `r` the
//! clipped integers and `dsf/dmax = -kmax/max^2` (zero where `sf` or `max`
//! is clipped).
//!
//! **Activations** (`QuantizedReLU`, `ActivationDiscreteRelu`):
//! `y = step * clip(ceil((x - step/2) / step), 0, L)`, float32 in that
//! order (`ceil_through` gives exactly the ceiling in the forward pass);
//! the gradient is `(dy * step) / step` where `0 <= ceil(...) <= L`, else 0.

use akida_host::cnn2snn::quantizer::{self, QuantizerError, MAX_SCALE_FACTOR};
use akida_host::keras::QuantizerKind;
use rayon::prelude::*;

use super::fresh::{fresh, Out};

use super::simd;

/// The fake-quantized weights `q` of `w` (last axis: `channels`).
pub fn weights_forward(
    kind: &QuantizerKind,
    bits: u32,
    w: &[f32],
    channels: usize,
) -> Result<Vec<f32>, QuantizerError> {
    let sf = quantizer::scale_factors(kind, bits, w, channels)?;
    Ok(quantizer::quantize(w, &sf, bits))
}

/// `dL/dw` of the fake quantization, given `g = dL/dq`.
pub fn weights_backward(
    kind: &QuantizerKind,
    bits: u32,
    w: &[f32],
    channels: usize,
    g: &[f32],
) -> Result<Vec<f32>, QuantizerError> {
    let sf = quantizer::scale_factors(kind, bits, w, channels)?;
    let k = quantizer::kmax(bits);
    let per_axis = matches!(kind, QuantizerKind::MaxPerAxis);
    let groups = if per_axis { channels } else { 1 };
    let group = |i: usize| if per_axis { i % channels } else { 0 };
    // max|w| per group, with the number of elements reaching it.
    let mut max = vec![0f32; groups];
    for (i, &v) in w.iter().enumerate() {
        let m = &mut max[group(i)];
        *m = m.max(v.abs());
    }
    let mut ties = vec![0usize; groups];
    for (i, &v) in w.iter().enumerate() {
        if v.abs() == max[group(i)] {
            ties[group(i)] += 1;
        }
    }
    // dL/dsf per group: sum_j g_j (w_j - r_j / sf) / sf.
    let mut dsf = vec![0f32; groups];
    for (i, (&v, &gi)) in w.iter().zip(g).enumerate() {
        let s = sf[group(i) % sf.len()];
        let r = (v * s).round_ties_even().clamp(-k, k);
        dsf[group(i)] += gi * (v - r / s) / s;
    }
    // dsf/dmax = -kmax / max^2 where neither clip is active.
    let dmax: Vec<f32> = (0..groups)
        .map(|gr| {
            let m = max[gr];
            let s = sf[gr % sf.len()];
            let max_clipped = per_axis && m < 1e-10;
            if max_clipped || m == 0.0 || s > MAX_SCALE_FACTOR || k / m > MAX_SCALE_FACTOR {
                0.0
            } else {
                dsf[gr] * (-k / m / m)
            }
        })
        .collect();
    Ok(w.iter()
        .zip(g)
        .enumerate()
        .map(|(i, (&v, &gi))| {
            let gr = group(i);
            if v.abs() == max[gr] && v != 0.0 {
                gi + v.signum() * dmax[gr] / ties[gr] as f32
            } else {
                gi
            }
        })
        .collect())
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `QuantizedReLU`: `y = step * clip(ceil((x - step * 0.5) / step), 0, levels)`.
/// Sets every element of `y` once (see [`super::fresh`]).
pub fn relu_forward<O: Out>(x: &[f32], step: f32, levels: f32, y: &mut [O]) {
    assert_eq!(x.len(), y.len(), "quantized ReLU output");
    let threshold = step * 0.5;
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            simd(
                #[inline(always)]
                || {
                    for (o, &v) in y.iter_mut().zip(x) {
                        let a = ((v - threshold) / step).ceil();
                        o.set(step * a.clamp(0.0, levels));
                    }
                },
            )
        });
}

/// [`relu_forward`] into a new vector (no zeroing pass).
#[allow(unsafe_code)]
pub fn relu_forward_vec(x: &[f32], step: f32, levels: f32) -> Vec<f32> {
    // SAFETY: `relu_forward` sets every element of an output as long as
    // its input (it asserts the lengths, then each chunk pairs with one of
    // `x` and every element of the chunk is set).
    unsafe { fresh(x.len(), |y| relu_forward(x, step, levels, y)) }
}

/// [`relu_backward`] into a new vector (no zeroing pass).
#[allow(unsafe_code)]
pub fn relu_backward_vec(x: &[f32], dy: &[f32], step: f32, levels: f32) -> Vec<f32> {
    // SAFETY: as in `relu_forward_vec`: equal lengths asserted, every
    // element of every chunk set.
    unsafe { fresh(x.len(), |dx| relu_backward(x, dy, step, levels, dx)) }
}

/// Gradient of [`relu_forward`]. Sets every element of `dx` once.
pub fn relu_backward<O: Out>(x: &[f32], dy: &[f32], step: f32, levels: f32, dx: &mut [O]) {
    assert!(
        x.len() == dx.len() && dy.len() == dx.len(),
        "quantized ReLU gradient"
    );
    let threshold = step * 0.5;
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (x, dy))| {
            simd(
                #[inline(always)]
                || {
                    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                        let a = ((v - threshold) / step).ceil();
                        d.set(if (0.0..=levels).contains(&a) {
                            (g * step) / step
                        } else {
                            0.0
                        });
                    }
                },
            )
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_levels_and_gradient_window() {
        // 4 bits, max 6: step 0.4, threshold 0.2.
        let (step, levels) = (6.0f32 / 15.0, 15.0);
        // (Not 0.6: in float32, (0.6 - 0.2) / 0.4 is 1.0000001, whose
        // ceiling is 2, as TensorFlow computes it too.)
        let x = [-1.0f32, 0.1, 0.2, 0.21, 0.59, 0.61, 5.9, 6.0, 7.0];
        let mut y = [0f32; 9];
        relu_forward(&x, step, levels, &mut y);
        let expect = [0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 15.0, 15.0, 15.0].map(|l: f32| step * l);
        assert_eq!(y, expect);
        let mut dx = [0f32; 9];
        relu_backward(&x, &[1.0; 9], step, levels, &mut dx);
        // ceil(...) is in [0, 15] except for x = -1 (ceil = -3) and 7 (17).
        assert_eq!(dx, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn weight_gradient_is_identity_plus_the_scale_factor_path() {
        // Per tensor, 4 bits: max 0.7 at index 2.
        let w = [0.1f32, -0.33, 0.7, 0.25];
        let g = [1.0f32, 2.0, 3.0, 4.0];
        let kind = QuantizerKind::Max;
        let q = weights_forward(&kind, 4, &w, 1).unwrap();
        assert_eq!(q[2], 0.7);
        let d = weights_backward(&kind, 4, &w, 1, &g).unwrap();
        assert_eq!(&d[..2], &g[..2]);
        assert_eq!(d[3], g[3]);
        // TensorFlow's chain by hand: sf = 7 / 0.7 = 10, integers r = (1, -3,
        // 7, 2) (2.5 rounds to even); dL/dsf = sum_j g_j (w_j - r_j/sf)/sf
        // = (0 - 0.006 + 0 + 0.02) = 0.014; dsf/dmax = -7/0.49; so
        // dL/dw_2 = 3 - 0.2.
        assert!((d[2] - 2.8).abs() < 1e-5, "{}", d[2]);
    }
}
