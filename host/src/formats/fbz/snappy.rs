//! The `.fbz` container: one raw Snappy block (a varint of the uncompressed
//! length, then literal and copy elements; no framing, no checksum).
//!
//! The engine pads its own files with zeros after the block and its loader
//! ignores them, so reading first finds where the block ends (walking the
//! element headers, every step bounds-checked) and hands exactly the block to
//! the `snap` crate, which does the real decoding and its own checks. The
//! walk also bounds the memory a file can make us allocate: only a declared
//! length that the elements actually present produce is ever allocated.

use super::FbzError;

/// Compresses a FlatBuffers buffer into a raw Snappy block (no padding).
pub fn compress(buffer: &[u8]) -> Result<Vec<u8>, FbzError> {
    Ok(snap::raw::Encoder::new().compress_vec(buffer)?)
}

/// Decompresses the raw Snappy block at the start of `file`, ignoring any
/// bytes after it (the engine's padding).
pub fn decompress(file: &[u8]) -> Result<Vec<u8>, FbzError> {
    let end = block_end(file)?;
    Ok(snap::raw::Decoder::new().decompress_vec(&file[..end])?)
}

/// Length of the block's header: the varint of the uncompressed length.
fn header_len(file: &[u8]) -> Result<usize, FbzError> {
    // `decompress_len` checks the varint (at most 5 bytes, at most 2^32 - 1).
    snap::raw::decompress_len(file)?;
    file.iter()
        .position(|b| b & 0x80 == 0)
        .map(|i| i + 1)
        .ok_or(FbzError::Snappy(snap::Error::Header))
}

/// Reads `n` (1 to 4) little-endian bytes at `pos`.
fn read_le(file: &[u8], pos: usize, n: usize) -> Option<u64> {
    let bytes = file.get(pos..pos.checked_add(n)?)?;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

/// One element header at `pos`: (bytes of the element in the file, bytes it
/// produces). `None` if the file ends inside it.
fn element(file: &[u8], pos: usize) -> Option<(usize, u64)> {
    let tag = *file.get(pos)?;
    let upper = u64::from(tag >> 2);
    match tag & 3 {
        0 if upper < 60 => Some((1 + upper as usize + 1, upper + 1)),
        0 => {
            // Tags 60..63: the literal length - 1 follows in 1 to 4 bytes.
            let n = (upper - 59) as usize;
            let len = read_le(file, pos + 1, n)? + 1;
            let size = 1usize
                .checked_add(n)?
                .checked_add(usize::try_from(len).ok()?)?;
            Some((size, len))
        }
        1 => Some((2, 4 + (upper & 7))),
        2 => Some((3, upper + 1)),
        _ => Some((5, upper + 1)),
    }
}

/// Offset just after the last element of the block: the first point where
/// the elements produce the declared length (a block that produces more is
/// left for `snap` to refuse).
fn block_end(file: &[u8]) -> Result<usize, FbzError> {
    let declared = snap::raw::decompress_len(file)? as u64;
    let mut pos = header_len(file)?;
    let mut produced = 0u64;
    while produced < declared {
        let truncated = FbzError::Truncated {
            declared,
            found: produced,
        };
        let (size, len) = element(file, pos).ok_or(truncated)?;
        pos = match pos.checked_add(size) {
            Some(end) if end <= file.len() => end,
            _ => {
                return Err(FbzError::Truncated {
                    declared,
                    found: produced,
                })
            }
        };
        produced += len;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..5000u32).map(|i| (i % 251 / 3) as u8).collect()
    }

    #[test]
    fn padding_after_the_block_is_ignored() {
        let data = sample();
        let mut file = compress(&data).unwrap();
        let block = file.len();
        assert!(block < data.len() / 2, "the sample compresses");
        assert_eq!(block_end(&file).unwrap(), block);
        file.resize(32 + data.len() + data.len() / 6, 0);
        assert_eq!(decompress(&file).unwrap(), data);
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let data = sample();
        let file = compress(&data).unwrap();
        for n in 0..file.len() {
            assert!(decompress(&file[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn a_huge_declared_length_allocates_nothing() {
        // Declares 2^32 - 1 bytes, holds one literal byte.
        let file = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x41];
        assert!(matches!(
            decompress(&file),
            Err(FbzError::Truncated {
                declared: 0xffff_ffff,
                found: 1
            })
        ));
    }

    #[test]
    fn long_literals_are_walked() {
        // Incompressible data: literal elements with 1- to 2-byte lengths.
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let file = compress(&data).unwrap();
        assert_eq!(block_end(&file).unwrap(), file.len());
        assert_eq!(decompress(&file).unwrap(), data);
    }
}
