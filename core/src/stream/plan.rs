//! Preparing a model for streaming: which layers the M4 kernels run (their
//! layouts fit and their accumulators cannot overflow), the in-place rewrite
//! of those layers' weights, which level buffer each layer reads and writes,
//! and the workspace sizes.

use super::{
    cast, words_of, Buffer, PrepareError, Span, StreamLayer, StreamModel, StreamSizes, STEP_ROWS,
};
use crate::activation;
use crate::format;
use crate::kernels::m4::{self, CELLS, DW_LIMIT, MAX_TAPS, TAIL_LIMIT};
use crate::layer::{LayerKind, Pooling};
use crate::model::ValidLayer;
use crate::saturation::POTENTIAL_MAX;
use crate::weights::PackedWeights;

/// The geometry of a layer as the engine walks it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub kind: LayerKind,
    pub cin: usize,
    pub filters: usize,
    /// Rows and cols of the neural part's output.
    pub rows: usize,
    pub cols: usize,
    pub kh: usize,
    pub kw: usize,
    pub sr: usize,
    pub sc: usize,
    /// Padding before the first input row and col.
    pub pt: usize,
    pub pl: usize,
    /// Window: rows, cols (padded-frame columns in use), bytes per row.
    pub wrows: usize,
    pub wcols: usize,
    pub row_bytes: usize,
    /// Blocks of [`CELLS`] cells per output row.
    pub blocks: usize,
    pub steps: usize,
    /// Reduction length of the GEMM (conv: kh*kw*cin, separable: cin, dense: inputs).
    pub k: usize,
}

impl Geometry {
    pub fn of(l: &StreamLayer) -> Geometry {
        let p = &l.params;
        let s = l.shapes();
        let (rows, cols) = (s.conv.rows as usize, s.conv.cols as usize);
        let (kh, kw) = (p.kernel.rows as usize, p.kernel.cols as usize);
        let (sr, sc) = (p.stride.rows as usize, p.stride.cols as usize);
        let cin = p.input.channels as usize;
        let wcols = (cols - 1) * sc + kw;
        let k = match p.kind {
            LayerKind::FullyConnected => p.input.len(),
            LayerKind::SeparableConvolutional => cin,
            _ => kh * kw * cin,
        };
        Geometry {
            kind: p.kind,
            cin,
            filters: p.filters as usize,
            rows,
            cols,
            kh,
            kw,
            sr,
            sc,
            pt: s.conv_pads.0,
            pl: s.conv_pads.1,
            wrows: kh + sr,
            wcols,
            row_bytes: wcols * cin,
            blocks: cols.div_ceil(CELLS),
            steps: rows.div_ceil(STEP_ROWS),
            k,
        }
    }

    /// Pooled rows kept open at once by a max pooling.
    pub fn pool_slots(pooling: Pooling) -> usize {
        match pooling {
            Pooling::Max { size, stride } => {
                (size.rows as usize).div_ceil(stride.rows as usize) + 1
            }
            _ => 0,
        }
    }
}

/// The scratch regions of one layer, in elements.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Regions {
    pub window: usize,
    /// u32 words of activation blocks.
    pub act: usize,
    /// i32 potentials of one step (`[row][block][filter][CELLS]`).
    pub rows: usize,
    /// i32 depthwise potentials of the portable separable path.
    pub dw: usize,
    /// i32 threshold, divisor and divisor - 1 per filter (fast tail).
    pub table: usize,
    /// i32 open pooled rows of a max pooling.
    pub pool: usize,
    /// i64 sums of a global average pooling.
    pub sums: usize,
    /// u16 offsets of each reduction index in an activation block (fast
    /// convolution).
    pub koff: usize,
}

impl Regions {
    pub fn of(l: &StreamLayer, g: &Geometry) -> Regions {
        let f = g.filters;
        let mut r = Regions {
            table: if l.fast_tail { 3 * f } else { 0 },
            ..Regions::default()
        };
        let out = l.shapes().output;
        match g.kind {
            LayerKind::FullyConnected => {
                r.rows = f * CELLS;
                if l.fast {
                    r.act = 2 * m4::units(g.k);
                }
            }
            kind => {
                r.window = g.wrows * g.row_bytes;
                r.rows = STEP_ROWS * g.blocks * f * CELLS;
                let units = match kind {
                    LayerKind::SeparableConvolutional => g.cin / 4,
                    _ => m4::units(g.k),
                };
                if l.fast {
                    r.act = STEP_ROWS * g.blocks * units * CELLS * 2;
                    if kind != LayerKind::SeparableConvolutional {
                        r.koff = units * 4;
                    }
                } else if kind == LayerKind::SeparableConvolutional {
                    r.dw = STEP_ROWS * g.cols * g.cin;
                }
                match l.params.pooling {
                    Pooling::Max { .. } => {
                        r.pool = Geometry::pool_slots(l.params.pooling)
                            * (out.cols as usize).div_ceil(CELLS)
                            * f
                            * CELLS
                    }
                    Pooling::GlobalAverage => r.sums = f,
                    Pooling::None => {}
                }
            }
        }
        r
    }

    pub fn words(&self) -> usize {
        words_of(self.window)
            + words_of(4 * self.act)
            + words_of(4 * self.rows)
            + words_of(4 * self.dw)
            + words_of(4 * self.table)
            + words_of(4 * self.pool)
            + self.sums
            + words_of(2 * self.koff)
    }
}

/// The workspace of a list of layers.
pub(super) fn sizes(layers: &[StreamLayer]) -> StreamSizes {
    let mut s = StreamSizes::default();
    let last = layers.len() - 1;
    for (i, l) in layers.iter().enumerate() {
        let g = Geometry::of(l);
        s.scratch = s.scratch.max(Regions::of(l, &g).words());
        let out = l.shapes().output.len();
        if i == last && !l.params.activation {
            s.output = out;
        } else {
            let b = match l.dst {
                Buffer::A => 0,
                _ => 1,
            };
            s.levels[b] = s.levels[b].max(out);
        }
        if l.fast {
            let tensor = match l.params.kind {
                LayerKind::SeparableConvolutional => l.pointwise.map_or(0, |p| p.len),
                _ => l.weights.len,
            };
            s.transform = s.transform.max(tensor as usize);
        }
    }
    s
}

/// Index in the engine's stored kernel of GEMM weight `(k, f)` (`k` in the
/// kernels' reduction order: (row, col, channel) of a cross-correlation, or
/// the HWC input of a dense layer).
pub(super) fn stored_index(l: &StreamLayer, g: &Geometry, k: usize, f: usize) -> usize {
    let p = &l.params;
    let r = match p.kind {
        LayerKind::InputConvolutional | LayerKind::SeparableConvolutional => k,
        LayerKind::Convolutional => {
            let (tap, c) = (k / g.cin, k % g.cin);
            let (i, j) = (tap / g.kw, tap % g.kw);
            ((g.kh - 1 - i) * g.kw + (g.kw - 1 - j)) * g.cin + c
        }
        LayerKind::FullyConnected => {
            let d = p.input;
            let (h, w, c) = (d.rows as usize, d.cols as usize, d.channels as usize);
            let (cell, ch) = (k / c, k % c);
            let (row, col) = (cell / w, cell % w);
            ch * w * h + col * h + row
        }
    };
    r * g.filters + f
}

/// Largest `sum |w| * max_input` over the filters of a GEMM kernel.
fn gemm_bound(w: &PackedWeights, filters: usize, max_input: i64) -> i64 {
    let rows = w.count() / filters;
    (0..filters)
        .map(|f| {
            (0..rows)
                .map(|r| (w.get(r * filters + f) as i64).abs())
                .sum::<i64>()
                * max_input
        })
        .max()
        .unwrap_or(0)
}

/// `sum |w| * max_input` of a depthwise channel.
fn dw_bound(w: &PackedWeights, taps: usize, cin: usize, c: usize, max_input: i64) -> i64 {
    (0..taps)
        .map(|t| (w.get(t * cin + c) as i64).abs())
        .sum::<i64>()
        * max_input
}

/// The stream description of a validated layer (buffers set later).
fn describe(base: usize, l: &ValidLayer) -> StreamLayer {
    let span = |part: &[u8]| Span {
        start: (part.as_ptr() as usize - base) as u32,
        len: part.len() as u32,
    };
    let layer = &l.layer;
    let mut s = StreamLayer {
        name: span(layer.name.as_bytes()),
        params: layer.params,
        weights: span(layer.weights),
        pointwise: layer.weights_pw.map(span),
        threshold: span(layer.threshold.0),
        act_step: span(layer.act_step.0),
        fast: false,
        fast_tail: false,
        src: Buffer::Input,
        dst: Buffer::A,
    };
    let g = Geometry::of(&s);
    let p = &layer.params;
    let bits = p.weights_bits;
    let max_input = l.max_input as i64;
    let limit = i32::MAX as i64 >> m4::shift(bits);
    let w = layer.weights();
    // Largest |potential| of one output cell before saturation (None where
    // unbounded here), for the fast tail.
    let mut cell_bound: Option<i64> = None;
    s.fast = match p.kind {
        LayerKind::InputConvolutional | LayerKind::Convolutional | LayerKind::FullyConnected => {
            let bound = gemm_bound(&w, g.filters, max_input);
            cell_bound = Some(bound);
            m4::gemm_layout_fits(g.k, bits) && bound <= limit
        }
        LayerKind::SeparableConvolutional => {
            let taps = g.kh * g.kw;
            let pw = layer.pointwise();
            let fits =
                g.cin.is_multiple_of(4) && taps <= MAX_TAPS && m4::gemm_layout_fits(g.cin, bits);
            let dw = |c| dw_bound(&w, taps, g.cin, c, max_input);
            let filter_bounds = pw.filter(|_| fits).map(|pw| {
                (0..g.filters).map(move |f| {
                    (0..g.cin)
                        .map(|c| (pw.get(c * g.filters + f) as i64).abs() * dw(c))
                        .sum::<i64>()
                })
            });
            match filter_bounds {
                Some(bounds) if (0..g.cin).all(|c| dw(c) <= DW_LIMIT) => {
                    let bound = bounds.max().unwrap_or(0);
                    cell_bound = Some(bound);
                    bound <= limit
                }
                _ => false,
            }
        }
    };
    // Saturated potentials (see `LayerParams::saturates`) stay within 20
    // bits; the others are exact sums, bounded per cell.
    let potential = match p.saturates() {
        true => POTENTIAL_MAX as i64,
        false => cell_bound.unwrap_or(i64::MAX),
    };
    s.fast_tail = p.activation
        && potential <= TAIL_LIMIT
        && (0..g.filters).all(|f| {
            let t = layer.threshold.get(f) as i64;
            let d = activation::step_divisor(layer.act_step.get(f));
            t.abs() <= TAIL_LIMIT && (1..=TAIL_LIMIT).contains(&d)
        });
    s
}

/// Whether a layer may write its levels over its own input: every output
/// byte it writes lies before the first input row it has not yet copied
/// into its window.
fn in_place_ok(l: &StreamLayer, g: &Geometry) -> bool {
    let p = &l.params;
    let out = l.shapes().output;
    let (in_rows, in_row) = (
        p.input.rows as usize,
        (p.input.cols * p.input.channels) as usize,
    );
    let out_row = (out.cols * out.channels) as usize;
    let (max_size, max_stride, pool_pad) = match p.pooling {
        Pooling::GlobalAverage => return true,
        Pooling::Max { size, stride } => (
            size.rows as usize,
            stride.rows as usize,
            l.shapes().pool_pads.0,
        ),
        Pooling::None => (1, 1, 0),
    };
    if g.kind == LayerKind::FullyConnected {
        return true;
    }
    for step in 0..g.steps {
        let last_read = ((2 * step + 1) * g.sr + g.kh - 1) as isize - g.pt as isize;
        if last_read >= in_rows as isize - 1 {
            return true;
        }
        let conv_done = (STEP_ROWS * step + STEP_ROWS).min(g.rows);
        // Pooled rows whose window ends at or before the last conv row done.
        let emitted = (0..out.rows as usize)
            .take_while(|&o| {
                ((o * max_stride + max_size) as isize - 1 - pool_pad as isize)
                    .min(g.rows as isize - 1)
                    < conv_done as isize
            })
            .count();
        let read_bytes = (last_read + 1).max(0) as usize * in_row;
        if emitted * out_row > read_bytes {
            return false;
        }
    }
    true
}

/// Sets each layer's source and destination buffer.
fn assign_buffers(layers: &mut [StreamLayer]) {
    let mut current = Buffer::Input;
    for l in layers.iter_mut() {
        let g = Geometry::of(l);
        l.src = current;
        l.dst = match current {
            Buffer::Input => Buffer::A,
            b if in_place_ok(l, &g) => b,
            Buffer::A => Buffer::B,
            Buffer::B => Buffer::A,
        };
        current = l.dst;
    }
}

/// Rewrites one GEMM tensor of a fast layer into the M4 layout, in place.
fn rewrite(bytes: &mut [u8], span: Span, l: &StreamLayer, g: &Geometry, tmp: &mut [u8]) {
    let n = span.len as usize;
    let start = span.start as usize;
    let original = &mut tmp[..n];
    original.copy_from_slice(&bytes[start..start + n]);
    let bits = l.params.weights_bits;
    let stored = PackedWeights {
        bits,
        shape: [1, 1, 1, 1],
        data: original,
    };
    m4::write_gemm_layout(
        &mut bytes[start..start + n],
        bits,
        g.k,
        g.filters,
        |k, f| stored.get(stored_index(l, g, k, f)),
    );
}

/// Decodes and validates an `.akd` model in `bytes`, decides per layer how
/// it streams, and rewrites the weights of the fast layers in place (with
/// `tmp` as scratch, at least [`StreamSizes::transform`] bytes). `layers`
/// receives the layer descriptions the returned model borrows.
pub fn prepare_in_place<'a, const N: usize>(
    bytes: &'a mut [u8],
    layers: &'a mut heapless::Vec<StreamLayer, N>,
    tmp: &mut [u8],
) -> Result<StreamModel<'a>, PrepareError> {
    layers.clear();
    {
        let base = bytes.as_ptr() as usize;
        let model = format::decode(bytes)?;
        if model.len() > N {
            return Err(PrepareError::TooManyLayers {
                layers: model.len(),
                capacity: N,
            });
        }
        for l in model.layers() {
            // Cannot fail: the capacity was checked.
            let _ = layers.push(describe(base, &l));
        }
    }
    assign_buffers(layers);
    for (i, l) in layers.iter().enumerate() {
        if !l.fast {
            continue;
        }
        let g = Geometry::of(l);
        let span = match l.params.kind {
            LayerKind::SeparableConvolutional => l.pointwise.unwrap_or_default(),
            _ => l.weights,
        };
        if tmp.len() < span.len as usize {
            return Err(PrepareError::Transform {
                layer: i,
                needed: span.len as usize,
                available: tmp.len(),
            });
        }
        rewrite(bytes, span, l, &g, tmp);
    }
    let layers: &'a heapless::Vec<StreamLayer, N> = layers;
    let bytes: &'a [u8] = bytes;
    Ok(StreamModel {
        bytes,
        layers,
        sizes: sizes(layers),
    })
}

/// The bytes of a `u64` workspace, to lend to [`prepare_in_place`].
pub fn workspace_bytes(ws: &mut [u64]) -> &mut [u8] {
    cast::bytes(ws)
}

/// A model prepared on the host (a build script embedding it in firmware):
/// the rewritten bytes and the layer descriptions.
#[cfg(feature = "std")]
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub bytes: std::vec::Vec<u8>,
    pub layers: std::vec::Vec<StreamLayer>,
}

#[cfg(feature = "std")]
impl Prepared {
    /// The streamed model over these parts.
    pub fn model(&self) -> StreamModel<'_> {
        StreamModel {
            bytes: &self.bytes,
            layers: &self.layers,
            sizes: sizes(&self.layers),
        }
    }

    /// The layer descriptions in postcard, for [`StreamModel::from_parts`]
    /// after `postcard::from_bytes::<heapless::Vec<StreamLayer, N>>`.
    pub fn layers_postcard(&self) -> std::vec::Vec<u8> {
        let v: heapless::Vec<StreamLayer, { crate::model::MAX_LAYERS }> =
            self.layers.iter().copied().collect();
        postcard::to_stdvec(&v).unwrap_or_default()
    }
}

/// Prepares `.akd` bytes for streaming on the host.
#[cfg(feature = "std")]
pub fn prepare(akd: &[u8]) -> Result<Prepared, PrepareError> {
    let mut bytes = akd.to_vec();
    let mut layers = heapless::Vec::<StreamLayer, { crate::model::MAX_LAYERS }>::new();
    let mut tmp = std::vec![0u8; akd.len()];
    prepare_in_place(&mut bytes, &mut layers, &mut tmp)?;
    Ok(Prepared {
        bytes,
        layers: layers.iter().copied().collect(),
    })
}
