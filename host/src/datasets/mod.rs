//! Datasets in their official layouts: CIFAR-10 binary batches
//! ([`cifar10`]), Speech Commands folders of WAV clips ([`speech_commands`])
//! and UTKFace 32x32 JPEG crops ([`utkface`]).
//!
//! A dataset is found in the folder given (`--data-dir`), else in
//! `$AKIDA_DATA_DIR/<name>` ([`data_dir`]); when nothing is there, the error
//! says where to get the data and how (see [`DatasetError::NotFound`]).

pub mod cifar10;
pub mod speech_commands;
pub mod utkface;

use std::path::{Path, PathBuf};

/// Environment variable naming the folder that holds the datasets.
pub const DATA_DIR_ENV: &str = "AKIDA_DATA_DIR";

/// Why a dataset cannot be read. Every variant names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("no {name} data in {}: {expected}.\n{how}", dir.display())]
    NotFound {
        name: &'static str,
        dir: PathBuf,
        expected: &'static str,
        how: &'static str,
    },
    #[error("no data folder for {name}: give --data-dir or set {DATA_DIR_ENV} (the {name} data is then read from ${DATA_DIR_ENV}/{default}).\n{how}")]
    NoDirectory {
        name: &'static str,
        default: &'static str,
        how: &'static str,
    },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cifar10(#[from] cifar10::Cifar10Error),
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Wav(#[from] crate::formats::wav::WavError),
    #[error("{}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

impl DatasetError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
        move |source| DatasetError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> DatasetError {
        DatasetError::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Where a dataset lives: `explicit` (`--data-dir`), else
/// `$AKIDA_DATA_DIR/<default>`.
pub fn data_dir(
    explicit: Option<&Path>,
    name: &'static str,
    default: &'static str,
    how: &'static str,
) -> Result<PathBuf, DatasetError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    match std::env::var_os(DATA_DIR_ENV) {
        Some(root) if !root.is_empty() => Ok(PathBuf::from(root).join(default)),
        _ => Err(DatasetError::NoDirectory { name, default, how }),
    }
}

/// The split of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// Images (N x H x W x C uint8, HWC, back to back) with one target each:
/// a class index, or a real value (a regression target such as an age).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// Size of one image: `[H, W, C]`.
    pub shape: [usize; 3],
    pub images: Vec<u8>,
    pub targets: Targets,
}

/// The targets of an [`ImageSet`].
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    Classes { labels: Vec<u32>, classes: usize },
    Values(Vec<f32>),
}

impl Targets {
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The targets of the samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Targets {
        match self {
            Targets::Classes { labels, classes } => Targets::Classes {
                labels: indices.iter().map(|&i| labels[i]).collect(),
                classes: *classes,
            },
            Targets::Values(v) => Targets::Values(indices.iter().map(|&i| v[i]).collect()),
        }
    }
}

impl ImageSet {
    /// Bytes of one image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        ImageSet {
            shape: self.shape,
            images,
            targets: self.targets.select(indices),
        }
    }
}
