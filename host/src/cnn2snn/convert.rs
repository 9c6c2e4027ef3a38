//! `cnn2snn convert`: a quantized Keras model becomes Akida 1.0 layers.
//!
//! Each Akida layer is a neural layer, an optional pooling and an optional
//! activation of the (syncretized) Keras chain. Its integer variables follow
//! cnn2snn, in float32 and in this order, with `S = f32(input_scale) * sf`:
//!
//! - weights `round(quantize(w) * sf)`, flipped for (separable) convolutions,
//!   fully connected rows reordered to Akida's (C, W, H) flattening;
//! - with activation: `threshold = floor(S * (step/2 - bias))`,
//!   `act_step = ((S * step) * 2^bits) / 16`; without: `floor(S * -bias)`, `S`;
//! - input layer: `threshold += sum(w_int) * input_shift` before the floor;
//! - global average pooling: both times H*W before the floor;
//! - the next layer's input scale is `f32(1 / step)`.
//!
//! Then act_steps beyond the hardware range are equalized ([`super::equalize`]).

use akida_core::{Dims, LayerKind, LayerParams, Padding, Pooling, Window};

use crate::akd::{self, ConvertedLayer, ConvertedModel};
use crate::keras::{self, Layer, LayerConfig, Quantizer, WeightRole};

use super::chain::{self, Chain};
use super::check::{self, Report};
use super::equalize;
use super::quantizer;
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

/// Options of a conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConvertOptions {
    /// `-sc`/`-sh`: input scaling when the model has no leading Rescaling.
    pub input_scaling: Option<InputScaling>,
    /// `--strict`: silicon-limit warnings become errors.
    pub strict: bool,
}

/// A converted model, with what the conversion reported.
#[derive(Clone, Debug)]
pub struct Conversion {
    pub model: ConvertedModel,
    /// The compatibility report (warnings only: errors abort).
    pub report: Report,
    /// Post-conversion adjustments (act_step equalization, threshold clipping).
    pub notes: Vec<String>,
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

/// The model's input scaling: from a leading Rescaling (`(1/s, -o/s)`), or
/// the flags, or `(1, 0)`. Both a Rescaling and flags is an error.
pub fn input_scaling(
    model: &keras::Model,
    flags: Option<InputScaling>,
) -> Result<InputScaling, Cnn2snnError> {
    let rescaling = model.layers.iter().take(2).find_map(|l| match l.config {
        LayerConfig::Rescaling { scale, offset } => Some(InputScaling {
            scale: 1.0 / scale,
            shift: -offset / scale,
        }),
        _ => None,
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

/// Converts a quantized Keras model.
pub fn convert(model: &keras::Model, options: &ConvertOptions) -> Result<Conversion, Cnn2snnError> {
    let scaling = input_scaling(model, options.input_scaling)?;
    // Unknown and Akida 2.0 classes are refused by name before any transform.
    let classes = check::class_report(model);
    if classes.has_errors() {
        return Err(Cnn2snnError::Incompatible(classes));
    }
    let chain = prepare(model)?;
    let (plan, report) = check::check_chain(&chain, scaling);
    let blocking = report.has_errors() || (options.strict && report.has_warnings());
    if blocking {
        let mut report = report;
        if options.strict {
            report.promote_warnings();
        }
        return Err(Cnn2snnError::Incompatible(report));
    }
    let plan = plan.expect("a plan exists when the report has no error");
    let mut layers = Vec::with_capacity(plan.len());
    let mut input_scale = scaling.scale as f32;
    for (index, planned) in plan.iter().enumerate() {
        let shift = if index == 0 { scaling.shift } else { 0.0 };
        let layer = convert_layer(&chain, planned, input_scale, shift)?;
        if let Some(a) = planned.activation {
            // The next layer sees integer levels: its input scale is 1 / step.
            input_scale = (1.0 / activation_step(&chain.layers[a])? as f64) as f32;
        }
        layers.push(layer);
    }
    let notes = equalize::fix_activation_variables(&mut layers);
    let model = akd::build(layers).map_err(|e| Cnn2snnError::Model(e.to_string()))?;
    Ok(Conversion {
        model,
        report,
        notes,
    })
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
/// activation). The chain must have passed the compatibility errors.
pub fn plan(chain: &Chain, scaling: InputScaling) -> Result<Vec<PlannedLayer>, Cnn2snnError> {
    let shapes = chain.input_shapes()?;
    let mut plan: Vec<PlannedLayer> = Vec::new();
    let mut open: Option<PlannedLayer> = None;
    for (i, layer) in chain.layers.iter().enumerate() {
        match &layer.config {
            c if chain::is_neural(c) => {
                if let Some(done) = open.take() {
                    plan.push(done);
                }
                let previous = plan.last().map(|p: &PlannedLayer| output_dims(&p.geometry));
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

fn padding(p: keras::Padding) -> Padding {
    match p {
        keras::Padding::Same => Padding::Same,
        keras::Padding::Valid => Padding::Valid,
    }
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

fn plan_neural(
    layer: &Layer,
    index: usize,
    keras_input: &[usize],
    previous: Option<Dims>,
    scaling: InputScaling,
) -> Result<PlannedLayer, Cnn2snnError> {
    let weights_bits = quantizers(&layer.config)
        .map(|(q, _)| q.bitwidth as u8)
        .unwrap_or(0);
    let first = previous.is_none();
    let input = previous.unwrap_or_else(|| dims_of(keras_input));
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
            padding(conv.padding),
        ),
        LayerConfig::QuantizedSeparableConv2D { conv, .. } | LayerConfig::SeparableConv2D(conv) => {
            (
                LayerKind::SeparableConvolutional,
                conv.filters,
                window(conv.kernel_size),
                window(conv.strides),
                padding(conv.padding),
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

fn weight(layer: &Layer, role: WeightRole) -> Result<&keras::Weight, Cnn2snnError> {
    layer
        .weight(role)
        .ok_or_else(|| Cnn2snnError::MissingWeight {
            layer: layer.name.clone(),
            weight: role.keras_name().to_owned(),
        })
}

/// A kernel's integer weights, scale factors and Keras shape.
type IntegerKernel = (Vec<i8>, Vec<f32>, Vec<usize>);

/// Quantized integer weights and scale factors of one kernel.
fn integer_kernel(
    layer: &Layer,
    role: WeightRole,
    q: &Quantizer,
) -> Result<IntegerKernel, Cnn2snnError> {
    let w = weight(layer, role)?;
    let channels = *w.shape.last().unwrap_or(&0);
    let sf = quantizer::scale_factors(&q.kind, q.bitwidth, &w.values, channels).map_err(|e| {
        Cnn2snnError::Quantizer {
            layer: layer.name.clone(),
            message: e.to_string(),
        }
    })?;
    let wq = quantizer::quantize(&w.values, &sf, q.bitwidth);
    Ok((quantizer::integers(&wq, &sf), sf, w.shape.clone()))
}

/// np.flip over the two kernel axes of a (kh, kw, a, b) tensor.
fn flip_kernel(values: &[i8], shape: &[usize]) -> Vec<i8> {
    let (kh, kw, plane) = (shape[0], shape[1], shape[2] * shape[3]);
    let mut out = vec![0i8; values.len()];
    for i in 0..kh {
        for j in 0..kw {
            let src = (i * kw + j) * plane;
            let dst = ((kh - 1 - i) * kw + (kw - 1 - j)) * plane;
            out[dst..dst + plane].copy_from_slice(&values[src..src + plane]);
        }
    }
    out
}

/// Keras (X*Y*C, N) dense rows to Akida's (C, Y, X) order, X, Y, C the input dims.
fn reorder_dense(values: &[i8], input: Dims, units: usize) -> Vec<i8> {
    let (x, y, c) = (
        input.rows as usize,
        input.cols as usize,
        input.channels as usize,
    );
    let mut out = vec![0i8; values.len()];
    for xi in 0..x {
        for yi in 0..y {
            for ci in 0..c {
                let src = ((xi * y + yi) * c + ci) * units;
                let dst = ((ci * y + yi) * x + xi) * units;
                out[dst..dst + units].copy_from_slice(&values[src..src + units]);
            }
        }
    }
    out
}

fn convert_layer(
    chain: &Chain,
    planned: &PlannedLayer,
    input_scale: f32,
    input_shift: f64,
) -> Result<ConvertedLayer, Cnn2snnError> {
    let neural = &chain.layers[planned.neural];
    let g = planned.geometry;
    let (main_q, dw_q) = quantizers(&neural.config).ok_or_else(|| {
        Cnn2snnError::Unsupported(format!("layer `{}` is not quantized", neural.name))
    })?;
    let f = g.filters as usize;
    let (weights, weights_pw, sf) = match g.kind {
        LayerKind::InputConvolutional | LayerKind::Convolutional => {
            let (w, sf, shape) = integer_kernel(neural, WeightRole::Kernel, main_q)?;
            let w = if g.kind == LayerKind::Convolutional {
                flip_kernel(&w, &shape)
            } else {
                w
            };
            let _ = shape;
            (w, None, sf)
        }
        LayerKind::SeparableConvolutional => {
            let dw_q = dw_q.unwrap_or(main_q);
            let (dw, sf_dw, dw_shape) = integer_kernel(neural, WeightRole::DepthwiseKernel, dw_q)?;
            let (pw, sf_pw, pw_shape) =
                integer_kernel(neural, WeightRole::PointwiseKernel, main_q)?;
            // A per-tensor depthwise scale factor multiplies each pointwise one.
            let sf: Vec<f32> = sf_pw.iter().map(|&p| sf_dw[0] * p).collect();
            let _ = pw_shape;
            (flip_kernel(&dw, &dw_shape), Some(pw), sf)
        }
        LayerKind::FullyConnected => {
            let (w, sf, shape) = integer_kernel(neural, WeightRole::Kernel, main_q)?;
            let inputs = g.input.len();
            if shape.len() != 2 || shape[0] != inputs {
                return Err(Cnn2snnError::Shape {
                    layer: neural.name.clone(),
                    message: format!("dense kernel {shape:?} does not take {inputs} inputs"),
                });
            }
            (reorder_dense(&w, g.input, f), None, sf)
        }
    };
    let sf = broadcast(&sf, f);
    let bias = match neural.bias() {
        Some(b) => b.values.clone(),
        None => vec![0f32; f],
    };
    let (threshold, act_step) = thresholds(
        chain,
        planned,
        &sf,
        &bias,
        input_scale,
        input_shift,
        &weights,
    )?;
    ConvertedLayer::new(
        planned.name.clone(),
        g,
        &weights,
        weights_pw.as_deref(),
        &threshold,
        &act_step,
    )
    .map_err(|e| Cnn2snnError::Quantizer {
        layer: planned.name.clone(),
        message: e.to_string(),
    })
}

fn broadcast(sf: &[f32], f: usize) -> Vec<f32> {
    (0..f).map(|i| sf[i % sf.len()]).collect()
}

/// Thresholds and act_steps of one layer, in float32, in cnn2snn's order.
fn thresholds(
    chain: &Chain,
    planned: &PlannedLayer,
    sf: &[f32],
    bias: &[f32],
    input_scale: f32,
    input_shift: f64,
    weights: &[i8],
) -> Result<(Vec<i32>, Vec<f32>), Cnn2snnError> {
    let f = sf.len();
    let activation = match planned.activation {
        Some(a) => {
            let layer = &chain.layers[a];
            let bits = activation_bits(&layer.config).unwrap_or(0);
            Some((activation_step(layer)?, bits))
        }
        None => None,
    };
    let cells = planned.pooled_cells.unwrap_or(1) as f32;
    let is_input = planned.geometry.kind == LayerKind::InputConvolutional;
    let mut threshold = Vec::with_capacity(f);
    let mut act_step = Vec::with_capacity(f);
    for c in 0..f {
        let s = input_scale * sf[c];
        let (mut th, mut step) = match activation {
            Some((step, bits)) => (
                s * (step * 0.5 - bias[c]),
                ((s * step) * 2f32.powi(bits as i32)) / 16.0,
            ),
            None => (s * -bias[c], s),
        };
        if is_input && input_shift != 0.0 {
            let sum: i64 = weights.iter().skip(c).step_by(f).map(|&w| w as i64).sum();
            th = (th as f64 + sum as f64 * input_shift) as f32;
        }
        if planned.pooled_cells.is_some() {
            th *= cells;
            step *= cells;
        }
        threshold.push(th.floor() as i32);
        act_step.push(step);
    }
    Ok((threshold, act_step))
}
