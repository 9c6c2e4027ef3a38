//! Our cnn2snn against BrainChip's on the fixtures of `tests/data/cnn2snn/`
//! (made with tf_keras 2.19.0, cnn2snn 2.19.3 and akida 2.19.3 by
//! `scripts/diff_cnn2snn.py --write-fixtures`; see the README there):
//!
//! - a model cnn2snn converts: our convert of cnn2snn's quantized file, and
//!   our quantize then convert of the float file, give cnn2snn's model (the
//!   same layers, params, weights, thresholds and act_steps bit for bit,
//!   behind the same InputData layer), and our runtime gives the engine's
//!   `forward` (and `predict`) outputs on the fixture's inputs, every element,
//!   with every kernel policy;
//! - a model cnn2snn refuses: we refuse it too, naming the layer.
//!
//! The firmware runs the InputData fixtures under QEMU in `firmware_qemu.rs`.

use akida_host::cnn2snn::Cnn2snnError;
use akida_host::formats::akd::ConvertedModel;
use akida_host::formats::{akd, fbz};
use akida_host::runtime::{BatchOutput, KernelPolicy, Runtime};
use akida_tests::assert_all_equal;
use akida_tests::fixtures::{assert_same_model, fixture, fixtures, Fixture};

/// Our runtime's outputs equal the engine's, with every kernel policy;
/// returns the number of elements compared.
fn assert_engine_outputs(f: &Fixture, model: &ConvertedModel, what: &str) -> usize {
    let inputs = f.io("inputs").expect("io.npz holds the inputs");
    let images = inputs.as_u8().expect("uint8 inputs");
    let forward = f.io("forward").expect("io.npz holds the engine's forward");
    let mut n = 0;
    for policy in [
        KernelPolicy::Auto,
        KernelPolicy::Reference,
        KernelPolicy::Event,
        KernelPolicy::Fast,
    ] {
        let runtime = Runtime::new(model, policy);
        let label = format!("{} {what} {}", f.name, policy.name());
        n = match runtime.forward_batch(images).unwrap() {
            BatchOutput::Levels(l) => assert_all_equal(&label, &l, forward.as_u8().unwrap()),
            BatchOutput::Potentials(p) => assert_all_equal(&label, &p, forward.as_i32().unwrap()),
        };
        if let Some(predict) = f.io("predict") {
            let ours = runtime.predict_batch(images).unwrap().expect("potentials");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            n += assert_all_equal(
                &format!("{label} predict"),
                &bits(&ours),
                &bits(predict.as_f32().unwrap()),
            );
        }
    }
    n
}

fn converted(
    f: &Fixture,
    path: &str,
    result: Result<akida_host::cnn2snn::Conversion, Cnn2snnError>,
) -> ConvertedModel {
    result
        .unwrap_or_else(|e| panic!("{} {path}: {}", f.name, akida_host::cli::report(&e)))
        .model
}

#[test]
fn our_conversions_give_the_engine_model_and_outputs() {
    let mut converted_count = 0;
    for f in fixtures().iter().filter(|f| f.refused().is_none()) {
        let engine = f.engine_model();
        for (path, ours) in [
            (
                "convert of q.h5",
                converted(f, "B", f.ours_from_quantized()),
            ),
            (
                "quantize + convert of float.h5",
                converted(f, "A", f.ours_from_float()),
            ),
        ] {
            let what = format!("{} ({path})", f.name);
            let variables = assert_same_model(&what, &ours, &engine);
            let outputs = assert_engine_outputs(f, &ours, path);
            // Our .akd and .fbz files hold the same model.
            let akd_back = akd::from_bytes(&akd::to_bytes(&ours).unwrap()).unwrap();
            assert_eq!(akd_back, ours, "{what}: .akd round trip");
            let fbz_back = fbz::from_fbz_bytes(&fbz::to_fbz_bytes(&ours).unwrap()).unwrap();
            assert_eq!(fbz_back, ours, "{what}: .fbz round trip");
            println!("{what}: {variables} variable elements and {outputs} output elements equal");
        }
        converted_count += 1;
    }
    assert!(converted_count >= 2, "the two InputData fixtures at least");
}

#[test]
fn models_cnn2snn_refuses_are_refused_naming_the_layer() {
    for f in fixtures() {
        let Some(reason) = f.refused() else { continue };
        for (path, result) in [("B", f.ours_from_quantized()), ("A", f.ours_from_float())] {
            let e = match result {
                Ok(_) => panic!(
                    "{} {path}: cnn2snn refuses ({reason}), ours converts",
                    f.name
                ),
                Err(e) => akida_host::cli::report(&e),
            };
            let layer = f.meta["refused_layer"].as_str().expect("refused_layer");
            assert!(e.contains(&format!("`{layer}`")), "{} {path}: {e}", f.name);
            println!("{} {path}: refused like cnn2snn ({reason}): {e}", f.name);
        }
    }
}

/// The two fixtures the issue names: a 16-feature vector through three
/// Dense layers with batch normalization, and a 5-channel image. Both are
/// fed by an InputData layer of 4 bits, as cnn2snn makes them.
#[test]
fn vector_and_five_channel_models_start_with_input_data() {
    for (name, dims, kinds) in [
        (
            "input_data_vector",
            akida_core::Dims::new(1, 1, 16),
            &["FullyConnected", "FullyConnected", "FullyConnected"][..],
        ),
        (
            "input_data_5_channels",
            akida_core::Dims::new(12, 10, 5),
            &[
                "Convolutional",
                "SeparableConvolutional",
                "Convolutional",
                "FullyConnected",
            ][..],
        ),
    ] {
        let f = fixture(name);
        let engine = f.engine_model();
        let d = engine
            .input_data()
            .expect("the engine's model has InputData");
        assert_eq!((d.dims, d.bits), (dims, 4), "{name}");
        let got: Vec<&str> = engine.layers().map(|l| l.params().kind.name()).collect();
        assert_eq!(got, kinds, "{name}");
        let ours = converted(&f, "B", f.ours_from_quantized());
        assert_eq!(ours.input_data().map(|d| (d.dims, d.bits)), Some((dims, 4)));
        // An input above 15 is refused, naming its value and position, as the engine refuses it.
        let mut image = f.io("inputs").unwrap().as_u8().unwrap()[..dims.len()].to_vec();
        image[dims.len() - 1] = 16;
        let e = Runtime::new(&ours, KernelPolicy::Auto)
            .forward_batch(&image)
            .unwrap_err();
        assert!(
            matches!(
                e,
                akida_core::ForwardError::InputValue {
                    value: 16,
                    max: 15,
                    ..
                }
            ),
            "{name}: {e:?}"
        );
    }
}

/// `akida run` on a batch with a value above the InputData bits: refused,
/// naming the first offending image, its position and value (the engine
/// refuses the whole batch too: "Input values must be in the range (0, 15).
/// Got 16."); `akida summary` shows the InputData row.
#[test]
fn akida_run_and_summary_of_an_input_data_model() {
    use akida_host::commands::akida::{run_tensor, summary_table, RunOptions};
    use akida_host::formats::npy::{Tensor, TensorData};

    let f = fixture("input_data_5_channels");
    let model = f.engine_model();
    let inputs = f.io("inputs").unwrap();
    let mut values = inputs.as_u8().unwrap().to_vec();
    let dims = model.input();
    // Image 3, row 2, col 7, channel 4 gets 16; image 5 gets 200 earlier in its cell order.
    values[3 * dims.len() + dims.index(2, 7, 4)] = 16;
    values[5 * dims.len()] = 200;
    let batch = Tensor {
        shape: inputs.shape.clone(),
        data: TensorData::U8(values),
    };
    let e = run_tensor(&model, &batch, RunOptions::default()).unwrap_err();
    let message = akida_host::cli::report(&e);
    assert_eq!(
        message,
        "image 3: input value 16 at (row 2, col 7, channel 4) is out of range: the model's InputData layer takes 4-bit values, 0 to 15"
    );
    let (out, _) = run_tensor(&model, &inputs, RunOptions::default()).unwrap();
    assert_eq!(out.shape, vec![16, 1, 1, 6]);

    let text = summary_table(&model);
    let row = text.lines().nth(2).unwrap();
    assert!(
        row.contains("InputData") && row.contains("12x10x5"),
        "{text}"
    );
    assert!(text.contains("Layers: 5"), "{text}");
    assert!(
        text.contains("Input: 12x10x5 (uint8, 4-bit values 0 to 15)"),
        "{text}"
    );
}
