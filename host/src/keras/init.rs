//! Keras's default weight initialisers (glorot_uniform kernels, zero biases,
//! batch norm gamma 1, beta 0, moving mean 0, moving variance 1), driven by
//! a small seeded generator.
//!
//! The generator is SplitMix64, written out here rather than taken from a
//! crate, so that a seed gives the same weights in every future version of
//! this tool chain (TensorFlow's own random streams cannot be reproduced
//! anyway; only the distribution matches Keras).

use super::layers::{WeightRole, WeightSpec};

/// A seeded SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)` with 24 random bits (exact in f32).
    pub fn next_unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32
    }

    /// A uniform float in `[-limit, limit)`.
    pub fn uniform(&mut self, limit: f32) -> f32 {
        (2.0 * self.next_unit_f32() - 1.0) * limit
    }
}

/// Keras `_compute_fans`: `(fan_in, fan_out)` of a kernel shape.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [a, b] => (*a, *b),
        _ => {
            let receptive: usize = shape[..shape.len() - 2].iter().product();
            (
                shape[shape.len() - 2] * receptive,
                shape[shape.len() - 1] * receptive,
            )
        }
    }
}

/// glorot_uniform: uniform in `±sqrt(6 / (fan_in + fan_out))`.
pub fn glorot_uniform(rng: &mut Rng, shape: &[usize]) -> Vec<f32> {
    let (fan_in, fan_out) = fans(shape);
    let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
    let n: usize = shape.iter().product();
    (0..n).map(|_| rng.uniform(limit)).collect()
}

/// The values Keras gives a fresh weight of this role and shape.
pub fn initial_values(rng: &mut Rng, spec: &WeightSpec) -> Vec<f32> {
    let n: usize = spec.shape.iter().product();
    match spec.role {
        WeightRole::Kernel | WeightRole::DepthwiseKernel | WeightRole::PointwiseKernel => {
            glorot_uniform(rng, &spec.shape)
        }
        WeightRole::Gamma | WeightRole::MovingVariance => vec![1.0; n],
        WeightRole::Bias | WeightRole::Beta | WeightRole::MovingMean => vec![0.0; n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_match_keras() {
        assert_eq!(fans(&[3, 3, 64, 128]), (576, 1152));
        assert_eq!(fans(&[3, 3, 64, 1]), (576, 9));
        assert_eq!(fans(&[64, 33]), (64, 33));
    }

    #[test]
    fn glorot_is_seeded_and_bounded() {
        let a = glorot_uniform(&mut Rng::new(1), &[3, 3, 3, 16]);
        let b = glorot_uniform(&mut Rng::new(1), &[3, 3, 3, 16]);
        let c = glorot_uniform(&mut Rng::new(2), &[3, 3, 3, 16]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let limit = (6.0f64 / (27.0 + 144.0)).sqrt() as f32;
        assert!(a.iter().all(|v| v.abs() <= limit));
        let mean: f32 = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < limit / 4.0, "mean {mean}");
        assert!(a.iter().any(|v| *v > limit / 2.0) && a.iter().any(|v| *v < -limit / 2.0));
    }

    #[test]
    fn batch_norm_starts_as_identity() {
        let mut rng = Rng::new(0);
        let cases = [
            (WeightRole::Gamma, 1.0),
            (WeightRole::Beta, 0.0),
            (WeightRole::MovingMean, 0.0),
            (WeightRole::MovingVariance, 1.0),
            (WeightRole::Bias, 0.0),
        ];
        for (role, value) in cases {
            let spec = WeightSpec {
                role,
                shape: vec![3],
            };
            assert_eq!(initial_values(&mut rng, &spec), vec![value; 3], "{role:?}");
        }
    }
}
