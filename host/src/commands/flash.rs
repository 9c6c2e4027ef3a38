//! `akida flash`: a converted model on the Cortex-M4F firmware.
//!
//! - `--target qemu`: the firmware built once (run-time loading) runs under
//!   QEMU's `mps2-an386`; the model is loaded over the I/O boundary
//!   (semihosting files or the CMSDK UART), the inputs run through it, the
//!   outputs come back (`-o Y.npy`), with the device's memory figures and
//!   the instructions of every layer (a QEMU TCG plugin).
//! - `--target probe --chip NAME`: firmware for the board of that chip,
//!   built with the model embedded, flashed and run with `probe-rs run`
//!   (its CLI, when installed; `--build-only` stops after the build).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use akida_core::stream::prepare;
use akida_core::wire::{Info, Status};

use crate::commands::akida::{batch_size, BatchError};
use crate::firmware::{self, FirmwareError, Session, Transport};
use crate::formats::akd::{self, ConvertedModel};
use crate::formats::npy::{self, Tensor, TensorData, TensorError};
use crate::formats::{self, ModelFileError};

/// Why `akida flash` failed.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("{}", path.display())]
    Input { path: PathBuf, source: BatchError },
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    #[error("{}: the firmware refused the model: {status} (code {})", path.display(), *status as u8)]
    Refused { path: PathBuf, status: Status },
    #[error("the firmware failed on input {image}: {status} (code {})", *status as u8)]
    Inference { image: usize, status: Status },
    #[error("no board for chip `{0}`; boards: {1}")]
    UnknownChip(String, String),
    #[error("cannot run {program} ({source}); install it with `cargo install probe-rs-tools` (docs/FIRMWARE.md). The firmware is built: {}", elf.display())]
    ProbeRs {
        program: String,
        elf: PathBuf,
        source: std::io::Error,
    },
    #[error("{program} failed ({status})")]
    ProbeRsFailed { program: String, status: String },
    #[error("cannot write a temporary model file")]
    Temp(#[source] std::io::Error),
}

/// How `akida flash --target qemu` runs.
pub use crate::firmware::RunOptions as QemuOptions;

/// One layer's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerFigures {
    pub name: String,
    pub kind: &'static str,
    pub macs: u64,
    /// Whether the M4 kernels run it.
    pub fast: bool,
    /// Instructions per inference (the same for every input).
    pub instructions: Option<u64>,
}

/// What a run on the firmware under QEMU reports.
#[derive(Clone, Debug)]
pub struct FlashReport {
    pub model: PathBuf,
    pub transport: Transport,
    pub images: usize,
    /// The device's view of the model and its memory.
    pub info: Info,
    /// Bytes of the prepared layer table an embedded build adds to flash.
    pub layer_table: usize,
    pub layers: Vec<LayerFigures>,
    /// Range of the instructions per inference over the inputs.
    pub per_inference: Option<(u64, u64)>,
    pub log: Vec<String>,
    pub wall: Duration,
}

impl FlashReport {
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|l| l.macs).sum()
    }
}

impl fmt::Display for FlashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.info;
        writeln!(
            f,
            "{}: {} images on akida-firmware under QEMU (mps2-an386, Cortex-M4F), {}, run-time loader, {:.2} s",
            self.model.display(),
            self.images,
            self.transport.name(),
            self.wall.as_secs_f64()
        )?;
        writeln!(
            f,
            "model: {} layers ({} on the M4 kernels), {} B as loaded ({} B of variables)",
            i.layers, i.fast_layers, i.model_bytes, i.variable_bytes
        )?;
        writeln!(
            f,
            "flash (model embedded): {} B model + {} B layer table = {} B",
            i.model_bytes,
            self.layer_table,
            i.model_bytes as usize + self.layer_table
        )?;
        let ram = i.workspace_bytes + i.input_len + i.stack_peak;
        writeln!(
            f,
            "RAM for this model: workspace {} B (levels {} + {} B, scratch and output the rest), input {} B, inference stack {} B: {} B",
            i.workspace_bytes, i.levels_a, i.levels_b, i.input_len, i.stack_peak, ram
        )?;
        if self.layers.iter().any(|l| l.instructions.is_some()) {
            writeln!(f, "instructions per inference:")?;
            let w = self
                .layers
                .iter()
                .map(|l| l.name.len())
                .max()
                .unwrap_or(5)
                .max(5);
            writeln!(
                f,
                "  {:<w$}  {:<22}  {:>10}  {:>12}  {:>7}",
                "layer", "type", "MACs", "instructions", "per MAC"
            )?;
            for l in &self.layers {
                let n = l.instructions.unwrap_or(0);
                writeln!(
                    f,
                    "  {:<w$}  {:<22}  {:>10}  {:>12}  {:>7.2}{}",
                    l.name,
                    l.kind,
                    l.macs,
                    n,
                    n as f64 / l.macs.max(1) as f64,
                    if l.fast { "" } else { "  (portable)" }
                )?;
            }
            if let Some((lo, hi)) = self.per_inference {
                let range = if lo == hi {
                    String::new()
                } else {
                    format!(" (min, max {hi})")
                };
                writeln!(
                    f,
                    "  {:<w$}  {:<22}  {:>10}  {:>12}  {:>7.2}{range}",
                    "total",
                    "",
                    self.macs(),
                    lo,
                    lo as f64 / self.macs().max(1) as f64
                )?;
            }
        }
        Ok(())
    }
}

/// The `.akd` bytes of a model file (`.akd` or `.fbz`).
fn akd_bytes(path: &Path) -> Result<(ConvertedModel, Vec<u8>), FlashError> {
    let model = formats::load(path)?;
    let bytes = akd::to_bytes(&model).map_err(|source| ModelFileError::Akd {
        path: path.to_owned(),
        source,
    })?;
    Ok((model, bytes))
}

/// The input images of `-i` (uint8 NHWC or one HWC), or one all-zero image.
fn inputs(
    model: &ConvertedModel,
    path: Option<&Path>,
) -> Result<(Vec<u8>, usize, bool), FlashError> {
    let Some(path) = path else {
        return Ok((vec![0; model.input().len()], 1, false));
    };
    let t = npy::read_npy(path)?;
    let bad = |source| FlashError::Input {
        path: path.to_owned(),
        source,
    };
    let data = t.as_u8().ok_or_else(|| {
        bad(BatchError::DType {
            found: t.dtype_name().to_owned(),
        })
    })?;
    let (n, batched) = batch_size(&t.shape, model.input()).map_err(bad)?;
    Ok((data.to_vec(), n, batched))
}

/// `akida flash --target qemu`: loads the model into the firmware at run
/// time, runs the inputs, writes the outputs (`output`), and reports.
pub fn flash_qemu(
    model_path: &Path,
    input: Option<&Path>,
    output: Option<&Path>,
    options: &QemuOptions,
) -> Result<FlashReport, FlashError> {
    let (model, bytes) = akd_bytes(model_path)?;
    let (images, n, batched) = inputs(&model, input)?;
    let elf = match &options.firmware {
        Some(e) => e.clone(),
        None => firmware::qemu_firmware()?,
    };
    let mut session = Session::new();
    session.load(&bytes);
    for image in images.chunks_exact(model.input().len()) {
        session.infer(image);
    }
    session.info().quit();
    let config = options.config(elf);
    let run = firmware::run(&config, &session)?;
    let expected = session.commands.len();
    if let Err(e) = run.completed(expected) {
        if let Some(r) = run.replies.first().filter(|r| r.status != Status::Ok) {
            return Err(FlashError::Refused {
                path: model_path.to_owned(),
                status: r.status,
            });
        }
        return Err(e.into());
    }
    if run.replies[0].status != Status::Ok {
        return Err(FlashError::Refused {
            path: model_path.to_owned(),
            status: run.replies[0].status,
        });
    }
    let mut levels = Vec::new();
    let mut potentials = Vec::new();
    for (k, r) in run.replies[1..=n].iter().enumerate() {
        if r.status != Status::Ok {
            return Err(FlashError::Inference {
                image: k,
                status: r.status,
            });
        }
        match r.detail[0] {
            0 => levels.extend_from_slice(&r.data),
            _ => potentials.extend(
                r.data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
        }
    }
    let info = Info::decode(&run.replies[n + 1].data).unwrap_or_default();
    if let Some(path) = output {
        let out = model.output();
        let hwc = [out.rows, out.cols, out.channels].map(|d| d as usize);
        let shape = if batched {
            std::iter::once(n).chain(hwc).collect()
        } else {
            hwc.to_vec()
        };
        let data = match model.outputs_levels() {
            true => TensorData::U8(levels),
            false => TensorData::I32(potentials),
        };
        npy::write_npy(path, &Tensor { shape, data })?;
    }
    let prepared = prepare(&bytes).map_err(|e| FlashError::Refused {
        path: model_path.to_owned(),
        status: akida_core::wire::model_status(&e),
    })?;
    let stream = prepared.model();
    let per_layer = run
        .counts
        .as_ref()
        .map(|c| firmware::layer_counts(&c.marks, stream.layers().len()));
    let layers = (0..stream.layers().len())
        .map(|i| LayerFigures {
            name: stream.name(i).to_owned(),
            kind: stream.layers()[i].params.kind.name(),
            macs: stream.macs(i),
            fast: stream.layers()[i].fast,
            instructions: per_layer.as_ref().and_then(|p| p.first()).map(|c| c[i]),
        })
        .collect();
    let per_inference = per_layer.as_ref().and_then(|p| {
        let totals: Vec<u64> = p.iter().map(|c| c.iter().sum()).collect();
        Some((*totals.iter().min()?, *totals.iter().max()?))
    });
    Ok(FlashReport {
        model: model_path.to_owned(),
        transport: options.transport,
        images: n,
        info,
        layer_table: prepared.layers_postcard().len(),
        layers,
        per_inference,
        log: run.log,
        wall: run.wall,
    })
}

/// The boards `--target probe` builds for: chip name prefix, package,
/// description.
pub const BOARDS: [(&str, &str, &str); 1] = [(
    "nrf52840",
    "akida-board-nrf52840",
    "nRF52840 (Cortex-M4F, 1 MiB flash, 256 KiB RAM), e.g. nRF52840_xxAA",
)];

/// What `--target probe` built.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    pub chip: String,
    pub package: &'static str,
    pub elf: PathBuf,
    /// Flash and static RAM of the image.
    pub flash: u64,
    pub ram: u64,
    /// Whether probe-rs ran it.
    pub flashed: bool,
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} for {}: {} ({} B of flash, {} B of static RAM besides the stack)",
            self.package,
            self.chip,
            self.elf.display(),
            self.flash,
            self.ram
        )?;
        if !self.flashed {
            writeln!(f, "not flashed (--build-only)")?;
        }
        Ok(())
    }
}

/// `akida flash --target probe`: the board firmware of `chip` with the
/// model embedded, then `probe-rs run --chip CHIP ELF` (unless
/// `build_only`).
pub fn flash_probe(
    model_path: &Path,
    chip: &str,
    probe_rs: &Path,
    build_only: bool,
) -> Result<ProbeReport, FlashError> {
    let lower = chip.to_ascii_lowercase();
    let Some((_, package, _)) = BOARDS.iter().find(|(p, _, _)| lower.starts_with(p)) else {
        let names = BOARDS
            .iter()
            .map(|(_, _, d)| *d)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(FlashError::UnknownChip(chip.to_owned(), names));
    };
    // Validated here, and again by the build script that embeds it.
    let (_, bytes) = akd_bytes(model_path)?;
    let dir = tempfile::tempdir().map_err(FlashError::Temp)?;
    let akd = dir.path().join("model.akd");
    std::fs::write(&akd, &bytes).map_err(FlashError::Temp)?;
    let elf = firmware::build(
        &firmware::firmware_dir(),
        Some(package),
        &[],
        &[("AKIDA_MODEL", &akd)],
    )?;
    let (flash, ram) = firmware::image_sizes(&elf)?;
    let mut report = ProbeReport {
        chip: chip.to_owned(),
        package,
        elf: elf.clone(),
        flash,
        ram,
        flashed: false,
    };
    if build_only {
        return Ok(report);
    }
    let program = probe_rs.display().to_string();
    let status = std::process::Command::new(probe_rs)
        .args(["run", "--chip", chip])
        .arg(&elf)
        .status()
        .map_err(|source| FlashError::ProbeRs {
            program: program.clone(),
            elf: elf.clone(),
            source,
        })?;
    if !status.success() {
        return Err(FlashError::ProbeRsFailed {
            program,
            status: status.to_string(),
        });
    }
    report.flashed = true;
    Ok(report)
}
