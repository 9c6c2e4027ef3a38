//! The trainer's float32 CPU kernels, forward and backward, on NHWC slices:
//! general and 1x1 convolutions as matrix products ([`conv`], through the
//! `gemm` crate burn's `flex` backend uses), depthwise convolutions
//! ([`depthwise`]), batch-normalization statistics and a fused batch
//! normalization + ReLU ([`norm`]), max pooling ([`pool`]) and cnn2snn's
//! fake quantization of weights and activations ([`quant`]).
//!
//! Each kernel is plain Rust over slices, spread over the rayon pool, its
//! inner loops running over channels (contiguous in NHWC) inside a
//! [`pulp`] dispatch so that they are compiled for the best instruction set
//! the CPU reports at run time (AVX2+FMA, AVX-512 where present, SSE2
//! otherwise): detected, never assumed. [`crate::ops`] plugs them into burn;
//! `train/tests/kernels_vs_burn.rs` holds them equal to burn's own
//! operations.

pub mod conv;
pub mod depthwise;
pub mod fresh;
pub mod gemm;
pub mod norm;
pub mod pool;
pub mod quant;

use akida_core::Padding;

/// Runs `f` compiled for the best SIMD instruction set of this CPU.
///
/// Callers mark the closure `#[inline(always)]` (an attribute allowed on a
/// closure passed as an argument): the instruction set reaches the loops
/// only if the closure is inlined into pulp's `#[target_feature]` function,
/// and a closure with a large body otherwise stays a function of its own,
/// compiled for the baseline (SSE2). Without it the fused batch-norm
/// backward ran as scalar SSE code and took 45 % of a `ds_cnn_kws` training
/// step on an AVX-512 Xeon.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// The geometry of a 2-D window operation (convolution, depthwise
/// convolution, pooling) on an NHWC batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    /// Input channels.
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    /// Rows and columns of padding before the input (TensorFlow puts the
    /// odd one after).
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Why a window does not fit its input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {kh}x{kw} window with stride {sh}x{sw} does not fit a {h}x{w} input")]
pub struct WindowError {
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
}

impl Geometry {
    /// TensorFlow's geometry (core's output-length rule; `same` pads
    /// `total / 2` before).
    pub fn new(
        [n, h, w, c]: [usize; 4],
        [kh, kw]: [usize; 2],
        [sh, sw]: [usize; 2],
        padding: Padding,
    ) -> Result<Geometry, WindowError> {
        let err = WindowError {
            h,
            w,
            kh,
            kw,
            sh,
            sw,
        };
        let len = |n: usize, k: usize, s: usize| {
            akida_host::keras::window_len(padding, n, k, s, 1).ok_or(err.clone())
        };
        let (oh, ow) = (len(h, kh, sh)?, len(w, kw, sw)?);
        let pad = |n: usize, k: usize, s: usize, o: usize| match padding {
            Padding::Valid => 0,
            Padding::Same => ((o - 1) * s + k).saturating_sub(n) / 2,
        };
        Ok(Geometry {
            n,
            h,
            w,
            c,
            kh,
            kw,
            sh,
            sw,
            pad_top: pad(h, kh, sh, oh),
            pad_left: pad(w, kw, sw, ow),
            oh,
            ow,
        })
    }

    /// Elements of one input image.
    pub fn in_image(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Output pixels of one image.
    pub fn out_pixels(&self) -> usize {
        self.oh * self.ow
    }

    /// Input row of output row `oy`, window row `ky` (None: padding).
    #[inline(always)]
    pub fn in_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.sh + ky)
            .checked_sub(self.pad_top)
            .filter(|&r| r < self.h)
    }

    /// Input column of output column `ox`, window column `kx`.
    #[inline(always)]
    pub fn in_col(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.sw + kx)
            .checked_sub(self.pad_left)
            .filter(|&c| c < self.w)
    }

    /// Whether the window is a plain 1x1, stride 1, unpadded product.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.oh == self.h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorflow_same_padding() {
        let g = Geometry::new([1, 49, 10, 1], [5, 5], [2, 2], Padding::Same).unwrap();
        assert_eq!((g.oh, g.ow, g.pad_top, g.pad_left), (25, 5, 2, 1));
        let g = Geometry::new([1, 15, 15, 8], [2, 2], [2, 2], Padding::Same).unwrap();
        assert_eq!((g.oh, g.pad_top), (8, 0));
        let g = Geometry::new([1, 32, 32, 3], [3, 3], [1, 1], Padding::Valid).unwrap();
        assert_eq!((g.oh, g.pad_top), (30, 0));
        assert!(Geometry::new([1, 2, 2, 3], [3, 3], [1, 1], Padding::Valid).is_err());
    }
}
