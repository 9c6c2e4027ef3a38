//! The compatibility check of cnn2snn models ([`cnn2snn::check_model`]),
//! rule by rule: for every [`Rule`] a small model built in code breaks
//! exactly that rule, and the check reports it once, at its level, naming
//! the offending layer.
//!
//! - A model with an error is refused by `convert` (with the report, or the
//!   error of the stage that refused it), and the convert flow writes no file.
//! - A model with a warning converts, encodes to `.akd`, decodes and runs;
//!   `--strict` (`ConvertOptions::strict`) refuses it.
//!
//! Also: a clean model has no finding at all, every reference `_q.h5`
//! converts with exactly the warnings it is known for, and the conversion's
//! input scaling (Rescaling or flags) and act_step equalization.

use std::collections::HashSet;

use akida_host::cnn2snn::{
    self, check_model, convert, Cnn2snnError, ConvertOptions, InputScaling, Level, QuantizeOptions,
    Report, Rule,
};
use akida_host::formats::akd::ConvertedModel;
use akida_host::keras::{
    self, BatchNormConfig, Conv2DConfig, DenseConfig, GraphBuilder, LayerConfig, Model, Padding,
    Pool2DConfig, Quantizer, QuantizerKind, RawConfig, ReluConfig, SeparableConv2DConfig,
    WeightRole,
};
use akida_host::runtime::{BatchOutput, KernelPolicy, Runtime};
use akida_tests::keras::Net;
use akida_tests::{reference_sets, scratch_dir};

// ---------------------------------------------------------------------------
// Building small models
// ---------------------------------------------------------------------------

/// Seed of the weight initialisation of this file's models.
const SEED: u64 = 7;

/// A 'same' Conv2D config of `filters` k x k kernels.
fn conv_config(filters: usize, k: usize) -> Conv2DConfig {
    Conv2DConfig {
        padding: Padding::Same,
        ..Conv2DConfig::new(filters, [k, k])
    }
}

/// A QuantizedConv2D with a `bits`-bit MaxPerAxisQuantizer.
fn quantized(conv: Conv2DConfig, bits: u32) -> LayerConfig {
    LayerConfig::QuantizedConv2D {
        conv,
        quantizer: Quantizer::max_per_axis(bits),
    }
}

/// A 'same' QuantizedConv2D of `filters` k x k kernels.
fn qconv(filters: usize, k: usize, bits: u32) -> LayerConfig {
    quantized(conv_config(filters, k), bits)
}

/// A 'same' 3x3 QuantizedSeparableConv2D (pointwise and depthwise bits).
fn qsep(filters: usize, bits: u32, dw_bits: u32) -> LayerConfig {
    LayerConfig::QuantizedSeparableConv2D {
        conv: SeparableConv2DConfig {
            padding: Padding::Same,
            ..SeparableConv2DConfig::new(filters, [3, 3])
        },
        quantizer: Quantizer::max_per_axis(bits),
        quantizer_dw: Quantizer::max(dw_bits),
    }
}

fn qdense(units: usize, bits: u32) -> LayerConfig {
    LayerConfig::QuantizedDense {
        dense: DenseConfig::new(units),
        quantizer: Quantizer::max_per_axis(bits),
    }
}

/// A QuantizedReLU clipped at 6.
fn qrelu(bits: u32) -> LayerConfig {
    LayerConfig::QuantizedReLU {
        bitwidth: bits,
        max_value: 6.0,
    }
}

fn relu6() -> LayerConfig {
    LayerConfig::ReLU(ReluConfig {
        max_value: Some(6.0),
        ..ReluConfig::default()
    })
}

/// A size x size MaxPooling2D (stride = size).
fn max_pool(size: usize, padding: Padding) -> LayerConfig {
    LayerConfig::MaxPooling2D(Pool2DConfig {
        padding,
        ..Pool2DConfig::new([size, size])
    })
}

fn gap() -> LayerConfig {
    LayerConfig::GlobalAveragePooling2D { keepdims: false }
}

fn batch_norm() -> LayerConfig {
    LayerConfig::BatchNormalization(BatchNormConfig::default())
}

/// The front of most cases: an 8x8 RGB image, the input convolution
/// `conv_0` (8-bit weights, 8 filters) and `relu_0` (4 bits).
fn front() -> Net {
    Net::input(SEED, &[8, 8, 3])
        .add("conv_0", qconv(8, 3, 8))
        .add("relu_0", qrelu(4))
}

/// Sets the values of a weight of a layer.
fn set_weight(model: &mut Model, layer: &str, role: WeightRole, values: impl Fn(usize) -> f32) {
    let w = model
        .layer_mut(layer)
        .and_then(|l| l.weight_mut(role))
        .unwrap_or_else(|| panic!("{layer} has no {role:?}"));
    for (i, v) in w.values.iter_mut().enumerate() {
        *v = values(i);
    }
}

// ---------------------------------------------------------------------------
// One model per error rule
// ---------------------------------------------------------------------------

/// `conv_b` is fed by `relu_0`, not by `conv_a` just before it: a branch.
fn not_serial() -> Model {
    let mut g = GraphBuilder::new(7);
    let x = g.input(&[8, 8, 3], Some("input")).unwrap();
    let x = g.add(qconv(8, 3, 8), Some("conv_0"), &[&x]).unwrap();
    let x = g.add(qrelu(4), Some("relu_0"), &[&x]).unwrap();
    g.add(qconv(4, 3, 4), Some("conv_a"), &[&x]).unwrap();
    let b = g.add(qconv(4, 3, 4), Some("conv_b"), &[&x]).unwrap();
    g.build("not_serial", &[&b]).unwrap()
}

/// An AveragePooling2D (cnn2snn pools with max or global average only).
fn unsupported_layer() -> Model {
    let avg = LayerConfig::AveragePooling2D(Pool2DConfig {
        padding: Padding::Same,
        ..Pool2DConfig::new([2, 2])
    });
    front()
        .add("conv_1", qconv(8, 3, 4))
        .add("avg_pool_1", avg)
        .add("relu_1", qrelu(4))
        .add("conv_2", qconv(4, 3, 4))
        .build("unsupported_layer")
}

/// A quantizeml QuantizedReLU (Akida 2.0) in place of `relu_1`.
fn akida2_layer() -> Model {
    let mut model = front()
        .add("conv_1", qconv(8, 3, 4))
        .add("relu_1", qrelu(4))
        .add("conv_2", qconv(4, 3, 4))
        .build("akida2_layer");
    model.layer_mut("relu_1").unwrap().config = LayerConfig::Unknown {
        class_name: "QuantizedReLU".into(),
        module: Some("quantizeml.layers".into()),
        registered_name: None,
        config: serde_json::json!({"name": "relu_1"}),
    };
    model
}

/// A BatchNormalization after an activation: no neural layer to fold into.
fn batch_norm_not_folded() -> Model {
    front()
        .add("bn_0", batch_norm())
        .add("conv_1", qconv(8, 3, 4))
        .build("batch_norm_not_folded")
}

/// A float Conv2D among quantized layers.
fn not_quantized() -> Model {
    front()
        .add("conv_1", LayerConfig::Conv2D(conv_config(8, 3)))
        .build("not_quantized")
}

/// A QuantizedConv2D with a quantizer class cnn2snn 2.x does not have.
fn unsupported_quantizer() -> Model {
    let conv = LayerConfig::QuantizedConv2D {
        conv: conv_config(8, 3),
        quantizer: Quantizer {
            kind: QuantizerKind::Other("StdWeightQuantizer".into()),
            bitwidth: 4,
        },
    };
    front().add("conv_1", conv).build("unsupported_quantizer")
}

/// 3-bit weights (2, 4 or 8 only).
fn weight_bits() -> Model {
    front().add("conv_1", qconv(8, 3, 3)).build("weight_bits")
}

/// An 8-bit activation (1, 2 or 4 only).
fn activation_bits() -> Model {
    front()
        .add("conv_1", qconv(8, 3, 4))
        .add("relu_1", qrelu(8))
        .add("conv_2", qconv(4, 3, 4))
        .build("activation_bits")
}

/// 4-bit pointwise and 2-bit depthwise weights in one separable layer.
fn separable_bits_differ() -> Model {
    front()
        .add("sep_1", qsep(8, 4, 2))
        .build("separable_bits_differ")
}

/// A 'valid' max pooling after a 'same' convolution.
fn max_pool_padding() -> Model {
    front()
        .add("conv_1", qconv(8, 3, 4))
        .add("pool_1", max_pool(2, Padding::Valid))
        .add("relu_1", qrelu(4))
        .add("conv_2", qconv(4, 3, 4))
        .build("max_pool_padding")
}

/// A global average pooling after the activation, not the convolution.
fn pooling_placement() -> Model {
    front()
        .add("gap_0", gap())
        .add("dense_1", qdense(4, 4))
        .build("pooling_placement")
}

/// Two convolutions without an activation between them.
fn neural_without_activation() -> Model {
    front()
        .add("conv_1", qconv(8, 3, 4))
        .add("conv_2", qconv(4, 3, 4))
        .build("neural_without_activation")
}

/// Two activations in a row.
fn successive_activations() -> Model {
    front()
        .add("relu_1", qrelu(4))
        .add("conv_1", qconv(4, 3, 4))
        .build("successive_activations")
}

/// A Flatten followed by a Reshape (to (1, 1, N), itself fine), not a Dense.
fn flatten_placement() -> Model {
    front()
        .add("flatten", LayerConfig::Flatten)
        .add(
            "reshape",
            LayerConfig::Reshape {
                target_shape: vec![1, 1, -1],
            },
        )
        .add("dense_1", qdense(4, 4))
        .build("flatten_placement")
}

/// A Reshape of an 8x8x8 map into (512,) (only (N,) <-> (1, 1, N) are).
fn reshape_shape() -> Model {
    front()
        .add(
            "reshape",
            LayerConfig::Reshape {
                target_shape: vec![-1],
            },
        )
        .add("dense_1", qdense(4, 4))
        .build("reshape_shape")
}

/// A Rescaling in the middle of the model.
fn rescaling_placement() -> Model {
    front()
        .add(
            "rescaling",
            LayerConfig::Rescaling {
                scale: 0.5,
                offset: 0.0,
            },
        )
        .add("conv_1", qconv(4, 3, 4))
        .build("rescaling_placement")
}

/// A sigmoid Activation before a neural layer (only last is fine).
fn activation_before_neural() -> Model {
    let sigmoid = LayerConfig::Activation {
        activation: "sigmoid".into(),
    };
    front()
        .add("sigmoid", sigmoid)
        .add("conv_1", qconv(4, 3, 4))
        .build("activation_before_neural")
}

/// A Dense on an 8x8x8 map (it needs (N,) or (1, 1, N)).
fn dense_input_shape() -> Model {
    front()
        .add("dense_1", qdense(4, 4))
        .build("dense_input_shape")
}

/// A dilated convolution.
fn dilation() -> Model {
    let conv = Conv2DConfig {
        dilation_rate: [2, 2],
        ..conv_config(8, 3)
    };
    front().add("conv_1", quantized(conv, 4)).build("dilation")
}

/// A convolution read from a file with `"data_format": "channels_first"`.
fn data_format() -> Model {
    let mut model = front().add("conv_1", qconv(8, 3, 4)).build("data_format");
    let mut config = serde_json::Map::new();
    config.insert("name".into(), "conv_1".into());
    config.insert("data_format".into(), "channels_first".into());
    model.layer_mut("conv_1").unwrap().raw = Some(RawConfig {
        class_name: "QuantizedConv2D".into(),
        config,
    });
    model
}

/// An image model starting with a separable convolution.
fn input_layer_kind() -> Model {
    Net::input(SEED, &[8, 8, 3])
        .add("sep_0", qsep(8, 4, 4))
        .add("relu_0", qrelu(4))
        .add("conv_1", qconv(4, 3, 4))
        .build("input_layer_kind")
}

/// A 2-D input (8, 8): neither a vector (N,) nor an image (H, W, C).
fn input_shape() -> Model {
    Net::input(SEED, &[8, 8])
        .add("flatten", LayerConfig::Flatten)
        .add("dense_0", qdense(8, 4))
        .build("input_shape")
}

/// A 2-channel input (an InputData layer) behind a Rescaling with an
/// offset: cnn2snn shifts the input of an input convolution only.
fn input_data_shift() -> Model {
    Net::input(SEED, &[8, 8, 2])
        .add(
            "rescaling",
            LayerConfig::Rescaling {
                scale: 1.0 / 15.0,
                offset: -1.0,
            },
        )
        .add("conv_0", qconv(8, 3, 4))
        .add("relu_0", qrelu(4))
        .add("conv_1", qconv(4, 3, 4))
        .build("input_data_shift")
}

/// A 1x1 convolution with stride 2: the engine refuses a stride above the
/// kernel on a Convolutional layer.
fn stride_above_kernel() -> Model {
    let conv = LayerConfig::QuantizedConv2D {
        conv: Conv2DConfig {
            padding: Padding::Same,
            strides: [2, 2],
            ..Conv2DConfig::new(8, [1, 1])
        },
        quantizer: Quantizer::max_per_axis(4),
    };
    front()
        .add("conv_1", conv)
        .add("relu_1", qrelu(4))
        .add("conv_2", qconv(4, 3, 4))
        .build("stride_above_kernel")
}

/// A 2x2 max pooling with stride 3: the engine refuses a pooling stride
/// above its size.
fn pool_stride_above_size() -> Model {
    let pool = LayerConfig::MaxPooling2D(Pool2DConfig {
        padding: Padding::Same,
        strides: [3, 3],
        ..Pool2DConfig::new([2, 2])
    });
    front()
        .add("conv_1", qconv(8, 3, 4))
        .add("pool_1", pool)
        .add("relu_1", qrelu(4))
        .add("conv_2", qconv(4, 3, 4))
        .build("pool_stride_above_size")
}

/// Only a Flatten after the input.
fn no_neural_layer() -> Model {
    Net::input(SEED, &[8, 8, 3])
        .add("flatten", LayerConfig::Flatten)
        .build("no_neural_layer")
}

/// A batch normalization after a max pooling, with a negative gamma: it
/// cannot move in front of the pooling to be folded.
fn transform() -> Model {
    let mut model = front()
        .add("conv_1", qconv(8, 3, 4))
        .add("pool_1", max_pool(2, Padding::Same))
        .add("bn_1", batch_norm())
        .add("relu_1", qrelu(4))
        .add("conv_2", qconv(4, 3, 4))
        .build("transform");
    set_weight(&mut model, "bn_1", WeightRole::Gamma, |c| {
        if c == 3 {
            -0.5
        } else {
            1.0
        }
    });
    model
}

/// A kernel holding a NaN (it passed `check` and converted into garbage
/// before the rule existed).
fn non_finite_weight() -> Model {
    let mut model = front()
        .add("conv_1", qconv(8, 3, 4))
        .add("relu_1", qrelu(4))
        .build("non_finite_weight");
    set_weight(&mut model, "conv_1", WeightRole::Kernel, |i| {
        if i == 5 {
            f32::NAN
        } else {
            0.25
        }
    });
    model
}

// ---------------------------------------------------------------------------
// One model per warning rule (each converts and runs)
// ---------------------------------------------------------------------------

/// A fully connected layer on a flattened 8x8x8 map.
fn fully_connected_input() -> Model {
    front()
        .add("flatten", LayerConfig::Flatten)
        .add("dense_1", qdense(4, 4))
        .build("fully_connected_input")
}

/// A hidden convolution with 'valid' padding.
fn valid_padding() -> Model {
    let conv = Conv2DConfig {
        padding: Padding::Valid,
        ..conv_config(8, 3)
    };
    front()
        .add("conv_1", quantized(conv, 4))
        .build("valid_padding")
}

/// An 8-bit separable convolution.
fn separable_weight_bits() -> Model {
    front()
        .add("sep_1", qsep(8, 8, 8))
        .build("separable_weight_bits")
}

/// A 5x5 convolution with stride 2 (stride 2 needs 3x3).
fn stride_kernel() -> Model {
    let conv = Conv2DConfig {
        strides: [2, 2],
        ..conv_config(8, 5)
    };
    front()
        .add("conv_1", quantized(conv, 4))
        .build("stride_kernel")
}

/// A 2x2 convolution (1x1, 3x3, 5x5 or 7x7).
fn kernel_size() -> Model {
    front().add("conv_1", qconv(8, 2, 4)).build("kernel_size")
}

/// 33 filters of 7x7 on an RGB input (32 at most).
fn input_conv_filters() -> Model {
    Net::input(SEED, &[8, 8, 3])
        .add("conv_0", qconv(33, 7, 8))
        .add("relu_0", qrelu(4))
        .add("conv_1", qconv(4, 3, 4))
        .build("input_conv_filters")
}

/// A 4-row input (5 to 256).
fn input_size() -> Model {
    Net::input(SEED, &[4, 8, 3])
        .add("conv_0", qconv(8, 3, 8))
        .add("relu_0", qrelu(4))
        .add("conv_1", qconv(4, 3, 4))
        .build("input_size")
}

/// A 3x3 max pooling on the input convolution (up to 2x2).
fn input_conv_pooling() -> Model {
    Net::input(SEED, &[9, 9, 3])
        .add("conv_0", qconv(8, 3, 8))
        .add("pool_0", max_pool(3, Padding::Same))
        .add("relu_0", qrelu(4))
        .add("conv_1", qconv(4, 3, 4))
        .build("input_conv_pooling")
}

/// A 3x3 max pooling on a hidden convolution (1x1 or 2x2).
fn max_pool_size() -> Model {
    front()
        .add("conv_1", qconv(8, 3, 4))
        .add("pool_1", max_pool(3, Padding::Same))
        .add("relu_1", qrelu(4))
        .add("conv_2", qconv(4, 3, 4))
        .build("max_pool_size")
}

/// A max pooling on the last layer: no convolution follows it.
fn max_pool_follower() -> Model {
    front()
        .add("conv_1", qconv(8, 3, 4))
        .add("pool_1", max_pool(2, Padding::Same))
        .build("max_pool_follower")
}

/// A global average pooling over a 40-row map (1 to 32 rows).
fn global_pool_size() -> Model {
    Net::input(SEED, &[40, 8, 1])
        .add("conv_0", qconv(8, 3, 8))
        .add("relu_0", qrelu(4))
        .add("conv_1", qconv(8, 3, 4))
        .add("gap_1", gap())
        .add("relu_1", qrelu(4))
        .add("dense_2", qdense(4, 4))
        .build("global_pool_size")
}

/// 8-bit weights on a hidden convolution (1, 2 or 4 bits).
fn hardware_weight_bits() -> Model {
    front()
        .add("conv_1", qconv(8, 3, 8))
        .build("hardware_weight_bits")
}

/// A fully connected layer on 60000 inputs (57334 at most).
fn fully_connected_input_size() -> Model {
    front()
        .add("conv_1", qconv(4, 3, 4))
        .add("gap_1", gap())
        .add("relu_1", qrelu(4))
        .add("dense_2", qdense(60000, 4))
        .add("relu_2", qrelu(4))
        .add("dense_3", qdense(2, 4))
        .build("fully_connected_input_size")
}

// ---------------------------------------------------------------------------
// The table: every rule, its case and the layer the finding names
// ---------------------------------------------------------------------------

const ERRORS: [Rule; 28] = [
    Rule::NotSerial,
    Rule::UnsupportedLayer,
    Rule::Akida2Layer,
    Rule::BatchNormNotFolded,
    Rule::NotQuantized,
    Rule::UnsupportedQuantizer,
    Rule::WeightBits,
    Rule::ActivationBits,
    Rule::SeparableBitsDiffer,
    Rule::MaxPoolPadding,
    Rule::PoolingPlacement,
    Rule::NeuralWithoutActivation,
    Rule::SuccessiveActivations,
    Rule::FlattenPlacement,
    Rule::ReshapeShape,
    Rule::RescalingPlacement,
    Rule::ActivationBeforeNeural,
    Rule::DenseInputShape,
    Rule::Dilation,
    Rule::DataFormat,
    Rule::InputLayerKind,
    Rule::InputShape,
    Rule::InputDataShift,
    Rule::StrideAboveKernel,
    Rule::PoolStrideAboveSize,
    Rule::NoNeuralLayer,
    Rule::Transform,
    Rule::NonFiniteWeight,
];

const WARNINGS: [Rule; 13] = [
    Rule::FullyConnectedInput,
    Rule::ValidPadding,
    Rule::SeparableWeightBits,
    Rule::StrideKernel,
    Rule::KernelSize,
    Rule::InputConvFilters,
    Rule::InputSize,
    Rule::InputConvPooling,
    Rule::MaxPoolSize,
    Rule::MaxPoolFollower,
    Rule::GlobalPoolSize,
    Rule::HardwareWeightBits,
    Rule::FullyConnectedInputSize,
];

/// The model breaking `rule` and the layer (or model) its finding names.
/// The match has no wildcard: a new rule does not compile without a case.
fn case(rule: Rule) -> (Model, &'static str) {
    match rule {
        Rule::NotSerial => (not_serial(), "conv_b"),
        Rule::UnsupportedLayer => (unsupported_layer(), "avg_pool_1"),
        Rule::Akida2Layer => (akida2_layer(), "relu_1"),
        Rule::BatchNormNotFolded => (batch_norm_not_folded(), "bn_0"),
        Rule::NotQuantized => (not_quantized(), "conv_1"),
        Rule::UnsupportedQuantizer => (unsupported_quantizer(), "conv_1"),
        Rule::WeightBits => (weight_bits(), "conv_1"),
        Rule::ActivationBits => (activation_bits(), "relu_1"),
        Rule::SeparableBitsDiffer => (separable_bits_differ(), "sep_1"),
        Rule::MaxPoolPadding => (max_pool_padding(), "pool_1"),
        Rule::PoolingPlacement => (pooling_placement(), "gap_0"),
        Rule::NeuralWithoutActivation => (neural_without_activation(), "conv_2"),
        Rule::SuccessiveActivations => (successive_activations(), "relu_1"),
        Rule::FlattenPlacement => (flatten_placement(), "flatten"),
        Rule::ReshapeShape => (reshape_shape(), "reshape"),
        Rule::RescalingPlacement => (rescaling_placement(), "rescaling"),
        Rule::ActivationBeforeNeural => (activation_before_neural(), "sigmoid"),
        Rule::DenseInputShape => (dense_input_shape(), "dense_1"),
        Rule::Dilation => (dilation(), "conv_1"),
        Rule::DataFormat => (data_format(), "conv_1"),
        Rule::InputLayerKind => (input_layer_kind(), "sep_0"),
        Rule::InputShape => (input_shape(), "input"),
        Rule::InputDataShift => (input_data_shift(), "rescaling"),
        Rule::StrideAboveKernel => (stride_above_kernel(), "conv_1"),
        Rule::PoolStrideAboveSize => (pool_stride_above_size(), "pool_1"),
        Rule::NoNeuralLayer => (no_neural_layer(), "no_neural_layer"),
        Rule::Transform => (transform(), "bn_1"),
        Rule::NonFiniteWeight => (non_finite_weight(), "conv_1"),
        Rule::FullyConnectedInput => (fully_connected_input(), "dense_1"),
        Rule::ValidPadding => (valid_padding(), "conv_1"),
        Rule::SeparableWeightBits => (separable_weight_bits(), "sep_1"),
        Rule::StrideKernel => (stride_kernel(), "conv_1"),
        Rule::KernelSize => (kernel_size(), "conv_1"),
        Rule::InputConvFilters => (input_conv_filters(), "conv_0"),
        Rule::InputSize => (input_size(), "conv_0"),
        Rule::InputConvPooling => (input_conv_pooling(), "pool_0"),
        Rule::MaxPoolSize => (max_pool_size(), "pool_1"),
        Rule::MaxPoolFollower => (max_pool_follower(), "pool_1"),
        Rule::GlobalPoolSize => (global_pool_size(), "gap_1"),
        Rule::HardwareWeightBits => (hardware_weight_bits(), "conv_1"),
        Rule::FullyConnectedInputSize => (fully_connected_input_size(), "dense_3"),
    }
}

// ---------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------

/// The report holds exactly one finding: `rule` at `level`, naming `layer`.
fn assert_single_finding(report: &Report, rule: Rule, level: Level, layer: &str) {
    let [finding] = report.findings.as_slice() else {
        panic!("{rule:?}: expected exactly one finding, got:\n{report}");
    };
    assert_eq!(finding.rule, rule, "{report}");
    assert_eq!(finding.level, level, "{rule:?}: {finding}");
    assert_eq!(finding.layer, layer, "{rule:?}: {finding}");
    assert!(
        finding.to_string().contains(&format!("`{layer}`")),
        "{rule:?}: {finding}"
    );
}

/// The convert error names `layer`: the report of an incompatible model
/// holds the finding, any other error (a stage that refused first) names it.
fn assert_convert_error_names(err: &Cnn2snnError, rule: Rule, layer: &str) {
    match err {
        Cnn2snnError::Incompatible(report) => {
            assert!(report.has(rule, layer), "{rule:?}: {report}");
        }
        other => assert!(
            other.to_string().contains(&format!("`{layer}`")),
            "{rule:?}: the error does not name `{layer}`: {other}"
        ),
    }
}

/// The model saved as `.h5` and converted by the `convert` flow: on error
/// (returned as its message) nothing is written; the check of the file
/// matches the check in memory.
fn convert_flow(model: &Model, rule: Rule) -> Result<(), String> {
    let dir = scratch_dir(&format!("check-{}", rule.name()));
    let h5 = dir.path().join("model.h5");
    keras::write_model(&h5, model).unwrap_or_else(|e| panic!("{rule:?}: saving: {e}"));
    let from_file = akida_host::commands::cnn2snn::check_file(&h5, None).unwrap();
    assert_eq!(
        from_file,
        check_model(model, None),
        "{rule:?}: .h5 round trip"
    );
    let result = akida_host::commands::cnn2snn::convert_file(&h5, &ConvertOptions::default(), None)
        .map(|_| ())
        .map_err(|e| akida_host::cli::report(&e));
    let akd = dir.path().join("model.akd");
    assert_eq!(akd.exists(), result.is_ok(), "{rule:?}: {}", akd.display());
    result
}

/// Encodes, decodes and runs a converted model on a blank image.
fn assert_runs(model: &ConvertedModel, what: &str) {
    let bytes = akida_host::formats::akd::to_bytes(model).unwrap_or_else(|e| panic!("{what}: {e}"));
    let decoded = akida_core::decode(&bytes).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let runtime = Runtime::new(&decoded, KernelPolicy::Auto);
    let image = vec![0u8; runtime.input_dims().len()];
    let out = match runtime.forward_batch(&image).unwrap() {
        BatchOutput::Levels(v) => v.len(),
        BatchOutput::Potentials(v) => v.len(),
    };
    assert_eq!(out, runtime.output_dims().len(), "{what}: output size");
}

/// The case of an error rule: reported alone, at its layer; convert and
/// the convert flow refuse the model, naming the file and the layer.
fn expect_error(rule: Rule) {
    let (model, layer) = case(rule);
    let report = check_model(&model, None);
    assert_single_finding(&report, rule, Level::Error, layer);
    let err = convert(&model, &ConvertOptions::default())
        .err()
        .unwrap_or_else(|| panic!("{rule:?}: the model converted"));
    assert_convert_error_names(&err, rule, layer);
    let Err(flow) = convert_flow(&model, rule) else {
        panic!("{rule:?}: the convert flow succeeded");
    };
    assert!(
        flow.contains("model.h5") && flow.contains(&format!("`{layer}`")),
        "{rule:?}: {flow}"
    );
}

/// The case of a warning rule: reported alone, at its layer; the model
/// converts (in memory and by the flow) and runs; `--strict` refuses it.
fn expect_warning(rule: Rule) {
    let (model, layer) = case(rule);
    let report = check_model(&model, None);
    assert_single_finding(&report, rule, Level::Warning, layer);
    let conversion = convert(&model, &ConvertOptions::default())
        .unwrap_or_else(|e| panic!("{rule:?}: convert: {e}"));
    assert_eq!(conversion.report, report, "{rule:?}");
    assert_runs(&conversion.model, &format!("{rule:?}"));
    convert_flow(&model, rule).unwrap_or_else(|e| panic!("{rule:?}: flow: {e}"));
    let strict = ConvertOptions {
        strict: true,
        ..ConvertOptions::default()
    };
    match convert(&model, &strict) {
        Err(Cnn2snnError::Incompatible(r)) => {
            assert_single_finding(&r, rule, Level::Error, layer);
        }
        Err(e) => panic!("{rule:?}: --strict refused with another error: {e}"),
        Ok(_) => panic!("{rule:?}: --strict converted a model with a warning"),
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn every_rule_is_in_the_table_once() {
    let all: HashSet<Rule> = ERRORS.iter().chain(&WARNINGS).copied().collect();
    assert_eq!(all.len(), ERRORS.len() + WARNINGS.len());
    assert_eq!(all.len(), 41);
}

#[test]
fn every_error_rule_is_reported_on_its_layer_and_blocks_conversion() {
    for rule in ERRORS {
        expect_error(rule);
    }
}

#[test]
fn every_warning_rule_is_reported_on_its_layer_and_only_strict_refuses() {
    for rule in WARNINGS {
        expect_warning(rule);
    }
}

/// conv_0 (with a 2x2 max pooling) -> relu -> conv_1 -> batch norm ->
/// global average pooling -> relu -> dense, 'same' 3x3 kernels, in float.
fn clean_float_model() -> Model {
    Net::input(SEED, &[8, 8, 3])
        .add("conv_0", LayerConfig::Conv2D(conv_config(8, 3)))
        .add("pool_0", max_pool(2, Padding::Same))
        .add("relu_0", relu6())
        .add("conv_1", LayerConfig::Conv2D(conv_config(8, 3)))
        .add("bn_1", batch_norm())
        .add("gap_1", gap())
        .add("relu_1", relu6())
        .add("dense", LayerConfig::Dense(DenseConfig::new(4)))
        .build("clean")
}

#[test]
fn a_clean_model_quantized_at_8_4_4_has_no_finding() {
    let options = QuantizeOptions {
        input_weight_bits: Some(8),
        ..QuantizeOptions::new(4, 4)
    };
    let model = cnn2snn::quantize(&clean_float_model(), &options).unwrap();
    let report = check_model(&model, None);
    assert_eq!(report, Report::default(), "{report}");
    let strict = ConvertOptions {
        strict: true,
        ..ConvertOptions::default()
    };
    let conversion = convert(&model, &strict).unwrap();
    assert!(conversion.notes.is_empty(), "{:?}", conversion.notes);
    let names: Vec<&str> = conversion
        .model
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["conv_0", "conv_1", "dense"]);
    assert_runs(&conversion.model, "clean");
}

#[test]
fn the_float_model_is_not_quantized() {
    let report = check_model(&clean_float_model(), None);
    let mut rules: Vec<(Rule, &str)> = report
        .findings
        .iter()
        .map(|f| (f.rule, f.layer.as_str()))
        .collect();
    rules.sort_by_key(|(_, l)| *l);
    assert_eq!(
        rules,
        [
            (Rule::NotQuantized, "conv_0"),
            (Rule::NotQuantized, "conv_1"),
            (Rule::NotQuantized, "dense"),
            (Rule::NotQuantized, "relu_0"),
            (Rule::NotQuantized, "relu_1"),
        ]
    );
}

#[test]
fn unknown_classes_are_unsupported_layers_not_transform_errors() {
    let mut model = front()
        .add("conv_1", qconv(8, 3, 4))
        .add("custom", relu6())
        .add("conv_2", qconv(4, 3, 4))
        .build("custom");
    model.layer_mut("custom").unwrap().config = LayerConfig::Unknown {
        class_name: "MyLayer".into(),
        module: Some("my_package".into()),
        registered_name: Some("Custom>MyLayer".into()),
        config: serde_json::json!({"name": "custom"}),
    };
    let report = check_model(&model, None);
    assert_single_finding(&report, Rule::UnsupportedLayer, Level::Error, "custom");
    assert!(report.findings[0].message.contains("MyLayer"));
}

#[test]
fn a_batch_norm_on_another_axis_is_a_transform_error() {
    let bn = LayerConfig::BatchNormalization(BatchNormConfig {
        axis: vec![1],
        ..BatchNormConfig::default()
    });
    let model = front()
        .add("conv_1", qconv(8, 3, 4))
        .add("bn_1", bn)
        .build("bn_axis");
    let report = check_model(&model, None);
    assert_single_finding(&report, Rule::Transform, Level::Error, "bn_1");
    let err = convert(&model, &ConvertOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Cnn2snnError::BatchNormAxis { layer, axis } if layer == "bn_1" && axis == &[1]),
        "{err}"
    );
}

#[test]
fn a_float_relu_is_not_quantized() {
    let model = front()
        .add("conv_1", qconv(8, 3, 4))
        .add("relu_1", relu6())
        .add("conv_2", qconv(4, 3, 4))
        .build("float_relu");
    let report = check_model(&model, None);
    assert_single_finding(&report, Rule::NotQuantized, Level::Error, "relu_1");
}

#[test]
fn a_channels_first_pooling_is_a_data_format_error() {
    let mut model = front()
        .add("conv_1", qconv(8, 3, 4))
        .add("pool_1", max_pool(2, Padding::Same))
        .add("relu_1", qrelu(4))
        .add("conv_2", qconv(4, 3, 4))
        .build("channels_first_pool");
    let mut config = serde_json::Map::new();
    config.insert("data_format".into(), "channels_first".into());
    model.layer_mut("pool_1").unwrap().raw = Some(RawConfig {
        class_name: "MaxPooling2D".into(),
        config,
    });
    let report = check_model(&model, None);
    assert_single_finding(&report, Rule::DataFormat, Level::Error, "pool_1");
}

#[test]
fn a_pooling_first_is_misplaced() {
    let model = Net::input(SEED, &[8, 8, 3])
        .add("pool", max_pool(2, Padding::Valid))
        .add("conv_0", qconv(8, 3, 8))
        .build("pool_first");
    let report = check_model(&model, None);
    assert_single_finding(&report, Rule::PoolingPlacement, Level::Error, "pool");
    assert!(report.findings[0].message.contains("the input"));
}

/// The known warnings of each reference `_q.h5`, as (rule, layer): fully
/// connected layers on maps larger than 1x1, and the odd geometries the
/// nonsquare and shift_valid_oddpool sets were made for. No set has 8-bit
/// weights on a CNP (only on input convolutions): no HardwareWeightBits.
fn reference_warnings(set: &str) -> Vec<(Rule, &'static str)> {
    let fc_input = |layer| (Rule::FullyConnectedInput, layer);
    match set {
        "conv_pool_w2a1" | "conv_pool_w2a2" | "conv_pool_w4a4" => vec![fc_input("dense_2")],
        "conv_s2_w4a4" => vec![fc_input("dense_3")],
        "dense_w4a1" | "dense_w4a4" => vec![fc_input("dense_1")],
        "nonsquare_w4a4" => vec![
            // Stride 2x1 on the input convolution.
            (Rule::StrideKernel, "conv_0"),
            // A 2x1 max pooling window.
            (Rule::MaxPoolSize, "conv_1_maxpool"),
            // A 3x5 kernel.
            (Rule::KernelSize, "conv_2"),
            fc_input("dense_3"),
        ],
        "shift_valid_oddpool_w4a4" => vec![
            (Rule::ValidPadding, "conv_2"),
            // Its max pooling is followed by the fully connected dense_3.
            (Rule::MaxPoolFollower, "conv_2_maxpool"),
            fc_input("dense_3"),
        ],
        _ => vec![],
    }
}

#[test]
fn every_reference_quantized_model_converts_with_its_known_warnings() {
    let (dir, names) = reference_sets();
    for name in &names {
        let model = keras::read_model(&dir.join(format!("{name}_q.h5"))).unwrap();
        let conversion =
            convert(&model, &ConvertOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let report = &conversion.report;
        assert!(!report.has_errors(), "{name}: {report}");
        let found: Vec<(Rule, &str)> = report
            .findings
            .iter()
            .map(|f| (f.rule, f.layer.as_str()))
            .collect();
        assert_eq!(found, reference_warnings(name), "{name}:\n{report}");
        assert_eq!(check_model(&model, None), *report, "{name}");
        assert_runs(&conversion.model, name);
    }
}

// ---------------------------------------------------------------------------
// Input scaling
// ---------------------------------------------------------------------------

/// Rescaling(1/127, -1) -> conv_0 -> relu_0 -> conv_1.
fn rescaled_model() -> Model {
    Net::input(SEED, &[8, 8, 3])
        .add(
            "rescaling",
            LayerConfig::Rescaling {
                scale: 1.0 / 127.0,
                offset: -1.0,
            },
        )
        .add("conv_0", qconv(8, 3, 8))
        .add("relu_0", qrelu(4))
        .add("conv_1", qconv(4, 3, 4))
        .build("rescaled")
}

#[test]
fn a_leading_rescaling_gives_the_input_scale_shift_and_padding_value() {
    let model = rescaled_model();
    let scaling = cnn2snn::plan::input_scaling(&model, None).unwrap();
    assert_eq!(
        scaling,
        InputScaling {
            scale: 127.0,
            shift: 127.0
        }
    );
    assert_eq!(check_model(&model, None), Report::default());
    let conversion = convert(&model, &ConvertOptions::default()).unwrap();
    let layers = &conversion.model.layers;
    assert_eq!(layers[0].params.padding_value, 127);
    assert_eq!(layers[1].params.padding_value, 0);
    assert_runs(&conversion.model, "rescaled");
}

#[test]
fn scaling_flags_are_refused_with_a_rescaling_and_need_a_positive_scale() {
    let flags = InputScaling {
        scale: 255.0,
        shift: 0.0,
    };
    let model = rescaled_model();
    let err = cnn2snn::plan::input_scaling(&model, Some(flags)).unwrap_err();
    assert!(matches!(err, Cnn2snnError::Unsupported(_)), "{err}");
    let report = check_model(&model, Some(flags));
    assert_single_finding(&report, Rule::RescalingPlacement, Level::Error, "rescaling");
    let options = ConvertOptions {
        input_scaling: Some(flags),
        ..ConvertOptions::default()
    };
    assert!(convert(&model, &options).is_err());

    let plain = front().add("conv_1", qconv(4, 3, 4)).build("plain");
    let ok = cnn2snn::plan::input_scaling(&plain, Some(flags)).unwrap();
    assert_eq!(ok, flags);
    for scale in [0.0, -2.0, f64::NAN] {
        let bad = InputScaling { scale, shift: 0.0 };
        let err = cnn2snn::plan::input_scaling(&plain, Some(bad)).unwrap_err();
        assert!(err.to_string().contains("strictly positive"), "{err}");
        let report = check_model(&plain, Some(bad));
        assert_single_finding(&report, Rule::RescalingPlacement, Level::Error, "plain");
    }
    assert_eq!(
        cnn2snn::plan::input_scaling(&plain, None).unwrap(),
        InputScaling::default()
    );
    // A Rescaling scale that is not positive is named as such (a scale of
    // 0 was reported as an input scale of "inf").
    for scale in [-1.0 / 127.0, 0.0] {
        let mut bad = rescaled_model();
        bad.layer_mut("rescaling").unwrap().config = LayerConfig::Rescaling { scale, offset: 0.0 };
        let report = check_model(&bad, None);
        assert_single_finding(&report, Rule::RescalingPlacement, Level::Error, "rescaling");
        let message = &report.findings[0].message;
        assert!(
            message.starts_with(&format!(
                "the Rescaling layer `rescaling` has scale {scale}:"
            )),
            "{report}"
        );
    }
}

// ---------------------------------------------------------------------------
// act_step equalization
// ---------------------------------------------------------------------------

/// conv_0 -> relu_0 (4 bits, max 15: step 1) -> conv_1 (tiny weights: the
/// scale factor is clipped at 1000) -> relu_1 (4 bits, max 1000) -> conv_2.
/// conv_1's act_step is (1 * 1000 * 1000/15) * 2^4 / 16 = 66666.664.
fn large_act_step_model() -> Model {
    let relu = |max_value| LayerConfig::QuantizedReLU {
        bitwidth: 4,
        max_value,
    };
    let mut model = Net::input(SEED, &[8, 8, 3])
        .add("conv_0", qconv(8, 3, 8))
        .add("relu_0", relu(15.0))
        .add("conv_1", qconv(4, 3, 4))
        .add("relu_1", relu(1000.0))
        .add("conv_2", qconv(2, 3, 4))
        .build("large_act_step");
    set_weight(&mut model, "conv_1", WeightRole::Kernel, |_| 0.005);
    set_weight(&mut model, "conv_1", WeightRole::Bias, |_| 0.0);
    set_weight(&mut model, "conv_2", WeightRole::Kernel, |_| 1.0);
    model
}

#[test]
fn act_steps_above_the_cnp_range_are_equalized() {
    let model = large_act_step_model();
    let conversion = convert(&model, &ConvertOptions::default()).unwrap();
    assert!(
        conversion.report.findings.is_empty(),
        "{}",
        conversion.report
    );
    assert_eq!(conversion.notes.len(), 1, "{:?}", conversion.notes);
    let note = &conversion.notes[0];
    assert!(
        note.contains("`conv_1`") && note.contains("act_step"),
        "{note}"
    );
    let layers = &conversion.model.layers;
    let conv_1 = &layers[1];
    // Before: floor(1000 * (66.666664 / 2)) = 33333; the clip moves the
    // threshold by round(0.5 * (65535 - 66666.664)) = -566.
    assert_eq!(conv_1.act_step.iter().collect::<Vec<_>>(), vec![65535.0; 4]);
    assert_eq!(
        conv_1.threshold.iter().collect::<Vec<_>>(),
        vec![33333 - 566; 4]
    );
    assert!(conv_1.weights().values().all(|w| w == 5));
    // conv_2's integer weights 7 are floor-divided by 66666.664 / 65535.
    let conv_2 = &layers[2];
    assert!(conv_2.weights().values().all(|w| w == 6));
    // The input layer's act_step is far below 2^20 - 1 and kept.
    assert!(layers[0].act_step.iter().all(|s| s < 65535.0));
    assert_runs(&conversion.model, "large_act_step");
}
