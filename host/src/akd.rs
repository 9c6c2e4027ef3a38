//! Owned, editable converted models and their `.akd` files.
//!
//! `akida_core::Model` is a view borrowed from file bytes (what the firmware
//! needs); the host builds and edits models as [`ConvertedModel`]s, with one
//! `i8` per weight, and turns them into `.akd` bytes (packing the weights at
//! their bit width) or back.

use std::path::{Path, PathBuf};

use crate::engine_params::LayerGeometry;
use akida_core::weights::{pack_into, packed_len, PackError};
use akida_core::{
    Dims, F32Slice, I32Slice, Layer, LayerKind, Model, PackedWeights, Padding, Pooling, Window,
    MAX_LAYERS,
};

/// An integer weight tensor with one `i8` per weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntWeights {
    pub bits: u8,
    /// Shape as the engine stores it (4-D, C order).
    pub shape: [u32; 4],
    pub values: Vec<i8>,
}

impl IntWeights {
    fn from_packed(w: &PackedWeights) -> IntWeights {
        IntWeights {
            bits: w.bits,
            shape: w.shape,
            values: w.values().collect(),
        }
    }

    fn pack(&self) -> Result<Vec<u8>, PackError> {
        let mut buf = vec![0u8; packed_len(self.values.len(), self.bits)];
        pack_into(&self.values, self.bits, &mut buf)?;
        Ok(buf)
    }
}

/// One converted layer, owned. Fields mirror [`akida_core::Layer`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertedLayer {
    pub name: String,
    pub kind: LayerKind,
    pub input: Dims,
    pub filters: u32,
    pub kernel: Window,
    pub stride: Window,
    pub padding: Padding,
    pub padding_value: u8,
    pub pooling: Pooling,
    pub activation: bool,
    pub act_bits: u8,
    pub weights: IntWeights,
    pub weights_pw: Option<IntWeights>,
    pub threshold: Vec<i32>,
    pub act_step: Vec<f32>,
}

/// A converted model, owned and editable.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConvertedModel {
    pub layers: Vec<ConvertedLayer>,
}

/// Why a model could not be turned into `.akd` bytes or read from a file.
#[derive(Debug, thiserror::Error)]
pub enum AkdError {
    #[error("layer {layer} (`{name}`): {source}")]
    Pack {
        layer: usize,
        name: String,
        source: PackError,
    },
    #[error("the model has {0} layers, at most {MAX_LAYERS} are supported")]
    TooManyLayers(usize),
    #[error(transparent)]
    Format(#[from] akida_core::FormatError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: akida_core::FormatError,
    },
}

fn le_bytes_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Packed bytes of one layer, kept alive while a borrowed view exists.
struct LayerBytes {
    weights: Vec<u8>,
    weights_pw: Option<Vec<u8>>,
    threshold: Vec<u8>,
    act_step: Vec<u8>,
}

impl ConvertedLayer {
    /// A layer from its engine geometry and variables.
    pub fn new(
        name: impl Into<String>,
        g: LayerGeometry,
        weights: IntWeights,
        weights_pw: Option<IntWeights>,
        threshold: Vec<i32>,
        act_step: Vec<f32>,
    ) -> ConvertedLayer {
        ConvertedLayer {
            name: name.into(),
            kind: g.kind,
            input: g.input,
            filters: g.filters,
            kernel: g.kernel,
            stride: g.stride,
            padding: g.padding,
            padding_value: g.padding_value,
            pooling: g.pooling,
            activation: g.activation,
            act_bits: g.act_bits,
            weights,
            weights_pw,
            threshold,
            act_step,
        }
    }

    /// The engine geometry (params) of the layer.
    pub fn geometry(&self) -> LayerGeometry {
        LayerGeometry {
            kind: self.kind,
            input: self.input,
            filters: self.filters,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            padding_value: self.padding_value,
            pooling: self.pooling,
            activation: self.activation,
            act_bits: self.act_bits,
            weights_bits: self.weights.bits,
        }
    }

    /// Reads an owned copy of a borrowed layer.
    pub fn from_layer(layer: &Layer) -> ConvertedLayer {
        ConvertedLayer {
            name: layer.name.to_owned(),
            kind: layer.kind,
            input: layer.input,
            filters: layer.filters,
            kernel: layer.kernel,
            stride: layer.stride,
            padding: layer.padding,
            padding_value: layer.padding_value,
            pooling: layer.pooling,
            activation: layer.activation,
            act_bits: layer.act_bits,
            weights: IntWeights::from_packed(&layer.weights),
            weights_pw: layer.weights_pw.as_ref().map(IntWeights::from_packed),
            threshold: layer.threshold.iter().collect(),
            act_step: layer.act_step.iter().collect(),
        }
    }

    fn bytes(&self, index: usize) -> Result<LayerBytes, AkdError> {
        let pack = |w: &IntWeights| {
            w.pack().map_err(|source| AkdError::Pack {
                layer: index,
                name: self.name.clone(),
                source,
            })
        };
        Ok(LayerBytes {
            weights: pack(&self.weights)?,
            weights_pw: self.weights_pw.as_ref().map(pack).transpose()?,
            threshold: le_bytes_i32(&self.threshold),
            act_step: le_bytes_f32(&self.act_step),
        })
    }

    fn view<'a>(&'a self, b: &'a LayerBytes) -> Layer<'a> {
        Layer {
            name: &self.name,
            kind: self.kind,
            input: self.input,
            filters: self.filters,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            padding_value: self.padding_value,
            pooling: self.pooling,
            activation: self.activation,
            act_bits: self.act_bits,
            weights: PackedWeights {
                bits: self.weights.bits,
                shape: self.weights.shape,
                data: &b.weights,
            },
            weights_pw: self.weights_pw.as_ref().map(|w| PackedWeights {
                bits: w.bits,
                shape: w.shape,
                data: b.weights_pw.as_deref().unwrap_or(&[]),
            }),
            threshold: I32Slice(&b.threshold),
            act_step: F32Slice(&b.act_step),
        }
    }

    /// Output dims of the layer (after pooling); zero dims if inconsistent.
    pub fn output_dims(&self) -> Dims {
        // Geometry only: weights are not needed to compute shapes.
        let empty = LayerBytes {
            weights: Vec::new(),
            weights_pw: None,
            threshold: Vec::new(),
            act_step: Vec::new(),
        };
        self.view(&empty).output_dims()
    }
}

impl ConvertedModel {
    /// Owned copy of a borrowed model.
    pub fn from_model(model: &Model) -> ConvertedModel {
        ConvertedModel {
            layers: model
                .layers
                .iter()
                .map(ConvertedLayer::from_layer)
                .collect(),
        }
    }

    /// Validates and encodes the model as `.akd` bytes.
    pub fn to_akd_bytes(&self) -> Result<Vec<u8>, AkdError> {
        if self.layers.len() > MAX_LAYERS {
            return Err(AkdError::TooManyLayers(self.layers.len()));
        }
        let bytes = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| l.bytes(i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut layers = heapless::Vec::new();
        for (l, b) in self.layers.iter().zip(&bytes) {
            // Cannot fail: the length was checked above.
            let _ = layers.push(l.view(b));
        }
        let encoded = akida_core::format::encode(&Model { layers })?;
        Ok(encoded)
    }

    /// Decodes (and validates) `.akd` bytes.
    pub fn from_akd_bytes(bytes: &[u8]) -> Result<ConvertedModel, akida_core::FormatError> {
        akida_core::decode(bytes).map(|m| ConvertedModel::from_model(&m))
    }

    /// Reads an `.akd` file.
    pub fn read_akd(path: &Path) -> Result<ConvertedModel, AkdError> {
        let bytes = std::fs::read(path).map_err(|source| AkdError::Io {
            path: path.to_owned(),
            source,
        })?;
        ConvertedModel::from_akd_bytes(&bytes).map_err(|source| AkdError::File {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes an `.akd` file atomically.
    pub fn write_akd(&self, path: &Path) -> Result<(), AkdError> {
        let bytes = self.to_akd_bytes()?;
        crate::fsutil::atomic_write(path, &bytes).map_err(|source| AkdError::Io {
            path: path.to_owned(),
            source,
        })
    }
}
