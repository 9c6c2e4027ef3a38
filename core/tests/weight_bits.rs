//! Weight widths: 2, 4 and 8 bits on every layer kind; any width from 2 to
//! 8 on an input convolution (cnn2snn does not check the first layer's
//! `-iq`, and the engine holds 3, 5, 6 and 7-bit weights as int8, values
//! unchecked), packed as int8 then.

use akida_core::weights::{packed_len, storage_bits, value_range, INPUT_WEIGHT_BITS};
use akida_core::{Dims, LayerKind, LayerParams, ModelError, OwnedLayer, OwnedModel};

mod common;

/// Two filters at `bits` bits.
fn params(kind: LayerKind, input: Dims, bits: u8) -> LayerParams {
    common::params(kind, input, 2, bits)
}

fn layer(p: LayerParams, value: i8) -> OwnedLayer {
    let n = p.unpacked_len();
    OwnedLayer::new("l", p, &vec![value; n], None, &[0, 0], &[1.0, 1.0]).unwrap()
}

#[test]
fn storage_widths_follow_the_engine() {
    assert_eq!(
        [2, 3, 4, 5, 6, 7, 8].map(storage_bits),
        [2, 8, 4, 8, 8, 8, 8]
    );
}

#[test]
fn an_input_convolution_takes_2_to_8_bit_weights() {
    let image = Dims::new(5, 5, 3);
    for bits in INPUT_WEIGHT_BITS {
        // 15 where the weights are int8 (even beyond a 3-bit range: the
        // engine does not check it), else the largest packed value.
        let value = value_range(storage_bits(bits)).1.min(15);
        let l0 = layer(params(LayerKind::InputConvolutional, image, bits), value);
        assert_eq!(
            l0.weights.len(),
            packed_len(27 * 2, storage_bits(bits)),
            "{bits}"
        );
        assert!(l0.weights().values().all(|v| v == value), "{bits}");
        let model = OwnedModel {
            layers: [l0].into_iter().collect(),
            input_data: None,
        };
        model.validate().unwrap_or_else(|e| panic!("{bits}: {e}"));
    }
    // A hidden convolution needs 2, 4 or 8 bits.
    let l0 = layer(params(LayerKind::InputConvolutional, image, 5), 3);
    let l1 = layer(params(LayerKind::Convolutional, Dims::new(5, 5, 2), 5), 3);
    let model = OwnedModel {
        layers: [l0, l1].into_iter().collect(),
        input_data: None,
    };
    assert_eq!(
        model.validate().err(),
        Some(ModelError::WeightBits { layer: 1, bits: 5 })
    );
}
