//! cnn2snn's weight quantizers, in float32 exactly as TensorFlow evaluates
//! them: `MaxQuantizer` (one scale factor per tensor) and
//! `MaxPerAxisQuantizer` (one per output channel, the last axis).
//!
//! `kmax = 2^(bits-1) - 1`, `sf = clip(kmax / max|w|, 0, 1000)` (per axis,
//! `max|w|` is clipped to at least 1e-10 first), `quantize(w) =
//! clip(round(w * sf), -kmax, kmax) / sf` with round half to even, and the
//! integer weights the engine stores are `round(quantize(w) * sf)`.

use crate::keras::QuantizerKind;

/// Largest scale factor cnn2snn allows (`clip_scale_factor`).
pub const MAX_SCALE_FACTOR: f32 = 1000.0;

/// `2^(bits-1) - 1` in float32 (8 bits: 127, 4 bits: 7, 2 bits: 1).
pub fn kmax(bits: u32) -> f32 {
    (2f64.powi(bits as i32 - 1) - 1.0) as f32
}

/// Why a weight tensor cannot be quantized.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuantizerError {
    #[error("quantizer `{0}` is not supported (MaxQuantizer and MaxPerAxisQuantizer are)")]
    Unsupported(String),
    #[error("quantization bitwidth {0} is not supported (it must be at least 2)")]
    Bits(u32),
    #[error("weight tensor has no axis")]
    Rank,
}

/// The scale factors of `values` (C order, last axis = output channels of
/// length `channels`): one per channel for `MaxPerAxis`, one for `Max`.
pub fn scale_factors(
    kind: &QuantizerKind,
    bits: u32,
    values: &[f32],
    channels: usize,
) -> Result<Vec<f32>, QuantizerError> {
    if bits < 2 {
        return Err(QuantizerError::Bits(bits));
    }
    if channels == 0 {
        return Err(QuantizerError::Rank);
    }
    let k = kmax(bits);
    let clip = |sf: f32| sf.clamp(0.0, MAX_SCALE_FACTOR);
    match kind {
        QuantizerKind::MaxPerAxis => {
            let mut max = vec![0f32; channels];
            for (i, &v) in values.iter().enumerate() {
                let m = &mut max[i % channels];
                *m = m.max(v.abs());
            }
            Ok(max.into_iter().map(|m| clip(k / m.max(1e-10))).collect())
        }
        QuantizerKind::Max => {
            let m = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            // max|w| = 0 gives inf, clipped to 1000 as TensorFlow does.
            Ok(vec![clip(k / m)])
        }
        QuantizerKind::Other(name) => Err(QuantizerError::Unsupported(name.clone())),
    }
}

/// The scale factor applying to element `i` (per channel or per tensor).
#[inline]
fn factor(sf: &[f32], i: usize) -> f32 {
    sf[i % sf.len()]
}

/// The fake-quantized float weights the quantized Keras layer computes with.
pub fn quantize(values: &[f32], sf: &[f32], bits: u32) -> Vec<f32> {
    let k = kmax(bits);
    values
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let s = factor(sf, i);
            (w * s).round_ties_even().clamp(-k, k) / s
        })
        .collect()
}

/// Integer weights `round(quantized * sf)` as the engine stores them.
pub fn integers(quantized: &[f32], sf: &[f32]) -> Vec<i8> {
    quantized
        .iter()
        .enumerate()
        .map(|(i, &w)| (w * factor(sf, i)).round_ties_even() as i8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_axis_scale_factors_and_integers() {
        // Two channels: max 0.5 and 2.0 at 4 bits (kmax 7).
        let w = [0.5f32, -2.0, -0.25, 1.0];
        let sf = scale_factors(&QuantizerKind::MaxPerAxis, 4, &w, 2).unwrap();
        assert_eq!(sf, vec![14.0, 3.5]);
        let q = quantize(&w, &sf, 4);
        assert_eq!(integers(&q, &sf), vec![7, -7, -4, 4]); // -3.5 -> -4, 3.5 -> 4 (ties to even)
    }

    #[test]
    fn scale_factor_is_clipped_to_1000() {
        let w = [1e-6f32, 0.0];
        assert_eq!(
            scale_factors(&QuantizerKind::Max, 8, &w, 1).unwrap(),
            vec![1000.0]
        );
        let zero = [0f32; 3];
        assert_eq!(
            scale_factors(&QuantizerKind::Max, 2, &zero, 3).unwrap(),
            vec![1000.0]
        );
        assert_eq!(
            scale_factors(&QuantizerKind::MaxPerAxis, 2, &zero, 3).unwrap(),
            vec![1000.0; 3]
        );
    }

    #[test]
    fn unsupported_quantizers_and_widths_are_refused() {
        let other = QuantizerKind::Other("StdWeightQuantizer".into());
        assert!(matches!(
            scale_factors(&other, 4, &[1.0], 1),
            Err(QuantizerError::Unsupported(_))
        ));
        assert_eq!(
            scale_factors(&QuantizerKind::Max, 1, &[1.0], 1),
            Err(QuantizerError::Bits(1))
        );
    }
}
