//! `cnn2snn convert`: a quantized Keras model becomes Akida 1.0 layers.
//!
//! Each Akida layer is a neural layer, an optional pooling and an optional
//! activation of the (syncretized) Keras chain, behind an InputData layer
//! when the input has neither 1 nor 3 channels ([`plan::input_data_dims`]).
//! Its integer variables follow cnn2snn, in its mix of float32 and float64
//! (numpy's promotion in `weights_ops._convert_layer_thresholds`), with
//! `S = f32(input_scale) * sf` a float32 product:
//!
//! - weights `round(quantize(w) * sf)`, flipped for (separable) convolutions,
//!   fully connected rows reordered to Akida's (C, W, H) flattening;
//! - threshold, in float64 from those float32 values:
//!   `floor(S * (step/2 - bias))` with activation, `floor(S * -bias)` without;
//!   the input convolution adds `sum(w_int) * input_shift`, global average
//!   pooling multiplies by H*W, both before the floor;
//! - act_step, in float32: `S * ((step * 2^bits) / 16)` with activation, `S`
//!   without; times H*W for global average pooling;
//! - the next layer's input scale is `f32(1 / step)`.
//!
//! Then act_steps beyond the hardware range are equalized ([`super::equalize`]).

use akida_core::activation::MIN_ACT_STEP;
use akida_core::{Dims, LayerKind};

use crate::formats::akd::{self, ConvertedInputData, ConvertedLayer, ConvertedModel};
use crate::keras::{self, Layer, Quantizer, WeightRole};

use super::chain::Chain;
use super::check::{self, Report};
use super::equalize;
use super::plan::{self, activation_bits, activation_step, quantizers, InputScaling, PlannedLayer};
use super::quantizer;
use super::Cnn2snnError;

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

/// Converts a quantized Keras model.
pub fn convert(model: &keras::Model, options: &ConvertOptions) -> Result<Conversion, Cnn2snnError> {
    let scaling = plan::input_scaling(model, options.input_scaling)?;
    super::check_finite(model)?;
    // Unknown and Akida 2.0 classes are refused by name before any transform.
    let classes = check::class_report(model);
    if classes.has_errors() {
        return Err(Cnn2snnError::Incompatible(classes));
    }
    let chain = plan::prepare(model)?;
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
    let input_data = plan::input_data_dims(&chain.input_shape()?).map(|dims| ConvertedInputData {
        name: plan::input_data_name(&model.name),
        dims,
        bits: plan::INPUT_DATA_BITS,
    });
    let mut notes = Vec::new();
    if input_data.is_some() && scaling.shift != 0.0 {
        notes.push(format!(
            "the input shift {} is ignored: cnn2snn shifts the input of an InputConvolutional first layer only, and this model's input goes through an InputData layer",
            scaling.shift
        ));
    }
    let mut layers = Vec::with_capacity(plan.len());
    let mut input_scale = scaling.scale as f32;
    for (index, planned) in plan.iter().enumerate() {
        // Only an input convolution takes the shift (padding value and thresholds).
        let shift = match planned.geometry.kind {
            LayerKind::InputConvolutional if index == 0 => scaling.shift,
            _ => 0.0,
        };
        let layer = convert_layer(&chain, planned, input_scale, shift)?;
        // The engine refuses the layer when cnn2snn sets such an act_step.
        let small = layer
            .act_step
            .iter()
            .enumerate()
            .find(|&(_, v)| v.is_nan() || v < MIN_ACT_STEP);
        if let Some((filter, value)) = small {
            return Err(Cnn2snnError::ActStep {
                layer: planned.name.clone(),
                filter,
                value,
            });
        }
        if let Some(a) = planned.activation {
            // The next layer sees integer levels: its input scale is 1 / step.
            input_scale = (1.0 / activation_step(&chain.layers[a])? as f64) as f32;
        }
        layers.push(layer);
    }
    notes.extend(equalize::fix_activation_variables(&mut layers)?);
    let model = akd::build_with_input(input_data, layers).map_err(Cnn2snnError::Model)?;
    Ok(Conversion {
        model,
        report,
        notes,
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
pub(super) type IntegerKernel = (Vec<i8>, Vec<f32>, Vec<usize>);

/// Quantized integer weights and scale factors of one kernel.
pub(super) fn integer_kernel(
    layer: &Layer,
    role: WeightRole,
    q: &Quantizer,
) -> Result<IntegerKernel, Cnn2snnError> {
    let w = weight(layer, role)?;
    let channels = *w.shape.last().unwrap_or(&0);
    let sf = quantizer::scale_factors(&q.kind, q.bitwidth, &w.values, channels).map_err(|e| {
        Cnn2snnError::Quantizer {
            layer: layer.name.clone(),
            source: e,
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
            (w, None, sf)
        }
        LayerKind::SeparableConvolutional => {
            let dw_q = dw_q.unwrap_or(main_q);
            let (dw, sf_dw, dw_shape) = integer_kernel(neural, WeightRole::DepthwiseKernel, dw_q)?;
            let (pw, sf_pw, _) = integer_kernel(neural, WeightRole::PointwiseKernel, main_q)?;
            // A per-tensor depthwise scale factor multiplies each pointwise one.
            let sf: Vec<f32> = sf_pw.iter().map(|&p| sf_dw[0] * p).collect();
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
    .map_err(|source| Cnn2snnError::Pack {
        layer: planned.name.clone(),
        source,
    })
}

fn broadcast(sf: &[f32], f: usize) -> Vec<f32> {
    (0..f).map(|i| sf[i % sf.len()]).collect()
}

/// `S * (thr - bias)` as cnn2snn computes it: numpy promotes the float32
/// `S`, `thr` and `bias` to float64 (the activation threshold is multiplied
/// by a float64 `np.ones`), so the subtraction and the product are float64.
fn threshold_product(s: f32, thr: f32, bias: f32) -> f64 {
    s as f64 * (thr as f64 - bias as f64)
}

/// Thresholds and act_steps of one layer, in cnn2snn's order and precision
/// (see the module documentation).
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
    let is_input = planned.geometry.kind == LayerKind::InputConvolutional;
    let mut threshold = Vec::with_capacity(f);
    let mut act_step = Vec::with_capacity(f);
    for c in 0..f {
        let shift = if is_input { input_shift } else { 0.0 };
        let shift_sum = shift_term(weights, f, c, shift);
        let (th, step) = channel_variables(
            input_scale * sf[c],
            activation,
            bias[c],
            shift_sum,
            planned.pooled_cells,
        );
        threshold.push(th.floor() as i32);
        act_step.push(step);
    }
    Ok((threshold, act_step))
}

/// The input convolution's threshold term `sum(w_int) * input_shift` of
/// channel `c` (weights in (..., f) order); 0 without a shift.
pub fn shift_term(weights: &[i8], f: usize, c: usize, shift: f64) -> f64 {
    if shift == 0.0 {
        return 0.0;
    }
    let sum: i64 = weights.iter().skip(c).step_by(f).map(|&w| w as i64).sum();
    sum as f64 * shift
}

/// One output channel's threshold before the floor (float64) and act_step
/// (float32), from `S = f32(input_scale) * sf` (float32), the layer's
/// activation `(step, bits)` if any, the folded bias, the input convolution's
/// `sum(w_int) * input_shift` (0 elsewhere) and the cells a global average
/// pooling sums: cnn2snn's arithmetic, in its order and precision.
pub fn channel_variables(
    s: f32,
    activation: Option<(f32, u32)>,
    bias: f32,
    shift_sum: f64,
    pooled_cells: Option<usize>,
) -> (f64, f32) {
    // float32: S, the activation threshold step/2 and (step * 2^bits) / 16.
    let (mut th, mut step) = match activation {
        Some((step, bits)) => {
            let half = step * 0.5;
            let astep = (step * 2f32.powi(bits as i32)) / 16.0;
            // float64 from the float32 values; the act_step product is
            // exact in float64, so rounding it to float32 is the float32 product.
            (
                threshold_product(s, half, bias),
                (s as f64 * astep as f64) as f32,
            )
        }
        None => (threshold_product(s, 0.0, bias), s),
    };
    th += shift_sum;
    if let Some(cells) = pooled_cells {
        th *= cells as f64;
        step = (step as f64 * cells as f64) as f32;
    }
    (th, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter whose threshold float32 arithmetic gets wrong by one: with
    /// `S = 1951.0905` and `bias = 1.9984815` (float32), a ReLU6 4-bit
    /// activation (`thr = 0.2`), numpy gives `floor(S * (thr - bias)) =
    /// -3510` in float64; the same in float32 rounds to -3509.
    #[test]
    fn thresholds_are_float64_products_of_float32_values() {
        let s = f32::from_bits(1156834021);
        let bias = f32::from_bits(1073729086);
        let thr = 0.4f32 * 0.5;
        assert_eq!(threshold_product(s, thr, bias).floor(), -3510.0);
        assert_eq!((s * (thr - bias)).floor(), -3509.0);
        // Another: S = 1178.5585, bias = 1.147768 give -1118 (float32: -1117).
        let (s, bias) = (f32::from_bits(1150505439), f32::from_bits(1066592784));
        assert_eq!(threshold_product(s, thr, bias).floor(), -1118.0);
        assert_eq!((s * (thr - bias)).floor(), -1117.0);
    }
}
