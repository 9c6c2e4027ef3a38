//! File formats: converted models in our `.akd` ([`akd`]) or BrainChip's
//! `.fbz` ([`fbz`]), loaded and saved here by the file's extension,
//! tensors in `.npy`/`.npz` ([`npy`]) and audio clips in WAV ([`wav`]). Every error names the file; saves are
//! atomic (a failed save leaves the old file as it was).

pub mod akd;
pub mod fbz;
pub mod npy;
pub mod wav;

use std::path::{Path, PathBuf};

use akd::ConvertedModel;
use fbz::FbzError;

/// A converted-model file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    /// Ours: `akida_core::format` (what the firmware reads).
    Akd,
    /// BrainChip's engine (akida 2.19.3): see [`crate::formats::fbz`].
    Fbz,
}

/// Why a model file cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{}: unknown model file extension (expected .akd or .fbz)", path.display())]
    UnknownExtension { path: PathBuf },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    Akd {
        path: PathBuf,
        source: akida_core::FormatError,
    },
    #[error("{}", path.display())]
    Fbz { path: PathBuf, source: FbzError },
}

impl ModelFormat {
    /// The format named by a path's extension (`.akd` or `.fbz`, any case).
    pub fn of_path(path: &Path) -> Result<ModelFormat, ModelFileError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("akd") => Ok(ModelFormat::Akd),
            Some("fbz") => Ok(ModelFormat::Fbz),
            _ => Err(ModelFileError::UnknownExtension {
                path: path.to_owned(),
            }),
        }
    }
}

/// Largest model file read (1 GiB; the largest zoo model, `vgg_cifar10`
/// 4-bit, is about 11 MB): a bigger file is refused before it is read.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// The bytes of a model file: a regular file of at most [`MAX_MODEL_BYTES`],
/// whose first bytes are checked before the rest is read (the `.akd` magic,
/// the `.fbz` Snappy header), so that a large file of another kind is
/// refused at once.
fn read_model_bytes(path: &Path, format: ModelFormat) -> Result<Vec<u8>, ModelFileError> {
    use std::io::Read;
    let io = |source| ModelFileError::Io {
        path: path.to_owned(),
        source,
    };
    let (file, size) = crate::fsutil::open_regular(path, MAX_MODEL_BYTES).map_err(io)?;
    let mut file = file.take(MAX_MODEL_BYTES);
    let mut head = Vec::with_capacity(16);
    (&mut file).take(16).read_to_end(&mut head).map_err(io)?;
    match format {
        ModelFormat::Akd if head.len() >= 4 && head[..4] != akida_core::format::MAGIC => {
            return Err(ModelFileError::Akd {
                path: path.to_owned(),
                source: akida_core::FormatError::Magic,
            })
        }
        ModelFormat::Fbz => {
            snap::raw::decompress_len(&head).map_err(|e| ModelFileError::Fbz {
                path: path.to_owned(),
                source: FbzError::Snappy(e),
            })?;
        }
        _ => {}
    }
    let mut bytes = Vec::with_capacity(size as usize);
    bytes.extend_from_slice(&head);
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Loads (and validates) a converted model from a `.akd` or `.fbz` file.
pub fn load(path: impl AsRef<Path>) -> Result<ConvertedModel, ModelFileError> {
    let path = path.as_ref();
    let format = ModelFormat::of_path(path)?;
    let bytes = read_model_bytes(path, format)?;
    match format {
        ModelFormat::Akd => akd::from_bytes(&bytes).map_err(|source| ModelFileError::Akd {
            path: path.to_owned(),
            source,
        }),
        ModelFormat::Fbz => fbz::from_fbz_bytes(&bytes).map_err(|source| ModelFileError::Fbz {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Saves a converted model as a `.akd` or `.fbz` file, atomically.
pub fn save(model: &ConvertedModel, path: impl AsRef<Path>) -> Result<(), ModelFileError> {
    let path = path.as_ref();
    let bytes = match ModelFormat::of_path(path)? {
        ModelFormat::Akd => akd::to_bytes(model).map_err(|source| ModelFileError::Akd {
            path: path.to_owned(),
            source,
        })?,
        ModelFormat::Fbz => fbz::to_fbz_bytes(model).map_err(|source| ModelFileError::Fbz {
            path: path.to_owned(),
            source,
        })?,
    };
    crate::fsutil::atomic_write(path, &bytes).map_err(|source| ModelFileError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fbz::test_support::{tiny_layers, tiny_model};
    use crate::test_support::scratch;

    #[test]
    fn both_formats_save_and_load_the_same_model() {
        let tmp = scratch("model-file-both");
        let dir = tmp.path();
        let model = tiny_model();
        for name in ["m.akd", "m.fbz", "M.FBZ"] {
            let path = dir.join(name);
            save(&model, &path).unwrap();
            assert_eq!(load(&path).unwrap(), model, "{name}");
        }
        // The formats really differ: each file is refused by the other reader.
        std::fs::copy(dir.join("m.akd"), dir.join("akd_bytes.fbz")).unwrap();
        assert!(matches!(
            load(dir.join("akd_bytes.fbz")),
            Err(ModelFileError::Fbz { .. })
        ));
        std::fs::copy(dir.join("m.fbz"), dir.join("fbz_bytes.akd")).unwrap();
        assert!(matches!(
            load(dir.join("fbz_bytes.akd")),
            Err(ModelFileError::Akd { .. })
        ));
    }

    #[test]
    fn an_unknown_extension_names_the_file() {
        let e = load("models/net.onnx").unwrap_err();
        assert!(matches!(e, ModelFileError::UnknownExtension { .. }));
        assert_eq!(
            crate::cli::report(&e),
            "models/net.onnx: unknown model file extension (expected .akd or .fbz)"
        );
        assert!(matches!(
            save(&tiny_model(), "no_extension"),
            Err(ModelFileError::UnknownExtension { .. })
        ));
    }

    #[test]
    fn errors_name_the_file() {
        let tmp = scratch("model-file-errors");
        let dir = tmp.path();
        let missing = dir.join("absent.fbz");
        let e = load(&missing).unwrap_err();
        assert!(matches!(e, ModelFileError::Io { .. }));
        assert!(crate::cli::report(&e).starts_with(&missing.display().to_string()));

        let garbage = dir.join("garbage.fbz");
        std::fs::write(&garbage, b"\x05hello").unwrap();
        let e = load(&garbage).unwrap_err();
        assert!(matches!(e, ModelFileError::Fbz { .. }), "{e}");
        assert!(
            crate::cli::report(&e).starts_with(&garbage.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_refused_save_keeps_the_old_file() {
        let tmp = scratch("model-file-refused");
        let dir = tmp.path();
        let path = dir.join("m.fbz");
        save(&tiny_model(), &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        // Only valid models can be saved: a NaN act_step does not make one.
        let mut broken = tiny_layers();
        broken[0].act_step.set(0, f32::NAN);
        assert!(matches!(
            crate::formats::akd::build(broken),
            Err(crate::formats::akd::BuildError::Invalid(
                akida_core::ModelError::ActStep { .. }
            ))
        ));
        // A save that fails (here: the target is a directory) leaves the
        // old file and no temporary file.
        let blocked = dir.join("blocked.fbz");
        std::fs::create_dir(&blocked).unwrap();
        assert!(matches!(
            save(&tiny_model(), &blocked),
            Err(ModelFileError::Io { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 2);
    }
}
