//! The neural part of each layer kind, computed by interchangeable
//! [`Backend`]s that agree bit for bit:
//!
//! - [`reference`]: a plain dense kernel that gathers every input of every
//!   neuron, the definition;
//! - [`event`]: visits only non-zero input levels ("spikes") and scatters
//!   their contributions, as the NSoC does;
//! - [`fast`]: one integer matrix product per layer, with SIMD micro-kernels
//!   where the CPU has them.
//!
//! Each writes the potentials of the neural part, before pooling, as a
//! [`Grid`]; [`crate::tail`] then pools, saturates and activates them, the
//! same way for every backend. A backend needs the layer's weights unpacked
//! into one canonical order ([`unpack_weights`]) and, for the fast one, a
//! packed operand and level cuts: a [`Preparation`] supplies them, either
//! computed on the fly into caller buffers (the [`Backend`] itself, no heap)
//! or prepared once (the host runtime).

pub mod event;
#[allow(unsafe_code)] // SIMD intrinsics behind checked CPU features.
pub mod fast;
// Cortex-M4 DSP kernels through `asm!` (a portable model elsewhere).
#[allow(unsafe_code)]
pub mod m4;
pub mod reference;

use crate::dims::{Dims, Window};
use crate::inference::ForwardError;
use crate::layer::LayerKind;
use crate::model::ValidLayer;

pub use fast::Simd;

/// How the potentials of a layer are computed. Every backend gives the same
/// integers; they differ in speed and in what they need prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Dense gather over every input, the obvious definition.
    Reference,
    /// Scatter of non-zero inputs only.
    Event,
    /// One 16-bit integer matrix product per layer with the given SIMD
    /// instruction set, where every operand fits 16 bits (otherwise the
    /// event backend runs the layer).
    Fast(Simd),
}

impl Backend {
    /// The name of the backend, as `--kernel` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Reference => "reference",
            Backend::Event => "event",
            Backend::Fast(_) => "fast",
        }
    }
}

/// Potentials of the neural part of a layer: the `f` potentials of conv
/// output cell `k` (HWC order) are `potentials[k * stride..][..f]`.
#[derive(Clone, Copy, Debug)]
pub struct Grid<'p> {
    pub potentials: &'p [i32],
    /// Cells apart: `f`, or the fast kernel's padded filter count.
    pub stride: usize,
}

/// The geometry of a sliding-window (convolution or depthwise) product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub input: Dims,
    /// Rows and cols of the output; channels = filters (or input channels
    /// for a depthwise product).
    pub output: Dims,
    pub kernel: Window,
    pub stride: Window,
    /// Padding (rows, cols) before the first input row and col.
    pub pads: (usize, usize),
}

impl ConvShape {
    /// The convolution geometry of a layer (use [`Self::with_output_channels`]
    /// for the depthwise part of a separable layer).
    pub fn of(layer: &ValidLayer) -> ConvShape {
        let p = layer.params();
        ConvShape {
            input: p.input,
            output: layer.shapes.conv,
            kernel: p.kernel,
            stride: p.stride,
            pads: layer.shapes.conv_pads,
        }
    }

    /// The same geometry with `channels` output channels.
    pub fn with_output_channels(mut self, channels: u32) -> ConvShape {
        self.output.channels = channels;
        self
    }

    /// Input cell under kernel tap (`i`, `j`) of output cell (`oy`, `ox`),
    /// `None` when it lies in the padding.
    #[inline(always)]
    pub fn input_cell(&self, oy: usize, ox: usize, i: usize, j: usize) -> Option<(usize, usize)> {
        let r = (oy * self.stride.rows as usize + i).checked_sub(self.pads.0)?;
        let c = (ox * self.stride.cols as usize + j).checked_sub(self.pads.1)?;
        (r < self.input.rows as usize && c < self.input.cols as usize).then_some((r, c))
    }

    /// The kernel taps of output cell (`oy`, `ox`) that fall inside the
    /// input, a rectangle: rows `i_lo..i_hi` and cols `j_lo..j_hi` (empty
    /// ranges where none does). Tap (`i`, `j`) in it reads input cell
    /// (`oy * stride + i - pad`, `ox * stride + j - pad`).
    #[inline(always)]
    pub fn taps_inside(&self, oy: usize, ox: usize) -> TapsInside {
        let axis = |o: usize, stride: u32, pad: usize, k: u32, len: u32| {
            let start = o * stride as usize;
            let lo = pad.saturating_sub(start).min(k as usize);
            let hi = (len as usize + pad)
                .saturating_sub(start)
                .min(k as usize)
                .max(lo);
            (lo, hi)
        };
        let (i_lo, i_hi) = axis(
            oy,
            self.stride.rows,
            self.pads.0,
            self.kernel.rows,
            self.input.rows,
        );
        let (j_lo, j_hi) = axis(
            ox,
            self.stride.cols,
            self.pads.1,
            self.kernel.cols,
            self.input.cols,
        );
        TapsInside {
            rows: i_lo..i_hi,
            cols: j_lo..j_hi,
            // Where the rectangle is empty, (0, 0) stands in (never read).
            first: if i_lo < i_hi && j_lo < j_hi {
                (
                    oy * self.stride.rows as usize + i_lo - self.pads.0,
                    ox * self.stride.cols as usize + j_lo - self.pads.1,
                )
            } else {
                (0, 0)
            },
        }
    }

    /// Output cell that kernel tap `i` (resp. `j`) of padded-frame row `pr`
    /// (resp. col) feeds, along one axis.
    #[inline(always)]
    pub fn output_of(padded: usize, tap: usize, stride: u32, out_len: u32) -> Option<usize> {
        let d = padded.checked_sub(tap)?;
        let s = stride as usize;
        if d % s != 0 {
            return None;
        }
        let o = d / s;
        (o < out_len as usize).then_some(o)
    }
}

/// The kernel taps of one output cell that fall inside the input
/// ([`ConvShape::taps_inside`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapsInside {
    /// Kernel rows and cols inside the input.
    pub rows: core::ops::Range<usize>,
    pub cols: core::ops::Range<usize>,
    /// The input cell (row, col) of tap (`rows.start`, `cols.start`).
    pub first: (usize, usize),
}

impl TapsInside {
    /// Whether every tap of a `kh` x `kw` kernel is inside.
    #[inline(always)]
    pub fn whole(&self, kh: usize, kw: usize) -> bool {
        self.rows == (0..kh) && self.cols == (0..kw)
    }
}

/// A layer's weights unpacked to one i8 per weight, in the kernels' order.
#[derive(Clone, Copy, Debug)]
pub struct KernelWeights<'w> {
    /// Input and plain convolution: (kh, kw, cin, f) for cross-correlation.
    /// Separable: depthwise (kh, kw, cin) for cross-correlation.
    /// Fully connected: (rows * cols * channels of the input in HWC order, units).
    pub main: &'w [i8],
    /// Separable: pointwise (cin, f). Empty for other kinds.
    pub pointwise: &'w [i8],
}

/// Unpacks a layer's weights into `out` (at least `unpacked_len()` long) in
/// the kernels' order: Akida's stored (flipped) convolution kernels are
/// flipped back so every kernel computes a cross-correlation, and the fully
/// connected rows move from Akida's (C, W, H) flattening to HWC.
pub fn unpack_weights<'w>(layer: &ValidLayer, out: &'w mut [i8]) -> KernelWeights<'w> {
    let w = layer.layer.weights();
    let n_main = w.count();
    let (main, rest) = out.split_at_mut(n_main);
    let [kh, kw, cin, f] = w.shape.map(|d| d as usize);
    let p = layer.params();
    match p.kind {
        LayerKind::InputConvolutional => {
            for (k, slot) in main.iter_mut().enumerate() {
                *slot = w.get(k);
            }
        }
        LayerKind::Convolutional | LayerKind::SeparableConvolutional => {
            // stored[i][j][c][f] holds the flipped kernel.
            let plane = cin * f;
            for i in 0..kh {
                for j in 0..kw {
                    let src = ((kh - 1 - i) * kw + (kw - 1 - j)) * plane;
                    let dst = (i * kw + j) * plane;
                    for k in 0..plane {
                        main[dst + k] = w.get(src + k);
                    }
                }
            }
        }
        LayerKind::FullyConnected => {
            let d = p.input;
            let (rows, cols, ch) = (d.rows as usize, d.cols as usize, d.channels as usize);
            let units = f;
            for c in 0..ch {
                for col in 0..cols {
                    for row in 0..rows {
                        let src = (c * cols * rows + col * rows + row) * units;
                        let dst = d.index(row, col, c) * units;
                        for u in 0..units {
                            main[dst + u] = w.get(src + u);
                        }
                    }
                }
            }
        }
    }
    let pointwise: &'w [i8] = match layer.layer.pointwise() {
        Some(pw) => {
            let n = pw.count();
            let dst = &mut rest[..n];
            for (k, slot) in dst.iter_mut().enumerate() {
                *slot = pw.get(k);
            }
            dst
        }
        None => &[],
    };
    KernelWeights { main, pointwise }
}

/// What a backend needs for one layer beyond the layer itself.
#[derive(Clone, Copy, Debug)]
pub struct Prepared<'p> {
    /// The backend that runs the layer.
    pub backend: Backend,
    pub weights: KernelWeights<'p>,
    /// The fast kernel's operands; present iff `backend` is [`Backend::Fast`].
    pub fast: Option<fast::FastOperands<'p>>,
}

/// Caller buffers a [`Preparation`] may fill for one layer.
pub struct PrepBuffers<'b> {
    /// Unpacked weights (`WorkspaceSizes::weights`).
    pub weights: &'b mut [i8],
    /// The fast kernel's packed operand (`WorkspaceSizes::packed`).
    pub packed: &'b mut [i16],
    /// The fast kernel's level cuts (`WorkspaceSizes::cuts`).
    pub cuts: &'b mut [i32],
}

/// Supplies each layer's backend and prepared data to
/// [`crate::inference::forward`].
pub trait Preparation {
    /// The backend and data for layer `index` on `input` (its input levels),
    /// borrowed from `self` or written into `buffers`.
    fn prepare<'s>(
        &'s self,
        index: usize,
        layer: &ValidLayer,
        input: &[u8],
        buffers: &'s mut PrepBuffers,
    ) -> Result<Prepared<'s>, ForwardError>;
}

/// A backend prepares each layer on the fly into the caller's buffers: no
/// heap, at the cost of unpacking (and, for the fast backend, packing) the
/// weights on every call.
impl Preparation for Backend {
    fn prepare<'s>(
        &'s self,
        _index: usize,
        layer: &ValidLayer,
        _input: &[u8],
        buffers: &'s mut PrepBuffers,
    ) -> Result<Prepared<'s>, ForwardError> {
        let p = layer.params();
        need("weights", p.unpacked_len(), buffers.weights.len())?;
        let PrepBuffers {
            weights,
            packed,
            cuts,
        } = buffers;
        let weights = unpack_weights(layer, weights);
        let Backend::Fast(_) = *self else {
            return Ok(Prepared {
                backend: *self,
                weights,
                fast: None,
            });
        };
        match fast::FastPlan::of(layer, &weights) {
            Some(plan) => {
                need("packed", plan.packed_len, packed.len())?;
                need("cuts", plan.cuts_len, cuts.len())?;
                let operands = fast::FastOperands::build(layer, plan, &weights, packed, cuts);
                Ok(Prepared {
                    backend: *self,
                    weights,
                    fast: Some(operands),
                })
            }
            None => Ok(Prepared {
                backend: Backend::Event,
                weights,
                fast: None,
            }),
        }
    }
}

/// A buffer-size check.
pub(crate) fn need(buffer: &'static str, needed: usize, found: usize) -> Result<(), ForwardError> {
    if found < needed {
        return Err(ForwardError::Workspace {
            buffer,
            needed,
            found,
        });
    }
    Ok(())
}

/// Potentials of the neural part of `layer` for `input`, computed by the
/// prepared backend: into `scratch` (conv potentials, then the depthwise
/// potentials of a separable layer), with `a` for the fast kernel's left
/// operand. Buffers sized by [`crate::WorkspaceSizes`]. Conv cells `cells`
/// only (a band, [`crate::tail::band_cells`]) with the fast kernel; the
/// others compute every cell (`cells` must be all of them).
#[inline(always)]
pub fn potentials<'s>(
    layer: &ValidLayer,
    prepared: &Prepared,
    input: &[u8],
    cells: core::ops::Range<usize>,
    a: &mut [i16],
    scratch: &'s mut [i32],
) -> Grid<'s> {
    let weights = &prepared.weights;
    let p = layer.params();
    let reference = match (prepared.backend, &prepared.fast) {
        (Backend::Fast(simd), Some(ops)) => {
            return fast::potentials(layer, ops, weights, simd, input, cells, a, scratch)
        }
        // A fast backend without operands cannot happen (see `Prepared`);
        // the event kernel computes the same potentials.
        (backend, _) => backend == Backend::Reference,
    };
    let shape = ConvShape::of(layer);
    let all = shape.output.rows as usize * shape.output.cols as usize;
    assert!(
        cells == (0..all),
        "only the fast kernel computes a band of cells"
    );
    let n = shape.output.len();
    let (out, rest) = scratch.split_at_mut(n);
    match p.kind {
        LayerKind::InputConvolutional | LayerKind::Convolutional if reference => {
            reference::convolution(&shape, weights.main, input, p.padding_value, out)
        }
        LayerKind::InputConvolutional | LayerKind::Convolutional => {
            event::convolution(&shape, weights.main, input, p.padding_value, out)
        }
        LayerKind::SeparableConvolutional => {
            let dw_shape = shape.with_output_channels(p.input.channels);
            let depthwise = &mut rest[..dw_shape.output.len()];
            let cin = p.input.channels as usize;
            if reference {
                reference::depthwise(&dw_shape, weights.main, input, depthwise);
                reference::pointwise(depthwise, cin, weights.pointwise, out);
            } else {
                event::depthwise(&dw_shape, weights.main, input, depthwise);
                event::pointwise(depthwise, cin, weights.pointwise, out);
            }
        }
        LayerKind::FullyConnected if reference => {
            reference::fully_connected(weights.main, input, out)
        }
        LayerKind::FullyConnected => event::fully_connected(weights.main, input, out),
    }
    Grid {
        potentials: out,
        stride: p.filters as usize,
    }
}
