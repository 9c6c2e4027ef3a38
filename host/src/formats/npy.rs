//! Tensors in numpy's `.npy` and `.npz` files (the formats of the reference
//! vectors and of `akida run`), read and written with the `npyz` crate.

use std::fs::File;
use std::io::BufReader;
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

/// Largest array data a `.npy` file or `.npz` member may declare (16 GiB),
/// checked from its header before anything is allocated.
pub const MAX_ARRAY_BYTES: u64 = 1 << 34;

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
    #[error(
        "{path}: array `{name}` has dtype {dtype}; supported: u1, i1, <i4, <f4 (either byte order)"
    )]
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
    #[error("{path}: not a .npy array (bad header)")]
    Header {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the header declares {declared} bytes of data (shape {shape:?}), over the {MAX_ARRAY_BYTES}-byte limit")]
    TooLarge {
        path: PathBuf,
        shape: Vec<u64>,
        declared: u128,
    },
    #[error("{path}: truncated: the header declares {declared} bytes of data (shape {shape:?}), the file holds {found}")]
    Truncated {
        path: PathBuf,
        shape: Vec<u64>,
        declared: u64,
        found: u64,
    },
    #[error("{path}: {extra} bytes after the {declared} bytes of data the header declares (shape {shape:?})")]
    Trailing {
        path: PathBuf,
        shape: Vec<u64>,
        declared: u64,
        extra: u64,
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

/// Bytes of one element of a supported dtype.
fn element_size(ts: &npyz::TypeStr) -> Option<u64> {
    match (ts.type_char(), ts.size_field()) {
        (TypeChar::Uint, 1) | (TypeChar::Int, 1) => Some(1),
        (TypeChar::Int, 4) | (TypeChar::Float, 4) => Some(4),
        _ => None,
    }
}

/// The plain dtype of an array and the bytes of data its header declares
/// (checked against [`MAX_ARRAY_BYTES`] before anything is allocated).
fn declared<R: std::io::Read>(
    npy: &NpyFile<R>,
    path: &Path,
    name: &str,
) -> Result<(npyz::TypeStr, u64), TensorError> {
    let dtype = npy.dtype();
    let unsupported = || TensorError::DType {
        path: path.to_owned(),
        name: name.to_owned(),
        dtype: dtype.descr(),
    };
    let DType::Plain(ts) = &dtype else {
        return Err(unsupported());
    };
    let size = element_size(ts).ok_or_else(unsupported)?;
    let bytes = npy
        .shape()
        .iter()
        .fold(size as u128, |acc, &d| acc.saturating_mul(d as u128));
    if bytes > MAX_ARRAY_BYTES as u128 {
        return Err(TensorError::TooLarge {
            path: path.to_owned(),
            shape: npy.shape().to_vec(),
            declared: bytes,
        });
    }
    Ok((ts.clone(), bytes as u64))
}

/// Reads the values, growing the vector only as data arrives (a header
/// cannot make us allocate what the file does not hold).
fn collect<T: npyz::Deserialize, R: std::io::Read>(
    npy: NpyFile<R>,
    path: &Path,
    declared: u64,
) -> Result<Vec<T>, TensorError> {
    let shape = npy.shape().to_vec();
    let count = npy.len();
    let values = npy.data::<T>().map_err(|e| TensorError::Header {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let mut out = Vec::with_capacity(count.min(1 << 24) as usize);
    for value in values {
        match value {
            Ok(v) => out.push(v),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let size = declared / count.max(1);
                return Err(TensorError::Truncated {
                    path: path.to_owned(),
                    shape,
                    declared,
                    found: out.len() as u64 * size,
                });
            }
            Err(source) => {
                return Err(TensorError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// Fortran-order (column-major) values of `shape` in C order.
fn fortran_to_c<T: Copy>(values: Vec<T>, shape: &[usize]) -> Vec<T> {
    if shape.len() < 2 || values.is_empty() {
        return values;
    }
    let mut out = Vec::with_capacity(values.len());
    let mut index = vec![0usize; shape.len()];
    for _ in 0..values.len() {
        // Fortran offset of the C-order index: the first axis moves fastest.
        let mut offset = 0;
        for (&i, &n) in index.iter().zip(shape).rev() {
            offset = offset * n + i;
        }
        out.push(values[offset]);
        for (i, &n) in index.iter_mut().zip(shape).rev() {
            *i += 1;
            if *i < n {
                break;
            }
            *i = 0;
        }
    }
    out
}

/// The data bytes as they lie in the file, read in blocks rather than
/// element by element (a batch of images is megabytes); the vector grows only
/// as data arrives, as in [`collect`].
fn raw_bytes<R: std::io::Read>(
    npy: NpyFile<R>,
    path: &Path,
    declared: u64,
) -> Result<Vec<u8>, TensorError> {
    use std::io::Read;
    let shape = npy.shape().to_vec();
    let mut out = Vec::with_capacity(declared.min(1 << 24) as usize);
    npy.into_inner()
        .take(declared)
        .read_to_end(&mut out)
        .map_err(|source| TensorError::Io {
            path: path.to_owned(),
            source,
        })?;
    if (out.len() as u64) < declared {
        return Err(TensorError::Truncated {
            path: path.to_owned(),
            shape,
            declared,
            found: out.len() as u64,
        });
    }
    Ok(out)
}

/// Little-endian (or byte-sized) data, which is read as raw bytes: the
/// layout numpy writes on every common machine. Big-endian files go through
/// `npyz`'s element decoder.
fn is_raw(ts: &npyz::TypeStr) -> bool {
    ts.size_field() == 1 || ts.endianness() == npyz::Endianness::Little
}

fn read_npy_file<R: std::io::Read>(
    npy: NpyFile<R>,
    path: &Path,
    name: &str,
) -> Result<Tensor, TensorError> {
    let (ts, bytes) = declared(&npy, path, name)?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let fortran = npy.order() == npyz::Order::Fortran;
    let data = if is_raw(&ts) {
        let raw = raw_bytes(npy, path, bytes)?;
        match (ts.type_char(), ts.size_field()) {
            (TypeChar::Uint, 1) => TensorData::U8(fortran_then(raw, fortran, &shape)),
            (TypeChar::Int, 1) => {
                let v = raw.into_iter().map(|b| b as i8).collect();
                TensorData::I8(fortran_then(v, fortran, &shape))
            }
            (TypeChar::Int, 4) => {
                let v = le_words(&raw, i32::from_le_bytes);
                TensorData::I32(fortran_then(v, fortran, &shape))
            }
            _ => {
                let v = le_words(&raw, f32::from_le_bytes);
                TensorData::F32(fortran_then(v, fortran, &shape))
            }
        }
    } else {
        macro_rules! values {
            ($variant:ident, $t:ty) => {{
                let v = collect::<$t, R>(npy, path, bytes)?;
                TensorData::$variant(fortran_then(v, fortran, &shape))
            }};
        }
        match (ts.type_char(), ts.size_field()) {
            (TypeChar::Int, 4) => values!(I32, i32),
            _ => values!(F32, f32),
        }
    };
    Ok(Tensor { shape, data })
}

/// The 4-byte values of `raw`, each decoded by `from_le`.
fn le_words<T>(raw: &[u8], from_le: fn([u8; 4]) -> T) -> Vec<T> {
    raw.chunks_exact(4)
        .map(|c| from_le([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `values` in C order: reordered when the file is Fortran-ordered.
fn fortran_then<T: Copy>(values: Vec<T>, fortran: bool, shape: &[usize]) -> Vec<T> {
    if fortran {
        fortran_to_c(values, shape)
    } else {
        values
    }
}

/// Counts the bytes read through it (the length of a `.npy` header).
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// The dtype of a `.npy` file as its header spells it (`|u1`, `>f4`, ...),
/// read without its data.
pub fn npy_dtype(path: &Path) -> Result<String, TensorError> {
    let (file, _) =
        crate::fsutil::open_regular(path, u64::MAX).map_err(|source| TensorError::Io {
            path: path.to_owned(),
            source,
        })?;
    let header = bounded_header(BufReader::new(file))
        .and_then(npyz::NpyHeader::from_reader)
        .map_err(|source| TensorError::Header {
            path: path.to_owned(),
            source,
        })?;
    Ok(header.dtype().descr().trim_matches('\'').to_owned())
}

/// Longest `.npy` header read (64 KiB; numpy itself refuses headers over
/// 10,000 bytes unless told otherwise).
pub const MAX_HEADER_BYTES: usize = 1 << 16;

/// `r` with its header length checked before the header is read: npyz
/// allocates what the file's 2- or 4-byte length field declares (up to
/// 4 GiB, an abort on allocation: a fuzz finding). Whatever is not a `.npy`
/// start is passed on for npyz to refuse.
fn bounded_header<R: std::io::Read>(
    mut r: R,
) -> std::io::Result<std::io::Chain<std::io::Cursor<Vec<u8>>, R>> {
    use std::io::Read;
    let mut start = Vec::with_capacity(12);
    (&mut r).take(8).read_to_end(&mut start)?;
    let size_bytes = match start.get(6) {
        Some(1) => 2,
        Some(2) | Some(3) => 4,
        _ => 0,
    };
    if start.len() == 8 && start.starts_with(b"\x93NUMPY") && size_bytes > 0 {
        (&mut r).take(size_bytes).read_to_end(&mut start)?;
        if start.len() == 8 + size_bytes as usize {
            let mut len = [0u8; 4];
            len[..size_bytes as usize].copy_from_slice(&start[8..]);
            let len = u32::from_le_bytes(len) as usize;
            if len > MAX_HEADER_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the header declares {len} bytes, over the limit of {MAX_HEADER_BYTES}"
                    ),
                ));
            }
        }
    }
    Ok(std::io::Cursor::new(start).chain(r))
}

/// Reads one `.npy` file (C or Fortran order, either byte order): a regular
/// file whose size must match what its header declares.
pub fn read_npy(path: &Path) -> Result<Tensor, TensorError> {
    let (file, size) =
        crate::fsutil::open_regular(path, MAX_ARRAY_BYTES + (1 << 20)).map_err(|source| {
            TensorError::Io {
                path: path.to_owned(),
                source,
            }
        })?;
    let mut reader = Counting {
        inner: bounded_header(BufReader::new(file)).map_err(|source| TensorError::Header {
            path: path.to_owned(),
            source,
        })?,
        read: 0,
    };
    let header =
        npyz::NpyHeader::from_reader(&mut reader).map_err(|source| TensorError::Header {
            path: path.to_owned(),
            source,
        })?;
    let npy = NpyFile::with_header(header, reader.inner);
    let (_, declared) = declared(&npy, path, "")?;
    let data = size - reader.read;
    let shape = npy.shape().to_vec();
    if data < declared {
        return Err(TensorError::Truncated {
            path: path.to_owned(),
            shape,
            declared,
            found: data,
        });
    }
    if data > declared {
        return Err(TensorError::Trailing {
            path: path.to_owned(),
            shape,
            declared,
            extra: data - declared,
        });
    }
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
        let io = |source| TensorError::Io {
            path: path.to_owned(),
            source,
        };
        // A regular file only: a zip is read from its end, which a device or
        // FIFO does not have.
        let (file, _) = crate::fsutil::open_regular(path, u64::MAX).map_err(io)?;
        let archive = npyz::npz::NpzArchive::new(BufReader::new(file)).map_err(io)?;
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
        let header = |source| TensorError::Header {
            path: self.path.clone(),
            source,
        };
        let file = match self.archive.zip_archive().by_name(&format!("{name}.npy")) {
            Ok(f) => f,
            Err(npyz::zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        };
        let mut reader = bounded_header(file).map_err(header)?;
        let parsed = npyz::NpyHeader::from_reader(&mut reader).map_err(header)?;
        let npy = NpyFile::with_header(parsed, reader);
        read_npy_file(npy, &self.path.clone(), name).map(Some)
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

    /// A fuzz finding: a version 3 header whose length field says 4 GiB
    /// made npyz allocate it (an abort on allocation under a memory limit).
    #[test]
    fn a_header_length_over_the_limit_is_refused_before_it_is_read() {
        let dir = crate::test_support::scratch("npy-header-length");
        let p = dir.path().join("h.npy");
        let mut bytes = b"\x93NUMPY\x03\x00".to_vec();
        bytes.extend_from_slice(&0xffff_ff76u32.to_le_bytes());
        bytes.extend_from_slice(b"{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\n");
        std::fs::write(&p, &bytes).unwrap();
        for e in [read_npy(&p).unwrap_err(), npy_dtype(&p).unwrap_err()] {
            assert!(matches!(e, TensorError::Header { .. }), "{e}");
            let text = crate::cli::report(&e);
            assert!(
                text.contains("declares 4294967158 bytes, over the limit"),
                "{text}"
            );
        }
    }

    /// A version 1.0 `.npy` file with the given header fields and data.
    fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let mut header = dict.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn fortran_order_and_big_endian_files_read_as_numpy_reads_them() {
        let dir = crate::test_support::scratch("npy-order");
        let p = dir.path().join("f.npy");
        // numpy: np.asfortranarray([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
        std::fs::write(&p, npy_bytes("|u1", true, "(2, 3)", &[1, 4, 2, 5, 3, 6])).unwrap();
        let t = read_npy(&p).unwrap();
        assert_eq!(t.shape, [2, 3]);
        assert_eq!(t.as_u8().unwrap(), [1, 2, 3, 4, 5, 6]);
        // A 2x2x2 Fortran array: element (i, j, k) at i + 2j + 4k.
        let data: Vec<u8> = (0..8).collect();
        std::fs::write(&p, npy_bytes("|u1", true, "(2, 2, 2)", &data)).unwrap();
        let t = read_npy(&p).unwrap();
        assert_eq!(t.as_u8().unwrap(), [0, 4, 2, 6, 1, 5, 3, 7]);
        // Big-endian float32 and int32.
        let mut be = 1.5f32.to_be_bytes().to_vec();
        be.extend_from_slice(&(-2.0f32).to_be_bytes());
        std::fs::write(&p, npy_bytes(">f4", false, "(2,)", &be)).unwrap();
        assert_eq!(read_npy(&p).unwrap().as_f32().unwrap(), [1.5, -2.0]);
        assert_eq!(npy_dtype(&p).unwrap(), ">f4");
        std::fs::write(&p, npy_bytes(">i4", false, "(1,)", &(-7i32).to_be_bytes())).unwrap();
        assert_eq!(read_npy(&p).unwrap().as_i32().unwrap(), [-7]);
        // Little-endian and byte-sized data are read as raw bytes: the same
        // values, also in Fortran order.
        let le: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(&p, npy_bytes("<f4", true, "(2, 2)", &le)).unwrap();
        assert_eq!(
            read_npy(&p).unwrap().as_f32().unwrap(),
            [1.5, 0.25, -2.0, 8.0]
        );
        let le: Vec<u8> = [-7i32, i32::MIN, i32::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(&p, npy_bytes("<i4", false, "(3,)", &le)).unwrap();
        assert_eq!(
            read_npy(&p).unwrap().as_i32().unwrap(),
            [-7, i32::MIN, i32::MAX]
        );
        std::fs::write(&p, npy_bytes("|i1", false, "(3,)", &[0x80, 0xff, 0x7f])).unwrap();
        assert_eq!(read_npy(&p).unwrap().as_i8().unwrap(), [-128, -1, 127]);
    }

    #[test]
    fn sizes_are_checked_against_the_header_before_reading() {
        let dir = crate::test_support::scratch("npy-sizes");
        let p = dir.path().join("t.npy");
        std::fs::write(&p, npy_bytes("|u1", false, "(4, 3)", &[7; 10])).unwrap();
        let e = read_npy(&p).unwrap_err();
        assert!(
            matches!(
                e,
                TensorError::Truncated {
                    declared: 12,
                    found: 10,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(crate::cli::report(&e).contains("truncated: the header declares 12 bytes"));
        std::fs::write(&p, npy_bytes("|u1", false, "(2,)", &[7; 5])).unwrap();
        let e = read_npy(&p).unwrap_err();
        assert!(matches!(e, TensorError::Trailing { extra: 3, .. }), "{e:?}");
        // A header declaring 2^60 values is refused before any allocation.
        std::fs::write(
            &p,
            npy_bytes("<f4", false, "(1073741824, 1073741824)", &[0; 8]),
        )
        .unwrap();
        let e = read_npy(&p).unwrap_err();
        assert!(matches!(e, TensorError::TooLarge { .. }), "{e:?}");
        std::fs::write(&p, b"not numpy at all").unwrap();
        assert!(matches!(read_npy(&p), Err(TensorError::Header { .. })));
        std::fs::write(&p, npy_bytes("<f8", false, "(1,)", &[0; 8])).unwrap();
        assert!(matches!(read_npy(&p), Err(TensorError::DType { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_directories_are_refused_without_reading() {
        let e = read_npy(Path::new("/dev/zero")).unwrap_err();
        assert!(
            crate::cli::report(&e).contains("not a regular file"),
            "{}",
            crate::cli::report(&e)
        );
        let dir = crate::test_support::scratch("npy-dir");
        assert!(read_npy(dir.path()).is_err());
    }

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
