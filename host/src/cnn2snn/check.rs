//! The compatibility check of a Keras model with Akida 1.0, at two levels.
//!
//! Errors are what cnn2snn itself refuses to convert (unsupported layers, a
//! non-serial graph, batch normalization that cannot be folded, max pooling
//! padded differently from its convolution, bit widths the engine cannot
//! run, ...). Warnings are the AKD1000 silicon limits that the software
//! engine does not enforce (BrainChip's "Akida 1.0 hardware constraints"):
//! a model that only warns converts and runs here and in the engine, but
//! would not map onto the chip. Every finding names the layer and the rule.

use std::fmt;

use crate::keras::{self, LayerConfig, QuantizerKind, Shape};

use super::chain::{self, Chain};
use super::hardware;
use super::plan::{self, activation_bits, quantizers, InputScaling, PlannedLayer};
use super::Cnn2snnError;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Warning,
    Error,
}

/// The rules, one per kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    // Errors (cnn2snn refuses).
    NotSerial,
    UnsupportedLayer,
    Akida2Layer,
    BatchNormNotFolded,
    NotQuantized,
    UnsupportedQuantizer,
    WeightBits,
    ActivationBits,
    SeparableBitsDiffer,
    MaxPoolPadding,
    PoolingPlacement,
    NeuralWithoutActivation,
    SuccessiveActivations,
    FlattenPlacement,
    ReshapeShape,
    RescalingPlacement,
    ActivationBeforeNeural,
    DenseInputShape,
    Dilation,
    DataFormat,
    InputLayerKind,
    InputShape,
    InputDataShift,
    StrideAboveKernel,
    PoolStrideAboveSize,
    NoNeuralLayer,
    Transform,
    NonFiniteWeight,
    // Warnings (AKD1000 silicon limits).
    FullyConnectedInput,
    ValidPadding,
    SeparableWeightBits,
    StrideKernel,
    KernelSize,
    InputConvFilters,
    InputSize,
    InputConvPooling,
    MaxPoolSize,
    MaxPoolFollower,
    GlobalPoolSize,
    HardwareWeightBits,
    FullyConnectedInputSize,
}

impl Rule {
    /// A short kebab-case name shown in reports.
    pub fn name(&self) -> String {
        let debug = format!("{self:?}");
        let mut out = String::new();
        for (i, ch) in debug.chars().enumerate() {
            if ch.is_ascii_uppercase() && i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        }
        out
    }
}

/// One finding: level, rule, layer and what is wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub level: Level,
    pub rule: Rule,
    pub layer: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(
            f,
            "{level} [{}] layer `{}`: {}",
            self.rule.name(),
            self.layer,
            self.message
        )
    }
}

/// All findings of a check.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        Ok(())
    }
}

impl Report {
    fn push(&mut self, level: Level, rule: Rule, layer: &str, message: impl Into<String>) {
        self.findings.push(Finding {
            level,
            rule,
            layer: layer.to_owned(),
            message: message.into(),
        });
    }

    fn error(&mut self, rule: Rule, layer: &str, message: impl Into<String>) {
        self.push(Level::Error, rule, layer, message);
    }

    pub(crate) fn warn(&mut self, rule: Rule, layer: &str, message: impl Into<String>) {
        self.push(Level::Warning, rule, layer, message);
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn has_warnings(&self) -> bool {
        self.warnings().next().is_some()
    }

    /// `--strict`: every warning becomes an error.
    pub fn promote_warnings(&mut self) {
        for f in &mut self.findings {
            f.level = Level::Error;
        }
    }

    /// Whether some finding breaks `rule` at `layer`.
    pub fn has(&self, rule: Rule, layer: &str) -> bool {
        self.findings
            .iter()
            .any(|f| f.rule == rule && f.layer == layer)
    }
}

/// Checks a Keras model: the full report (errors and warnings).
pub fn check_model(model: &keras::Model, flags: Option<InputScaling>) -> Report {
    let mut report = Report::default();
    let scaling = match plan::input_scaling(model, flags) {
        Ok(s) => s,
        Err(e) => {
            report.error(
                Rule::RescalingPlacement,
                scaling_culprit(model),
                e.to_string(),
            );
            return report;
        }
    };
    report.findings.extend(class_report(model).findings);
    if report.has_errors() {
        return report;
    }
    if let Err(e) = super::check_finite(model) {
        // The finding names the layer itself.
        let text = e.to_string();
        let (layer, message) = match &e {
            Cnn2snnError::NonFinite { layer, .. } => {
                let prefix = format!("layer `{layer}`: ");
                (layer.as_str(), text.strip_prefix(&prefix).unwrap_or(&text))
            }
            _ => (model.name.as_str(), text.as_str()),
        };
        report.error(Rule::NonFiniteWeight, layer, message);
        return report;
    }
    match plan::prepare(model) {
        Ok(chain) => {
            let (_, r) = check_chain(&chain, scaling);
            report.findings.extend(r.findings);
        }
        Err(e) => {
            let (rule, layer) = transform_rule(&e, &model.name);
            report.error(rule, &layer, e.to_string());
        }
    }
    report
}

/// The layer an input scaling error is about: the leading Rescaling layer
/// (the one `plan::input_scaling` reads), or the model when the scaling
/// comes from the flags alone.
fn scaling_culprit(model: &keras::Model) -> &str {
    model
        .layers
        .iter()
        .take(2)
        .find(|l| matches!(l.config, LayerConfig::Rescaling { .. }))
        .map_or(model.name.as_str(), |l| l.name.as_str())
}

/// Layers of a class this tool chain does not model: a quantizeml layer
/// (Akida 2.0) or any other unknown class. Checked first, because nothing
/// after them (shapes, batch norm folding) can be worked out.
pub fn class_report(model: &keras::Model) -> Report {
    let mut report = Report::default();
    for layer in &model.layers {
        let LayerConfig::Unknown {
            module, class_name, ..
        } = &layer.config
        else {
            continue;
        };
        if module
            .as_deref()
            .is_some_and(|m| m.starts_with("quantizeml"))
        {
            report.error(
                Rule::Akida2Layer,
                &layer.name,
                format!("{class_name} is a quantizeml layer of an Akida 2.0 model; this tool chain converts Akida 1.0 (cnn2snn) models only"),
            );
        } else {
            report.error(
                Rule::UnsupportedLayer,
                &layer.name,
                format!("layer type {class_name} is not supported for Akida 1.0 conversion"),
            );
        }
    }
    report
}

fn transform_rule(e: &Cnn2snnError, model: &str) -> (Rule, String) {
    match e {
        Cnn2snnError::NotSerial { layer, .. } => (Rule::NotSerial, layer.clone()),
        Cnn2snnError::NegativeGamma { layer, .. }
        | Cnn2snnError::NullGamma { layer, .. }
        | Cnn2snnError::BatchNormAxis { layer, .. }
        | Cnn2snnError::NegativeVariance { layer, .. } => (Rule::Transform, layer.clone()),
        Cnn2snnError::Shape { layer, .. } | Cnn2snnError::MissingWeight { layer, .. } => {
            (Rule::Transform, layer.clone())
        }
        _ => (Rule::Transform, model.to_owned()),
    }
}

/// Checks a prepared chain; returns the plan of Akida layers when there is
/// no error, and the report.
pub fn check_chain(chain: &Chain, scaling: InputScaling) -> (Option<Vec<PlannedLayer>>, Report) {
    let mut report = Report::default();
    let plan = match checked_plan(chain, scaling, &mut report) {
        Ok(plan) => plan,
        Err(e) => {
            let (rule, layer) = transform_rule(&e, &chain.name);
            report.error(rule, &layer, e.to_string());
            None
        }
    };
    (plan, report)
}

/// The plan of `chain` when the rules find no error (`None` when they do,
/// reported; `Err` when the chain has no shapes or no plan).
fn checked_plan(
    chain: &Chain,
    scaling: InputScaling,
    report: &mut Report,
) -> Result<Option<Vec<PlannedLayer>>, Cnn2snnError> {
    let shapes = chain.input_shapes()?;
    structure_errors(chain, &shapes, report);
    if report.has_errors() {
        return Ok(None);
    }
    let plan = plan::plan(chain, scaling)?;
    engine_errors(chain, &plan, report);
    if report.has_errors() {
        return Ok(None);
    }
    hardware::warnings(chain, &plan, report);
    Ok(Some(plan))
}

/// cnn2snn's rules on the chain (`check_sequential_compatibility` and the
/// conversion's own refusals).
fn structure_errors(chain: &Chain, shapes: &[Shape], report: &mut Report) {
    let input = match chain.input_shape() {
        Ok(s) => s,
        Err(_) => return,
    };
    if input.len() != 1 && input.len() != 3 {
        report.error(
            Rule::InputShape,
            &chain.input.name,
            format!("the input has shape {input:?}: it must be (N,) or (H, W, C)"),
        );
    }
    // cnn2snn's rule: an input with 1 or 3 channels (last axis) feeds an
    // InputConvolutional layer, any other one an InputData layer.
    let input_data = plan::input_data_dims(&input).is_some();
    let image = matches!(input.as_slice(), [1 | 3] | [_, _, 1 | 3]);
    let mut last_neural: Option<&str> = None;
    let mut last_activation: Option<&str> = Some(chain.input.name.as_str());
    let mut seen_neural = false;
    let layers = &chain.layers;
    for (i, layer) in layers.iter().enumerate() {
        let name = layer.name.as_str();
        let cfg = &layer.config;
        data_format_errors(layer, report);
        if chain::is_neural(cfg) {
            let input_conv = !seen_neural && image;
            if input_conv {
                first_layer_errors(layer, report);
            }
            neural_errors(layer, &shapes[i], input_conv, report);
            if let Some(prev) = last_neural {
                report.error(
                    Rule::NeuralWithoutActivation,
                    name,
                    format!("an activation layer is required between the two neural layers `{prev}` and `{name}`"),
                );
            }
            last_neural = Some(name);
            last_activation = None;
            seen_neural = true;
            continue;
        }
        match cfg {
            LayerConfig::ReLU(_) | LayerConfig::QuantizedReLU { .. } | LayerConfig::ActivationDiscreteRelu { .. } => {
                if let Some(prev) = last_activation {
                    report.error(
                        Rule::SuccessiveActivations,
                        name,
                        format!("a neural layer is required between the activation layers `{prev}` and `{name}`"),
                    );
                }
                activation_errors(layer, report);
                last_neural = None;
                last_activation = Some(name);
            }
            LayerConfig::MaxPooling2D(_) | LayerConfig::GlobalAveragePooling2D { .. } => {
                pooling_errors(layers, i, report)
            }
            LayerConfig::Flatten => {
                if let Some(next) = layers.get(i + 1) {
                    if !matches!(next.config, LayerConfig::Dense(_) | LayerConfig::QuantizedDense { .. }) {
                        report.error(
                            Rule::FlattenPlacement,
                            name,
                            format!("a Flatten layer is only supported before a Dense layer, not before `{}`", next.name),
                        );
                    }
                }
            }
            LayerConfig::Reshape { .. } => reshape_errors(layer, &shapes[i], report),
            LayerConfig::Rescaling { scale, offset } => {
                if i != 0 {
                    report.error(Rule::RescalingPlacement, name, "a Rescaling layer must be the first layer of the model");
                } else if input_data && *offset != 0.0 {
                    // cnn2snn keeps a Rescaling in front of an InputData
                    // layer only without an offset ("unsupported type Rescaling").
                    report.error(
                        Rule::InputDataShift,
                        name,
                        format!(
                            "a Rescaling with an offset (an input shift of {}) is not supported in front of an InputData layer (the input has {} channels, not 1 or 3): only an InputConvolutional first layer takes an input shift",
                            -offset / scale,
                            input.last().copied().unwrap_or(0)
                        ),
                    );
                }
            }
            LayerConfig::Activation { activation } => {
                if layers[i + 1..].iter().any(|l| chain::is_neural(&l.config)) {
                    report.error(
                        Rule::ActivationBeforeNeural,
                        name,
                        format!("activation `{activation}` is not supported before a neural layer (only ReLU and quantized activations are)"),
                    );
                }
            }
            LayerConfig::BatchNormalization(_) => report.error(
                Rule::BatchNormNotFolded,
                name,
                "this BatchNormalization does not follow a neural layer (for example it comes after an activation), so it cannot be folded",
            ),
            other => report.error(
                Rule::UnsupportedLayer,
                name,
                format!("layer type {} is not supported for Akida 1.0 conversion", other.class_name()),
            ),
        }
    }
    if !seen_neural {
        report.error(
            Rule::NoNeuralLayer,
            &chain.name,
            "the model has no neural layer",
        );
    }
}

/// The layers the engine itself refuses to make (so cnn2snn's conversion
/// fails): a Convolutional or SeparableConvolutional stride above its kernel
/// ("Strides > kernel size are not supported"), a max pooling stride above
/// its size ("Parameter pool_stride cannot be higher than pool_size.").
fn engine_errors(chain: &Chain, plan: &[PlannedLayer], report: &mut Report) {
    for p in plan {
        let g = &p.geometry;
        let (k, s) = (g.kernel, g.stride);
        let convolution = matches!(
            g.kind,
            akida_core::LayerKind::Convolutional | akida_core::LayerKind::SeparableConvolutional
        );
        if convolution && (s.rows > k.rows || s.cols > k.cols) {
            report.error(
                Rule::StrideAboveKernel,
                &p.name,
                format!(
                    "stride {}x{} is larger than the {}x{} kernel: the engine refuses a {} layer whose stride exceeds its kernel (\"Strides > kernel size are not supported\")",
                    s.rows, s.cols, k.rows, k.cols, g.kind.name()
                ),
            );
        }
        if let akida_core::Pooling::Max { size, stride } = g.pooling {
            if stride.rows > size.rows || stride.cols > size.cols {
                report.error(
                    Rule::PoolStrideAboveSize,
                    hardware::pooling_name(chain, p),
                    format!(
                        "max pooling stride {}x{} is larger than its {}x{} size: the engine refuses it (\"Parameter pool_stride cannot be higher than pool_size.\")",
                        stride.rows, stride.cols, size.rows, size.cols
                    ),
                );
            }
        }
    }
}

fn first_layer_errors(layer: &keras::Layer, report: &mut Report) {
    if !matches!(
        layer.config,
        LayerConfig::QuantizedConv2D { .. } | LayerConfig::Conv2D(_)
    ) {
        report.error(
            Rule::InputLayerKind,
            &layer.name,
            format!("the first neural layer must be a QuantizedConv2D (InputConvolutional) when the input has 1 or 3 channels, found {} (another channel count makes an InputData input, which any neural layer may follow)", layer.config.class_name()),
        );
    }
}

fn raw_str<'a>(layer: &'a keras::Layer, key: &str) -> Option<&'a str> {
    layer.raw.as_ref()?.config.get(key)?.as_str()
}

/// Every layer with a `data_format` (convolutions, poolings, flatten) must
/// be `channels_last`, as cnn2snn requires.
fn data_format_errors(layer: &keras::Layer, report: &mut Report) {
    if raw_str(layer, "data_format") == Some("channels_first") {
        report.error(
            Rule::DataFormat,
            &layer.name,
            "data format 'channels_first' is not supported",
        );
    }
}

/// `input_conv`: the layer becomes the InputConvolutional one, whose weight
/// bits cnn2snn does not check (the engine takes 2 to 8 there).
fn neural_errors(layer: &keras::Layer, input: &Shape, input_conv: bool, report: &mut Report) {
    let name = layer.name.as_str();
    let (dilation, dense) = match &layer.config {
        LayerConfig::Conv2D(c) | LayerConfig::QuantizedConv2D { conv: c, .. } => {
            (c.dilation_rate, false)
        }
        LayerConfig::SeparableConv2D(c) | LayerConfig::QuantizedSeparableConv2D { conv: c, .. } => {
            (c.dilation_rate, false)
        }
        _ => ([1, 1], true),
    };
    if dilation != [1, 1] {
        report.error(
            Rule::Dilation,
            name,
            format!("dilation rate {dilation:?} is not supported (it must be 1)"),
        );
    }
    if dense {
        let ok = input.len() == 1 || (input.len() == 3 && input[0] == 1 && input[1] == 1);
        if !ok {
            report.error(
                Rule::DenseInputShape,
                name,
                format!(
                    "a Dense layer must have an input shape of (N,) or (1, 1, N), found {input:?}"
                ),
            );
        }
    }
    let Some((main, dw)) = quantizers(&layer.config) else {
        report.error(
            Rule::NotQuantized,
            name,
            format!(
                "{} is not quantized (quantize it with weight bits 2, 4 or 8)",
                layer.config.class_name()
            ),
        );
        return;
    };
    for q in std::iter::once(main).chain(dw) {
        if let QuantizerKind::Other(class) = &q.kind {
            report.error(
                Rule::UnsupportedQuantizer,
                name,
                format!(
                    "quantizer {class} is not supported (MaxQuantizer, MaxPerAxisQuantizer are)"
                ),
            );
        }
    }
    if input_conv && !(2..=8).contains(&main.bitwidth) {
        report.error(
            Rule::WeightBits,
            name,
            format!(
                "the input convolution's weight bitwidth must be 2 to 8, found {}",
                main.bitwidth
            ),
        );
    } else if !input_conv && !matches!(main.bitwidth, 2 | 4 | 8) {
        report.error(
            Rule::WeightBits,
            name,
            format!(
                "weight bitwidth must be in (2, 4, 8), found {}",
                main.bitwidth
            ),
        );
    }
    if let Some(dw) = dw {
        if dw.bitwidth != main.bitwidth {
            report.error(
                Rule::SeparableBitsDiffer,
                name,
                format!(
                    "depthwise ({}) and pointwise ({}) quantizers must have the same bitwidth",
                    dw.bitwidth, main.bitwidth
                ),
            );
        }
    }
}

fn activation_errors(layer: &keras::Layer, report: &mut Report) {
    match activation_bits(&layer.config) {
        None => report.error(
            Rule::NotQuantized,
            &layer.name,
            "ReLU is not quantized (quantize it with activation bits 1, 2 or 4)",
        ),
        Some(b) if !matches!(b, 1 | 2 | 4) => report.error(
            Rule::ActivationBits,
            &layer.name,
            format!("activation bitwidth must be in (1, 2, 4), found {b}"),
        ),
        Some(_) => {}
    }
}

fn conv_padding(config: &LayerConfig) -> Option<keras::Padding> {
    match config {
        LayerConfig::Conv2D(c) | LayerConfig::QuantizedConv2D { conv: c, .. } => Some(c.padding),
        LayerConfig::SeparableConv2D(c) | LayerConfig::QuantizedSeparableConv2D { conv: c, .. } => {
            Some(c.padding)
        }
        _ => None,
    }
}

fn pooling_errors(layers: &[keras::Layer], i: usize, report: &mut Report) {
    let pool = &layers[i];
    let previous = i.checked_sub(1).map(|p| &layers[p]);
    let Some(prev_padding) = previous.and_then(|p| conv_padding(&p.config)) else {
        let after = previous.map_or("the input".to_owned(), |p| format!("`{}`", p.name));
        report.error(
            Rule::PoolingPlacement,
            &pool.name,
            format!("a pooling layer must follow a convolutional neural layer, not {after}"),
        );
        return;
    };
    if let LayerConfig::MaxPooling2D(p) = &pool.config {
        if p.padding != prev_padding {
            report.error(
                Rule::MaxPoolPadding,
                &pool.name,
                format!(
                    "max pooling padding '{}' must equal the padding '{}' of `{}`",
                    keras::padding_name(p.padding),
                    keras::padding_name(prev_padding),
                    previous.map_or("", |p| p.name.as_str())
                ),
            );
        }
    }
}

fn reshape_errors(layer: &keras::Layer, input: &Shape, report: &mut Report) {
    let Ok(output) = layer.config.output_shape(std::slice::from_ref(input)) else {
        return;
    };
    let flat_to_map =
        input.len() == 1 && output.len() == 3 && output[..2] == [1, 1] && output[2] == input[0];
    let map_to_flat =
        input.len() == 3 && input[..2] == [1, 1] && output.len() == 1 && output[0] == input[2];
    if !(flat_to_map || map_to_flat || *input == output) {
        report.error(
            Rule::ReshapeShape,
            &layer.name,
            format!("a Reshape may only turn (N,) into (1, 1, N) or back, found {input:?} -> {output:?}"),
        );
    }
}
