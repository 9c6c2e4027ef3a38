//! What follows the neural part of every layer, whichever backend computed
//! its potentials: pooling (max or global sum), 20-bit saturation, then the
//! step activation into levels or, for a last layer without activation, the
//! raw potentials.
//!
//! Saturation follows the engine (`LayerParams::saturates`): a fully
//! connected layer's potentials saturate; a convolution's (input,
//! separable or plain) only when pooled: after the max of a max pooling, and
//! at every step of a global average pooling's sum, which adds the cells in
//! row-major order (so a sum that went over the top and came back down
//! differs from the saturated total). Unpooled convolution potentials are
//! exact.
//!
//! The tail works one output cell at a time on a row of `f` potentials, so
//! that the loops over filters vectorize.

use crate::activation;
use crate::inference::LayerOutputMut;
use crate::kernels::Grid;
use crate::layer::Pooling;
use crate::model::ValidLayer;
use crate::pooling::MaxPool;
use crate::saturation::{saturate, POTENTIAL_MAX, POTENTIAL_MIN};

/// How potentials become levels.
#[derive(Clone, Copy, Debug)]
pub enum Activation<'a> {
    /// Divide by each filter's `floor(16 * act_step)` (the definition).
    Divide,
    /// Count the precomputed level cuts a potential exceeds, `[level][stride]`
    /// (see [`activation::level_cut`]): the same levels without a division.
    Cuts { cuts: &'a [i32], stride: usize },
}

/// Pools, saturates and activates `grid` into `out`; `row` holds at least
/// `grid.stride` cells (one pooled row of potentials).
#[inline(always)]
pub fn finish(
    layer: &ValidLayer,
    grid: Grid,
    activation: Activation,
    row: &mut [i32],
    mut out: LayerOutputMut,
) {
    let conv = layer.shapes.conv;
    let od = layer.shapes.output;
    let f = layer.params().filters as usize;
    let stride = grid.stride;
    let row = &mut row[..stride];
    let cell = |k: usize| &grid.potentials[k * stride..][..stride];
    let mut write = |row: &mut [i32], index: usize| {
        emit(layer, row, f, activation, index, &mut out);
    };
    match layer.params().pooling {
        Pooling::None => {
            for index in 0..conv.rows as usize * conv.cols as usize {
                row.copy_from_slice(cell(index));
                write(row, index);
            }
        }
        Pooling::Max { size, stride } => {
            let pool = MaxPool {
                size,
                stride,
                pad_before: layer.shapes.pool_pads,
            };
            for r in 0..od.rows as usize {
                for c in 0..od.cols as usize {
                    row.fill(i32::MIN);
                    pool.for_each_cell(conv, (r, c), |k| {
                        for (m, &v) in row.iter_mut().zip(cell(k)) {
                            *m = (*m).max(v);
                        }
                    });
                    write(row, r * od.cols as usize + c);
                }
            }
        }
        Pooling::GlobalAverage => {
            // The engine's sum saturates at every cell it adds, in row-major order.
            let cells = conv.rows as usize * conv.cols as usize;
            let mut sums = [0i32; 64];
            for start in (0..stride).step_by(64) {
                let width = (stride - start).min(64);
                sums[..width].fill(0);
                for k in 0..cells {
                    for (s, &v) in sums[..width].iter_mut().zip(&cell(k)[start..start + width]) {
                        *s = saturate(*s as i64 + v as i64);
                    }
                }
                row[start..start + width].copy_from_slice(&sums[..width]);
            }
            write(row, 0);
        }
    }
}

/// Saturates a pooled row and writes its first `f` values as levels or
/// potentials at output cell `index`.
#[inline(always)]
fn emit(
    layer: &ValidLayer,
    row: &mut [i32],
    f: usize,
    activation: Activation,
    index: usize,
    out: &mut LayerOutputMut,
) {
    if layer.params().saturates() {
        for v in row.iter_mut() {
            *v = (*v).clamp(POTENTIAL_MIN, POTENTIAL_MAX);
        }
    }
    match out {
        LayerOutputMut::Levels(levels) => {
            let levels = &mut levels[index * f..][..f];
            match activation {
                Activation::Divide => divide(layer, &row[..f], levels),
                Activation::Cuts { cuts, stride } => count_cuts(row, cuts, stride, levels),
            }
        }
        LayerOutputMut::Potentials(p) => p[index * f..][..f].copy_from_slice(&row[..f]),
    }
}

/// Levels by division, filter by filter.
#[inline(always)]
fn divide(layer: &ValidLayer, row: &[i32], levels: &mut [u8]) {
    let l = &layer.layer;
    let bits = l.params.act_bits;
    for (filter, (&p, level)) in row.iter().zip(levels.iter_mut()).enumerate() {
        let divisor = activation::step_divisor(l.act_step.get(filter));
        *level = activation::level(p, l.threshold.get(filter), divisor, bits);
    }
}

/// Levels as the count of cuts each potential exceeds, 16 filters at a time
/// in registers (`row` holds `stride` cells; `cuts` is `[level][stride]`).
#[inline(always)]
fn count_cuts(row: &[i32], cuts: &[i32], stride: usize, levels: &mut [u8]) {
    let f = levels.len();
    for start in (0..f).step_by(16) {
        let n = (f - start).min(16);
        let mut count = [0u8; 16];
        if let Some(p) = row.get(start..start + 16) {
            let p: &[i32; 16] = p.try_into().unwrap_or(&[i32::MIN; 16]);
            for cut in cuts.chunks_exact(stride) {
                let c: &[i32; 16] = cut
                    .get(start..start + 16)
                    .and_then(|c| c.try_into().ok())
                    .unwrap_or(&[i32::MAX; 16]);
                for j in 0..16 {
                    count[j] += (p[j] > c[j]) as u8;
                }
            }
        } else {
            for cut in cuts.chunks_exact(stride) {
                for j in 0..n {
                    count[j] += (row[start + j] > cut[start + j]) as u8;
                }
            }
        }
        levels[start..start + n].copy_from_slice(&count[..n]);
    }
}
