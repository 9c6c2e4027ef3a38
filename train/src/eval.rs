//! Evaluation: a Keras model (float or quantized) through the trainer's
//! forward pass, and its Akida 1.0 conversion (made in memory, or read from
//! a `.akd`/`.fbz` file) through the integer host runtime, side by side on
//! the same uint8 inputs, with the share of samples whose top-1 class
//! agrees (for a regression, the mean absolute difference of the two
//! predictions).

use akida_core::ForwardError;
use akida_host::cnn2snn::{self, Cnn2snnError, ConvertOptions};
use akida_host::datasets::{ImageSet, Targets};
use akida_host::formats::akd::ConvertedModel;
use akida_host::runtime::{KernelPolicy, Runtime};

use crate::data::Task;
use crate::fit::{evaluate, FitError, Score};
use crate::net::{DataMismatch, Network};

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Fit(#[from] FitError),
    #[error(transparent)]
    Data(#[from] DataMismatch),
    #[error("conversion failed")]
    Convert(#[source] Cnn2snnError),
    #[error("the converted model does not run on these inputs")]
    Forward(#[source] ForwardError),
    #[error("the converted model ends with an activation: it outputs levels, not predictions")]
    Levels,
    #[error("the converted model takes {model} bytes per input, the data has {data}")]
    InputSize { model: usize, data: usize },
    #[error("the converted model gives {model} outputs per input, the Keras model {keras}")]
    OutputSize { model: usize, keras: usize },
}

/// The figures of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalReport {
    pub samples: usize,
    pub task: Task,
    /// The Keras model.
    pub keras: Score,
    /// The converted model's metric, when one was run.
    pub akida: Option<f32>,
    /// Classification: the share of samples whose top-1 class agrees;
    /// regression: the mean absolute difference of the predictions.
    pub agreement: Option<f32>,
}

impl EvalReport {
    /// The report as printed by `eval`.
    pub fn text(&self, keras_label: &str) -> String {
        let metric = self.task.metric();
        let mut s = format!(
            "{keras_label} {metric}: {:.4} (loss {:.4}) on {} samples",
            self.keras.metric, self.keras.loss, self.samples
        );
        if let Some(a) = self.akida {
            s.push_str(&format!(
                "\nconverted (Akida 1.0, integer runtime) {metric}: {a:.4}"
            ));
        }
        match (self.task, self.agreement) {
            (Task::Classification, Some(a)) => s.push_str(&format!(
                "\ntop-1 agreement, converted vs Keras: {:.2} % ({} of {})",
                100.0 * a,
                (a * self.samples as f32).round() as usize,
                self.samples
            )),
            (Task::Regression, Some(d)) => {
                s.push_str(&format!("\nmean |converted - Keras| prediction: {d:.4}"))
            }
            _ => {}
        }
        s
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The metric of predictions `outputs` (`[n, k]`) against `targets`.
pub fn metric(outputs: &[f32], k: usize, targets: &Targets) -> f32 {
    match targets {
        Targets::Classes { labels, .. } => {
            let correct = outputs
                .chunks_exact(k)
                .zip(labels)
                .filter(|(row, &l)| argmax(row) == l as usize)
                .count();
            correct as f32 / labels.len().max(1) as f32
        }
        Targets::Values(v) => {
            let sum: f64 = outputs
                .chunks_exact(k)
                .zip(v)
                .map(|(row, &t)| (row[0] - t).abs() as f64)
                .sum();
            (sum / v.len().max(1) as f64) as f32
        }
    }
}

/// The converted model's predictions (`predict`, float32 as the engine
/// rescales the last potentials) for every input of `set`.
pub fn predict_converted(model: &ConvertedModel, set: &ImageSet) -> Result<Vec<f32>, EvalError> {
    let runtime = Runtime::new(model, KernelPolicy::Auto);
    let input = runtime.input_dims().len();
    if input != set.image_len() {
        return Err(EvalError::InputSize {
            model: input,
            data: set.image_len(),
        });
    }
    runtime
        .predict_batch(&set.images)
        .map_err(EvalError::Forward)?
        .ok_or(EvalError::Levels)
}

/// Converts the network's model in memory (cnn2snn's conversion).
pub fn convert(net: &Network) -> Result<ConvertedModel, EvalError> {
    cnn2snn::convert(&net.to_model(), &ConvertOptions::default())
        .map(|c| c.model)
        .map_err(EvalError::Convert)
}

/// Evaluates the Keras model and, when given, its converted model.
pub fn evaluate_pair(
    net: &Network,
    converted: Option<&ConvertedModel>,
    set: &ImageSet,
) -> Result<EvalReport, EvalError> {
    net.check_data(set)?;
    let task = Task::of(&set.targets);
    let (score, keras_out) = evaluate(net, set, 200)?;
    let k = net.outputs;
    let (akida, agreement) = match converted {
        None => (None, None),
        Some(model) => {
            let out = predict_converted(model, set)?;
            if out.len() != keras_out.len() {
                return Err(EvalError::OutputSize {
                    model: out.len() / set.len().max(1),
                    keras: k,
                });
            }
            let agreement = match task {
                Task::Classification => {
                    let same = out
                        .chunks_exact(k)
                        .zip(keras_out.chunks_exact(k))
                        .filter(|(a, b)| argmax(a) == argmax(b))
                        .count();
                    same as f32 / set.len().max(1) as f32
                }
                Task::Regression => {
                    let sum: f64 = out
                        .iter()
                        .zip(&keras_out)
                        .map(|(a, b)| (a - b).abs() as f64)
                        .sum();
                    (sum / out.len().max(1) as f64) as f32
                }
            };
            (Some(metric(&out, k, &set.targets)), Some(agreement))
        }
    };
    Ok(EvalReport {
        samples: set.len(),
        task,
        keras: score,
        akida,
        agreement,
    })
}
