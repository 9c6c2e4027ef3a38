//! `cnn2snn quantize`: a float (or already quantized) Keras model becomes a
//! model of cnn2snn's quantized layers, as `cnn2snn.quantize` does:
//! sequentialize, move batch normalizations in front of poolings, fold them
//! into the neural layers, then replace Conv2D / SeparableConv2D / Dense by
//! their quantized forms (`MaxPerAxisQuantizer`, `MaxQuantizer` for depthwise
//! kernels; the first neural layer at the input bit width) and ReLU by
//! `QuantizedReLU`. Weights stay float: quantization happens in the layers.

use crate::keras::{
    self, Conv2DConfig, DenseConfig, Layer, LayerConfig, Quantizer, SeparableConv2DConfig,
};

use super::chain::{self, Chain};
use super::Cnn2snnError;

/// Bit widths of a quantization (0 keeps float weights or activations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantizeOptions {
    /// Weights of every neural layer but the first (`-wq`).
    pub weight_bits: u32,
    /// Activations (`-aq`).
    pub activation_bits: u32,
    /// Weights of the first neural layer (`-iq`; `None`: as `weight_bits`).
    pub input_weight_bits: Option<u32>,
    /// Re-quantize only the last activation to this width (`-laq`).
    pub last_activation_bits: Option<u32>,
    /// Fold batch normalization (cnn2snn's default).
    pub fold_batchnorm: bool,
}

impl QuantizeOptions {
    pub fn new(weight_bits: u32, activation_bits: u32) -> QuantizeOptions {
        QuantizeOptions {
            weight_bits,
            activation_bits,
            input_weight_bits: None,
            last_activation_bits: None,
            fold_batchnorm: true,
        }
    }

    /// The first layer's weight bits.
    pub fn input_bits(&self) -> u32 {
        self.input_weight_bits.unwrap_or(self.weight_bits)
    }

    /// Checks the widths cnn2snn's quantize accepts: weights 0 or >= 2,
    /// activations 0 or >= 1 (the last activation >= 1).
    pub fn validate(&self) -> Result<(), Cnn2snnError> {
        for (what, bits) in [("-wq", self.weight_bits), ("-iq", self.input_bits())] {
            if bits == 1 {
                return Err(Cnn2snnError::Bits(format!(
                    "{what} {bits}: weight bitwidth must be 0 (float) or at least 2"
                )));
            }
        }
        if self.last_activation_bits == Some(0) {
            return Err(Cnn2snnError::Bits(
                "-laq 0: the last activation bitwidth must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Quantizes a Keras model.
pub fn quantize(
    model: &keras::Model,
    options: &QuantizeOptions,
) -> Result<keras::Model, Cnn2snnError> {
    options.validate()?;
    super::check_finite(model)?;
    let mut chain = Chain::from_model(model)?;
    if options.fold_batchnorm {
        chain::invert_batchnorm_pooling(&mut chain)?;
        chain::fold_batchnorm(&mut chain)?;
    }
    let mut first_neural = true;
    for layer in &mut chain.layers {
        if chain::is_activation(&layer.config) {
            quantize_activation(layer, options.activation_bits)?;
        } else if chain::is_neural(&layer.config) {
            let bits = if first_neural {
                options.input_bits()
            } else {
                options.weight_bits
            };
            first_neural = false;
            quantize_neural(layer, bits)?;
        }
    }
    if let Some(bits) = options.last_activation_bits {
        requantize_last_activation(&mut chain, bits)?;
    }
    Ok(chain.into_model())
}

/// `-laq`: the last quantized activation of the chain gets `bits`.
fn requantize_last_activation(chain: &mut Chain, bits: u32) -> Result<(), Cnn2snnError> {
    let last = chain
        .layers
        .iter_mut()
        .rev()
        .find(|l| matches!(l.config, LayerConfig::QuantizedReLU { .. }));
    match last {
        Some(layer) => {
            if let LayerConfig::QuantizedReLU { bitwidth, .. } = &mut layer.config {
                *bitwidth = bits;
            }
            Ok(())
        }
        None => Err(Cnn2snnError::Unsupported(
            "-laq: the model has no quantized activation to re-quantize".into(),
        )),
    }
}

fn quantize_activation(layer: &mut Layer, bits: u32) -> Result<(), Cnn2snnError> {
    if bits == 0 {
        if matches!(layer.config, LayerConfig::ReLU(_)) {
            return Ok(());
        }
        return Err(Cnn2snnError::ZeroBits {
            layer: layer.name.clone(),
            what: "a quantized activation".into(),
        });
    }
    let max_value = match &layer.config {
        LayerConfig::ReLU(relu) => {
            if relu.threshold != 0.0 {
                eprintln!("Skipping ReLU layer {} with non-zero threshold", layer.name);
                return Ok(());
            }
            // No max_value: QuantizedReLU takes 2^bits - 1.
            relu.max_value.unwrap_or(2f64.powi(bits as i32) - 1.0)
        }
        LayerConfig::QuantizedReLU { max_value, .. } => *max_value,
        LayerConfig::ActivationDiscreteRelu { bitwidth } => {
            // max_value = step * levels, in float32 as TensorFlow computes it.
            let levels = 2f64.powi(*bitwidth as i32) - 1.0;
            let step = (levels.min(6.0) / levels) as f32;
            (step * levels as f32) as f64
        }
        _ => return Ok(()),
    };
    layer.config = LayerConfig::QuantizedReLU {
        bitwidth: bits,
        // Stored as the float32 the layer holds.
        max_value: max_value as f32 as f64,
    };
    layer.raw = None;
    Ok(())
}

fn check_linear(layer: &str, activation: &str) -> Result<(), Cnn2snnError> {
    if activation == "linear" {
        Ok(())
    } else {
        Err(Cnn2snnError::UnsupportedArgument {
            layer: layer.to_owned(),
            argument: "activation".into(),
            default: "linear".into(),
            found: activation.to_owned(),
        })
    }
}

fn check_depth_multiplier(layer: &str, c: &SeparableConv2DConfig) -> Result<(), Cnn2snnError> {
    if c.depth_multiplier == 1 {
        Ok(())
    } else {
        Err(Cnn2snnError::UnsupportedArgument {
            layer: layer.to_owned(),
            argument: "depth_multiplier".into(),
            default: "1".into(),
            found: c.depth_multiplier.to_string(),
        })
    }
}

/// cnn2snn's quantized layers only take `channels_last` data and one group:
/// refuse other values before the float layer's raw config is dropped.
fn check_raw_defaults(layer: &Layer) -> Result<(), Cnn2snnError> {
    let Some(raw) = &layer.raw else {
        return Ok(());
    };
    let checks = [("data_format", "channels_last"), ("groups", "1")];
    for (argument, default) in checks {
        let found = match raw.config.get(argument) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if found != default {
            return Err(Cnn2snnError::UnsupportedArgument {
                layer: layer.name.clone(),
                argument: argument.into(),
                default: default.into(),
                found,
            });
        }
    }
    Ok(())
}

fn quantize_neural(layer: &mut Layer, bits: u32) -> Result<(), Cnn2snnError> {
    let name = layer.name.clone();
    if bits != 0 {
        check_raw_defaults(layer)?;
    }
    if bits == 0 {
        if layer.config.is_quantized() {
            return Err(Cnn2snnError::ZeroBits {
                layer: name,
                what: "a quantized layer".into(),
            });
        }
        return Ok(());
    }
    let new = match &layer.config {
        LayerConfig::Conv2D(c) => {
            check_linear(&name, &c.activation)?;
            LayerConfig::QuantizedConv2D {
                conv: Conv2DConfig {
                    activation: "linear".into(),
                    ..c.clone()
                },
                quantizer: Quantizer::max_per_axis(bits),
            }
        }
        LayerConfig::SeparableConv2D(c) => {
            check_linear(&name, &c.activation)?;
            check_depth_multiplier(&name, c)?;
            LayerConfig::QuantizedSeparableConv2D {
                conv: c.clone(),
                quantizer: Quantizer::max_per_axis(bits),
                quantizer_dw: Quantizer::max(bits),
            }
        }
        LayerConfig::Dense(d) => {
            check_linear(&name, &d.activation)?;
            LayerConfig::QuantizedDense {
                dense: DenseConfig { ..d.clone() },
                quantizer: Quantizer::max_per_axis(bits),
            }
        }
        LayerConfig::QuantizedConv2D { conv, quantizer } => LayerConfig::QuantizedConv2D {
            conv: conv.clone(),
            quantizer: Quantizer {
                bitwidth: bits,
                ..quantizer.clone()
            },
        },
        LayerConfig::QuantizedSeparableConv2D {
            conv,
            quantizer,
            quantizer_dw,
        } => LayerConfig::QuantizedSeparableConv2D {
            conv: conv.clone(),
            quantizer: Quantizer {
                bitwidth: bits,
                ..quantizer.clone()
            },
            quantizer_dw: Quantizer {
                bitwidth: bits,
                ..quantizer_dw.clone()
            },
        },
        LayerConfig::QuantizedDense { dense, quantizer } => LayerConfig::QuantizedDense {
            dense: dense.clone(),
            quantizer: Quantizer {
                bitwidth: bits,
                ..quantizer.clone()
            },
        },
        _ => return Ok(()),
    };
    if !matches!(
        (&layer.config, &new),
        (
            LayerConfig::QuantizedConv2D { .. },
            LayerConfig::QuantizedConv2D { .. }
        ) | (
            LayerConfig::QuantizedDense { .. },
            LayerConfig::QuantizedDense { .. }
        ) | (
            LayerConfig::QuantizedSeparableConv2D { .. },
            LayerConfig::QuantizedSeparableConv2D { .. }
        )
    ) {
        // The raw config belongs to the float class.
        layer.raw = None;
    }
    layer.config = new;
    Ok(())
}
