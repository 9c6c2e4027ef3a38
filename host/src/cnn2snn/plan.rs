//! The plan of a conversion: the chain of Keras layers cnn2snn works on
//! (after its `syncretize` transforms), the model's input scaling, the
//! InputData layer cnn2snn puts in front of an input with neither 1 nor 3
//! channels, and one planned Akida layer (its [`LayerParams`] and the chain
//! indices of its parts) per neural layer. Both [`super::check`] and
//! [`super::convert`] read it.

use akida_core::{Dims, LayerKind, LayerParams, Padding, Pooling, Window};

use crate::keras::{self, Layer, LayerConfig, Quantizer};

use super::chain::{self, Chain};
use super::Cnn2snnError;

/// `akida_input = scale * keras_input + shift` (uint8 images to the model's
/// float input).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputScaling {
    pub scale: f64,
    pub shift: f64,
}

impl Default for InputScaling {
    fn default() -> Self {
        InputScaling {
            scale: 1.0,
            shift: 0.0,
        }
    }
}

/// One Akida layer planned from the Keras chain: its geometry and the chain
/// indices of its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedLayer {
    pub name: String,
    pub geometry: LayerParams,
    /// Index of the neural layer in the chain.
    pub neural: usize,
    /// Index of the quantized activation, if any.
    pub activation: Option<usize>,
    /// Rows x cols summed by a global average pooling.
    pub pooled_cells: Option<usize>,
}

/// Bits of the InputData layer cnn2snn makes (`InputData(input_shape,
/// input_bits=4)`).
pub const INPUT_DATA_BITS: u8 = 4;

/// cnn2snn's rule for the first Akida layer (`model_generator.generate_model`):
/// an input whose last axis is 1 or 3 feeds an InputConvolutional layer
/// (the first neural layer must then be a Conv2D); any other input gets an
/// InputData layer of this size (1x1xN for a vector of N features), and the
/// first neural layer is a Convolutional, SeparableConvolutional or
/// FullyConnected layer reading its values. `None` for the image case, and
/// for an input shape that is neither (N,) nor (H, W, C) (an error).
pub fn input_data_dims(input: &[usize]) -> Option<Dims> {
    match *input {
        [n] if n != 1 && n != 3 => Some(Dims::new(1, 1, n as u32)),
        [h, w, c] if c != 1 && c != 3 => Some(Dims::new(h as u32, w as u32, c as u32)),
        _ => None,
    }
}

/// The name of the InputData layer of a model named `model`. cnn2snn names
/// it after the Sequential model its transforms build (`sequential_7_input`,
/// a number that depends on how many models the process made before); this
/// one takes the Keras model's own name instead.
pub fn input_data_name(model: &str) -> String {
    format!("{model}_input")
}

/// The model's input scaling: from a leading Rescaling (`(1/s, -o/s)`), or
/// the flags, or `(1, 0)`. Both a Rescaling and flags is an error.
pub fn input_scaling(
    model: &keras::Model,
    flags: Option<InputScaling>,
) -> Result<InputScaling, Cnn2snnError> {
    let rescaling = model.layers.iter().take(2).find_map(|l| match l.config {
        LayerConfig::Rescaling { scale, offset } => Some((l, scale, offset)),
        _ => None,
    });
    if let Some((layer, scale, _)) = rescaling {
        // cnn2snn divides by the scale: 0 would make an infinite input scale.
        if scale <= 0.0 || !scale.is_finite() {
            return Err(Cnn2snnError::Unsupported(format!(
                "the Rescaling layer `{}` has scale {scale}: the scale must be finite and strictly positive (the input scale is its inverse)",
                layer.name
            )));
        }
    }
    let rescaling = rescaling.map(|(_, scale, offset)| InputScaling {
        scale: 1.0 / scale,
        shift: -offset / scale,
    });
    let scaling = match (rescaling, flags) {
        (Some(_), Some(f)) => {
            return Err(Cnn2snnError::Unsupported(format!(
                "the model has a Rescaling layer, so input scaling flags (-sc {} -sh {}) must not be given",
                f.scale, f.shift
            )))
        }
        (Some(r), None) => r,
        (None, Some(f)) => f,
        (None, None) => InputScaling::default(),
    };
    if scaling.scale <= 0.0 || !scaling.scale.is_finite() {
        return Err(Cnn2snnError::Unsupported(format!(
            "the input scale must be strictly positive, found {}",
            scaling.scale
        )));
    }
    Ok(scaling)
}

/// cnn2snn's `syncretize`: the chain a conversion works on.
pub fn prepare(model: &keras::Model) -> Result<Chain, Cnn2snnError> {
    let mut chain = Chain::from_model(model)?;
    chain::remove_dropout(&mut chain);
    chain::invert_pooling_activation(&mut chain);
    chain::invert_batchnorm_pooling(&mut chain)?;
    chain::fold_batchnorm(&mut chain)?;
    Ok(chain)
}

/// Bits and step of a quantized activation: `step = max_value / (2^bits - 1)`
/// in float32 (QuantizedReLU), `min(2^b - 1, 6) / (2^b - 1)` (ActivationDiscreteRelu).
pub fn activation_step(layer: &Layer) -> Result<f32, Cnn2snnError> {
    match layer.config {
        LayerConfig::QuantizedReLU {
            bitwidth,
            max_value,
        } => Ok(max_value as f32 / (2f64.powi(bitwidth as i32) - 1.0) as f32),
        LayerConfig::ActivationDiscreteRelu { bitwidth } => {
            let levels = 2f64.powi(bitwidth as i32) - 1.0;
            Ok((levels.min(6.0) / levels) as f32)
        }
        _ => Err(Cnn2snnError::Unsupported(format!(
            "layer `{}` is not a quantized activation",
            layer.name
        ))),
    }
}

/// Bit width of a quantized activation.
pub fn activation_bits(config: &LayerConfig) -> Option<u32> {
    match config {
        LayerConfig::QuantizedReLU { bitwidth, .. }
        | LayerConfig::ActivationDiscreteRelu { bitwidth } => Some(*bitwidth),
        _ => None,
    }
}

/// Weight quantizers of a quantized neural layer: (main, depthwise).
pub fn quantizers(config: &LayerConfig) -> Option<(&Quantizer, Option<&Quantizer>)> {
    match config {
        LayerConfig::QuantizedConv2D { quantizer, .. }
        | LayerConfig::QuantizedDense { quantizer, .. } => Some((quantizer, None)),
        LayerConfig::QuantizedSeparableConv2D {
            quantizer,
            quantizer_dw,
            ..
        } => Some((quantizer, Some(quantizer_dw))),
        _ => None,
    }
}

/// Builds the plan: one Akida layer per neural layer (with its pooling and
/// activation), behind an InputData layer where [`input_data_dims`] says.
/// The chain must have passed the compatibility errors.
pub fn plan(chain: &Chain, scaling: InputScaling) -> Result<Vec<PlannedLayer>, Cnn2snnError> {
    let shapes = chain.input_shapes()?;
    let input_data = input_data_dims(&chain.input_shape()?);
    let mut plan: Vec<PlannedLayer> = Vec::new();
    let mut open: Option<PlannedLayer> = None;
    for (i, layer) in chain.layers.iter().enumerate() {
        match &layer.config {
            c if chain::is_neural(c) => {
                if let Some(done) = open.take() {
                    plan.push(done);
                }
                let previous = match plan.last() {
                    Some(p) => Feed::Layer(output_dims(&p.geometry)),
                    None => input_data.map_or(Feed::Image, Feed::InputData),
                };
                open = Some(plan_neural(layer, i, &shapes[i], previous, scaling)?);
            }
            LayerConfig::MaxPooling2D(p) => {
                if let Some(o) = open.as_mut() {
                    o.geometry.pooling = Pooling::Max {
                        size: window(p.pool_size),
                        stride: window(p.strides),
                    };
                }
            }
            LayerConfig::GlobalAveragePooling2D { .. } => {
                if let Some(o) = open.as_mut() {
                    o.geometry.pooling = Pooling::GlobalAverage;
                    o.pooled_cells = Some(shapes[i].iter().take(2).product());
                }
            }
            c if activation_bits(c).is_some() => {
                if let Some(mut o) = open.take() {
                    o.geometry.activation = true;
                    o.geometry.act_bits = activation_bits(c).unwrap_or(0) as u8;
                    o.activation = Some(i);
                    plan.push(o);
                }
            }
            _ => {}
        }
    }
    if let Some(mut last) = open.take() {
        last.geometry.activation = false;
        // The engine stores act_bits 1 on a last layer without activation.
        last.geometry.act_bits = 1;
        plan.push(last);
    }
    Ok(plan)
}

fn window(p: [usize; 2]) -> Window {
    Window::new(p[0] as u32, p[1] as u32)
}

/// Output size of planned params; zero dims when they are inconsistent
/// (which the compatibility check reports before any conversion).
pub fn output_dims(p: &LayerParams) -> Dims {
    p.output().unwrap_or(Dims::new(0, 0, 0))
}

fn dims_of(shape: &[usize]) -> Dims {
    match shape {
        [h, w, c] => Dims::new(*h as u32, *w as u32, *c as u32),
        [n] => Dims::new(1, 1, *n as u32),
        _ => Dims::new(0, 0, 0),
    }
}

/// What feeds a planned neural layer.
#[derive(Clone, Copy)]
enum Feed {
    /// The image: the layer is the InputConvolutional one.
    Image,
    /// The InputData layer, of this size.
    InputData(Dims),
    /// The previous Akida layer, of this output size.
    Layer(Dims),
}

fn plan_neural(
    layer: &Layer,
    index: usize,
    keras_input: &[usize],
    previous: Feed,
    scaling: InputScaling,
) -> Result<PlannedLayer, Cnn2snnError> {
    let weights_bits = quantizers(&layer.config)
        .map(|(q, _)| q.bitwidth as u8)
        .unwrap_or(0);
    let (first, input) = match previous {
        Feed::Image => (true, dims_of(keras_input)),
        // A fully connected layer reads the InputData layer's HWC size,
        // not the Keras Flatten's vector.
        Feed::InputData(d) | Feed::Layer(d) => (false, d),
    };
    let (kind, filters, kernel, stride, pad) = match &layer.config {
        LayerConfig::QuantizedConv2D { conv, .. } | LayerConfig::Conv2D(conv) => (
            if first {
                LayerKind::InputConvolutional
            } else {
                LayerKind::Convolutional
            },
            conv.filters,
            window(conv.kernel_size),
            window(conv.strides),
            conv.padding,
        ),
        LayerConfig::QuantizedSeparableConv2D { conv, .. } | LayerConfig::SeparableConv2D(conv) => {
            (
                LayerKind::SeparableConvolutional,
                conv.filters,
                window(conv.kernel_size),
                window(conv.strides),
                conv.padding,
            )
        }
        LayerConfig::QuantizedDense { dense, .. } | LayerConfig::Dense(dense) => (
            LayerKind::FullyConnected,
            dense.units,
            Window::ONE,
            Window::ONE,
            Padding::Valid,
        ),
        other => {
            return Err(Cnn2snnError::Unsupported(format!(
                "layer `{}` of type {} is not a neural layer",
                layer.name,
                other.class_name()
            )))
        }
    };
    Ok(PlannedLayer {
        name: layer.name.clone(),
        geometry: LayerParams {
            kind,
            input,
            filters: filters as u32,
            kernel,
            stride,
            padding: pad,
            // cnn2snn: padding_value = int(input_shift), truncated.
            padding_value: if kind == LayerKind::InputConvolutional {
                scaling.shift.trunc().clamp(0.0, 255.0) as u8
            } else {
                0
            },
            pooling: Pooling::None,
            activation: false,
            act_bits: 1,
            weights_bits,
        },
        neural: index,
        activation: None,
        pooled_cells: None,
    })
}
