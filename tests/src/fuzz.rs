//! Fuzz targets: every parser of a file a user hands the tools, each run on
//! arbitrary bytes. A target returns normally whatever the bytes (the parse
//! may fail, with a typed error); a panic, an abort, a hang or unbounded
//! memory is a defect.
//!
//! `src/bin/fuzz.rs` mutates the seed corpora of `data/fuzz/<target>/`
//! (real files) and runs a target on each mutant (`scripts/fuzz.sh`);
//! `tests/fuzz_corpora.rs` replays the corpora, the findings kept as
//! regression cases, in CI.

use std::path::{Path, PathBuf};

/// A fuzz target: a name (its corpus folder) and what it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `.akd` bytes through the core's decoder, as the firmware runs it, and
    /// the host's loader.
    Akd,
    /// `.fbz` bytes through the host's reader (Snappy, FlatBuffers, params).
    Fbz,
    /// A Keras `model_config` (JSON text) through the graph builder, the
    /// shape and weight checks and cnn2snn's check.
    ModelConfig,
    /// A `.h5` file through the Keras reader (HDF5, attributes, weights).
    H5,
    /// A `.npy` file.
    Npy,
    /// A `.npz` archive, every member read.
    Npz,
    /// A CIFAR-10 binary batch.
    Cifar10,
    /// A WAV clip through `kws_demo`'s reader (format checks, one second).
    Wav,
}

impl Target {
    pub const ALL: [Target; 8] = [
        Target::Akd,
        Target::Fbz,
        Target::ModelConfig,
        Target::H5,
        Target::Npy,
        Target::Npz,
        Target::Cifar10,
        Target::Wav,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Akd => "akd",
            Target::Fbz => "fbz",
            Target::ModelConfig => "model_config",
            Target::H5 => "h5",
            Target::Npy => "npy",
            Target::Npz => "npz",
            Target::Cifar10 => "cifar10",
            Target::Wav => "wav",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The extension of the file a file-based target writes.
    fn extension(self) -> &'static str {
        match self {
            Target::H5 => "h5",
            Target::Npy => "npy",
            Target::Npz => "npz",
            Target::Cifar10 => "bin",
            Target::Wav => "wav",
            Target::Akd => "akd",
            Target::Fbz => "fbz",
            Target::ModelConfig => "json",
        }
    }

    /// Whether the target reads a file (the bytes are written to one first).
    fn reads_a_file(self) -> bool {
        matches!(
            self,
            Target::H5 | Target::Npy | Target::Npz | Target::Cifar10 | Target::Wav
        )
    }

    /// The seed corpus and regression folder, `tests/data/fuzz/<name>`.
    pub fn corpus_dir(self) -> PathBuf {
        crate::data_dir().join("fuzz").join(self.name())
    }
}

/// Runs targets; file-based ones write their input into a scratch folder.
pub struct Runner {
    file: PathBuf,
    target: Target,
    _dir: tempfile::TempDir,
}

impl Runner {
    /// A runner of `target`, its scratch file in `tmp` (a RAM disk such as
    /// `/dev/shm` is fastest) or the system's temporary folder.
    pub fn new(target: Target, tmp: Option<&Path>) -> std::io::Result<Runner> {
        let mut b = tempfile::Builder::new();
        b.prefix("akida-fuzz-");
        let dir = match tmp {
            Some(t) => b.tempdir_in(t)?,
            None => b.tempdir()?,
        };
        let file = dir.path().join(format!("input.{}", target.extension()));
        Ok(Runner {
            file,
            target,
            _dir: dir,
        })
    }

    /// Runs the target on `data`; `Ok` whether or not the parse succeeded,
    /// `Err` only when writing the scratch file failed.
    pub fn run(&self, data: &[u8]) -> std::io::Result<Outcome> {
        if self.target.reads_a_file() {
            std::fs::write(&self.file, data)?;
        }
        Ok(match self.target {
            Target::Akd => akd(data),
            Target::Fbz => fbz(data),
            Target::ModelConfig => model_config(data),
            Target::H5 => h5(&self.file),
            Target::Npy => npy(&self.file),
            Target::Npz => npz(&self.file),
            Target::Cifar10 => cifar10(&self.file),
            Target::Wav => outcome(akida_host::kws::read_clips(&self.file)),
        })
    }
}

/// What a run of a target gave (both are fine; only a crash is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Parsed,
    Refused,
}

fn outcome<T, E>(r: Result<T, E>) -> Outcome {
    match r {
        Ok(_) => Outcome::Parsed,
        Err(_) => Outcome::Refused,
    }
}

/// The core's decoder (what the firmware runs on its embedded model), then
/// the host's loader; both must agree. The same bytes with the header's
/// length and checksum made right are decoded too (else nearly every
/// mutant stops at the checksum), and a small model either accepts is run.
fn akd(data: &[u8]) -> Outcome {
    let mut outcome = akd_once(data);
    if data.len() >= akida_core::format::HEADER_LEN {
        let mut fixed = data.to_vec();
        let payload_len = (data.len() - akida_core::format::HEADER_LEN) as u32;
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC)
            .checksum(&data[akida_core::format::HEADER_LEN..]);
        fixed[8..12].copy_from_slice(&payload_len.to_le_bytes());
        fixed[12..16].copy_from_slice(&crc.to_le_bytes());
        if akd_once(&fixed) == Outcome::Parsed {
            outcome = Outcome::Parsed;
        }
    }
    outcome
}

fn akd_once(data: &[u8]) -> Outcome {
    let core = akida_core::decode(data);
    let host = akida_host::formats::akd::from_bytes(data);
    assert_eq!(core.is_ok(), host.is_ok(), "core and host disagree");
    match host {
        Ok(model) => {
            let again = akida_host::formats::akd::to_bytes(&model).expect("re-encode");
            assert_eq!(
                akida_host::formats::akd::from_bytes(&again).expect("decode again"),
                model
            );
            run_small(&model, data.len());
            Outcome::Parsed
        }
        Err(_) => Outcome::Refused,
    }
}

/// Runs a model read from `file_len` bytes on an image of ones, when both
/// are small (a valid model always runs: no panic, no overflow).
fn run_small(model: &akida_host::formats::akd::ConvertedModel, file_len: usize) {
    use akida_host::runtime::{KernelPolicy, Runtime};
    let _ = (model.workspace_sizes(true), model.workspace_sizes(false));
    let input = model.input().len();
    if file_len > 1 << 16 || input > 32 * 32 * 3 {
        return;
    }
    let runtime = Runtime::new(model, KernelPolicy::Auto);
    let _ = runtime.forward_batch(&vec![1u8; input]);
}

/// The `.fbz` reader; a model it accepts is written back and read again.
fn fbz(data: &[u8]) -> Outcome {
    use akida_host::formats::fbz;
    match fbz::from_fbz_bytes(data) {
        Ok(model) => {
            let bytes = fbz::to_fbz_bytes(&model).expect("a model read is written");
            assert_eq!(fbz::from_fbz_bytes(&bytes).expect("read back"), model);
            run_small(&model, data.len());
            Outcome::Parsed
        }
        Err(_) => Outcome::Refused,
    }
}

/// A `model_config` JSON: the graph, its shapes, weights made for it (the
/// weight-shape checks), the summary and cnn2snn's check.
fn model_config(data: &[u8]) -> Outcome {
    use akida_host::keras;
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return Outcome::Refused;
    };
    let Ok(mut model) = keras::json::parse_model_config(&value) else {
        return Outcome::Refused;
    };
    let _ = model.summary();
    // Weights of the shapes the config calls for (small ones only: the
    // shapes are checked against the limits, not allocated beyond them).
    let inputs = model.known_input_shapes();
    for (layer, input) in model.layers.iter_mut().zip(inputs) {
        let Some([one]) = input.as_deref() else {
            continue;
        };
        let Ok(Some(specs)) = layer.config.weight_specs(one) else {
            continue;
        };
        let small = specs
            .iter()
            .all(|s| s.shape.iter().product::<usize>() <= 1 << 16);
        if !small {
            return Outcome::Parsed;
        }
        layer.weights = specs
            .iter()
            .map(|s| {
                let n = s.shape.iter().product();
                keras::Weight::new(&layer.name, s.role, s.shape.clone(), vec![0.5; n])
            })
            .collect();
    }
    if model.validate().is_err() {
        return Outcome::Refused;
    }
    let _ = akida_host::cnn2snn::check_model(&model, None);
    Outcome::Parsed
}

fn h5(path: &Path) -> Outcome {
    match akida_host::keras::read_model(path) {
        // HDF5 looped on the file; its stuck thread holds HDF5's lock, so
        // this process can read no other: a hang (status 3, as the driver's
        // watchdog ends it), the input kept by scripts/fuzz.sh.
        Err(akida_host::keras::H5Error::Stuck { .. }) => {
            eprintln!("fuzz: HDF5 did not finish reading an input");
            std::process::exit(3)
        }
        Ok(model) => {
            let _ = model.summary();
            let _ = akida_host::cnn2snn::check_model(&model, None);
            Outcome::Parsed
        }
        Err(_) => Outcome::Refused,
    }
}

fn npy(path: &Path) -> Outcome {
    let _ = akida_host::formats::npy::npy_dtype(path);
    outcome(akida_host::formats::npy::read_npy(path))
}

fn npz(path: &Path) -> Outcome {
    let Ok(mut npz) = akida_host::formats::npy::Npz::open(path) else {
        return Outcome::Refused;
    };
    let mut result = Outcome::Parsed;
    for name in npz.names() {
        if npz.get(&name).is_err() {
            result = Outcome::Refused;
        }
    }
    result
}

fn cifar10(path: &Path) -> Outcome {
    outcome(akida_host::datasets::cifar10::read_batch(path))
}

// ------------------------------------------------------------- mutations

/// A small, fast, seedable generator (SplitMix64): the same seed gives the
/// same mutants, so a finding can be replayed from its seed and index.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values that often break parsers: bounds of the integer types.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX,
];

/// Numbers that often break config readers.
const INTERESTING_NUMBERS: [&str; 12] = [
    "0",
    "-1",
    "1",
    "2",
    "4294967296",
    "4294967298",
    "100000",
    "-2147483648",
    "1e308",
    "NaN",
    "18446744073709551616",
    "0.0",
];

/// One mutant of `input` (`other` is a second corpus entry to splice with):
/// one to eight of bit flips, interesting bytes and words, removed,
/// inserted or repeated ranges, truncation, splicing, and, in text, numbers
/// replaced by interesting ones.
pub fn mutate(input: &[u8], other: &[u8], rng: &mut Rng, text: bool) -> Vec<u8> {
    let mut data = input.to_vec();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(if text { 11 } else { 9 }) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())] as u8;
            }
            3 if len >= 8 => {
                let width = [2, 4, 8][rng.below(3)];
                let i = rng.below(len - width + 1);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                data[i..i + width].copy_from_slice(&bytes[..width]);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                data.drain(i..i + n);
            }
            5 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(64);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(i..i, bytes);
            }
            6 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            7 if len > 0 => data.truncate(rng.below(len)),
            8 if !other.is_empty() && len > 0 => {
                let cut = rng.below(len);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            9 | 10 => replace_number(&mut data, rng),
            _ => {}
        }
    }
    data
}

/// Replaces a run of digits (with its sign) by an interesting number.
fn replace_number(data: &mut Vec<u8>, rng: &mut Rng) {
    let starts: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let start = starts[rng.below(starts.len())];
    let mut end = start;
    while end < data.len() && (data[end].is_ascii_digit() || data[end] == b'.') {
        end += 1;
    }
    let start = if start > 0 && data[start - 1] == b'-' {
        start - 1
    } else {
        start
    };
    let number = INTERESTING_NUMBERS[rng.below(INTERESTING_NUMBERS.len())];
    data.splice(start..end, number.bytes());
}

/// The files of a corpus folder, sorted by name (an empty list when the
/// folder does not exist).
pub fn corpus(target: Target) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = target.corpus_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Whether a target's inputs are text (numbers are mutated as text too).
pub fn is_text(target: Target) -> bool {
    matches!(target, Target::ModelConfig)
}
