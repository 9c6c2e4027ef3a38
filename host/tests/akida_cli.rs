//! The `akida` command against BrainChip's engine: on every reference set,
//! `akida run` gives the engine's `forward` and `predict` outputs exactly
//! (from the `.fbz` and from its `.akd` conversion), `akida summary` shows
//! the engine's layer shapes, and bad inputs exit with status 2, name the
//! file at fault and write nothing.

use std::path::{Path, PathBuf};

mod common;

use akida_host::formats;
use akida_host::formats::npy::{read_npy, write_npy, Npz, Tensor, TensorData};
use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use common::{files_in, reference_dir, scratch, stdout};
use predicates::prelude::*;
use predicates::str::{contains, starts_with};
use serde_json::Value;

fn akida() -> Command {
    cargo_bin_cmd!("akida")
}

/// `akida run -m MODEL -i INPUT -o OUTPUT`, flags to add.
fn run(model: &Path, input: &Path, output: &Path) -> Command {
    let mut cmd = akida();
    cmd.arg("run")
        .arg("-m")
        .arg(model)
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(output);
    cmd
}

/// The standard output of a successful `akida summary -m MODEL`.
fn summary(model: &Path) -> String {
    let done = akida()
        .arg("summary")
        .arg("-m")
        .arg(model)
        .assert()
        .success();
    stdout(done.get_output())
}

/// Every set `NAME` with `NAME.fbz`, `NAME.npz` and `NAME.json`; panics if
/// there is none (a test that checks nothing must not pass).
fn reference_sets() -> Vec<String> {
    let dir = reference_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".fbz")?.to_owned();
            let has = |ext: &str| dir.join(format!("{stem}.{ext}")).exists();
            (has("npz") && has("json")).then_some(stem)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no reference set in {}", dir.display());
    names
}

fn model_path(name: &str) -> PathBuf {
    reference_dir().join(format!("{name}.fbz"))
}

fn array(name: &str, key: &str) -> Tensor {
    let mut npz = Npz::open(&reference_dir().join(format!("{name}.npz"))).unwrap();
    npz.require(key).unwrap()
}

fn layers_json(name: &str) -> Vec<Value> {
    let path = reference_dir().join(format!("{name}.json"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["akida_layers"]
        .as_array()
        .expect("akida_layers")
        .clone()
}

/// `[h, w, c]` from the json as `HxWxC`.
fn dims_text(v: &Value) -> String {
    let d: Vec<String> = v
        .as_array()
        .expect("dims")
        .iter()
        .map(|x| x.as_u64().expect("dim").to_string())
        .collect();
    d.join("x")
}

/// Runs `akida run` and returns its output array.
fn run_ok(model: &Path, input: &Path, output: &Path, extra: &[&str]) -> Tensor {
    run(model, input, output)
        .args(extra)
        .assert()
        .success()
        .stdout(contains(" images/s, kernel "));
    read_npy(output).unwrap()
}

fn f32_bits(t: &Tensor) -> Vec<u32> {
    t.as_f32()
        .expect("float32")
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn run_gives_the_engine_outputs_on_every_reference_set() {
    let dir = scratch("akida", "parity");
    let dir = dir.path();
    for name in reference_sets() {
        let input = dir.join(format!("{name}_in.npy"));
        let images = array(&name, "input_uint8");
        write_npy(&input, &images).unwrap();
        let forward = array(&name, "akida_forward");
        let predict = array(&name, "akida_predict");
        let out = dir.join(format!("{name}_out.npy"));
        let fbz = model_path(&name);

        run(&fbz, &input, &out).assert().success().stdout(
            starts_with(format!("{} images, ", images.shape[0]))
                .and(contains("kernel auto, SIMD ")),
        );
        assert_eq!(read_npy(&out).unwrap(), forward, "{name}");

        for kernel in ["fast", "event", "reference"] {
            let got = run_ok(&fbz, &input, &out, &["--kernel", kernel]);
            assert_eq!(got, forward, "{name} --kernel {kernel}");
        }
        // Every fast-kernel path this CPU runs, forced by name, with and
        // without the byte product.
        for simd in akida_core::Simd::available() {
            for extra in [&[][..], &["--no-byte-product"][..]] {
                let args = [&["--kernel", "fast", "--simd", simd.name()][..], extra].concat();
                run(&fbz, &input, &out)
                    .args(&args)
                    .assert()
                    .success()
                    .stdout(contains(format!("SIMD {}, ", simd.name())));
                assert_eq!(read_npy(&out).unwrap(), forward, "{name} {args:?}");
            }
        }
        let got = run_ok(&fbz, &input, &out, &["--predict"]);
        assert_eq!(got.shape, predict.shape, "{name}");
        assert_eq!(f32_bits(&got), f32_bits(&predict), "{name} --predict");

        let akd = dir.join(format!("{name}.akd"));
        akida()
            .arg("convert-format")
            .arg(&fbz)
            .arg(&akd)
            .assert()
            .success()
            .stdout(format!("Model saved as {}\n", akd.display()));
        assert_eq!(run_ok(&akd, &input, &out, &[]), forward, "{name} .akd");
        let got = run_ok(&akd, &input, &out, &["--predict"]);
        assert_eq!(f32_bits(&got), f32_bits(&predict), "{name} .akd --predict");

        // And back: the .fbz written from the .akd holds the same model.
        let back = dir.join(format!("{name}_back.fbz"));
        akida()
            .arg("convert-format")
            .arg(&akd)
            .arg(&back)
            .assert()
            .success();
        assert_eq!(formats::load(&back).unwrap(), formats::load(&fbz).unwrap());
    }
}

#[test]
fn summary_shows_every_layer_with_the_engine_shapes() {
    for name in reference_sets() {
        let text = summary(&model_path(&name));
        let layers = layers_json(&name);
        for l in &layers {
            let layer = l["name"].as_str().unwrap();
            let kind = l["type"].as_str().unwrap();
            let line = text
                .lines()
                .find(|line| line.split_whitespace().next() == Some(layer))
                .unwrap_or_else(|| panic!("{name}: no line for {layer} in\n{text}"));
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells[1], kind, "{name}: {line}");
            assert_eq!(cells[2], dims_text(&l["input_dims"]), "{name}: {line}");
            assert_eq!(cells[3], dims_text(&l["output_dims"]), "{name}: {line}");
            let bits = l["params"]["weights_bits"].as_i64().unwrap().to_string();
            assert!(line.contains(&format!(" {bits} ")), "{name}: {line}");
        }
        let first = &layers[0];
        let last = layers.last().unwrap();
        assert!(
            text.contains(&format!("Layers: {}\n", layers.len())),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "Input: {} (uint8)\n",
                dims_text(&first["input_dims"])
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "Output: {} (int32 potentials)\n",
                dims_text(&last["output_dims"])
            )),
            "{text}"
        );
    }
}

/// The ds_cnn_kws set, checked in detail: kernel, stride, pooling, bits and
/// packed weight memory of a separable layer (3x3x64 depthwise + 64x64
/// pointwise 4-bit weights = 4672 weights, 2336 bytes).
#[test]
fn summary_of_ds_cnn_kws() {
    let name = "ds_cnn_kws_iq8_wq4_aq4";
    if !reference_sets().iter().any(|n| n == name) {
        panic!(
            "reference set {name} missing in {}",
            reference_dir().display()
        );
    }
    let text = summary(&model_path(name));
    let row = |layer: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{layer} ")))
            .unwrap_or_else(|| panic!("no {layer} in\n{text}"));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("conv_0"),
        [
            "conv_0",
            "InputConvolutional",
            "49x10x1",
            "25x5x64",
            "5x5",
            "2x2",
            "same",
            "none",
            "8",
            "4",
            "1600",
            "1600"
        ]
    );
    assert_eq!(
        row("separable_4"),
        [
            "separable_4",
            "SeparableConvolutional",
            "25x5x64",
            "1x1x64",
            "3x3",
            "1x1",
            "same",
            "global avg",
            "4",
            "4",
            "4672",
            "2336"
        ]
    );
    assert_eq!(
        row("dense_5"),
        [
            "dense_5",
            "FullyConnected",
            "1x1x64",
            "1x1x33",
            "-",
            "-",
            "-",
            "none",
            "4",
            "-",
            "2112",
            "1056"
        ]
    );
    assert!(text.contains("Parameters (weights): 22400\n"), "{text}");
    assert!(
        text.contains("Weight memory: 12000 bytes (11.72 KiB)\n"),
        "{text}"
    );
}

#[test]
fn one_hwc_image_gives_an_output_without_batch_axis() {
    let dir = scratch("akida", "single");
    let dir = dir.path();
    for name in reference_sets() {
        let images = array(&name, "input_uint8");
        let forward = array(&name, "akida_forward");
        let per_in: usize = images.shape[1..].iter().product();
        let per_out: usize = forward.shape[1..].iter().product();
        let last = images.shape[0] - 1;
        let image = Tensor {
            shape: images.shape[1..].to_vec(),
            data: TensorData::U8(images.as_u8().unwrap()[last * per_in..][..per_in].to_vec()),
        };
        let input = dir.join("image.npy");
        write_npy(&input, &image).unwrap();
        let got = run_ok(&model_path(&name), &input, &dir.join("out.npy"), &[]);
        assert_eq!(got.shape, forward.shape[1..], "{name}");
        assert_eq!(
            got.as_i32().unwrap(),
            &forward.as_i32().unwrap()[last * per_out..][..per_out],
            "{name}"
        );
    }
}

/// A model whose last layer outputs levels: `run` writes uint8 levels of
/// the model output's shape, `run --predict` is refused.
#[test]
fn a_last_layer_with_activation_gives_levels_and_refuses_predict() {
    let dir = scratch("akida", "levels");
    let dir = dir.path();
    let name = &reference_sets()[0];
    let mut model = formats::load(model_path(name)).unwrap().into_model();
    let last = model.layers.last_mut().unwrap();
    last.params.activation = true;
    let (bits, layer) = (last.params.act_bits, last.name.clone());
    let model = model.validate().unwrap();
    let levels_model = dir.join("levels.fbz");
    formats::save(&model, &levels_model).unwrap();
    let images = array(name, "input_uint8");
    let input = dir.join("in.npy");
    write_npy(&input, &images).unwrap();
    let out = dir.join("out.npy");
    let got = run_ok(&levels_model, &input, &out, &[]);
    let forward = array(name, "akida_forward");
    assert_eq!(got.shape, forward.shape);
    let max = (1u8 << bits) - 1;
    assert!(got.as_u8().expect("uint8").iter().all(|&v| v <= max));
    std::fs::remove_file(&out).unwrap();

    run(&levels_model, &input, &out)
        .arg("--predict")
        .assert()
        .code(2)
        .stderr(
            contains(levels_model.display().to_string())
                .and(contains(format!("`{layer}` outputs {bits}-bit levels"))),
        );
    assert!(!out.exists());
    assert!(summary(&levels_model).contains(&format!("(uint8 levels, {bits} bits)")));
}

#[test]
fn errors_exit_2_name_the_file_and_write_nothing() {
    let dir = scratch("akida", "errors");
    let dir = dir.path();
    let name = "ds_cnn_kws_iq8_wq4_aq4";
    let sets = reference_sets();
    let name = if sets.iter().any(|n| n == name) {
        name
    } else {
        &sets[0]
    };
    let model = model_path(name);
    let images = array(name, "input_uint8");
    let good = dir.join("good.npy");
    write_npy(&good, &images).unwrap();

    // An image with its rows and cols swapped.
    let mut swapped = images.clone();
    swapped.shape.swap(1, 2);
    let wrong_shape = dir.join("wrong_shape.npy");
    write_npy(&wrong_shape, &swapped).unwrap();
    let floats = dir.join("floats.npy");
    let values = images.as_u8().unwrap().iter().map(|&v| v as f32).collect();
    write_npy(
        &floats,
        &Tensor {
            shape: images.shape.clone(),
            data: TensorData::F32(values),
        },
    )
    .unwrap();
    let bytes = std::fs::read(&model).unwrap();
    let truncated = dir.join("truncated.fbz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let akd = dir.join("model.akd");
    formats::save(&formats::load(&model).unwrap(), &akd).unwrap();
    let akd_bytes = std::fs::read(&akd).unwrap();
    let truncated_akd = dir.join("truncated.akd");
    std::fs::write(&truncated_akd, &akd_bytes[..akd_bytes.len() - 7]).unwrap();
    let not_npy = dir.join("not_npy.npy");
    std::fs::write(&not_npy, b"plain text").unwrap();
    let missing = dir.join("missing.npy");
    let missing_model = dir.join("missing.fbz");
    let onnx = dir.join("model.onnx");
    std::fs::write(&onnx, &bytes).unwrap();
    let m_onnx = dir.join("m.onnx");
    let before = files_in(dir);

    let out = dir.join("out.npy");
    let run = |m: &Path, i: &Path| -> Vec<PathBuf> {
        ["run", "-m"]
            .iter()
            .map(PathBuf::from)
            .chain([m.to_owned(), "-i".into(), i.to_owned(), "-o".into()])
            .chain([out.clone()])
            .collect()
    };
    let cases: Vec<(Vec<PathBuf>, &Path, &str)> = vec![
        (run(&model, &wrong_shape), &wrong_shape, "input shape is"),
        (run(&model, &floats), &floats, "input dtype is <f4"),
        (run(&model, &missing), &missing, "No such file"),
        (run(&model, &not_npy), &not_npy, ""),
        (run(&missing_model, &good), &missing_model, "No such file"),
        (run(&truncated, &good), &truncated, ""),
        (run(&truncated_akd, &good), &truncated_akd, ""),
        (run(&onnx, &good), &onnx, "unknown model file extension"),
        (
            vec!["summary".into(), "-m".into(), truncated.clone()],
            &truncated,
            "",
        ),
        (
            vec!["convert-format".into(), truncated.clone(), out.clone()],
            &out,
            "unknown model file extension",
        ),
        (
            vec![
                "convert-format".into(),
                truncated.clone(),
                dir.join("t.akd"),
            ],
            &truncated,
            "",
        ),
        (
            vec!["convert-format".into(), model.clone(), m_onnx.clone()],
            &m_onnx,
            "unknown model file extension",
        ),
    ];
    for (args, culprit, text) in cases {
        akida().args(&args).assert().code(2).stdout("").stderr(
            starts_with("error: ")
                .and(contains(culprit.display().to_string()))
                .and(contains(text)),
        );
        assert_eq!(files_in(dir), before, "{args:?} wrote a file");
    }
}

/// `--simd` names only what this CPU runs; `--layers` prints the per-layer
/// table and the single-image latency.
#[test]
fn run_simd_names_and_layer_profile() {
    let name = &reference_sets()[0];
    let dir = scratch("akida", "simd");
    let input = dir.path().join("in.npy");
    write_npy(&input, &array(name, "input_uint8")).unwrap();
    let out = dir.path().join("out.npy");
    run(&model_path(name), &input, &out)
        .args(["--simd", "no-such-set"])
        .assert()
        .failure()
        .stderr(contains(
            "--simd no-such-set: not available on this CPU (available: portable",
        ));
    assert!(!out.exists());
    run(&model_path(name), &input, &out)
        .args(["--layers", "--no-byte-product"])
        .assert()
        .success()
        .stdout(
            contains("byte product off")
                .and(contains(
                    "latency per image (one at a time, one thread): p50 ",
                ))
                .and(contains("fast-kernel layers: ")),
        );
}
