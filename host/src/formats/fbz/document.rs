//! An owned copy of a `.fbz` file's tables, field for field: what the file
//! says, before any engine rule is checked. Parsing reads the buffer through
//! the accessors planus generated from `akida_v1.fbs`, which check every
//! offset, length, vtable and string they follow, and copies it out;
//! serializing builds the tables with the generated builders and compresses
//! them. Tests edit an [`FbzModel`] to make deliberately inconsistent files.

use planus::{Builder, Offset, ReadAsRoot};

use super::{snappy, FbzError, FlatBuffersError, LayerError};
use akida_fbz_tables as fb;

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

/// What copying the tables out may cost. A valid buffer holds each table,
/// string and vector once, but a hostile one can point many offsets at the
/// same large vector; the copies are therefore counted (4 bytes per table,
/// string or vector, plus their contents) and refused beyond a few times
/// the buffer's own size.
struct Budget {
    left: usize,
    limit: usize,
    buffer: usize,
}

impl Budget {
    fn new(buffer: usize) -> Budget {
        let limit = buffer.saturating_mul(4).saturating_add(4096);
        Budget {
            left: limit,
            limit,
            buffer,
        }
    }

    /// Charges one table, string or vector of `bytes` bytes of content.
    fn take(&mut self, bytes: usize) -> Result<(), FbzError> {
        match self.left.checked_sub(bytes.saturating_add(4)) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(FbzError::FlatBuffers(FlatBuffersError::ApparentSize {
                limit: self.limit,
                buffer: self.buffer,
            })),
        }
    }

    fn string(&mut self, s: &str) -> Result<String, FbzError> {
        self.take(s.len())?;
        Ok(s.to_owned())
    }
}

impl FbzModel {
    /// Decompresses and verifies `.fbz` file bytes and copies the tables out.
    pub fn parse(file: &[u8]) -> Result<FbzModel, FbzError> {
        let buffer = snappy::decompress(file)?;
        Self::parse_flatbuffer(&buffer)
    }

    /// Verifies an uncompressed FlatBuffers buffer and copies the tables out.
    pub fn parse_flatbuffer(buffer: &[u8]) -> Result<FbzModel, FbzError> {
        let budget = &mut Budget::new(buffer.len());
        let root = fb::ModelRef::read_as_root(buffer)?;
        budget.take(0)?;
        // Only its presence matters: the slot is read as its raw offset.
        if root.learning()?.is_some() {
            return Err(FbzError::Learning);
        }
        let version = root.version()?.ok_or(missing("Model", "version"))?;
        let version = budget.string(version)?;
        let layers = root.layers()?.ok_or(missing("Model", "layers"))?;
        if layers.len() > akida_core::MAX_LAYERS {
            return Err(FbzError::TooManyLayers(layers.len()));
        }
        budget.take(layers.len().saturating_mul(4))?;
        Ok(FbzModel {
            version,
            layers: layers
                .iter()
                .enumerate()
                .map(|(index, layer)| parse_layer(budget, index, layer?))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The uncompressed FlatBuffers buffer of the model (offsets are 32-bit:
    /// a buffer cannot exceed 2 GiB; a valid model is far smaller).
    pub fn to_flatbuffer(&self) -> Vec<u8> {
        let mut builder = Builder::new();
        let layers: Vec<_> = self
            .layers
            .iter()
            .map(|l| build_layer(&mut builder, l))
            .collect();
        let root = fb::Model::create(&mut builder, layers, (), self.version.as_str());
        builder.finish(root, None).to_vec()
    }

    /// The `.fbz` file bytes: the buffer compressed into a raw Snappy block.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FbzError> {
        snappy::compress(&self.to_flatbuffer())
    }
}

fn parse_layer(
    budget: &mut Budget,
    index: usize,
    layer: fb::LayerFlatBufferRef,
) -> Result<FbzLayer, FbzError> {
    budget.take(0)?;
    let name = layer.name()?.ok_or(missing("LayerFlatBuffer", "name"))?;
    let name = budget.string(name)?;
    let params = layer
        .params()?
        .ok_or(missing("LayerFlatBuffer", "params"))?;
    budget.take(0)?;
    let dict = params.dict()?.ok_or(missing("LayerParams", "dict"))?;
    budget.take(0)?;
    // Only its presence matters: the slot is read as its raw offset.
    if dict.double_entries()?.is_some() {
        return Err(FbzError::Layer {
            index,
            name,
            source: LayerError::DoubleParams,
        });
    }
    let mut params = Vec::new();
    if let Some(entries) = dict.entries()? {
        budget.take(entries.len().saturating_mul(4))?;
        for entry in entries {
            let entry = entry?;
            budget.take(0)?;
            let key = entry.key()?.ok_or(missing("DictParamsEntry", "key"))?;
            params.push((budget.string(key)?, entry.value()?));
        }
    }
    let mut variables = Vec::new();
    if let Some(tensors) = layer.variables()? {
        budget.take(tensors.len().saturating_mul(4))?;
        for tensor in tensors {
            variables.push(parse_tensor(budget, tensor?)?);
        }
    }
    let mut inbounds = Vec::new();
    if let Some(names) = layer.inbounds()? {
        budget.take(names.len().saturating_mul(4))?;
        for inbound in names {
            inbounds.push(budget.string(inbound?)?);
        }
    }
    Ok(FbzLayer {
        name,
        params,
        variables,
        inbounds,
    })
}

fn parse_tensor(budget: &mut Budget, t: fb::TensorFlatBufferRef) -> Result<FbzTensor, FbzError> {
    const TABLE: &str = "TensorFlatBuffer";
    budget.take(0)?;
    let name = t.name()?.ok_or(missing(TABLE, "name"))?;
    let name = budget.string(name)?;
    let shape = t.shape()?.ok_or(missing(TABLE, "shape"))?;
    budget.take(shape.len().saturating_mul(4))?;
    let data = t.data()?.ok_or(missing(TABLE, "data"))?;
    budget.take(data.len())?;
    Ok(FbzTensor {
        name,
        shape: shape.iter().collect(),
        data: data.to_vec(),
        dtype: t.dtype()?.ok_or(missing(TABLE, "dtype"))?,
        flag: t.flag()?,
    })
}

fn build_layer(builder: &mut Builder, layer: &FbzLayer) -> Offset<fb::LayerFlatBuffer> {
    let variables: Vec<_> = layer
        .variables
        .iter()
        .map(|t| build_tensor(builder, t))
        .collect();
    let entries: Vec<_> = layer
        .params
        .iter()
        // A value of 0 (the default) is left out, as the engine does.
        .map(|(key, value)| fb::DictParamsEntry::create(builder, key.as_str(), *value))
        .collect();
    let dict = fb::DictParams::create(builder, entries, ());
    let params = fb::LayerParams::create(builder, dict);
    // Written even when empty: the engine's first layer has an empty vector.
    let inbounds: Vec<&str> = layer.inbounds.iter().map(String::as_str).collect();
    fb::LayerFlatBuffer::create(builder, layer.name.as_str(), variables, params, inbounds)
}

fn build_tensor(builder: &mut Builder, t: &FbzTensor) -> Offset<fb::TensorFlatBuffer> {
    fb::TensorFlatBuffer::create(
        builder,
        t.name.as_str(),
        t.shape.as_slice(),
        t.data.as_slice(),
        // Always written (an optional field with a value): the engine's
        // default is not 0 and it needs the code.
        Some(t.dtype),
        // Left out when false, as the engine does.
        t.flag,
    )
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
        let mut builder = Builder::new();
        let layers: Vec<Offset<fb::LayerFlatBuffer>> = vec![];
        let root = fb::Model::create(&mut builder, layers, (), ());
        assert!(matches!(
            FbzModel::parse_flatbuffer(builder.finish(root, None)),
            Err(FbzError::MissingField {
                table: "Model",
                field: "version"
            })
        ));
    }

    #[test]
    fn a_missing_dtype_is_a_typed_error() {
        let mut builder = Builder::new();
        let tensor =
            fb::TensorFlatBuffer::create(&mut builder, "act_step", [1u32], [0u8; 4], (), false);
        let dict = fb::DictParams::create(&mut builder, (), ());
        let params = fb::LayerParams::create(&mut builder, dict);
        let layer = fb::LayerFlatBuffer::create(&mut builder, "conv_0", [tensor], params, ());
        let root = fb::Model::create(&mut builder, [layer], (), "2.19.3");
        assert!(matches!(
            FbzModel::parse_flatbuffer(builder.finish(root, None)),
            Err(FbzError::MissingField {
                table: "TensorFlatBuffer",
                field: "dtype"
            })
        ));
    }

    #[test]
    fn learning_settings_are_refused() {
        // The reader only looks whether the slot is there.
        let mut builder = Builder::new();
        let root = fb::Model::create(&mut builder, (), 4u32, "2.19.3");
        assert!(matches!(
            FbzModel::parse_flatbuffer(builder.finish(root, None)),
            Err(FbzError::Learning)
        ));
    }

    #[test]
    fn double_params_are_refused() {
        let mut builder = Builder::new();
        let dict = fb::DictParams::create(&mut builder, (), 4u32);
        let params = fb::LayerParams::create(&mut builder, dict);
        let layer = fb::LayerFlatBuffer::create(&mut builder, "conv_0", (), params, ());
        let root = fb::Model::create(&mut builder, [layer], (), "2.19.3");
        assert!(matches!(
            FbzModel::parse_flatbuffer(builder.finish(root, None)),
            Err(FbzError::Layer {
                index: 0,
                source: LayerError::DoubleParams,
                ..
            })
        ));
    }

    #[test]
    fn shared_data_cannot_amplify_the_copy() {
        // One 64 KiB tensor listed 10,000 times: a buffer of about 100 KB
        // that would copy out as 640 MB.
        let mut builder = Builder::new();
        let tensor = fb::TensorFlatBuffer::create(
            &mut builder,
            "weights",
            [1u32],
            vec![0u8; 1 << 16],
            3u8,
            false,
        );
        let dict = fb::DictParams::create(&mut builder, (), ());
        let params = fb::LayerParams::create(&mut builder, dict);
        let layer =
            fb::LayerFlatBuffer::create(&mut builder, "conv_0", vec![tensor; 10_000], params, ());
        let root = fb::Model::create(&mut builder, [layer], (), "2.19.3");
        let buffer = builder.finish(root, None);
        assert!(buffer.len() < 120_000, "{}", buffer.len());
        let e = FbzModel::parse_flatbuffer(buffer).unwrap_err();
        assert!(
            matches!(
                e,
                FbzError::FlatBuffers(FlatBuffersError::ApparentSize { .. })
            ),
            "{e:?}"
        );
        assert!(crate::cli::report(&e).contains("share"), "{e}");
    }
}
