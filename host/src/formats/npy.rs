//! Tensors in numpy's `.npy` and `.npz` files (the formats of the reference
//! vectors and of `akida run`), read and written with the `npyz` crate.

use std::fs::File;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, TypeChar, WriterBuilder};

/// Element values of a tensor, in C order.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    F32(Vec<f32>),
}

/// An n-dimensional array: a shape and its C-order values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// Why a tensor file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: array `{name}` is missing")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: array `{name}` has dtype {dtype}; supported: u1, i1, <i4, <f4")]
    DType {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("{path}: array `{name}` is {found}, expected {expected}")]
    Mismatch {
        path: PathBuf,
        name: String,
        expected: String,
        found: String,
    },
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numpy dtype string (`|u1`, `|i1`, `<i4`, `<f4`).
    pub fn dtype_name(&self) -> &'static str {
        match self.data {
            TensorData::U8(_) => "|u1",
            TensorData::I8(_) => "|i1",
            TensorData::I32(_) => "<i4",
            TensorData::F32(_) => "<f4",
        }
    }
}

fn read_npy_file<R: std::io::Read>(
    npy: NpyFile<R>,
    path: &Path,
    name: &str,
) -> Result<Tensor, TensorError> {
    let io = |source| TensorError::Io {
        path: path.to_owned(),
        source,
    };
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype();
    let ts = match &dtype {
        DType::Plain(ts) => ts.clone(),
        _ => {
            return Err(TensorError::DType {
                path: path.to_owned(),
                name: name.to_owned(),
                dtype: dtype.descr(),
            })
        }
    };
    let data = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Uint, 1) => TensorData::U8(npy.into_vec::<u8>().map_err(io)?),
        (TypeChar::Int, 1) => TensorData::I8(npy.into_vec::<i8>().map_err(io)?),
        (TypeChar::Int, 4) => TensorData::I32(npy.into_vec::<i32>().map_err(io)?),
        (TypeChar::Float, 4) => TensorData::F32(npy.into_vec::<f32>().map_err(io)?),
        _ => {
            return Err(TensorError::DType {
                path: path.to_owned(),
                name: name.to_owned(),
                dtype: dtype.descr(),
            })
        }
    };
    Ok(Tensor { shape, data })
}

/// Reads one `.npy` file.
pub fn read_npy(path: &Path) -> Result<Tensor, TensorError> {
    let io = |source| TensorError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let npy = NpyFile::new(Cursor::new(bytes)).map_err(io)?;
    read_npy_file(npy, path, "")
}

/// Writes one `.npy` file, atomically.
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<(), TensorError> {
    let mut buf = Vec::new();
    encode_npy(tensor, &mut buf).map_err(|source| TensorError::Io {
        path: path.to_owned(),
        source,
    })?;
    crate::fsutil::atomic_write(path, &buf).map_err(|source| TensorError::Io {
        path: path.to_owned(),
        source,
    })
}

fn encode_npy(tensor: &Tensor, out: &mut Vec<u8>) -> std::io::Result<()> {
    let shape: Vec<u64> = tensor.shape.iter().map(|&d| d as u64).collect();
    macro_rules! write_all {
        ($v:expr, $t:ty) => {{
            let mut w = npyz::WriteOptions::<$t>::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut *out)
                .begin_nd()?;
            w.extend($v.iter().copied())?;
            w.finish()
        }};
    }
    match &tensor.data {
        TensorData::U8(v) => write_all!(v, u8),
        TensorData::I8(v) => write_all!(v, i8),
        TensorData::I32(v) => write_all!(v, i32),
        TensorData::F32(v) => write_all!(v, f32),
    }
}

/// A `.npz` archive opened for reading arrays by name.
pub struct Npz {
    path: PathBuf,
    archive: npyz::npz::NpzArchive<BufReader<File>>,
}

impl Npz {
    pub fn open(path: &Path) -> Result<Npz, TensorError> {
        let archive = npyz::npz::NpzArchive::open(path).map_err(|source| TensorError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Npz {
            path: path.to_owned(),
            archive,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of all arrays, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.archive.array_names().map(str::to_owned).collect();
        v.sort();
        v
    }

    /// Reads an array, `None` if absent.
    pub fn get(&mut self, name: &str) -> Result<Option<Tensor>, TensorError> {
        let io = |source| TensorError::Io {
            path: self.path.clone(),
            source,
        };
        match self.archive.by_name(name).map_err(io)? {
            Some(npy) => read_npy_file(npy, &self.path.clone(), name).map(Some),
            None => Ok(None),
        }
    }

    /// Reads an array that must be present.
    pub fn require(&mut self, name: &str) -> Result<Tensor, TensorError> {
        self.get(name)?.ok_or_else(|| TensorError::Missing {
            path: self.path.clone(),
            name: name.to_owned(),
        })
    }
}

macro_rules! typed_getters {
    ($($fn_name:ident, $variant:ident, $t:ty);*) => {
        impl Tensor {
            $(
            /// The values if the tensor has this element type.
            pub fn $fn_name(&self) -> Option<&[$t]> {
                match &self.data {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            )*
        }
    };
}
typed_getters!(as_u8, U8, u8; as_i8, I8, i8; as_i32, I32, i32; as_f32, F32, f32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_keeps_shape_and_values() {
        let dir = crate::test_support::scratch("npy");
        for t in [
            Tensor {
                shape: vec![2, 3],
                data: TensorData::U8(vec![0, 1, 2, 253, 254, 255]),
            },
            Tensor {
                shape: vec![3],
                data: TensorData::I32(vec![-5, 0, i32::MAX]),
            },
            Tensor {
                shape: vec![1, 2],
                data: TensorData::F32(vec![0.5, -1.25]),
            },
            Tensor {
                shape: vec![2],
                data: TensorData::I8(vec![-128, 127]),
            },
        ] {
            let p = dir.path().join("t.npy");
            write_npy(&p, &t).unwrap();
            assert_eq!(read_npy(&p).unwrap(), t);
        }
    }
}
