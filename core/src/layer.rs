//! One Akida 1.0 layer: a neural part (input convolution, convolution,
//! separable convolution or fully connected), optional pooling, and an
//! optional activation, with its integer variables.

use serde::{Deserialize, Serialize};

use crate::dims::{self, Dims, Padding, Window};
use crate::weights::{F32Slice, I32Slice, PackedWeights};

/// The neural part of a layer, as the engine's layer types name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LayerKind {
    /// First layer: uint8 image input, cross-correlation, padding filled with
    /// `padding_value` (the "HRC"); its potentials are not saturated.
    InputConvolutional,
    /// True convolution with the stored (flipped) kernel, zero padding.
    Convolutional,
    /// Depthwise (stored flipped) then pointwise, no rounding in between.
    SeparableConvolutional,
    /// Dense product over the input flattened in Akida's (C, W, H) order.
    FullyConnected,
}

impl LayerKind {
    pub fn name(&self) -> &'static str {
        match self {
            LayerKind::InputConvolutional => "InputConvolutional",
            LayerKind::Convolutional => "Convolutional",
            LayerKind::SeparableConvolutional => "SeparableConvolutional",
            LayerKind::FullyConnected => "FullyConnected",
        }
    }

    /// Whether potentials saturate to 20 bits (every kind but the input layer).
    pub fn saturates(&self) -> bool {
        !matches!(self, LayerKind::InputConvolutional)
    }
}

/// Pooling applied to the potentials of the neural part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Pooling {
    None,
    /// Max over `size` windows moved by `stride`, padded like the convolution.
    Max {
        size: Window,
        stride: Window,
    },
    /// Sum over all rows and cols (global average, thresholds pre-scaled).
    GlobalAverage,
}

/// A converted layer with its variables, borrowed from the model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer<'a> {
    pub name: &'a str,
    pub kind: LayerKind,
    /// Input size (the previous layer's output, or the image).
    pub input: Dims,
    /// Filters of a convolution, units of a fully connected layer.
    pub filters: u32,
    /// Kernel size in (rows, cols); 1x1 for a fully connected layer.
    pub kernel: Window,
    /// Convolution stride in (rows, cols); 1x1 for a fully connected layer.
    pub stride: Window,
    /// Padding of the convolution and of its max pooling.
    pub padding: Padding,
    /// Value of padded input cells (input convolution only; 0 elsewhere).
    pub padding_value: u8,
    pub pooling: Pooling,
    /// Whether the layer outputs levels (true) or raw potentials (false).
    pub activation: bool,
    /// Bits of the output levels (1, 2 or 4); ignored without activation.
    pub act_bits: u8,
    /// Kernel as the engine stores it: (kh, kw, cin, f) for convolutions,
    /// (kh, kw, cin, 1) depthwise for separable, (1, 1, C*W*H, units) for
    /// fully connected.
    #[serde(borrow)]
    pub weights: PackedWeights<'a>,
    /// Pointwise kernel (1, 1, cin, f) of a separable layer.
    #[serde(borrow)]
    pub weights_pw: Option<PackedWeights<'a>>,
    /// One threshold per filter.
    #[serde(borrow)]
    pub threshold: I32Slice<'a>,
    /// One act_step per filter.
    #[serde(borrow)]
    pub act_step: F32Slice<'a>,
}

impl<'a> Layer<'a> {
    /// Output of the neural part, before pooling; `None` if empty.
    pub fn conv_output(&self) -> Option<Dims> {
        match self.kind {
            LayerKind::FullyConnected => Some(Dims::new(1, 1, self.filters)),
            _ => {
                let d = dims::slide(self.input, self.kernel, self.stride, self.padding)?;
                Some(Dims::new(d.rows, d.cols, self.filters))
            }
        }
    }

    /// Output of the layer, after pooling; `None` if empty.
    pub fn output(&self) -> Option<Dims> {
        let conv = self.conv_output()?;
        match self.pooling {
            Pooling::None => Some(conv),
            Pooling::Max { size, stride } => dims::slide(conv, size, stride, self.padding),
            Pooling::GlobalAverage => Some(Dims::new(1, 1, conv.channels)),
        }
    }

    /// Output dims of a validated layer.
    pub fn output_dims(&self) -> Dims {
        self.output().unwrap_or(Dims::new(0, 0, 0))
    }

    /// Conv-part output dims of a validated layer.
    pub fn conv_dims(&self) -> Dims {
        self.conv_output().unwrap_or(Dims::new(0, 0, 0))
    }

    /// Weight bit width of the layer.
    pub fn weights_bits(&self) -> u8 {
        self.weights.bits
    }

    /// Padding (rows, cols) before the input of the convolution.
    pub fn conv_pads(&self) -> (usize, usize) {
        match self.kind {
            LayerKind::FullyConnected => (0, 0),
            _ => dims::pads_before(self.input, self.kernel, self.stride, self.padding),
        }
    }

    /// Padding (rows, cols) before the potentials of the max pooling.
    pub fn pool_pads(&self) -> (usize, usize) {
        match self.pooling {
            Pooling::Max { size, stride } => {
                dims::pads_before(self.conv_dims(), size, stride, self.padding)
            }
            _ => (0, 0),
        }
    }

    /// Number of i32 scratch cells the layer needs: the potentials of its
    /// neural part, plus the depthwise potentials of a separable layer.
    pub fn scratch_len(&self) -> usize {
        let conv = self.conv_dims();
        let depthwise = match self.kind {
            LayerKind::SeparableConvolutional => {
                conv.rows as usize * conv.cols as usize * self.input.channels as usize
            }
            _ => 0,
        };
        conv.len() + depthwise
    }

    /// Number of unpacked i8 weights (main kernel plus pointwise).
    pub fn unpacked_len(&self) -> usize {
        self.weights.count() + self.weights_pw.map_or(0, |w| w.count())
    }
}
