//! Keras's Adam (tf_keras 2.19), written out so that its epsilon and update
//! are Keras's rather than burn's (burn's Adam puts epsilon inside the
//! bias-corrected denominator with default 1e-5):
//!
//! ```text
//! alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
//! m += (g - m) * (1 - beta1)
//! v += (g^2 - v) * (1 - beta2)
//! w -= m * alpha / (sqrt(v) + epsilon)
//! ```
//! with beta1 0.9, beta2 0.999, epsilon 1e-7.

/// Adam's hyper-parameters (Keras defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
        }
    }
}

/// Adam's state: the step count and both moments of every parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub config: AdamConfig,
    pub iterations: u64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

impl Adam {
    /// Fresh moments for parameters of these sizes.
    pub fn new(config: AdamConfig, sizes: &[usize]) -> Adam {
        Adam {
            config,
            iterations: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    /// Starts a step: the step size `alpha` for learning rate `lr`.
    pub fn begin_step(&mut self, lr: f32) -> f32 {
        self.iterations += 1;
        let t = self.iterations as i32;
        let c = self.config;
        lr * (1.0 - c.beta2.powi(t)).sqrt() / (1.0 - c.beta1.powi(t))
    }

    /// Updates parameter `index` with its gradient.
    pub fn update(&mut self, index: usize, alpha: f32, w: &mut [f32], g: &[f32]) {
        let c = self.config;
        let (m, v) = (&mut self.m[index], &mut self.v[index]);
        crate::kernels::simd(
            #[inline(always)]
            || {
                for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                    *m += (g - *m) * (1.0 - c.beta1);
                    *v += (g * g - *v) * (1.0 - c.beta2);
                    *w -= *m * alpha / (v.sqrt() + c.epsilon);
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_the_learning_rate() {
        // At t = 1, m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(0.001)/0.1:
        // the step is lr * sign(g) (up to epsilon).
        let mut adam = Adam::new(AdamConfig::default(), &[2]);
        let mut w = vec![1.0f32, -1.0];
        let alpha = adam.begin_step(0.01);
        adam.update(0, alpha, &mut w, &[0.5, -3.0]);
        assert!((w[0] - 0.99).abs() < 1e-6, "{}", w[0]);
        assert!((w[1] + 0.99).abs() < 1e-6, "{}", w[1]);
        assert_eq!(adam.iterations, 1);
    }
}
