//! Pooling over potentials: max pooling (TensorFlow padding, padded cells
//! never win) and global average pooling, which Akida computes as a plain sum
//! over rows and cols (its threshold and act_step are pre-scaled by H*W).

use crate::dims::{Dims, Window};

/// A max pooling: window size, stride and the (rows, cols) padding before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool {
    pub size: Window,
    pub stride: Window,
    pub pad_before: (usize, usize),
}

/// Max over the pool window at output cell `(row, col)`, channel `channel`.
/// A window lying wholly in the padding yields `i64::MIN`.
#[inline]
pub fn max_at(
    potentials: &[i32],
    dims: Dims,
    pool: &MaxPool,
    (out_row, out_col): (usize, usize),
    channel: usize,
) -> i64 {
    let MaxPool {
        size,
        stride,
        pad_before,
    } = *pool;
    let mut best = i64::MIN;
    let r0 = out_row * stride.rows as usize;
    let c0 = out_col * stride.cols as usize;
    for i in 0..size.rows as usize {
        let Some(r) = (r0 + i).checked_sub(pad_before.0) else {
            continue;
        };
        if r >= dims.rows as usize {
            break;
        }
        for j in 0..size.cols as usize {
            let Some(c) = (c0 + j).checked_sub(pad_before.1) else {
                continue;
            };
            if c >= dims.cols as usize {
                break;
            }
            best = best.max(potentials[dims.index(r, c, channel)] as i64);
        }
    }
    best
}

/// Sum of one channel over all rows and cols (global average pooling).
#[inline]
pub fn global_sum(potentials: &[i32], dims: Dims, channel: usize) -> i64 {
    let ch = dims.channels as usize;
    potentials[channel..]
        .iter()
        .step_by(ch)
        .map(|&p| p as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_cells_never_win() {
        // 1x3 row of negative potentials, pool 1x2 stride 1x2 with one padded col after.
        let p = [-5, -7, -9];
        let d = Dims::new(1, 3, 1);
        let w = Window::new(1, 2);
        let pool = MaxPool {
            size: w,
            stride: w,
            pad_before: (0, 0),
        };
        assert_eq!(max_at(&p, d, &pool, (0, 0), 0), -5);
        assert_eq!(max_at(&p, d, &pool, (0, 1), 0), -9);
    }

    #[test]
    fn global_sum_adds_one_channel() {
        let p = [1, 10, 2, 20, 3, 30];
        let d = Dims::new(1, 3, 2);
        assert_eq!(global_sum(&p, d, 0), 6);
        assert_eq!(global_sum(&p, d, 1), 60);
    }
}
