//! The trainers (`cifar10_train`, `kws_train`, `utk_face_train`) join the
//! bad-input suite (`host/tests/bad_input.rs`; the contract is
//! `host/tests/common/refusal.rs`): models that are missing, corrupt, of
//! another family or holding NaN; options no run can use; save paths that
//! cannot be written; datasets with damaged files. Each case must exit with
//! status 2 and one message naming the file and the problem, before any
//! epoch runs and without creating or changing a file.

#[path = "../../host/tests/common/refusal.rs"]
mod refusal;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use akida_host::cnn2snn::{ConvertOptions, QuantizeOptions};
use akida_host::commands::cnn2snn;
use akida_host::{keras, zoo};
use refusal::{assert_refused, assert_unique_names, run_all, snapshot, Case};

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/datasets")
}

fn data_of(bin: &str) -> PathBuf {
    datasets().join(match bin {
        "cifar10_train" => "cifar10-mini",
        "kws_train" => "speech_commands-mini",
        _ => "utkface-mini",
    })
}

/// The models every case finds in its folder, made once (in this process,
/// before any tool starts: HDF5 opens files without close-on-exec):
/// `kws.h5` (ds_cnn_kws, 12 classes), `cifar.h5` (ds_cnn_cifar10),
/// `utk.h5` (vgg_utk_face), `kwsq.h5` (kws.h5 quantized 8/4/4) and its
/// conversion `kwsq.akd`, `nan.h5` (kws.h5 with one NaN weight), `text.txt`.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        let kws = zoo::ds_cnn_kws(12, 1).unwrap();
        keras::write_model(&p("kws.h5"), &kws).unwrap();
        keras::write_model(&p("cifar.h5"), &zoo::ds_cnn_cifar10(1).unwrap()).unwrap();
        keras::write_model(&p("utk.h5"), &zoo::vgg_utk_face(1).unwrap()).unwrap();
        let options = QuantizeOptions {
            input_weight_bits: Some(8),
            ..QuantizeOptions::new(4, 4)
        };
        cnn2snn::quantize_file(&p("kws.h5"), &options, Some(&p("kwsq.h5"))).unwrap();
        cnn2snn::convert_file(&p("kwsq.h5"), &ConvertOptions::default(), None).unwrap();
        let mut nan = kws;
        let layer = nan
            .layers
            .iter_mut()
            .find(|l| !l.weights.is_empty())
            .unwrap();
        layer.weights[0].values[3] = f32::NAN;
        keras::write_model(&p("nan.h5"), &nan).unwrap();
        std::fs::write(p("text.txt"), "hello, not a model\n").unwrap();
        dir
    })
    .path()
}

fn run_case(case: &Case) {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("akida-train-bad-input-{}-", case.name))
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    (case.setup)(dir);
    let before = snapshot(dir);
    let data = data_of(case.bin);
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| a.replace("{data}", data.to_str().unwrap()))
        .collect();
    let exe = match case.bin {
        "cifar10_train" => env!("CARGO_BIN_EXE_cifar10_train"),
        "kws_train" => env!("CARGO_BIN_EXE_kws_train"),
        _ => env!("CARGO_BIN_EXE_utk_face_train"),
    };
    let out = Command::new(exe)
        .args(&args)
        .arg("--no-progress")
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("AKIDA_DATA_DIR")
        .output()
        .unwrap();
    let what = format!("case `{}`: {} {}", case.name, case.bin, args.join(" "));
    assert_refused(&what, &out, case.expect, dir, &before);
}

// ------------------------------------------------------------- helpers

fn nothing(_: &Path) {}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// A copy of the tool's mini dataset as `data/` in the folder.
fn copy_data(dir: &Path, bin: &str) -> PathBuf {
    let to = dir.join("data");
    copy_tree(&data_of(bin), &to);
    to
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The first file (in name order) under `dir` whose name ends with `suffix`.
fn first_file(dir: &Path, suffix: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found.into_iter().next().unwrap()
}

/// A copy of the UTKFace set whose first `labels.csv` row has the age
/// `old`.
fn age_not_a_number(dir: &Path) {
    let data = copy_data(dir, "utk_face_train");
    let text = std::fs::read_to_string(data.join("labels.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen(",100,", ",old,", 1);
    std::fs::write(data.join("labels.csv"), lines.join("\n") + "\n").unwrap();
}

/// The first clip of `yes/` in the copied Speech Commands set.
fn first_yes_clip(dir: &Path) -> PathBuf {
    first_file(&copy_data(dir, "kws_train").join("yes"), ".wav")
}

macro_rules! args {
    ($($a:expr),* ; kws) => {{
        const A: &[&str] = &[$($a,)* "--data-dir", "{data}", "--classes", "12"];
        A
    }};
    ($($a:expr),*) => {{
        const A: &[&str] = &[$($a,)* "--data-dir", "{data}"];
        A
    }};
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // The model file.
    Case { name: "model-missing", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "missing.h5"; kws), expect: &["missing.h5", "No such file"] },
    Case { name: "model-not-hdf5", setup: nothing, bin: "cifar10_train",
        args: args!("train", "-m", "text.txt"), expect: &["text.txt", "not an HDF5 file"] },
    Case { name: "model-truncated", setup: |d| edit(&d.join("utk.h5"), |b| b.truncate(b.len() / 2)), bin: "utk_face_train",
        args: args!("eval", "-m", "utk.h5"), expect: &["utk.h5"] },
    Case { name: "model-superblock-flipped", setup: |d| edit(&d.join("kws.h5"), |b| b[0..8].iter_mut().for_each(|v| *v ^= 0x5a)), bin: "kws_train",
        args: args!("train", "-m", "kws.h5"; kws), expect: &["kws.h5", "not an HDF5 file"] },
    Case { name: "model-is-a-folder", setup: |d| std::fs::create_dir(d.join("sub")).unwrap(), bin: "kws_train",
        args: args!("eval", "-m", "sub"; kws), expect: &["sub"] },
    Case { name: "model-holds-nan", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "nan.h5", "-e", "1"; kws), expect: &["nan.h5", "NaN", "index 3"] },
    Case { name: "model-holds-nan-eval", setup: nothing, bin: "kws_train",
        args: args!("eval", "-m", "nan.h5"; kws), expect: &["nan.h5", "NaN"] },
    // A model of another family.
    Case { name: "cifar-model-on-speech", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "cifar.h5"; kws), expect: &["cifar.h5", "32x32x3 inputs", "49x10x1"] },
    Case { name: "kws-model-on-faces", setup: nothing, bin: "utk_face_train",
        args: args!("train", "-m", "kws.h5"), expect: &["kws.h5", "49x10x1 inputs", "32x32x3"] },
    Case { name: "kws-model-on-cifar-eval", setup: nothing, bin: "cifar10_train",
        args: args!("eval", "-m", "kws.h5"), expect: &["kws.h5", "49x10x1 inputs"] },
    Case { name: "age-model-on-cifar", setup: nothing, bin: "cifar10_train",
        args: args!("train", "-m", "utk.h5"), expect: &["utk.h5", "outputs 1 value(s)", "10 classes"] },
    Case { name: "cifar-model-on-ages", setup: nothing, bin: "utk_face_train",
        args: args!("eval", "-m", "cifar.h5"), expect: &["cifar.h5", "outputs 10 values", "one value per sample"] },
    Case { name: "classes-unlike-the-set", setup: nothing, bin: "kws_train",
        args: &["train", "-m", "kws.h5", "--data-dir", "{data}", "--classes", "5"], expect: &["speech_commands-mini", "--classes 5", "12 classes"] },
    Case { name: "classes-on-cifar", setup: nothing, bin: "cifar10_train",
        args: args!("train", "-m", "cifar.h5", "--classes", "10"), expect: &["--classes applies to kws_train only"] },
    // Options no run can use.
    Case { name: "lr-nan", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "kws.h5", "--lr", "nan"; kws), expect: &["--lr must be a positive number", "NaN"] },
    Case { name: "lr-negative", setup: nothing, bin: "kws_train",
        args: args!("tune", "-m", "kwsq.h5", "--lr=-0.001"; kws), expect: &["--lr must be a positive number", "-0.001"] },
    Case { name: "lr-zero", setup: nothing, bin: "cifar10_train",
        args: args!("train", "-m", "cifar.h5", "--lr", "0"), expect: &["--lr must be a positive number"] },
    Case { name: "lr-infinite", setup: nothing, bin: "utk_face_train",
        args: args!("train", "-m", "utk.h5", "--lr", "inf"), expect: &["--lr must be a positive number", "inf"] },
    Case { name: "batch-size-zero", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "kws.h5", "--batch-size", "0"; kws), expect: &["--batch-size must be at least 1"] },
    Case { name: "epochs-zero", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "kws.h5", "-e", "0"; kws), expect: &["-e (epochs) must be at least 1"] },
    Case { name: "epochs-not-a-number", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "kws.h5", "-e", "ten"; kws), expect: &["ten", "--epochs"] },
    Case { name: "unknown-action", setup: nothing, bin: "kws_train",
        args: args!("fit", "-m", "kws.h5"; kws), expect: &["fit"] },
    Case { name: "split-train", setup: nothing, bin: "kws_train",
        args: args!("eval", "-m", "kws.h5", "--split", "train"; kws), expect: &["train", "--split"] },
    Case { name: "no-model", setup: nothing, bin: "cifar10_train",
        args: args!("train"), expect: &["-m M.h5"] },
    Case { name: "ak-on-train", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "kwsq.h5", "-ak"; kws), expect: &["-ak and --akd apply to eval only"] },
    Case { name: "ak-and-akd", setup: nothing, bin: "kws_train",
        args: args!("eval", "-m", "kwsq.h5", "-ak", "--akd", "kwsq.akd"; kws), expect: &["-ak", "--akd", "not both"] },
    // Where the model is saved.
    Case { name: "save-into-a-missing-folder", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "kws.h5", "-s", "nowhere/out.h5"; kws), expect: &["nowhere/out.h5", "folder nowhere does not exist"] },
    Case { name: "save-is-a-folder", setup: |d| std::fs::create_dir(d.join("sub")).unwrap(), bin: "cifar10_train",
        args: args!("train", "-m", "cifar.h5", "-s", "sub"), expect: &["sub", "is a folder"] },
    Case { name: "resume-without-state", setup: nothing, bin: "kws_train",
        args: args!("train", "-m", "kws.h5", "--resume"; kws), expect: &["kws_state.bin", "No such file"] },
    Case { name: "resume-state-corrupt", setup: |d| std::fs::write(d.join("kws_state.bin"), b"not a state").unwrap(), bin: "kws_train",
        args: args!("train", "-m", "kws.h5", "--resume"; kws), expect: &["kws_state.bin"] },
    // Evaluating a conversion.
    Case { name: "eval-ak-float-model", setup: nothing, bin: "kws_train",
        args: args!("eval", "-m", "kws.h5", "-ak"; kws), expect: &["kws.h5", "not quantized"] },
    Case { name: "eval-akd-missing", setup: nothing, bin: "kws_train",
        args: args!("eval", "-m", "kwsq.h5", "--akd", "none.akd"; kws), expect: &["none.akd"] },
    Case { name: "eval-akd-corrupt", setup: |d| edit(&d.join("kwsq.akd"), |b| { let n = b.len() / 2; b[n] ^= 0x5a }), bin: "kws_train",
        args: args!("eval", "-m", "kwsq.h5", "--akd", "kwsq.akd"; kws), expect: &["kwsq.akd"] },
    Case { name: "eval-akd-not-a-model", setup: |d| std::fs::copy(d.join("text.txt"), d.join("text.akd")).map(drop).unwrap(), bin: "kws_train",
        args: args!("eval", "-m", "kwsq.h5", "--akd", "text.akd"; kws), expect: &["text.akd"] },
    Case { name: "eval-akd-of-other-inputs", setup: nothing, bin: "cifar10_train",
        args: args!("eval", "-m", "cifar.h5", "--akd", "kwsq.akd"), expect: &["kwsq.akd", "490 bytes per input", "3072"] },
    // Damaged datasets.
    Case { name: "data-dir-missing", setup: nothing, bin: "cifar10_train",
        args: &["eval", "-m", "cifar.h5", "--data-dir", "nowhere"], expect: &["nowhere"] },
    Case { name: "data-dir-empty", setup: |d| std::fs::create_dir(d.join("empty")).unwrap(), bin: "cifar10_train",
        args: &["eval", "-m", "cifar.h5", "--data-dir", "empty"], expect: &["empty", "test_batch.bin"] },
    Case { name: "cifar-batch-truncated", setup: |d| { let f = first_file(&copy_data(d, "cifar10_train"), "test_batch.bin"); edit(&f, |b| b.truncate(5000)); }, bin: "cifar10_train",
        args: &["eval", "-m", "cifar.h5", "--data-dir", "data"], expect: &["test_batch.bin"] },
    Case { name: "cifar-label-out-of-range", setup: |d| { let f = first_file(&copy_data(d, "cifar10_train"), "data_batch_1.bin"); edit(&f, |b| b[0] = 10); }, bin: "cifar10_train",
        args: &["train", "-m", "cifar.h5", "--data-dir", "data"], expect: &["data_batch_1.bin", "10"] },
    Case { name: "speech-clip-not-a-wav", setup: |d| std::fs::write(first_yes_clip(d), b"hello").unwrap(), bin: "kws_train",
        args: &["train", "-m", "kws.h5", "--data-dir", "data", "--classes", "12"], expect: &["yes/", ".wav"] },
    Case { name: "speech-clip-truncated", setup: |d| edit(&first_yes_clip(d), |b| b.truncate(1000)), bin: "kws_train",
        args: &["eval", "-m", "kws.h5", "--data-dir", "data", "--classes", "12"], expect: &["yes/", ".wav"] },
    Case { name: "face-jpeg-truncated", setup: |d| { let f = first_file(&copy_data(d, "utk_face_train"), ".jpg"); edit(&f, |b| b.truncate(300)); }, bin: "utk_face_train",
        args: &["eval", "-m", "utk.h5", "--data-dir", "data"], expect: &[".jpg"] },
    Case { name: "face-labels-bad-age", setup: age_not_a_number, bin: "utk_face_train",
        args: &["eval", "-m", "utk.h5", "--data-dir", "data"], expect: &["labels.csv"] },
];

#[test]
fn every_bad_input_is_refused_cleanly() {
    run_all(CASES, |c| c.name, run_case);
}

#[test]
fn case_names_are_unique() {
    assert_unique_names(CASES.iter().map(|c| c.name), 40);
}
