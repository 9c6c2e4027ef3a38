//! The byte protocol between a host and the firmware (`akida-embedded`),
//! over any byte stream (UART, semihosting files, RTT): frames with a
//! checked header and a checked payload, so that a corrupted frame is
//! refused with a status code and the stream resynchronises on the next
//! frame.
//!
//! ```text
//! offset size
//!      0    4  magic "AKF1"
//!      4    1  command (host) or reply tag 'R' (device)
//!      5    3  zero
//!      8    4  payload length (little-endian u32)
//!     12    4  CRC-32 (ISO-HDLC) of bytes 4..12
//!     16    n  payload
//!   16+n    4  CRC-32 of the payload
//! ```
//! A reply's payload starts with a [`Status`] byte and three bytes of
//! detail (for [`Command::Infer`]: 0 levels, 1 potentials), then the data:
//! the output of an inference, or the [`Info`] of a load. A reply to
//! [`Command::Keyword`] holds the model input the device computed (its
//! length in detail bytes 1 and 2, little-endian), then the output.

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = *b"AKF1";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;
/// Bytes after the payload.
pub const TRAILER_LEN: usize = 4;
/// Tag of every device reply.
pub const REPLY: u8 = b'R';

/// The CRC of headers and payloads (that of `.akd` files).
pub const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Most bytes of a [`Command::Labels`] payload.
pub const LABELS_MAX: usize = 256;

/// What the host asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// Payload: an `.akd` model, loaded into the device's arena.
    Load = b'M',
    /// Use the model embedded at build time.
    Embedded = b'E',
    /// Payload: one input (HWC uint8); the reply holds the output.
    Infer = b'I',
    /// The device's memory and the active model ([`Info`]).
    Info = b'?',
    /// Payload echoed back (a sequence number): resynchronisation.
    Ping = b'P',
    /// Payload: one second of 16 kHz mono PCM (16,000 little-endian i16).
    /// The device computes the keyword front end ([`crate::mfcc`]) hop by
    /// hop, runs the active model on it and logs the top class; the reply
    /// holds the features, then the output.
    Keyword = b'K',
    /// Payload: the class names of the active model's outputs, one per line
    /// (UTF-8, at most [`LABELS_MAX`] bytes), for the device's log.
    Labels = b'L',
    /// End of the session (under QEMU the firmware exits).
    Quit = b'Q',
}

impl Command {
    pub fn of(byte: u8) -> Option<Command> {
        Some(match byte {
            b'M' => Command::Load,
            b'E' => Command::Embedded,
            b'I' => Command::Infer,
            b'?' => Command::Info,
            b'P' => Command::Ping,
            b'K' => Command::Keyword,
            b'L' => Command::Labels,
            b'Q' => Command::Quit,
            _ => return None,
        })
    }
}

/// The outcome of a command (first byte of a reply; the firmware's exit
/// code under QEMU for fatal ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    /// The header is damaged (magic, checksum): the device resynchronises.
    BadFrame = 1,
    /// The payload checksum does not match.
    FrameCrc = 2,
    /// The model or its workspace does not fit the device.
    TooLarge = 3,
    /// Not an Akida 1.0 `.akd` model (magic, version).
    NotAkida = 4,
    /// A damaged `.akd` file (length, checksum, payload).
    Corrupt = 5,
    /// An `.akd` file whose model breaks a rule of Akida 1.0.
    Invalid = 6,
    /// No model loaded.
    NoModel = 7,
    /// The input does not have the model's input size.
    InputLength = 8,
    UnknownCommand = 9,
}

impl Status {
    pub fn of(byte: u8) -> Option<Status> {
        use Status::*;
        [
            Ok,
            BadFrame,
            FrameCrc,
            TooLarge,
            NotAkida,
            Corrupt,
            Invalid,
            NoModel,
            InputLength,
            UnknownCommand,
        ]
        .into_iter()
        .find(|s| *s as u8 == byte)
    }

    pub fn message(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::BadFrame => "damaged frame header",
            Status::FrameCrc => "frame payload checksum mismatch",
            Status::TooLarge => "the model does not fit the device",
            Status::NotAkida => "not an Akida 1.0 model",
            Status::Corrupt => "corrupted model file",
            Status::Invalid => "invalid model",
            Status::NoModel => "no model loaded",
            Status::InputLength => "input of the wrong size",
            Status::UnknownCommand => "unknown command",
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// The status refusing a model file.
pub fn model_status(e: &crate::stream::PrepareError) -> Status {
    use crate::format::FormatError as F;
    use crate::stream::PrepareError as P;
    match e {
        P::Format(F::Magic | F::Version(_) | F::Truncated(_)) => Status::NotAkida,
        P::Format(F::Invalid(_)) | P::Inconsistent { .. } => Status::Invalid,
        P::Format(_) => Status::Corrupt,
        P::TooManyLayers { .. } | P::Transform { .. } => Status::TooLarge,
    }
}

/// The header of a frame.
pub fn header(tag: u8, len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4] = tag;
    h[8..12].copy_from_slice(&len.to_le_bytes());
    let crc = CRC.checksum(&h[4..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The tag and payload length of a header, or [`Status::BadFrame`].
pub fn parse_header(h: &[u8; HEADER_LEN]) -> Result<(u8, u32), Status> {
    let crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if h[..4] != MAGIC || h[5..8] != [0, 0, 0] || CRC.checksum(&h[4..12]) != crc {
        return Err(Status::BadFrame);
    }
    Ok((h[4], u32::from_le_bytes([h[8], h[9], h[10], h[11]])))
}

/// What a device reports about itself and its active model (little-endian
/// u32 fields of a reply to [`Command::Load`], [`Command::Embedded`] and
/// [`Command::Info`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    /// Layers of the active model (0: none).
    pub layers: u32,
    /// Layers run by the M4 kernels.
    pub fast_layers: u32,
    /// Bytes of the model as loaded (`.akd`, weights rewritten in place).
    pub model_bytes: u32,
    /// Bytes of the model's variables (packed weights, thresholds, act_steps).
    pub variable_bytes: u32,
    /// Workspace the model needs (levels, output, scratch), bytes.
    pub workspace_bytes: u32,
    /// Level buffers A and B of that workspace, bytes.
    pub levels_a: u32,
    pub levels_b: u32,
    /// Input and output elements.
    pub input_len: u32,
    pub output_len: u32,
    /// 1 when the output is uint8 levels, 0 for int32 potentials.
    pub outputs_levels: u32,
    /// The device's workspace and loader arena, bytes.
    pub workspace_capacity: u32,
    pub arena_capacity: u32,
    /// Deepest stack use seen so far (painted stack), bytes; the stack size.
    pub stack_peak: u32,
    pub stack_size: u32,
}

impl Info {
    /// Bytes of an encoded [`Info`].
    pub const LEN: usize = 14 * 4;

    fn fields(&self) -> [u32; 14] {
        [
            self.layers,
            self.fast_layers,
            self.model_bytes,
            self.variable_bytes,
            self.workspace_bytes,
            self.levels_a,
            self.levels_b,
            self.input_len,
            self.output_len,
            self.outputs_levels,
            self.workspace_capacity,
            self.arena_capacity,
            self.stack_peak,
            self.stack_size,
        ]
    }

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        for (chunk, v) in out.chunks_exact_mut(4).zip(self.fields()) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Info> {
        if bytes.len() < Self::LEN {
            return None;
        }
        let v = |i: usize| {
            u32::from_le_bytes([
                bytes[4 * i],
                bytes[4 * i + 1],
                bytes[4 * i + 2],
                bytes[4 * i + 3],
            ])
        };
        Some(Info {
            layers: v(0),
            fast_layers: v(1),
            model_bytes: v(2),
            variable_bytes: v(3),
            workspace_bytes: v(4),
            levels_a: v(5),
            levels_b: v(6),
            input_len: v(7),
            output_len: v(8),
            outputs_levels: v(9),
            workspace_capacity: v(10),
            arena_capacity: v(11),
            stack_peak: v(12),
            stack_size: v(13),
        })
    }
}

/// A whole frame (host).
#[cfg(feature = "std")]
pub fn frame(tag: u8, payload: &[u8]) -> std::vec::Vec<u8> {
    let mut out = header(tag, payload.len() as u32).to_vec();
    out.extend_from_slice(payload);
    out.extend_from_slice(&CRC.checksum(payload).to_le_bytes());
    out
}

/// One reply read back from a byte stream (host).
#[cfg(feature = "std")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    /// The three detail bytes.
    pub detail: [u8; 3],
    pub data: std::vec::Vec<u8>,
}

/// Splits a device's reply stream into replies; `Err` names the offset of
/// the first malformed one (host).
#[cfg(feature = "std")]
pub fn parse_replies(mut bytes: &[u8]) -> Result<std::vec::Vec<Reply>, usize> {
    let total = bytes.len();
    let mut out = std::vec::Vec::new();
    while !bytes.is_empty() {
        let at = total - bytes.len();
        let h: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(at)?;
        let (tag, len) = parse_header(h).map_err(|_| at)?;
        let len = len as usize;
        let payload = bytes.get(HEADER_LEN..HEADER_LEN + len).ok_or(at)?;
        let crc = bytes
            .get(HEADER_LEN + len..HEADER_LEN + len + TRAILER_LEN)
            .ok_or(at)?;
        if tag != REPLY || len < 4 || CRC.checksum(payload).to_le_bytes() != crc {
            return Err(at);
        }
        let status = Status::of(payload[0]).ok_or(at)?;
        out.push(Reply {
            status,
            detail: [payload[1], payload[2], payload[3]],
            data: payload[4..].to_vec(),
        });
        bytes = &bytes[HEADER_LEN + len + TRAILER_LEN..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_damage_is_refused() {
        let h = header(b'I', 490);
        assert_eq!(parse_header(&h), Ok((b'I', 490)));
        for byte in 0..HEADER_LEN {
            let mut bad = h;
            bad[byte] ^= 0x10;
            assert_eq!(parse_header(&bad), Err(Status::BadFrame), "byte {byte}");
        }
    }

    #[test]
    fn info_round_trips() {
        let i = Info {
            layers: 6,
            stack_size: 4096,
            ..Info::default()
        };
        assert_eq!(Info::decode(&i.encode()), Some(i));
    }

    #[test]
    fn status_codes_round_trip() {
        for b in 0..=255u8 {
            if let Some(s) = Status::of(b) {
                assert_eq!(s as u8, b);
            }
        }
        assert_eq!(Status::of(9), Some(Status::UnknownCommand));
        assert_eq!(Status::of(10), None);
    }
}
