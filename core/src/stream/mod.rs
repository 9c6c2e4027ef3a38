//! Row-streaming inference for a microcontroller: the same integers as
//! [`crate::forward`], in a small static workspace.
//!
//! - Weights stay packed where the model lies (flash, or the arena a model
//!   was loaded into). The layers the M4 kernels run ([`crate::kernels::m4`])
//!   have their weights rewritten once, in place and at the same size, into
//!   the kernels' layout ([`prepare_in_place`]; for a model embedded at build
//!   time the build script does it, [`prepare`]).
//! - A layer never holds all its potentials: it computes two output rows at
//!   a time from a window of input rows, pools, saturates and activates them,
//!   and writes levels. When it is safe, a layer writes its levels over its
//!   own input (only the rows already copied into the window), so a chain of
//!   equal-sized layers needs one level buffer.
//! - Everything lives in one caller-provided `u64` workspace of
//!   [`StreamSizes::words`] words, carved per layer.
//!
//! A [`StreamModel`] is only made from a model that passed validation
//! ([`prepare_in_place`], [`prepare`]) or from the parts such a preparation
//! produced ([`StreamModel::from_parts`], for a model prepared by a build
//! script).

mod cast;
mod plan;
mod run;

use serde::{Deserialize, Serialize};

use crate::dims::Dims;
use crate::format::FormatError;
use crate::inference::{ForwardError, LayerOutput};
use crate::layer::{LayerKind, LayerParams, LayerShapes};
use crate::weights::{F32Values, I32Values, PackedWeights};

#[cfg(feature = "std")]
pub use plan::{prepare, Prepared};
pub use plan::{prepare_in_place, workspace_bytes};

/// Output rows a conv-like layer computes per step (the two cells of a
/// depthwise pair are one below the other).
pub const STEP_ROWS: usize = 2;

/// A byte range of the model bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    /// The bytes of the span; empty if it is out of range.
    pub fn of<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let (s, n) = (self.start as usize, self.len as usize);
        bytes.get(s..s + n).unwrap_or(&[])
    }

    fn end(&self) -> usize {
        self.start as usize + self.len as usize
    }
}

/// Where a layer reads its input and writes its levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Buffer {
    /// The model input (the image), read only.
    Input,
    /// Level buffer A.
    A,
    /// Level buffer B.
    B,
}

/// One layer as the streaming engine runs it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamLayer {
    pub name: Span,
    pub params: LayerParams,
    /// The kernel: in the M4 layout when `fast` (the depthwise kernel of a
    /// separable layer always in the engine's order).
    pub weights: Span,
    /// The pointwise kernel of a separable layer (M4 layout when `fast`).
    pub pointwise: Option<Span>,
    pub threshold: Span,
    pub act_step: Span,
    /// Whether the M4 kernels run the layer (its weights were rewritten).
    pub fast: bool,
    /// Whether the levels come from [`crate::kernels::m4::level_fast`]
    /// (every threshold, divisor and potential within its range).
    pub fast_tail: bool,
    pub src: Buffer,
    pub dst: Buffer,
}

impl StreamLayer {
    /// Sizes of the layer (checked when the model was made).
    pub fn shapes(&self) -> LayerShapes {
        self.params.shapes().unwrap_or(LayerShapes {
            conv: Dims::new(1, 1, 1),
            output: Dims::new(1, 1, 1),
            conv_pads: (0, 0),
            pool_pads: (0, 0),
        })
    }

    /// Left shift of the fast kernels' accumulators.
    pub fn shift(&self) -> u32 {
        match self.fast {
            true => crate::kernels::m4::shift(self.params.weights_bits),
            false => 0,
        }
    }
}

/// Why a model cannot be prepared for streaming.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("the model has {layers} layers, this build holds at most {capacity}")]
    TooManyLayers { layers: usize, capacity: usize },
    #[error("rewriting the weights of layer {layer} needs {needed} bytes of workspace, {available} available")]
    Transform {
        layer: usize,
        needed: usize,
        available: usize,
    },
    #[error("layer {layer}: {what}")]
    Inconsistent { layer: usize, what: &'static str },
}

/// Workspace a streamed model needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamSizes {
    /// Bytes of the level buffers A and B.
    pub levels: [usize; 2],
    /// i32 potentials of a last layer without activation.
    pub output: usize,
    /// u64 words of the largest layer's scratch (window, activations,
    /// potential rows, pooling, tables).
    pub scratch: usize,
    /// Bytes the in-place weight rewrite borrows at load time.
    pub transform: usize,
}

/// `u64` words holding `bytes` bytes.
const fn words_of(bytes: usize) -> usize {
    bytes.div_ceil(8)
}

impl StreamSizes {
    /// The whole workspace in `u64` words.
    pub fn words(&self) -> usize {
        words_of(self.levels[0])
            + words_of(self.levels[1])
            + words_of(4 * self.output)
            + self.scratch
    }

    /// The whole workspace in bytes.
    pub fn bytes(&self) -> usize {
        8 * self.words()
    }
}

/// A validated model ready to stream: its bytes (kernel layout where the
/// M4 kernels run) and its layers.
#[derive(Clone, Copy, Debug)]
pub struct StreamModel<'a> {
    bytes: &'a [u8],
    layers: &'a [StreamLayer],
    sizes: StreamSizes,
}

impl<'a> StreamModel<'a> {
    /// A model from the parts [`prepare`] produced (a model prepared at
    /// build time): the ranges and shapes are checked, the variables were
    /// validated when it was prepared.
    pub fn from_parts(
        bytes: &'a [u8],
        layers: &'a [StreamLayer],
    ) -> Result<StreamModel<'a>, PrepareError> {
        if layers.is_empty() {
            return Err(PrepareError::Format(FormatError::Invalid(
                crate::model::ModelError::Empty,
            )));
        }
        let mut previous: Option<Dims> = None;
        for (i, l) in layers.iter().enumerate() {
            let bad = |what| PrepareError::Inconsistent { layer: i, what };
            let shapes = l.params.shapes().ok_or(bad("empty output"))?;
            let spans = [
                Some(l.name),
                Some(l.weights),
                l.pointwise,
                Some(l.threshold),
                Some(l.act_step),
            ];
            if spans.iter().flatten().any(|s| s.end() > bytes.len()) {
                return Err(bad("a variable lies outside the model bytes"));
            }
            let f = l.params.filters as usize;
            if l.threshold.len as usize != 4 * f || l.act_step.len as usize != 4 * f {
                return Err(bad("thresholds or act_steps of the wrong length"));
            }
            let (main, pw) = l.params.weight_shapes();
            let bits = l.params.weights_bits;
            let count = |s: [u32; 4]| {
                crate::weights::checked_count(s).map(|n| crate::weights::packed_len(n, bits))
            };
            if count(main) != Some(l.weights.len as usize)
                || pw.map(count) != l.pointwise.map(|s| Some(s.len as usize))
            {
                return Err(bad("weights of the wrong length"));
            }
            if previous.is_some_and(|p| p != l.params.input) {
                return Err(bad("input does not match the previous output"));
            }
            previous = Some(shapes.output);
        }
        let sizes = plan::sizes(layers);
        Ok(StreamModel {
            bytes,
            layers,
            sizes,
        })
    }

    pub fn layers(&self) -> &'a [StreamLayer] {
        self.layers
    }

    /// The model bytes (weights in the kernel layout where `fast`).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Name of layer `i`.
    pub fn name(&self, i: usize) -> &'a str {
        core::str::from_utf8(self.layers[i].name.of(self.bytes)).unwrap_or("?")
    }

    /// The workspace the model needs.
    pub fn sizes(&self) -> StreamSizes {
        self.sizes
    }

    /// Input size (the image, HWC uint8).
    pub fn input(&self) -> Dims {
        self.layers[0].params.input
    }

    /// Output size of the model.
    pub fn output(&self) -> Dims {
        self.layers[self.layers.len() - 1].shapes().output
    }

    /// Whether the last layer outputs levels (true) or potentials.
    pub fn outputs_levels(&self) -> bool {
        self.layers[self.layers.len() - 1].params.activation
    }

    /// Multiply-accumulates of one inference: layer by layer, the products
    /// of the neural part (depthwise and pointwise for a separable layer).
    pub fn macs(&self, layer: usize) -> u64 {
        let l = &self.layers[layer];
        let p = &l.params;
        let conv = l.shapes().conv;
        let cells = conv.rows as u64 * conv.cols as u64;
        let k = p.kernel.area() as u64;
        let (cin, f) = (p.input.channels as u64, p.filters as u64);
        match p.kind {
            LayerKind::FullyConnected => p.input.len() as u64 * f,
            LayerKind::SeparableConvolutional => cells * cin * (k + f),
            _ => cells * k * cin * f,
        }
    }

    /// Bytes of the model variables (packed weights, thresholds, act_steps).
    pub fn variable_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                (l.weights.len
                    + l.pointwise.map_or(0, |s| s.len)
                    + l.threshold.len
                    + l.act_step.len) as usize
            })
            .sum()
    }

    pub(crate) fn weights(&self, l: &StreamLayer) -> PackedWeights<'a> {
        PackedWeights {
            bits: l.params.weights_bits,
            shape: l.params.weight_shapes().0,
            data: l.weights.of(self.bytes),
        }
    }

    pub(crate) fn pointwise(&self, l: &StreamLayer) -> PackedWeights<'a> {
        PackedWeights {
            bits: l.params.weights_bits,
            shape: l.params.weight_shapes().1.unwrap_or([0; 4]),
            data: l.pointwise.map_or(&[][..], |s| s.of(self.bytes)),
        }
    }

    pub(crate) fn threshold(&self, l: &StreamLayer) -> I32Values<&'a [u8]> {
        I32Values(l.threshold.of(self.bytes))
    }

    pub(crate) fn act_step(&self, l: &StreamLayer) -> F32Values<&'a [u8]> {
        F32Values(l.act_step.of(self.bytes))
    }
}

/// Runs a streamed model on one HWC uint8 input in `ws` (at least
/// [`StreamSizes::words`] words). `mark(i)` is called before the first
/// layer (`0`) and after each layer `i` (`i + 1`): the firmware counts
/// instructions between marks. Returns the last layer's output, borrowed
/// from the workspace.
pub fn forward_stream<'w>(
    model: &StreamModel,
    input: &[u8],
    ws: &'w mut [u64],
    mark: impl FnMut(usize),
) -> Result<LayerOutput<'w>, ForwardError> {
    run::forward(model, input, ws, mark)
}
