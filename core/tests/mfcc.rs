//! The float32 keyword-spotting front end against a float64 MFCC written
//! out here from TensorFlow's definitions (plain DFT, `std` maths), on real
//! Speech Commands clips, background noise and silence.

use std::path::{Path, PathBuf};

use akida_core::mfcc::{self, COEFFS, FRAMES, HOP, MEL_BANDS, WINDOW};

fn mini_set() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/datasets/speech_commands-mini")
}

/// The 16-bit mono samples of a canonical PCM WAV file.
fn read_wav(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[0..4], b"RIFF");
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            let end = (at + 8 + len).min(bytes.len());
            return bytes[at + 8..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display())
}

/// TensorFlow's MFCC in float64: periodic Hann, 1024-point power spectrum,
/// mel filterbank on the magnitude, log with floor 1e-12, DCT-II.
fn mfcc64(pcm: &[i16; mfcc::CLIP_SAMPLES]) -> Vec<[f64; COEFFS]> {
    use std::f64::consts::PI;
    let n_fft = 1024;
    let bins = n_fft / 2 + 1;
    let mel = |f: f64| 1127.0 * (1.0 + f / 700.0).ln();
    let (lo, hi) = (mel(20.0), mel(4000.0));
    let spacing = (hi - lo) / (MEL_BANDS + 1) as f64;
    // The lower edge, then the 41 band centres (the last is the upper edge).
    let edges: Vec<f64> = (0..=MEL_BANDS + 1)
        .map(|i| lo + spacing * i as f64)
        .collect();
    let hz_per_bin = 8000.0 / (bins - 1) as f64;
    let start = (1.5 + 20.0 / hz_per_bin) as usize;
    let end = (4000.0 / hz_per_bin) as usize;
    // exp(-2 pi i t / 1024), t = k i mod 1024.
    let twiddles: Vec<(f64, f64)> = (0..n_fft)
        .map(|t| {
            let a = -2.0 * PI * t as f64 / n_fft as f64;
            (a.cos(), a.sin())
        })
        .collect();
    let mut out = Vec::new();
    for f in 0..FRAMES {
        let x: Vec<f64> = (0..WINDOW)
            .map(|i| {
                let w = 0.5 - 0.5 * (2.0 * PI * i as f64 / WINDOW as f64).cos();
                pcm[f * HOP + i] as f64 / 32768.0 * w
            })
            .collect();
        let mut bands = [0f64; MEL_BANDS];
        for k in start..=end {
            let (mut re, mut im) = (0.0, 0.0);
            for (i, &v) in x.iter().enumerate() {
                let (c, s) = twiddles[(k * i) % n_fft];
                re += v * c;
                im += v * s;
            }
            let magnitude = (re * re + im * im).sqrt();
            let m = mel(k as f64 * hz_per_bin);
            // Band b is a triangle on the mel scale over edges[b..b + 3].
            for (b, band) in bands.iter_mut().enumerate() {
                let (left, peak, right) = (edges[b], edges[b + 1], edges[b + 2]);
                let rising = (m - left) / (peak - left);
                let falling = (right - m) / (right - peak);
                *band += magnitude * rising.min(falling).max(0.0);
            }
        }
        let logs: Vec<f64> = bands.iter().map(|&b| b.max(1e-12).ln()).collect();
        let norm = (2.0 / MEL_BANDS as f64).sqrt();
        let mut coeffs = [0f64; COEFFS];
        for (i, c) in coeffs.iter_mut().enumerate() {
            *c = logs
                .iter()
                .enumerate()
                .map(|(j, &l)| {
                    l * norm * (PI / MEL_BANDS as f64 * i as f64 * (j as f64 + 0.5)).cos()
                })
                .sum();
        }
        out.push(coeffs);
    }
    out
}

fn clips() -> Vec<(String, [i16; mfcc::CLIP_SAMPLES])> {
    let dir = mini_set();
    let mut clips = Vec::new();
    for class in ["yes", "no", "left", "stop", "_unknown_"] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names.iter().take(2) {
            clips.push((path.display().to_string(), mfcc::pad_clip(&read_wav(path))));
        }
    }
    let noise = read_wav(&dir.join("_background_noise_/white_noise.wav"));
    clips.push(("white noise".into(), mfcc::pad_clip(&noise)));
    clips.push(("silence".into(), [0; mfcc::CLIP_SAMPLES]));
    // Full scale: the largest magnitudes a clip can have.
    let mut square = [0i16; mfcc::CLIP_SAMPLES];
    for (i, s) in square.iter_mut().enumerate() {
        *s = if (i / 20) % 2 == 0 {
            i16::MAX
        } else {
            i16::MIN
        };
    }
    clips.push(("full-scale square wave".into(), square));
    clips
}

#[test]
fn float32_mfcc_is_within_tolerance_of_float64() {
    let mut worst = 0f32;
    for (name, pcm) in clips() {
        let mut ours = [[0f32; COEFFS]; FRAMES];
        mfcc::mfcc(&pcm, &mut ours);
        let reference = mfcc64(&pcm);
        for (f, (a, b)) in ours.iter().zip(&reference).enumerate() {
            for c in 0..COEFFS {
                let d = (a[c] as f64 - b[c]).abs() as f32;
                assert!(
                    d <= mfcc::F64_TOLERANCE,
                    "{name}: frame {f} coefficient {c}: {} vs {} (float64)",
                    a[c],
                    b[c]
                );
                worst = worst.max(d);
            }
        }
    }
    println!("largest |float32 - float64| over the clips: {worst:e}");
}

#[test]
fn real_speech_uses_the_uint8_range() {
    let (_, pcm) = &clips()[0];
    let mut input = [0u8; mfcc::INPUT_LEN];
    mfcc::features(pcm, &mut input);
    let distinct = {
        let mut seen = [false; 256];
        input.iter().for_each(|&v| seen[v as usize] = true);
        seen.iter().filter(|&&s| s).count()
    };
    assert!(distinct > 40, "only {distinct} distinct levels");
}
