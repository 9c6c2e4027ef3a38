//! `cnn2snn quantize` on small float models built in code: the bit widths
//! `QuantizeOptions::validate` accepts, 0 bits keeping float layers, `-laq`
//! re-quantizing only the last activation, quantizing an already quantized
//! model (new widths, same weights), batch normalization folding (negative
//! gammas refused only in front of a max pooling, naming the batch norm),
//! and the names of quantized files (`naming::quantized_path`).

use std::path::{Path, PathBuf};

use akida_host::cnn2snn::{self, naming, Cnn2snnError, QuantizeOptions};
use akida_host::keras::{
    BatchNormConfig, Conv2DConfig, DenseConfig, LayerConfig, Model, Padding, Pool2DConfig,
    Quantizer, ReluConfig, WeightRole,
};
use akida_tests::keras::Net;

/// Seed of the weight initialisation of this file's models.
const SEED: u64 = 11;

/// A 'same' 3x3 Conv2D.
fn conv(filters: usize) -> LayerConfig {
    LayerConfig::Conv2D(Conv2DConfig {
        padding: Padding::Same,
        ..Conv2DConfig::new(filters, [3, 3])
    })
}

fn relu6() -> LayerConfig {
    LayerConfig::ReLU(ReluConfig {
        max_value: Some(6.0),
        ..ReluConfig::default()
    })
}

fn batch_norm() -> LayerConfig {
    LayerConfig::BatchNormalization(BatchNormConfig::default())
}

fn max_pool() -> LayerConfig {
    LayerConfig::MaxPooling2D(Pool2DConfig {
        padding: Padding::Same,
        ..Pool2DConfig::new([2, 2])
    })
}

fn gap() -> LayerConfig {
    LayerConfig::GlobalAveragePooling2D { keepdims: false }
}

/// conv_0 -> relu_0 -> conv_1 -> gap_1 -> relu_1 -> dense, in float.
fn float_model() -> Model {
    Net::input(SEED, &[8, 8, 3])
        .add("conv_0", conv(8))
        .add("relu_0", relu6())
        .add("conv_1", conv(8))
        .add("gap_1", gap())
        .add("relu_1", relu6())
        .add("dense", LayerConfig::Dense(DenseConfig::new(4)))
        .build("float")
}

/// `-iq`, `-wq`, `-aq` (and `-laq`) options.
fn options(iq: u32, wq: u32, aq: u32, laq: Option<u32>) -> QuantizeOptions {
    QuantizeOptions {
        input_weight_bits: Some(iq),
        last_activation_bits: laq,
        ..QuantizeOptions::new(wq, aq)
    }
}

fn config<'m>(model: &'m Model, layer: &str) -> &'m LayerConfig {
    &model
        .layer(layer)
        .unwrap_or_else(|| panic!("no layer {layer}"))
        .config
}

/// The weight bits of a quantized neural layer (`None` when float).
fn weight_bits(model: &Model, layer: &str) -> Option<u32> {
    cnn2snn::plan::quantizers(config(model, layer)).map(|(q, _)| q.bitwidth)
}

/// The (bits, max_value) of a QuantizedReLU (`None` otherwise).
fn relu_bits(model: &Model, layer: &str) -> Option<(u32, f64)> {
    match config(model, layer) {
        LayerConfig::QuantizedReLU {
            bitwidth,
            max_value,
        } => Some((*bitwidth, *max_value)),
        _ => None,
    }
}

fn set_gamma(model: &mut Model, layer: &str, gamma: &[f32]) {
    let w = model
        .layer_mut(layer)
        .and_then(|l| l.weight_mut(WeightRole::Gamma))
        .unwrap();
    w.values.copy_from_slice(gamma);
}

fn values(model: &Model, layer: &str, role: WeightRole) -> Vec<f32> {
    model
        .layer(layer)
        .unwrap()
        .weight(role)
        .unwrap()
        .values
        .clone()
}

fn layer_names(model: &Model) -> Vec<&str> {
    model.layers.iter().map(|l| l.name.as_str()).collect()
}

// ---------------------------------------------------------------------------
// Bit widths
// ---------------------------------------------------------------------------

fn bits_error(options: QuantizeOptions) -> String {
    match options.validate() {
        Err(Cnn2snnError::Bits(message)) => message,
        other => panic!("{options:?}: expected a bit width error, got {other:?}"),
    }
}

#[test]
fn validate_refuses_1_bit_weights_and_a_0_bit_last_activation() {
    assert!(bits_error(QuantizeOptions::new(1, 4)).starts_with("-wq 1"));
    assert!(bits_error(options(1, 4, 4, None)).starts_with("-iq 1"));
    assert!(bits_error(options(8, 4, 4, Some(0))).starts_with("-laq 0"));
    for ok in [
        QuantizeOptions::new(0, 0),
        QuantizeOptions::new(2, 1),
        options(8, 4, 4, Some(1)),
        options(0, 2, 4, None),
    ] {
        assert!(ok.validate().is_ok(), "{ok:?}");
    }
    let err = cnn2snn::quantize(&float_model(), &QuantizeOptions::new(1, 4)).unwrap_err();
    assert!(matches!(err, Cnn2snnError::Bits(_)), "{err}");
}

#[test]
fn zero_weight_bits_keep_float_neural_layers() {
    let float = float_model();
    let q = cnn2snn::quantize(&float, &QuantizeOptions::new(0, 4)).unwrap();
    for layer in ["conv_0", "conv_1", "dense"] {
        assert_eq!(config(&q, layer), config(&float, layer), "{layer}");
        assert_eq!(
            q.layer(layer).unwrap().weights,
            float.layer(layer).unwrap().weights
        );
    }
    assert_eq!(relu_bits(&q, "relu_0"), Some((4, 6.0)));
    // -iq 8 -wq 0: only the input layer is quantized.
    let q = cnn2snn::quantize(&float, &options(8, 0, 4, None)).unwrap();
    assert_eq!(weight_bits(&q, "conv_0"), Some(8));
    assert!(matches!(config(&q, "conv_1"), LayerConfig::Conv2D(_)));
    assert!(matches!(config(&q, "dense"), LayerConfig::Dense(_)));
    // A quantized layer cannot go back to float.
    let err = cnn2snn::quantize(&q, &options(0, 0, 4, None)).unwrap_err();
    assert!(
        matches!(&err, Cnn2snnError::ZeroBits { layer, .. } if layer == "conv_0"),
        "{err}"
    );
}

#[test]
fn zero_activation_bits_keep_relu() {
    let float = float_model();
    let q = cnn2snn::quantize(&float, &QuantizeOptions::new(4, 0)).unwrap();
    for layer in ["relu_0", "relu_1"] {
        assert_eq!(config(&q, layer), &relu6(), "{layer}");
    }
    assert_eq!(weight_bits(&q, "conv_0"), Some(4));
    assert_eq!(weight_bits(&q, "conv_1"), Some(4));
    assert_eq!(weight_bits(&q, "dense"), Some(4));
}

#[test]
fn laq_requantizes_only_the_last_activation() {
    let q = cnn2snn::quantize(&float_model(), &options(8, 4, 2, Some(1))).unwrap();
    assert_eq!(relu_bits(&q, "relu_0"), Some((2, 6.0)));
    assert_eq!(relu_bits(&q, "relu_1"), Some((1, 6.0)));
    assert_eq!(weight_bits(&q, "conv_0"), Some(8));
    assert_eq!(weight_bits(&q, "conv_1"), Some(4));
    assert_eq!(weight_bits(&q, "dense"), Some(4));
    // Without any activation there is nothing to re-quantize.
    let no_relu = Net::input(SEED, &[8, 8, 3])
        .add("conv_0", conv(4))
        .build("no_relu");
    let err = cnn2snn::quantize(&no_relu, &options(8, 4, 4, Some(1))).unwrap_err();
    assert!(matches!(err, Cnn2snnError::Unsupported(_)), "{err}");
}

#[test]
fn quantizing_a_quantized_model_replaces_the_bit_widths_only() {
    let first = cnn2snn::quantize(&float_model(), &options(8, 4, 4, None)).unwrap();
    let second = cnn2snn::quantize(&first, &options(4, 2, 2, Some(1))).unwrap();
    assert_eq!(layer_names(&second), layer_names(&first));
    for (a, b) in first.layers.iter().zip(&second.layers) {
        assert_eq!(a.weights, b.weights, "{}: weights changed", a.name);
        assert_eq!(a.class_name(), b.class_name(), "{}", a.name);
    }
    assert_eq!(weight_bits(&second, "conv_0"), Some(4));
    assert_eq!(weight_bits(&second, "conv_1"), Some(2));
    assert_eq!(weight_bits(&second, "dense"), Some(2));
    assert_eq!(relu_bits(&second, "relu_0"), Some((2, 6.0)));
    assert_eq!(relu_bits(&second, "relu_1"), Some((1, 6.0)));
    match config(&second, "conv_1") {
        LayerConfig::QuantizedConv2D { quantizer, .. } => {
            assert_eq!(quantizer, &Quantizer::max_per_axis(2))
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Batch normalization folding
// ---------------------------------------------------------------------------

/// conv_0 -> pool_0 (max) -> bn_0 -> relu_0 -> conv_1, in float.
fn batch_norm_after_max_pool() -> Model {
    Net::input(SEED, &[8, 8, 3])
        .add("conv_0", conv(4))
        .add("pool_0", max_pool())
        .add("bn_0", batch_norm())
        .add("relu_0", relu6())
        .add("conv_1", conv(4))
        .build("bn_after_pool")
}

#[test]
fn a_non_positive_gamma_before_a_max_pooling_is_refused_naming_the_batch_norm() {
    let mut model = batch_norm_after_max_pool();
    set_gamma(&mut model, "bn_0", &[1.0, -0.5, 0.0, 2.0]);
    let err = cnn2snn::quantize(&model, &QuantizeOptions::new(4, 4)).unwrap_err();
    assert!(
        matches!(&err, Cnn2snnError::NegativeGamma { layer, count: 2 } if layer == "bn_0"),
        "{err}"
    );
    assert!(err.to_string().contains("`bn_0`"), "{err}");
    // With positive gammas it moves in front of the pooling and is folded.
    set_gamma(&mut model, "bn_0", &[1.0, 0.5, 3.0, 2.0]);
    let q = cnn2snn::quantize(&model, &QuantizeOptions::new(4, 4)).unwrap();
    assert_eq!(
        layer_names(&q),
        ["input", "conv_0", "pool_0", "relu_0", "conv_1"]
    );
}

/// Keras's folding factor `gamma / sqrt(variance + epsilon)` in float32,
/// for the initial variance 1 and epsilon 0.001.
fn fold_factor(gamma: f32) -> f32 {
    gamma / (1.0f32 + 1e-3f64 as f32).sqrt()
}

#[test]
fn negative_gammas_elsewhere_are_folded() {
    let mut model = Net::input(SEED, &[8, 8, 3])
        .add("conv_0", conv(4))
        .add("bn_0", batch_norm())
        .add("relu_0", relu6())
        .add("conv_1", conv(2))
        .add("gap_1", gap())
        .add("bn_1", batch_norm())
        .add("relu_1", relu6())
        .add("dense", LayerConfig::Dense(DenseConfig::new(4)))
        .build("negative_gammas");
    let gamma_0 = [1.0, -0.5, 1.0, 1.0];
    let gamma_1 = [-2.0, 1.0];
    set_gamma(&mut model, "bn_0", &gamma_0);
    set_gamma(&mut model, "bn_1", &gamma_1);
    let q = cnn2snn::quantize(&model, &QuantizeOptions::new(4, 4)).unwrap();
    assert_eq!(
        layer_names(&q),
        ["input", "conv_0", "relu_0", "conv_1", "gap_1", "relu_1", "dense"]
    );
    for (layer, gamma) in [("conv_0", &gamma_0[..]), ("conv_1", &gamma_1[..])] {
        let before = values(&model, layer, WeightRole::Kernel);
        let after = values(&q, layer, WeightRole::Kernel);
        let want: Vec<f32> = before
            .iter()
            .enumerate()
            .map(|(i, &w)| w * fold_factor(gamma[i % gamma.len()]))
            .collect();
        assert_eq!(after, want, "{layer}: folded kernel");
        // Moving mean 0 and beta 0: the folded bias is 0.
        assert_eq!(values(&q, layer, WeightRole::Bias), vec![0.0; gamma.len()]);
    }
}

#[test]
fn a_null_gamma_after_a_convolution_is_refused() {
    let mut model = Net::input(SEED, &[8, 8, 3])
        .add("conv_0", conv(2))
        .add("bn_0", batch_norm())
        .add("relu_0", relu6())
        .build("null_gamma");
    set_gamma(&mut model, "bn_0", &[0.0, 1.0]);
    let err = cnn2snn::quantize(&model, &QuantizeOptions::new(4, 4)).unwrap_err();
    assert!(
        matches!(&err, Cnn2snnError::NullGamma { layer, count: 1 } if layer == "bn_0"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// File names
// ---------------------------------------------------------------------------

fn quantized_name(input: &str, iq: u32, wq: u32, aq: u32, laq: Option<u32>) -> PathBuf {
    naming::quantized_path(Path::new(input), iq, wq, aq, laq)
}

#[test]
fn quantized_paths_add_or_replace_the_bit_suffix() {
    let cases = [
        // (input, iq, wq, aq, laq, expected)
        ("m.h5", 8, 4, 4, None, "m_iq8_wq4_aq4.h5"),
        ("dir/m.h5", 8, 4, 4, Some(1), "dir/m_iq8_wq4_aq4_laq1.h5"),
        ("m_iq8_wq4_aq4.h5", 4, 2, 1, None, "m_iq4_wq2_aq1.h5"),
        ("m_iq8_wq4_aq4_laq1.h5", 8, 4, 4, None, "m_iq8_wq4_aq4.h5"),
        (
            "m_iq8_wq4_aq4_laq1.h5",
            8,
            4,
            4,
            Some(2),
            "m_iq8_wq4_aq4_laq2.h5",
        ),
        (
            "net_v2_final.h5",
            4,
            4,
            4,
            None,
            "net_v2_final_iq4_wq4_aq4.h5",
        ),
        ("m.keras.h5", 4, 4, 4, None, "m.keras_iq4_wq4_aq4.h5"),
        // Not a full `_iqI_wqW_aqA` suffix: kept.
        (
            "m_iqx_wq4_aq4.h5",
            4,
            4,
            4,
            None,
            "m_iqx_wq4_aq4_iq4_wq4_aq4.h5",
        ),
        ("m_laq1.h5", 4, 4, 4, None, "m_laq1_iq4_wq4_aq4.h5"),
        (
            "iq8_wq4_aq4.h5",
            2,
            2,
            2,
            None,
            "iq8_wq4_aq4_iq2_wq2_aq2.h5",
        ),
    ];
    for (input, iq, wq, aq, laq, want) in cases {
        assert_eq!(
            quantized_name(input, iq, wq, aq, laq),
            PathBuf::from(want),
            "{input}"
        );
    }
    assert_eq!(
        naming::base_stem(Path::new("a/b/ds_cnn_kws_iq8_wq4_aq4_laq1.h5")),
        "ds_cnn_kws"
    );
}

/// cnn2snn's quantized layers take `channels_last` data only: a float layer
/// read with `data_format: channels_first` is refused, naming the layer,
/// instead of silently losing the setting with its raw config.
#[test]
fn channels_first_layers_are_refused() {
    let mut model = float_model();
    let name = "conv_1";
    let mut config = serde_json::Map::new();
    config.insert("data_format".into(), "channels_first".into());
    let layer = model.layer_mut(name).unwrap();
    layer.raw = Some(akida_host::keras::RawConfig {
        class_name: layer.class_name().to_owned(),
        config,
    });
    match cnn2snn::quantize(&model, &options(8, 4, 4, None)) {
        Err(Cnn2snnError::UnsupportedArgument {
            layer, argument, ..
        }) => {
            assert_eq!(layer, name);
            assert_eq!(argument, "data_format");
        }
        other => panic!("expected UnsupportedArgument, got {other:?}"),
    }
}

/// Convert refuses a model holding an unknown class by name, before any
/// shape inference.
#[test]
fn convert_names_unknown_classes() {
    let mut model = cnn2snn::quantize(&float_model(), &options(8, 4, 4, None)).unwrap();
    let name = "relu_0".to_owned();
    model.layer_mut(&name).unwrap().config = LayerConfig::Unknown {
        class_name: "MyLayer".into(),
        module: Some("my.layers".into()),
        registered_name: None,
        config: serde_json::json!({ "name": name }),
    };
    match cnn2snn::convert(&model, &Default::default()) {
        Err(Cnn2snnError::Incompatible(report)) => {
            assert!(
                report.has(cnn2snn::Rule::UnsupportedLayer, &name),
                "{report}"
            );
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
}
