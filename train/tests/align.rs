//! `cnn2snn align` on a real model: the shipped float keyword model
//! (`models/ds_cnn_kws_12`) quantized 8/4/4 by `cnn2snn quantize`, and the
//! real Speech Commands clips of the mini set. Unaligned,
//! its converted model's outputs differ from the quantized Keras model's
//! (some levels land one apart); aligned, every output of every clip is the
//! Keras one up to float rounding, which needs every level of every layer
//! to be equal.

use std::path::{Path, PathBuf};

use akida_host::cnn2snn;
use akida_host::datasets::{ImageSet, Targets};
use akida_host::formats::npy::Npz;
use akida_host::keras;
use akida_train::commands::Tool;
use akida_train::eval::{convert, predict_converted};
use akida_train::fit::evaluate;
use akida_train::net::Network;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The validation and test clips of the mini set.
fn clips() -> [ImageSet; 2] {
    let data = Tool::Kws
        .load(
            &root().join("tests/data/datasets/speech_commands-mini"),
            Some(12),
        )
        .unwrap();
    [data.validation, data.test]
}

/// The largest difference between the Keras model's outputs and its
/// conversion's `predict`, relative to the largest output.
fn largest_difference(model: &keras::Model, sets: &[ImageSet]) -> f32 {
    sets.iter()
        .map(|set| difference(model, set))
        .fold(0f32, f32::max)
}

fn difference(model: &keras::Model, set: &ImageSet) -> f32 {
    let net = Network::from_model(model).unwrap();
    let (_, keras_out) = evaluate(&net, set, 100).unwrap();
    let akida_out = predict_converted(&convert(&net).unwrap(), set).unwrap();
    assert_eq!(keras_out.len(), akida_out.len());
    let scale = keras_out.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = keras_out
        .iter()
        .zip(&akida_out)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

#[test]
fn aligned_model_converts_to_its_own_levels() {
    let path = root().join("models/ds_cnn_kws_12/ds_cnn_kws_12.h5");
    let float = keras::read_model(&path).unwrap();
    let options = cnn2snn::QuantizeOptions {
        input_weight_bits: Some(8),
        ..cnn2snn::QuantizeOptions::new(4, 4)
    };
    let model = cnn2snn::quantize(&float, &options).unwrap();
    let set = clips();
    assert!(set.iter().map(ImageSet::len).sum::<usize>() >= 40);

    let before = largest_difference(&model, &set);
    // One level of one neuron apart moves an output by a weight times a
    // step: far above float rounding.
    assert!(before > 1e-3, "unaligned: {before}");

    let alignment = cnn2snn::align(&model, None).unwrap();
    let (aligned, channels) = alignment.counts();
    assert_eq!((aligned, channels), (332, 332));
    assert_eq!(alignment.saturating(), 0);
    for layer in &alignment.layers {
        assert!(layer.skipped.is_none(), "{layer:?}");
        // Less than one potential unit per summed cell, and a small scale change.
        assert!(layer.max_scale_change < 0.01, "{layer:?}");
        if let Some(margin) = layer.min_margin {
            assert!(margin >= 1.0 / 32.0, "{layer:?}");
        }
    }
    let after = largest_difference(&alignment.model, &set);
    assert!(after < 1e-5, "aligned: {after} (unaligned: {before})");

    // An aligned model is already on the grid: aligning it again moves
    // nothing but float rounding.
    let again = cnn2snn::align(&alignment.model, None).unwrap();
    assert_eq!(again.counts(), (332, 332));
    for layer in &again.layers {
        assert!(layer.max_scale_change < 1e-5, "{layer:?}");
        assert!(layer.max_threshold_shift < 0.1, "{layer:?}");
    }
}

/// Every quantized reference model of BrainChip's vectors (1-, 2- and 4-bit
/// activations, max and global average pooling, strides, an input shift,
/// fully connected inputs), on its own inputs: once aligned, the converted
/// model's outputs are the Keras model's up to float rounding, except where
/// alignment reports levels past the engine's 20-bit saturation.
#[test]
fn every_reference_model_aligned_converts_to_its_own_levels() {
    let dir = root().join("tests/data/reference/vectors");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_q.h5"))
        .collect();
    models.sort();
    assert!(models.len() >= 10, "{models:?}");
    let mut differed = 0;
    let mut saturating = 0;
    for path in &models {
        let name = path.file_name().unwrap().to_string_lossy();
        let stem = name.trim_end_matches("_q.h5");
        let mut npz = Npz::open(&dir.join(format!("{stem}.npz"))).unwrap();
        let input = npz.require("input_uint8").unwrap();
        let shape = [input.shape[1], input.shape[2], input.shape[3]];
        let model = keras::read_model(path).unwrap();
        let outputs = Network::from_model(&model).unwrap().outputs;
        let set = ImageSet {
            shape,
            images: input.as_u8().unwrap().to_vec(),
            targets: Targets::Classes {
                labels: vec![0; input.shape[0]],
                classes: outputs,
            },
        };
        let before = difference(&model, &set);
        let alignment = cnn2snn::align(&model, None).unwrap();
        let (aligned, channels) = alignment.counts();
        assert_eq!(aligned, channels, "{name}");
        if alignment.saturating() > 0 {
            // Levels past the engine's 20-bit range: outside alignment's reach.
            saturating += 1;
            continue;
        }
        let after = difference(&alignment.model, &set);
        assert!(after < 1e-5, "{name}: aligned {after}, unaligned {before}");
        differed += usize::from(before > 1e-3);
    }
    // The vectors record Keras/engine disagreements for several models.
    assert!(differed >= 2, "{differed} models differed before alignment");
    // BrainChip's randomly initialized ds_cnn_kws: thresholds near 2^19.
    assert_eq!(saturating, 1, "models with saturating channels");
}
