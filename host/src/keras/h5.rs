//! Keras HDF5 model files, in the tf.keras 2.x layout (what tf_keras and
//! cnn2snn write, see `tests/data/reference/zoo/LAYOUT.txt`):
//!
//! ```text
//! /                         @backend, @keras_version, @model_config (JSON)
//! /model_weights            @backend, @keras_version, @layer_names
//! /model_weights/<layer>    @weight_names  (e.g. "conv_0/kernel:0"; an empty
//!                                           float64 array when none)
//! /model_weights/<layer>/<weight name>     float32 dataset
//! ```
//!
//! String attributes may be variable-length ASCII or UTF-8, or fixed-length
//! (older h5py); all are accepted. Files are written atomically (temporary
//! file, then rename) so an interrupted save never damages the target.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use hdf5::types::{
    FixedAscii, FixedUnicode, FloatSize, TypeDescriptor, VarLenAscii, VarLenUnicode,
};
use hdf5::{Attribute, Group, Location};
use serde_json::Value;

use super::json::{model_config, parse_model_config, ConfigError};
use super::{GraphError, Model, Weight};
use crate::fsutil::save_with;

/// The Keras version written into files (the tf_keras the flow targets).
pub const KERAS_VERSION: &str = "2.19.0";
/// The backend written into files.
pub const BACKEND: &str = "tensorflow";

/// Longest fixed-length string attribute element accepted.
const MAX_FIXED_STRING: usize = 1024;

/// Why a Keras `.h5` file could not be read or written. Every variant names
/// the file.
#[derive(Debug, thiserror::Error)]
pub enum H5Error {
    #[error("{}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not an HDF5 file ({detail})", path.display())]
    NotHdf5 { path: PathBuf, detail: String },
    #[error("{}: no `model_config` attribute: not a Keras model file", path.display())]
    MissingModelConfig { path: PathBuf },
    #[error("{}: model_config is not valid JSON", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: model_config", path.display())]
    Config { path: PathBuf, source: ConfigError },
    #[error("{}: {location}: {message}", path.display())]
    Format {
        path: PathBuf,
        location: String,
        message: String,
    },
    #[error("{}: layer `{layer}`: weight dataset `{dataset}` is missing", path.display())]
    MissingWeight {
        path: PathBuf,
        layer: String,
        dataset: String,
    },
    #[error("{}", path.display())]
    Graph { path: PathBuf, source: GraphError },
    #[error("{}: HDF5 error while {action}", path.display())]
    Hdf5 {
        path: PathBuf,
        action: String,
        source: hdf5::Error,
    },
}

/// Reads a Keras model (graph and weights) from an `.h5` file.
pub fn read_model(path: &Path) -> Result<Model, H5Error> {
    let io_err = |source| H5Error::Io {
        path: path.to_owned(),
        source,
    };
    // Opening with std first gives plain messages for missing or unreadable files.
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(io_err(io::Error::other("is a directory")));
    }
    std::fs::File::open(path).map_err(io_err)?;
    let file = hdf5::File::open(path).map_err(|e| H5Error::NotHdf5 {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let reader = Reader { path };
    let mut model = reader.graph(&file)?;
    reader.weights(&file, &mut model)?;
    model.validate().map_err(|source| H5Error::Graph {
        path: path.to_owned(),
        source,
    })?;
    Ok(model)
}

/// Writes `model` to `path` atomically (temporary file in the same folder,
/// then rename). Nothing is left behind on error.
pub fn write_model(path: &Path, model: &Model) -> Result<(), H5Error> {
    model.validate().map_err(|source| H5Error::Graph {
        path: path.to_owned(),
        source,
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        let problem = if dir.exists() {
            "is not in a directory"
        } else {
            "the directory does not exist"
        };
        return Err(H5Error::Io {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, problem),
        });
    }
    let result = save_with(path, |tmp| -> Result<(), SaveError> {
        // Creating with std first gives plain messages for unwritable folders.
        std::fs::File::create(tmp)?;
        let writer = Writer { path };
        writer.file(tmp, model).map_err(SaveError::H5)
    });
    result.map_err(|e| match e {
        SaveError::Io(source) => H5Error::Io {
            path: path.to_owned(),
            source,
        },
        SaveError::H5(e) => e,
    })
}

/// Errors inside the atomic save (which needs `From<io::Error>`).
enum SaveError {
    Io(io::Error),
    H5(H5Error),
}

impl From<io::Error> for SaveError {
    fn from(e: io::Error) -> Self {
        SaveError::Io(e)
    }
}

// ---------------------------------------------------------------- reading

struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn format(&self, location: impl Into<String>, message: impl Into<String>) -> H5Error {
        H5Error::Format {
            path: self.path.to_owned(),
            location: location.into(),
            message: message.into(),
        }
    }

    /// The graph from the root `model_config` attribute.
    fn graph(&self, file: &hdf5::File) -> Result<Model, H5Error> {
        let attr = file
            .attr("model_config")
            .map_err(|_| H5Error::MissingModelConfig {
                path: self.path.to_owned(),
            })?;
        let text = read_strings(&attr)
            .map_err(|m| self.format("attribute model_config", m))?
            .into_iter()
            .next()
            .ok_or_else(|| self.format("attribute model_config", "is empty"))?;
        let value: Value = serde_json::from_str(&text).map_err(|source| H5Error::Json {
            path: self.path.to_owned(),
            source,
        })?;
        parse_model_config(&value).map_err(|source| H5Error::Config {
            path: self.path.to_owned(),
            source,
        })
    }

    /// Fills every layer's weights from `/model_weights`.
    fn weights(&self, file: &hdf5::File, model: &mut Model) -> Result<(), H5Error> {
        let group = match file.group("model_weights") {
            Ok(g) => g,
            Err(_) => return Err(self.format("/model_weights", "group is missing")),
        };
        let names = string_list_attr(&group, "layer_names")
            .map_err(|m| self.format("/model_weights attribute layer_names", m))?;
        let known: HashSet<&str> = model.layers.iter().map(|l| l.name.as_str()).collect();
        let mut stored = Vec::new();
        for name in &names {
            let weights = self.layer_weights(&group, name)?;
            if !known.contains(name.as_str()) {
                if !weights.is_empty() {
                    return Err(self.format(
                        format!("/model_weights/{name}"),
                        "holds weights of a layer that model_config does not define",
                    ));
                }
                continue;
            }
            stored.push((name.clone(), weights));
        }
        for (name, weights) in stored {
            if let Some(layer) = model.layer_mut(&name) {
                layer.weights = weights;
            }
        }
        Ok(())
    }

    /// The weights of one layer group, in `weight_names` order.
    fn layer_weights(&self, mw: &Group, layer: &str) -> Result<Vec<Weight>, H5Error> {
        let location = format!("/model_weights/{layer}");
        let group = mw
            .group(layer)
            .map_err(|_| self.format(&location, "group is missing (listed in layer_names)"))?;
        let weight_names = string_list_attr(&group, "weight_names")
            .map_err(|m| self.format(format!("{location} attribute weight_names"), m))?;
        weight_names
            .iter()
            .map(|wn| {
                let ds = group.dataset(wn).map_err(|_| H5Error::MissingWeight {
                    path: self.path.to_owned(),
                    layer: layer.to_owned(),
                    dataset: format!("{location}/{wn}"),
                })?;
                let values =
                    read_floats(&ds).map_err(|m| self.format(format!("{location}/{wn}"), m))?;
                Ok(Weight {
                    name: wn.clone(),
                    shape: ds.shape(),
                    values,
                })
            })
            .collect()
    }
}

/// A float dataset as float32 values (float64 is converted).
fn read_floats(ds: &hdf5::Dataset) -> Result<Vec<f32>, String> {
    let desc = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| e.to_string())?;
    match desc {
        TypeDescriptor::Float(FloatSize::U4) => ds.read_raw::<f32>().map_err(|e| e.to_string()),
        TypeDescriptor::Float(FloatSize::U8) => ds
            .read_raw::<f64>()
            .map(|v| v.into_iter().map(|x| x as f32).collect())
            .map_err(|e| e.to_string()),
        other => Err(format!("has type {other:?}, expected float32")),
    }
}

/// A string-list attribute, also when Keras split it into `name0`, `name1`...
/// because it outgrew the HDF5 object header.
fn string_list_attr(loc: &Location, name: &str) -> Result<Vec<String>, String> {
    if let Ok(attr) = loc.attr(name) {
        return read_strings(&attr);
    }
    let mut out = Vec::new();
    for i in 0.. {
        match loc.attr(&format!("{name}{i}")) {
            Ok(attr) => out.extend(read_strings(&attr)?),
            Err(_) if i == 0 => return Err("is missing".into()),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// The strings of a scalar or 1-D string attribute, whatever its string
/// type; an empty numeric array (how Keras stores "no weights") is an empty
/// list.
fn read_strings(attr: &Attribute) -> Result<Vec<String>, String> {
    let desc = attr
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| e.to_string())?;
    match desc {
        TypeDescriptor::VarLenAscii => strings_as::<VarLenAscii>(attr),
        TypeDescriptor::VarLenUnicode => strings_as::<VarLenUnicode>(attr),
        TypeDescriptor::FixedAscii(n) if n <= MAX_FIXED_STRING => {
            strings_as::<FixedAscii<MAX_FIXED_STRING>>(attr)
        }
        TypeDescriptor::FixedUnicode(n) if n <= MAX_FIXED_STRING => {
            strings_as::<FixedUnicode<MAX_FIXED_STRING>>(attr)
        }
        _ if attr.size() == 0 => Ok(Vec::new()),
        other => Err(format!("holds {other:?}, not strings")),
    }
}

/// The strings of a string attribute of type `T`.
fn strings_as<T: hdf5::H5Type + AsRef<str>>(attr: &Attribute) -> Result<Vec<String>, String> {
    Ok(attr
        .read_raw::<T>()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|s| s.as_ref().to_owned())
        .collect())
}

// ---------------------------------------------------------------- writing

struct Writer<'a> {
    /// The target, named in errors (the data goes to a temporary file).
    path: &'a Path,
}

impl Writer<'_> {
    fn hdf5(&self, action: impl Into<String>) -> impl FnOnce(hdf5::Error) -> H5Error + '_ {
        let action = action.into();
        move |source| H5Error::Hdf5 {
            path: self.path.to_owned(),
            action,
            source,
        }
    }

    fn file(&self, tmp: &Path, model: &Model) -> Result<(), H5Error> {
        let file = hdf5::File::create(tmp).map_err(self.hdf5("creating the file"))?;
        let config =
            serde_json::to_string(&model_config(model)).map_err(|source| H5Error::Json {
                path: self.path.to_owned(),
                source,
            })?;
        // tf_keras writes backend/keras_version as UTF-8 and the JSON as bytes.
        write_str(&file, "backend", BACKEND, true).map_err(self.hdf5("writing attributes"))?;
        write_str(&file, "keras_version", KERAS_VERSION, true)
            .map_err(self.hdf5("writing attributes"))?;
        write_str(&file, "model_config", &config, false)
            .map_err(self.hdf5("writing model_config"))?;
        let mw = file
            .create_group("model_weights")
            .map_err(self.hdf5("creating /model_weights"))?;
        self.weights(&mw, model)?;
        drop(mw);
        file.close().map_err(self.hdf5("closing the file"))
    }

    fn weights(&self, mw: &Group, model: &Model) -> Result<(), H5Error> {
        let at = |what: &str| self.hdf5(format!("writing /model_weights{what}"));
        write_str(mw, "backend", BACKEND, false).map_err(at(""))?;
        write_str(mw, "keras_version", KERAS_VERSION, false).map_err(at(""))?;
        let names: Vec<String> = model.layers.iter().map(|l| l.name.clone()).collect();
        write_str_list(mw, "layer_names", &names).map_err(at(""))?;
        for layer in &model.layers {
            let here = format!("/{}", layer.name);
            let group = ensure_group(mw, &layer.name).map_err(at(&here))?;
            let weight_names: Vec<String> = layer.weights.iter().map(|w| w.name.clone()).collect();
            write_str_list(&group, "weight_names", &weight_names).map_err(at(&here))?;
            for w in &layer.weights {
                write_dataset(&group, w).map_err(at(&format!("{here}/{}", w.name)))?;
            }
        }
        let top =
            ensure_group(mw, "top_level_model_weights").map_err(at("/top_level_model_weights"))?;
        write_str_list(&top, "weight_names", &[]).map_err(at("/top_level_model_weights"))
    }
}

/// Opens or creates the group at a `/`-separated path below `parent`
/// (layer names such as `conv_0/BN` nest).
fn ensure_group(parent: &Group, path: &str) -> hdf5::Result<Group> {
    let mut group = parent.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        group = if group.link_exists(part) {
            group.group(part)?
        } else {
            group.create_group(part)?
        };
    }
    Ok(group)
}

/// A float32 dataset at the weight's name (which contains `/` and `:0`).
fn write_dataset(layer_group: &Group, w: &Weight) -> hdf5::Result<()> {
    let (dir, leaf) = match w.name.rsplit_once('/') {
        Some((d, l)) => (d, l),
        None => ("", w.name.as_str()),
    };
    let group = ensure_group(layer_group, dir)?;
    let ds = group
        .new_dataset::<f32>()
        .shape(w.shape.clone())
        .create(leaf)?;
    ds.write_raw(&w.values)
}

/// A scalar variable-length string attribute, UTF-8 or ASCII typed
/// (non-ASCII text is always UTF-8).
fn write_str(loc: &Location, name: &str, value: &str, utf8: bool) -> hdf5::Result<()> {
    if utf8 || !value.is_ascii() {
        let v: VarLenUnicode = value
            .parse()
            .map_err(|e| hdf5::Error::from(format!("{e}")))?;
        loc.new_attr::<VarLenUnicode>()
            .shape(())
            .create(name)?
            .write_scalar(&v)
    } else {
        let v = VarLenAscii::from_ascii(value).map_err(|e| hdf5::Error::from(format!("{e}")))?;
        loc.new_attr::<VarLenAscii>()
            .shape(())
            .create(name)?
            .write_scalar(&v)
    }
}

/// A list-of-strings attribute as Keras writes it: variable-length ASCII
/// strings, or an empty float64 array for an empty list.
fn write_str_list(loc: &Location, name: &str, values: &[String]) -> hdf5::Result<()> {
    if values.is_empty() {
        loc.new_attr::<f64>().shape(0usize).create(name)?;
        return Ok(());
    }
    if values.iter().all(|v| v.is_ascii()) {
        let v: Vec<VarLenAscii> = values
            .iter()
            .map(|s| VarLenAscii::from_ascii(s).map_err(|e| hdf5::Error::from(format!("{e}"))))
            .collect::<hdf5::Result<_>>()?;
        loc.new_attr::<VarLenAscii>()
            .shape(v.len())
            .create(name)?
            .write_raw(&v)
    } else {
        let v: Vec<VarLenUnicode> = values
            .iter()
            .map(|s| s.parse().map_err(|e| hdf5::Error::from(format!("{e}"))))
            .collect::<hdf5::Result<_>>()?;
        loc.new_attr::<VarLenUnicode>()
            .shape(v.len())
            .create(name)?
            .write_raw(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keras::layers::{Conv2DConfig, LayerConfig};
    use crate::keras::GraphBuilder;

    /// A scratch folder and the path `name` in it (the folder goes when the
    /// first is dropped).
    fn temp(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = crate::test_support::scratch("h5");
        let path = dir.path().join(name);
        (dir, path)
    }

    fn small_model() -> Model {
        let mut b = GraphBuilder::new(3);
        let x = b.input(&[6, 6, 2], None).unwrap();
        let y = b
            .add(
                LayerConfig::Conv2D(Conv2DConfig::new(3, [3, 3])),
                Some("conv_0/x"),
                &[&x],
            )
            .unwrap();
        b.build("small", &[&y]).unwrap()
    }

    #[test]
    fn write_then_read_is_identical_and_leaves_no_temporary() {
        let (_dir, path) = temp("small.h5");
        let model = small_model();
        write_model(&path, &model).unwrap();
        let mut back = read_model(&path).unwrap();
        back.layers.iter_mut().for_each(|l| l.raw = None);
        assert_eq!(back, model);
        assert!(crate::fsutil::leftovers(&path).unwrap().is_empty());
    }

    #[test]
    fn fixed_length_and_chunked_string_attributes_are_read() {
        let (_dir, path) = temp("fixed.h5");
        let file = hdf5::File::create(&path).unwrap();
        let names: Vec<FixedAscii<8>> = ["a", "bb"]
            .iter()
            .map(|s| FixedAscii::<8>::from_ascii(s).unwrap())
            .collect();
        file.new_attr::<FixedAscii<8>>()
            .shape(2)
            .create("names0")
            .unwrap()
            .write_raw(&names)
            .unwrap();
        let more = vec![FixedAscii::<8>::from_ascii("ccc").unwrap()];
        file.new_attr::<FixedAscii<8>>()
            .shape(1)
            .create("names1")
            .unwrap()
            .write_raw(&more)
            .unwrap();
        file.new_attr::<f64>()
            .shape(0usize)
            .create("empty")
            .unwrap();
        assert_eq!(
            string_list_attr(&file, "names").unwrap(),
            ["a", "bb", "ccc"]
        );
        assert_eq!(
            string_list_attr(&file, "empty").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            string_list_attr(&file, "nothing").unwrap_err(),
            "is missing"
        );
    }

    #[test]
    fn bad_files_give_typed_errors() {
        let (dir, text) = temp("text.h5");
        std::fs::write(&text, "not hdf5").unwrap();
        assert!(matches!(read_model(&text), Err(H5Error::NotHdf5 { .. })));
        let missing = dir.path().join("missing.h5");
        assert!(matches!(read_model(&missing), Err(H5Error::Io { .. })));
        let bare = dir.path().join("bare.h5");
        hdf5::File::create(&bare).unwrap();
        let err = read_model(&bare).unwrap_err();
        assert!(matches!(err, H5Error::MissingModelConfig { .. }));
        assert!(crate::cli::report(&err).contains("bare.h5"), "{err}");
        let nowhere = dir.path().join("no/such/dir/m.h5");
        let err = write_model(&nowhere, &small_model()).unwrap_err();
        assert!(
            crate::cli::report(&err).contains("directory does not exist"),
            "{err}"
        );
        assert!(!nowhere.exists());
    }

    /// Writes the small model to `name` in a scratch folder, then lets
    /// `damage` edit the file.
    fn damaged(name: &str, damage: impl FnOnce(&hdf5::File)) -> (tempfile::TempDir, PathBuf) {
        let (dir, path) = temp(name);
        write_model(&path, &small_model()).unwrap();
        let file = hdf5::File::open_rw(&path).unwrap();
        damage(&file);
        file.close().unwrap();
        (dir, path)
    }

    /// Replaces the bias of `conv_0/x` with `values`.
    fn replace_bias<T: hdf5::H5Type>(f: &hdf5::File, values: &[T]) {
        let g = f.group("model_weights/conv_0/x/conv_0/x").unwrap();
        g.unlink("bias:0").unwrap();
        let ds = g
            .new_dataset::<T>()
            .shape(vec![values.len()])
            .create("bias:0")
            .unwrap();
        ds.write_raw(values).unwrap();
    }

    #[test]
    fn malformed_json_is_a_json_error() {
        let (_dir, path) = damaged("json.h5", |f| {
            f.delete_attr("model_config").unwrap();
            write_str(f, "model_config", "{\"class_name\": ", false).unwrap();
        });
        let err = read_model(&path).unwrap_err();
        assert!(matches!(err, H5Error::Json { .. }), "{err}");
        assert!(
            crate::cli::report(&err).starts_with(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn config_errors_name_the_problem() {
        let (_dir, path) = damaged("config.h5", |f| {
            f.delete_attr("model_config").unwrap();
            write_str(
                f,
                "model_config",
                r#"{"class_name": "Functional", "config": {}}"#,
                false,
            )
            .unwrap();
        });
        let err = read_model(&path).unwrap_err();
        assert!(matches!(err, H5Error::Config { .. }), "{err}");
        assert!(
            crate::cli::report(&err).contains("no `layers` list"),
            "{err}"
        );
    }

    #[test]
    fn missing_weight_dataset_is_named() {
        let (_dir, path) = damaged("noweight.h5", |f| {
            f.group("model_weights/conv_0/x/conv_0/x")
                .unwrap()
                .unlink("bias:0")
                .unwrap();
        });
        match read_model(&path).unwrap_err() {
            H5Error::MissingWeight { layer, dataset, .. } => {
                assert_eq!(layer, "conv_0/x");
                assert_eq!(dataset, "/model_weights/conv_0/x/conv_0/x/bias:0");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn wrong_weight_shape_is_a_graph_error() {
        let (_dir, path) = damaged("shape.h5", |f| replace_bias(f, &[0f32; 4]));
        let err = read_model(&path).unwrap_err();
        match &err {
            H5Error::Graph {
                source:
                    GraphError::WeightShape {
                        expected, found, ..
                    },
                ..
            } => assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[3][..], &[4][..])
            ),
            other => panic!("{other}"),
        }
        assert!(crate::cli::report(&err).contains("bias:0"), "{err}");
    }

    #[test]
    fn missing_weights_group_and_wrong_dtype_are_format_errors() {
        let (_dir, path) = damaged("nogroup.h5", |f| f.unlink("model_weights").unwrap());
        let err = read_model(&path).unwrap_err();
        assert!(matches!(err, H5Error::Format { .. }), "{err}");
        let (_dir, path) = damaged("dtype.h5", |f| replace_bias(f, &[0i32; 3]));
        let err = read_model(&path).unwrap_err();
        assert!(
            crate::cli::report(&err).contains("expected float32"),
            "{err}"
        );
    }
}
