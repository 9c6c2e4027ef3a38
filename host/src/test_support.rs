//! What the unit tests of this crate share: a scratch folder, WAV files.

/// A fresh scratch folder named after `tag`, removed when dropped (also
/// when the test panics).
pub fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("akida-{tag}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("scratch folder for {tag}: {e}"))
}

/// A WAV file of `samples` frames (`i % 1000`, or `i % 100` at 8 bits).
pub fn write_wav(path: &std::path::Path, channels: u16, rate: u32, bits: u16, samples: usize) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..samples * channels as usize {
        match bits {
            8 => w.write_sample((i % 100) as i8).unwrap(),
            _ => w.write_sample((i % 1000) as i16).unwrap(),
        }
    }
    w.finalize().unwrap();
}
