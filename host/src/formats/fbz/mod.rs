//! BrainChip's `.fbz` model files (akida 2.19.3), read into and written from
//! our [`ConvertedModel`], so that models move both ways between this tool
//! chain and BrainChip's engine.
//!
//! The format (see `shared/spec/FBZ_FORMAT.md`) is one raw Snappy block
//! holding a FlatBuffers buffer of a few tables. Reading goes through three
//! stages, each its own module, each failing with a typed [`FbzError`]:
//!
//! - [`snappy`]: the container (a raw block, perhaps followed by padding);
//! - [`document`]: the FlatBuffers tables, read through accessors generated
//!   by planus (the `akida-fbz-tables` crate) from our schema `akida_v1.fbs` (every offset they follow is
//!   checked), copied into an owned [`FbzModel`] that mirrors them one to one;
//! - `read`: the [`FbzModel`] checked against the engine's rules and turned
//!   into a [`ConvertedModel`], which is then validated as a whole by our own
//!   model validation (the one `.akd` files go through).
//!
//! Writing runs the same stages backwards (`write`, [`document`],
//! [`snappy`]). Every stage is public so tests can build deliberately broken
//! files from a valid [`FbzModel`].

pub mod document;
mod error;
pub mod params;
mod read;
pub mod snappy;
mod write;

pub use document::{FbzLayer, FbzModel, FbzTensor};
pub use error::{FbzError, FlatBuffersError, LayerError};

use crate::formats::akd::ConvertedModel;

/// The engine version written into every file (the one the format was
/// inferred from, and the one whose engine loads what we write).
pub const VERSION: &str = "2.19.3";

/// Engine dtype code of an `int32` tensor (thresholds).
pub const DTYPE_INT32: u8 = 0;
/// Engine dtype code of a `float32` tensor (act_steps).
pub const DTYPE_FLOAT32: u8 = 1;

/// Engine dtype code of a weight tensor of `bits` bits (the data holds one
/// byte per weight whatever the width; the code tells the width).
pub fn weights_dtype(bits: u8) -> Option<u8> {
    match bits {
        8 => Some(3),
        4 => Some(7),
        2 => Some(8),
        1 => Some(6),
        _ => None,
    }
}

/// Reads a model from `.fbz` file bytes: decompresses, verifies the tables,
/// checks them against the engine's rules and validates the model.
pub fn from_fbz_bytes(bytes: &[u8]) -> Result<ConvertedModel, FbzError> {
    FbzModel::parse(bytes)?.to_model()
}

/// Encodes a (validated) model as `.fbz` file bytes the engine loads.
pub fn to_fbz_bytes(model: &ConvertedModel) -> Result<Vec<u8>, FbzError> {
    FbzModel::from_model(model)?.to_bytes()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A small valid model for the unit tests of this module and of
    //! `model_file`.

    use crate::formats::akd::{self, ConvertedLayer, ConvertedModel};
    use akida_core::{Dims, LayerKind, LayerParams, Padding, Pooling, Window};

    fn weights(bits: u8, n: u32) -> Vec<i8> {
        let (lo, hi) = akida_core::weights::value_range(bits);
        let span = (hi as i32 - lo as i32 + 1) as u32;
        (0..n)
            .map(|k| (lo as i32 + ((k * 7) % span) as i32) as i8)
            .collect()
    }

    /// InputConvolutional (8-bit, max pool) -> SeparableConvolutional (4-bit)
    /// -> FullyConnected (2-bit, potentials).
    pub fn tiny_layers() -> Vec<ConvertedLayer> {
        let input = LayerParams {
            kind: LayerKind::InputConvolutional,
            input: Dims::new(6, 5, 1),
            filters: 4,
            kernel: Window::new(3, 3),
            stride: Window::ONE,
            padding: Padding::Same,
            padding_value: 0,
            pooling: Pooling::Max {
                size: Window::new(2, 2),
                stride: Window::new(2, 2),
            },
            activation: true,
            act_bits: 4,
            weights_bits: 8,
        };
        let l0 = ConvertedLayer::new(
            "conv_0",
            input,
            &weights(8, 3 * 3 * 4),
            None,
            &[10, -3, 0, 70000],
            &[1.5, 0.25, 3.0, 100.0],
        )
        .unwrap();
        let separable = LayerParams {
            kind: LayerKind::SeparableConvolutional,
            input: input.output().unwrap(),
            filters: 6,
            pooling: Pooling::None,
            act_bits: 2,
            weights_bits: 4,
            ..input
        };
        let l1 = ConvertedLayer::new(
            "sep_1",
            separable,
            &weights(4, 3 * 3 * 4),
            Some(&weights(4, 4 * 6)),
            &[1, 2, 3, 4, 5, 6],
            &[0.0625, 1.0, 2.0, 4.0, 8.0, 16.0],
        )
        .unwrap();
        let fc_input = separable.output().unwrap();
        let dense = LayerParams::fully_connected(fc_input, 3, 2);
        let l2 = ConvertedLayer::new(
            "dense_2",
            dense,
            &weights(2, fc_input.len() as u32 * 3),
            None,
            &[-1, 0, 1],
            &[0.5, 0.75, 1.25],
        )
        .unwrap();
        vec![l0, l1, l2]
    }

    /// The layers of [`tiny_layers`] as a model.
    pub fn tiny_model() -> ConvertedModel {
        akd::build(tiny_layers()).expect("the test model is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{tiny_layers, tiny_model};
    use super::*;

    #[test]
    fn a_written_model_reads_back_identical() {
        let model = tiny_model();
        let bytes = to_fbz_bytes(&model).unwrap();
        assert_eq!(from_fbz_bytes(&bytes).unwrap(), model);
    }

    #[test]
    fn dtype_codes_follow_the_engine() {
        assert_eq!(
            [8, 4, 2, 1].map(weights_dtype),
            [Some(3), Some(7), Some(8), Some(6)]
        );
        assert_eq!(weights_dtype(3), None);
    }

    #[test]
    fn an_invalid_model_is_not_built() {
        // Only a valid model can be written: a layer missing a threshold
        // does not make one.
        let mut layers = tiny_layers();
        let t = &mut layers[1].threshold.0;
        t.truncate(t.len() - 4);
        assert!(matches!(
            crate::formats::akd::build(layers),
            Err(crate::formats::akd::BuildError::Invalid(_))
        ));
    }
}
