//! Tensor sizes, 2-D windows and TensorFlow padding.
//!
//! Every tensor is HWC (NHWC without the batch axis). Akida names the first
//! spatial axis "x"/"width" and the second "y"/"height"; here they are plainly
//! `rows` (NHWC H) and `cols` (NHWC W), and the mapping to Akida's names lives
//! only in the file-format code.

use serde::{Deserialize, Serialize};

/// The size of an HWC tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dims {
    /// NHWC H (Akida "width", "x").
    pub rows: u32,
    /// NHWC W (Akida "height", "y").
    pub cols: u32,
    pub channels: u32,
}

impl Dims {
    pub const fn new(rows: u32, cols: u32, channels: u32) -> Self {
        Dims {
            rows,
            cols,
            channels,
        }
    }

    /// Number of elements, `None` if it does not fit in `usize`.
    pub fn checked_len(&self) -> Option<usize> {
        (self.rows as usize)
            .checked_mul(self.cols as usize)?
            .checked_mul(self.channels as usize)
    }

    /// Number of elements. Only call on validated dims (they fit).
    pub fn len(&self) -> usize {
        self.rows as usize * self.cols as usize * self.channels as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index of element (row, col, channel) in HWC order.
    #[inline(always)]
    pub fn index(&self, row: usize, col: usize, channel: usize) -> usize {
        (row * self.cols as usize + col) * self.channels as usize + channel
    }
}

/// A 2-D extent in (rows, cols): a kernel, a stride or a pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub rows: u32,
    pub cols: u32,
}

impl Window {
    pub const fn new(rows: u32, cols: u32) -> Self {
        Window { rows, cols }
    }

    /// The 1x1 window (kernel or stride of a fully connected layer).
    pub const ONE: Window = Window { rows: 1, cols: 1 };

    pub fn area(&self) -> usize {
        self.rows as usize * self.cols as usize
    }
}

/// TensorFlow padding mode, shared by a convolution and its max pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Padding {
    Valid,
    Same,
}

/// Padding before and after along one axis, TensorFlow's rule:
/// `total = max((ceil(n/s) - 1) * s + k - n, 0)`, `before = total / 2`.
pub fn same_pads(n: u32, kernel: u32, stride: u32) -> (u32, u32) {
    let out = n.div_ceil(stride) as i64;
    let total = ((out - 1) * stride as i64 + kernel as i64 - n as i64).max(0) as u32;
    (total / 2, total - total / 2)
}

/// Output length along one axis; `None` for an empty output ('valid' with a
/// window larger than the input) or a zero kernel/stride.
pub fn output_len(n: u32, kernel: u32, stride: u32, padding: Padding) -> Option<u32> {
    if kernel == 0 || stride == 0 || n == 0 {
        return None;
    }
    match padding {
        Padding::Same => Some(n.div_ceil(stride)),
        Padding::Valid if n >= kernel => Some((n - kernel) / stride + 1),
        Padding::Valid => None,
    }
}

/// Padding before the first row and column.
pub fn pads_before(
    input: Dims,
    kernel: Window,
    stride: Window,
    padding: Padding,
) -> (usize, usize) {
    match padding {
        Padding::Valid => (0, 0),
        Padding::Same => (
            same_pads(input.rows, kernel.rows, stride.rows).0 as usize,
            same_pads(input.cols, kernel.cols, stride.cols).0 as usize,
        ),
    }
}

/// Spatial output of sliding `kernel` with `stride` over `input`; channels kept.
pub fn slide(input: Dims, kernel: Window, stride: Window, padding: Padding) -> Option<Dims> {
    Some(Dims {
        rows: output_len(input.rows, kernel.rows, stride.rows, padding)?,
        cols: output_len(input.cols, kernel.cols, stride.cols, padding)?,
        channels: input.channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_pads_follow_tensorflow() {
        // 49 rows, 5x5 kernel, stride 2: out 25, total = 24*2+5-49 = 4.
        assert_eq!(same_pads(49, 5, 2), (2, 2));
        // 10 cols, stride 2: out 5, total = 8+5-10 = 3 -> (1, 2).
        assert_eq!(same_pads(10, 5, 2), (1, 2));
        // 7 rows, pool 2 stride 2: out 4, total = 6+2-7 = 1 -> (0, 1).
        assert_eq!(same_pads(7, 2, 2), (0, 1));
        // stride larger than kernel: no negative padding.
        assert_eq!(same_pads(8, 1, 2), (0, 0));
    }

    #[test]
    fn output_lengths() {
        assert_eq!(output_len(7, 2, 2, Padding::Same), Some(4));
        assert_eq!(output_len(4, 2, 2, Padding::Valid), Some(2));
        assert_eq!(output_len(3, 2, 2, Padding::Valid), Some(1));
        assert_eq!(output_len(2, 3, 1, Padding::Valid), None);
        assert_eq!(output_len(5, 3, 0, Padding::Same), None);
    }
}
