//! The `.akd` model file: a 16-byte header, then the [`crate::Model`] in postcard.
//!
//! ```text
//! offset size
//!      0    4  magic "AKD1"
//!      4    2  format version (little-endian u16): 2 or 3
//!      6    2  reserved, zero
//!      8    4  payload length in bytes (little-endian u32)
//!     12    4  CRC-32 (ISO-HDLC) of the payload (little-endian u32)
//!     16    …  payload: postcard encoding of the model
//! ```
//! Version 3 (a model behind an InputData layer) encodes the whole
//! [`crate::Model`]: its layers, then its optional InputData layer. Version 2
//! encodes the layers alone; a model without InputData is written as
//! version 2, so its files stay byte for byte what earlier builds wrote and
//! read.
//! Decoding borrows names and weights from the file bytes (no copy, no heap),
//! so the same code runs on the host and on the firmware; every decoded model
//! is validated before it is returned.

use crate::model::{Model, ModelError, ModelRef, ValidModel};

/// First four bytes of every `.akd` file.
pub const MAGIC: [u8; 4] = *b"AKD1";
/// The newest format version, written for models with an InputData layer.
/// Version 3: the layers, then the optional [`crate::layer::InputData`].
/// Version 2: a layer is its name, its [`crate::LayerParams`] and its variables
/// (weight shapes follow from the params). Version 1 stored shapes and bits
/// with every tensor.
pub const FORMAT_VERSION: u16 = 3;
/// The version of models without an InputData layer (the layers alone).
pub const LAYERS_ONLY_VERSION: u16 = 2;
/// Header size in bytes.
pub const HEADER_LEN: usize = 16;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Why bytes are not a valid `.akd` model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FormatError {
    #[error("file is {0} bytes, shorter than the {HEADER_LEN}-byte header")]
    Truncated(usize),
    #[error("not an .akd model (bad magic number)")]
    Magic,
    #[error("format version {0} is not supported (this build reads versions {LAYERS_ONLY_VERSION} and {FORMAT_VERSION})")]
    Version(u16),
    #[error("header reserved field is {0}, expected 0")]
    Reserved(u16),
    #[error("payload length {declared} does not match the {actual} bytes after the header")]
    Length { declared: usize, actual: usize },
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupted")]
    Checksum { stored: u32, computed: u32 },
    #[error("payload does not decode")]
    Payload(#[source] postcard::Error),
    #[error("{0} trailing bytes after the model")]
    Trailing(usize),
    #[error("inconsistent model")]
    Invalid(#[source] ModelError),
    #[error("output buffer too small")]
    Buffer,
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes and validates a model from `.akd` bytes, borrowing from them.
pub fn decode(bytes: &[u8]) -> Result<ValidModel<&[u8], &str>, FormatError> {
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated(bytes.len()));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    if header[..4] != MAGIC {
        return Err(FormatError::Magic);
    }
    let version = le_u16(&header[4..6]);
    if version != FORMAT_VERSION && version != LAYERS_ONLY_VERSION {
        return Err(FormatError::Version(version));
    }
    let reserved = le_u16(&header[6..8]);
    if reserved != 0 {
        return Err(FormatError::Reserved(reserved));
    }
    let declared = le_u32(&header[8..12]) as usize;
    if declared != payload.len() {
        return Err(FormatError::Length {
            declared,
            actual: payload.len(),
        });
    }
    let stored = le_u32(&header[12..16]);
    let computed = CRC.checksum(payload);
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed });
    }
    let (model, rest): (ModelRef, _) = if version == LAYERS_ONLY_VERSION {
        let (layers, rest) = postcard::take_from_bytes(payload).map_err(FormatError::Payload)?;
        let model = Model {
            layers,
            input_data: None,
        };
        (model, rest)
    } else {
        postcard::take_from_bytes(payload).map_err(FormatError::Payload)?
    };
    if !rest.is_empty() {
        return Err(FormatError::Trailing(rest.len()));
    }
    model.validate().map_err(FormatError::Invalid)
}

/// Encodes a valid model into `out`, returning the number of bytes written.
pub fn encode_into<B, S>(model: &ValidModel<B, S>, out: &mut [u8]) -> Result<usize, FormatError>
where
    B: AsRef<[u8]> + serde::Serialize,
    S: AsRef<str> + serde::Serialize,
{
    if out.len() < HEADER_LEN {
        return Err(FormatError::Buffer);
    }
    let (header, body) = out.split_at_mut(HEADER_LEN);
    let m = model.model();
    let written = match m.input_data {
        None => postcard::to_slice(&m.layers, body),
        Some(_) => postcard::to_slice(m, body),
    };
    let n = written.map_err(|_| FormatError::Buffer)?.len();
    write_header(header, version_of(m), &body[..n]);
    Ok(HEADER_LEN + n)
}

/// The version a model is written in: 2 without InputData, else 3.
pub fn version_of<B, S>(model: &Model<B, S>) -> u16 {
    match model.input_data {
        None => LAYERS_ONLY_VERSION,
        Some(_) => FORMAT_VERSION,
    }
}

/// Writes the 16-byte header framing `payload` (magic, `version`, length,
/// checksum) into `header`.
pub fn write_header(header: &mut [u8], version: u16, payload: &[u8]) {
    header[..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&version.to_le_bytes());
    header[6..8].copy_from_slice(&0u16.to_le_bytes());
    header[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[12..16].copy_from_slice(&CRC.checksum(payload).to_le_bytes());
}

/// Encodes a valid model into a new byte vector (host).
#[cfg(feature = "std")]
pub fn encode<B, S>(model: &ValidModel<B, S>) -> Result<std::vec::Vec<u8>, FormatError>
where
    B: AsRef<[u8]> + serde::Serialize,
    S: AsRef<str> + serde::Serialize,
{
    let m = model.model();
    let payload = match m.input_data {
        None => postcard::to_stdvec(&m.layers),
        Some(_) => postcard::to_stdvec(m),
    }
    .map_err(FormatError::Payload)?;
    let mut out = std::vec![0u8; HEADER_LEN];
    write_header(&mut out, version_of(m), &payload);
    out.extend_from_slice(&payload);
    Ok(out)
}
