//! Helpers shared by the test files of `akida-core` (each file uses some).
#![allow(dead_code)]

use akida_core::{Dims, LayerKind, LayerParams, Padding, Pooling, Window};
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};

/// The bulk values of a case come from proptest's own generator, seeded by
/// the case (so a failing case replays from its seed).
pub struct Bulk(TestRng);

impl Bulk {
    pub fn new(seed: u64) -> Bulk {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Bulk(TestRng::from_seed(RngAlgorithm::XorShift, &bytes))
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.0.next_u64() % (hi - lo + 1) as u64) as i64
    }
}

/// A layer of `filters` filters with a 4-bit activation: a 3x3 window,
/// stride 1, `same` padding (a fully connected layer: 1x1, `valid`), no
/// pooling.
pub fn params(kind: LayerKind, input: Dims, filters: u32, weights_bits: u8) -> LayerParams {
    let fc = kind == LayerKind::FullyConnected;
    LayerParams {
        kind,
        input,
        filters,
        kernel: if fc { Window::ONE } else { Window::new(3, 3) },
        stride: Window::ONE,
        padding: if fc { Padding::Valid } else { Padding::Same },
        padding_value: 0,
        pooling: Pooling::None,
        activation: true,
        act_bits: 4,
        weights_bits,
    }
}
