//! CIFAR-10 in the official binary layout: records of one label byte then
//! 1024 red, 1024 green and 1024 blue bytes (row-major 32x32 planes). Images
//! are returned HWC (32x32x3 uint8, the order the models take).

use std::path::{Path, PathBuf};

use super::{DatasetError, ImageSet, Split, Targets};

/// How to get the data, for the error when none is found.
pub const HOW_TO_GET: &str = "CIFAR-10 in its official binary layout (cifar-10-batches-bin: data_batch_1.bin .. data_batch_5.bin, test_batch.bin) is the \"CIFAR-10 binary version\" of https://www.cs.toronto.edu/~kriz/cifar.html; tests/data/datasets/README.md says how to rebuild it from a public GitHub copy (scripts/build_cifar10.py), and tests/data/datasets/cifar10-mini is a 1,500-image subset";

/// Largest batch file read (1 GiB).
pub const MAX_BATCH_BYTES: u64 = 1 << 30;

/// Bytes of one record.
pub const RECORD: usize = 1 + 3 * 1024;

/// Class names, in label order.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Why a batch file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Cifar10Error {
    #[error("{path}", path = path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {len} bytes is not a whole number of {RECORD}-byte CIFAR-10 records", path = path.display())]
    Length { path: PathBuf, len: usize },
    #[error("{path}: record {record} has label {label}, above 9", path = path.display())]
    Label {
        path: PathBuf,
        record: usize,
        label: u8,
    },
}

/// Images (N x 32 x 32 x 3, HWC) and labels of one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Reads a batch file (`data_batch_N.bin`, `test_batch.bin`), any number of records.
pub fn read_batch(path: &Path) -> Result<Batch, Cifar10Error> {
    // A regular file of at most 1 GiB (an official batch is 30 MB): a device
    // or FIFO would be read without end.
    let bytes =
        crate::fsutil::read_regular(path, MAX_BATCH_BYTES).map_err(|source| Cifar10Error::Io {
            path: path.to_owned(),
            source,
        })?;
    decode_batch(&bytes).map_err(|e| match e {
        DecodeError::Length => Cifar10Error::Length {
            path: path.to_owned(),
            len: bytes.len(),
        },
        DecodeError::Label { record, label } => Cifar10Error::Label {
            path: path.to_owned(),
            record,
            label,
        },
    })
}

enum DecodeError {
    Length,
    Label { record: usize, label: u8 },
}

fn decode_batch(bytes: &[u8]) -> Result<Batch, DecodeError> {
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(DecodeError::Length);
    }
    let n = bytes.len() / RECORD;
    let mut images = vec![0u8; n * 3072];
    let mut labels = Vec::with_capacity(n);
    for (record, (chunk, image)) in bytes
        .chunks_exact(RECORD)
        .zip(images.chunks_exact_mut(3072))
        .enumerate()
    {
        let label = chunk[0];
        if label > 9 {
            return Err(DecodeError::Label { record, label });
        }
        labels.push(label);
        let planes = &chunk[1..];
        for pixel in 0..1024 {
            for c in 0..3 {
                image[pixel * 3 + c] = planes[c * 1024 + pixel];
            }
        }
    }
    Ok(Batch { images, labels })
}

/// The folder holding the batch files: `dir` itself or its
/// `cifar-10-batches-bin/`.
pub fn batches_dir(dir: &Path) -> Result<PathBuf, DatasetError> {
    for candidate in [dir.join("cifar-10-batches-bin"), dir.to_owned()] {
        if candidate.join("test_batch.bin").is_file() {
            return Ok(candidate);
        }
    }
    Err(DatasetError::NotFound {
        name: "CIFAR-10",
        dir: dir.to_owned(),
        expected: "expected test_batch.bin and data_batch_*.bin there or in cifar-10-batches-bin/",
        how: HOW_TO_GET,
    })
}

/// One split of CIFAR-10 from `dir` (see [`batches_dir`]): `Test` is
/// `test_batch.bin`; `Train` and `Validation` share the `data_batch_*.bin`
/// files in name order, every tenth image (index 9, 19, ...) being
/// validation.
pub fn load(dir: &Path, split: Split) -> Result<ImageSet, DatasetError> {
    let dir = batches_dir(dir)?;
    let mut files = Vec::new();
    match split {
        Split::Test => files.push(dir.join("test_batch.bin")),
        Split::Train | Split::Validation => {
            for entry in std::fs::read_dir(&dir).map_err(DatasetError::io(&dir))? {
                let path = entry.map_err(DatasetError::io(&dir))?.path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if name.starts_with("data_batch_") && name.ends_with(".bin") {
                    files.push(path);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(DatasetError::NotFound {
                    name: "CIFAR-10",
                    dir,
                    expected: "expected data_batch_*.bin",
                    how: HOW_TO_GET,
                });
            }
        }
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut index = 0usize;
    for file in &files {
        let batch = read_batch(file)?;
        for (i, &label) in batch.labels.iter().enumerate() {
            let keep = match split {
                Split::Test => true,
                Split::Train => index % 10 != 9,
                Split::Validation => index % 10 == 9,
            };
            index += 1;
            if keep {
                images.extend_from_slice(&batch.images[i * 3072..(i + 1) * 3072]);
                labels.push(label as u32);
            }
        }
    }
    Ok(ImageSet {
        shape: [32, 32, 3],
        images,
        targets: Targets::Classes {
            labels,
            classes: CLASSES.len(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_become_hwc() {
        let mut record = vec![7u8];
        for c in 0..3u8 {
            record.extend((0..1024).map(|p| (p % 251) as u8 ^ (c * 85)));
        }
        let Ok(batch) = decode_batch(&record) else {
            panic!("decodes")
        };
        assert_eq!(batch.labels, vec![7]);
        assert_eq!(&batch.images[..6], &[0, 85, 170, 1, 1 ^ 85, 1 ^ 170]);
        assert!(matches!(
            decode_batch(&record[..100]),
            Err(DecodeError::Length)
        ));
        record[0] = 10;
        assert!(matches!(
            decode_batch(&record),
            Err(DecodeError::Label {
                record: 0,
                label: 10
            })
        ));
    }

    #[test]
    fn reads_the_mini_test_batch() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/datasets/cifar10-mini/cifar-10-batches-bin/test_batch.bin");
        let batch = read_batch(&path).unwrap();
        assert_eq!(batch.len(), 500);
        assert_eq!(batch.images.len(), 500 * 32 * 32 * 3);
        // All ten classes are present in a real test split.
        let mut seen = [false; 10];
        for &l in &batch.labels {
            seen[l as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn splits_of_the_mini_set() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/datasets/cifar10-mini");
        let train = load(&dir, Split::Train).unwrap();
        let val = load(&dir, Split::Validation).unwrap();
        let test = load(&dir, Split::Test).unwrap();
        assert_eq!((train.len(), val.len(), test.len()), (900, 100, 500));
        let missing = load(Path::new("/nonexistent"), Split::Test).unwrap_err();
        assert!(
            missing.to_string().contains("cifar-10-batches-bin"),
            "{missing}"
        );
    }
}
