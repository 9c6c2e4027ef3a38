//! The `akida_models` command: create then summary gives the reference
//! summaries; bad models and paths exit with status 2 and write nothing.

use std::path::Path;

mod common;
use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use common::{files_in, scratch, stdout};
use predicates::str::contains;

const MODELS: [&str; 4] = [
    "ds_cnn_cifar10",
    "vgg_cifar10",
    "vgg_utk_face",
    "ds_cnn_kws",
];

/// `akida_models ARGS` run in `dir`.
fn akida_models(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = cargo_bin_cmd!("akida_models");
    cmd.current_dir(dir).args(args);
    cmd
}

/// The standard output of `akida_models ARGS` in `dir`, which must succeed.
fn stdout_ok(dir: &Path, args: &[&str]) -> String {
    stdout(akida_models(dir, args).assert().success().get_output())
}

/// Names Keras numbers per session (`input_3`, `flatten_1`): their counter
/// may differ from the reference.
fn auto_stem(line: &str) -> Option<&str> {
    let name = line.trim_start().split(' ').next()?;
    ["input", "rescaling", "flatten", "reshape", "dropout"]
        .into_iter()
        .find(|base| {
            name == *base
                || name
                    .strip_prefix(&format!("{base}_"))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        })
}

/// Our summary equals the reference line for line, except for the name of
/// automatically numbered layers.
fn assert_same_summary(model: &str, ours: &str, reference: &str) {
    let ours: Vec<&str> = ours.lines().collect();
    let want: Vec<&str> = reference.lines().collect();
    assert_eq!(ours.len(), want.len(), "{model}: line count");
    for (a, b) in ours.iter().zip(&want) {
        if a == b {
            continue;
        }
        let stem = auto_stem(b).unwrap_or_else(|| panic!("{model}: got\n{a}\nwant\n{b}"));
        assert_eq!(auto_stem(a), Some(stem), "{model}: got\n{a}\nwant\n{b}");
        let class = |l: &str| {
            l[..49]
                .split_once(" (")
                .map(|(_, c)| c.trim_end().to_owned())
        };
        assert_eq!(class(a), class(b), "{model}: class");
        assert_eq!(&a[49..], &b[49..], "{model}: shape and parameters");
    }
}

#[test]
fn create_then_summary_gives_the_reference_summaries() {
    let dir = scratch("akida_models", "zoo");
    let dir = dir.path();
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/reference/zoo");
    for model in MODELS {
        akida_models(dir, &["create", model])
            .assert()
            .success()
            .stdout(format!("Model saved as {model}.h5\n"));
        let file = format!("{model}.h5");
        let ours = stdout_ok(dir, &["summary", "-m", &file]);
        let want = std::fs::read_to_string(reference.join(format!("{model}_summary.txt"))).unwrap();
        assert_same_summary(model, &ours, &want);
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    assert!(files_in(dir).is_empty(), "{:?}", files_in(dir));
}

#[test]
fn save_path_classes_and_seed() {
    let dir = scratch("akida_models", "options");
    let dir = dir.path();
    akida_models(
        dir,
        &[
            "create",
            "-s",
            "sub_kws",
            "--classes",
            "10",
            "--seed",
            "3",
            "ds_cnn_kws",
        ],
    )
    .assert()
    .success()
    .stdout("Model saved as sub_kws.h5\n");
    let text = stdout_ok(dir, &["summary", "-m", "sub_kws.h5"]);
    assert!(text.contains("Total params: 22218 (86.79 KB)"), "{text}");
    assert!(
        text.contains(" dense_5 (Dense)                                 (None, 10)"),
        "{text}"
    );
    akida_models(
        dir,
        &[
            "create",
            "--save_model",
            "one.h5",
            "--classes",
            "1",
            "ds_cnn_kws",
        ],
    )
    .assert()
    .success();
    let text = stdout_ok(dir, &["summary", "-m", "one.h5"]);
    assert!(text.contains("act_sigmoid (Activation)"), "{text}");
    assert_eq!(files_in(dir), ["one.h5", "sub_kws.h5"]);
    // The same seed gives the same file contents' weights; another seed differs.
    for file in ["a.h5", "b.h5"] {
        akida_models(dir, &["create", "-s", file, "--seed", "9", "vgg_utk_face"])
            .assert()
            .success();
    }
    let (a, b) = (
        std::fs::read(dir.join("a.h5")).unwrap(),
        std::fs::read(dir.join("b.h5")).unwrap(),
    );
    assert_eq!(a, b);
}

#[test]
fn help_lists_the_models() {
    let dir = scratch("akida_models", "help");
    for args in [&["--help"][..], &["create", "--help"][..]] {
        let text = stdout_ok(dir.path(), args);
        for model in MODELS {
            assert!(text.contains(model), "{args:?}: {model} missing in\n{text}");
        }
    }
}

#[test]
fn errors_exit_2_and_write_nothing() {
    let dir = scratch("akida_models", "errors");
    let dir = dir.path();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["create", "mobilenet"], "unknown model `mobilenet`"),
        (
            vec!["create", "-s", "no/such/dir/m.h5", "ds_cnn_kws"],
            "the directory does not exist",
        ),
        (
            vec!["create", "--classes", "4", "vgg_cifar10"],
            "--classes applies to ds_cnn_kws only",
        ),
        (vec!["create", "--classes", "0", "ds_cnn_kws"], "at least 1"),
        (vec!["summary", "-m", "missing.h5"], "missing.h5"),
        (vec!["create"], "NAME"),
    ];
    for (args, message) in cases {
        akida_models(dir, &args)
            .assert()
            .code(2)
            .stderr(contains(message));
        assert!(
            files_in(dir).is_empty(),
            "{args:?} left {:?}",
            files_in(dir)
        );
    }
    std::fs::write(dir.join("plain.txt"), "text").unwrap();
    akida_models(dir, &["summary", "-m", "plain.txt"])
        .assert()
        .code(2)
        .stderr(contains("plain.txt: not an HDF5 file"));
    akida_models(dir, &["create", "-s", "plain.txt/m.h5", "ds_cnn_kws"])
        .assert()
        .code(2)
        .stderr(contains("is not in a directory"));
    assert_eq!(files_in(dir), ["plain.txt"]);
    // Unwritable even for root: /proc takes no new files.
    if Path::new("/proc/self").exists() {
        akida_models(
            dir,
            &["create", "-s", "/proc/akida_models_test.h5", "ds_cnn_kws"],
        )
        .assert()
        .code(2)
        .stderr(contains("/proc/akida_models_test.h5"));
    }
}
