//! Converted models on the host: the core's layer and model types with
//! owned storage, and their `.akd` bytes.
//!
//! A [`ConvertedModel`] is a [`ValidModel`] owning its variables: anything
//! that loads, converts or builds a model returns one, so everything
//! downstream (the runtime, the summary, the writers) works on a model known
//! to be valid.

use akida_core::weights::PackError;
use akida_core::{FormatError, InputData, ModelError, OwnedModel, ValidModel, MAX_LAYERS};

/// One converted layer, owning its variables.
pub type ConvertedLayer = akida_core::OwnedLayer;

/// A valid converted model, owning its variables.
pub type ConvertedModel = ValidModel<Vec<u8>, String>;

/// Why layers do not make a runnable model.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("layer {layer} (`{name}`)")]
    Pack {
        layer: usize,
        name: String,
        source: PackError,
    },
    #[error("the model has {0} layers, at most {MAX_LAYERS} are supported")]
    TooManyLayers(usize),
    #[error("inconsistent model")]
    Invalid(#[source] ModelError),
}

/// The InputData layer of a model, owning its name.
pub type ConvertedInputData = InputData<String>;

/// Validates a chain of layers as a model.
pub fn build(layers: Vec<ConvertedLayer>) -> Result<ConvertedModel, BuildError> {
    build_with_input(None, layers)
}

/// Validates a chain of layers, behind an InputData layer if one is given,
/// as a model.
pub fn build_with_input(
    input_data: Option<ConvertedInputData>,
    layers: Vec<ConvertedLayer>,
) -> Result<ConvertedModel, BuildError> {
    if layers.len() > MAX_LAYERS {
        return Err(BuildError::TooManyLayers(layers.len()));
    }
    let layers = layers.into_iter().collect();
    OwnedModel { layers, input_data }
        .validate()
        .map_err(BuildError::Invalid)
}

/// The `.akd` bytes of a model.
pub fn to_bytes(model: &ConvertedModel) -> Result<Vec<u8>, FormatError> {
    akida_core::format::encode(model)
}

/// Decodes (and validates) `.akd` bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<ConvertedModel, FormatError> {
    Ok(akida_core::decode(bytes)?.to_owned_model())
}
