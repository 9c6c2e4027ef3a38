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
    let mut write = |row: &[i32], index: usize| {
        emit(layer, row, f, activation, index, &mut out);
    };
    match layer.params().pooling {
        Pooling::None => {
            // Each cell straight from the grid: no copy.
            for index in 0..conv.rows as usize * conv.cols as usize {
                emit(layer, cell(index), f, activation, index, &mut out);
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

/// Saturates a (pooled) row of potentials and writes its first `f` values
/// as levels or potentials at output cell `index`.
#[inline(always)]
fn emit(
    layer: &ValidLayer,
    row: &[i32],
    f: usize,
    activation: Activation,
    index: usize,
    out: &mut LayerOutputMut,
) {
    let saturates = layer.params().saturates();
    let sat = |v: i32| {
        if saturates {
            v.clamp(POTENTIAL_MIN, POTENTIAL_MAX)
        } else {
            v
        }
    };
    match out {
        LayerOutputMut::Levels(levels) => {
            let levels = &mut levels[index * f..][..f];
            match activation {
                Activation::Divide => divide(layer, &row[..f], sat, levels),
                Activation::Cuts { cuts, stride } => count_cuts(row, sat, cuts, stride, levels),
            }
        }
        LayerOutputMut::Potentials(p) => {
            for (o, &v) in p[index * f..][..f].iter_mut().zip(&row[..f]) {
                *o = sat(v);
            }
        }
    }
}

/// Levels by division, filter by filter.
#[inline(always)]
fn divide(layer: &ValidLayer, row: &[i32], sat: impl Fn(i32) -> i32, levels: &mut [u8]) {
    let l = &layer.layer;
    let bits = l.params.act_bits;
    for (filter, (&p, level)) in row.iter().zip(levels.iter_mut()).enumerate() {
        let divisor = activation::step_divisor(l.act_step.get(filter));
        *level = activation::level(sat(p), l.threshold.get(filter), divisor, bits);
    }
}

/// Lanes [`count_cuts`] works on at once.
const CUT_LANES: usize = 32;

/// Levels as the count of cuts each potential exceeds (`row` holds `stride`
/// cells; `cuts` is `[level][stride]`, its padding columns never cut). With
/// a stride that is a multiple of [`CUT_LANES`] (the fast kernel's), whole
/// blocks of 32 filters are counted in i32 lanes in registers, the padding
/// columns with them, and only the first `f` levels written.
#[inline(always)]
fn count_cuts(
    row: &[i32],
    sat: impl Fn(i32) -> i32,
    cuts: &[i32],
    stride: usize,
    levels: &mut [u8],
) {
    let f = levels.len();
    if stride.is_multiple_of(CUT_LANES) && row.len() >= stride {
        for start in (0..f).step_by(CUT_LANES) {
            let p: &[i32; CUT_LANES] = row[start..start + CUT_LANES].try_into().unwrap();
            let mut v = [0i32; CUT_LANES];
            for j in 0..CUT_LANES {
                v[j] = sat(p[j]);
            }
            let mut count = [0i32; CUT_LANES];
            for cut in cuts.chunks_exact(stride) {
                let c: &[i32; CUT_LANES] = cut[start..start + CUT_LANES].try_into().unwrap();
                for j in 0..CUT_LANES {
                    count[j] += (v[j] > c[j]) as i32;
                }
            }
            let mut bytes = [0u8; CUT_LANES];
            for j in 0..CUT_LANES {
                // `min` keeps the counts in i32 lanes (a bare `as u8` lets
                // the compiler count in bytes, through costly packs).
                bytes[j] = count[j].min(255) as u8;
            }
            match levels.get_mut(start..start + CUT_LANES) {
                Some(l) => l.copy_from_slice(&bytes),
                None => levels[start..].copy_from_slice(&bytes[..f - start]),
            }
        }
        return;
    }
    for (filter, (&p, level)) in row.iter().zip(levels.iter_mut()).enumerate() {
        let p = sat(p);
        *level = cuts
            .chunks_exact(stride)
            .filter(|cut| p > cut[filter])
            .count() as u8;
    }
}
