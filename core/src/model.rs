//! A converted model: a chain of Akida 1.0 layers, and the rules that make
//! it runnable (shapes chain, variables have the right lengths, bit widths
//! are ones the engine runs, potentials cannot overflow 32 bits).
//!
//! [`Model`] is what a file holds; [`ValidModel`] is the only thing that
//! runs, and only [`Model::validate`] makes one: validation computes each
//! layer's sizes once, so nothing downstream asks "is this valid?" again.

use serde::{Deserialize, Serialize};

use crate::activation::{self, ACT_BITS, MIN_ACT_STEP};
use crate::dims::{Dims, Padding, Window};
use crate::inference::ForwardError;
use crate::kernels::fast::FastPlan;
use crate::layer::{
    InputData, Layer, LayerKind, LayerParams, LayerRef, LayerShapes, Pooling, INPUT_BITS,
};
use crate::weights::{checked_count, packed_len, PackedWeights, INPUT_WEIGHT_BITS, WEIGHT_BITS};

/// Most layers a model may hold (the AKD1000 has 80 neural processors; Akida
/// 1.0 models of the zoo use at most 12 layers).
pub const MAX_LAYERS: usize = 64;

/// Largest extent of one tensor axis.
pub const MAX_AXIS: u32 = 1 << 16;

/// Largest number of elements of one tensor (activations or weights).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// A chain of layers: layer 0 is the input convolution, or, behind an
/// [`InputData`] layer, a convolution, separable convolution or fully
/// connected layer. Not necessarily valid: see [`Model::validate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model<B, S> {
    pub layers: heapless::Vec<Layer<B, S>, MAX_LAYERS>,
    /// The InputData layer feeding layer 0, if the model has one.
    pub input_data: Option<InputData<S>>,
}

/// A model borrowed from a file.
pub type ModelRef<'a> = Model<&'a [u8], &'a str>;

/// A model owning its variables (host).
#[cfg(feature = "std")]
pub type OwnedModel = Model<std::vec::Vec<u8>, std::string::String>;

impl<B, S> Default for Model<B, S> {
    fn default() -> Self {
        Model {
            layers: heapless::Vec::new(),
            input_data: None,
        }
    }
}

/// Why a model cannot run. `layer` is the index of the offending layer.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("the model has no layers")]
    Empty,
    #[error("layer {layer}: the first layer must be InputConvolutional (or follow an InputData layer), found {}", kind.name())]
    FirstLayerNotInput { layer: usize, kind: LayerKind },
    #[error("layer {layer}: an InputConvolutional layer cannot follow an InputData layer (a Convolutional, SeparableConvolutional or FullyConnected one does)")]
    InputConvolutionalAfterInputData { layer: usize },
    #[error("the InputData layer: input bit width {bits} is not one of 1 to 4 (the bits a neural layer takes)")]
    InputDataBits { bits: u8 },
    #[error("the InputData layer: its size {} is empty or out of range (axis > {MAX_AXIS} or more than {MAX_ELEMENTS} elements)", DimsText(*dims))]
    InputDataDims { dims: Dims },
    #[error("layer {layer}: InputConvolutional is only allowed as the first layer")]
    InputLayerNotFirst { layer: usize },
    #[error("layer {layer}: an input convolution takes 1 or 3 channels, not {channels}")]
    InputChannels { layer: usize, channels: u32 },
    #[error("layer {layer}: a kernel, stride or pool extent is zero")]
    ZeroWindow { layer: usize },
    #[error("layer {layer}: tensor size out of range (axis > {MAX_AXIS} or more than {MAX_ELEMENTS} elements)")]
    TooLarge { layer: usize },
    #[error("layer {layer}: the output is empty ('valid' window larger than its input)")]
    EmptyOutput { layer: usize },
    #[error("layer {layer}: input {} does not match the previous output {}", DimsText(*found), DimsText(*expected))]
    Chain {
        layer: usize,
        expected: Dims,
        found: Dims,
    },
    #[error("layer {layer}: only the last layer may output potentials (activation off)")]
    HiddenWithoutActivation { layer: usize },
    #[error("layer {layer}: weight bit width {bits} is not one of 2, 4, 8 (2 to 8 on an input convolution)")]
    WeightBits { layer: usize, bits: u8 },
    #[error("layer {layer}: activation bit width {bits} is not one of 1, 2, 4")]
    ActBits { layer: usize, bits: u8 },
    #[error("layer {layer}: {tensor} holds {found} bytes, expected {expected}")]
    WeightBytes {
        layer: usize,
        tensor: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("layer {layer}: a separable layer needs pointwise weights")]
    MissingPointwise { layer: usize },
    #[error("layer {layer}: only a separable layer has pointwise weights")]
    UnexpectedPointwise { layer: usize },
    #[error("layer {layer}: {variable} holds {found} bytes, expected {expected}")]
    VariableLength {
        layer: usize,
        variable: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("layer {layer}: act_step {value} of filter {filter} is below 1/16 or not finite")]
    ActStep {
        layer: usize,
        filter: usize,
        value: f32,
    },
    #[error("layer {layer}: a padding value is only allowed on the input convolution")]
    PaddingValue { layer: usize },
    #[error("layer {layer}: a fully connected layer has a 1x1 kernel and stride, 'valid' padding and no pooling")]
    FullyConnectedGeometry { layer: usize },
    #[error("layer {layer}: potentials of filter {filter} could exceed 32 bits")]
    PotentialOverflow { layer: usize, filter: usize },
}

/// `HxWxC`, for messages.
struct DimsText(Dims);

impl core::fmt::Display for DimsText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}x{}x{}", self.0.rows, self.0.cols, self.0.channels)
    }
}

/// Buffer sizes [`crate::inference::forward`] needs for a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkspaceSizes {
    /// Each of the two level buffers (u8).
    pub levels: usize,
    /// i32 cells for the potentials of one layer (and its depthwise part).
    pub scratch: usize,
    /// i16 cells of the fast kernel's left operand (0 without it).
    pub a: usize,
    /// i32 cells for one pooled row of potentials.
    pub row: usize,
    /// i32 cells for the last layer's output potentials.
    pub output: usize,
    /// i8 cells for one layer's unpacked weights.
    pub weights: usize,
    /// i16 cells for one layer's packed fast operand (0 without it).
    pub packed: usize,
    /// i32 cells for one layer's level cuts (0 without the fast kernel).
    pub cuts: usize,
}

/// A model that passed [`Model::validate`], with each layer's sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidModel<B, S> {
    model: Model<B, S>,
    shapes: heapless::Vec<LayerShapes, MAX_LAYERS>,
}

/// One layer of a valid model, borrowed, with its sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValidLayer<'m> {
    pub layer: LayerRef<'m>,
    pub shapes: LayerShapes,
    /// Highest input value: 255 for the image, `2^bits - 1` behind an
    /// InputData layer, else the previous layer's highest activation level.
    pub max_input: u32,
}

impl<'m> ValidLayer<'m> {
    /// Checks one layer on its own: every rule but those linking it to its
    /// neighbours (first-layer kind, chained sizes, activation of hidden
    /// layers). `max_input` is the highest value of its input.
    pub fn new(layer: LayerRef<'m>, max_input: u32) -> Result<ValidLayer<'m>, ModelError> {
        let shapes = layer_rules(0, &layer, max_input as i64)?;
        Ok(ValidLayer {
            layer,
            shapes,
            max_input,
        })
    }

    pub fn params(&self) -> &LayerParams {
        &self.layer.params
    }

    pub fn name(&self) -> &'m str {
        self.layer.name
    }

    /// Level cells of the output, or potentials of a last layer.
    pub fn output_len(&self) -> usize {
        self.shapes.output.len()
    }
}

impl<B: AsRef<[u8]>, S: AsRef<str>> Model<B, S> {
    /// Checks every rule that makes the model runnable without panics, and
    /// returns it as a [`ValidModel`].
    pub fn validate(self) -> Result<ValidModel<B, S>, ModelError> {
        if self.layers.is_empty() {
            return Err(ModelError::Empty);
        }
        let last = self.layers.len() - 1;
        let mut shapes = heapless::Vec::new();
        let mut feed = match &self.input_data {
            None => Feed::Image,
            Some(d) => validate_input_data(&d.view())?,
        };
        for (index, layer) in self.layers.iter().enumerate() {
            let s = validate_layer(index, &layer.view(), feed, index == last)?;
            feed = Feed::Levels {
                dims: s.output,
                max: activation::max_level(layer.params.act_bits) as u32,
                after_input_data: false,
            };
            // Cannot fail: as many shapes as layers.
            let _ = shapes.push(s);
        }
        Ok(ValidModel {
            model: self,
            shapes,
        })
    }
}

/// Read-only access to the model (its `layers`); editing needs
/// [`ValidModel::into_model`] and a new validation.
impl<B, S> core::ops::Deref for ValidModel<B, S> {
    type Target = Model<B, S>;
    fn deref(&self) -> &Model<B, S> {
        &self.model
    }
}

#[cfg(feature = "std")]
impl<B: AsRef<[u8]>, S: AsRef<str>> ValidModel<B, S> {
    /// A copy of the model owning its variables (still valid: the same
    /// bytes in other storage).
    pub fn to_owned_model(&self) -> ValidModel<std::vec::Vec<u8>, std::string::String> {
        ValidModel {
            model: Model {
                layers: self
                    .model
                    .layers
                    .iter()
                    .map(Layer::to_owned_layer)
                    .collect(),
                input_data: self
                    .model
                    .input_data
                    .as_ref()
                    .map(InputData::to_owned_input),
            },
            shapes: self.shapes.clone(),
        }
    }
}

impl<B: AsRef<[u8]>, S: AsRef<str>> ValidModel<B, S> {
    /// The model itself.
    pub fn model(&self) -> &Model<B, S> {
        &self.model
    }

    /// Gives the model back (to edit it; it must be validated again to run).
    pub fn into_model(self) -> Model<B, S> {
        self.model
    }

    /// Number of layers (at least one).
    pub fn len(&self) -> usize {
        self.model.layers.len()
    }

    /// Always false: a valid model has a layer.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Layer `i`, borrowed, with its sizes.
    pub fn layer(&self, i: usize) -> ValidLayer<'_> {
        let max_input = match i {
            0 => self.max_input() as u32,
            _ => activation::max_level(self.model.layers[i - 1].params.act_bits) as u32,
        };
        ValidLayer {
            layer: self.model.layers[i].view(),
            shapes: self.shapes[i],
            max_input,
        }
    }

    /// Every layer in order.
    pub fn layers(&self) -> impl ExactSizeIterator<Item = ValidLayer<'_>> + '_ {
        (0..self.len()).map(move |i| self.layer(i))
    }

    /// The last layer.
    pub fn last(&self) -> ValidLayer<'_> {
        self.layer(self.len() - 1)
    }

    /// Input size of the model (the image, or the InputData size).
    pub fn input(&self) -> Dims {
        self.model.layers[0].params.input
    }

    /// The InputData layer in front of layer 0, if any.
    pub fn input_data(&self) -> Option<InputData<&str>> {
        self.model.input_data.as_ref().map(InputData::view)
    }

    /// Highest value of the model's input: 255 for an image, `2^bits - 1`
    /// behind an InputData layer.
    pub fn max_input(&self) -> u8 {
        self.input_data().map_or(u8::MAX, |d| d.max_value())
    }

    /// Checks that every value of one input is at most [`Self::max_input`],
    /// as the engine does: the first value above it (in HWC order) is the
    /// error, with its position.
    pub fn check_input(&self, input: &[u8]) -> Result<(), ForwardError> {
        let Some(d) = self.input_data() else {
            return Ok(());
        };
        let max = d.max_value();
        match input.iter().position(|&v| v > max) {
            None => Ok(()),
            Some(k) => {
                let (cols, channels) = (d.dims.cols as usize, d.dims.channels as usize);
                Err(ForwardError::InputValue {
                    row: (k / channels / cols) as u32,
                    col: (k / channels % cols) as u32,
                    channel: (k % channels) as u32,
                    value: input[k],
                    max,
                    bits: d.bits,
                })
            }
        }
    }

    /// Output size of the model.
    pub fn output(&self) -> Dims {
        self.shapes[self.len() - 1].output
    }

    /// Whether the last layer outputs levels (true) or potentials.
    pub fn outputs_levels(&self) -> bool {
        self.model.layers[self.len() - 1].params.activation
    }

    /// Buffer sizes to run the model with the reference or event kernels
    /// (`fast = false`) or with the fast kernel wherever it applies.
    pub fn workspace_sizes(&self, fast: bool) -> WorkspaceSizes {
        let mut s = WorkspaceSizes::default();
        for l in self.layers() {
            let p = l.params();
            if p.activation {
                s.levels = s.levels.max(l.shapes.output.len());
            }
            s.scratch = s.scratch.max(p.scratch_len(&l.shapes));
            s.row = s.row.max(p.filters as usize);
            s.weights = s.weights.max(p.unpacked_len());
            if fast {
                let plan = FastPlan::sizes(&l);
                s.scratch = s.scratch.max(plan.scratch_len());
                s.a = s.a.max(plan.a_len);
                s.row = s.row.max(plan.gemm.f_pad);
                s.packed = s.packed.max(plan.packed_len);
                s.cuts = s.cuts.max(plan.cuts_len);
            }
        }
        if !self.outputs_levels() {
            s.output = self.output().len();
        }
        s
    }
}

/// What feeds a layer: the uint8 image (layer 0 of a model without
/// InputData), or levels of a known size and highest value (the InputData
/// layer's input, or the previous layer's output).
#[derive(Clone, Copy)]
enum Feed {
    Image,
    Levels {
        dims: Dims,
        max: u32,
        after_input_data: bool,
    },
}

fn validate_input_data(d: &InputData<&str>) -> Result<Feed, ModelError> {
    if !INPUT_BITS.contains(&d.bits) {
        return Err(ModelError::InputDataBits { bits: d.bits });
    }
    if !dims_in_range(d.dims) || d.dims.is_empty() {
        return Err(ModelError::InputDataDims { dims: d.dims });
    }
    Ok(Feed::Levels {
        dims: d.dims,
        max: d.max_value() as u32,
        after_input_data: true,
    })
}

fn validate_layer(
    index: usize,
    layer: &LayerRef,
    feed: Feed,
    is_last: bool,
) -> Result<LayerShapes, ModelError> {
    let e = index;
    let p = &layer.params;
    match (feed, p.kind) {
        (Feed::Image, LayerKind::InputConvolutional) if !matches!(p.input.channels, 1 | 3) => {
            return Err(ModelError::InputChannels {
                layer: e,
                channels: p.input.channels,
            })
        }
        (Feed::Image, LayerKind::InputConvolutional) => {}
        (Feed::Image, kind) => return Err(ModelError::FirstLayerNotInput { layer: e, kind }),
        (
            Feed::Levels {
                after_input_data: true,
                ..
            },
            LayerKind::InputConvolutional,
        ) => return Err(ModelError::InputConvolutionalAfterInputData { layer: e }),
        (Feed::Levels { .. }, LayerKind::InputConvolutional) => {
            return Err(ModelError::InputLayerNotFirst { layer: e })
        }
        (Feed::Levels { dims: expected, .. }, _) if expected != p.input => {
            return Err(ModelError::Chain {
                layer: e,
                expected,
                found: p.input,
            })
        }
        _ => {}
    }
    if !is_last && !p.activation {
        return Err(ModelError::HiddenWithoutActivation { layer: e });
    }
    let max_input = match feed {
        Feed::Image => 255,
        Feed::Levels { max, .. } => max as i64,
    };
    layer_rules(e, layer, max_input)
}

/// The rules of a layer on its own.
fn layer_rules(e: usize, layer: &LayerRef, max_input: i64) -> Result<LayerShapes, ModelError> {
    let p = &layer.params;
    if !ACT_BITS.contains(&p.act_bits) {
        return Err(ModelError::ActBits {
            layer: e,
            bits: p.act_bits,
        });
    }
    let bits_ok = match p.kind {
        LayerKind::InputConvolutional => INPUT_WEIGHT_BITS.contains(&p.weights_bits),
        _ => WEIGHT_BITS.contains(&p.weights_bits),
    };
    if !bits_ok {
        return Err(ModelError::WeightBits {
            layer: e,
            bits: p.weights_bits,
        });
    }
    if p.padding_value != 0 && p.kind != LayerKind::InputConvolutional {
        return Err(ModelError::PaddingValue { layer: e });
    }
    let shapes = validate_geometry(e, p)?;
    validate_weights(e, layer)?;
    validate_variables(e, layer)?;
    validate_potential_range(e, layer, max_input)?;
    Ok(shapes)
}

fn dims_in_range(d: Dims) -> bool {
    d.rows <= MAX_AXIS
        && d.cols <= MAX_AXIS
        && d.channels <= MAX_AXIS
        && d.checked_len().is_some_and(|n| n <= MAX_ELEMENTS)
}

fn window_nonzero(w: Window) -> bool {
    w.rows > 0 && w.cols > 0
}

fn validate_geometry(e: usize, p: &LayerParams) -> Result<LayerShapes, ModelError> {
    if !dims_in_range(p.input) || p.filters > MAX_AXIS {
        return Err(ModelError::TooLarge { layer: e });
    }
    if p.input.is_empty() || p.filters == 0 {
        return Err(ModelError::EmptyOutput { layer: e });
    }
    if p.kind == LayerKind::FullyConnected
        && (p.kernel != Window::ONE
            || p.stride != Window::ONE
            || p.padding != Padding::Valid
            || p.pooling != Pooling::None)
    {
        return Err(ModelError::FullyConnectedGeometry { layer: e });
    }
    let pool_ok = match p.pooling {
        Pooling::Max { size, stride } => window_nonzero(size) && window_nonzero(stride),
        _ => true,
    };
    if !window_nonzero(p.kernel) || !window_nonzero(p.stride) || !pool_ok {
        return Err(ModelError::ZeroWindow { layer: e });
    }
    if p.kernel.rows > MAX_AXIS || p.kernel.cols > MAX_AXIS {
        return Err(ModelError::TooLarge { layer: e });
    }
    let shapes = p.shapes().ok_or(ModelError::EmptyOutput { layer: e })?;
    if !dims_in_range(shapes.conv) || !dims_in_range(shapes.output) {
        return Err(ModelError::TooLarge { layer: e });
    }
    if p.scratch_len(&shapes) > 2 * MAX_ELEMENTS {
        return Err(ModelError::TooLarge { layer: e });
    }
    Ok(shapes)
}

fn check_tensor(
    e: usize,
    tensor: &'static str,
    w: &PackedWeights,
    shape: [u32; 4],
) -> Result<(), ModelError> {
    let count = checked_count(shape)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or(ModelError::TooLarge { layer: e })?;
    let bytes = packed_len(count, w.bits);
    if w.data.len() != bytes {
        return Err(ModelError::WeightBytes {
            layer: e,
            tensor,
            expected: bytes,
            found: w.data.len(),
        });
    }
    Ok(())
}

fn validate_weights(e: usize, layer: &LayerRef) -> Result<(), ModelError> {
    let (main, pointwise) = layer.params.weight_shapes();
    check_tensor(e, "weights", &layer.weights(), main)?;
    match (pointwise, layer.pointwise()) {
        (Some(shape), Some(pw)) => check_tensor(e, "weights_pw", &pw, shape)?,
        (Some(_), None) => return Err(ModelError::MissingPointwise { layer: e }),
        (None, _) if layer.weights_pw.is_some() => {
            return Err(ModelError::UnexpectedPointwise { layer: e })
        }
        (None, _) => {}
    }
    Ok(())
}

fn validate_variables(e: usize, layer: &LayerRef) -> Result<(), ModelError> {
    let expected = layer.params.filters as usize * 4;
    for (variable, found) in [
        ("threshold", layer.threshold.0.len()),
        ("act_step", layer.act_step.0.len()),
    ] {
        if found != expected {
            return Err(ModelError::VariableLength {
                layer: e,
                variable,
                expected,
                found,
            });
        }
    }
    for (filter, value) in layer.act_step.iter().enumerate() {
        // The divisor floor(16 * act_step) must be >= 1 and fit comfortably in i64 math.
        if !value.is_finite() || !(MIN_ACT_STEP..=1.0e12).contains(&value) {
            return Err(ModelError::ActStep {
                layer: e,
                filter,
                value,
            });
        }
    }
    Ok(())
}

/// Worst-case |potential| of every filter must fit in i32, so that kernels
/// may accumulate in any order without overflow.
fn validate_potential_range(e: usize, layer: &LayerRef, max_input: i64) -> Result<(), ModelError> {
    let p = &layer.params;
    let f = p.filters as usize;
    let w = layer.weights();
    let limit = i32::MAX as i64;
    // A global sum saturates at every step (see `crate::tail`): only each
    // cell's potential must fit.
    let overflow = |filter| ModelError::PotentialOverflow { layer: e, filter };
    match (p.kind, layer.pointwise()) {
        (LayerKind::SeparableConvolutional, Some(pw)) => {
            let cin = p.input.channels as usize;
            let taps = p.kernel.area();
            // Bound of each depthwise potential, per input channel.
            let depthwise_bound = |c: usize| -> i64 {
                (0..taps)
                    .map(|t| (w.get(t * cin + c) as i64).abs())
                    .sum::<i64>()
                    * max_input
            };
            // Filters in blocks, so each depthwise bound is computed once
            // per block without a heap.
            const BLOCK: usize = 64;
            for start in (0..f).step_by(BLOCK) {
                let n = (f - start).min(BLOCK);
                let mut total = [0i64; BLOCK];
                for c in 0..cin {
                    let b = depthwise_bound(c);
                    if b > limit {
                        return Err(overflow(start));
                    }
                    for (k, t) in total[..n].iter_mut().enumerate() {
                        *t += b * (pw.get(c * f + start + k) as i64).abs();
                    }
                }
                if let Some(k) = total[..n].iter().position(|&t| t > limit) {
                    return Err(overflow(start + k));
                }
            }
        }
        _ => {
            let rows = w.count() / f;
            for filter in 0..f {
                let mut total = 0i64;
                for r in 0..rows {
                    total += (w.get(r * f + filter) as i64).abs() * max_input;
                }
                if total > limit {
                    return Err(overflow(filter));
                }
            }
        }
    }
    Ok(())
}
