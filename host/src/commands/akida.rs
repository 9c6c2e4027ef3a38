//! What the `akida` command does, as library functions: the layer table of
//! a converted model (`akida summary`), running a uint8 `.npy` batch through
//! the host [`Runtime`] (`akida run`), and converting between `.akd` and
//! `.fbz` (`akida convert-format`). The binary only parses arguments and
//! prints; every rule lives here so that it is tested without a process.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use akida_core::{Dims, ForwardError, InputData, Padding, Pooling, ValidLayer, ValidModel, Window};

use crate::formats::akd::ConvertedModel;
use crate::formats::npy::{self, Tensor, TensorData, TensorError};
use crate::formats::{self, ModelFileError, ModelFormat};
use crate::runtime::{BatchOutput, KernelPolicy, Runtime};

/// One row of the summary: what a layer computes and what it stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerReport {
    pub name: String,
    /// The engine's layer type (`InputData`, or an [`akida_core::LayerKind`] name).
    pub kind: &'static str,
    /// Input of the layer, HWC.
    pub input: Dims,
    /// Output of the layer after pooling, HWC.
    pub output: Dims,
    /// Kernel and stride of a convolution; `None` for a fully connected layer.
    pub window: Option<(Window, Window)>,
    /// Padding of a convolution; `None` for a fully connected layer.
    pub padding: Option<Padding>,
    pub pooling: Pooling,
    /// Bits of the weights; `None` for an InputData layer (no weights).
    pub weight_bits: Option<u8>,
    /// Bits of the output levels (of the values, for an InputData layer);
    /// `None` when the layer outputs potentials.
    pub act_bits: Option<u8>,
    /// Weights of the layer, pointwise ones included.
    pub params: usize,
    /// Bytes of the weights packed at their bit width, pointwise included.
    pub weight_bytes: usize,
}

impl LayerReport {
    /// The report of one converted layer.
    pub fn of(layer: &ValidLayer) -> LayerReport {
        let p = layer.params();
        let convolution = p.kind.is_convolution();
        LayerReport {
            name: layer.name().to_owned(),
            kind: p.kind.name(),
            input: p.input,
            output: layer.shapes.output,
            window: convolution.then_some((p.kernel, p.stride)),
            padding: convolution.then_some(p.padding),
            pooling: p.pooling,
            weight_bits: Some(p.weights_bits),
            act_bits: p.activation.then_some(p.act_bits),
            params: layer.layer.weight_count(),
            weight_bytes: layer.layer.weight_bytes(),
        }
    }

    /// The report of an InputData layer: its values pass as they are.
    pub fn input_data(d: &InputData<&str>) -> LayerReport {
        LayerReport {
            name: d.name.to_owned(),
            kind: "InputData",
            input: d.dims,
            output: d.dims,
            window: None,
            padding: None,
            pooling: Pooling::None,
            weight_bits: None,
            act_bits: Some(d.bits),
            params: 0,
            weight_bytes: 0,
        }
    }

    /// The cells of the row, in [`COLUMNS`] order.
    fn cells(&self) -> [String; 12] {
        let dash = || "-".to_owned();
        let (kernel, stride) = match self.window {
            Some((k, s)) => (window(k), window(s)),
            None => (dash(), dash()),
        };
        [
            self.name.clone(),
            self.kind.to_owned(),
            shape(self.input),
            shape(self.output),
            kernel,
            stride,
            self.padding.map_or_else(dash, padding),
            pooling(self.pooling),
            self.weight_bits.map_or_else(dash, |b| b.to_string()),
            self.act_bits.map_or_else(dash, |b| b.to_string()),
            self.params.to_string(),
            self.weight_bytes.to_string(),
        ]
    }
}

/// An HWC size as `HxWxC`.
pub fn shape(d: Dims) -> String {
    format!("{}x{}x{}", d.rows, d.cols, d.channels)
}

fn window(w: Window) -> String {
    format!("{}x{}", w.rows, w.cols)
}

fn padding(p: Padding) -> String {
    match p {
        Padding::Same => "same",
        Padding::Valid => "valid",
    }
    .to_owned()
}

fn pooling(p: Pooling) -> String {
    match p {
        Pooling::None => "none".to_owned(),
        Pooling::Max { size, stride } => format!("max {} stride {}", window(size), window(stride)),
        Pooling::GlobalAverage => "global avg".to_owned(),
    }
}

/// Whether a column holds text (left-aligned) or a number (right-aligned).
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Headers of the summary table and how their cells align.
const COLUMNS: [(&str, Align); 12] = [
    ("Layer", Align::Left),
    ("Type", Align::Left),
    ("Input", Align::Left),
    ("Output", Align::Left),
    ("Kernel", Align::Left),
    ("Stride", Align::Left),
    ("Padding", Align::Left),
    ("Pooling", Align::Left),
    ("W bits", Align::Right),
    ("A bits", Align::Right),
    ("Params", Align::Right),
    ("Weight mem (B)", Align::Right),
];

/// Space between two columns.
const GAP: &str = "  ";

/// Renders rows under [`COLUMNS`], each column as wide as its widest cell,
/// with `=` rules under the header and after the last row.
fn render_table(rows: &[[String; 12]]) -> String {
    let mut widths = COLUMNS.map(|(h, _)| h.len());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 12]| {
        let text: Vec<String> = cells
            .iter()
            .zip(COLUMNS)
            .zip(widths)
            .map(|((cell, (_, align)), w)| match align {
                Align::Left => format!("{cell:<w$}"),
                Align::Right => format!("{cell:>w$}"),
            })
            .collect();
        format!("{}\n", text.join(GAP).trim_end())
    };
    let total = widths.iter().sum::<usize>() + GAP.len() * (widths.len() - 1);
    let rule = format!("{}\n", "=".repeat(total));
    let mut out = line(COLUMNS.map(|(h, _)| h));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out.push_str(&rule);
    out
}

/// What the model outputs, for the summary footer.
fn output_kind(model: &ConvertedModel) -> String {
    let last = model.last();
    match last.params().activation {
        true => format!("uint8 levels, {} bits", last.params().act_bits),
        false => "int32 potentials".to_owned(),
    }
}

/// The summary of a converted model: one row per layer (name, kind, HWC
/// input and output, kernel, stride, padding, pooling, weight and
/// activation bits, parameters, packed weight memory), then the totals and
/// the model's input and output. Like Keras' `model.summary()`. An InputData
/// layer is the first row.
pub fn summary_table(model: &ConvertedModel) -> String {
    let reports: Vec<LayerReport> = model
        .input_data()
        .map(|d| LayerReport::input_data(&d))
        .into_iter()
        .chain(model.layers().map(|l| LayerReport::of(&l)))
        .collect();
    let rows: Vec<[String; 12]> = reports.iter().map(LayerReport::cells).collect();
    let mut out = render_table(&rows);
    let params: usize = reports.iter().map(|r| r.params).sum();
    let bytes: usize = reports.iter().map(|r| r.weight_bytes).sum();
    let (input, output) = match (reports.first(), reports.last()) {
        (Some(first), Some(last)) => (shape(first.input), shape(last.output)),
        _ => ("-".to_owned(), "-".to_owned()),
    };
    out.push_str(&format!("Layers: {}\n", reports.len()));
    out.push_str(&format!("Parameters (weights): {params}\n"));
    out.push_str(&format!(
        "Weight memory: {bytes} bytes ({:.2} KiB)\n",
        bytes as f64 / 1024.0
    ));
    let values = match model.input_data() {
        None => "uint8".to_owned(),
        Some(d) => format!("uint8, {}-bit values 0 to {}", d.bits, d.max_value()),
    };
    out.push_str(&format!("Input: {input} ({values})\n"));
    out.push_str(&format!("Output: {output} ({})\n", output_kind(model)));
    out
}

/// How `akida run` runs a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub policy: KernelPolicy,
    /// Float32 rescaled potentials (the engine's `predict`) instead of the
    /// raw output.
    pub predict: bool,
    /// The fast kernel's instruction set (`None`: the best this CPU has).
    pub simd: Option<akida_core::Simd>,
    /// 16-bit products everywhere: no u8 x s8 byte product.
    pub no_byte_product: bool,
}

impl RunOptions {
    /// The model prepared as these options say.
    pub fn runtime<'m, B, S>(&self, model: &'m ValidModel<B, S>) -> Runtime<'m, B, S>
    where
        B: AsRef<[u8]> + Sync,
        S: AsRef<str> + Sync,
    {
        let simd = self.simd.unwrap_or_else(crate::runtime::detect_simd);
        Runtime::with(model, self.policy, simd, !self.no_byte_product)
    }
}

/// The instruction set named `name` (as `Simd::name` writes it), if this
/// CPU runs it.
pub fn simd_by_name(name: &str) -> Result<akida_core::Simd, UnknownSimd> {
    let available = akida_core::Simd::available();
    available
        .iter()
        .find(|s| s.name() == name)
        .copied()
        .ok_or_else(|| UnknownSimd {
            name: name.to_owned(),
            available: available
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// `--simd NAME` names no instruction set this CPU runs.
#[derive(Debug, thiserror::Error)]
#[error("--simd {name}: not available on this CPU (available: {available})")]
pub struct UnknownSimd {
    pub name: String,
    pub available: String,
}

/// Why a batch cannot run on a model (no file named: see [`RunError`]).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("input dtype is {found}, expected uint8 (|u1)")]
    DType { found: String },
    #[error(
        "input shape is {found:?}, expected (N, {rows}, {cols}, {channels}) or ({rows}, {cols}, {channels}): the model input, NHWC",
        rows = expected.rows, cols = expected.cols, channels = expected.channels
    )]
    Shape { found: Vec<usize>, expected: Dims },
    #[error("the input batch holds no image")]
    Empty,
    #[error(
        "--predict needs a last layer without activation, but `{layer}` outputs {bits}-bit levels (run without --predict)"
    )]
    PredictNeedsPotentials { layer: String, bits: u8 },
    /// An input the model refuses, with its image (the first one in the batch).
    #[error("image {image}")]
    Image {
        image: usize,
        #[source]
        source: ForwardError,
    },
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

impl BatchError {
    /// Whether the model (rather than the input) is at fault.
    fn is_about_model(&self) -> bool {
        matches!(self, BatchError::PredictNeedsPotentials { .. })
    }
}

/// Why `akida run` failed; every message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("{}", path.display())]
    Batch { path: PathBuf, source: BatchError },
}

/// How a batch ran, for the one-line report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunStats {
    pub images: usize,
    /// Wall time of the batch inference (model preparation excluded).
    pub seconds: f64,
    pub policy: KernelPolicy,
    /// SIMD instruction set of the fast kernel.
    pub simd: &'static str,
    /// Worker threads of the batch.
    pub threads: usize,
    /// How the byte product ran (`Runtime::u8_report`).
    pub byte_product: &'static str,
}

impl RunStats {
    pub fn images_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.images as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for RunStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} images, {:.4} s, {:.0} images/s, kernel {}, SIMD {}, {} threads, byte product {}",
            self.images,
            self.seconds,
            self.images_per_second(),
            self.policy.name(),
            self.simd,
            self.threads,
            self.byte_product
        )
    }
}

/// Number of images in an input of `shape` for a model taking `input`, and
/// whether the input has a batch axis: `(N, H, W, C)` or one `(H, W, C)`.
pub fn batch_size(shape: &[usize], input: Dims) -> Result<(usize, bool), BatchError> {
    let hwc = [input.rows, input.cols, input.channels].map(|d| d as usize);
    let (images, batched) = match shape {
        [n, rest @ ..] if rest == hwc => (*n, true),
        s if s == hwc => (1, false),
        _ => {
            return Err(BatchError::Shape {
                found: shape.to_vec(),
                expected: input,
            })
        }
    };
    if images == 0 {
        return Err(BatchError::Empty);
    }
    Ok((images, batched))
}

/// Refuses `--predict` on a model whose last layer outputs levels.
fn check_predict(model: &ConvertedModel, predict: bool) -> Result<(), BatchError> {
    let last = model.last();
    match last.params() {
        p if predict && p.activation => Err(BatchError::PredictNeedsPotentials {
            layer: last.name().to_owned(),
            bits: p.act_bits,
        }),
        _ => Ok(()),
    }
}

/// Runs a uint8 NHWC batch (or one HWC image) through `model` on every core.
/// The output has the input's batch axis (or none) and the model output's
/// HWC: uint8 levels or int32 potentials, or float32 with `predict`.
pub fn run_tensor(
    model: &ConvertedModel,
    input: &Tensor,
    options: RunOptions,
) -> Result<(Tensor, RunStats), BatchError> {
    check_predict(model, options.predict)?;
    let images = input.as_u8().ok_or_else(|| BatchError::DType {
        found: input.dtype_name().to_owned(),
    })?;
    let (n, batched) = batch_size(&input.shape, model.input())?;
    // Values above an InputData layer's bits: the first one of the batch.
    for (image, values) in images.chunks_exact(model.input().len()).enumerate() {
        model
            .check_input(values)
            .map_err(|source| BatchError::Image { image, source })?;
    }
    let runtime = options.runtime(model);
    let bar = progress_bar(n);
    let start = Instant::now();
    let output = runtime.forward_batch_progress(images, &|done| {
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let data = match output? {
        // `check_predict` saw a last layer without activation.
        BatchOutput::Potentials(v) if options.predict => TensorData::F32(runtime.rescale(&v)),
        BatchOutput::Levels(v) => TensorData::U8(v),
        BatchOutput::Potentials(v) => TensorData::I32(v),
    };
    let seconds = start.elapsed().as_secs_f64();
    let out = runtime.output_dims();
    let hwc = [out.rows, out.cols, out.channels].map(|d| d as usize);
    let shape = if batched {
        std::iter::once(n).chain(hwc).collect()
    } else {
        hwc.to_vec()
    };
    let stats = RunStats {
        images: n,
        seconds,
        policy: options.policy,
        simd: runtime.simd().name(),
        threads: rayon::current_num_threads(),
        byte_product: runtime.u8_report(!options.no_byte_product),
    };
    Ok((Tensor { shape, data }, stats))
}

/// Batches from this many images up show a progress bar.
pub const PROGRESS_MIN_IMAGES: usize = 20_000;

/// A progress bar on stderr for a batch of `n` images: only for large
/// batches and when stderr is a terminal (nothing is written otherwise).
fn progress_bar(n: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if n < PROGRESS_MIN_IMAGES || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} images, {per_sec}, {eta} left",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Reads the input `.npy`, which must be uint8: any other dtype is reported
/// as the file spells it (`<i8`, `>f4`, ...) before its data is read.
fn read_input(path: &Path) -> Result<Tensor, RunError> {
    let dtype = npy::npy_dtype(path)?;
    if dtype != "|u1" {
        return Err(RunError::Batch {
            path: path.to_owned(),
            source: BatchError::DType { found: dtype },
        });
    }
    Ok(npy::read_npy(path)?)
}

/// `akida run`: loads the model (`.akd` or `.fbz`) and the uint8 `.npy`
/// input, runs the batch, and writes the output `.npy` atomically. Nothing
/// is written on error.
pub fn run_files(
    model_path: &Path,
    input_path: &Path,
    output_path: &Path,
    options: RunOptions,
) -> Result<RunStats, RunError> {
    let model = formats::load(model_path)?;
    check_predict(&model, options.predict).map_err(|source| RunError::Batch {
        path: model_path.to_owned(),
        source,
    })?;
    let input = read_input(input_path)?;
    let (output, stats) =
        run_tensor(&model, &input, options).map_err(|source| RunError::Batch {
            path: if source.is_about_model() {
                model_path.to_owned()
            } else {
                input_path.to_owned()
            },
            source,
        })?;
    npy::write_npy(output_path, &output)?;
    Ok(stats)
}

/// `akida run --layers`: runs the input's images one by one on this thread
/// and returns a table of each layer's share of the time, with its dense
/// multiply-accumulates, the kernel that ran it and its input density.
pub fn profile_files(
    model_path: &Path,
    input_path: &Path,
    options: RunOptions,
) -> Result<String, RunError> {
    let model = formats::load(model_path)?;
    let input = read_input(input_path)?;
    let batch_error = |source| RunError::Batch {
        path: input_path.to_owned(),
        source,
    };
    let images = input.as_u8().ok_or_else(|| {
        batch_error(BatchError::DType {
            found: input.dtype_name().to_owned(),
        })
    })?;
    let (n, _) = batch_size(&input.shape, model.input()).map_err(batch_error)?;
    let runtime = options.runtime(&model);
    let profile = runtime
        .profile(images)
        .map_err(|e| batch_error(BatchError::Forward(e)))?;
    let mut table = profile_table(&profile, n, runtime.simd().name());
    for bands in [false, true] {
        let threads = rayon::current_num_threads();
        if bands && threads < 2 {
            continue;
        }
        let mut latencies = runtime
            .latencies(images, bands)
            .map_err(|e| batch_error(BatchError::Forward(e)))?;
        latencies.sort_by(f64::total_cmp);
        let pct = |q: f64| 1e6 * latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let how = match bands {
            false => "one thread".to_owned(),
            true => format!("large layers in bands over {threads} threads"),
        };
        table.push_str(&format!(
            "latency per image (one at a time, {how}): p50 {:.1} us, p99 {:.1} us, max {:.1} us\n",
            pct(0.50),
            pct(0.99),
            pct(1.0)
        ));
    }
    Ok(table)
}

/// The table of [`profile_files`].
pub fn profile_table(
    profile: &[crate::runtime::LayerProfile],
    images: usize,
    simd: &str,
) -> String {
    let total: f64 = profile.iter().map(|p| p.seconds).sum();
    let macs: u64 = profile.iter().map(|p| p.macs).sum();
    let mut out = format!(
        "{:<14} {:<24} {:>12} {:>11} {:>11} {:>8} {:>10} {:>9} {:>6}\n",
        "Layer",
        "Type",
        "MAC/image",
        "fast",
        "zero input",
        "density",
        "us/image",
        "G MAC/s",
        "share"
    );
    let per = |s: f64| s / images.max(1) as f64;
    let gmacs = |m: u64, s: f64| {
        if s > 0.0 {
            m as f64 * images as f64 / s / 1e9
        } else {
            0.0
        }
    };
    for p in profile {
        out.push_str(&format!(
            "{:<14} {:<24} {:>12} {:>11} {:>11} {:>7.1}% {:>10.1} {:>9.2} {:>5.1}%\n",
            p.name,
            format!("{:?}", p.kind),
            p.macs,
            format!("{}/{}", p.fast_images, images),
            format!("{}/{}", p.zero_images, images),
            100.0 * p.density,
            1e6 * per(p.seconds),
            gmacs(p.macs, p.seconds),
            if total > 0.0 {
                100.0 * p.seconds / total
            } else {
                0.0
            },
        ));
    }
    let fast_macs: f64 = profile
        .iter()
        .map(|p| p.macs as f64 * p.fast_images as f64 / images.max(1) as f64)
        .sum();
    let fast_seconds: f64 = profile
        .iter()
        .filter(|p| p.fast_images > 0)
        .map(|p| p.seconds)
        .sum();
    out.push_str(&format!(
        "total: {} MAC/image, {:.1} us/image, {:.2} G MAC/s (dense MACs), one thread, SIMD {simd}\n",
        macs,
        1e6 * per(total),
        gmacs(macs, total)
    ));
    out.push_str(&format!(
        "fast-kernel layers: {:.0} MAC/image computed in {:.1} us/image: {:.2} G MAC/s\n",
        fast_macs,
        1e6 * per(fast_seconds),
        if fast_seconds > 0.0 {
            fast_macs * images as f64 / fast_seconds / 1e9
        } else {
            0.0
        }
    ));
    let skipped: f64 = profile
        .iter()
        .map(|p| p.macs as f64 * p.zero_images as f64 / images.max(1) as f64)
        .sum();
    if skipped > 0.0 {
        out.push_str(&format!(
            "skipped: {skipped:.0} MAC/image of the total were not computed (all-zero layer \
             input, fixed output copied)\n"
        ));
    }
    out
}

/// `akida convert-format`: rewrites a model in the format of `output`'s
/// extension (`.akd` or `.fbz`). Both extensions are checked before anything
/// is read; the save is atomic.
pub fn convert_format(input: &Path, output: &Path) -> Result<(), ModelFileError> {
    ModelFormat::of_path(input)?;
    ModelFormat::of_path(output)?;
    let model = formats::load(input)?;
    formats::save(&model, output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fbz::test_support::tiny_model;
    use crate::test_support::scratch;
    use akida_core::LayerKind;

    /// Images for `tiny_model` (6x5x1), deterministic and dense.
    fn tiny_images(n: usize) -> Vec<u8> {
        (0..n * 30).map(|k| ((k * 37 + 11) % 256) as u8).collect()
    }

    #[test]
    fn layer_reports_of_the_tiny_model() {
        let model = tiny_model();
        let r: Vec<LayerReport> = model.layers().map(|l| LayerReport::of(&l)).collect();
        // conv_0: 3x3x1x4 weights at 8 bits = 36 bytes; same padding, pool 2x2.
        assert_eq!(
            r[0],
            LayerReport {
                name: "conv_0".into(),
                kind: LayerKind::InputConvolutional.name(),
                input: Dims::new(6, 5, 1),
                output: Dims::new(3, 3, 4),
                window: Some((Window::new(3, 3), Window::ONE)),
                padding: Some(Padding::Same),
                pooling: Pooling::Max {
                    size: Window::new(2, 2),
                    stride: Window::new(2, 2)
                },
                weight_bits: Some(8),
                act_bits: Some(4),
                params: 36,
                weight_bytes: 36,
            }
        );
        // sep_1: 36 depthwise + 24 pointwise 4-bit weights = 18 + 12 bytes.
        assert_eq!((r[1].params, r[1].weight_bytes), (60, 30));
        assert_eq!(r[1].output, Dims::new(3, 3, 6));
        // dense_2: 54x3 2-bit weights = 162 weights, ceil(324 / 8) = 41 bytes.
        assert_eq!((r[2].params, r[2].weight_bytes), (162, 41));
        assert_eq!(
            (r[2].window, r[2].padding, r[2].act_bits),
            (None, None, None)
        );
    }

    #[test]
    fn the_summary_is_an_aligned_table_with_totals() {
        let text = summary_table(&tiny_model());
        let lines: Vec<&str> = text.lines().collect();
        let rule = "=".repeat(131);
        let expected = [
            "Layer    Type                    Input  Output  Kernel  Stride  Padding  Pooling             W bits  A bits  Params  Weight mem (B)",
            rule.as_str(),
            "conv_0   InputConvolutional      6x5x1  3x3x4   3x3     1x1     same     max 2x2 stride 2x2       8       4      36              36",
            "sep_1    SeparableConvolutional  3x3x4  3x3x6   3x3     1x1     same     none                     4       2      60              30",
            "dense_2  FullyConnected          3x3x6  1x1x3   -       -       -        none                     2       -     162              41",
            rule.as_str(),
            "Layers: 3",
            "Parameters (weights): 258",
            "Weight memory: 107 bytes (0.10 KiB)",
            "Input: 6x5x1 (uint8)",
            "Output: 1x1x3 (int32 potentials)",
        ];
        assert_eq!(lines, expected, "\n{text}");
    }

    #[test]
    fn a_single_image_and_a_batch_give_the_same_output() {
        let model = tiny_model();
        let images = tiny_images(3);
        let batch = Tensor {
            shape: vec![3, 6, 5, 1],
            data: TensorData::U8(images.clone()),
        };
        let (out, stats) = run_tensor(&model, &batch, RunOptions::default()).unwrap();
        assert_eq!(out.shape, [3, 1, 1, 3]);
        assert_eq!(stats.images, 3);
        let all = out.as_i32().expect("int32 potentials").to_vec();
        for (i, image) in images.chunks(30).enumerate() {
            let one = Tensor {
                shape: vec![6, 5, 1],
                data: TensorData::U8(image.to_vec()),
            };
            for policy in [
                KernelPolicy::Reference,
                KernelPolicy::Event,
                KernelPolicy::Fast,
            ] {
                for simd in akida_core::Simd::available() {
                    for no_byte_product in [false, true] {
                        let options = RunOptions {
                            policy,
                            predict: false,
                            simd: Some(simd),
                            no_byte_product,
                        };
                        let (out, stats) = run_tensor(&model, &one, options).unwrap();
                        let what = format!("{policy:?} {} {no_byte_product}", simd.name());
                        assert_eq!(out.shape, [1, 1, 3]);
                        assert_eq!(stats.policy, policy);
                        assert_eq!(stats.simd, simd.name());
                        assert_eq!(out.as_i32().unwrap(), &all[i * 3..i * 3 + 3], "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn predict_rescales_the_potentials() {
        let model = tiny_model();
        let input = Tensor {
            shape: vec![2, 6, 5, 1],
            data: TensorData::U8(tiny_images(2)),
        };
        let (raw, _) = run_tensor(&model, &input, RunOptions::default()).unwrap();
        let options = RunOptions {
            predict: true,
            ..RunOptions::default()
        };
        let (scaled, _) = run_tensor(&model, &input, options).unwrap();
        assert_eq!(scaled.shape, raw.shape);
        let last = &model.layers[2];
        let want: Vec<f32> = raw
            .as_i32()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(k, &p)| {
                let f = k % 3;
                akida_core::activation::rescale(p, last.threshold.get(f), last.act_step.get(f))
            })
            .collect();
        assert_eq!(scaled.as_f32().unwrap(), want.as_slice());
    }

    #[test]
    fn a_last_layer_with_activation_outputs_levels_and_refuses_predict() {
        let mut model = tiny_model().into_model();
        model.layers[2].params.activation = true;
        model.layers[2].params.act_bits = 2;
        let model = model.validate().unwrap();
        let input = Tensor {
            shape: vec![4, 6, 5, 1],
            data: TensorData::U8(tiny_images(4)),
        };
        let (out, _) = run_tensor(&model, &input, RunOptions::default()).unwrap();
        assert_eq!(out.shape, [4, 1, 1, 3]);
        assert!(out.as_u8().unwrap().iter().all(|&v| v <= 3));
        let options = RunOptions {
            predict: true,
            ..RunOptions::default()
        };
        let e = run_tensor(&model, &input, options).unwrap_err();
        assert!(matches!(
            e,
            BatchError::PredictNeedsPotentials { bits: 2, .. }
        ));
        assert_eq!(
            crate::cli::report(&e),
            "--predict needs a last layer without activation, but `dense_2` outputs 2-bit levels (run without --predict)"
        );
        assert!(summary_table(&model).contains("Output: 1x1x3 (uint8 levels, 2 bits)"));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let model = tiny_model();
        let input = Dims::new(6, 5, 1);
        assert_eq!(batch_size(&[7, 6, 5, 1], input).unwrap(), (7, true));
        assert_eq!(batch_size(&[6, 5, 1], input).unwrap(), (1, false));
        for shape in [&[5, 6, 1][..], &[2, 6, 5, 3], &[30], &[1, 1, 6, 5, 1]] {
            let e = batch_size(shape, input).unwrap_err();
            assert!(matches!(e, BatchError::Shape { .. }), "{shape:?}");
        }
        assert!(matches!(
            batch_size(&[0, 6, 5, 1], input),
            Err(BatchError::Empty)
        ));
        let e = batch_size(&[2, 5, 6, 1], input).unwrap_err();
        assert_eq!(
            crate::cli::report(&e),
            "input shape is [2, 5, 6, 1], expected (N, 6, 5, 1) or (6, 5, 1): the model input, NHWC"
        );
        let floats = Tensor {
            shape: vec![6, 5, 1],
            data: TensorData::F32(vec![0.0; 30]),
        };
        let e = run_tensor(&model, &floats, RunOptions::default()).unwrap_err();
        assert_eq!(
            crate::cli::report(&e),
            "input dtype is <f4, expected uint8 (|u1)"
        );
    }

    #[test]
    fn run_files_names_the_file_at_fault_and_writes_nothing() {
        let tmp = scratch("runtime-cli-files");
        let dir = tmp.path();
        let model_path = dir.join("m.fbz");
        formats::save(&tiny_model(), &model_path).unwrap();
        let bad_shape = dir.join("bad.npy");
        let image = Tensor {
            shape: vec![5, 6, 1],
            data: TensorData::U8(vec![1; 30]),
        };
        npy::write_npy(&bad_shape, &image).unwrap();
        let out = dir.join("out.npy");
        let e = run_files(&model_path, &bad_shape, &out, RunOptions::default()).unwrap_err();
        assert!(
            crate::cli::report(&e).starts_with(&format!(
                "{}: input shape is [5, 6, 1]",
                bad_shape.display()
            )),
            "{e}"
        );
        let e = run_files(
            &dir.join("none.fbz"),
            &bad_shape,
            &out,
            RunOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, RunError::ModelFile(_)), "{e}");
        // A dtype the tensor reader does not know (int64).
        use npyz::WriterBuilder;
        let int64 = dir.join("int64.npy");
        let mut buf = Vec::new();
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[6, 5, 1])
            .writer(&mut buf)
            .begin_nd()
            .unwrap();
        w.extend(std::iter::repeat_n(0i64, 30)).unwrap();
        w.finish().unwrap();
        std::fs::write(&int64, buf).unwrap();
        let e = run_files(&model_path, &int64, &out, RunOptions::default()).unwrap_err();
        assert_eq!(
            crate::cli::report(&e),
            format!(
                "{}: input dtype is <i8, expected uint8 (|u1)",
                int64.display()
            )
        );
        assert!(!out.exists());

        let good = dir.join("good.npy");
        let batch = Tensor {
            shape: vec![2, 6, 5, 1],
            data: TensorData::U8(tiny_images(2)),
        };
        npy::write_npy(&good, &batch).unwrap();
        let stats = run_files(&model_path, &good, &out, RunOptions::default()).unwrap();
        assert_eq!(stats.images, 2);
        let (want, _) = run_tensor(&tiny_model(), &batch, RunOptions::default()).unwrap();
        assert_eq!(npy::read_npy(&out).unwrap(), want);
    }

    #[test]
    fn convert_format_round_trips_and_checks_extensions() {
        let tmp = scratch("runtime-cli-convert");
        let dir = tmp.path();
        let fbz = dir.join("m.fbz");
        formats::save(&tiny_model(), &fbz).unwrap();
        let akd = dir.join("m.akd");
        convert_format(&fbz, &akd).unwrap();
        assert_eq!(formats::load(&akd).unwrap(), tiny_model());
        let back = dir.join("back.fbz");
        convert_format(&akd, &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&fbz).unwrap());
        let onnx = dir.join("m.onnx");
        let e = convert_format(&fbz, &onnx).unwrap_err();
        assert!(matches!(e, ModelFileError::UnknownExtension { .. }));
        assert!(!onnx.exists());
    }
}
