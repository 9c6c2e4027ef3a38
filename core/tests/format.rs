//! The `.akd` file: round trip, and rejection of truncated, corrupted,
//! wrong-version and inconsistent files with a typed error, never a panic.

use std::sync::atomic::{AtomicUsize, Ordering};

use akida_core::format::{self, FormatError, HEADER_LEN};
use akida_core::weights::{pack_into, packed_len};
use akida_core::{
    decode, Dims, F32Values, I32Values, Layer, LayerKind, LayerRef, ModelError, ModelRef, Pooling,
    ValidModel, Window,
};
use proptest::prelude::*;

/// Owned variables of the test model.
struct Vars {
    w0: Vec<u8>,
    w1: Vec<u8>,
    w1_pw: Vec<u8>,
    w2: Vec<u8>,
    th: Vec<u8>,
    steps: Vec<u8>,
}

fn packed(n: usize, bits: u8) -> Vec<u8> {
    let (lo, hi) = akida_core::weights::value_range(bits);
    let values: Vec<i8> = (0..n)
        .map(|k| lo.max(-7) + (k % (hi.min(7) - lo.max(-7) + 1) as usize) as i8)
        .collect();
    let mut buf = vec![0u8; packed_len(n, bits)];
    pack_into(&values, bits, &mut buf).unwrap();
    buf
}

fn vars() -> Vars {
    Vars {
        w0: packed(3 * 3 * 4, 8),
        w1: packed(3 * 3 * 4, 4),
        w1_pw: packed(4 * 6, 4),
        w2: packed(4 * 4 * 6 * 5, 2),
        th: (0..6).flat_map(|i: i32| (i - 2).to_le_bytes()).collect(),
        steps: (0..6)
            .flat_map(|i| (0.5f32 + i as f32).to_le_bytes())
            .collect(),
    }
}

mod common;

fn conv(kind: LayerKind, name: &'static str, input: Dims, filters: u32) -> LayerRef<'static> {
    Layer {
        name,
        params: common::params(kind, input, filters, 8),
        weights: &[],
        weights_pw: None,
        threshold: I32Values(&[]),
        act_step: F32Values(&[]),
    }
}

fn model(v: &Vars) -> ModelRef<'_> {
    let mut l0 = conv(
        LayerKind::InputConvolutional,
        "conv_0",
        Dims::new(8, 8, 1),
        4,
    );
    l0.weights = &v.w0;
    l0.params.pooling = Pooling::Max {
        size: Window::new(2, 2),
        stride: Window::new(2, 2),
    };
    l0.threshold = I32Values(&v.th[..16]);
    l0.act_step = F32Values(&v.steps[..16]);
    let mut l1 = conv(
        LayerKind::SeparableConvolutional,
        "sep_1",
        Dims::new(4, 4, 4),
        6,
    );
    l1.params.weights_bits = 4;
    l1.weights = &v.w1;
    l1.weights_pw = Some(&v.w1_pw);
    l1.threshold = I32Values(&v.th);
    l1.act_step = F32Values(&v.steps);
    let mut l2 = conv(LayerKind::FullyConnected, "dense_2", Dims::new(4, 4, 6), 5);
    l2.params.activation = false;
    l2.params.act_bits = 1;
    l2.params.weights_bits = 2;
    l2.weights = &v.w2;
    l2.threshold = I32Values(&v.th[..20]);
    l2.act_step = F32Values(&v.steps[..20]);
    ModelRef {
        layers: [l0, l1, l2].into_iter().collect(),
        input_data: None,
    }
}

/// Validates, then encodes with the no_std API into a vector.
fn encode(m: &ModelRef) -> Result<Vec<u8>, FormatError> {
    let valid = m.clone().validate().map_err(FormatError::Invalid)?;
    let mut buf = vec![0u8; 1 << 20];
    let n = format::encode_into(&valid, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Frames an arbitrary (possibly inconsistent) model, bypassing validation.
fn frame_unchecked(m: &ModelRef) -> Vec<u8> {
    let payload = postcard::to_stdvec(m).unwrap();
    let mut out = vec![0u8; HEADER_LEN];
    format::write_header(&mut out, format::FORMAT_VERSION, &payload);
    out.extend_from_slice(&payload);
    out
}

#[test]
fn encode_then_decode_gives_the_same_model() {
    let v = vars();
    let m = model(&v);
    let bytes = encode(&m).unwrap();
    assert_eq!(&bytes[..4], b"AKD1");
    assert_eq!(decode(&bytes).unwrap().model(), &m);
    let valid: ValidModel<_, _> = m.validate().unwrap();
    let mut buf = vec![0u8; bytes.len()];
    assert_eq!(format::encode_into(&valid, &mut buf), Ok(bytes.len()));
    assert_eq!(buf, bytes);
    assert_eq!(
        format::encode_into(&valid, &mut buf[..bytes.len() - 1]),
        Err(FormatError::Buffer)
    );
}

#[test]
fn two_bit_weights_are_stored_packed() {
    let v = vars();
    // 480 two-bit weights take 120 bytes, not 480.
    assert_eq!(model(&v).layers[2].weights.len(), 120);
}

#[test]
fn every_truncation_is_rejected() {
    let v = vars();
    let bytes = encode(&model(&v)).unwrap();
    for n in 0..bytes.len() {
        let err = decode(&bytes[..n]).unwrap_err();
        if n < HEADER_LEN {
            assert_eq!(err, FormatError::Truncated(n));
        } else {
            assert!(matches!(err, FormatError::Length { .. }), "{n}: {err:?}");
        }
    }
}

#[test]
fn corruption_and_wrong_version_are_rejected() {
    let v = vars();
    let bytes = encode(&model(&v)).unwrap();
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(decode(&bad).unwrap_err(), FormatError::Magic);
    let mut bad = bytes.clone();
    bad[4] = 1;
    assert_eq!(decode(&bad).unwrap_err(), FormatError::Version(1));
    for i in HEADER_LEN..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(
            matches!(decode(&bad).unwrap_err(), FormatError::Checksum { .. }),
            "flip at {i}"
        );
    }
}

#[test]
fn inconsistent_models_are_rejected_with_the_rule() {
    let v = &vars();
    fn check<'v>(v: &'v Vars, edit: impl Fn(&mut ModelRef<'v>), want: ModelError) {
        let mut m = model(v);
        edit(&mut m);
        assert_eq!(
            decode(&frame_unchecked(&m)).unwrap_err(),
            FormatError::Invalid(want)
        );
        assert_eq!(encode(&m).unwrap_err(), FormatError::Invalid(want));
    }
    check(
        v,
        |m| m.layers[1].params.input = Dims::new(4, 5, 4),
        ModelError::Chain {
            layer: 1,
            expected: Dims::new(4, 4, 4),
            found: Dims::new(4, 5, 4),
        },
    );
    check(
        v,
        |m| m.layers[2].weights = &v.w2[..119],
        ModelError::WeightBytes {
            layer: 2,
            tensor: "weights",
            expected: 120,
            found: 119,
        },
    );
    check(
        v,
        |m| m.layers[1].params.weights_bits = 3,
        ModelError::WeightBits { layer: 1, bits: 3 },
    );
    check(
        v,
        |m| m.layers[0].params.act_bits = 8,
        ModelError::ActBits { layer: 0, bits: 8 },
    );
    check(
        v,
        // Shapes follow from the params: a depthwise kernel of the wrong
        // shape (here the 4x6 pointwise one) has the wrong byte count.
        |m| m.layers[1].weights = &v.w1_pw,
        ModelError::WeightBytes {
            layer: 1,
            tensor: "weights",
            expected: 18,
            found: 12,
        },
    );
    check(
        v,
        |m| m.layers[1].weights_pw = None,
        ModelError::MissingPointwise { layer: 1 },
    );
    check(
        v,
        |m| m.layers[1].params.activation = false,
        ModelError::HiddenWithoutActivation { layer: 1 },
    );
    check(
        v,
        |m| m.layers[0].threshold = I32Values(&v.th[..12]),
        ModelError::VariableLength {
            layer: 0,
            variable: "threshold",
            expected: 16,
            found: 12,
        },
    );
    check(
        v,
        |m| {
            m.layers.swap(0, 1);
        },
        ModelError::FirstLayerNotInput {
            layer: 0,
            kind: LayerKind::SeparableConvolutional,
        },
    );
    check(
        v,
        |m| m.layers[1].params.padding_value = 3,
        ModelError::PaddingValue { layer: 1 },
    );
    check(v, |m| m.layers.clear(), ModelError::Empty);
}

#[test]
fn act_step_below_a_sixteenth_is_rejected() {
    let v = vars();
    let small: Vec<u8> = (0..4).flat_map(|_| 0.05f32.to_le_bytes()).collect();
    let mut m = model(&v);
    m.layers[0].act_step = F32Values(&small);
    assert_eq!(
        decode(&frame_unchecked(&m)).unwrap_err(),
        FormatError::Invalid(ModelError::ActStep {
            layer: 0,
            filter: 0,
            value: 0.05
        })
    );
}

#[test]
fn potentials_that_could_overflow_32_bits_are_rejected() {
    // An 8-bit FC layer over 2^21 inputs at level 15: 127 * 15 * 2^21 > 2^31.
    let n = 1usize << 21;
    let w: Vec<u8> = vec![127; n];
    let th = 0i32.to_le_bytes();
    let step = 1f32.to_le_bytes();
    let w0: Vec<u8> = vec![1; 3 * 3 * 4];
    let th0: Vec<u8> = (0..4).flat_map(|_| 0i32.to_le_bytes()).collect();
    let st0: Vec<u8> = (0..4).flat_map(|_| 1f32.to_le_bytes()).collect();
    let mut l0 = conv(
        LayerKind::InputConvolutional,
        "in",
        Dims::new(512, 1024, 1),
        4,
    );
    l0.weights = &w0;
    l0.threshold = I32Values(&th0);
    l0.act_step = F32Values(&st0);
    let mut fc = conv(LayerKind::FullyConnected, "fc", Dims::new(512, 1024, 4), 1);
    fc.params.activation = false;
    fc.weights = &w;
    assert_second_overflows(l0, fc, &th, &step);
}

/// `second` (with `threshold` and `act_step`) behind `first`: the model is
/// rejected for its potentials overflowing 32 bits.
fn assert_second_overflows<'a>(
    first: LayerRef<'a>,
    mut second: LayerRef<'a>,
    threshold: &'a [u8],
    act_step: &'a [u8],
) {
    second.threshold = I32Values(threshold);
    second.act_step = F32Values(act_step);
    let m = ModelRef {
        layers: [first, second].into_iter().collect(),
        input_data: None,
    };
    assert_eq!(
        m.validate().err(),
        Some(ModelError::PotentialOverflow {
            layer: 1,
            filter: 0
        })
    );
}

const FUZZ_CASES: u32 = 20_000;

/// Runs `check` on `FUZZ_CASES` inputs drawn from `strategy`, returning the count.
fn fuzz<S: Strategy>(strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>) -> u32 {
    let config = ProptestConfig {
        cases: FUZZ_CASES,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let count = AtomicUsize::new(0);
    runner
        .run(&strategy, |value| {
            count.fetch_add(1, Ordering::Relaxed);
            check(value)
        })
        .unwrap();
    count.load(Ordering::Relaxed) as u32
}

/// Random bytes, with a valid header half of the time so the payload decoder
/// and the validator see them too.
#[test]
fn random_bytes_never_panic() {
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..600),
        any::<bool>(),
        any::<bool>(),
    );
    let n = fuzz(strategy, |(payload, framed, v3)| {
        let bytes = if framed {
            let mut b = vec![0u8; HEADER_LEN];
            let version = match v3 {
                true => format::FORMAT_VERSION,
                false => format::LAYERS_ONLY_VERSION,
            };
            format::write_header(&mut b, version, &payload);
            b.extend_from_slice(&payload);
            b
        } else {
            payload
        };
        if let Ok(m) = decode(&bytes) {
            prop_assert!(m.into_model().validate().is_ok());
        }
        Ok(())
    });
    println!("decoder fuzz: {n} random inputs, no panic");
    assert!(n >= FUZZ_CASES);
}

/// A valid file with random bytes overwritten and the checksum fixed, so
/// every mutation reaches the payload decoder and the validator.
#[test]
fn mutated_files_never_panic() {
    let v = vars();
    let bytes = encode(&model(&v)).unwrap();
    let strategy = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8);
    let rejected = AtomicUsize::new(0);
    let n = fuzz(strategy, |edits| {
        let mut payload = bytes[HEADER_LEN..].to_vec();
        for (at, value) in &edits {
            let i = at.index(payload.len());
            payload[i] = *value;
        }
        let mut framed = vec![0u8; HEADER_LEN];
        format::write_header(&mut framed, format::LAYERS_ONLY_VERSION, &payload);
        framed.extend_from_slice(&payload);
        match decode(&framed) {
            Ok(m) => prop_assert!(m.into_model().validate().is_ok()),
            Err(_) => {
                rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    });
    let rejected = rejected.load(Ordering::Relaxed);
    println!("decoder fuzz: {n} mutated files, {rejected} rejected with a typed error, no panic");
    assert!(rejected > 0);
}

#[test]
fn separable_potentials_that_could_overflow_32_bits_are_rejected() {
    // 1024 channels at level 15, 8-bit depthwise and pointwise weights of 127:
    // 9 * 127 * 15 * 127 * 1024 > 2^31.
    let c = 1024usize;
    let w0: Vec<u8> = vec![1; 9 * c];
    let th0: Vec<u8> = (0..c).flat_map(|_| 0i32.to_le_bytes()).collect();
    let st0: Vec<u8> = (0..c).flat_map(|_| 1f32.to_le_bytes()).collect();
    let dw: Vec<u8> = vec![127; 9 * c];
    let pw: Vec<u8> = vec![127; c];
    let th = 0i32.to_le_bytes();
    let step = 1f32.to_le_bytes();
    let mut l0 = conv(
        LayerKind::InputConvolutional,
        "in",
        Dims::new(4, 4, 1),
        c as u32,
    );
    l0.weights = &w0;
    l0.threshold = I32Values(&th0);
    l0.act_step = F32Values(&st0);
    let mut sep = conv(
        LayerKind::SeparableConvolutional,
        "sep",
        Dims::new(4, 4, c as u32),
        1,
    );
    sep.params.activation = false;
    sep.weights = &dw;
    sep.weights_pw = Some(&pw);
    assert_second_overflows(l0, sep, &th, &step);
}
