//! WAV audio as the keyword front end takes it: 16 kHz, mono, 16-bit PCM
//! (`hound` parses the RIFF chunks). Every other kind is refused with what
//! it is; the sample count a header declares is checked against the file's
//! size before anything is allocated, and a caller that needs only the
//! first samples reads only those.

use std::path::{Path, PathBuf};

use akida_core::mfcc;

/// Why a WAV file cannot be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{}: not a readable WAV file", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

/// The samples read and how many the file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wav {
    pub samples: Vec<i16>,
    /// Samples in the file (its header's count, checked against its size).
    pub total: usize,
}

const WANT: &str = "1 s of 16 kHz mono 16-bit PCM";

/// Reads at most `limit` samples (all of them with `None`) of a 16 kHz
/// mono 16-bit PCM WAV file.
pub fn read(path: &Path, limit: Option<usize>) -> Result<Wav, WavError> {
    let parse = |source| WavError::Parse {
        path: path.to_owned(),
        source,
    };
    let bad = |message: String| WavError::Format {
        path: path.to_owned(),
        message,
    };
    let mut reader = hound::WavReader::open(path).map_err(parse)?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        let kind = match spec.sample_format {
            hound::SampleFormat::Float => "floating-point",
            hound::SampleFormat::Int => "integer",
        };
        return Err(bad(format!(
            "{}-bit {kind} samples, expected {WANT}",
            spec.bits_per_sample
        )));
    }
    if spec.channels != 1 {
        return Err(bad(format!(
            "{} channels, expected {WANT} (mix it down to mono)",
            spec.channels
        )));
    }
    if spec.sample_rate != mfcc::SAMPLE_RATE {
        return Err(bad(format!(
            "sample rate {} Hz, expected {WANT} (resample it to 16 kHz)",
            spec.sample_rate
        )));
    }
    let total = reader.len() as usize;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if 2 * total as u64 > size {
        return Err(bad(format!(
            "the header declares {total} samples ({} bytes) but the file has {size} bytes",
            2 * total as u64
        )));
    }
    let samples = reader
        .samples::<i16>()
        .take(limit.unwrap_or(usize::MAX))
        .collect::<Result<Vec<_>, _>>()
        .map_err(parse)?;
    Ok(Wav { samples, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::write_wav;

    #[test]
    fn reads_the_first_samples_and_counts_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        write_wav(&p, 1, 16000, 16, 20000);
        let w = read(&p, Some(16000)).unwrap();
        assert_eq!((w.samples.len(), w.total), (16000, 20000));
        assert_eq!(w.samples[1234], 234);
        assert_eq!(read(&p, None).unwrap().samples.len(), 20000);
    }

    #[test]
    fn refuses_other_kinds_and_lying_headers() {
        let dir = tempfile::tempdir().unwrap();
        for (name, channels, rate, bits, says) in [
            ("stereo.wav", 2, 16000, 16, "2 channels"),
            ("cd.wav", 1, 44100, 16, "sample rate 44100 Hz"),
            ("eight.wav", 1, 16000, 8, "8-bit integer samples"),
        ] {
            let p = dir.path().join(name);
            write_wav(&p, channels, rate, bits, 100);
            let e = read(&p, None).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(says), "{e}");
        }
        // A data chunk that claims 2 GB: refused before any allocation.
        let p = dir.path().join("liar.wav");
        write_wav(&p, 1, 16000, 16, 100);
        let mut bytes = std::fs::read(&p).unwrap();
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[data + 4..data + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let e = read(&p, None).unwrap_err().to_string();
        assert!(e.contains("liar.wav") && e.contains("declares"), "{e}");
    }
}
