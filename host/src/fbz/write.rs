//! From our model to the tables of a `.fbz` file, as BrainChip's engine
//! writes them: params exactly `engine_params::to_params` plus `layer_type`,
//! sorted by key; variables sorted by name with numpy shapes reversed; the
//! previous layer's name as the only inbound layer.

use super::{weights_dtype, FbzError, FbzLayer, FbzModel, FbzTensor, LayerError, VERSION};
use super::{DTYPE_FLOAT32, DTYPE_INT32};
use crate::akd::{ConvertedLayer, ConvertedModel, IntWeights};
use crate::engine_params;

impl FbzModel {
    /// The tables of a model. The model is validated first: an inconsistent
    /// model is never written.
    pub fn from_model(model: &ConvertedModel) -> Result<FbzModel, FbzError> {
        model.to_akd_bytes().map_err(FbzError::Model)?;
        let mut layers = Vec::with_capacity(model.layers.len());
        let mut previous: Option<&ConvertedLayer> = None;
        for (index, layer) in model.layers.iter().enumerate() {
            let written = write_layer(layer, previous).map_err(|source| FbzError::Layer {
                index,
                name: layer.name.clone(),
                source,
            })?;
            layers.push(written);
            previous = Some(layer);
        }
        Ok(FbzModel {
            version: VERSION.to_owned(),
            layers,
        })
    }
}

fn write_layer(
    layer: &ConvertedLayer,
    previous: Option<&ConvertedLayer>,
) -> Result<FbzLayer, LayerError> {
    let mut params = engine_params::to_params(&layer.geometry());
    params.insert(
        "layer_type".into(),
        engine_params::layer_type_code(layer.kind),
    );
    let mut variables = vec![
        weights_tensor("weights", &layer.weights)?,
        numbers_tensor("threshold", DTYPE_INT32, &layer.threshold, |v| {
            v.to_le_bytes()
        }),
        numbers_tensor("act_step", DTYPE_FLOAT32, &layer.act_step, |v| {
            v.to_le_bytes()
        }),
    ];
    if let Some(pw) = &layer.weights_pw {
        variables.push(weights_tensor("weights_pw", pw)?);
    }
    variables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FbzLayer {
        name: layer.name.clone(),
        // A BTreeMap iterates sorted by key, as the engine stores them.
        params: params.into_iter().collect(),
        variables,
        inbounds: previous.map(|p| p.name.clone()).into_iter().collect(),
    })
}

/// One byte per weight, whatever the bit width; the dtype tells the width.
fn weights_tensor(name: &str, w: &IntWeights) -> Result<FbzTensor, LayerError> {
    Ok(FbzTensor {
        name: name.to_owned(),
        shape: w.shape.iter().rev().copied().collect(),
        data: w.values.iter().map(|&v| v as u8).collect(),
        dtype: weights_dtype(w.bits).ok_or(LayerError::WeightBits(w.bits))?,
        flag: false,
    })
}

/// A 1-D tensor of little-endian numbers; flagged as the engine flags
/// thresholds and act_steps.
fn numbers_tensor<T: Copy>(
    name: &str,
    dtype: u8,
    values: &[T],
    to_le: fn(T) -> [u8; 4],
) -> FbzTensor {
    FbzTensor {
        name: name.to_owned(),
        shape: vec![values.len() as u32],
        data: values.iter().flat_map(|&v| to_le(v)).collect(),
        dtype,
        flag: true,
    }
}
