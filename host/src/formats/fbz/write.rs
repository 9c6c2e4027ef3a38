//! From our model to the tables of a `.fbz` file, as BrainChip's engine
//! writes them: params exactly `params::to_params` plus `layer_type`,
//! sorted by key; variables sorted by name with numpy shapes reversed; the
//! previous layer's name as the only inbound layer. An InputData layer comes
//! first, with its params and no variable.

use super::{weights_dtype, FbzError, FbzLayer, FbzModel, FbzTensor, LayerError, VERSION};
use super::{DTYPE_FLOAT32, DTYPE_INT32};
use crate::formats::akd::ConvertedModel;
use crate::formats::fbz::params;
use akida_core::{LayerRef, PackedWeights};

impl FbzModel {
    /// The tables of a (valid) model.
    pub fn from_model(model: &ConvertedModel) -> Result<FbzModel, FbzError> {
        let mut layers = Vec::with_capacity(model.len() + 1);
        let mut previous: Option<&str> = None;
        if let Some(d) = model.input_data() {
            let mut params = params::input_data_to_params(&d);
            params.insert("layer_type".into(), params::INPUT_DATA_CODE);
            layers.push(FbzLayer {
                name: d.name.to_owned(),
                params: params.into_iter().collect(),
                variables: vec![],
                inbounds: vec![],
            });
            previous = Some(d.name);
        }
        for layer in model.layers() {
            let index = layers.len();
            let layer = layer.layer;
            let written = write_layer(&layer, previous).map_err(|source| FbzError::Layer {
                index,
                name: layer.name.to_owned(),
                source,
            })?;
            layers.push(written);
            previous = Some(layer.name);
        }
        Ok(FbzModel {
            version: VERSION.to_owned(),
            layers,
        })
    }
}

fn write_layer(layer: &LayerRef, previous: Option<&str>) -> Result<FbzLayer, LayerError> {
    let mut params = params::to_params(&layer.params);
    params.insert(
        "layer_type".into(),
        params::layer_type_code(layer.params.kind),
    );
    let mut variables = vec![
        weights_tensor("weights", &layer.weights())?,
        numbers_tensor("threshold", DTYPE_INT32, layer.threshold.0),
        numbers_tensor("act_step", DTYPE_FLOAT32, layer.act_step.0),
    ];
    if let Some(pw) = layer.pointwise() {
        variables.push(weights_tensor("weights_pw", &pw)?);
    }
    variables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FbzLayer {
        name: layer.name.to_owned(),
        // A BTreeMap iterates sorted by key, as the engine stores them.
        params: params.into_iter().collect(),
        variables,
        inbounds: previous.map(str::to_owned).into_iter().collect(),
    })
}

/// One byte per weight, whatever the bit width; the dtype tells the width.
fn weights_tensor(name: &str, w: &PackedWeights) -> Result<FbzTensor, LayerError> {
    Ok(FbzTensor {
        name: name.to_owned(),
        shape: w.shape.iter().rev().copied().collect(),
        data: w.values().map(|v| v as u8).collect(),
        dtype: weights_dtype(w.bits).ok_or(LayerError::WeightBits(w.bits))?,
        flag: false,
    })
}

/// A 1-D tensor of little-endian 4-byte numbers; flagged as the engine
/// flags thresholds and act_steps.
fn numbers_tensor(name: &str, dtype: u8, le_bytes: &[u8]) -> FbzTensor {
    FbzTensor {
        name: name.to_owned(),
        shape: vec![(le_bytes.len() / 4) as u32],
        data: le_bytes.to_vec(),
        dtype,
        flag: true,
    }
}
