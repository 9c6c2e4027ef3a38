//! Models behind an InputData layer: validation, the `.akd` round trip
//! (version 3, while models without one stay version 2), the input range
//! check the engine makes, and every backend agreeing on such a model.

use akida_core::format::{self, FormatError, HEADER_LEN, LAYERS_ONLY_VERSION};
use akida_core::inference::{forward, LayerOutput};
use akida_core::{
    decode, Backend, Dims, ForwardError, InputData, LayerKind, LayerParams, ModelError, OwnedLayer,
    OwnedModel, Simd, ValidModel, WorkspaceBuffers,
};

/// Deterministic weights in the symmetric range of `bits`.
fn weights(n: usize, bits: u8, salt: usize) -> Vec<i8> {
    let kmax = ((1i32 << (bits - 1)) - 1) as usize;
    (0..n)
        .map(|k| (((k * 7 + salt * 13) % (2 * kmax + 1)) as i32 - kmax as i32) as i8)
        .collect()
}

mod common;

/// `filters` filters of 4-bit weights.
fn params(kind: LayerKind, input: Dims, filters: u32) -> LayerParams {
    common::params(kind, input, filters, 4)
}

fn layer(name: &str, p: LayerParams, salt: usize) -> OwnedLayer {
    let (main, pw) = p.weight_shapes();
    let count = |s: [u32; 4]| s.iter().map(|&d| d as usize).product::<usize>();
    let f = p.filters as usize;
    OwnedLayer::new(
        name,
        p,
        &weights(count(main), p.weights_bits, salt),
        pw.map(|s| weights(count(s), p.weights_bits, salt + 1))
            .as_deref(),
        &(0..f).map(|i| i as i32 * 3 - 4).collect::<Vec<_>>(),
        &(0..f).map(|i| 0.5 + i as f32 * 0.25).collect::<Vec<_>>(),
    )
    .unwrap()
}

/// InputData (5x4x5, `bits`) -> `first` (8 filters) -> FullyConnected
/// (3 units, potentials).
fn model(first: LayerKind, bits: u8) -> OwnedModel {
    let dims = Dims::new(5, 4, 5);
    let l0 = layer("first", params(first, dims, 8), 1);
    let mut fc = params(LayerKind::FullyConnected, l0.params.output().unwrap(), 3);
    fc.activation = false;
    fc.act_bits = 1;
    let l1 = layer("dense", fc, 2);
    OwnedModel {
        layers: [l0, l1].into_iter().collect(),
        input_data: Some(InputData {
            name: "input".into(),
            dims,
            bits,
        }),
    }
}

fn image(dims: Dims, max: u8, salt: usize) -> Vec<u8> {
    (0..dims.len())
        .map(|k| ((k * 11 + salt * 5) % (max as usize + 1)) as u8)
        .collect()
}

/// Runs one input through `backend`; the potentials of the last layer.
fn run(
    model: &ValidModel<Vec<u8>, String>,
    input: &[u8],
    backend: Backend,
) -> Result<Vec<i32>, ForwardError> {
    let mut buffers =
        WorkspaceBuffers::new(&model.workspace_sizes(matches!(backend, Backend::Fast(_))));
    match forward(model, input, &mut buffers.workspace(), &backend, |_, _| {})? {
        LayerOutput::Potentials(p) => Ok(p.to_vec()),
        LayerOutput::Levels(l) => Ok(l.iter().map(|&v| v as i32).collect()),
    }
}

#[test]
fn an_input_data_model_validates_and_feeds_levels_of_its_bits() {
    for kind in [
        LayerKind::Convolutional,
        LayerKind::SeparableConvolutional,
        LayerKind::FullyConnected,
    ] {
        let m = model(kind, 4).validate().unwrap();
        assert_eq!(m.input(), Dims::new(5, 4, 5));
        assert_eq!(m.max_input(), 15);
        assert_eq!(m.layer(0).max_input, 15);
        let d = m.input_data().unwrap();
        assert_eq!((d.name, d.bits, d.max_value()), ("input", 4, 15));
    }
    let m = model(LayerKind::Convolutional, 2).validate().unwrap();
    assert_eq!(m.layer(0).max_input, 3);
}

#[test]
fn input_data_rules() {
    let check = |m: OwnedModel| m.validate().err();
    for bits in [0, 5, 8] {
        assert_eq!(
            check(model(LayerKind::Convolutional, bits)),
            Some(ModelError::InputDataBits { bits })
        );
    }
    let mut m = model(LayerKind::Convolutional, 4);
    m.input_data.as_mut().unwrap().dims = Dims::new(5, 4, 6);
    assert_eq!(
        check(m),
        Some(ModelError::Chain {
            layer: 0,
            expected: Dims::new(5, 4, 6),
            found: Dims::new(5, 4, 5),
        })
    );
    let mut m = model(LayerKind::Convolutional, 4);
    m.input_data.as_mut().unwrap().dims = Dims::new(0, 4, 5);
    assert!(matches!(check(m), Some(ModelError::InputDataDims { .. })));
    // An input convolution never follows an InputData layer, even on 1 or 3 channels.
    let dims = Dims::new(5, 4, 3);
    let input_conv = layer("conv", params(LayerKind::InputConvolutional, dims, 2), 3);
    let m = OwnedModel {
        layers: [input_conv.clone()].into_iter().collect(),
        input_data: Some(InputData {
            name: "input".into(),
            dims,
            bits: 4,
        }),
    };
    assert_eq!(
        check(m),
        Some(ModelError::InputConvolutionalAfterInputData { layer: 0 })
    );
    // Without InputData the first layer must still be the input convolution.
    let mut m = model(LayerKind::Convolutional, 4);
    m.input_data = None;
    let e = check(m).unwrap();
    assert_eq!(
        e,
        ModelError::FirstLayerNotInput {
            layer: 0,
            kind: LayerKind::Convolutional
        }
    );
    assert!(e.to_string().contains("InputData"), "{e}");
}

#[test]
fn akd_files_are_version_3_with_input_data_and_2_without() {
    let m = model(LayerKind::SeparableConvolutional, 4)
        .validate()
        .unwrap();
    let bytes = format::encode(&m).unwrap();
    assert_eq!(&bytes[4..6], &format::FORMAT_VERSION.to_le_bytes());
    assert_eq!(format::FORMAT_VERSION, 3);
    let back = decode(&bytes).unwrap();
    assert_eq!(back.to_owned_model(), m);

    // The same layers without InputData (an input convolution first) are
    // version 2, the layers alone, as earlier builds wrote them.
    let dims = Dims::new(5, 4, 3);
    let l0 = layer("conv", params(LayerKind::InputConvolutional, dims, 2), 3);
    let plain = OwnedModel {
        layers: [l0].into_iter().collect(),
        input_data: None,
    }
    .validate()
    .unwrap();
    let bytes = format::encode(&plain).unwrap();
    assert_eq!(&bytes[4..6], &LAYERS_ONLY_VERSION.to_le_bytes());
    assert_eq!(
        &bytes[HEADER_LEN..],
        postcard::to_stdvec(&plain.layers).unwrap().as_slice()
    );
    assert_eq!(decode(&bytes).unwrap().to_owned_model(), plain);

    // A version-3 payload framed as version 2 does not decode as a model.
    let v3 = format::encode(&m).unwrap();
    let mut framed = vec![0u8; HEADER_LEN];
    format::write_header(&mut framed, LAYERS_ONLY_VERSION, &v3[HEADER_LEN..]);
    framed.extend_from_slice(&v3[HEADER_LEN..]);
    assert!(decode(&framed).is_err());
    // Version 4 is refused by name.
    let mut bad = v3.clone();
    bad[4] = 4;
    assert_eq!(decode(&bad).unwrap_err(), FormatError::Version(4));
}

#[test]
fn an_input_value_above_the_bits_is_refused_with_its_position() {
    let m = model(LayerKind::Convolutional, 4).validate().unwrap();
    let dims = m.input();
    let mut x = image(dims, 15, 0);
    assert!(m.check_input(&x).is_ok());
    assert!(run(&m, &x, Backend::Reference).is_ok());
    // (row 2, col 3, channel 1) gets 16; a later cell gets 200: the first wins.
    x[dims.index(2, 3, 1)] = 16;
    x[dims.index(4, 0, 0)] = 200;
    let want = ForwardError::InputValue {
        row: 2,
        col: 3,
        channel: 1,
        value: 16,
        max: 15,
        bits: 4,
    };
    assert_eq!(m.check_input(&x), Err(want));
    for backend in [
        Backend::Reference,
        Backend::Event,
        Backend::Fast(Simd::portable()),
    ] {
        assert_eq!(run(&m, &x, backend), Err(want));
    }
    let text = want.to_string();
    assert!(
        text.contains("16") && text.contains("row 2, col 3, channel 1") && text.contains("0 to 15"),
        "{text}"
    );
    // A 1-bit InputData takes 0 and 1 only.
    let m1 = model(LayerKind::Convolutional, 1).validate().unwrap();
    assert!(m1.check_input(&vec![1u8; dims.len()]).is_ok());
    let e = m1.check_input(&vec![2u8; dims.len()]).unwrap_err();
    assert!(
        matches!(
            e,
            ForwardError::InputValue {
                row: 0,
                col: 0,
                channel: 0,
                value: 2,
                max: 1,
                bits: 1
            }
        ),
        "{e:?}"
    );
}

#[test]
fn every_backend_agrees_behind_an_input_data_layer() {
    for kind in [
        LayerKind::Convolutional,
        LayerKind::SeparableConvolutional,
        LayerKind::FullyConnected,
    ] {
        for bits in [1, 2, 4] {
            let m = model(kind, bits).validate().unwrap();
            let max = m.max_input();
            for salt in 0..3 {
                let x = image(m.input(), max, salt);
                let reference = run(&m, &x, Backend::Reference).unwrap();
                assert!(reference.iter().any(|&p| p != 0), "{kind:?} {bits}");
                assert_eq!(
                    run(&m, &x, Backend::Event).unwrap(),
                    reference,
                    "{kind:?} {bits}"
                );
                for simd in Simd::available() {
                    assert_eq!(
                        run(&m, &x, Backend::Fast(simd)).unwrap(),
                        reference,
                        "{kind:?} {bits} {}",
                        simd.name()
                    );
                }
            }
        }
    }
}
