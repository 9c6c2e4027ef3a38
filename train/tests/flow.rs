//! The documented flow on the Speech Commands mini set, in both argument
//! orders (action first, options first): create, train, quantize 4/4,
//! tune, quantize 2/2, tune, convert, `eval -ak` and `eval --akd`.
//!
//! `akida_models create`, `cnn2snn quantize` and `cnn2snn convert` run as
//! the library functions those commands call (`akida_host::commands`);
//! `kws_train` runs as the built binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use akida_host::cnn2snn::{ConvertOptions, QuantizeOptions};
use akida_host::commands::{akida_models, cnn2snn};
use akida_host::keras;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/datasets/speech_commands-mini")
}

/// Held while this process has an HDF5 file open and while it starts a
/// tool: HDF5 opens files without close-on-exec, so a tool started by one
/// test while another test's library call holds its `.h5` open inherits
/// that descriptor, and with it the file's lock, for as long as it runs;
/// the other test's own tool then cannot open its file ("unable to lock
/// file"). The tests run in parallel threads of one process.
static HDF5_OR_SPAWN: Mutex<()> = Mutex::new(());

/// `f` (a library call that opens `.h5` files) under [`HDF5_OR_SPAWN`].
fn h5<T>(f: impl FnOnce() -> T) -> T {
    let _guard = HDF5_OR_SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Runs `c`, which must succeed; its stdout and stderr.
fn run_ok(c: &mut Command) -> String {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = h5(|| c.spawn().unwrap());
    let out = child.wait_with_output().unwrap();
    common::succeeded(c, out)
}

/// `kws_train ACTION -m MODEL [extra]`, the action first or last.
fn kws(action: &str, model: &Path, extra: &[&str], action_first: bool) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kws_train"));
    if action_first {
        c.arg(action);
    }
    c.arg("-m").arg(model).arg("--data-dir").arg(data());
    c.args(["--classes", "12", "--no-progress", "--batch-size", "24"]);
    c.args(extra);
    if !action_first {
        c.arg(action);
    }
    run_ok(&mut c)
}

fn quantize(input: &Path, output: &Path, bits: u32) {
    let options = QuantizeOptions {
        input_weight_bits: Some(8),
        ..QuantizeOptions::new(bits, bits)
    };
    h5(|| cnn2snn::quantize_file(input, &options, Some(output)).unwrap());
    let q = h5(|| keras::read_model(output)).unwrap();
    assert!(q.layers.iter().any(|l| l.config.is_quantized()));
}

fn flow(action_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let created =
        h5(|| akida_models::create("ds_cnn_kws", Some(&p("kws.h5")), 7, Some(12)).unwrap());
    kws(
        "train",
        &created,
        &["-s", p("trained.h5").to_str().unwrap(), "-e", "2"],
        action_first,
    );
    let log = std::fs::read_to_string(p("trained_log.csv")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");

    quantize(&p("trained.h5"), &p("q4.h5"), 4);
    let before = h5(|| keras::read_model(&p("q4.h5"))).unwrap();
    let tuned = kws("tune", &p("q4.h5"), &["-e", "2"], action_first);
    assert!(tuned.contains("Model saved as"), "{tuned}");
    // Tuning aligns the saved model to its conversion's integer grid.
    assert!(tuned.contains("channels aligned"), "{tuned}");
    let after = h5(|| keras::read_model(&p("q4.h5"))).unwrap();
    assert_ne!(before, after, "tuning changed the float shadow weights");
    assert_eq!(before.layers.len(), after.layers.len());

    quantize(&p("q4.h5"), &p("q2.h5"), 2);
    kws("tune", &p("q2.h5"), &["-e", "1"], action_first);

    let (akd, _) =
        h5(|| cnn2snn::convert_file(&p("q2.h5"), &ConvertOptions::default(), None).unwrap());
    assert_eq!(akd, p("q2.akd"));

    let report = kws("eval", &p("q2.h5"), &["-ak"], action_first);
    assert!(report.contains("quantized Keras model"), "{report}");
    assert!(
        report.contains("converted (Akida 1.0, integer runtime) accuracy"),
        "{report}"
    );
    // Aligned by `tune`: the converted model computes the Keras levels.
    assert!(
        report.contains("top-1 agreement, converted vs Keras: 100.00 %"),
        "{report}"
    );
    let from_file = kws(
        "eval",
        &p("q2.h5"),
        &["--akd", akd.to_str().unwrap()],
        action_first,
    );
    // The file is the same conversion: the same figures.
    assert_eq!(
        report.lines().skip(1).collect::<Vec<_>>(),
        from_file.lines().skip(1).collect::<Vec<_>>()
    );
}

/// `cifar10_train ACTION -m M -s M ...` (the model saved over itself, as
/// BrainChip's documents write it), the action first or last, on the
/// CIFAR-10 mini set, a few batches per epoch.
fn cifar(action: &str, model: &Path, extra: &[&str], action_first: bool) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cifar10_train"));
    if action_first {
        c.arg(action);
    }
    c.arg("-m").arg(model);
    if action != "eval" {
        c.arg("-s").arg(model);
    }
    c.arg("--data-dir")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/datasets/cifar10-mini"));
    c.args(["--no-progress", "--batch-size", "16", "--max-batches", "2"]);
    c.args(extra);
    if !action_first {
        c.arg(action);
    }
    run_ok(&mut c)
}

/// The flow on ds_cnn_cifar10 with `-m x.h5 -s x.h5`: every step rewrites
/// its input file, which must stay a readable model.
fn cifar_flow(action_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let created = h5(|| akida_models::create("ds_cnn_cifar10", Some(&p("x.h5")), 3, None).unwrap());
    let before = h5(|| keras::read_model(&created)).unwrap();
    let out = cifar("train", &created, &["-e", "1"], action_first);
    assert!(out.contains("Model saved as"), "{out}");
    let after = h5(|| keras::read_model(&created)).unwrap();
    assert_ne!(before, after, "training changed the weights");
    quantize(&created, &p("q4.h5"), 4);
    cifar("tune", &p("q4.h5"), &["-e", "1"], action_first);
    quantize(&p("q4.h5"), &p("q2.h5"), 2);
    cifar("tune", &p("q2.h5"), &["-e", "1"], action_first);
    h5(|| cnn2snn::convert_file(&p("q2.h5"), &ConvertOptions::default(), None).unwrap());
    let report = cifar("eval", &p("q2.h5"), &["-ak"], action_first);
    assert!(report.contains("on 500 samples"), "{report}");
    assert!(
        report.contains("top-1 agreement, converted vs Keras: 100.00 %"),
        "{report}"
    );
}

#[test]
fn cifar10_train_flow_with_the_action_first() {
    cifar_flow(true);
}

#[test]
fn cifar10_train_flow_with_the_options_first() {
    cifar_flow(false);
}

#[test]
fn documented_flow_with_the_action_first() {
    flow(true);
}

#[test]
fn documented_flow_with_the_options_first() {
    flow(false);
}
