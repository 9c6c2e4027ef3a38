//! An owned copy of a `.fbz` file's tables, field for field: what the file
//! says, before any engine rule is checked. Parsing verifies the buffer and
//! copies it out; serializing builds the tables with the `flatbuffers`
//! builder and compresses them. Tests edit an [`FbzModel`] to make
//! deliberately inconsistent files.

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use super::tables::{self, slot as vt, slots, LayerT, TensorT};
use super::{snappy, FbzError, LayerError};

/// A `.fbz` model: its layers and the engine version that wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct FbzModel {
    pub version: String,
    pub layers: Vec<FbzLayer>,
}

/// One `LayerFlatBuffer`.
#[derive(Clone, Debug, PartialEq)]
pub struct FbzLayer {
    pub name: String,
    /// `DictParams` entries in file order (the engine sorts them by key).
    pub params: Vec<(String, i32)>,
    /// Tensors in file order (the engine sorts them by name).
    pub variables: Vec<FbzTensor>,
    /// Names of the layers feeding this one (none for the first layer).
    pub inbounds: Vec<String>,
}

/// One `TensorFlatBuffer`.
#[derive(Clone, Debug, PartialEq)]
pub struct FbzTensor {
    pub name: String,
    /// The numpy shape in reversed order, as the engine stores it.
    pub shape: Vec<u32>,
    /// The numpy array's bytes in C order (one byte per weight).
    pub data: Vec<u8>,
    /// Engine dtype code (see [`super::weights_dtype`]).
    pub dtype: u8,
    /// Written as 1 by the engine for thresholds and act_steps; ignored on load.
    pub flag: bool,
}

fn missing(table: &'static str, field: &'static str) -> FbzError {
    FbzError::MissingField { table, field }
}

impl FbzModel {
    /// Decompresses and verifies `.fbz` file bytes and copies the tables out.
    pub fn parse(file: &[u8]) -> Result<FbzModel, FbzError> {
        let buffer = snappy::decompress(file)?;
        Self::parse_flatbuffer(&buffer)
    }

    /// Verifies an uncompressed FlatBuffers buffer and copies the tables out.
    pub fn parse_flatbuffer(buffer: &[u8]) -> Result<FbzModel, FbzError> {
        let root = tables::root(buffer)?;
        if root.has(slots::MODEL_LEARNING) {
            return Err(FbzError::Learning);
        }
        let version = root.version().ok_or(missing("Model", "version"))?;
        let layers = root.layers().ok_or(missing("Model", "layers"))?;
        if layers.len() > akida_core::MAX_LAYERS {
            return Err(FbzError::TooManyLayers(layers.len()));
        }
        Ok(FbzModel {
            version: version.to_owned(),
            layers: layers
                .iter()
                .enumerate()
                .map(|(index, layer)| parse_layer(index, &layer))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The uncompressed FlatBuffers buffer of the model (the `flatbuffers`
    /// builder refuses buffers over 2 GiB; a valid model is far smaller).
    pub fn to_flatbuffer(&self) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let layers: Vec<_> = self
            .layers
            .iter()
            .map(|l| build_layer(&mut fbb, l))
            .collect();
        let layers = fbb.create_vector(&layers);
        let version = fbb.create_string(&self.version);
        let start = fbb.start_table();
        fbb.push_slot_always(vt(slots::MODEL_LAYERS), layers);
        fbb.push_slot_always(vt(slots::MODEL_VERSION), version);
        let root = fbb.end_table(start);
        fbb.finish(root, None);
        fbb.finished_data().to_vec()
    }

    /// The `.fbz` file bytes: the buffer compressed into a raw Snappy block.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FbzError> {
        snappy::compress(&self.to_flatbuffer())
    }
}

fn parse_layer(index: usize, layer: &LayerT) -> Result<FbzLayer, FbzError> {
    let name = layer.name().ok_or(missing("LayerFlatBuffer", "name"))?;
    let in_layer = |source| FbzError::Layer {
        index,
        name: name.to_owned(),
        source,
    };
    let params = layer.params().ok_or(missing("LayerFlatBuffer", "params"))?;
    let dict = params.dict().ok_or(missing("LayerParams", "dict"))?;
    if dict.has(slots::DICT_DOUBLES) {
        return Err(in_layer(LayerError::DoubleParams));
    }
    let params = dict
        .entries()
        .into_iter()
        .flatten()
        .map(|e| {
            let key = e.key().ok_or(missing("DictParamsEntry", "key"))?;
            Ok((key.to_owned(), e.value()))
        })
        .collect::<Result<_, FbzError>>()?;
    let variables = layer
        .variables()
        .into_iter()
        .flatten()
        .map(|t| parse_tensor(&t))
        .collect::<Result<_, _>>()?;
    let inbounds = layer
        .inbounds()
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    Ok(FbzLayer {
        name: name.to_owned(),
        params,
        variables,
        inbounds,
    })
}

fn parse_tensor(t: &TensorT) -> Result<FbzTensor, FbzError> {
    const TABLE: &str = "TensorFlatBuffer";
    Ok(FbzTensor {
        name: t.name().ok_or(missing(TABLE, "name"))?.to_owned(),
        shape: t.shape().ok_or(missing(TABLE, "shape"))?.iter().collect(),
        data: t.data().ok_or(missing(TABLE, "data"))?.to_vec(),
        dtype: t.dtype().ok_or(missing(TABLE, "dtype"))?,
        flag: t.flag(),
    })
}

type Finished = WIPOffset<flatbuffers::TableFinishedWIPOffset>;

fn build_layer(fbb: &mut FlatBufferBuilder, layer: &FbzLayer) -> Finished {
    let name = fbb.create_string(&layer.name);
    let variables: Vec<_> = layer
        .variables
        .iter()
        .map(|t| build_tensor(fbb, t))
        .collect();
    let variables = fbb.create_vector(&variables);
    let params = build_params(fbb, &layer.params);
    let inbounds: Vec<_> = layer
        .inbounds
        .iter()
        .map(|s| fbb.create_string(s))
        .collect();
    let inbounds = fbb.create_vector(&inbounds);
    let start = fbb.start_table();
    fbb.push_slot_always(vt(slots::LAYER_NAME), name);
    fbb.push_slot_always(vt(slots::LAYER_VARIABLES), variables);
    fbb.push_slot_always(vt(slots::LAYER_PARAMS), params);
    fbb.push_slot_always(vt(slots::LAYER_INBOUND), inbounds);
    fbb.end_table(start)
}

fn build_params(fbb: &mut FlatBufferBuilder, params: &[(String, i32)]) -> Finished {
    let entries: Vec<_> = params
        .iter()
        .map(|(key, value)| {
            let key = fbb.create_string(key);
            let start = fbb.start_table();
            fbb.push_slot_always(vt(slots::ENTRY_KEY), key);
            fbb.push_slot(vt(slots::ENTRY_VALUE), *value, 0);
            fbb.end_table(start)
        })
        .collect();
    let entries = fbb.create_vector(&entries);
    let start = fbb.start_table();
    fbb.push_slot_always(vt(slots::DICT_ENTRIES), entries);
    let dict = fbb.end_table(start);
    let start = fbb.start_table();
    fbb.push_slot_always(vt(slots::PARAMS_DICT), dict);
    fbb.end_table(start)
}

fn build_tensor(fbb: &mut FlatBufferBuilder, t: &FbzTensor) -> Finished {
    let name = fbb.create_string(&t.name);
    let shape = fbb.create_vector(&t.shape);
    let data = fbb.create_vector(&t.data);
    let start = fbb.start_table();
    fbb.push_slot_always(vt(slots::TENSOR_NAME), name);
    fbb.push_slot_always(vt(slots::TENSOR_SHAPE), shape);
    fbb.push_slot_always(vt(slots::TENSOR_DATA), data);
    // Always written: the engine's default is not 0 and it needs the code.
    fbb.push_slot_always(vt(slots::TENSOR_DTYPE), t.dtype);
    fbb.push_slot(vt(slots::TENSOR_FLAG), t.flag, false);
    fbb.end_table(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> FbzModel {
        FbzModel {
            version: "2.19.3".into(),
            layers: vec![FbzLayer {
                name: "conv_0".into(),
                params: vec![("a".into(), 0), ("b".into(), -7)],
                variables: vec![FbzTensor {
                    name: "act_step".into(),
                    shape: vec![2],
                    data: vec![0, 0, 128, 63, 0, 0, 0, 64],
                    dtype: 1,
                    flag: true,
                }],
                inbounds: vec![],
            }],
        }
    }

    #[test]
    fn documents_round_trip_through_the_tables() {
        let d = document();
        assert_eq!(FbzModel::parse(&d.to_bytes().unwrap()).unwrap(), d);
        assert_eq!(FbzModel::parse_flatbuffer(&d.to_flatbuffer()).unwrap(), d);
    }

    #[test]
    fn an_uncompressed_buffer_is_refused() {
        // As the engine does ("Unable to parse model").
        assert!(FbzModel::parse(&document().to_flatbuffer()).is_err());
    }

    #[test]
    fn a_missing_version_is_a_typed_error() {
        let mut fbb = FlatBufferBuilder::new();
        let layers = fbb.create_vector::<Finished>(&[]);
        let start = fbb.start_table();
        fbb.push_slot_always(vt(slots::MODEL_LAYERS), layers);
        let root = fbb.end_table(start);
        fbb.finish(root, None);
        assert!(matches!(
            FbzModel::parse_flatbuffer(fbb.finished_data()),
            Err(FbzError::MissingField {
                table: "Model",
                field: "version"
            })
        ));
    }

    #[test]
    fn learning_settings_are_refused() {
        let mut fbb = FlatBufferBuilder::new();
        let version = fbb.create_string("2.19.3");
        let start = fbb.start_table();
        let learning = fbb.end_table(start);
        let start = fbb.start_table();
        fbb.push_slot_always(vt(slots::MODEL_LEARNING), learning);
        fbb.push_slot_always(vt(slots::MODEL_VERSION), version);
        let root = fbb.end_table(start);
        fbb.finish(root, None);
        assert!(matches!(
            FbzModel::parse_flatbuffer(fbb.finished_data()),
            Err(FbzError::Learning)
        ));
    }
}
