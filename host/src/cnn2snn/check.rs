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

use akida_core::{LayerKind, Padding, Pooling};

use crate::keras::{self, LayerConfig, QuantizerKind, Shape};

use super::chain::{self, Chain};
use super::convert::{self, activation_bits, quantizers, InputScaling, PlannedLayer};
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
    InputChannels,
    NoNeuralLayer,
    Transform,
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

    fn warn(&mut self, rule: Rule, layer: &str, message: impl Into<String>) {
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
    let scaling = match convert::input_scaling(model, flags) {
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
    match convert::prepare(model) {
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
/// (the one `convert::input_scaling` reads), or the model when the scaling
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
        | Cnn2snnError::BatchNormAxis { layer, .. } => (Rule::Transform, layer.clone()),
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
    let shapes = match chain.input_shapes() {
        Ok(s) => s,
        Err(e) => {
            let (rule, layer) = transform_rule(&e, &chain.name);
            report.error(rule, &layer, e.to_string());
            return (None, report);
        }
    };
    structure_errors(chain, &shapes, &mut report);
    if report.has_errors() {
        return (None, report);
    }
    let plan = match convert::plan(chain, scaling) {
        Ok(p) => p,
        Err(e) => {
            let (rule, layer) = transform_rule(&e, &chain.name);
            report.error(rule, &layer, e.to_string());
            return (None, report);
        }
    };
    hardware_warnings(chain, &plan, &mut report);
    (Some(plan), report)
}

/// cnn2snn's rules on the chain (`check_sequential_compatibility` and the
/// conversion's own refusals).
fn structure_errors(chain: &Chain, shapes: &[Shape], report: &mut Report) {
    let input = match chain.input_shape() {
        Ok(s) => s,
        Err(_) => return,
    };
    let channels = if input.len() == 3 { input[2] } else { 0 };
    if channels != 1 && channels != 3 {
        report.error(
            Rule::InputChannels,
            &chain.input.name,
            format!("the input has shape {input:?}: Akida 1.0 conversion here needs an image input with 1 or 3 channels (an InputConvolutional first layer); models starting with an InputData layer are not supported"),
        );
    }
    let mut last_neural: Option<&str> = None;
    let mut last_activation: Option<&str> = Some(chain.input.name.as_str());
    let mut seen_neural = false;
    let layers = &chain.layers;
    for (i, layer) in layers.iter().enumerate() {
        let name = layer.name.as_str();
        let cfg = &layer.config;
        data_format_errors(layer, report);
        if chain::is_neural(cfg) {
            if !seen_neural {
                first_layer_errors(layer, report);
            }
            neural_errors(layer, &shapes[i], report);
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
            LayerConfig::Rescaling { .. } => {
                if i != 0 {
                    report.error(Rule::RescalingPlacement, name, "a Rescaling layer must be the first layer of the model");
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

fn first_layer_errors(layer: &keras::Layer, report: &mut Report) {
    if !matches!(
        layer.config,
        LayerConfig::QuantizedConv2D { .. } | LayerConfig::Conv2D(_)
    ) {
        report.error(
            Rule::InputLayerKind,
            &layer.name,
            format!("the first neural layer must be a QuantizedConv2D (InputConvolutional) when the input has 1 or 3 channels, found {}", layer.config.class_name()),
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

fn neural_errors(layer: &keras::Layer, input: &Shape, report: &mut Report) {
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
    if !matches!(main.bitwidth, 2 | 4 | 8) {
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

/// The Keras pooling layer merged into a planned layer (the pooling rules
/// name it), or the neural layer when it has none.
fn pooling_name<'a>(chain: &'a Chain, p: &'a PlannedLayer) -> &'a str {
    chain.layers[p.neural + 1..]
        .iter()
        .take_while(|l| !chain::is_neural(&l.config) && activation_bits(&l.config).is_none())
        .find(|l| {
            matches!(
                l.config,
                LayerConfig::MaxPooling2D(_) | LayerConfig::GlobalAveragePooling2D { .. }
            )
        })
        .map_or(p.name.as_str(), |l| l.name.as_str())
}

/// The AKD1000 limits (Akida 1.0 hardware constraints) on the planned
/// layers. A finding names the Keras layer to change: the neural layer, or
/// the pooling layer for the pooling rules.
fn hardware_warnings(chain: &Chain, plan: &[PlannedLayer], report: &mut Report) {
    for (i, p) in plan.iter().enumerate() {
        let g = &p.geometry;
        let name = p.name.as_str();
        let (kh, kw) = (g.kernel.rows, g.kernel.cols);
        let square = kh == kw;
        match g.kind {
            LayerKind::InputConvolutional => {
                if !(square && matches!(kh, 3 | 5 | 7)) {
                    report.warn(Rule::KernelSize, name, format!("the input convolution supports 3x3, 5x5 and 7x7 kernels, found {kh}x{kw}"));
                }
                let (sr, sc) = (g.stride.rows, g.stride.cols);
                if sr != sc || !matches!(sr, 1..=3) {
                    report.warn(
                        Rule::StrideKernel,
                        name,
                        format!(
                            "the input convolution supports strides 1, 2 and 3, found {sr}x{sc}"
                        ),
                    );
                }
                if !(5..=256).contains(&g.input.rows) || g.input.cols < 5 {
                    report.warn(
                        Rule::InputSize,
                        name,
                        format!(
                            "the input must have 5 to 256 rows and at least 5 columns, found {}x{}",
                            g.input.rows, g.input.cols
                        ),
                    );
                }
                let limit = match (g.input.channels, kh) {
                    (1, 3) => Some(512),
                    (1, 5) => Some(192),
                    (1, 7) => Some(96),
                    (3, 3) => Some(192),
                    (3, 5) => Some(64),
                    (3, 7) => Some(32),
                    _ => None,
                };
                if let Some(limit) = limit.filter(|&l| g.filters > l) {
                    report.warn(
                        Rule::InputConvFilters,
                        name,
                        format!("at most {limit} filters for a {kh}x{kw} kernel on {} channel(s), found {}", g.input.channels, g.filters),
                    );
                }
                if let Pooling::Max { size, stride } = g.pooling {
                    let ok = matches!((size.rows, size.cols), (1, 1) | (1, 2) | (2, 1) | (2, 2))
                        && size == stride;
                    if !ok {
                        report.warn(
                            Rule::InputConvPooling,
                            pooling_name(chain, p),
                            format!("the input convolution `{name}` supports max pooling 1x1, 1x2, 2x1, 2x2 with stride equal to size, found {}x{} stride {}x{}", size.rows, size.cols, stride.rows, stride.cols),
                        );
                    }
                }
                if g.pooling == Pooling::GlobalAverage {
                    report.warn(
                        Rule::GlobalPoolSize,
                        pooling_name(chain, p),
                        format!("the input convolution `{name}` does not support global average pooling"),
                    );
                }
            }
            LayerKind::Convolutional | LayerKind::SeparableConvolutional => {
                let separable = g.kind == LayerKind::SeparableConvolutional;
                let sizes_ok = square
                    && if separable {
                        matches!(kh, 3 | 5 | 7)
                    } else {
                        matches!(kh, 1 | 3 | 5 | 7)
                    };
                if !sizes_ok {
                    let allowed = if separable {
                        "3x3, 5x5 and 7x7"
                    } else {
                        "1x1, 3x3, 5x5 and 7x7"
                    };
                    report.warn(
                        Rule::KernelSize,
                        name,
                        format!(
                            "{} layers support {allowed} kernels, found {kh}x{kw}",
                            g.kind.name()
                        ),
                    );
                }
                let (sr, sc) = (g.stride.rows, g.stride.cols);
                let stride_ok = sr == sc && (sr == 1 || (sr == 2 && kh == 3 && kw == 3));
                if !stride_ok {
                    report.warn(
                        Rule::StrideKernel,
                        name,
                        format!("stride {sr}x{sc} with a {kh}x{kw} kernel: the AKD1000 supports stride 1, and stride 2 only with 3x3 kernels"),
                    );
                }
                if g.padding == Padding::Valid {
                    report.warn(Rule::ValidPadding, name, "'valid' padding is only supported on the input convolution ('same' elsewhere)");
                }
                if separable && !matches!(g.weights_bits, 2 | 4) {
                    report.warn(
                        Rule::SeparableWeightBits,
                        name,
                        format!(
                            "separable layers support 2 or 4-bit weights, found {}",
                            g.weights_bits
                        ),
                    );
                } else if !separable && !matches!(g.weights_bits, 1 | 2 | 4) {
                    report.warn(
                        Rule::HardwareWeightBits,
                        name,
                        format!(
                            "convolutional layers support 1, 2 or 4-bit weights, found {}",
                            g.weights_bits
                        ),
                    );
                }
                pooling_warnings(chain, plan, i, report);
            }
            LayerKind::FullyConnected => {
                if g.input.rows != 1 || g.input.cols != 1 {
                    report.warn(
                        Rule::FullyConnectedInput,
                        name,
                        format!("a fully connected layer takes a 1x1xC input on the AKD1000, found {}x{}x{}", g.input.rows, g.input.cols, g.input.channels),
                    );
                }
                if g.input.len() > 57334 {
                    report.warn(
                        Rule::FullyConnectedInputSize,
                        name,
                        format!("at most 57334 inputs, found {}", g.input.len()),
                    );
                }
                if !matches!(g.weights_bits, 1 | 2 | 4) {
                    report.warn(
                        Rule::HardwareWeightBits,
                        name,
                        format!(
                            "fully connected layers support 1, 2 or 4-bit weights, found {}",
                            g.weights_bits
                        ),
                    );
                }
            }
        }
    }
}

fn pooling_warnings(chain: &Chain, plan: &[PlannedLayer], i: usize, report: &mut Report) {
    let p = &plan[i];
    let g = &p.geometry;
    let pool = pooling_name(chain, p);
    let name = p.name.as_str();
    match g.pooling {
        Pooling::Max { size, stride } => {
            let size_ok = matches!((size.rows, size.cols), (1, 1) | (2, 2));
            let stride_ok = stride.rows == stride.cols
                && matches!(stride.rows, 1 | 2)
                && stride.rows <= size.rows;
            if !size_ok || !stride_ok {
                report.warn(
                    Rule::MaxPoolSize,
                    pool,
                    format!("max pooling (of `{name}`) supports 1x1 or 2x2 windows with stride 1 or 2 (not above the size), found {}x{} stride {}x{}", size.rows, size.cols, stride.rows, stride.cols),
                );
            }
            let follower_ok = plan.get(i + 1).is_some_and(|n| {
                matches!(
                    n.geometry.kind,
                    LayerKind::Convolutional | LayerKind::SeparableConvolutional
                )
            });
            if !follower_ok {
                report.warn(
                    Rule::MaxPoolFollower,
                    pool,
                    format!("`{name}` with max pooling must be followed by a Convolutional or SeparableConvolutional layer"),
                );
            }
        }
        Pooling::GlobalAverage => {
            // Akida's width is the NHWC row count, its rows the NHWC columns.
            let conv = convert::output_dims(&crate::engine_params::LayerGeometry {
                pooling: Pooling::None,
                ..*g
            });
            if !(1..=32).contains(&conv.rows) || conv.cols < 3 {
                report.warn(
                    Rule::GlobalPoolSize,
                    pool,
                    format!("global average pooling (of `{name}`) needs an input of 1 to 32 rows and at least 3 columns, found {}x{}", conv.rows, conv.cols),
                );
            }
        }
        Pooling::None => {}
    }
}
