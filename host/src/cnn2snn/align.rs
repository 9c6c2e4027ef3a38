//! Aligning a quantized model to the integer grid of its conversion, so that
//! the converted model computes the same levels as the quantized Keras model.
//!
//! cnn2snn's conversion rounds two numbers per output channel (section 2 of
//! the semantics): the threshold `S * (step/2 - bias)` is floored to an
//! integer, and the level spacing `D = S * step`, in potential units, is
//! truncated to a multiple of `1/2^bits` (the act_step's 4 fractional bits).
//! The quantized Keras model keeps both exact, so a potential within about
//! one unit of a level boundary lands one level apart in the two, and the
//! differences travel through the layers: on the trained models of
//! `docs/TRAINING.md`, 4 to 8 % of the top-1 classes differed.
//!
//! Both roundings are exact when, per channel, `D` is a multiple of `1/2^g`
//! for some `g <= bits` and the threshold sits at `m + 1/2^(g+1)` for an
//! integer `m`: every level boundary `threshold + j D` then lies strictly
//! between the integers where the engine's cuts `floor(threshold) + floor(j
//! S16 / 2^bits)` put it, half a grid unit from each, so an integer
//! potential is on the same side of both. [`align`] moves each channel
//! there: it scales the channel's kernel by a factor `c` near 1 (the integer
//! weights do not change: the max quantizer's scale factor divides by the
//! same `c`, so only `S` moves, to `S / c`) and shifts its bias by less than
//! one potential unit. `g` is the coarsest grid that keeps the scale change
//! under [`MAX_SHIFT_LEVELS`] of a level at the top level, for the widest
//! margin against the float rounding of the Keras forward pass. A last layer
//! without activation gets an integer threshold (or the least float32 step
//! above one), so `predict`'s `(p - threshold) / act_step` is the Keras
//! output.
//!
//! Every aligned channel is checked against the conversion's own arithmetic
//! ([`super::convert::channel_variables`] and the engine's cuts,
//! [`akida_core::activation::level_cut`]); a channel that does not check (or
//! that the conversion would equalize, or a per-tensor quantized kernel) is
//! left as it was and counted. One difference no alignment removes: the
//! engine saturates potentials (after pooling) to 20 bits in every layer but
//! the input convolution, and the Keras model does not; channels whose level
//! boundaries reach past that range are counted (`saturating`), since their
//! levels can still differ where potentials get there (seen on randomly
//! initialized models, whose thresholds reach +-500,000; trained models stay
//! far inside). The model stays a cnn2snn model: cnn2snn
//! converts it as before, into variables that now agree with its Keras
//! forward pass.

use akida_core::activation::{level_cut, step_divisor};
use akida_core::saturation::{POTENTIAL_MAX, POTENTIAL_MIN};
use akida_core::LayerKind;

use crate::keras::{self, LayerConfig, QuantizerKind, WeightRole};

use super::check;
use super::convert::{channel_variables, integer_kernel, shift_term};
use super::plan::{self, activation_bits, activation_step, quantizers, InputScaling};
use super::Cnn2snnError;

/// Largest move of the top level boundary, in levels, that a coarser grid
/// may cost (the scale change times the number of levels).
pub const MAX_SHIFT_LEVELS: f64 = 1.0 / 32.0;

/// How far above its integer the threshold of a layer without activation
/// may stay, in potential units, where no float32 bias puts it exactly on
/// it (the floor must give that integer: the threshold never goes below).
const OUTPUT_SLACK: f64 = 1.0 / 4096.0;

/// The spacing target sits this far above the grid (relatively), so that the
/// float32 products of the conversion never truncate it one unit below.
const SPACING_BUMP: f64 = 1.0 / (1u64 << 21) as f64;

/// The hardware's act_step limits: beyond them the conversion equalizes
/// (moves the excess into the next layer), which alignment does not model.
const CNP_ACT_STEP_LIMIT: f32 = ((1 << 16) - 1) as f32;
const HRC_ACT_STEP_LIMIT: f32 = ((1 << 20) - 1) as f32;

/// What alignment did to one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerAlignment {
    pub name: String,
    pub channels: usize,
    /// Channels whose conversion now agrees with the Keras forward pass.
    pub aligned: usize,
    /// Channels whose level boundaries reach past the engine's 20-bit
    /// potential range: aligned or not, their top levels (or level 0) can
    /// differ, where the engine saturates and Keras does not.
    pub saturating: usize,
    /// Why the layer was left as it was, when it was.
    pub skipped: Option<String>,
    /// Largest relative change of a channel's kernel scale.
    pub max_scale_change: f64,
    /// Largest bias shift, in potential units.
    pub max_threshold_shift: f64,
    /// Smallest distance, in potential units, between a Keras level boundary
    /// and the nearest integer potential (how much float rounding the Keras
    /// forward pass may make before a level could differ); `None` for a
    /// layer without activation.
    pub min_margin: Option<f64>,
}

impl LayerAlignment {
    fn note_margin(&mut self, margin: Option<f64>) {
        if let Some(m) = margin {
            self.min_margin = Some(self.min_margin.map_or(m, |x| x.min(m)));
        }
    }
}

/// An aligned model and what was done.
#[derive(Clone, Debug)]
pub struct Alignment {
    pub model: keras::Model,
    pub layers: Vec<LayerAlignment>,
}

impl Alignment {
    /// Channels aligned, of all channels.
    pub fn counts(&self) -> (usize, usize) {
        self.layers
            .iter()
            .fold((0, 0), |(a, n), l| (a + l.aligned, n + l.channels))
    }

    /// Channels whose level boundaries reach the engine's saturation.
    pub fn saturating(&self) -> usize {
        self.layers.iter().map(|l| l.saturating).sum()
    }
}

/// What the conversion and the Keras forward pass of one channel are.
#[derive(Clone, Copy, Debug)]
struct Channel {
    /// `input_scale * sf` (float32, as the conversion computes it).
    s: f32,
    bias: f32,
    /// The input convolution's `sum(w_int) * shift` (0 elsewhere).
    shift_sum: f64,
}

/// The layer around one channel.
#[derive(Clone, Copy, Debug)]
struct Context {
    /// `(step, bits)` of the activation; `None` on a last layer.
    activation: Option<(f32, u32)>,
    pooled_cells: Option<usize>,
    act_step_limit: f32,
    /// The engine saturates this layer's potentials (after pooling) to 20
    /// bits (every layer but the input convolution).
    saturates: bool,
}

impl Context {
    /// Whether a channel's level boundaries reach past the 20-bit range the
    /// engine saturates potentials to: levels there can differ from the
    /// Keras model's whatever the alignment (the Keras model does not
    /// saturate).
    fn reaches_saturation(&self, ch: &Channel) -> bool {
        let (Some((_, bits)), true) = (self.activation, self.saturates) else {
            return false;
        };
        let Some(spacing) = self.spacing(ch.s) else {
            return false;
        };
        let th = self.threshold(ch);
        let top = th + ((1u64 << bits) - 2) as f64 * spacing;
        th < POTENTIAL_MIN as f64 || top >= POTENTIAL_MAX as f64
    }

    fn cells(&self) -> f64 {
        self.pooled_cells.unwrap_or(1) as f64
    }

    /// The Keras level spacing `S * step` (times the pooled cells), in
    /// potential units.
    fn spacing(&self, s: f32) -> Option<f64> {
        self.activation
            .map(|(step, _)| s as f64 * step as f64 * self.cells())
    }

    /// The threshold, before the floor, that the bias gives.
    fn threshold(&self, ch: &Channel) -> f64 {
        channel_variables(
            ch.s,
            self.activation,
            ch.bias,
            ch.shift_sum,
            self.pooled_cells,
        )
        .0
    }

    /// The bias whose threshold is `target` (inverting [`Self::threshold`]).
    fn bias_for(&self, ch: &Channel, target: f64) -> f32 {
        let half = self.activation.map_or(0.0, |(step, _)| (step * 0.5) as f64);
        (half - (target / self.cells() - ch.shift_sum) / ch.s as f64) as f32
    }

    /// Whether the converted channel cuts every integer potential where the
    /// Keras forward pass does; with the smallest margin (potential units)
    /// between a Keras boundary and an integer.
    fn check(&self, ch: &Channel) -> Option<Option<f64>> {
        let (th, act_step) = channel_variables(
            ch.s,
            self.activation,
            ch.bias,
            ch.shift_sum,
            self.pooled_cells,
        );
        let threshold = th.floor();
        if threshold.is_nan() || threshold.abs() >= i32::MAX as f64 {
            return None;
        }
        let Some((_, bits)) = self.activation else {
            // predict is (p - floor(th)) / act_step, Keras's (p - th) / S.
            return (th - threshold <= OUTPUT_SLACK).then_some(None);
        };
        // The conversion equalizes act_steps beyond the limit (every layer
        // with an activation), which alignment does not model.
        if act_step > self.act_step_limit {
            return None;
        }
        let divisor = step_divisor(act_step);
        if divisor < 1 {
            return None;
        }
        let spacing = self.spacing(ch.s)?;
        let mut margin = f64::INFINITY;
        for j in 0..(1usize << bits) - 1 {
            let keras = th + j as f64 * spacing;
            let engine = level_cut(threshold as i32, divisor, bits as u8, j);
            // An integer p reaches level j + 1 in Keras iff p > keras, on the
            // engine iff p > engine.
            if keras.floor() != engine as f64 {
                return None;
            }
            margin = margin.min(keras - keras.floor()).min(keras.ceil() - keras);
        }
        Some(Some(margin))
    }
}

/// The grid `1/2^g` and the spacing on it for a channel of spacing `d`: the
/// coarsest grid whose rounding moves the top boundary by at most
/// [`MAX_SHIFT_LEVELS`], else the finest, `1/2^bits`.
fn grid_spacing(d: f64, bits: u32) -> Option<(u32, f64)> {
    let levels = ((1u64 << bits) - 1) as f64;
    for g in 0..=bits {
        let unit = (1u64 << g) as f64;
        let target = (d * unit).round() / unit;
        if target <= 0.0 {
            continue;
        }
        if g == bits || levels * (target - d).abs() / d <= MAX_SHIFT_LEVELS {
            return Some((g, target));
        }
    }
    None
}

/// Aligns every channel it can (see the module documentation); `scaling` as
/// `cnn2snn convert -sc/-sh` takes it, when the model has no Rescaling.
pub fn align(
    model: &keras::Model,
    scaling: Option<InputScaling>,
) -> Result<Alignment, Cnn2snnError> {
    let scaling = plan::input_scaling(model, scaling)?;
    super::check_finite(model)?;
    if let Some(bn) = model
        .layers
        .iter()
        .find(|l| matches!(l.config, LayerConfig::BatchNormalization(_)))
    {
        return Err(Cnn2snnError::Unsupported(format!(
            "layer `{}`: alignment needs batch normalization folded into the weights, as `cnn2snn quantize` folds it",
            bn.name
        )));
    }
    let chain = plan::prepare(model)?;
    let (planned, report) = check::check_chain(&chain, scaling);
    let Some(planned) = planned.filter(|_| !report.has_errors()) else {
        return Err(Cnn2snnError::Incompatible(report));
    };
    let mut out = model.clone();
    let mut layers = Vec::with_capacity(planned.len());
    let mut input_scale = scaling.scale as f32;
    for (index, p) in planned.iter().enumerate() {
        let neural = &chain.layers[p.neural];
        let activation = match p.activation {
            Some(a) => {
                let layer = &chain.layers[a];
                Some((
                    activation_step(layer)?,
                    activation_bits(&layer.config).unwrap_or(0),
                ))
            }
            None => None,
        };
        let is_input = p.geometry.kind == LayerKind::InputConvolutional;
        let context = Context {
            activation,
            pooled_cells: p.pooled_cells,
            act_step_limit: if is_input {
                HRC_ACT_STEP_LIMIT
            } else {
                CNP_ACT_STEP_LIMIT
            },
            saturates: !is_input,
        };
        let shift = if is_input && index == 0 {
            scaling.shift
        } else {
            0.0
        };
        let layer = out
            .layer_mut(&neural.name)
            .expect("the chain's layers come from the model");
        layers.push(align_layer(layer, &context, input_scale, shift)?);
        if let Some((step, _)) = activation {
            input_scale = (1.0 / step as f64) as f32;
        }
    }
    Ok(Alignment { model: out, layers })
}

/// The kernel whose per-channel scale alignment moves, and the depthwise
/// scale factor that multiplies it (separable layers).
fn scaled_kernel(layer: &keras::Layer) -> Result<(WeightRole, f32), Cnn2snnError> {
    let (main_q, dw_q) = quantizers(&layer.config).ok_or_else(|| {
        Cnn2snnError::Unsupported(format!("layer `{}` is not quantized", layer.name))
    })?;
    match &layer.config {
        LayerConfig::QuantizedSeparableConv2D { .. } => {
            let (_, sf_dw, _) =
                integer_kernel(layer, WeightRole::DepthwiseKernel, dw_q.unwrap_or(main_q))?;
            Ok((WeightRole::PointwiseKernel, sf_dw[0]))
        }
        _ => Ok((WeightRole::Kernel, 1.0)),
    }
}

/// The channels of a layer as the conversion sees them.
fn channels(
    layer: &keras::Layer,
    role: WeightRole,
    sf_dw: f32,
    input_scale: f32,
    shift: f64,
) -> Result<Vec<Channel>, Cnn2snnError> {
    let (main_q, _) = quantizers(&layer.config).expect("checked by scaled_kernel");
    let (w_int, sf, shape) = integer_kernel(layer, role, main_q)?;
    let f = *shape.last().unwrap_or(&0);
    let bias = layer.bias().map(|b| b.values.clone());
    Ok((0..f)
        .map(|c| Channel {
            s: input_scale * (sf_dw * sf[c % sf.len()]),
            bias: bias.as_ref().map_or(0.0, |b| b[c]),
            shift_sum: shift_term(&w_int, f, c, shift),
        })
        .collect())
}

fn align_layer(
    layer: &mut keras::Layer,
    context: &Context,
    input_scale: f32,
    shift: f64,
) -> Result<LayerAlignment, Cnn2snnError> {
    let (role, sf_dw) = scaled_kernel(layer)?;
    let before = channels(layer, role, sf_dw, input_scale, shift)?;
    let mut report = LayerAlignment {
        name: layer.name.clone(),
        channels: before.len(),
        aligned: 0,
        saturating: 0,
        skipped: None,
        max_scale_change: 0.0,
        max_threshold_shift: 0.0,
        min_margin: None,
    };
    let (main_q, _) = quantizers(&layer.config).expect("checked by scaled_kernel");
    let refusal = if main_q.kind != QuantizerKind::MaxPerAxis && context.activation.is_some() {
        Some(format!(
            "its kernel is quantized per tensor ({}): a channel's scale cannot move alone",
            main_q.kind.class_name()
        ))
    } else if layer.bias().is_none() {
        Some("it has no bias to move".into())
    } else {
        None
    };
    if let Some(why) = refusal {
        // Nothing moves; channels whose conversion is already exact (a
        // threshold of 0 without activation, say) still count.
        for ch in &before {
            if let Some(margin) = context.check(ch) {
                report.aligned += 1;
                report.note_margin(margin);
            }
        }
        if report.aligned < report.channels {
            report.skipped = Some(why);
        }
        report.saturating = before
            .iter()
            .filter(|ch| context.reaches_saturation(ch))
            .count();
        return Ok(report);
    }
    let original = layer.weights.clone();
    // 1. Each channel's kernel scaled so that its spacing lands on a grid.
    let mut grids = vec![None; before.len()];
    let mut factors = vec![1.0f64; before.len()];
    if let Some((_, bits)) = context.activation {
        for (c, ch) in before.iter().enumerate() {
            let Some(d) = context.spacing(ch.s) else {
                continue;
            };
            if let Some((g, target)) = grid_spacing(d, bits) {
                factors[c] = d / (target * (1.0 + SPACING_BUMP));
                grids[c] = Some(g);
            }
        }
        scale_channels(layer, role, &factors);
    }
    // 2. Each bias moved so that the threshold sits half a grid unit above
    // an integer (just above one without activation), with the new scales.
    let scaled = channels(layer, role, sf_dw, input_scale, shift)?;
    let mut biases: Vec<f32> = scaled.iter().map(|ch| ch.bias).collect();
    for (c, ch) in scaled.iter().enumerate() {
        biases[c] = match (context.activation, grids[c]) {
            (None, _) => output_bias(context, ch),
            (Some(_), Some(g)) => {
                let margin = 0.5 / (1u64 << g) as f64;
                let target = (context.threshold(ch) - margin).round() + margin;
                context.bias_for(ch, target)
            }
            (Some(_), None) => continue,
        };
    }
    set_biases(layer, &biases);
    // 3. Checked against the conversion's arithmetic; a channel that fails
    // goes back to what it was.
    let after = channels(layer, role, sf_dw, input_scale, shift)?;
    let mut restore = Vec::new();
    for (c, ch) in after.iter().enumerate() {
        match context.check(ch) {
            Some(margin) => {
                report.aligned += 1;
                report.max_scale_change = report.max_scale_change.max((factors[c] - 1.0).abs());
                let shift = (context.threshold(ch) - context.threshold(&before[c])).abs();
                report.max_threshold_shift = report.max_threshold_shift.max(shift);
                report.note_margin(margin);
            }
            None => restore.push(c),
        }
    }
    if !restore.is_empty() {
        restore_channels(layer, &original, role, &restore);
    }
    report.saturating = channels(layer, role, sf_dw, input_scale, shift)?
        .iter()
        .filter(|ch| context.reaches_saturation(ch))
        .count();
    Ok(report)
}

/// The bias that puts the threshold of a channel without activation on the
/// nearest integer, or the least float32 step above it.
fn output_bias(context: &Context, ch: &Channel) -> f32 {
    let target = context.threshold(ch).round();
    let mut bias = context.bias_for(ch, target);
    for _ in 0..16 {
        let th = context.threshold(&Channel { bias, ..*ch });
        if th >= target {
            break;
        }
        // The threshold is S * (0 - bias): a lower bias raises it (S > 0).
        bias = bias.next_down();
    }
    bias
}

/// Multiplies channel `c` (last axis) of the kernel by `factors[c]`.
fn scale_channels(layer: &mut keras::Layer, role: WeightRole, factors: &[f64]) {
    let w = layer.weight_mut(role).expect("the kernel was read");
    let f = factors.len();
    for (i, v) in w.values.iter_mut().enumerate() {
        *v = (*v as f64 * factors[i % f]) as f32;
    }
}

fn set_biases(layer: &mut keras::Layer, biases: &[f32]) {
    let b = layer
        .weight_mut(WeightRole::Bias)
        .expect("the bias was read");
    b.values.copy_from_slice(biases);
}

/// Puts channels back as `original` had them, in the kernel and the bias.
fn restore_channels(
    layer: &mut keras::Layer,
    original: &[keras::Weight],
    role: WeightRole,
    restore: &[usize],
) {
    for r in [role, WeightRole::Bias] {
        let old = original
            .iter()
            .find(|w| w.role() == Some(r))
            .expect("the layer had this weight");
        let w = layer.weight_mut(r).expect("the layer has this weight");
        let f = *w.shape.last().unwrap_or(&1);
        for (i, v) in w.values.iter_mut().enumerate() {
            if restore.contains(&(i % f)) {
                *v = old.values[i];
            }
        }
    }
}

/// One line about a layer's alignment, for the command line.
pub fn describe(layer: &LayerAlignment) -> String {
    if let Some(why) = &layer.skipped {
        return format!(
            "{}: left as it was ({} of {} channels already exact): {why}",
            layer.name, layer.aligned, layer.channels
        );
    }
    let margin = layer
        .min_margin
        .map_or(String::new(), |m| format!(", margin >= {m:.4}"));
    let saturating = match layer.saturating {
        0 => String::new(),
        n => format!("; {n} reach past the 20-bit potential range, where the engine saturates and levels can differ"),
    };
    format!(
        "{}: {} of {} channels aligned (kernel scale moved <= {:.2e}, threshold <= {:.3} potential units{margin}){saturating}",
        layer.name, layer.aligned, layer.channels, layer.max_scale_change, layer.max_threshold_shift
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarsest_grid_within_the_shift_bound_is_taken() {
        // 100.2 -> 100: the top boundary moves 15 * 0.2 / 100.2 = 0.03 level.
        assert_eq!(grid_spacing(100.2, 4), Some((0, 100.0)));
        // 14.03 -> 14 would move it 0.032 level: no grid but the finest is
        // close enough, and on the finest, 14.03 rounds to 14.
        assert_eq!(grid_spacing(14.03, 4), Some((4, 14.0)));
        // 3.3: 3.25 on quarters is 0.23 level away; sixteenths: 3.3125.
        assert_eq!(grid_spacing(3.3, 4), Some((4, 3.3125)));
        // Two bits: quarters are the finest grid.
        assert_eq!(grid_spacing(3.3, 2), Some((2, 3.25)));
        // Below the engine's smallest step on every grid.
        assert_eq!(grid_spacing(0.01, 4), None);
    }

    #[test]
    fn a_channel_on_the_grid_checks_and_one_off_it_does_not() {
        let context = Context {
            activation: Some((0.4, 4)),
            pooled_cells: None,
            act_step_limit: CNP_ACT_STEP_LIMIT,
            saturates: true,
        };
        // S = 35 puts the spacing at S * step = 14: on the integer grid.
        let on = Channel {
            s: 35.0,
            bias: 0.0,
            shift_sum: 0.0,
        };
        let target = (context.threshold(&on) - 0.5).round() + 0.5;
        let aligned = Channel {
            bias: context.bias_for(&on, target),
            ..on
        };
        let margin = context
            .check(&aligned)
            .expect("aligned")
            .expect("activation");
        assert!(margin > 0.49, "{margin}");
        // A threshold at an integer plus 0.9 with a spacing of 14.3: the
        // floor drops 0.9, and some boundary lands on the other side of an
        // integer.
        let off = Channel {
            s: 35.75,
            bias: context.bias_for(&Channel { s: 35.75, ..on }, 3.9),
            shift_sum: 0.0,
        };
        assert!(context.check(&off).is_none());
    }
}
