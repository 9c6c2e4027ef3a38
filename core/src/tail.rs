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

use crate::activation::{self, LevelScale, Precision};
use crate::inference::LayerOutputMut;
use crate::kernels::Grid;
use crate::layer::Pooling;
use crate::model::ValidLayer;
use crate::pooling::MaxPool;
use crate::saturation::{saturating_add, POTENTIAL_MAX, POTENTIAL_MIN};
use core::ops::Range;

/// How potentials become levels.
#[derive(Clone, Copy, Debug)]
pub enum Activation<'a> {
    /// Divide by each filter's `floor(16 * act_step)` (the definition).
    Divide,
    /// Count the precomputed level cuts a potential exceeds (see
    /// [`activation::level_cut`]), blocked `[block][level][filter in block]`
    /// ([`crate::kernels::fast::level_cuts`]; `stride`, the columns, is a
    /// multiple of [`CUT_BLOCK`]): the same levels without a division; in
    /// 16-bit lanes with `narrow`, the cuts' 16-bit form
    /// ([`crate::kernels::fast::NarrowCuts`]), where every filter's fits.
    Cuts {
        cuts: &'a [i32],
        narrow: Option<&'a [i32]>,
        stride: usize,
    },
    /// One float multiply per potential ([`activation::LevelScale`]) in
    /// `precision`: `rows` holds `stride` thresholds, tops and scales (f32
    /// bits) ([`crate::kernels::fast::LevelScales`]).
    Scaled {
        rows: &'a [i32],
        stride: usize,
        precision: Precision,
    },
}

/// A band of a layer's output rows and the conv cells its grid holds
/// (see [`band_cells`]): the tail finishes those rows only, its grid
/// starting at conv cell `first_cell`, its output slice at the band's
/// first row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Band {
    pub rows: Range<usize>,
    pub first_cell: usize,
}

impl Band {
    /// Every output row of `layer`, its grid the whole conv grid.
    pub fn all(layer: &ValidLayer) -> Band {
        Band {
            rows: 0..layer.shapes.output.rows as usize,
            first_cell: 0,
        }
    }
}

/// The conv cells (HWC cell indices of the conv grid) that output rows
/// `rows` of `layer` need: the same rows without pooling, the rows their
/// windows read with max pooling; `None` for a global average (its sum
/// runs over every cell in order) and for empty bands.
pub fn band_cells(layer: &ValidLayer, rows: Range<usize>) -> Option<Range<usize>> {
    let conv = layer.shapes.conv;
    let cols = conv.cols as usize;
    if rows.is_empty() || rows.end > layer.shapes.output.rows as usize {
        return None;
    }
    let conv_rows = match layer.params().pooling {
        Pooling::None => rows,
        Pooling::Max { size, stride } => MaxPool {
            size,
            stride,
            pad_before: layer.shapes.pool_pads,
        }
        .conv_rows(rows, conv.rows as usize),
        Pooling::GlobalAverage => return None,
    };
    Some(conv_rows.start * cols..conv_rows.end * cols)
}

/// The bytes of a layer's input (HWC levels) that conv cells `cells` (of
/// [`band_cells`]) read: the input rows under their kernel windows, the
/// padding rows left out; the whole input for a fully connected layer.
/// A band's result depends on these bytes only, so a band run elsewhere
/// needs only these.
pub fn band_input(layer: &ValidLayer, cells: Range<usize>) -> Range<usize> {
    let p = layer.params();
    let input = p.input;
    let row_len = input.cols as usize * input.channels as usize;
    let all = 0..input.rows as usize * row_len;
    if cells.is_empty() || p.kind == crate::layer::LayerKind::FullyConnected {
        return all;
    }
    let cols = layer.shapes.conv.cols as usize;
    let (first, last) = (cells.start / cols, (cells.end - 1) / cols);
    let (stride, kernel) = (p.stride.rows as usize, p.kernel.rows as usize);
    let pad = layer.shapes.conv_pads.0;
    let start = (first * stride).saturating_sub(pad);
    let end = (last * stride + kernel).saturating_sub(pad);
    let rows = input.rows as usize;
    start.min(rows) * row_len..end.min(rows) * row_len
}

/// Pools, saturates and activates `grid` into `out`; `row` holds at least
/// `grid.stride` cells (one pooled row of potentials). Output rows
/// `band.rows` only ([`Band::all`]: the whole layer): `grid` holds conv
/// cells from `band.first_cell` on, `out` the band's output.
#[inline(always)]
pub fn finish(
    layer: &ValidLayer,
    grid: Grid,
    band: Band,
    activation: Activation,
    row: &mut [i32],
    mut out: LayerOutputMut,
) {
    let conv = layer.shapes.conv;
    let od = layer.shapes.output;
    let f = layer.params().filters as usize;
    let stride = grid.stride;
    let row = &mut row[..stride];
    let first = band.first_cell;
    let cell = |k: usize| &grid.potentials[(k - first) * stride..][..stride];
    // Output cells are numbered from the band's first row.
    let out_first = band.rows.start * od.cols as usize;
    let mut write = |row: &[i32], index: usize| {
        emit(layer, row, f, activation, index - out_first, &mut out);
    };
    match layer.params().pooling {
        Pooling::None => {
            // Each cell straight from the grid: no copy.
            let cols = conv.cols as usize;
            let cells = band.rows.start * cols..band.rows.end * cols;
            if let (
                Activation::Scaled {
                    rows,
                    stride: columns,
                    precision,
                },
                LayerOutputMut::Levels(levels),
            ) = (activation, &mut out)
            {
                let potentials = &grid.potentials[(cells.start - first) * stride..];
                let levels = &mut levels[..cells.len() * f];
                let scales = (&rows[..3 * columns], columns);
                return match layer.params().saturates() {
                    true => scale_cells(potentials, stride, saturate, scales, precision, levels, f),
                    false => scale_cells(potentials, stride, |v| v, scales, precision, levels, f),
                };
            }
            for index in cells {
                emit(
                    layer,
                    cell(index),
                    f,
                    activation,
                    index - out_first,
                    &mut out,
                );
            }
        }
        Pooling::Max { size, stride } => {
            let pool = MaxPool {
                size,
                stride,
                pad_before: layer.shapes.pool_pads,
            };
            for r in band.rows.clone() {
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
            assert!(
                first == 0 && band.rows == (0..1),
                "a global average in bands"
            );
            // The engine's sum saturates at every cell it adds, in row-major order.
            let cells = conv.rows as usize * conv.cols as usize;
            let mut sums = [0i32; 64];
            for start in (0..stride).step_by(64) {
                let width = (stride - start).min(64);
                sums[..width].fill(0);
                for k in 0..cells {
                    for (s, &v) in sums[..width].iter_mut().zip(&cell(k)[start..start + width]) {
                        *s = saturating_add(*s, v);
                    }
                }
                row[start..start + width].copy_from_slice(&sums[..width]);
            }
            write(row, 0);
        }
    }
}

/// A potential saturated to 20 bits.
#[inline(always)]
fn saturate(v: i32) -> i32 {
    v.clamp(POTENTIAL_MIN, POTENTIAL_MAX)
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
    let sat = |v: i32| if saturates { saturate(v) } else { v };
    match out {
        LayerOutputMut::Levels(levels) => {
            let levels = &mut levels[index * f..][..f];
            match activation {
                Activation::Divide => divide(layer, &row[..f], sat, levels),
                Activation::Cuts {
                    cuts,
                    narrow,
                    stride,
                } => count_levels(row, sat, cuts, narrow, stride, levels),
                Activation::Scaled {
                    rows,
                    stride,
                    precision,
                } => scale_levels(&row[..stride], sat, rows, precision, levels),
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

/// Filters whose levels are counted at once (in registers), and the block
/// of the level cuts' layout.
pub const CUT_BLOCK: usize = 32;

/// Levels as the count of cuts each potential exceeds, [`CUT_BLOCK`]
/// filters at a time, the padding columns with them (their cuts never fire),
/// and only the first `f` levels written. The cut loops are unrolled for the
/// activations' level counts (1, 3 and 15 cuts: 1, 2 and 4 bits).
#[inline(always)]
fn count_levels(
    row: &[i32],
    sat: impl Fn(i32) -> i32,
    cuts: &[i32],
    narrow: Option<&[i32]>,
    stride: usize,
    levels: &mut [u8],
) {
    let row = &row[..stride];
    match (cuts.len() / stride, narrow) {
        (15, Some(n)) => count_narrow::<15>(row, sat, n, levels),
        (3, Some(n)) => count_narrow::<3>(row, sat, n, levels),
        (15, None) => count_wide::<15>(row, sat, cuts, levels),
        (3, None) => count_wide::<3>(row, sat, cuts, levels),
        (1, _) => count_wide::<1>(row, sat, cuts, levels),
        (l, _) => count_any(row, sat, cuts, l, levels),
    }
}

/// [`count_levels`] in i32 lanes, `L` cuts per filter.
#[inline(always)]
fn count_wide<const L: usize>(
    row: &[i32],
    sat: impl Fn(i32) -> i32,
    cuts: &[i32],
    levels: &mut [u8],
) {
    for (b, start) in (0..levels.len()).step_by(CUT_BLOCK).enumerate() {
        let p: &[i32; CUT_BLOCK] = row[start..start + CUT_BLOCK].try_into().unwrap();
        let block: &[i32] = &cuts[b * L * CUT_BLOCK..][..L * CUT_BLOCK];
        let mut v = [0i32; CUT_BLOCK];
        for j in 0..CUT_BLOCK {
            v[j] = sat(p[j]);
        }
        let mut count = [0i32; CUT_BLOCK];
        for c in block.chunks_exact(CUT_BLOCK).take(kept_loop(L)) {
            let c: &[i32; CUT_BLOCK] = c.try_into().unwrap();
            for j in 0..CUT_BLOCK {
                count[j] += (v[j] > c[j]) as i32;
            }
        }
        // `min` keeps the counts in i32 lanes (a bare `as u8` lets the
        // compiler count in bytes, through costly packs).
        store_block(levels, start, |j| count[j].min(255) as u8);
    }
}

/// The bound of the wide count's loop over the cuts. On x86-64 it is made
/// opaque, so the loop is kept: fully unrolled, its `L`-term sums per filter
/// read as horizontal reductions, which AVX-512 code generation vectorizes
/// over the cuts with gathers (measured: `conv_0` of `ds_cnn_kws` 57 us
/// against 13 us per image so). Elsewhere (the Cortex-M4F) it stays a
/// constant.
#[inline(always)]
fn kept_loop(l: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    return core::hint::black_box(l);
    #[cfg(not(target_arch = "x86_64"))]
    l
}

/// [`count_levels`] with the cuts' 16-bit form (`narrow`, see
/// [`crate::kernels::fast::NarrowCuts`]) of `L` cuts per filter: each
/// potential is clamped to its filter's `[lo, hi]` and taken relative to
/// `lo` in 16 bits, then compared with the 16-bit cuts, 16 lanes to a
/// 256-bit register instead of 8.
#[inline(always)]
fn count_narrow<const L: usize>(
    row: &[i32],
    sat: impl Fn(i32) -> i32,
    narrow: &[i32],
    levels: &mut [u8],
) {
    const WORDS: usize = CUT_BLOCK / 2;
    let stride = row.len();
    let (lo, rest) = narrow.split_at(stride);
    let (hi, cuts) = rest.split_at(stride);
    for (b, start) in (0..levels.len()).step_by(CUT_BLOCK).enumerate() {
        let p: &[i32; CUT_BLOCK] = row[start..start + CUT_BLOCK].try_into().unwrap();
        let lo: &[i32; CUT_BLOCK] = lo[start..start + CUT_BLOCK].try_into().unwrap();
        let hi: &[i32; CUT_BLOCK] = hi[start..start + CUT_BLOCK].try_into().unwrap();
        let block: &[i32] = &cuts[b * L * WORDS..][..L * WORDS];
        let mut q = [0i16; CUT_BLOCK];
        for j in 0..CUT_BLOCK {
            // In 0..=hi - lo, which fits i16 (NarrowCuts::fit).
            q[j] = (sat(p[j]).max(lo[j]).min(hi[j]) - lo[j]) as i16;
        }
        let mut count = [0i16; CUT_BLOCK];
        for k in 0..L {
            let c = narrow_row(&block[k * WORDS..][..WORDS]);
            for j in 0..CUT_BLOCK {
                count[j] += (q[j] > c[j]) as i16;
            }
        }
        // `min` keeps the counts in i16 lanes (a bare `as u8` lets the
        // compiler count in bytes, packing every comparison).
        store_block(levels, start, |j| count[j].min(255) as u8);
    }
}

/// Levels by [`activation::LevelScale`], [`CUT_BLOCK`] filters at a time
/// (`rows`: the thresholds, tops and scales of `row.len()` columns).
#[inline(always)]
fn scale_levels(
    row: &[i32],
    sat: impl Fn(i32) -> i32,
    rows: &[i32],
    precision: Precision,
    levels: &mut [u8],
) {
    match precision {
        Precision::Single => scale_block(row, sat, rows, LevelScale::level_single, levels),
        Precision::Double => scale_block(row, sat, rows, LevelScale::level_double, levels),
    }
}

/// Levels by [`activation::LevelScale`] for consecutive cells of an
/// unpooled layer (`potentials` rows `stride` apart, `levels` rows `f`
/// apart): block by block of [`CUT_BLOCK`] filters, every cell, so that a
/// block's thresholds, tops and scales are read once for all the cells
/// (`scales`: those rows, `columns` wide) and the loop runs without a
/// call per cell.
#[inline(always)]
fn scale_cells(
    potentials: &[i32],
    stride: usize,
    sat: impl Fn(i32) -> i32,
    scales: (&[i32], usize),
    precision: Precision,
    levels: &mut [u8],
    f: usize,
) {
    match precision {
        Precision::Single => {
            let level = |p, t, h, s| LevelScale::level_single(sat(p), t, h, s);
            scale_cell_blocks(potentials, stride, scales, level, levels, f)
        }
        Precision::Double => {
            let level = |p, t, h, s| LevelScale::level_double(sat(p), t, h, s);
            scale_cell_blocks(potentials, stride, scales, level, levels, f)
        }
    }
}

/// [`scale_cells`] with `level_of`, one precision's level.
#[inline(always)]
fn scale_cell_blocks(
    potentials: &[i32],
    stride: usize,
    (rows, columns): (&[i32], usize),
    level_of: impl Fn(i32, i32, i32, f32) -> u8,
    levels: &mut [u8],
    f: usize,
) {
    let (threshold, rest) = rows.split_at(columns);
    let (top, scale) = rest.split_at(columns);
    for start in (0..f).step_by(CUT_BLOCK) {
        let block = start..start + CUT_BLOCK;
        let t: &[i32; CUT_BLOCK] = threshold[block.clone()].try_into().unwrap();
        let h: &[i32; CUT_BLOCK] = top[block.clone()].try_into().unwrap();
        let s: &[i32; CUT_BLOCK] = scale[block.clone()].try_into().unwrap();
        for (cell, out) in levels.chunks_exact_mut(f).enumerate() {
            let p: &[i32; CUT_BLOCK] = potentials[cell * stride..][block.clone()]
                .try_into()
                .unwrap();
            store_block(out, start, |j| {
                level_of(p[j], t[j], h[j], f32::from_bits(s[j] as u32))
            });
        }
    }
}

/// [`scale_levels`] with `level_of`, one precision's level: a block at a
/// time of one row (the layer-wide [`scale_cell_blocks`] runs every cell
/// per block instead; for one cell its loops cost AVX2 cifar10 about 4 %).
#[inline(always)]
fn scale_block(
    row: &[i32],
    sat: impl Fn(i32) -> i32,
    rows: &[i32],
    level_of: impl Fn(i32, i32, i32, f32) -> u8,
    levels: &mut [u8],
) {
    let stride = row.len();
    let (threshold, rest) = rows.split_at(stride);
    let (top, scale) = rest.split_at(stride);
    for start in (0..levels.len()).step_by(CUT_BLOCK) {
        let block = start..start + CUT_BLOCK;
        let p: &[i32; CUT_BLOCK] = row[block.clone()].try_into().unwrap();
        let t: &[i32; CUT_BLOCK] = threshold[block.clone()].try_into().unwrap();
        let h: &[i32; CUT_BLOCK] = top[block.clone()].try_into().unwrap();
        let s: &[i32; CUT_BLOCK] = scale[block].try_into().unwrap();
        store_block(levels, start, |j| {
            let scale = f32::from_bits(s[j] as u32);
            level_of(sat(p[j]), t[j], h[j], scale)
        });
    }
}

/// 16 words of 16-bit cuts as [`CUT_BLOCK`] i16 (memory order).
#[inline(always)]
fn narrow_row(words: &[i32]) -> [i16; CUT_BLOCK] {
    let words: &[i32; CUT_BLOCK / 2] = words.try_into().unwrap();
    let mut out = [0i16; CUT_BLOCK];
    for (pair, w) in out.chunks_exact_mut(2).zip(words) {
        let b = w.to_ne_bytes();
        pair[0] = i16::from_ne_bytes([b[0], b[1]]);
        pair[1] = i16::from_ne_bytes([b[2], b[3]]);
    }
    out
}

/// Writes `level(j)` for the block of filters from `start` (fewer at the
/// end) straight into `levels`: through a block on the stack, the narrowing
/// stores and the block's reload stalled (a reload cannot take its bytes
/// from two pending stores: 30 % of the inlined tail's samples at that one
/// load, `perf annotate`).
#[inline(always)]
fn store_block(levels: &mut [u8], start: usize, level: impl Fn(usize) -> u8) {
    match levels.get_mut(start..start + CUT_BLOCK) {
        Some(out) => {
            // A whole block: a fixed-size loop.
            let out: &mut [u8; CUT_BLOCK] = out.try_into().unwrap();
            for (j, o) in out.iter_mut().enumerate() {
                *o = level(j);
            }
        }
        None => {
            for (j, o) in levels[start..].iter_mut().enumerate() {
                *o = level(j);
            }
        }
    }
}

/// [`count_levels`] for another count of cuts (no activation has one), a
/// filter at a time.
fn count_any(row: &[i32], sat: impl Fn(i32) -> i32, cuts: &[i32], l: usize, levels: &mut [u8]) {
    for (filter, (&p, level)) in row.iter().zip(levels.iter_mut()).enumerate() {
        let p = sat(p);
        let block = &cuts[filter / CUT_BLOCK * l * CUT_BLOCK..][..l * CUT_BLOCK];
        *level = block
            .chunks_exact(CUT_BLOCK)
            .filter(|cut| p > cut[filter % CUT_BLOCK])
            .count() as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{level, level_cut, max_level};
    use crate::kernels::fast::{cut_index, NarrowCuts};
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// A filter's threshold and divisor `floor(16 * act_step)`: small, wide,
    /// or at the ends of their ranges.
    fn filter() -> impl Strategy<Value = (i32, i64)> {
        let threshold = prop_oneof![-3000i32..3000, any::<i32>(), Just(i32::MIN), Just(i32::MAX)];
        let divisor = prop_oneof![
            1i64..2000,
            1i64..(1 << 24),
            Just(1i64),
            (1i64 << 31)..(1 << 40)
        ];
        (threshold, divisor)
    }

    /// A filter whose cuts fit the 16-bit form.
    fn narrow_filter() -> impl Strategy<Value = (i32, i64)> {
        let threshold = prop_oneof![-3000i32..3000, (i32::MIN + 1)..i32::MAX, Just(i32::MAX)];
        (
            threshold,
            prop_oneof![1i64..37000, 16i64..=65536, 16i64..=(1 << 19)],
        )
    }

    /// Potentials around each of a filter's cuts and at the ends of i32.
    fn potentials(cuts: &[i32], pick: u64) -> Vec<i32> {
        let mut v = vec![i32::MIN, i32::MAX, 0, -1, 1, (pick as i32) ^ 0x5555];
        for &c in cuts {
            v.extend([c.saturating_sub(1), c, c.saturating_add(1)]);
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Counting cuts, in i32 lanes and (where they fit) in 16-bit lanes,
        /// and the scaled form (where every filter has one) give the
        /// activation's definition for every potential tried.
        #[test]
        fn counted_levels_are_the_definition(
            bits in prop::sample::select(vec![1u8, 2, 4]),
            filters in prop_oneof![
                prop::collection::vec(narrow_filter(), 1..70),
                prop::collection::vec(filter(), 1..70),
            ],
            saturates in any::<bool>(),
            pick in any::<u64>(),
        ) {
            let f = filters.len();
            let stride = f.next_multiple_of(CUT_BLOCK);
            let levels_n = max_level(bits) as usize;
            let mut cuts = vec![i32::MAX; levels_n * stride];
            let mut per_filter = Vec::new();
            for (filter, &(threshold, divisor)) in filters.iter().enumerate() {
                let c: Vec<i32> = (0..levels_n).map(|k| level_cut(threshold, divisor, bits, k)).collect();
                for (k, &cut) in c.iter().enumerate() {
                    cuts[cut_index(levels_n, k, filter)] = cut;
                }
                per_filter.push(c);
            }
            let fit = per_filter.iter().all(|c| NarrowCuts::fits(c[0], c[levels_n - 1]));
            let mut narrow = vec![0i32; NarrowCuts::len(levels_n, stride)];
            if fit {
                NarrowCuts::write(&cuts, levels_n, stride, &mut narrow);
            }
            let scales: Option<Vec<LevelScale>> = filters
                .iter()
                .map(|&(threshold, divisor)| LevelScale::of(threshold, divisor, bits))
                .collect();
            let mut scaled_rows = vec![0i32; 3 * stride];
            if let Some(scales) = &scales {
                for (filter, s) in scales.iter().enumerate() {
                    scaled_rows[filter] = s.threshold;
                    scaled_rows[stride + filter] = s.top;
                    scaled_rows[2 * stride + filter] = s.scale.to_bits() as i32;
                }
            }
            let sat = |v: i32| if saturates { saturate(v) } else { v };
            let tries: Vec<Vec<i32>> = per_filter.iter().map(|c| potentials(c, pick)).collect();
            let rounds = tries.iter().map(Vec::len).max().unwrap();
            // Every round's row as a cell of one grid, for the layer-wide
            // scaled form (a padding column's potential varies: unread).
            let mut grid = Vec::new();
            let mut grid_expected = Vec::new();
            for r in 0..rounds {
                let mut row = vec![i32::MAX - r as i32; stride];
                for (filter, t) in tries.iter().enumerate() {
                    row[filter] = t[(r + filter) % t.len()];
                }
                let expected: Vec<u8> = (0..f)
                    .map(|i| level(sat(row[i]), filters[i].0, filters[i].1, bits))
                    .collect();
                grid.extend_from_slice(&row);
                grid_expected.extend_from_slice(&expected);
                let mut wide = vec![0u8; f];
                count_levels(&row, sat, &cuts, None, stride, &mut wide);
                prop_assert_eq!(&wide, &expected, "i32 lanes, row {:?}", row);
                if fit {
                    let mut lanes16 = vec![0u8; f];
                    count_levels(&row, sat, &cuts, Some(&narrow), stride, &mut lanes16);
                    prop_assert_eq!(&lanes16, &expected, "16-bit lanes, row {:?}", row);
                }
                if let Some(scales) = &scales {
                    // Double precision serves every layer that has a scaled
                    // form, single those whose filters all allow it.
                    let single = scales.iter().all(|s| s.precision == Precision::Single);
                    for precision in [Precision::Double, Precision::Single] {
                        if precision == Precision::Single && !single {
                            continue;
                        }
                        let mut scaled = vec![0u8; f];
                        scale_levels(&row, sat, &scaled_rows, precision, &mut scaled);
                        prop_assert_eq!(&scaled, &expected, "scaled {:?}, row {:?}", precision, row);
                    }
                }
            }
            if let Some(scales) = &scales {
                let single = scales.iter().all(|s| s.precision == Precision::Single);
                for precision in [Precision::Double, Precision::Single] {
                    if precision == Precision::Single && !single {
                        continue;
                    }
                    let mut levels = vec![0u8; rounds * f];
                    let rows = (&scaled_rows[..], stride);
                    scale_cells(&grid, stride, sat, rows, precision, &mut levels, f);
                    prop_assert_eq!(&levels, &grid_expected, "scaled cells {:?}", precision);
                }
            }
        }
    }

    /// The 16-bit form's bound: `hi - lo` at most `i16::MAX`, `first` above
    /// `i32::MIN`; a last cut at `i32::MAX` adds no room.
    #[test]
    fn narrow_cuts_fit_up_to_the_sixteen_bit_bound() {
        assert!(NarrowCuts::fits(0, 32765));
        assert!(!NarrowCuts::fits(0, 32766));
        assert!(NarrowCuts::fits(-5, -5));
        assert!(!NarrowCuts::fits(i32::MIN, i32::MIN + 3));
        assert!(NarrowCuts::fits(i32::MAX - 32766, i32::MAX));
        assert!(!NarrowCuts::fits(i32::MAX - 32767, i32::MAX));
        assert!(NarrowCuts::fits(i32::MAX, i32::MAX));
    }
}
