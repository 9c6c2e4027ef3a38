//! Keyword spotting end to end: one-second clips read from WAV files, the
//! host's answer (core's front end [`akida_core::mfcc`], then the host
//! [`Runtime`]) and the device's answer (the Cortex-M4F firmware under
//! QEMU, given the raw PCM over its I/O boundary: it computes the same
//! front end on the M4 and runs the model embedded in it), with their
//! agreement on features, potentials and labels.

use std::path::{Path, PathBuf};
use std::time::Duration;

use akida_core::mfcc::{self, CLIP_SAMPLES, COEFFS, FRAMES, INPUT_LEN};
use akida_core::wire::{Info, Status};

use crate::firmware::{self, FirmwareError, Session};
use crate::formats::akd::{self, ConvertedModel};
use crate::formats::wav::{self, WavError};
use crate::runtime::{BatchOutput, KernelPolicy, Runtime};
use akida_core::ForwardError;

/// Why keyword spotting could not run. Every variant names its file.
#[derive(Debug, thiserror::Error)]
pub enum KwsError {
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no .wav files here (give a WAV file, or a folder of them, or of one folder per label)", path.display())]
    NoClips { path: PathBuf },
    #[error("{}: not a keyword model: its input is {found}, the front end gives {FRAMES}x{COEFFS}x1", path.display())]
    NotKeywordModel { path: PathBuf, found: String },
    #[error("{}: {labels} labels for a model of {outputs} outputs", path.display())]
    Labels {
        path: PathBuf,
        labels: usize,
        outputs: usize,
    },
    #[error("the host runtime failed")]
    Forward(#[source] ForwardError),
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    #[error("the firmware answered {status} (code {}) to {what}", *status as u8)]
    Device { what: String, status: Status },
    #[error("cannot write a temporary model file")]
    Temp(#[source] std::io::Error),
}

/// How a clip was made exactly one second long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    Exact,
    /// Padded with silence from this many samples.
    Padded(usize),
    /// Cut from this many samples.
    Cut(usize),
}

impl Fit {
    fn of(samples: usize) -> Fit {
        match samples.cmp(&CLIP_SAMPLES) {
            std::cmp::Ordering::Equal => Fit::Exact,
            std::cmp::Ordering::Less => Fit::Padded(samples),
            std::cmp::Ordering::Greater => Fit::Cut(samples),
        }
    }

    /// A short note for tables, empty for an exact clip.
    pub fn note(&self) -> String {
        let ms = |n: usize| n as f64 * 1000.0 / mfcc::SAMPLE_RATE as f64;
        match self {
            Fit::Exact => String::new(),
            Fit::Padded(n) => format!("padded from {:.0} ms", ms(*n)),
            Fit::Cut(n) => format!("cut from {:.0} ms", ms(*n)),
        }
    }
}

/// One clip to classify.
#[derive(Clone, Debug)]
pub struct Clip {
    pub path: PathBuf,
    /// The name shown: the path below the folder given.
    pub name: String,
    /// The folder's name when the clips come in one folder per label.
    pub folder: Option<String>,
    /// The name of the folder given, or of a file's folder: the expected
    /// word when it is a label.
    pub parent: Option<String>,
    pub pcm: Box<[i16; CLIP_SAMPLES]>,
    pub fit: Fit,
}

impl Clip {
    /// The expected label: the folder's name when it is one of `labels`,
    /// else `_unknown_` where the model has that class (Speech Commands'
    /// rule for the other words), else the folder's name.
    /// Without a label folder, the name of the folder given (or of the
    /// file's folder) when it is one of `labels`.
    pub fn expected<'l>(&'l self, labels: &'l [String]) -> Option<&'l str> {
        let Some(folder) = self.folder.as_deref() else {
            let parent = self.parent.as_deref()?;
            return labels.iter().any(|l| l == parent).then_some(parent);
        };
        if labels.iter().any(|l| l == folder) {
            return Some(folder);
        }
        match labels.iter().find(|l| *l == UNKNOWN) {
            Some(u) => Some(u),
            None => Some(folder),
        }
    }
}

/// Speech Commands' class of the other words.
pub const UNKNOWN: &str = "_unknown_";

fn read_clip(path: &Path, name: String, folder: Option<String>) -> Result<Clip, KwsError> {
    let wav = wav::read(path, Some(CLIP_SAMPLES))?;
    let parent = path
        .canonicalize()
        .ok()
        .and_then(|p| Some(p.parent()?.file_name()?.to_string_lossy().into_owned()));
    Ok(Clip {
        path: path.to_owned(),
        name,
        folder,
        parent,
        pcm: Box::new(mfcc::pad_clip(&wav.samples)),
        fit: Fit::of(wav.total),
    })
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, KwsError> {
    let io = |source| KwsError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}

fn is_wav(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

/// The clips of `path`: one WAV file; or a folder of WAV files (no
/// expected label); or a folder of one sub-folder per label, as Speech
/// Commands is laid out (folders starting with `_background` are noise,
/// not clips, and are skipped), in name order.
pub fn read_clips(path: &Path) -> Result<Vec<Clip>, KwsError> {
    if path.is_file() {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        return Ok(vec![read_clip(path, name, None)?]);
    }
    let mut clips = Vec::new();
    for entry in sorted_entries(path)? {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        if is_wav(&entry) {
            clips.push(read_clip(&entry, name, None)?);
        } else if entry.is_dir() && !name.starts_with("_background") {
            for file in sorted_entries(&entry)?.into_iter().filter(|p| is_wav(p)) {
                let shown = format!("{name}/{}", file.file_name().unwrap().to_string_lossy());
                clips.push(read_clip(&file, shown, Some(name.clone()))?);
            }
        }
    }
    if clips.is_empty() {
        return Err(KwsError::NoClips {
            path: path.to_owned(),
        });
    }
    Ok(clips)
}

/// The class names of a model: one per line of `path`.
pub fn read_labels(path: &Path, model: &ConvertedModel) -> Result<Vec<String>, KwsError> {
    let text = std::fs::read_to_string(path).map_err(|source| KwsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let outputs = model.output().len();
    if labels.len() != outputs {
        return Err(KwsError::Labels {
            path: path.to_owned(),
            labels: labels.len(),
            outputs,
        });
    }
    Ok(labels)
}

/// Refuses a model whose input is not the front end's 49x10x1.
pub fn check_keyword_model(path: &Path, model: &ConvertedModel) -> Result<(), KwsError> {
    let d = model.input();
    if [d.rows, d.cols, d.channels].map(|v| v as usize) != [FRAMES, COEFFS, 1] {
        return Err(KwsError::NotKeywordModel {
            path: path.to_owned(),
            found: format!("{}x{}x{}", d.rows, d.cols, d.channels),
        });
    }
    Ok(())
}

/// One side's answer for one clip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The model input the front end computed (49 x 10 uint8).
    pub features: Vec<u8>,
    /// The model's output: potentials, or levels as integers.
    pub scores: Vec<i32>,
}

impl Answer {
    /// The top class (the first of equal scores, as the device takes it).
    pub fn class(&self) -> usize {
        let mut best = 0;
        for (i, &s) in self.scores.iter().enumerate() {
            if s > self.scores[best] {
                best = i;
            }
        }
        best
    }
}

/// The host's answers: core's front end, then the host runtime.
pub fn host_answers(model: &ConvertedModel, clips: &[Clip]) -> Result<Vec<Answer>, KwsError> {
    let mut images = vec![0u8; clips.len() * INPUT_LEN];
    for (clip, out) in clips.iter().zip(images.chunks_exact_mut(INPUT_LEN)) {
        let out: &mut [u8; INPUT_LEN] = out.try_into().expect("chunk of INPUT_LEN");
        mfcc::features(&clip.pcm, out);
    }
    let runtime = Runtime::new(model, KernelPolicy::Auto);
    let scores: Vec<i32> = match runtime.forward_batch(&images).map_err(KwsError::Forward)? {
        BatchOutput::Potentials(p) => p,
        BatchOutput::Levels(l) => l.into_iter().map(i32::from).collect(),
    };
    let k = model.output().len();
    Ok(images
        .chunks_exact(INPUT_LEN)
        .zip(scores.chunks_exact(k))
        .map(|(f, s)| Answer {
            features: f.to_vec(),
            scores: s.to_vec(),
        })
        .collect())
}

/// Instructions the M4 executed for one clip (counted under QEMU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct M4Count {
    /// The front end: 50 hops of PCM to 49 rows of features.
    pub front_end: u64,
    /// The model on those features.
    pub model: u64,
}

/// What the device run gave back.
#[derive(Clone, Debug)]
pub struct DeviceRun {
    pub answers: Vec<Answer>,
    /// The firmware's defmt log.
    pub log: Vec<String>,
    /// Per clip, when counted.
    pub counts: Option<Vec<M4Count>>,
    /// The device's memory report after the clips.
    pub info: Info,
    /// The firmware image: flash (code, tables, model) and static RAM.
    pub flash: u64,
    pub ram: u64,
    /// The firmware run (where it was built, or the ELF given).
    pub elf: PathBuf,
    pub wall: Duration,
}

/// How the device run is made (`firmware`: an ELF with the model
/// embedded, instead of building one).
pub use crate::firmware::RunOptions as DeviceOptions;

/// The device's answers: the firmware built with the model embedded (as
/// it would be flashed), run under QEMU, given the labels and then each
/// clip's raw PCM.
pub fn device_answers(
    model: &ConvertedModel,
    labels: &[String],
    clips: &[Clip],
    options: &DeviceOptions,
) -> Result<DeviceRun, KwsError> {
    let deployed;
    let (elf, shown) = match &options.firmware {
        Some(e) => (e.clone(), e.clone()),
        None => {
            let bytes =
                akd::to_bytes(model).map_err(|e| KwsError::Temp(std::io::Error::other(e)))?;
            deployed = firmware::deployed_firmware(&bytes)?;
            (deployed.elf.clone(), deployed.built.clone())
        }
    };
    let (flash, ram) = firmware::image_sizes(&elf)?;
    let mut session = Session::new();
    session.embedded().labels(labels);
    for clip in clips {
        session.keyword(&clip.pcm);
    }
    session.info().quit();
    let config = options.config(elf);
    let run = firmware::run(&config, &session)?;
    let expected = session.commands.len();
    let what = |i: usize| match i {
        0 => "the embedded model".to_owned(),
        1 => "the labels".to_owned(),
        i if i < 2 + clips.len() => format!("clip {}", clips[i - 2].name),
        _ => "the info request".to_owned(),
    };
    if let Some((i, r)) = run
        .replies
        .iter()
        .enumerate()
        .find(|(_, r)| r.status != Status::Ok)
    {
        return Err(KwsError::Device {
            what: what(i),
            status: r.status,
        });
    }
    run.completed(expected)?;
    let mut answers = Vec::with_capacity(clips.len());
    for (k, r) in run.replies[2..2 + clips.len()].iter().enumerate() {
        let n = u16::from_le_bytes([r.detail[1], r.detail[2]]) as usize;
        let malformed = || KwsError::Device {
            what: format!("clip {} (malformed reply)", clips[k].name),
            status: Status::BadFrame,
        };
        let (features, output) = (r.data.get(..n).ok_or_else(malformed)?, &r.data[n..]);
        let scores = match r.detail[0] {
            0 => output.iter().map(|&v| i32::from(v)).collect(),
            _ => output
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        };
        answers.push(Answer {
            features: features.to_vec(),
            scores,
        });
    }
    let info = Info::decode(&run.replies[2 + clips.len()].data).unwrap_or_default();
    let counts = run.counts.as_ref().map(|c| {
        // Per clip: two marks around each hop, then the model's layers + 1.
        let per_clip = 2 * mfcc::CLIP_HOPS + info.layers as usize + 1;
        c.marks
            .chunks_exact(per_clip)
            .map(|m| {
                let (hops, layers) = m.split_at(2 * mfcc::CLIP_HOPS);
                M4Count {
                    front_end: hops.chunks_exact(2).map(|p| p[1] - p[0]).sum(),
                    model: layers[layers.len() - 1] - layers[0],
                }
            })
            .collect()
    });
    Ok(DeviceRun {
        answers,
        log: run.log,
        counts,
        info,
        flash,
        ram,
        elf: shown,
        wall: run.wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::write_wav;

    fn labels() -> Vec<String> {
        ["_silence_", "_unknown_", "yes", "no"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn clips_are_fitted_to_one_second() {
        assert_eq!(Fit::of(CLIP_SAMPLES), Fit::Exact);
        assert_eq!(Fit::of(8000), Fit::Padded(8000));
        assert_eq!(Fit::of(24000), Fit::Cut(24000));
        assert_eq!(Fit::Padded(8000).note(), "padded from 500 ms");
        assert_eq!(Fit::Cut(24000).note(), "cut from 1500 ms");
        assert_eq!(Fit::Exact.note(), "");
    }

    #[test]
    fn folders_give_the_expected_word() {
        let dir = tempfile::tempdir().unwrap();
        for (folder, file, n) in [
            ("yes", "a.wav", 16000),
            ("bed", "b.wav", 8000),
            ("_background_noise_", "n.wav", 16000),
        ] {
            std::fs::create_dir(dir.path().join(folder)).unwrap();
            write_wav(&dir.path().join(folder).join(file), 1, 16000, 16, n);
        }
        write_wav(&dir.path().join("loose.wav"), 1, 16000, 16, 20000);
        let clips = read_clips(dir.path()).unwrap();
        let names: Vec<&str> = clips.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["bed/b.wav", "loose.wav", "yes/a.wav"]);
        let l = labels();
        let expected: Vec<Option<&str>> = clips.iter().map(|c| c.expected(&l)).collect();
        assert_eq!(expected, [Some("_unknown_"), None, Some("yes")]);
        assert_eq!(clips[0].fit, Fit::Padded(8000));
        assert_eq!(clips[1].fit, Fit::Cut(20000));
        assert_eq!(clips[0].pcm[7999], (7999 % 1000) as i16);
        assert_eq!(clips[0].pcm[8000], 0);
        // A folder named after a label, or a file in one.
        let yes = dir.path().join("yes");
        assert_eq!(read_clips(&yes).unwrap()[0].expected(&l), Some("yes"));
        assert_eq!(
            read_clips(&yes.join("a.wav")).unwrap()[0].expected(&l),
            Some("yes")
        );
        assert_eq!(
            read_clips(&dir.path().join("loose.wav")).unwrap()[0].expected(&l),
            None
        );
    }

    #[test]
    fn bad_audio_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (name, channels, rate, bits, says) in [
            ("stereo.wav", 2, 16000, 16, "2 channels"),
            ("cd.wav", 1, 44100, 16, "sample rate 44100 Hz"),
            ("eight.wav", 1, 16000, 8, "8-bit integer samples"),
        ] {
            let path = dir.path().join(name);
            write_wav(&path, channels, rate, bits, 100);
            let e = read_clips(&path).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(says), "{e}");
        }
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"RIFF....not a wave").unwrap();
        let e = read_clips(&junk).unwrap_err();
        assert!(matches!(e, KwsError::Wav(WavError::Parse { .. })), "{e}");
        assert!(e.to_string().contains("junk.wav"));
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = read_clips(&empty).unwrap_err().to_string();
        assert!(e.contains("no .wav files"), "{e}");
    }

    #[test]
    fn the_top_class_is_the_first_of_equals() {
        let a = Answer {
            features: vec![],
            scores: vec![3, 7, 7, -1],
        };
        assert_eq!(a.class(), 1);
    }
}
