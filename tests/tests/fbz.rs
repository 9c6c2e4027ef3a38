//! BrainChip's `.fbz` model files: every reference `NAME.fbz` (written by the
//! engine) reads as the model built from `NAME.npz` and runs like the
//! engine; what we write is what the engine writes, and reads back
//! identical; broken files give typed errors, never panics (deterministic
//! cases and a fuzz of thousands of random and mutated files).
//!
//! With `AKIDA_FBZ_OUT=DIR`, `write_our_fbz_files_when_asked` writes our
//! `.fbz` of every reference set into DIR (for `scripts/check_fbz_with_engine.py`).
//! `the_engine_runs_our_fbz_files` runs that script when the Python engine is
//! importable (`AKIDA_PYTHON`, default `python3`), and says it skipped otherwise.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use akida_core::inference::{forward, rescale_output, LayerOutput};
use akida_core::Backend;
use akida_host::formats::akd::ConvertedModel;
use akida_host::formats::fbz::params::{EngineParams, ParamsError};
use akida_host::formats::fbz::{
    self, from_fbz_bytes, snappy, to_fbz_bytes, FbzError, FbzLayer, FbzModel, FbzTensor, LayerError,
};
use akida_host::formats::npy::{Tensor, TensorData};
use akida_tests::{
    assert_all_equal, reference_dir, reference_sets, scratch_dir, Buffers, ReferenceSet,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The reference sets, opened.
fn sets() -> Vec<ReferenceSet> {
    let (dir, names) = reference_sets();
    names.iter().map(|n| ReferenceSet::open(&dir, n)).collect()
}

fn engine_fbz(set: &ReferenceSet) -> Vec<u8> {
    let path = set.dir.join(format!("{}.fbz", set.name));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The numpy bytes of a tensor (C order, little-endian).
fn numpy_bytes(t: &Tensor) -> Vec<u8> {
    match &t.data {
        TensorData::U8(v) => v.clone(),
        TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// act_steps compared bit for bit (`==` on f32 would let -0.0 equal 0.0).
fn act_step_bits(m: &ConvertedModel) -> Vec<Vec<u32>> {
    m.layers()
        .map(|l| l.layer.act_step.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// Runs `model` with both kernels on every input of the set and compares the
/// final potentials and the rescaled outputs with the engine's
/// `akida_forward` and `akida_predict`. Returns the number of elements
/// compared.
fn run_like_the_engine(set: &mut ReferenceSet, model: &ConvertedModel) -> usize {
    let inputs = set.array("input_uint8");
    let want_forward = set.array("akida_forward");
    let want_predict = set.array("akida_predict");
    let images = inputs.shape[0];
    let image_len = inputs.len() / images;
    let out_len = want_forward.len() / images;
    let mut buffers = Buffers::for_model(model);
    let mut compared = 0;
    for (kernel, n) in [Backend::Reference, Backend::Event]
        .into_iter()
        .flat_map(|k| (0..images).map(move |n| (k, n)))
    {
        let image = &inputs.as_u8().unwrap()[n * image_len..(n + 1) * image_len];
        let mut ws = buffers.workspace();
        let out = forward(model, image, &mut ws, &kernel, |_, _| {}).unwrap();
        let LayerOutput::Potentials(p) = out else {
            panic!("{}: the reference sets end without activation", set.name);
        };
        let range = n * out_len..(n + 1) * out_len;
        let what = format!("{} {kernel:?} image {n} akida_forward", set.name);
        compared += assert_all_equal(&what, p, &want_forward.as_i32().unwrap()[range.clone()]);
        let mut predict = vec![0f32; p.len()];
        rescale_output(&model.last(), p, &mut predict);
        let got: Vec<u32> = predict.iter().map(|x| x.to_bits()).collect();
        let want: Vec<u32> = want_predict.as_f32().unwrap()[range]
            .iter()
            .map(|x| x.to_bits())
            .collect();
        let what = format!("{} {kernel:?} image {n} akida_predict", set.name);
        compared += assert_all_equal(&what, &got, &want);
    }
    compared
}

/// The layer params of the set's JSON plus `layer_type`, sorted by key.
fn json_params(set: &ReferenceSet) -> Vec<Vec<(String, i32)>> {
    set.layers()
        .into_iter()
        .map(|l| {
            let kind = akida_host::formats::fbz::params::kind_of_name(&l.kind).unwrap();
            let mut p: EngineParams = l.params.clone();
            p.insert(
                "layer_type".into(),
                akida_host::formats::fbz::params::layer_type_code(kind),
            );
            p.into_iter().collect()
        })
        .collect()
}

#[test]
fn every_reference_fbz_reads_as_the_npz_model_and_runs_like_the_engine() {
    let mut compared = 0;
    let mut sets = sets();
    for set in &mut sets {
        let name = set.name.clone();
        let doc = FbzModel::parse(&engine_fbz(set)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let model = doc.to_model().unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = set.akida_model();
        assert_eq!(model, want, "{name}: layers differ");
        assert_eq!(act_step_bits(&model), act_step_bits(&want), "{name}");

        // The params and variables of the file, as the engine stored them.
        assert_eq!(doc.version, fbz::VERSION);
        let layers = set.layers();
        for ((l, params), r) in doc.layers.iter().zip(json_params(set)).zip(&layers) {
            assert_eq!(l.name, r.name);
            assert_eq!(l.params, params, "{name} {}: params", l.name);
            let names: Vec<&str> = l.variables.iter().map(|t| t.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{name} {}: variables sorted by name", l.name);
            for t in &l.variables {
                let npz = set.array(&format!("{}/{}", r.prefix, t.name));
                let shape: Vec<u32> = npz.shape.iter().rev().map(|&d| d as u32).collect();
                assert_eq!(t.shape, shape, "{name} {} {}: shape", l.name, t.name);
                assert_eq!(
                    t.data,
                    numpy_bytes(&npz),
                    "{name} {} {}: bytes",
                    l.name,
                    t.name
                );
            }
        }
        compared += run_like_the_engine(set, &model);
    }
    println!(
        "{} reference .fbz files read as their npz models; {compared} output elements equal the engine's",
        sets.len()
    );
}

#[test]
fn what_we_write_is_what_the_engine_writes_and_reads_back_identical() {
    let mut sets = sets();
    for set in &mut sets {
        let name = set.name.clone();
        let model = set.akida_model();
        let ours = FbzModel::from_model(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let engine = FbzModel::parse(&engine_fbz(set)).unwrap();
        assert_eq!(ours, engine, "{name}: our tables differ from the engine's");

        let bytes = to_fbz_bytes(&model).unwrap();
        let back = from_fbz_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, model, "{name}: round trip");
        assert_eq!(act_step_bits(&back), act_step_bits(&model), "{name}");

        // With the engine's zero padding (up to Snappy's maximum length) too.
        let mut padded = bytes.clone();
        padded.resize(32 + bytes.len() * 7 / 6 + 64, 0);
        assert_eq!(from_fbz_bytes(&padded).unwrap(), model, "{name}: padded");
    }
    println!(
        "{} models written as .fbz: tables equal the engine's, read back identical",
        sets.len()
    );
}

#[test]
fn write_our_fbz_files_when_asked() {
    let Some(dir) = std::env::var_os("AKIDA_FBZ_OUT") else {
        println!("AKIDA_FBZ_OUT is not set: no .fbz written");
        return;
    };
    let written = write_our_fbz_files(Path::new(&dir));
    println!(
        "wrote {written} .fbz files into {}",
        Path::new(&dir).display()
    );
}

/// Writes our `.fbz` of every reference set into `dir` (through
/// `formats::save`, as the tools do); returns how many.
fn write_our_fbz_files(dir: &Path) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let mut sets = sets();
    for set in &mut sets {
        let path = dir.join(format!("{}.fbz", set.name));
        akida_host::formats::save(&set.akida_model(), &path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(akida_host::formats::load(&path).unwrap(), set.akida_model());
    }
    sets.len()
}

#[test]
fn the_engine_runs_our_fbz_files() {
    let python = std::env::var("AKIDA_PYTHON").unwrap_or_else(|_| "python3".into());
    let importable = Command::new(&python)
        .args(["-c", "import akida"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        println!(
            "skipped: `{python} -c \"import akida\"` fails; install akida==2.19.3 or set \
             AKIDA_PYTHON to run scripts/check_fbz_with_engine.py from this test"
        );
        return;
    }
    let dir = scratch_dir("fbz-engine");
    write_our_fbz_files(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check_fbz_with_engine.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg("--fbz-dir")
        .arg(dir.path())
        .arg("--reference-dir")
        .arg(reference_dir())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    drop(dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the engine check failed:\n{text}");
}

// ---------------------------------------------------------------------------
// Broken files: deterministic cases.

/// The engine's file of the smallest separable set, parsed.
fn sample() -> (ConvertedModel, FbzModel) {
    let dir = reference_dir();
    let mut set = ReferenceSet::open(&dir, "sepconv_gap_w4a4");
    let doc = FbzModel::parse(&engine_fbz(&set)).unwrap();
    (set.akida_model(), doc)
}

/// Reads a document written out as file bytes.
fn read_doc(doc: &FbzModel) -> Result<ConvertedModel, FbzError> {
    from_fbz_bytes(&doc.to_bytes().unwrap())
}

fn layer_error(r: Result<ConvertedModel, FbzError>) -> (usize, LayerError) {
    match r {
        Err(FbzError::Layer { index, source, .. }) => (index, source),
        other => panic!("expected a layer error, got {other:?}"),
    }
}

fn tensor<'a>(l: &'a mut FbzLayer, name: &str) -> &'a mut FbzTensor {
    l.variables.iter_mut().find(|t| t.name == name).unwrap()
}

fn set_param(l: &mut FbzLayer, key: &str, value: i32) {
    l.params.iter_mut().find(|(k, _)| k == key).unwrap().1 = value;
}

#[test]
fn inconsistent_files_give_typed_errors() {
    let (model, doc) = sample();
    assert_eq!(read_doc(&doc).unwrap(), model);
    let edit = |f: &dyn Fn(&mut FbzModel)| {
        let mut d = doc.clone();
        f(&mut d);
        read_doc(&d)
    };

    // Weights whose shape does not match the params (filters 16 -> 15).
    let e = edit(&|d| {
        let w = tensor(&mut d.layers[1], "weights_pw");
        w.shape[0] = 15;
        w.data.truncate(8 * 15);
    });
    // (Shapes follow from the params, so the layer reader refuses it.)
    match e {
        Err(FbzError::Layer {
            index: 1, source, ..
        }) => {
            assert!(
                source.to_string().contains("weights_pw has shape"),
                "{source}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A weight value out of the 4-bit range.
    let e = edit(&|d| tensor(&mut d.layers[1], "weights").data[5] = 9);
    assert_eq!(
        layer_error(e),
        (
            1,
            LayerError::WeightValue {
                variable: "weights",
                value: 9,
                bits: 4
            }
        )
    );
    // A missing variable.
    let e = edit(&|d| d.layers[2].variables.retain(|t| t.name != "act_step"));
    assert_eq!(layer_error(e), (2, LayerError::MissingVariable("act_step")));
    let e = edit(&|d| d.layers[1].variables.retain(|t| t.name != "weights_pw"));
    assert!(matches!(e, Err(FbzError::Model(_))), "{e:?}");
    // An unknown param key, a missing one, a repeated one.
    let e = edit(&|d| d.layers[0].params.push(("foo".into(), 1)));
    assert_eq!(
        layer_error(e),
        (0, LayerError::Params(ParamsError::Unknown("foo".into())))
    );
    let e = edit(&|d| d.layers[1].params.retain(|(k, _)| k != "pooling_stride_y"));
    assert_eq!(
        layer_error(e),
        (
            1,
            LayerError::Params(ParamsError::Missing("pooling_stride_y"))
        )
    );
    let e = edit(&|d| d.layers[0].params.retain(|(k, _)| k != "pooling_width"));
    assert_eq!(
        layer_error(e),
        (0, LayerError::MissingParam("pooling_width".into()))
    );
    let e = edit(&|d| d.layers[0].params.push(("filters".into(), 8)));
    assert_eq!(
        layer_error(e),
        (0, LayerError::DuplicateParam("filters".into()))
    );
    // A value our geometry would not write back (pooling size without pooling).
    let e = edit(&|d| set_param(&mut d.layers[0], "pooling_width", 2));
    assert_eq!(
        layer_error(e),
        (
            0,
            LayerError::ParamValue {
                key: "pooling_width".into(),
                found: 2,
                expected: -1
            }
        )
    );
    // Wrong dtype codes.
    let e = edit(&|d| tensor(&mut d.layers[1], "weights").dtype = 3);
    assert_eq!(
        layer_error(e),
        (
            1,
            LayerError::Dtype {
                variable: "weights",
                expected: 7,
                found: 3
            }
        )
    );
    let e = edit(&|d| tensor(&mut d.layers[0], "threshold").dtype = 1);
    assert_eq!(
        layer_error(e),
        (
            0,
            LayerError::Dtype {
                variable: "threshold",
                expected: 0,
                found: 1
            }
        )
    );
    // Data that does not fill the shape; a 2-D threshold.
    let e = edit(&|d| {
        tensor(&mut d.layers[2], "threshold").data.pop();
    });
    assert!(matches!(
        layer_error(e),
        (
            2,
            LayerError::DataLength {
                variable: "threshold",
                ..
            }
        )
    ));
    let e = edit(&|d| tensor(&mut d.layers[2], "threshold").shape = vec![5, 2]);
    assert_eq!(
        layer_error(e),
        (
            2,
            LayerError::Rank {
                variable: "threshold",
                expected: 1,
                found: 2
            }
        )
    );
    // Unknown and repeated variables.
    let e = edit(&|d| tensor(&mut d.layers[0], "act_step").name = "bias".into());
    assert_eq!(
        layer_error(e),
        (0, LayerError::UnknownVariable("bias".into()))
    );
    let e = edit(&|d| {
        let t = tensor(&mut d.layers[0], "act_step").clone();
        d.layers[0].variables.push(t);
    });
    assert_eq!(
        layer_error(e),
        (0, LayerError::DuplicateVariable("act_step".into()))
    );
    // An act_step the engine refuses (below 1/16).
    let e = edit(&|d| {
        tensor(&mut d.layers[0], "act_step").data[..4].copy_from_slice(&0.01f32.to_le_bytes())
    });
    assert!(matches!(e, Err(FbzError::Model(_))), "{e:?}");
    // Inbound layers that do not make a chain.
    let e = edit(&|d| d.layers[2].inbounds = vec!["conv_0".into()]);
    assert!(matches!(layer_error(e), (2, LayerError::Inbound { .. })));
    let e = edit(&|d| d.layers[0].inbounds = vec!["sep_2".into()]);
    assert!(matches!(layer_error(e), (0, LayerError::Inbound { .. })));
    // Unknown layer type; a first layer that is not an input convolution.
    let e = edit(&|d| set_param(&mut d.layers[2], "layer_type", 9));
    assert_eq!(layer_error(e), (2, LayerError::LayerType(9)));
    let e = edit(&|d| {
        d.layers.remove(0);
        d.layers[0].inbounds.clear();
    });
    assert_eq!(
        layer_error(e),
        (0, LayerError::Params(ParamsError::NoInput))
    );
    // Versions.
    for version in ["", "3.0.0", "garbage"] {
        let e = edit(&|d| d.version = version.into());
        assert!(
            matches!(e, Err(FbzError::Version(ref v)) if v == version),
            "{e:?}"
        );
    }
    let e = edit(&|d| d.layers.clear());
    assert!(matches!(e, Err(FbzError::Model(_))), "{e:?}");
}

/// cnn2snn's models (the fixtures of `tests/data/cnn2snn/`, InputData and
/// 5-bit input weights among them): read, they write back the engine's
/// tables exactly (InputData first, with its params and no variable, the
/// next layer fed by it; 5-bit weights as int8).
#[test]
fn cnn2snn_fixtures_read_and_write_like_the_engine() {
    let (mut seen, mut input_data) = (0, 0);
    for f in akida_tests::fixtures::fixtures() {
        if f.refused().is_some() {
            continue;
        }
        let bytes = std::fs::read(f.dir.join("engine.fbz")).unwrap();
        let engine = FbzModel::parse(&bytes).unwrap();
        let model = from_fbz_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        if let Some(d) = model.input_data() {
            assert_eq!(engine.layers[0].name, d.name);
            assert_eq!(engine.layers[1].inbounds, vec![d.name.to_owned()]);
            input_data += 1;
        }
        let ours = FbzModel::from_model(&model).unwrap();
        assert_eq!(
            ours, engine,
            "{}: our tables differ from the engine's",
            f.name
        );
        assert_eq!(
            from_fbz_bytes(&to_fbz_bytes(&model).unwrap()).unwrap(),
            model
        );
        seen += 1;
    }
    assert!(
        seen >= 5 && input_data >= 2,
        "{seen} fixtures, {input_data} with InputData"
    );
}

/// The engine's rules on an InputData layer, each a typed error: first
/// layer only, exactly its params, unsigned, 1 to 4 bits, no variable, and
/// never in front of an input convolution.
#[test]
fn input_data_layers_follow_the_engine_rules() {
    let (_, doc) = sample();
    let input_data = |params: &[(&str, i32)]| FbzLayer {
        name: "input".into(),
        params: params.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
        variables: vec![],
        inbounds: vec![],
    };
    let good = [
        ("input_bits", 4),
        ("input_channels", 3),
        ("input_height", 12),
        ("input_signed", 0),
        ("input_width", 12),
        ("layer_type", 1),
    ];
    type Params = Vec<(&'static str, i32)>;
    let with = |edit: &dyn Fn(&mut Params)| {
        let mut params = good.to_vec();
        edit(&mut params);
        let mut d = doc.clone();
        d.layers.insert(0, input_data(&params));
        d.layers[1].inbounds = vec!["input".into()];
        read_doc(&d)
    };
    // In front of the sample's InputConvolutional layer: the model is refused.
    let e = with(&|_| {}).unwrap_err();
    let message = akida_host::cli::report(&e);
    assert!(
        message.contains("InputConvolutional layer cannot follow an InputData layer"),
        "{message}"
    );
    assert_eq!(
        layer_error(with(&|p| p[0].1 = 8)),
        (
            0,
            LayerError::Params(ParamsError::Value {
                key: "input_bits",
                value: 8
            })
        )
    );
    assert_eq!(
        layer_error(with(&|p| p[3].1 = 1)),
        (
            0,
            LayerError::Params(ParamsError::Value {
                key: "input_signed",
                value: 1
            })
        )
    );
    assert_eq!(
        layer_error(with(&|p| {
            p.remove(3);
        })),
        (0, LayerError::MissingParam("input_signed".into()))
    );
    assert_eq!(
        layer_error(with(&|p| p.push(("filters", 3)))),
        (
            0,
            LayerError::Params(ParamsError::Unknown("filters".into()))
        )
    );
    let mut d = doc.clone();
    d.layers.insert(0, input_data(&good));
    d.layers[0].variables = doc.layers[0].variables.clone();
    d.layers[1].inbounds = vec!["input".into()];
    assert!(matches!(
        layer_error(read_doc(&d)),
        (0, LayerError::UnknownVariable(_))
    ));
    let mut d = doc.clone();
    d.layers.insert(1, input_data(&good));
    assert_eq!(
        layer_error(read_doc(&d)),
        (1, LayerError::InputDataNotFirst)
    );
}

#[test]
fn truncated_and_bit_flipped_files_give_typed_errors() {
    let (model, doc) = sample();
    let file = doc.to_bytes().unwrap();
    let buffer = doc.to_flatbuffer();
    let mut errors = 0usize;
    let mut read_ok = 0usize;
    let mut check = |bytes: &[u8]| match from_fbz_bytes(bytes) {
        Ok(m) => {
            // A flip the engine also cannot see (e.g. in a float's mantissa
            // or in unused padding): still a valid model.
            assert!(akida_host::formats::akd::to_bytes(&m).is_ok());
            read_ok += 1;
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            errors += 1;
        }
    };
    // Every truncation of the file and of its FlatBuffers buffer.
    for n in 0..file.len() {
        check(&file[..n]);
    }
    for n in 0..buffer.len() {
        check(&snappy::compress(&buffer[..n]).unwrap());
    }
    // Every bit of the file and of the buffer flipped in turn.
    for i in 0..file.len() * 8 {
        let mut f = file.clone();
        f[i / 8] ^= 1 << (i % 8);
        check(&f);
    }
    for i in 0..buffer.len() * 8 {
        let mut b = buffer.clone();
        b[i / 8] ^= 1 << (i % 8);
        check(&snappy::compress(&b).unwrap());
    }
    // Truncations only fail: a prefix of a file is never a model.
    for n in [0, 1, file.len() / 2, file.len() - 1] {
        assert!(from_fbz_bytes(&file[..n]).is_err());
    }
    assert_eq!(from_fbz_bytes(&file).unwrap(), model);
    println!(
        "{} broken files: {errors} typed errors, {read_ok} still valid models",
        errors + read_ok
    );
    assert!(errors > read_ok);
}

// ---------------------------------------------------------------------------
// Fuzz: random bytes and random mutations of every reference and every one of
// our own files; no panic, and every success is a valid model that writes
// and reads back identical.

/// Inputs per fuzz test.
const CASES: u32 = 20_000;

/// Every reference `.fbz` and our `.fbz` of every set.
fn corpus() -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for mut set in sets() {
        files.push(engine_fbz(&set));
        files.push(to_fbz_bytes(&set.akida_model()).unwrap());
    }
    files
}

/// Which stage decided about an input (for the fuzz report).
fn stage(r: &Result<ConvertedModel, FbzError>) -> &'static str {
    match r {
        Ok(_) => "valid model",
        Err(FbzError::Snappy(_) | FbzError::Truncated { .. }) => "Snappy",
        Err(FbzError::FlatBuffers(_)) => "FlatBuffers verifier",
        Err(FbzError::Layer { .. }) => "engine layer rules",
        Err(FbzError::Model(_)) => "model validation",
        Err(_) => "model table",
    }
}

/// Reads `bytes`: a typed error, or a valid model that writes and reads back
/// identical. Returns the stage that decided.
fn check_never_panics(bytes: &[u8]) -> Result<&'static str, TestCaseError> {
    let result = from_fbz_bytes(bytes);
    match &result {
        Ok(model) => {
            prop_assert!(akida_host::formats::akd::to_bytes(model).is_ok());
            let again = from_fbz_bytes(&to_fbz_bytes(model).unwrap()).unwrap();
            prop_assert_eq!(&again, model);
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(stage(&result))
}

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(prop::sample::Index),
    FlipBit(prop::sample::Index, u8),
    Overwrite(prop::sample::Index, u8),
}

/// A truncation, a bit flip or a byte overwrite; truncations are rarer, as
/// any of them ends most inputs at the first check.
fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        4 => (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Overwrite(i, v)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, edits: &[Mutation]) {
    for edit in edits {
        if bytes.is_empty() {
            return;
        }
        match edit {
            Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
            Mutation::FlipBit(at, bit) => {
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::Overwrite(at, value) => {
                let i = at.index(bytes.len());
                bytes[i] = *value;
            }
        }
    }
}

/// Runs `cases` inputs of `strategy` through `test`; prints and returns how
/// many ran, by the stage that decided.
fn fuzz<S: Strategy>(
    what: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<&'static str, TestCaseError>,
) -> usize {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let stages = RefCell::new(BTreeMap::<&str, usize>::new());
    runner
        .run(&strategy, |v| {
            let stage = test(v)?;
            *stages.borrow_mut().entry(stage).or_default() += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stages = stages.into_inner();
    let ran = stages.values().sum();
    println!("fbz fuzz, {what}: {ran} inputs ran, no panic; decided by {stages:?}");
    ran
}

#[test]
fn fuzz_random_bytes() {
    // Raw, and compressed so that the FlatBuffers verifier sees them too.
    let strategy = (prop::collection::vec(any::<u8>(), 0..2048), any::<bool>());
    let ran = fuzz("random bytes", CASES, strategy, |(bytes, compress)| {
        let bytes = if compress {
            snappy::compress(&bytes).unwrap()
        } else {
            bytes
        };
        check_never_panics(&bytes)
    });
    assert!(ran >= CASES as usize);
}

#[test]
fn fuzz_mutated_files() {
    let files = corpus();
    let strategy = (
        any::<prop::sample::Index>(),
        prop::collection::vec(mutation(), 1..6),
    );
    let ran = fuzz("mutated .fbz files", CASES, strategy, |(which, edits)| {
        let mut bytes = which.get(&files).clone();
        mutate(&mut bytes, &edits);
        check_never_panics(&bytes)
    });
    assert!(ran >= CASES as usize);
}

#[test]
fn fuzz_mutated_flatbuffers() {
    // Mutations of the decompressed tables, recompressed: every input gets
    // past Snappy to the verifier, the engine rules and the validation.
    let buffers: Vec<Vec<u8>> = corpus()
        .iter()
        .map(|f| snappy::decompress(f).unwrap())
        .collect();
    let strategy = (
        any::<prop::sample::Index>(),
        prop::collection::vec(mutation(), 1..6),
    );
    let ran = fuzz(
        "mutated FlatBuffers tables",
        CASES,
        strategy,
        |(which, edits)| {
            let mut buffer = which.get(&buffers).clone();
            mutate(&mut buffer, &edits);
            check_never_panics(&snappy::compress(&buffer).unwrap())
        },
    );
    assert!(ran >= CASES as usize);
}
