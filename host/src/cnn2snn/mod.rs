//! cnn2snn, the legacy Akida 1.0 flow of BrainChip's tool, rebuilt:
//! [`quantize`] turns a float Keras model into cnn2snn's quantized layers,
//! [`convert`] turns a quantized model into Akida 1.0 layers with integer
//! weights, thresholds and act_steps, and [`check`] reports, layer by layer,
//! what cnn2snn refuses (errors) and what the AKD1000 silicon cannot map
//! (warnings).
//!
//! All float arithmetic follows cnn2snn and TensorFlow in float32, in the
//! order `../shared/spec/AKIDA_V1_SEMANTICS.md` gives; the integer model then
//! runs on `akida-core`, which never sees a float but the act_step.

pub mod align;
pub mod chain;
pub mod check;
pub mod convert;
pub mod equalize;
pub mod hardware;

pub mod naming;
pub mod plan;
pub mod quantize;
pub mod quantizer;

pub use align::{align, Alignment, LayerAlignment};
pub use check::{check_model, Finding, Level, Report, Rule};
pub use convert::{convert, Conversion, ConvertOptions};
pub use plan::InputScaling;
pub use quantize::{quantize, QuantizeOptions};

/// Why a model cannot be quantized or converted. Every variant names the
/// layer (or model) concerned.
#[derive(Debug, thiserror::Error)]
pub enum Cnn2snnError {
    #[error("layer `{layer}`: the model is not a serial feed-forward graph: {why}")]
    NotSerial { layer: String, why: String },
    #[error("layer `{layer}`: {message}")]
    Shape { layer: String, message: String },
    #[error("layer `{layer}`: weight `{weight}` is missing")]
    MissingWeight { layer: String, weight: String },
    #[error("there are {count} negative or null gammas in the batch norm layer `{layer}`, which must move in front of a MaxPooling2D: negative gammas are not supported")]
    NegativeGamma { layer: String, count: usize },
    #[error("there are {count} null gammas in the batch norm layer `{layer}`: null gammas are not supported")]
    NullGamma { layer: String, count: usize },
    #[error(
        "the BatchNormalization layer `{layer}` must be applied on the last axis, not {axis:?}"
    )]
    BatchNormAxis { layer: String, axis: Vec<i64> },
    #[error("layer `{layer}`")]
    Quantizer {
        layer: String,
        #[source]
        source: quantizer::QuantizerError,
    },
    #[error("layer `{layer}`")]
    Pack {
        layer: String,
        #[source]
        source: akida_core::weights::PackError,
    },
    #[error("layer `{layer}`: argument `{argument}` is only supported with its default value `{default}`, found `{found}`")]
    UnsupportedArgument {
        layer: String,
        argument: String,
        default: String,
        found: String,
    },
    #[error("layer `{layer}`: {what} cannot be quantized with bitwidth 0")]
    ZeroBits { layer: String, what: String },
    #[error("invalid bit width: {0}")]
    Bits(String),
    #[error("the model is not compatible with Akida 1.0 conversion:\n{0}")]
    Incompatible(Report),
    #[error("{0}")]
    Unsupported(String),
    #[error("layer `{layer}`: act_step {value} of filter {filter} is below 1/16, which the engine refuses (\"Unsupported act_step, it should be equal or greater than 1/16.\"))")]
    ActStep {
        layer: String,
        filter: usize,
        value: f32,
    },
    #[error("layer `{layer}`: its act_steps above the hardware limit move into the weights of the next layer `{next}`, which cnn2snn cannot do for a fully connected layer on a {}x{}x{} input (numpy: \"operands could not be broadcast together\"; a 1x1xC input works)", input.rows, input.cols, input.channels)]
    Equalization {
        layer: String,
        next: String,
        input: akida_core::Dims,
    },
    /// The converted layers do not make a valid model ("inconsistent
    /// model: ..." once, not twice).
    #[error(transparent)]
    Model(crate::formats::akd::BuildError),
    #[error("layer `{layer}`: weight `{weight}` holds {value} at index {index} ({count} value(s) not finite in all): NaN and infinite weights cannot be quantized or converted")]
    NonFinite {
        layer: String,
        weight: String,
        index: usize,
        value: f32,
        count: usize,
    },
    #[error("the batch norm layer `{layer}` holds {count} negative moving variance(s) (channel {channel}: {value}): a variance cannot be negative")]
    NegativeVariance {
        layer: String,
        channel: usize,
        value: f32,
        count: usize,
    },
}

/// Refuses a model holding a NaN or infinite weight, naming the first one
/// (layer, weight and index): quantizing it would give NaN thresholds or
/// scales, and a garbage model.
pub fn check_finite(model: &crate::keras::Model) -> Result<(), Cnn2snnError> {
    for layer in &model.layers {
        for w in &layer.weights {
            let mut bad = w.values.iter().enumerate().filter(|(_, v)| !v.is_finite());
            if let Some((index, &value)) = bad.next() {
                return Err(Cnn2snnError::NonFinite {
                    layer: layer.name.clone(),
                    weight: w.name.clone(),
                    index,
                    value,
                    count: 1 + bad.count(),
                });
            }
        }
    }
    Ok(())
}
