//! Speech Commands (v0.02) in its official layout: one folder per class of
//! 1 s, 16 kHz, mono, 16-bit WAV clips, `validation_list.txt` and
//! `testing_list.txt` (paths relative to the root; every clip not listed is
//! training) and `_background_noise_/` (long recordings mixed into training
//! clips as augmentation).
//!
//! Class order (the model's output index) follows TensorFlow's speech
//! commands recipe: `_silence_`, `_unknown_` (when present), then the ten
//! MLPerf Tiny words `yes no up down left right on off stop go` (those
//! present), then any other folder in name order.
//!
//! Clips are kept as PCM so that training can augment them (random time
//! shift, background noise) before the MFCC front end of
//! [`akida_core::mfcc`] turns them into the model's 49x10x1 uint8 input.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use akida_core::mfcc::{self, CLIP_SAMPLES, INPUT_LEN};
use rayon::prelude::*;

use super::{DatasetError, ImageSet, Split, Targets};
use crate::formats::wav;

/// How to get the data, for the error when none is found.
pub const HOW_TO_GET: &str = "Speech Commands v0.02 (https://arxiv.org/abs/1804.03209, CC BY 4.0) in its official layout: one folder per class of 16 kHz WAV clips, validation_list.txt, testing_list.txt, _background_noise_/; tests/data/datasets/README.md says how to build the 4,890-clip 12-class set from a public GitHub copy (scripts/build_speech_commands.py), and tests/data/datasets/speech_commands-mini is a 144-clip subset";

/// The ten MLPerf Tiny keywords in TensorFlow's order.
pub const WORDS: [&str; 10] = [
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
];
pub const SILENCE: &str = "_silence_";
pub const UNKNOWN: &str = "_unknown_";
pub const NOISE_DIR: &str = "_background_noise_";

/// One clip: its class and one second of samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    pub label: u32,
    pub pcm: Box<[i16; CLIP_SAMPLES]>,
}

/// The clips of one split, with the class names and the background noise.
#[derive(Clone, Debug)]
pub struct SpeechCommands {
    pub classes: Vec<String>,
    pub clips: Vec<Clip>,
    /// Background-noise recordings (training augmentation).
    pub noise: Vec<Vec<i16>>,
}

/// The class folders of `dir`, in output order.
pub fn classes(dir: &Path) -> Result<Vec<String>, DatasetError> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|_| DatasetError::NotFound {
        name: "Speech Commands",
        dir: dir.to_owned(),
        expected: "expected one folder per class, validation_list.txt and testing_list.txt",
        how: HOW_TO_GET,
    })?;
    for entry in entries {
        let entry = entry.map_err(DatasetError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && name != NOISE_DIR {
            found.push(name);
        }
    }
    found.sort();
    let mut ordered = Vec::new();
    for name in [SILENCE, UNKNOWN].into_iter().chain(WORDS) {
        if let Some(i) = found.iter().position(|f| f == name) {
            ordered.push(found.remove(i));
        }
    }
    ordered.extend(found);
    if ordered.is_empty() || !dir.join("testing_list.txt").is_file() {
        return Err(DatasetError::NotFound {
            name: "Speech Commands",
            dir: dir.to_owned(),
            expected: "expected one folder per class, validation_list.txt and testing_list.txt",
            how: HOW_TO_GET,
        });
    }
    Ok(ordered)
}

fn read_list(path: &Path) -> Result<HashSet<String>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(DatasetError::io(path))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The samples of a 16-bit mono WAV file at 16 kHz (all of them).
pub fn read_wav(path: &Path) -> Result<Vec<i16>, DatasetError> {
    Ok(wav::read(path, None)?.samples)
}

/// Loads one split from `dir`; `classes` (`--classes`) must equal the
/// number of class folders when given.
pub fn load(
    dir: &Path,
    split: Split,
    classes_wanted: Option<usize>,
) -> Result<SpeechCommands, DatasetError> {
    let classes = classes(dir)?;
    if let Some(n) = classes_wanted {
        if n != classes.len() {
            return Err(DatasetError::invalid(
                dir,
                format!(
                    "--classes {n}, but the set has {} classes ({})",
                    classes.len(),
                    classes.join(" ")
                ),
            ));
        }
    }
    let validation = read_list(&dir.join("validation_list.txt"))?;
    let testing = read_list(&dir.join("testing_list.txt"))?;
    let mut files: Vec<(u32, PathBuf)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let folder = dir.join(class);
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .map_err(DatasetError::io(&folder))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wav"))
            .collect();
        names.sort();
        for name in names {
            let key = format!("{class}/{name}");
            let in_split = match split {
                Split::Validation => validation.contains(&key),
                Split::Test => testing.contains(&key),
                Split::Train => !validation.contains(&key) && !testing.contains(&key),
            };
            if in_split {
                files.push((label as u32, folder.join(name)));
            }
        }
    }
    let clips = files
        .par_iter()
        .map(|(label, path)| {
            let clip = wav::read(path, Some(CLIP_SAMPLES))?;
            Ok(Clip {
                label: *label,
                pcm: Box::new(mfcc::pad_clip(&clip.samples)),
            })
        })
        .collect::<Result<Vec<_>, DatasetError>>()?;
    let mut noise = Vec::new();
    let noise_dir = dir.join(NOISE_DIR);
    if split == Split::Train && noise_dir.is_dir() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&noise_dir)
            .map_err(DatasetError::io(&noise_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .collect();
        paths.sort();
        for p in paths {
            let samples = read_wav(&p)?;
            if samples.len() >= CLIP_SAMPLES {
                noise.push(samples);
            }
        }
    }
    Ok(SpeechCommands {
        classes,
        clips,
        noise,
    })
}

impl SpeechCommands {
    /// The model inputs of the clips as they are (no augmentation).
    pub fn features(&self) -> ImageSet {
        let clips: Vec<&[i16; CLIP_SAMPLES]> = self.clips.iter().map(|c| &*c.pcm).collect();
        self.with_pcm(&clips)
    }

    /// The model inputs of the given PCM clips with this set's labels.
    pub fn with_pcm(&self, clips: &[&[i16; CLIP_SAMPLES]]) -> ImageSet {
        let mut images = vec![0u8; clips.len() * INPUT_LEN];
        images
            .par_chunks_exact_mut(INPUT_LEN)
            .zip(clips.par_iter())
            .for_each(|(out, pcm)| {
                let out: &mut [u8; INPUT_LEN] = out.try_into().expect("chunk of INPUT_LEN");
                mfcc::features(pcm, out);
            });
        ImageSet {
            shape: [mfcc::FRAMES, mfcc::COEFFS, 1],
            images,
            targets: Targets::Classes {
                labels: self.clips.iter().map(|c| c.label).collect(),
                classes: self.classes.len(),
            },
        }
    }
}

/// Training augmentation of one clip, as TensorFlow's speech commands
/// recipe does it: a time shift of `shift` samples (positive: later,
/// zero-filled), then background noise `noise` (one second of a noise
/// recording) added at `volume`, clipped to the 16-bit range.
pub fn augment(
    pcm: &[i16; CLIP_SAMPLES],
    shift: isize,
    noise: Option<(&[i16], f32)>,
) -> [i16; CLIP_SAMPLES] {
    let mut out = [0i16; CLIP_SAMPLES];
    for (i, o) in out.iter_mut().enumerate() {
        let src = i as isize - shift;
        let mut v = if (0..CLIP_SAMPLES as isize).contains(&src) {
            pcm[src as usize] as f32
        } else {
            0.0
        };
        if let Some((n, volume)) = noise {
            v += n[i] as f32 * volume;
        }
        *o = v.round().clamp(-32768.0, 32767.0) as i16;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mini() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/datasets/speech_commands-mini")
    }

    #[test]
    fn classes_follow_tensorflow_order() {
        let c = classes(&mini()).unwrap();
        assert_eq!(c.len(), 12);
        assert_eq!(&c[..4], &["_silence_", "_unknown_", "yes", "no"]);
        assert_eq!(c[11], "go");
    }

    #[test]
    fn splits_of_the_mini_set() {
        let train = load(&mini(), Split::Train, Some(12)).unwrap();
        let val = load(&mini(), Split::Validation, None).unwrap();
        let test = load(&mini(), Split::Test, None).unwrap();
        assert_eq!(
            (train.clips.len(), val.clips.len(), test.clips.len()),
            (96, 24, 23)
        );
        assert_eq!(train.noise.len(), 2);
        assert!(val.noise.is_empty());
        let features = test.features();
        assert_eq!(features.shape, [49, 10, 1]);
        assert_eq!(features.images.len(), 23 * 490);
        let err = load(&mini(), Split::Train, Some(33)).unwrap_err();
        assert!(err.to_string().contains("--classes 33"), "{err}");
    }

    #[test]
    fn augmentation_shifts_and_mixes() {
        let mut pcm = Box::new([0i16; CLIP_SAMPLES]);
        pcm[0] = 1000;
        let shifted = augment(&pcm, 5, None);
        assert_eq!((shifted[0], shifted[5]), (0, 1000));
        let noise = vec![100i16; CLIP_SAMPLES];
        let mixed = augment(&pcm, -1, Some((&noise, 0.5)));
        assert_eq!((mixed[0], mixed[1]), (50, 50));
        let loud = vec![i16::MAX; CLIP_SAMPLES];
        pcm[3] = i16::MAX;
        assert_eq!(augment(&pcm, 0, Some((&loud, 1.0)))[3], i16::MAX);
    }

    #[test]
    fn missing_data_says_where_to_get_it() {
        let err = load(Path::new("/nonexistent"), Split::Test, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Speech Commands") && text.contains("README"),
            "{text}"
        );
    }
}
