//! Pooling over potentials: max pooling (TensorFlow padding, padded cells
//! never win) and global average pooling, which Akida computes as a plain sum
//! over rows and cols (its threshold and act_step are pre-scaled by H*W).
//! The loops over filters live in [`crate::tail`].

use crate::dims::{Dims, Window};

/// A max pooling: window size, stride and the (rows, cols) padding before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool {
    pub size: Window,
    pub stride: Window,
    pub pad_before: (usize, usize),
}

impl MaxPool {
    /// The rows of a `conv_rows`-row grid that the pool windows of output
    /// rows `out` (not empty) read.
    pub fn conv_rows(
        &self,
        out: core::ops::Range<usize>,
        conv_rows: usize,
    ) -> core::ops::Range<usize> {
        let (stride, size, pad) = (
            self.stride.rows as usize,
            self.size.rows as usize,
            self.pad_before.0,
        );
        let start = (out.start * stride).saturating_sub(pad).min(conv_rows);
        let end = ((out.end - 1) * stride + size)
            .saturating_sub(pad)
            .min(conv_rows);
        start..end.max(start)
    }

    /// Calls `visit(k)` for each cell `k` (HWC cell index in `dims`) of the
    /// pool window of output cell `(out_row, out_col)`; cells in the padding
    /// are skipped, so they never win.
    #[inline(always)]
    pub fn for_each_cell(
        &self,
        dims: Dims,
        (out_row, out_col): (usize, usize),
        mut visit: impl FnMut(usize),
    ) {
        let r0 = out_row * self.stride.rows as usize;
        let c0 = out_col * self.stride.cols as usize;
        for i in 0..self.size.rows as usize {
            let Some(r) = (r0 + i).checked_sub(self.pad_before.0) else {
                continue;
            };
            if r >= dims.rows as usize {
                break;
            }
            for j in 0..self.size.cols as usize {
                let Some(c) = (c0 + j).checked_sub(self.pad_before.1) else {
                    continue;
                };
                if c >= dims.cols as usize {
                    break;
                }
                visit(r * dims.cols as usize + c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_cells_are_skipped() {
        // 1x3 row, pool 1x2 stride 1x2 with one padded col after.
        let d = Dims::new(1, 3, 1);
        let w = Window::new(1, 2);
        let pool = MaxPool {
            size: w,
            stride: w,
            pad_before: (0, 0),
        };
        let mut seen = heapless::Vec::<usize, 4>::new();
        pool.for_each_cell(d, (0, 1), |k| seen.push(k).unwrap());
        assert_eq!(seen, [2]);
        seen.clear();
        pool.for_each_cell(d, (0, 0), |k| seen.push(k).unwrap());
        assert_eq!(seen, [0, 1]);
    }

    #[test]
    fn padding_before_shifts_the_window() {
        // 3x1 column, pool 2x1 stride 2x1, one padded row before.
        let d = Dims::new(3, 1, 1);
        let pool = MaxPool {
            size: Window::new(2, 1),
            stride: Window::new(2, 1),
            pad_before: (1, 0),
        };
        let mut seen = heapless::Vec::<usize, 4>::new();
        pool.for_each_cell(d, (0, 0), |k| seen.push(k).unwrap());
        assert_eq!(seen, [0]);
        seen.clear();
        pool.for_each_cell(d, (1, 0), |k| seen.push(k).unwrap());
        assert_eq!(seen, [1, 2]);
    }
}
