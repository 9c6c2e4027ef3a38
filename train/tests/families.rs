//! Each model family trains on its real mini set (CIFAR-10, Speech
//! Commands, UTKFace in `tests/data/datasets`): the training loss falls over
//! a few steps, and a short epoch through the tool saves a model that our
//! reader opens, with its log, curve and resumable state beside it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use akida_host::datasets::ImageSet;
use akida_host::keras;
use akida_host::zoo;
use akida_train::commands::Tool;
use akida_train::data::Task;
use akida_train::fit::step;
use akida_train::net::Network;
use akida_train::optim::{Adam, AdamConfig};
use akida_train::rng::Rng;
use burn::tensor::Device;

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/datasets")
}

/// Steps on one batch of real data; the loss of the last step is below the
/// first's.
fn loss_falls(model: &keras::Model, batch: &ImageSet, steps: usize, lr: f32) -> (f32, f32) {
    let mut net = Network::from_model(model).unwrap();
    let sizes: Vec<usize> = net.params.iter().map(|p| p.values.len()).collect();
    let mut adam = Adam::new(AdamConfig::default(), &sizes);
    let mut rng = Rng::new(5);
    let device = Device::flex().autodiff();
    let task = Task::of(&batch.targets);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (loss, _) = step(&mut net, &mut adam, &mut rng, batch, task, lr, &device).unwrap();
        losses.push(loss);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < first, "loss did not fall: {losses:?}");
    (first, last)
}

fn first(set: &ImageSet, n: usize) -> ImageSet {
    set.select(&(0..n.min(set.len())).collect::<Vec<_>>())
}

#[test]
fn ds_cnn_cifar10_loss_falls_on_cifar10() {
    let data = Tool::Cifar10
        .load(&datasets().join("cifar10-mini"), None)
        .unwrap();
    let akida_train::data::TrainSource::Images(train, _) = &data.train else {
        panic!("images")
    };
    let model = zoo::ds_cnn_cifar10(1).unwrap();
    let (a, b) = loss_falls(&model, &first(train, 16), 4, 1e-3);
    println!("ds_cnn_cifar10: loss {a:.4} -> {b:.4}");
}

#[test]
fn ds_cnn_kws_loss_falls_on_speech_commands() {
    let data = Tool::Kws
        .load(&datasets().join("speech_commands-mini"), Some(12))
        .unwrap();
    let mut rng = Rng::new(1);
    let train = data.train.epoch(&mut rng);
    let model = zoo::ds_cnn_kws(12, 1).unwrap();
    let (a, b) = loss_falls(&model, &first(&train, 48), 8, 3e-3);
    println!("ds_cnn_kws: loss {a:.4} -> {b:.4}");
}

#[test]
fn vgg_utk_face_loss_falls_on_utkface() {
    let data = Tool::UtkFace
        .load(&datasets().join("utkface-mini"), None)
        .unwrap();
    let akida_train::data::TrainSource::Images(train, _) = &data.train else {
        panic!("images")
    };
    let model = zoo::vgg_utk_face(1).unwrap();
    let (a, b) = loss_falls(&model, &first(train, 32), 6, 3e-3);
    println!("vgg_utk_face: mean absolute error {a:.3} -> {b:.3}");
}

fn tool(name: &str) -> Command {
    let exe = match name {
        "cifar10_train" => env!("CARGO_BIN_EXE_cifar10_train"),
        "kws_train" => env!("CARGO_BIN_EXE_kws_train"),
        _ => env!("CARGO_BIN_EXE_utk_face_train"),
    };
    let mut c = Command::new(exe);
    c.env_remove("AKIDA_DATA_DIR");
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    common::succeeded(c, out)
}

/// One short epoch through the tool: the model saved, readable, with its
/// log (one epoch line), curve and state beside it.
fn short_epoch(tool_name: &str, model: keras::Model, data: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.h5");
    keras::write_model(&m, &model).unwrap();
    let out = dir.path().join("trained.h5");
    let mut c = tool(tool_name);
    c.args(["train", "-m"])
        .arg(&m)
        .arg("-s")
        .arg(&out)
        .args([
            "-e",
            "1",
            "--max-batches",
            "2",
            "--batch-size",
            "16",
            "--no-progress",
        ])
        .arg("--data-dir")
        .arg(datasets().join(data))
        .args(extra);
    let text = run_ok(&mut c);
    assert!(text.contains("Model saved as"), "{text}");
    let back = keras::read_model(&out).unwrap();
    assert_eq!(back.layers.len(), model.layers.len());
    assert_ne!(back, model, "the weights changed");
    // Round trip: what we read writes back to the same model.
    let again = dir.path().join("again.h5");
    keras::write_model(&again, &back).unwrap();
    assert_eq!(keras::read_model(&again).unwrap(), back);
    let log = std::fs::read_to_string(dir.path().join("trained_log.csv")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(log.lines().nth(1).unwrap().starts_with("1,"), "{log}");
    let png = std::fs::read(dir.path().join("trained_curve.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(dir.path().join("trained_state.bin").is_file());
}

#[test]
fn cifar10_train_saves_a_readable_model() {
    short_epoch(
        "cifar10_train",
        zoo::ds_cnn_cifar10(2).unwrap(),
        "cifar10-mini",
        &[],
    );
}

#[test]
fn kws_train_saves_a_readable_model() {
    short_epoch(
        "kws_train",
        zoo::ds_cnn_kws(12, 2).unwrap(),
        "speech_commands-mini",
        &["--classes", "12"],
    );
}

#[test]
fn utk_face_train_saves_a_readable_model() {
    short_epoch(
        "utk_face_train",
        zoo::vgg_utk_face(2).unwrap(),
        "utkface-mini",
        &[],
    );
}

#[test]
fn missing_data_says_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.h5");
    keras::write_model(&m, &zoo::vgg_utk_face(1).unwrap()).unwrap();
    let before = keras::read_model(&m).unwrap();
    let out = tool("utk_face_train")
        .args(["train", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AKIDA_DATA_DIR") && err.contains("README"),
        "{err}"
    );
    let out = tool("utk_face_train")
        .args(["train", "-m"])
        .arg(&m)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("labels.csv"), "{err}");
    // Nothing was written over the model.
    assert_eq!(keras::read_model(&m).unwrap(), before);
}
