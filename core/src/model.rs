//! A converted model: a chain of Akida 1.0 layers, and the rules that make
//! it runnable (shapes chain, variables have the right lengths, bit widths
//! are ones the engine runs, potentials cannot overflow 32 bits).

use serde::{Deserialize, Serialize};

use crate::activation::{self, ACT_BITS, MIN_ACT_STEP};
use crate::dims::{Dims, Window};
use crate::layer::{Layer, LayerKind, Pooling};
use crate::weights::{packed_len, PackedWeights, WEIGHT_BITS};

/// Most layers a model may hold (the AKD1000 has 80 neural processors; Akida
/// 1.0 models of the zoo use at most 12 layers).
pub const MAX_LAYERS: usize = 64;

/// Largest extent of one tensor axis.
pub const MAX_AXIS: u32 = 1 << 16;

/// Largest number of elements of one tensor (activations or weights).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// A chain of layers; layer 0 is the input convolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model<'a> {
    #[serde(borrow)]
    pub layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
}

/// Why a model cannot run. `layer` is the index of the offending layer.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("the model has no layers")]
    Empty,
    #[error("layer {layer}: the first layer must be InputConvolutional, found {kind:?}")]
    FirstLayerNotInput { layer: usize, kind: LayerKind },
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
    #[error("layer {layer}: input {found:?} does not match the previous output {expected:?}")]
    Chain {
        layer: usize,
        expected: Dims,
        found: Dims,
    },
    #[error("layer {layer}: only the last layer may output potentials (activation off)")]
    HiddenWithoutActivation { layer: usize },
    #[error("layer {layer}: weight bit width {bits} is not one of 2, 4, 8")]
    WeightBits { layer: usize, bits: u8 },
    #[error("layer {layer}: pointwise weights have {pointwise} bits, depthwise {depthwise}")]
    PointwiseBits {
        layer: usize,
        depthwise: u8,
        pointwise: u8,
    },
    #[error("layer {layer}: activation bit width {bits} is not one of 1, 2, 4")]
    ActBits { layer: usize, bits: u8 },
    #[error("layer {layer}: {tensor} has shape {found:?}, expected {expected:?}")]
    WeightShape {
        layer: usize,
        tensor: &'static str,
        expected: [u32; 4],
        found: [u32; 4],
    },
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

/// Buffer sizes [`crate::inference::forward`] needs for a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkspaceSizes {
    /// Each of the two level buffers (u8).
    pub levels: usize,
    /// i32 scratch for the potentials of one layer.
    pub scratch: usize,
    /// i8 cells for one layer's unpacked weights.
    pub weights: usize,
    /// i32 cells for the last layer's output potentials.
    pub output: usize,
}

impl<'a> Model<'a> {
    /// Input size of the model (the image).
    pub fn input(&self) -> Dims {
        self.layers.first().map_or(Dims::new(0, 0, 0), |l| l.input)
    }

    /// Output size of a validated model.
    pub fn output(&self) -> Dims {
        self.layers
            .last()
            .map_or(Dims::new(0, 0, 0), |l| l.output_dims())
    }

    /// Whether the last layer outputs levels (true) or potentials.
    pub fn outputs_levels(&self) -> bool {
        self.layers.last().is_some_and(|l| l.activation)
    }

    /// Checks every rule that makes the model runnable without panics.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.layers.is_empty() {
            return Err(ModelError::Empty);
        }
        let last = self.layers.len() - 1;
        let mut previous: Option<(Dims, u8)> = None;
        for (index, layer) in self.layers.iter().enumerate() {
            validate_layer(index, layer, previous, index == last)?;
            previous = Some((layer.output_dims(), layer.act_bits));
        }
        Ok(())
    }

    /// Buffer sizes to run a validated model.
    pub fn workspace_sizes(&self) -> WorkspaceSizes {
        let mut s = WorkspaceSizes::default();
        for layer in &self.layers {
            if layer.activation {
                s.levels = s.levels.max(layer.output_dims().len());
            }
            s.scratch = s.scratch.max(layer.scratch_len());
            s.weights = s.weights.max(layer.unpacked_len());
        }
        if !self.outputs_levels() {
            s.output = self.output().len();
        }
        s
    }
}

fn validate_layer(
    index: usize,
    layer: &Layer,
    previous: Option<(Dims, u8)>,
    is_last: bool,
) -> Result<(), ModelError> {
    let e = index;
    match (previous, layer.kind) {
        (None, LayerKind::InputConvolutional) if !matches!(layer.input.channels, 1 | 3) => {
            return Err(ModelError::InputChannels {
                layer: e,
                channels: layer.input.channels,
            })
        }
        (None, LayerKind::InputConvolutional) => {}
        (None, kind) => return Err(ModelError::FirstLayerNotInput { layer: e, kind }),
        (Some(_), LayerKind::InputConvolutional) => {
            return Err(ModelError::InputLayerNotFirst { layer: e })
        }
        (Some((expected, _)), _) if expected != layer.input => {
            return Err(ModelError::Chain {
                layer: e,
                expected,
                found: layer.input,
            })
        }
        _ => {}
    }
    if !is_last && !layer.activation {
        return Err(ModelError::HiddenWithoutActivation { layer: e });
    }
    if !ACT_BITS.contains(&layer.act_bits) {
        return Err(ModelError::ActBits {
            layer: e,
            bits: layer.act_bits,
        });
    }
    if layer.padding_value != 0 && layer.kind != LayerKind::InputConvolutional {
        return Err(ModelError::PaddingValue { layer: e });
    }
    validate_geometry(e, layer)?;
    validate_weights(e, layer)?;
    validate_variables(e, layer)?;
    let max_input = match previous {
        None => 255,
        Some((_, bits)) => activation::max_level(bits) as i64,
    };
    validate_potential_range(e, layer, max_input)
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

fn validate_geometry(e: usize, layer: &Layer) -> Result<(), ModelError> {
    if !dims_in_range(layer.input) || layer.filters > MAX_AXIS {
        return Err(ModelError::TooLarge { layer: e });
    }
    if layer.input.is_empty() || layer.filters == 0 {
        return Err(ModelError::EmptyOutput { layer: e });
    }
    if layer.kind == LayerKind::FullyConnected
        && (layer.kernel != Window::ONE
            || layer.stride != Window::ONE
            || layer.padding != crate::dims::Padding::Valid
            || layer.pooling != Pooling::None)
    {
        return Err(ModelError::FullyConnectedGeometry { layer: e });
    }
    let pool_ok = match layer.pooling {
        Pooling::Max { size, stride } => window_nonzero(size) && window_nonzero(stride),
        _ => true,
    };
    if !window_nonzero(layer.kernel) || !window_nonzero(layer.stride) || !pool_ok {
        return Err(ModelError::ZeroWindow { layer: e });
    }
    if layer.kernel.rows > MAX_AXIS || layer.kernel.cols > MAX_AXIS {
        return Err(ModelError::TooLarge { layer: e });
    }
    let conv = layer
        .conv_output()
        .ok_or(ModelError::EmptyOutput { layer: e })?;
    let out = layer.output().ok_or(ModelError::EmptyOutput { layer: e })?;
    if !dims_in_range(conv) || !dims_in_range(out) {
        return Err(ModelError::TooLarge { layer: e });
    }
    if layer.scratch_len() > 2 * MAX_ELEMENTS {
        return Err(ModelError::TooLarge { layer: e });
    }
    Ok(())
}

fn expected_shapes(layer: &Layer) -> ([u32; 4], Option<[u32; 4]>) {
    let (kh, kw) = (layer.kernel.rows, layer.kernel.cols);
    let cin = layer.input.channels;
    match layer.kind {
        LayerKind::InputConvolutional | LayerKind::Convolutional => {
            ([kh, kw, cin, layer.filters], None)
        }
        LayerKind::SeparableConvolutional => ([kh, kw, cin, 1], Some([1, 1, cin, layer.filters])),
        LayerKind::FullyConnected => {
            // Fits: the input passed dims_in_range.
            ([1, 1, layer.input.len() as u32, layer.filters], None)
        }
    }
}

fn check_tensor(
    e: usize,
    tensor: &'static str,
    w: &PackedWeights,
    expected: [u32; 4],
) -> Result<(), ModelError> {
    if !WEIGHT_BITS.contains(&w.bits) {
        return Err(ModelError::WeightBits {
            layer: e,
            bits: w.bits,
        });
    }
    if w.shape != expected {
        return Err(ModelError::WeightShape {
            layer: e,
            tensor,
            expected,
            found: w.shape,
        });
    }
    let count = w
        .checked_count()
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

fn validate_weights(e: usize, layer: &Layer) -> Result<(), ModelError> {
    let (main, pointwise) = expected_shapes(layer);
    check_tensor(e, "weights", &layer.weights, main)?;
    match (pointwise, &layer.weights_pw) {
        (Some(shape), Some(pw)) => {
            check_tensor(e, "weights_pw", pw, shape)?;
            if pw.bits != layer.weights.bits {
                return Err(ModelError::PointwiseBits {
                    layer: e,
                    depthwise: layer.weights.bits,
                    pointwise: pw.bits,
                });
            }
        }
        (Some(_), None) => return Err(ModelError::MissingPointwise { layer: e }),
        (None, Some(_)) => return Err(ModelError::UnexpectedPointwise { layer: e }),
        (None, None) => {}
    }
    Ok(())
}

fn validate_variables(e: usize, layer: &Layer) -> Result<(), ModelError> {
    let expected = layer.filters as usize * 4;
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
fn validate_potential_range(e: usize, layer: &Layer, max_input: i64) -> Result<(), ModelError> {
    let f = layer.filters as usize;
    let w = &layer.weights;
    let limit = i32::MAX as i64;
    let cells = match (layer.kind, layer.pooling) {
        // The input layer does not saturate: a global sum must fit too.
        (LayerKind::InputConvolutional, Pooling::GlobalAverage) => {
            layer.conv_dims().len() as i64 / f as i64
        }
        _ => 1,
    };
    let overflow = |filter| ModelError::PotentialOverflow { layer: e, filter };
    match (layer.kind, &layer.weights_pw) {
        (LayerKind::SeparableConvolutional, Some(pw)) => {
            let cin = layer.input.channels as usize;
            let taps = layer.kernel.area();
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
                if total.saturating_mul(cells) > limit {
                    return Err(overflow(filter));
                }
            }
        }
    }
    Ok(())
}
