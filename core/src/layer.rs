//! One Akida 1.0 layer: a neural part (input convolution, convolution,
//! separable convolution or fully connected), optional pooling, and an
//! optional activation, with its integer variables.
//!
//! [`LayerParams`] is the one description of what a layer computes (kind,
//! geometry, bit widths, pooling, padding value): the `.akd` and `.fbz`
//! files, the converter, the summary and every kernel read it. [`Layer`]
//! adds the name and the variables, generic over their storage: borrowed
//! from a model file (`Layer<&[u8], &str>`, no heap) or owned
//! (`Layer<Vec<u8>, String>`, on the host), one definition for both.

use serde::{Deserialize, Serialize};

use crate::dims::{self, Dims, Padding, Window};
use crate::weights::{self, F32Values, I32Values, PackError, PackedWeights};

/// The neural part of a layer, as the engine's layer types name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LayerKind {
    /// First layer: uint8 image input, cross-correlation, padding filled with
    /// `padding_value` (the "HRC").
    InputConvolutional,
    /// True convolution with the stored (flipped) kernel, zero padding.
    Convolutional,
    /// Depthwise (stored flipped) then pointwise, no rounding in between.
    SeparableConvolutional,
    /// Dense product over the input flattened in Akida's (C, W, H) order.
    FullyConnected,
}

impl LayerKind {
    /// Every kind, in the engine's order of `layer_type` codes.
    pub const ALL: [LayerKind; 4] = [
        LayerKind::InputConvolutional,
        LayerKind::FullyConnected,
        LayerKind::Convolutional,
        LayerKind::SeparableConvolutional,
    ];

    /// The engine's name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            LayerKind::InputConvolutional => "InputConvolutional",
            LayerKind::Convolutional => "Convolutional",
            LayerKind::SeparableConvolutional => "SeparableConvolutional",
            LayerKind::FullyConnected => "FullyConnected",
        }
    }

    /// Whether the kind slides a window over its input (all but fully connected).
    pub fn is_convolution(&self) -> bool {
        !matches!(self, LayerKind::FullyConnected)
    }
}

/// The engine's `InputData` layer: the model's input goes as it is to the
/// first neural layer (a Convolutional, SeparableConvolutional or
/// FullyConnected layer, never an InputConvolutional one), as levels of
/// `bits` bits. cnn2snn puts one in front of every model whose input has
/// neither 1 nor 3 channels, with 4 bits; the engine refuses an input value
/// above `2^bits - 1`, and a neural layer behind more than 4 bits. No
/// weights, no variables, no computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputData<S> {
    pub name: S,
    /// Size of the input (HWC); a feature vector is 1x1xN.
    pub dims: Dims,
    /// Bits of the input values (1 to 4; cnn2snn writes 4).
    pub bits: u8,
}

/// Input bit widths of an [`InputData`] layer a neural layer takes (the
/// engine refuses a Convolutional, SeparableConvolutional or FullyConnected
/// layer behind 5 bits or more: "only accepts unsigned inputs").
pub const INPUT_BITS: core::ops::RangeInclusive<u8> = 1..=4;

impl<S: AsRef<str>> InputData<S> {
    pub fn name(&self) -> &str {
        self.name.as_ref()
    }

    /// Highest input value, `2^bits - 1`.
    pub fn max_value(&self) -> u8 {
        ((1u16 << self.bits.min(8)) - 1) as u8
    }

    /// The same layer with a borrowed name.
    pub fn view(&self) -> InputData<&str> {
        InputData {
            name: self.name.as_ref(),
            dims: self.dims,
            bits: self.bits,
        }
    }

    /// A copy owning its name (host).
    #[cfg(feature = "std")]
    pub fn to_owned_input(&self) -> InputData<std::string::String> {
        InputData {
            name: self.name.as_ref().into(),
            dims: self.dims,
            bits: self.bits,
        }
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

/// What a layer computes: everything but its name and variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerParams {
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
    /// Bits of the output levels (1, 2 or 4); kept but unused without activation.
    pub act_bits: u8,
    /// Bits of the weights (2, 4 or 8; 2 to 8 on an input convolution, packed
    /// as int8 unless 2 or 4: see [`weights::storage_bits`]), pointwise ones included.
    pub weights_bits: u8,
}

/// The sizes a valid layer works on, computed once by validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayerShapes {
    /// Output of the neural part, before pooling.
    pub conv: Dims,
    /// Output of the layer, after pooling.
    pub output: Dims,
    /// Padding (rows, cols) before the input of the convolution.
    pub conv_pads: (usize, usize),
    /// Padding (rows, cols) before the potentials of the max pooling.
    pub pool_pads: (usize, usize),
}

impl LayerParams {
    /// A fully connected layer of `filters` units at `weights_bits` bits:
    /// a one-cell window and stride, valid padding of value 0, no pooling,
    /// potentials out (set `activation` and `act_bits` for levels).
    pub const fn fully_connected(input: Dims, filters: u32, weights_bits: u8) -> LayerParams {
        LayerParams {
            kind: LayerKind::FullyConnected,
            input,
            filters,
            kernel: Window::ONE,
            stride: Window::ONE,
            padding: Padding::Valid,
            padding_value: 0,
            pooling: Pooling::None,
            activation: false,
            act_bits: 1,
            weights_bits,
        }
    }

    /// Output of the neural part, before pooling; `None` if empty or if a
    /// window is zero.
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

    /// The sizes of the layer, `None` where [`Self::output`] is.
    pub fn shapes(&self) -> Option<LayerShapes> {
        let conv = self.conv_output()?;
        let output = self.output()?;
        let conv_pads = match self.kind {
            LayerKind::FullyConnected => (0, 0),
            _ => dims::pads_before(self.input, self.kernel, self.stride, self.padding),
        };
        let pool_pads = match self.pooling {
            Pooling::Max { size, stride } => dims::pads_before(conv, size, stride, self.padding),
            _ => (0, 0),
        };
        Some(LayerShapes {
            conv,
            output,
            conv_pads,
            pool_pads,
        })
    }

    /// Shapes of the kernel and of the pointwise kernel as the engine stores
    /// them: (kh, kw, cin, f) for convolutions, (kh, kw, cin, 1) depthwise and
    /// (1, 1, cin, f) pointwise for separable, (1, 1, C*W*H, units) for fully
    /// connected. Saturates instead of overflowing (validation checks ranges).
    pub fn weight_shapes(&self) -> ([u32; 4], Option<[u32; 4]>) {
        let (kh, kw) = (self.kernel.rows, self.kernel.cols);
        let cin = self.input.channels;
        match self.kind {
            LayerKind::InputConvolutional | LayerKind::Convolutional => {
                ([kh, kw, cin, self.filters], None)
            }
            LayerKind::SeparableConvolutional => {
                ([kh, kw, cin, 1], Some([1, 1, cin, self.filters]))
            }
            LayerKind::FullyConnected => {
                let inputs = self
                    .input
                    .checked_len()
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(u32::MAX);
                ([1, 1, inputs, self.filters], None)
            }
        }
    }

    /// Whether the layer's potentials saturate to 20 bits once pooled, as the
    /// engine's do: a fully connected layer's always, a (separable, input)
    /// convolution's only behind a max pooling or a global average pooling
    /// (whose sum saturates at every cell it adds, in row-major order, see
    /// [`crate::tail`]); without pooling they stay exact 32-bit sums.
    pub fn saturates(&self) -> bool {
        self.kind == LayerKind::FullyConnected || self.pooling != Pooling::None
    }

    /// Number of i32 cells the reference and event kernels need: the
    /// potentials of the neural part, plus the depthwise potentials of a
    /// separable layer.
    pub fn scratch_len(&self, shapes: &LayerShapes) -> usize {
        let conv = shapes.conv;
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
        let (main, pointwise) = self.weight_shapes();
        let count = |s: [u32; 4]| weights::checked_count(s).unwrap_or(usize::MAX);
        count(main).saturating_add(pointwise.map_or(0, count))
    }
}

/// A converted layer: its name, parameters and variables, over byte storage
/// `B` and name storage `S`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer<B, S> {
    pub name: S,
    pub params: LayerParams,
    /// The kernel packed at `storage_bits(params.weights_bits)`, in the engine's order and
    /// shape (see [`LayerParams::weight_shapes`]).
    pub weights: B,
    /// The pointwise kernel of a separable layer, packed likewise.
    pub weights_pw: Option<B>,
    /// One threshold per filter.
    pub threshold: I32Values<B>,
    /// One act_step per filter.
    pub act_step: F32Values<B>,
}

/// A layer borrowed from a model file.
pub type LayerRef<'a> = Layer<&'a [u8], &'a str>;

/// A layer owning its variables (host).
#[cfg(feature = "std")]
pub type OwnedLayer = Layer<std::vec::Vec<u8>, std::string::String>;

impl<B: AsRef<[u8]>, S: AsRef<str>> Layer<B, S> {
    pub fn name(&self) -> &str {
        self.name.as_ref()
    }

    /// The same layer, borrowed.
    pub fn view(&self) -> LayerRef<'_> {
        Layer {
            name: self.name.as_ref(),
            params: self.params,
            weights: self.weights.as_ref(),
            weights_pw: self.weights_pw.as_ref().map(AsRef::as_ref),
            threshold: I32Values(self.threshold.0.as_ref()),
            act_step: F32Values(self.act_step.0.as_ref()),
        }
    }

    /// The main kernel (depthwise for a separable layer).
    pub fn weights(&self) -> PackedWeights<'_> {
        PackedWeights {
            bits: weights::storage_bits(self.params.weights_bits),
            shape: self.params.weight_shapes().0,
            data: self.weights.as_ref(),
        }
    }

    /// The pointwise kernel of a separable layer.
    pub fn pointwise(&self) -> Option<PackedWeights<'_>> {
        let shape = self.params.weight_shapes().1?;
        let data = self.weights_pw.as_ref()?.as_ref();
        Some(PackedWeights {
            bits: weights::storage_bits(self.params.weights_bits),
            shape,
            data,
        })
    }

    /// Number of weights (pointwise ones included).
    pub fn weight_count(&self) -> usize {
        self.params.unpacked_len()
    }

    /// Bytes of the packed weights (pointwise ones included).
    pub fn weight_bytes(&self) -> usize {
        self.weights.as_ref().len() + self.weights_pw.as_ref().map_or(0, |w| w.as_ref().len())
    }
}

impl<B: AsMut<[u8]>, S> Layer<B, S> {
    /// Overwrites the `k`-th weight of the main kernel (in the stored order).
    pub fn set_weight(&mut self, k: usize, value: i8) -> Result<(), PackError> {
        let bits = weights::storage_bits(self.params.weights_bits);
        weights::set_one(self.weights.as_mut(), bits, k, value)
    }
}

#[cfg(feature = "std")]
impl OwnedLayer {
    /// A layer from unpacked values: the kernels in the engine's order (see
    /// [`LayerParams::weight_shapes`]), one threshold and act_step per filter.
    /// Only the packing can fail here; the model's validation checks the rest.
    pub fn new(
        name: impl Into<std::string::String>,
        params: LayerParams,
        weights: &[i8],
        weights_pw: Option<&[i8]>,
        threshold: &[i32],
        act_step: &[f32],
    ) -> Result<OwnedLayer, PackError> {
        let bits = weights::storage_bits(params.weights_bits);
        Ok(Layer {
            name: name.into(),
            params,
            weights: weights::pack(weights, bits)?,
            weights_pw: weights_pw.map(|w| weights::pack(w, bits)).transpose()?,
            threshold: threshold.iter().copied().collect(),
            act_step: act_step.iter().copied().collect(),
        })
    }
}

#[cfg(feature = "std")]
impl<B: AsRef<[u8]>, S: AsRef<str>> Layer<B, S> {
    /// A copy of the layer owning its variables.
    pub fn to_owned_layer(&self) -> OwnedLayer {
        Layer {
            name: self.name.as_ref().into(),
            params: self.params,
            weights: self.weights.as_ref().to_vec(),
            weights_pw: self.weights_pw.as_ref().map(|w| w.as_ref().to_vec()),
            threshold: I32Values(self.threshold.0.as_ref().to_vec()),
            act_step: F32Values(self.act_step.0.as_ref().to_vec()),
        }
    }
}
