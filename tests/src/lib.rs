//! Shared helpers of the cross-crate tests: finding and loading the reference
//! vector sets made with BrainChip's cnn2snn and akida engine, and scratch
//! folders.
//!
//! A set `NAME` is `NAME.json` (layer params, bits) and `NAME.npz` (inputs,
//! variables as the engine stores them, every layer's output). The directory
//! is `tests/data/reference/vectors` (a copy of `../shared/reference/vectors`)
//! unless `AKIDA_REFERENCE_DIR` names another.

pub mod fixtures;
pub mod fuzz;
pub mod keras;
pub mod random;

use std::path::{Path, PathBuf};

use akida_host::formats::akd::{self, ConvertedLayer, ConvertedModel};
use akida_host::formats::fbz::params::{self, EngineParams};
use akida_host::formats::npy::{Npz, Tensor};
use serde_json::Value;

/// A fresh scratch folder for one test, named after `test`; removed when
/// dropped (also when the test panics).
pub fn scratch_dir(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("akida-tests-{test}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("scratch folder for {test}: {e}"))
}

/// The repository's copy of the fixtures.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Where the reference vector sets are read from.
pub fn reference_dir() -> PathBuf {
    match std::env::var_os("AKIDA_REFERENCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => data_dir().join("reference").join("vectors"),
    }
}

/// Names of the vector sets in `dir` (every `NAME.json` with a `NAME.npz`).
pub fn set_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read reference directory {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".json")?.to_owned();
            dir.join(format!("{stem}.npz")).exists().then_some(stem)
        })
        .collect();
    names.sort();
    names
}

/// The reference directory and its set names; panics if there is no set (a
/// parity test that compares nothing must not pass).
pub fn reference_sets() -> (PathBuf, Vec<String>) {
    let dir = reference_dir();
    let names = set_names(&dir);
    assert!(
        !names.is_empty(),
        "no reference vector set in {}",
        dir.display()
    );
    (dir, names)
}

/// One reference vector set.
pub struct ReferenceSet {
    pub name: String,
    pub dir: PathBuf,
    pub json: Value,
    pub npz: Npz,
}

/// One akida layer of a set: its name and the npz prefix `akida/<i>_<name>`.
pub struct ReferenceLayer {
    pub name: String,
    pub kind: String,
    pub prefix: String,
    pub params: EngineParams,
}

impl ReferenceSet {
    pub fn open(dir: &Path, name: &str) -> ReferenceSet {
        let json_path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&json_path)
            .unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
        let npz = Npz::open(&dir.join(format!("{name}.npz"))).unwrap_or_else(|e| panic!("{e}"));
        ReferenceSet {
            name: name.to_owned(),
            dir: dir.to_owned(),
            json,
            npz,
        }
    }

    /// Reads an array that must be present.
    pub fn array(&mut self, key: &str) -> Tensor {
        self.npz.require(key).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The akida layers in order, with their npz prefixes (sorted numerically).
    pub fn layers(&self) -> Vec<ReferenceLayer> {
        let layers = self.json["akida_layers"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no akida_layers", self.name));
        let names = self.npz.names();
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let name = l["name"].as_str().expect("layer name").to_owned();
                let prefix = format!("akida/{i}_{name}");
                assert!(
                    names.iter().any(|n| n.starts_with(&format!("{prefix}/"))),
                    "{}: no arrays under {prefix}",
                    self.name
                );
                let params = l["params"]
                    .as_object()
                    .expect("params")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_i64().expect("integer param") as i32))
                    .collect();
                ReferenceLayer {
                    name,
                    kind: l["type"].as_str().expect("layer type").to_owned(),
                    prefix,
                    params,
                }
            })
            .collect()
    }

    /// Builds our model from the set's engine variables and layer params.
    pub fn akida_model(&mut self) -> ConvertedModel {
        let mut layers = Vec::new();
        let mut previous = None;
        for l in self.layers() {
            let kind = params::kind_of_name(&l.kind)
                .unwrap_or_else(|| panic!("{}: unknown layer type {}", self.name, l.kind));
            let g = params::from_params(kind, &l.params, previous, false)
                .unwrap_or_else(|e| panic!("{} {}: {e}", self.name, l.name));
            let (main_shape, pw_shape) = g.weight_shapes();
            let weights = self.int_weights(&format!("{}/weights", l.prefix), main_shape);
            let weights_pw = match pw_shape {
                Some(shape) => Some(self.int_weights(&format!("{}/weights_pw", l.prefix), shape)),
                None => None,
            };
            let threshold = self.array(&format!("{}/threshold", l.prefix));
            let act_step = self.array(&format!("{}/act_step", l.prefix));
            let layer = ConvertedLayer::new(
                l.name.clone(),
                g,
                &weights,
                weights_pw.as_deref(),
                threshold.as_i32().expect("threshold is int32"),
                act_step.as_f32().expect("act_step is float32"),
            )
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.name, l.name));
            previous = g.output();
            layers.push(layer);
        }
        akd::build(layers).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// The engine's int8 weights of `key`, which must have `shape`.
    fn int_weights(&mut self, key: &str, shape: [u32; 4]) -> Vec<i8> {
        let t = self.array(key);
        to_int_weights(&t, shape)
    }
}

/// An int8 npz tensor of engine weights, checked against the shape the
/// layer's params give.
pub fn to_int_weights(t: &Tensor, shape: [u32; 4]) -> Vec<i8> {
    let found: Vec<u32> = t.shape.iter().map(|&d| d as u32).collect();
    assert_eq!(found, shape, "weights shape");
    t.as_i8().expect("weights are int8").to_vec()
}

/// Compares two slices element for element; panics naming the first
/// difference. Returns the number of elements compared.
pub fn assert_all_equal<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &[T],
    want: &[T],
) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        let mismatches = got.iter().zip(want).filter(|(a, b)| a != b).count();
        panic!(
            "{what}: {mismatches} of {} elements differ; first at {i}: got {:?}, want {:?}",
            got.len(),
            got[i],
            want[i]
        );
    }
    got.len()
}

/// Owned buffers for `akida_core::inference::forward`, sized by a model
/// for every backend (the fast one included).
pub struct Buffers(akida_core::WorkspaceBuffers);

impl Buffers {
    pub fn for_model<B: AsRef<[u8]>, S: AsRef<str>>(
        model: &akida_core::ValidModel<B, S>,
    ) -> Buffers {
        Buffers(akida_core::WorkspaceBuffers::new(
            &model.workspace_sizes(true),
        ))
    }

    /// The workspace borrowing these buffers.
    pub fn workspace(&mut self) -> akida_core::Workspace<'_> {
        self.0.workspace()
    }
}

/// Outputs of a batch: uint8 levels or int32 potentials, images back to back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOutputs {
    Levels(Vec<u8>),
    Potentials(Vec<i32>),
}

impl BatchOutputs {
    fn push(&mut self, out: akida_core::LayerOutput) {
        match (self, out) {
            (BatchOutputs::Levels(v), akida_core::LayerOutput::Levels(l)) => v.extend_from_slice(l),
            (BatchOutputs::Potentials(v), akida_core::LayerOutput::Potentials(p)) => {
                v.extend_from_slice(p)
            }
            _ => panic!("a model changed its output kind"),
        }
    }

    fn empty(levels: bool) -> BatchOutputs {
        match levels {
            true => BatchOutputs::Levels(Vec::new()),
            false => BatchOutputs::Potentials(Vec::new()),
        }
    }

    /// Elements of the batch.
    pub fn len(&self) -> usize {
        match self {
            BatchOutputs::Levels(v) => v.len(),
            BatchOutputs::Potentials(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The model's outputs on images back to back, with the dense reference
/// kernel of `akida_core::forward`.
pub fn reference_outputs<B: AsRef<[u8]>, S: AsRef<str>>(
    model: &akida_core::ValidModel<B, S>,
    images: &[u8],
) -> BatchOutputs {
    let mut buffers = Buffers::for_model(model);
    let n = model.input().len();
    let mut out = BatchOutputs::empty(model.outputs_levels());
    for image in images.chunks_exact(n) {
        let mut ws = buffers.workspace();
        let o = akida_core::forward(
            model,
            image,
            &mut ws,
            &akida_core::Backend::Reference,
            |_, _| {},
        )
        .expect("reference forward runs");
        out.push(o);
    }
    out
}

/// The outputs of `.akd` bytes streamed by `akida_core::stream` (the
/// firmware's engine, with the M4 kernels' portable model on the host).
pub fn stream_outputs(akd_bytes: &[u8], images: &[u8]) -> BatchOutputs {
    let prepared = akida_core::stream::prepare(akd_bytes).expect("the model prepares");
    let model = prepared.model();
    let mut ws = vec![0u64; model.sizes().words()];
    let n = model.input().len();
    let mut out = BatchOutputs::empty(model.outputs_levels());
    for image in images.chunks_exact(n) {
        let o = akida_core::stream::forward_stream(&model, image, &mut ws, |_| {})
            .expect("stream forward runs");
        out.push(o);
    }
    out
}
