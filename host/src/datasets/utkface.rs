//! UTKFace aligned and cropped faces, resized to 32x32: `UTKFace32/` holds
//! `[age]_[gender]_[race]_[date&time].jpg` files, `labels.csv` the columns
//! `file,age,gender,race,datetime,split` with split `train` or `test`. The
//! target is the age (years, a float for the mean-absolute-error loss).
//!
//! Validation is held out of the `train` rows: every tenth of them in file
//! order (the 10th, 20th, ...).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{DatasetError, ImageSet, Split, Targets};

/// How to get the data, for the error when none is found.
pub const HOW_TO_GET: &str = "UTKFace (https://susanqq.github.io/UTKFace/, non-commercial research use) aligned and cropped faces resized to 32x32 as UTKFace32/[age]_[gender]_[race]_[date].jpg with labels.csv (file,age,gender,race,datetime,split); tests/data/datasets/README.md says how to build it from a public GitHub copy (scripts/build_utkface.py), and tests/data/datasets/utkface-mini is a 600-face subset";

/// Side of the crops.
pub const SIDE: usize = 32;

/// One row of `labels.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub file: String,
    pub age: u32,
    pub split: String,
}

/// The rows of `labels.csv`.
pub fn read_labels(path: &Path) -> Result<Vec<Row>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(DatasetError::io(path))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| DatasetError::invalid(path, format!("no `{name}` column")))
    };
    let (file, age, split) = (col("file")?, col("age")?, col("split")?);
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let get = |i: usize| {
            fields.get(i).map(|f| f.trim()).ok_or_else(|| {
                DatasetError::invalid(path, format!("line {}: too few fields", n + 2))
            })
        };
        let age_text = get(age)?;
        let age = age_text.parse().map_err(|_| {
            DatasetError::invalid(path, format!("line {}: age `{age_text}`", n + 2))
        })?;
        rows.push(Row {
            file: get(file)?.to_owned(),
            age,
            split: get(split)?.to_owned(),
        });
    }
    Ok(rows)
}

/// The folder holding `labels.csv` and `UTKFace32/`.
fn root(dir: &Path) -> Result<PathBuf, DatasetError> {
    if dir.join("labels.csv").is_file() && dir.join("UTKFace32").is_dir() {
        Ok(dir.to_owned())
    } else {
        Err(DatasetError::NotFound {
            name: "UTKFace",
            dir: dir.to_owned(),
            expected: "expected labels.csv and UTKFace32/",
            how: HOW_TO_GET,
        })
    }
}

/// Loads one split: 32x32x3 images with their ages.
pub fn load(dir: &Path, split: Split) -> Result<ImageSet, DatasetError> {
    let dir = root(dir)?;
    let rows = read_labels(&dir.join("labels.csv"))?;
    let mut train_index = 0usize;
    let mut chosen = Vec::new();
    for row in rows {
        let keep = match (row.split.as_str(), split) {
            ("test", Split::Test) => true,
            ("train", Split::Train | Split::Validation) => {
                let validation = train_index % 10 == 9;
                train_index += 1;
                validation == (split == Split::Validation)
            }
            ("train" | "test", _) => false,
            (other, _) => {
                return Err(DatasetError::invalid(
                    &dir.join("labels.csv"),
                    format!("{}: split `{other}` is neither train nor test", row.file),
                ))
            }
        };
        if keep {
            chosen.push(row);
        }
    }
    let faces = dir.join("UTKFace32");
    let pixels = chosen
        .par_iter()
        .map(|row| read_face(&faces.join(&row.file)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ImageSet {
        shape: [SIDE, SIDE, 3],
        images: pixels.concat(),
        targets: Targets::Values(chosen.iter().map(|r| r.age as f32).collect()),
    })
}

/// One 32x32 RGB face, HWC.
fn read_face(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let image = image::open(path)
        .map_err(|source| DatasetError::Image {
            path: path.to_owned(),
            source,
        })?
        .to_rgb8();
    if image.width() as usize != SIDE || image.height() as usize != SIDE {
        return Err(DatasetError::invalid(
            path,
            format!(
                "expected a {SIDE}x{SIDE} crop, found {}x{}",
                image.width(),
                image.height()
            ),
        ));
    }
    Ok(image.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_of_the_mini_set() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/datasets/utkface-mini");
        let rows = read_labels(&dir.join("labels.csv")).unwrap();
        assert_eq!(rows.len(), 600);
        let train = load(&dir, Split::Train).unwrap();
        let val = load(&dir, Split::Validation).unwrap();
        let test = load(&dir, Split::Test).unwrap();
        assert_eq!(train.len() + val.len() + test.len(), 600);
        assert_eq!(train.image_len(), 32 * 32 * 3);
        let Targets::Values(ages) = &test.targets else {
            panic!("ages")
        };
        assert!(ages.iter().all(|&a| (1.0..=116.0).contains(&a)));
        // Real photographs: no image is flat.
        assert!((0..test.len()).all(|i| {
            let img = test.image(i);
            img.iter().max() != img.iter().min()
        }));
    }
}
