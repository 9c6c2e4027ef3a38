//! What `akida_models` does: create a zoo model as a Keras `.h5` file, and
//! print the Keras summary of a `.h5` file.

use std::path::{Path, PathBuf};

use crate::keras::{read_model, write_model, GraphError, H5Error};
use crate::zoo::{ds_cnn_kws, ZooModel};

/// Why `akida_models create` failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("unknown model `{name}`; available: {available}")]
    UnknownModel { name: String, available: String },
    #[error("--classes must be at least 1")]
    ZeroClasses,
    #[error("--classes applies to ds_cnn_kws only")]
    ClassesNotApplicable,
    #[error("cannot build {name}")]
    Build {
        name: String,
        #[source]
        source: GraphError,
    },
    #[error("cannot save {name}")]
    Save {
        name: String,
        #[source]
        source: Box<H5Error>,
    },
}

/// The model list of `--help`, one line per zoo model.
pub fn models_help() -> String {
    let mut text = String::from("Models:\n");
    for m in ZooModel::ALL {
        text.push_str(&format!("  {:<16}{}\n", m.name(), m.description()));
    }
    text
}

/// `akida_models create NAME [-s PATH]`: builds the zoo model `name` with
/// Keras initialisation from `seed` (with `classes` outputs for
/// `ds_cnn_kws`) and saves it atomically; returns the path written
/// (`NAME.h5` by default, `.h5` appended when missing).
pub fn create(
    name: &str,
    save: Option<&Path>,
    seed: u64,
    classes: Option<usize>,
) -> Result<PathBuf, CreateError> {
    let Some(zoo) = ZooModel::from_name(name) else {
        let known: Vec<&str> = ZooModel::ALL.iter().map(|m| m.name()).collect();
        return Err(CreateError::UnknownModel {
            name: name.to_owned(),
            available: known.join(", "),
        });
    };
    let build = |source| CreateError::Build {
        name: name.to_owned(),
        source,
    };
    let model = match (zoo, classes) {
        (ZooModel::DsCnnKws, Some(0)) => return Err(CreateError::ZeroClasses),
        (ZooModel::DsCnnKws, Some(n)) => ds_cnn_kws(n, seed).map_err(build)?,
        (_, Some(_)) => return Err(CreateError::ClassesNotApplicable),
        (_, None) => zoo.build(seed).map_err(build)?,
    };
    let mut path = save
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from(format!("{name}.h5")));
    if path.extension().is_none_or(|e| e != "h5") {
        let mut s = path.into_os_string();
        s.push(".h5");
        path = PathBuf::from(s);
    }
    write_model(&path, &model).map_err(|source| CreateError::Save {
        name: name.to_owned(),
        source: Box::new(source),
    })?;
    Ok(path)
}

/// `akida_models summary -m FILE.h5`: the Keras `model.summary()` text.
pub fn summary(path: &Path) -> Result<String, H5Error> {
    Ok(read_model(path)?.summary())
}
