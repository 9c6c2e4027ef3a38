//! `kws_demo`: spoken words in, the same answer from the host and the
//! Cortex-M4F firmware under QEMU.
//!
//! For each clip the host computes the front end (core's MFCC) and runs
//! the model with the host runtime; the firmware, built with the model
//! embedded as it would be flashed, receives the raw 16 kHz PCM, computes
//! the same front end on the M4, runs the model and logs its answer. The
//! report is a table per clip and a summary: accuracy of each side and
//! their agreement on features, potentials and labels, which must be total.
//! `--from-scratch` first makes the model with the tool chain's own
//! commands (create, train, quantize, tune, convert) on a Speech Commands
//! folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cnn2snn::{ConvertOptions, QuantizeOptions};
use crate::commands::akida_models::{self, CreateError};
use crate::commands::cnn2snn::{self, FlowError};
use crate::formats::{self, ModelFileError};
use crate::fsutil;
use crate::kws::{self, Answer, Clip, DeviceOptions, DeviceRun, KwsError, M4Count};

/// The shipped model, its labels and clips (`models/ds_cnn_kws_12`).
pub fn shipped_dir() -> PathBuf {
    source_path("../models/ds_cnn_kws_12")
}

/// A path of the source tree (shown without `..` where it exists).
fn source_path(relative: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    p.canonicalize().unwrap_or(p)
}

/// The shipped converted model.
pub fn shipped_model() -> PathBuf {
    shipped_dir().join("ds_cnn_kws_12_iq8_wq4_aq4.akd")
}

/// The shipped clips (48 clips of the test split, four per class).
pub fn shipped_clips() -> PathBuf {
    shipped_dir().join("clips")
}

/// The mini Speech Commands set of the tests (`--from-scratch` default).
pub fn mini_set() -> PathBuf {
    source_path("../tests/data/datasets/speech_commands-mini")
}

/// Clock of the always-on estimate.
pub const CLOCK_HZ: f64 = 120e6;

/// Why `kws_demo` failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Kws(#[from] KwsError),
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    #[error(transparent)]
    Dataset(#[from] crate::datasets::DatasetError),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Flow(Box<FlowError>),
    #[error("{}: no labels file beside the model; give --labels FILE (one class name per line)", path.display())]
    NoLabels { path: PathBuf },
    #[error("cannot run {} (kws_train is expected beside kws_demo: build it with `cargo build --release -p akida-train`)", program.display())]
    Tool {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status})")]
    Step { command: String, status: String },
    #[error("{}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("host and device disagree on {0} clip(s)")]
    Disagree(usize),
}

impl From<FlowError> for DemoError {
    fn from(e: FlowError) -> Self {
        DemoError::Flow(Box::new(e))
    }
}

/// `--from-scratch`: where the data is and how long to train.
#[derive(Clone, Debug)]
pub struct ScratchOptions {
    /// A Speech Commands folder (official layout).
    pub data_dir: PathBuf,
    /// Where the models are written.
    pub out: PathBuf,
    pub epochs: u32,
    pub tune_epochs: u32,
    /// The folder holding `kws_train`.
    pub tools: PathBuf,
}

/// What `kws_demo` runs on.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub model: PathBuf,
    /// One class name per line; default `labels.txt` beside the model.
    pub labels: Option<PathBuf>,
    /// A WAV file or a folder of them; default the shipped clips.
    pub audio: PathBuf,
    pub device: DeviceOptions,
}

/// One clip's line of the report.
#[derive(Clone, Debug)]
pub struct Row {
    pub clip: Clip,
    pub expected: Option<String>,
    pub host: Answer,
    pub device: Answer,
}

impl Row {
    pub fn agrees(&self) -> bool {
        self.host == self.device
    }
}

/// The outcome of a demo run.
#[derive(Clone, Debug)]
pub struct DemoReport {
    pub model: PathBuf,
    pub labels: Vec<String>,
    pub rows: Vec<Row>,
    pub device: DeviceRun,
}

/// Counts of one side's right answers among the clips with an expected word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Score {
    pub right: usize,
    pub of: usize,
}

impl Score {
    pub fn percent(&self) -> f64 {
        100.0 * self.right as f64 / self.of.max(1) as f64
    }
}

impl DemoReport {
    fn word(&self, a: &Answer) -> &str {
        &self.labels[a.class()]
    }

    /// Accuracy of the host (`device = false`) or the device.
    pub fn accuracy(&self, device: bool) -> Score {
        let mut s = Score { right: 0, of: 0 };
        for r in &self.rows {
            if let Some(e) = &r.expected {
                s.of += 1;
                let a = if device { &r.device } else { &r.host };
                s.right += usize::from(self.word(a) == e);
            }
        }
        s
    }

    /// Clips on which host and device agree: features, potentials, labels.
    pub fn agreement(&self) -> [usize; 3] {
        let count = |f: &dyn Fn(&Row) -> bool| self.rows.iter().filter(|r| f(r)).count();
        [
            count(&|r| r.host.features == r.device.features),
            count(&|r| r.host.scores == r.device.scores),
            count(&|r| r.host.class() == r.device.class()),
        ]
    }

    /// Per-clip M4 figures (minimum and maximum over the clips).
    pub fn m4_range(&self) -> Option<(M4Count, M4Count)> {
        let c = self.device.counts.as_ref()?;
        let lo = M4Count {
            front_end: c.iter().map(|x| x.front_end).min()?,
            model: c.iter().map(|x| x.model).min()?,
        };
        let hi = M4Count {
            front_end: c.iter().map(|x| x.front_end).max()?,
            model: c.iter().map(|x| x.model).max()?,
        };
        Some((lo, hi))
    }

    /// One JSON record per clip.
    pub fn to_json(&self) -> serde_json::Value {
        let records: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "file": r.clip.path.display().to_string(),
                    "expected": r.expected,
                    "host": self.word(&r.host),
                    "device": self.word(&r.device),
                    "host_scores": r.host.scores,
                    "device_scores": r.device.scores,
                    "fit": match r.clip.fit.note().as_str() { "" => "1 s".to_owned(), n => n.to_owned() },
                })
            })
            .collect();
        serde_json::Value::Array(records)
    }
}

fn ms(instructions: u64) -> f64 {
    instructions as f64 / CLOCK_HZ * 1e3
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w = self
            .rows
            .iter()
            .map(|r| r.clip.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let word_w = self
            .labels
            .iter()
            .map(|l| l.len())
            .max()
            .unwrap_or(4)
            .max(8);
        // The host's word is followed by a one-character mark.
        let host_w = word_w + 1;
        writeln!(
            f,
            "{:<name_w$}  {:<word_w$}  {:<host_w$}  {:<word_w$}  {:>10}  {:>12}  note",
            "clip", "expected", "host", "device", "host score", "device score",
        )?;
        for r in &self.rows {
            let mark = |a: &Answer| match &r.expected {
                Some(e) if self.word(a) != e => "*",
                _ => " ",
            };
            let mut note = r.clip.fit.note();
            if !r.agrees() {
                note = format!("HOST AND DEVICE DIFFER {note}");
            }
            writeln!(
                f,
                "{:<name_w$}  {:<word_w$}  {:<word_w$}{}  {:<word_w$}  {:>10}  {:>12}  {}",
                r.clip.name,
                r.expected.as_deref().unwrap_or("-"),
                self.word(&r.host),
                mark(&r.host),
                self.word(&r.device),
                r.host.scores[r.host.class()],
                r.device.scores[r.device.class()],
                note
            )?;
        }
        let n = self.rows.len();
        let [features, potentials, labels] = self.agreement();
        let (host, device) = (self.accuracy(false), self.accuracy(true));
        let accuracy = |s: Score| match s.of {
            0 => "- (no expected words)".to_owned(),
            _ => format!("{:.1} % ({}/{})", s.percent(), s.right, s.of),
        };
        writeln!(
            f,
            "clips {n}, host accuracy {}, device accuracy {}, host-device agreement: features {features}/{n}, potentials {potentials}/{n}, labels {labels}/{n}",
            accuracy(host),
            accuracy(device)
        )?;
        writeln!(f, "(* a wrong word; scores are the top class's potential)")?;
        let i = &self.device.info;
        writeln!(
            f,
            "device: {} (model embedded, no loader), flash {} B, static RAM {} B + stack peak {} B; model {} B, workspace {} B",
            self.device.elf.display(),
            self.device.flash,
            self.device.ram,
            i.stack_peak,
            i.model_bytes,
            i.workspace_bytes
        )?;
        if let Some((lo, hi)) = self.m4_range() {
            let range = |a: u64, b: u64| match a == b {
                true => format!("{a}"),
                false => format!("{a}..{b}"),
            };
            writeln!(
                f,
                "per clip on the M4 (instructions counted under QEMU): front end {}, model {}, total {} = {:.1} ms at 120 MHz (estimate: one instruction per cycle; budget 50 ms)",
                range(lo.front_end, hi.front_end),
                range(lo.model, hi.model),
                range(lo.front_end + lo.model, hi.front_end + hi.model),
                ms(hi.front_end + hi.model)
            )?;
        }
        Ok(())
    }
}

/// The labels of `options`: `--labels`, else `labels.txt` beside the model.
fn labels_path(options: &DemoOptions) -> Result<PathBuf, DemoError> {
    if let Some(p) = &options.labels {
        return Ok(p.clone());
    }
    let beside = options.model.with_file_name("labels.txt");
    match beside.is_file() {
        true => Ok(beside),
        false => Err(DemoError::NoLabels {
            path: options.model.clone(),
        }),
    }
}

/// Classifies the clips on the host and on the device.
pub fn run(options: &DemoOptions) -> Result<DemoReport, DemoError> {
    let model = formats::load(&options.model)?;
    kws::check_keyword_model(&options.model, &model)?;
    let labels = kws::read_labels(&labels_path(options)?, &model)?;
    let clips = kws::read_clips(&options.audio)?;
    let host = kws::host_answers(&model, &clips)?;
    let device = kws::device_answers(&model, &labels, &clips, &options.device)?;
    let rows = clips
        .into_iter()
        .zip(host)
        .zip(device.answers.iter().cloned())
        .map(|((clip, host), device)| Row {
            expected: clip.expected(&labels).map(str::to_owned),
            clip,
            host,
            device,
        })
        .collect();
    Ok(DemoReport {
        model: options.model.clone(),
        labels,
        rows,
        device,
    })
}

/// Writes the report's JSON records (atomically).
pub fn write_json(report: &DemoReport, path: &Path) -> Result<(), DemoError> {
    let text = serde_json::to_string_pretty(&report.to_json()).expect("JSON of plain values");
    fsutil::atomic_write(path, text.as_bytes()).map_err(|source| DemoError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The error when host and device differ anywhere.
pub fn check_agreement(report: &DemoReport) -> Result<(), DemoError> {
    match report.rows.iter().filter(|r| !r.agrees()).count() {
        0 => Ok(()),
        n => Err(DemoError::Disagree(n)),
    }
}

/// `--from-scratch`: the documented flow, printing each step as its
/// command: `akida_models create`, `kws_train train`, `cnn2snn quantize`,
/// `kws_train tune`, `cnn2snn convert` (the `akida_models` and `cnn2snn`
/// steps call the functions those commands call; `kws_train`, of the
/// training crate, runs as a program from `tools`). Returns the converted
/// model, with `labels.txt` (the data's classes) beside it.
pub fn from_scratch(o: &ScratchOptions) -> Result<PathBuf, DemoError> {
    let classes = crate::datasets::speech_commands::classes(&o.data_dir)?;
    std::fs::create_dir_all(&o.out).map_err(|source| DemoError::Write {
        path: o.out.clone(),
        source,
    })?;
    let n = classes.len();
    let h5 = o.out.join(format!("ds_cnn_kws_{n}.h5"));
    let say = |command: String| println!("$ {command}");
    say(format!(
        "akida_models create -s {} ds_cnn_kws --classes {n}",
        h5.display()
    ));
    akida_models::create("ds_cnn_kws", Some(&h5), 0, Some(n))?;
    train(o, "train", &h5, o.epochs, n)?;
    say(format!(
        "cnn2snn -m {} quantize -iq 8 -wq 4 -aq 4",
        h5.display()
    ));
    let options = QuantizeOptions {
        input_weight_bits: Some(8),
        ..QuantizeOptions::new(4, 4)
    };
    let quantized = cnn2snn::quantize_file(&h5, &options, None)?;
    train(o, "tune", &quantized, o.tune_epochs, n)?;
    say(format!("cnn2snn -m {} convert", quantized.display()));
    let (akd, conversion) = cnn2snn::convert_file(&quantized, &ConvertOptions::default(), None)?;
    for note in &conversion.notes {
        println!("note: {note}");
    }
    let labels = akd.with_file_name("labels.txt");
    fsutil::atomic_write(&labels, (classes.join("\n") + "\n").as_bytes()).map_err(|source| {
        DemoError::Write {
            path: labels.clone(),
            source,
        }
    })?;
    println!(
        "(flash: the firmware is built below with {} embedded)",
        akd.display()
    );
    Ok(akd)
}

/// `kws_train ACTION -m MODEL -e EPOCHS --classes N --data-dir D`.
fn train(
    o: &ScratchOptions,
    action: &str,
    model: &Path,
    epochs: u32,
    classes: usize,
) -> Result<(), DemoError> {
    let program = o.tools.join("kws_train");
    let mut c = Command::new(&program);
    c.arg(action).arg("-m").arg(model);
    c.args(["-e", &epochs.to_string(), "--classes", &classes.to_string()]);
    c.arg("--no-progress").arg("--data-dir").arg(&o.data_dir);
    println!(
        "$ kws_train {action} -m {} -e {epochs} --classes {classes} --data-dir {}",
        model.display(),
        o.data_dir.display()
    );
    let status = c.status().map_err(|source| DemoError::Tool {
        program: program.clone(),
        source,
    })?;
    match status.success() {
        true => Ok(()),
        false => Err(DemoError::Step {
            command: format!("kws_train {action} -m {}", model.display()),
            status: status.to_string(),
        }),
    }
}
