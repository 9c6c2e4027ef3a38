//! Running a streamed model: per layer, a window of input rows, two output
//! rows of potentials at a time (M4 kernels or portable loops), then the
//! pooling, saturation and activation of [`crate::tail`]'s semantics.

use super::cast;
use super::plan::{stored_index, Geometry, Regions};
use super::{words_of, Buffer, StreamLayer, StreamModel, STEP_ROWS};
use crate::activation;
use crate::inference::{ForwardError, LayerOutput};
use crate::kernels::m4::{self, DwTable, CELLS};
use crate::kernels::ConvShape;
use crate::layer::{LayerKind, Pooling};
use crate::pooling::MaxPool;

/// A layer's input and level output: two buffers, or one it overwrites.
enum Io<'b> {
    Split(&'b [u8], &'b mut [u8]),
    Same(&'b mut [u8]),
}

impl Io<'_> {
    fn src(&self) -> &[u8] {
        match self {
            Io::Split(s, _) => s,
            Io::Same(b) => b,
        }
    }

    fn dst(&mut self) -> &mut [u8] {
        match self {
            Io::Split(_, d) => d,
            Io::Same(b) => b,
        }
    }
}

/// Takes the next `words` words of a workspace.
fn take<'a>(ws: &mut &'a mut [u64], words: usize) -> &'a mut [u64] {
    let (head, tail) = core::mem::take(ws).split_at_mut(words);
    *ws = tail;
    head
}

pub(super) fn forward<'w>(
    model: &StreamModel,
    input: &[u8],
    ws: &'w mut [u64],
    mut mark: impl FnMut(usize),
) -> Result<LayerOutput<'w>, ForwardError> {
    let expected = model.input().len();
    if input.len() != expected {
        return Err(ForwardError::InputLength {
            expected,
            found: input.len(),
        });
    }
    let sizes = model.sizes();
    if ws.len() < sizes.words() {
        return Err(ForwardError::Workspace {
            buffer: "stream",
            needed: sizes.words(),
            found: ws.len(),
        });
    }
    let mut rest = ws;
    let a = cast::bytes(take(&mut rest, words_of(sizes.levels[0])));
    let b = cast::bytes(take(&mut rest, words_of(sizes.levels[1])));
    let out = cast::ints(take(&mut rest, words_of(4 * sizes.output)));
    let scratch = rest;
    mark(0);
    let last = model.layers().len() - 1;
    for (i, l) in model.layers().iter().enumerate() {
        let io = match (l.src, l.dst) {
            (Buffer::Input, Buffer::A) => Io::Split(input, &mut a[..]),
            (Buffer::Input, _) => Io::Split(input, &mut b[..]),
            (Buffer::A, Buffer::A) => Io::Same(&mut a[..]),
            (Buffer::A, _) => Io::Split(&a[..], &mut b[..]),
            (Buffer::B, Buffer::B) => Io::Same(&mut b[..]),
            (Buffer::B, _) => Io::Split(&b[..], &mut a[..]),
        };
        run_layer(model, l, io, &mut out[..], &mut scratch[..]);
        mark(i + 1);
    }
    let l = &model.layers()[last];
    let n = model.output().len();
    if l.params.activation {
        let levels = match l.dst {
            Buffer::A => a,
            _ => b,
        };
        Ok(LayerOutput::Levels(&levels[..n]))
    } else {
        Ok(LayerOutput::Potentials(&out[..n]))
    }
}

/// Where a layer's pooled rows go: levels into its destination buffer, or
/// the potentials of a last layer without activation.
struct Sink<'b, 'm> {
    layer: &'m StreamLayer,
    model: &'m StreamModel<'m>,
    io: Io<'b>,
    out: &'b mut [i32],
    /// Threshold and divisor per filter (fast tail).
    table: &'b [i32],
    out_cols: usize,
    filters: usize,
    saturates: bool,
}

impl<'b, 'm> Sink<'b, 'm> {
    fn new(
        model: &'m StreamModel<'m>,
        layer: &'m StreamLayer,
        io: Io<'b>,
        out: &'b mut [i32],
        table: &'b [i32],
    ) -> Self {
        Sink {
            layer,
            model,
            io,
            out,
            table,
            out_cols: layer.shapes().output.cols as usize,
            filters: layer.params.filters as usize,
            saturates: layer.params.saturates(),
        }
    }

    /// Writes output row `row` from `data` (`[block][filter][CELLS]`
    /// accumulators over `cells` cells, scaled by `2^shift`).
    fn emit(&mut self, row: usize, cells: usize, data: &[i32], shift: u32) {
        let f = self.filters;
        let base = row * self.out_cols * f;
        if !self.layer.params.activation {
            for cell in 0..cells {
                let (blk, slot) = (cell / CELLS, cell % CELLS);
                for filter in 0..f {
                    let v = data[(blk * f + filter) * CELLS + slot] >> shift;
                    self.out[base + cell * f + filter] = self.saturate(v);
                }
            }
            return;
        }
        if self.layer.fast_tail {
            match self.layer.params.act_bits {
                1 => self.emit_fast::<1>(base, cells, data, shift),
                2 => self.emit_fast::<2>(base, cells, data, shift),
                _ => self.emit_fast::<4>(base, cells, data, shift),
            }
            return;
        }
        let threshold = self.model.threshold(self.layer);
        let act_step = self.model.act_step(self.layer);
        let bits = self.layer.params.act_bits;
        for filter in 0..f {
            let t = threshold.get(filter);
            let d = activation::step_divisor(act_step.get(filter));
            for cell in 0..cells {
                let (blk, slot) = (cell / CELLS, cell % CELLS);
                let v = self.saturate(data[(blk * f + filter) * CELLS + slot] >> shift);
                self.io.dst()[base + cell * f + filter] = activation::level(v, t, d, bits);
            }
        }
    }

    #[inline(always)]
    fn saturate(&self, v: i32) -> i32 {
        match self.saturates {
            true => m4::ssat20(v),
            false => v,
        }
    }

    fn emit_fast<const B: u32>(&mut self, base: usize, cells: usize, data: &[i32], shift: u32) {
        let f = self.filters;
        let saturates = self.saturates;
        let table = self.table;
        let dst = &mut self.io.dst()[base..];
        for blk in 0..cells.div_ceil(CELLS) {
            let n = (cells - blk * CELLS).min(CELLS);
            let block = &data[blk * f * CELLS..][..f * CELLS];
            let out = &mut dst[blk * CELLS * f..];
            match (n == CELLS, saturates) {
                (true, true) => m4::tail_levels::<B, true>(block, table, out, f, f, shift),
                (true, false) => m4::tail_levels::<B, false>(block, table, out, f, f, shift),
                _ => {
                    for (filter, (acc, td)) in block
                        .chunks_exact(CELLS)
                        .zip(table.chunks_exact(3))
                        .enumerate()
                    {
                        for (slot, &a) in acc[..n].iter().enumerate() {
                            let v = a >> shift;
                            let v = if saturates { m4::ssat20(v) } else { v };
                            out[slot * f + filter] = m4::level_fast::<B>(v, td[0], td[1]);
                        }
                    }
                }
            }
        }
    }
}

fn run_layer<'m>(
    model: &'m StreamModel<'m>,
    l: &'m StreamLayer,
    io: Io,
    out: &mut [i32],
    scratch: &mut [u64],
) {
    let g = Geometry::of(l);
    let r = Regions::of(l, &g);
    let mut ws = scratch;
    let window = cast::bytes(take(&mut ws, words_of(r.window)));
    let act = cast::words(take(&mut ws, words_of(4 * r.act)));
    let rows = cast::ints(take(&mut ws, words_of(4 * r.rows)));
    let dw = cast::ints(take(&mut ws, words_of(4 * r.dw)));
    let table = cast::ints(take(&mut ws, words_of(4 * r.table)));
    let pool = cast::ints(take(&mut ws, words_of(4 * r.pool)));
    let sums = cast::longs(take(&mut ws, r.sums));
    let koff = &mut cast::halves(cast::words(take(&mut ws, words_of(2 * r.koff))))[..r.koff];
    for (k, o) in koff.iter_mut().enumerate() {
        *o = offset(CELLS, 0, k) as u16;
    }
    if l.fast_tail {
        let threshold = model.threshold(l);
        let act_step = model.act_step(l);
        for (f, td) in table.chunks_exact_mut(3).enumerate().take(g.filters) {
            let d = activation::step_divisor(act_step.get(f)) as i32;
            td[0] = threshold.get(f);
            td[1] = d;
            td[2] = d - 1;
        }
    }
    let mut sink = Sink::new(model, l, io, out, table);
    let sink = &mut sink;
    let mut pooler = Pooler::new(l, &g, &mut pool[..r.pool], &mut sums[..r.sums]);
    match l.params.kind {
        LayerKind::FullyConnected => {
            dense(model, l, &g, sink.io.src(), act, rows);
            sink.emit(0, 1, rows, l.shift());
        }
        _ => {
            let pad = match l.params.kind {
                LayerKind::InputConvolutional => l.params.padding_value,
                _ => 0,
            };
            // Levels straight from the GEMM: 4-bit levels, no pooling,
            // rows of whole blocks.
            let fused = l.fast
                && l.fast_tail
                && l.params.act_bits == 4
                && l.params.pooling == Pooling::None
                && g.cols.is_multiple_of(CELLS);
            let mut filled: Option<isize> = None;
            for step in 0..g.steps {
                let first = (STEP_ROWS * step * g.sr) as isize - g.pt as isize;
                fill_window(l, &g, sink.io.src(), window, first, filled, pad);
                filled = Some(first);
                let real = (g.rows - STEP_ROWS * step).min(STEP_ROWS);
                if fused {
                    let row = STEP_ROWS * step * g.cols * g.filters;
                    let mut target = Target::Levels {
                        dst: &mut sink.io.dst()[row..],
                        table: sink.table,
                        saturate: sink.saturates,
                    };
                    match l.params.kind {
                        LayerKind::SeparableConvolutional => {
                            separable_fast(model, l, &g, window, real, act, &mut target)
                        }
                        _ => conv_fast(model, l, &g, window, real, koff, act, &mut target),
                    }
                    continue;
                }
                let mut target = Target::Rows(&mut rows[..]);
                match (l.params.kind, l.fast) {
                    (LayerKind::SeparableConvolutional, true) => {
                        separable_fast(model, l, &g, window, real, act, &mut target)
                    }
                    (LayerKind::SeparableConvolutional, false) => {
                        separable_portable(model, l, &g, window, real, dw, rows)
                    }
                    (_, true) => conv_fast(model, l, &g, window, real, koff, act, &mut target),
                    (_, false) => conv_portable(model, l, &g, window, real, rows),
                }
                for row in 0..real {
                    let data =
                        &rows[row * g.blocks * g.filters * CELLS..][..g.blocks * g.filters * CELLS];
                    pooler.push(sink, STEP_ROWS * step + row, data, l.shift());
                }
            }
            pooler.finish(sink, rows, l.shift());
        }
    }
}

/// Fills the window with input rows `first ..` (padded with `pad` outside
/// the input), keeping the rows the previous step already holds.
fn fill_window(
    l: &StreamLayer,
    g: &Geometry,
    src: &[u8],
    window: &mut [u8],
    first: isize,
    previous: Option<isize>,
    pad: u8,
) {
    let d = l.params.input;
    let (in_rows, in_cols, c) = (d.rows as isize, d.cols as usize, g.cin);
    let rb = g.row_bytes;
    for wr in 0..g.wrows {
        let ir = first + wr as isize;
        let dst = wr * rb;
        if let Some(p) = previous {
            let old = ir - p;
            if old >= wr as isize && old < g.wrows as isize {
                if old > wr as isize {
                    window.copy_within(old as usize * rb..(old as usize + 1) * rb, dst);
                }
                continue;
            }
        }
        let row = &mut window[dst..dst + rb];
        if ir < 0 || ir >= in_rows {
            row.fill(pad);
            continue;
        }
        let left = (g.pl * c).min(rb);
        row[..left].fill(pad);
        let n = (in_cols * c).min(rb - left);
        let start = ir as usize * in_cols * c;
        row[left..left + n].copy_from_slice(&src[start..start + n]);
        row[left + n..].fill(pad);
    }
}

/// Index (in 16-bit halves) of reduction index `k` of cell `slot` in an
/// activation block of `cells` cells.
#[inline(always)]
fn offset(cells: usize, slot: usize, k: usize) -> usize {
    let (u, q) = (k / 4, k % 4);
    ((u * cells + slot) * 2 + (q & 1)) * 2 + (q >> 1)
}

/// Input and plain convolution with the M4 GEMM: the window's receptive
/// fields of each cell become an activation block (`koff`: the block
/// offset of each reduction index), then each filter runs over every block.
#[allow(clippy::too_many_arguments)]
fn conv_fast(
    model: &StreamModel,
    l: &StreamLayer,
    g: &Geometry,
    window: &[u8],
    real: usize,
    koff: &[u16],
    act: &mut [u32],
    target: &mut Target,
) {
    let units = m4::units(g.k);
    let bs = units * CELLS * 2;
    let run = g.kw * g.cin;
    for row in 0..real {
        for x in 0..g.cols {
            let (blk, slot) = (x / CELLS, x % CELLS);
            let block = cast::halves(&mut act[(row * g.blocks + blk) * bs..][..bs]);
            let block = &mut block[4 * slot..];
            let mut offs = koff.iter();
            for i in 0..g.kh {
                let start = (row * g.sr + i) * g.row_bytes + x * g.sc * g.cin;
                for (&v, &o) in window[start..start + run].iter().zip(offs.by_ref()) {
                    block[o as usize] = v as u16;
                }
            }
            for &o in offs {
                block[o as usize] = 0;
            }
        }
    }
    gemm_rows(model, l, g, model.weights(l).data, real, act, bs, target);
}

/// Where a step's potentials go: rows of accumulators for the tail, or
/// (4-bit levels, no pooling, full blocks) straight to levels.
enum Target<'t> {
    Rows(&'t mut [i32]),
    /// The step's first output row in the level buffer, the tail's table.
    Levels {
        dst: &'t mut [u8],
        table: &'t [i32],
        saturate: bool,
    },
}

/// Every filter over every activation block of the step's rows.
#[allow(clippy::too_many_arguments)]
fn gemm_rows(
    model: &StreamModel,
    l: &StreamLayer,
    g: &Geometry,
    weights: &[u8],
    real: usize,
    act: &[u32],
    bs: usize,
    target: &mut Target,
) {
    let bits = l.params.weights_bits;
    let fb = m4::filter_bytes(g.k, bits);
    let words = m4::filter_words(g.k, bits);
    let f_n = g.filters;
    // The slice runs to the end of the model bytes: an 8-bit filter may end
    // inside its last word (the activations past K are zero).
    let start = weights.as_ptr() as usize - model.bytes().as_ptr() as usize;
    let all = &model.bytes()[start..];
    for row in 0..real {
        for blk in 0..g.blocks {
            let a = &act[(row * g.blocks + blk) * bs..][..bs];
            match target {
                Target::Rows(rows) => {
                    let out = &mut rows[(row * g.blocks + blk) * f_n * CELLS..][..f_n * CELLS];
                    m4::gemm_filters::<CELLS>(m4::Operands::new(bits, all, fb, words, f_n, a), out);
                }
                Target::Levels {
                    dst,
                    table,
                    saturate,
                } => {
                    let out = &mut dst[(row * g.cols + blk * CELLS) * f_n..];
                    let g = m4::Operands::new(bits, all, fb, words, f_n, a);
                    match saturate {
                        true => m4::gemm_levels::<true>(g, table, out, f_n),
                        false => m4::gemm_levels::<false>(g, table, out, f_n),
                    }
                }
            }
        }
    }
}

/// Separable layer with the M4 kernels: depthwise pairs (a cell of the
/// step's first row with the cell below it) into activation blocks, then
/// the pointwise GEMM.
fn separable_fast(
    model: &StreamModel,
    l: &StreamLayer,
    g: &Geometry,
    window: &[u8],
    real: usize,
    act: &mut [u32],
    target: &mut Target,
) {
    let shape = ConvShape {
        input: l.params.input,
        output: l.shapes().conv,
        kernel: l.params.kernel,
        stride: l.params.stride,
        pads: l.shapes().conv_pads,
    };
    let Some(mut table) = DwTable::new(&shape, g.wcols, g.sr) else {
        return;
    };
    let dw = model.weights(l);
    let quads = g.cin / 4;
    let bs = quads * CELLS * 2;
    let stride = g.sc * g.cin;
    let (top, bottom) = act.split_at_mut(g.blocks * bs);
    for blk in 0..g.blocks {
        let cells = (g.cols - blk * CELLS).min(CELLS);
        let at = blk * bs;
        m4::dw_quads(
            window,
            blk * CELLS * stride,
            stride,
            cells,
            &mut table,
            dw.data,
            dw.bits,
            quads,
            &mut top[at..at + bs],
            &mut bottom[at..at + bs],
            CELLS * 2,
        );
    }
    let pw = model.pointwise(l);
    gemm_rows(model, l, g, pw.data, real, act, bs, target);
}

/// Plain convolution (input or not) read from the engine's stored kernel.
fn conv_portable(
    model: &StreamModel,
    l: &StreamLayer,
    g: &Geometry,
    window: &[u8],
    real: usize,
    rows: &mut [i32],
) {
    let w = model.weights(l);
    let f_n = g.filters;
    for row in 0..real {
        for x in 0..g.cols {
            let (blk, slot) = (x / CELLS, x % CELLS);
            for f in 0..f_n {
                let mut acc = 0i32;
                for i in 0..g.kh {
                    let start = (row * g.sr + i) * g.row_bytes + x * g.sc * g.cin;
                    for (jc, &v) in window[start..start + g.kw * g.cin].iter().enumerate() {
                        let k = i * g.kw * g.cin + jc;
                        acc += v as i32 * w.get(stored_index(l, g, k, f)) as i32;
                    }
                }
                rows[((row * g.blocks + blk) * f_n + f) * CELLS + slot] = acc;
            }
        }
    }
}

/// Separable layer read from the engine's stored kernels.
#[allow(clippy::too_many_arguments)]
fn separable_portable(
    model: &StreamModel,
    l: &StreamLayer,
    g: &Geometry,
    window: &[u8],
    real: usize,
    dw: &mut [i32],
    rows: &mut [i32],
) {
    let w = model.weights(l);
    let pw = model.pointwise(l);
    let (c_n, f_n) = (g.cin, g.filters);
    for row in 0..real {
        for x in 0..g.cols {
            let cell = &mut dw[(row * g.cols + x) * c_n..][..c_n];
            for (c, acc) in cell.iter_mut().enumerate() {
                let mut s = 0i32;
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let v = window[(row * g.sr + i) * g.row_bytes + (x * g.sc + j) * c_n + c];
                        let stored = ((g.kh - 1 - i) * g.kw + (g.kw - 1 - j)) * c_n + c;
                        s += v as i32 * w.get(stored) as i32;
                    }
                }
                *acc = s;
            }
            let (blk, slot) = (x / CELLS, x % CELLS);
            for f in 0..f_n {
                let acc: i32 = cell
                    .iter()
                    .enumerate()
                    .map(|(c, &d)| d * pw.get(c * f_n + f) as i32)
                    .sum();
                rows[((row * g.blocks + blk) * f_n + f) * CELLS + slot] = acc;
            }
        }
    }
}

/// Fully connected layer over its whole input (HWC levels): potentials at
/// `rows[f * CELLS]`.
fn dense(
    model: &StreamModel,
    l: &StreamLayer,
    g: &Geometry,
    src: &[u8],
    act: &mut [u32],
    rows: &mut [i32],
) {
    let input = &src[..g.k];
    if l.fast {
        let units = m4::units(g.k);
        for u in 0..units {
            let mut b = [0u8; 4];
            for (q, v) in b.iter_mut().enumerate() {
                *v = input.get(4 * u + q).copied().unwrap_or(0);
            }
            let v = u32::from_le_bytes(b);
            act[2 * u] = m4::isa::uxtb16(v);
            act[2 * u + 1] = m4::isa::uxtb16_ror8(v);
        }
        let bits = l.params.weights_bits;
        let fb = m4::filter_bytes(g.k, bits);
        let words = m4::filter_words(g.k, bits);
        let start = l.weights.start as usize;
        let all = &model.bytes()[start..];
        let f_n = g.filters;
        let ops = m4::Operands::new(bits, all, fb, words, f_n, &act[..2 * units]);
        m4::gemm_filters::<1>(ops, &mut rows[..f_n]);
        // Spread to the tail's [filter][CELLS] layout, last first.
        for f in (0..f_n).rev() {
            rows[f * CELLS] = rows[f];
        }
    } else {
        let w = model.weights(l);
        for f in 0..g.filters {
            rows[f * CELLS] = input
                .iter()
                .enumerate()
                .map(|(k, &v)| v as i32 * w.get(stored_index(l, g, k, f)) as i32)
                .sum();
        }
    }
}

/// Pooling of a layer's conv rows as they come.
enum Pooler<'p> {
    None,
    Max {
        pool: MaxPool,
        conv_rows: usize,
        conv_cols: usize,
        out_rows: usize,
        out_cols: usize,
        blocks: usize,
        filters: usize,
        slots: usize,
        open: &'p mut [i32],
    },
    Sum {
        sums: &'p mut [i64],
        cols: usize,
    },
}

impl<'p> Pooler<'p> {
    fn new(l: &StreamLayer, g: &Geometry, open: &'p mut [i32], sums: &'p mut [i64]) -> Pooler<'p> {
        match l.params.pooling {
            Pooling::None => Pooler::None,
            Pooling::Max { size, stride } => {
                let out = l.shapes().output;
                Pooler::Max {
                    pool: MaxPool {
                        size,
                        stride,
                        pad_before: l.shapes().pool_pads,
                    },
                    conv_rows: g.rows,
                    conv_cols: g.cols,
                    out_rows: out.rows as usize,
                    out_cols: out.cols as usize,
                    blocks: (out.cols as usize).div_ceil(CELLS),
                    filters: g.filters,
                    slots: Geometry::pool_slots(l.params.pooling),
                    open,
                }
            }
            Pooling::GlobalAverage => {
                sums.fill(0);
                Pooler::Sum { sums, cols: g.cols }
            }
        }
    }

    /// Takes conv row `cr` (`[block][filter][CELLS]`, scaled by `2^shift`).
    fn push(&mut self, sink: &mut Sink, cr: usize, data: &[i32], shift: u32) {
        match self {
            Pooler::None => sink.emit(cr, sink.out_cols, data, shift),
            Pooler::Sum { sums, cols } => {
                // The engine's global sum saturates at every cell it adds,
                // in row-major order (see `crate::tail`).
                let f_n = sums.len();
                for blk in 0..cols.div_ceil(CELLS) {
                    let n = (*cols - blk * CELLS).min(CELLS);
                    let block = &data[blk * f_n * CELLS..][..f_n * CELLS];
                    for (s, acc) in sums.iter_mut().zip(block.chunks_exact(CELLS)) {
                        // `s` stays within 20 bits: a saturating 32-bit add
                        // (QADD) then SSAT give the exact 64-bit result.
                        let mut t = *s as i32;
                        for &v in &acc[..n] {
                            t = m4::ssat20(t.saturating_add(v >> shift));
                        }
                        *s = t as i64;
                    }
                }
            }
            Pooler::Max {
                pool,
                conv_rows,
                conv_cols,
                out_rows,
                out_cols,
                blocks,
                filters,
                slots,
                open,
            } => {
                let (ps, sr, pt) = (
                    pool.size.rows as usize,
                    pool.stride.rows as usize,
                    pool.pad_before.0,
                );
                let (pc, sc, pl) = (
                    pool.size.cols as usize,
                    pool.stride.cols as usize,
                    pool.pad_before.1,
                );
                let f_n = *filters;
                let row_len = *blocks * f_n * CELLS;
                // Pooled rows whose window holds conv row `cr`.
                let lo = (cr + pt + 1).saturating_sub(ps).div_ceil(sr);
                let hi = ((cr + pt) / sr).min(*out_rows - 1);
                for o in lo..=hi {
                    let first = (o * sr).saturating_sub(pt);
                    let last = (o * sr + ps - 1).saturating_sub(pt).min(*conv_rows - 1);
                    let acc = &mut open[(o % *slots) * row_len..][..row_len];
                    if cr == first {
                        acc.fill(i32::MIN);
                    }
                    for oc in 0..*out_cols {
                        let (oblk, oslot) = (oc / CELLS, oc % CELLS);
                        for j in 0..pc {
                            let Some(cc) = (oc * sc + j).checked_sub(pl) else {
                                continue;
                            };
                            if cc >= *conv_cols {
                                break;
                            }
                            let (blk, slot) = (cc / CELLS, cc % CELLS);
                            for f in 0..f_n {
                                let m = &mut acc[(oblk * f_n + f) * CELLS + oslot];
                                *m = (*m).max(data[(blk * f_n + f) * CELLS + slot]);
                            }
                        }
                    }
                    if cr == last {
                        sink.emit(o, *out_cols, acc, shift);
                    }
                }
            }
        }
    }

    /// Emits what is left (the global sum), with `rows` as scratch.
    fn finish(&mut self, sink: &mut Sink, rows: &mut [i32], _shift: u32) {
        if let Pooler::Sum { sums, .. } = self {
            for (f, &s) in sums.iter().enumerate() {
                rows[f * CELLS] = s.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
            }
            sink.emit(0, 1, rows, 0);
        }
    }
}
