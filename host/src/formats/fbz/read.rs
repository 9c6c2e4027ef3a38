//! From the tables of a `.fbz` file to our model: the engine's rules (the
//! exact params of each layer kind, the variables, their dtypes, shapes and
//! value ranges, a chain of inbound layers) checked layer by layer, then the
//! whole model validated as every `.akd` model is.

use std::collections::BTreeMap;

use akida_core::weights::value_range;
use akida_core::{Dims, InputData, LayerKind, LayerParams};

use super::{weights_dtype, FbzError, FbzLayer, FbzModel, FbzTensor, LayerError};
use super::{DTYPE_FLOAT32, DTYPE_INT32};
use crate::formats::akd::{self, ConvertedInputData, ConvertedLayer, ConvertedModel};
use crate::formats::fbz::params::{self, EngineParams, INPUT_DATA_CODE};

impl FbzModel {
    /// Checks the tables against the engine's rules and builds our model,
    /// validated as a whole.
    pub fn to_model(&self) -> Result<ConvertedModel, FbzError> {
        check_version(&self.version)?;
        let mut input_data: Option<ConvertedInputData> = None;
        let mut layers: Vec<ConvertedLayer> = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            let wrap = |source| FbzError::Layer {
                index,
                name: layer.name.clone(),
                source,
            };
            // The layer feeding this one: its name and output size (an
            // inconsistent one is left to the model's validation: zero dims
            // never match).
            let previous = match (layers.last(), &input_data) {
                (Some(p), _) => Some((
                    p.name.as_str(),
                    p.params.output().unwrap_or(Dims::new(0, 0, 0)),
                )),
                (None, Some(d)) => Some((d.name.as_str(), d.dims)),
                (None, None) => None,
            };
            let params = params_map(layer).map_err(wrap)?;
            if params.get("layer_type") == Some(&INPUT_DATA_CODE) {
                if index != 0 {
                    return Err(wrap(LayerError::InputDataNotFirst));
                }
                input_data = Some(read_input_data(layer, &params).map_err(wrap)?);
                continue;
            }
            layers.push(read_layer(layer, &params, previous).map_err(wrap)?);
        }
        akd::build_with_input(input_data, layers).map_err(FbzError::Model)
    }
}

/// An InputData layer: exactly its params, no variable, no inbound layer.
fn read_input_data(
    layer: &FbzLayer,
    params: &EngineParams,
) -> Result<ConvertedInputData, LayerError> {
    check_inbounds(layer, None)?;
    for key in params::INPUT_DATA_KEYS {
        if !params.contains_key(key) {
            return Err(LayerError::MissingParam(key.to_owned()));
        }
    }
    let (dims, bits) = params::input_data_from_params(params)?;
    if let Some(t) = layer.variables.first() {
        return Err(LayerError::UnknownVariable(t.name.clone()));
    }
    Ok(InputData {
        name: layer.name.clone(),
        dims,
        bits,
    })
}

/// Accepts akida 2.x version strings (`MAJOR.MINOR[.PATCH]`, numeric).
fn check_version(version: &str) -> Result<(), FbzError> {
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric && (2..=3).contains(&parts.len()) && parts[0] == "2" {
        Ok(())
    } else {
        Err(FbzError::Version(version.to_owned()))
    }
}

/// A neural layer fed by `previous` (its name and output size), or the
/// model's first layer.
fn read_layer(
    layer: &FbzLayer,
    params: &EngineParams,
    previous: Option<(&str, Dims)>,
) -> Result<ConvertedLayer, LayerError> {
    check_inbounds(layer, previous.map(|(name, _)| name))?;
    let p = read_params(params, previous.map(|(_, dims)| dims))?;
    let (main_shape, pw_shape) = p.weight_shapes();
    let vars = variables_map(layer)?;
    let weights = read_weights(&vars, "weights", p.weights_bits, main_shape)?
        .ok_or(LayerError::MissingVariable("weights"))?;
    let weights_pw = match pw_shape {
        Some(shape) => read_weights(&vars, "weights_pw", p.weights_bits, shape)?,
        None if vars.contains_key("weights_pw") => {
            return Err(LayerError::UnknownVariable("weights_pw".into()))
        }
        None => None,
    };
    let threshold = read_numbers(&vars, "threshold", DTYPE_INT32, i32::from_le_bytes)?;
    let act_step = read_numbers(&vars, "act_step", DTYPE_FLOAT32, f32::from_le_bytes)?;
    ConvertedLayer::new(
        layer.name.clone(),
        p,
        &weights,
        weights_pw.as_deref(),
        &threshold,
        &act_step,
    )
    .map_err(LayerError::Pack)
}

/// The first layer has no inbound layer; every other one exactly the
/// previous layer (our models are chains).
fn check_inbounds(layer: &FbzLayer, previous: Option<&str>) -> Result<(), LayerError> {
    let expected: Vec<String> = previous.map(str::to_owned).into_iter().collect();
    if layer.inbounds != expected {
        return Err(LayerError::Inbound {
            expected,
            found: layer.inbounds.clone(),
        });
    }
    Ok(())
}

fn params_map(layer: &FbzLayer) -> Result<EngineParams, LayerError> {
    let mut map = EngineParams::new();
    for (key, value) in &layer.params {
        if map.insert(key.clone(), *value).is_some() {
            return Err(LayerError::DuplicateParam(key.clone()));
        }
    }
    Ok(map)
}

/// The layer kind from `layer_type`, refusing unknown codes (InputData is
/// read before).
fn read_kind(params: &EngineParams) -> Result<LayerKind, LayerError> {
    let code = *params
        .get("layer_type")
        .ok_or_else(|| LayerError::MissingParam("layer_type".into()))?;
    params::kind_of_code(code).ok_or(LayerError::LayerType(code))
}

/// Reads the geometry, then requires the params to be exactly the ones we
/// would write for it: every key of the kind present (the engine's rule),
/// none unknown, and no value that our geometry would not reproduce (for
/// example pooling sizes on a layer without pooling), so that what is read
/// is what is written back.
fn read_params(params: &EngineParams, previous: Option<Dims>) -> Result<LayerParams, LayerError> {
    let kind = read_kind(params)?;
    let g = params::from_params(kind, params, previous, true)?;
    params::engine_rules(&g)?;
    let mut expected = params::to_params(&g);
    expected.insert("layer_type".into(), params::layer_type_code(kind));
    for (key, &value) in &expected {
        match params.get(key) {
            None => return Err(LayerError::MissingParam(key.clone())),
            Some(&found) if found != value => {
                return Err(LayerError::ParamValue {
                    key: key.clone(),
                    found,
                    expected: value,
                })
            }
            Some(_) => {}
        }
    }
    Ok(g)
}

/// Variables by name, refusing unknown and repeated names.
fn variables_map(layer: &FbzLayer) -> Result<BTreeMap<&'static str, &FbzTensor>, LayerError> {
    const NAMES: [&str; 4] = ["act_step", "threshold", "weights", "weights_pw"];
    let mut map = BTreeMap::new();
    for t in &layer.variables {
        let name = NAMES
            .into_iter()
            .find(|n| *n == t.name)
            .ok_or_else(|| LayerError::UnknownVariable(t.name.clone()))?;
        if map.insert(name, t).is_some() {
            return Err(LayerError::DuplicateVariable(t.name.clone()));
        }
    }
    Ok(map)
}

/// Checks a tensor's dtype, and that its data holds exactly its shape's
/// elements; returns the numpy shape.
fn check_tensor(
    variable: &'static str,
    t: &FbzTensor,
    dtype: u8,
    element_size: usize,
) -> Result<Vec<u32>, LayerError> {
    if t.dtype != dtype {
        return Err(LayerError::Dtype {
            variable,
            expected: dtype,
            found: t.dtype,
        });
    }
    let shape: Vec<u32> = t.shape.iter().rev().copied().collect();
    let bytes = shape
        .iter()
        .try_fold(element_size, |acc, &d| acc.checked_mul(d as usize));
    if bytes != Some(t.data.len()) {
        return Err(LayerError::DataLength {
            variable,
            shape,
            found: t.data.len(),
        });
    }
    Ok(shape)
}

/// A 4-D weight tensor of `bits`-bit values, one byte each, of the shape
/// the params give; `None` if absent.
fn read_weights(
    vars: &BTreeMap<&'static str, &FbzTensor>,
    variable: &'static str,
    bits: u8,
    expected: [u32; 4],
) -> Result<Option<Vec<i8>>, LayerError> {
    let Some(t) = vars.get(variable) else {
        return Ok(None);
    };
    // Widths but 1, 2 and 4 are int8 in the file, without a range check.
    let bits = match bits {
        1 | 2 | 4 => bits,
        _ => 8,
    };
    let dtype = weights_dtype(bits).ok_or(LayerError::WeightBits(bits))?;
    let shape = check_tensor(variable, t, dtype, 1)?;
    let shape: [u32; 4] = shape.try_into().map_err(|s: Vec<u32>| LayerError::Rank {
        variable,
        expected: 4,
        found: s.len(),
    })?;
    if shape != expected {
        return Err(LayerError::Shape {
            variable,
            expected,
            found: shape,
        });
    }
    let (lo, hi) = value_range(bits);
    let values: Vec<i8> = t.data.iter().map(|&b| b as i8).collect();
    if let Some(&value) = values.iter().find(|&&v| v < lo || v > hi) {
        return Err(LayerError::WeightValue {
            variable,
            value,
            bits,
        });
    }
    Ok(Some(values))
}

/// A 1-D tensor of little-endian 4-byte numbers (thresholds, act_steps).
fn read_numbers<T>(
    vars: &BTreeMap<&'static str, &FbzTensor>,
    variable: &'static str,
    dtype: u8,
    from_le: fn([u8; 4]) -> T,
) -> Result<Vec<T>, LayerError> {
    let t = vars
        .get(variable)
        .ok_or(LayerError::MissingVariable(variable))?;
    let shape = check_tensor(variable, t, dtype, 4)?;
    if shape.len() != 1 {
        return Err(LayerError::Rank {
            variable,
            expected: 1,
            found: shape.len(),
        });
    }
    Ok(t.data
        .chunks_exact(4)
        .map(|c| from_le([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in ["2.19.3", "2.0", "2.25.1"] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2", "3.0.0", "2.x", "2..1", "2.19.3.1", " 2.19.3"] {
            assert!(
                matches!(check_version(bad), Err(FbzError::Version(_))),
                "{bad:?}"
            );
        }
    }
}
