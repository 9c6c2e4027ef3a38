//! The training loop: mini-batches through the network on burn's autodiff
//! `flex` device, Keras's Adam, batch-norm moving averages, a learning rate
//! per epoch, evaluation on the validation and test sets after each epoch,
//! early stopping on the validation loss (restoring the best weights), and
//! everything a run leaves beside the saved model: the model itself (saved
//! atomically after every epoch), its resumable training state, a CSV log
//! and a training-curve PNG.

use std::path::{Path, PathBuf};
use std::time::Instant;

use akida_host::datasets::{ImageSet, Targets};
use akida_host::keras;
use burn::tensor::{activation, Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{Data, Task};
use crate::log::{EpochRecord, TrainLog};
use crate::net::{DataMismatch, Mode, NetError, Network};
use crate::optim::{Adam, AdamConfig};
use crate::rng::Rng;
use crate::state::{StateError, TrainState};

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("cannot save {}", path.display())]
    Save {
        path: PathBuf,
        #[source]
        source: Box<keras::H5Error>,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    #[error("the training set is empty")]
    Empty,
    #[error(transparent)]
    Data(#[from] DataMismatch),
    #[error("the loss is not a number at epoch {epoch}: lower the learning rate")]
    Diverged { epoch: usize },
}

/// How the learning rate moves over the epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant(f32),
    /// From `start` at the first epoch to `end` at the last, geometrically.
    Decay {
        start: f32,
        end: f32,
    },
}

impl Schedule {
    pub fn at(&self, epoch: usize, epochs: usize) -> f32 {
        match *self {
            Schedule::Constant(lr) => lr,
            Schedule::Decay { start, end } => {
                if epochs <= 1 {
                    start
                } else {
                    start * (end / start).powf(epoch as f32 / (epochs - 1) as f32)
                }
            }
        }
    }
}

/// A training run's settings.
#[derive(Clone, Debug)]
pub struct FitOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub schedule: Schedule,
    /// Stop when the validation loss has not improved for this many epochs
    /// (restoring the best weights); `None`: train every epoch.
    pub patience: Option<usize>,
    pub seed: u64,
    /// Where the model is saved after every epoch.
    pub save: PathBuf,
    /// Continue the run whose state was saved beside this model.
    pub resume: Option<PathBuf>,
    /// Stop each epoch after this many batches (tests and smoke runs).
    pub max_batches: Option<usize>,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
}

/// Files a run writes beside the model `save`.
pub fn companion(save: &Path, suffix: &str) -> PathBuf {
    let stem = save.file_stem().unwrap_or_default().to_string_lossy();
    save.with_file_name(format!("{stem}{suffix}"))
}

/// The CSV log of a run saving to `save`.
pub fn log_path(save: &Path) -> PathBuf {
    companion(save, "_log.csv")
}

/// The training-curve PNG of a run saving to `save`.
pub fn plot_path(save: &Path) -> PathBuf {
    companion(save, "_curve.png")
}

/// Loss and metric of a set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    pub loss: f32,
    pub metric: f32,
}

/// The evaluation of a network on a set: its score and its outputs
/// (`[n, outputs]`, before any softmax).
pub fn evaluate(
    net: &Network,
    set: &ImageSet,
    batch: usize,
) -> Result<(Score, Vec<f32>), FitError> {
    let device = Device::flex();
    let params = net.param_tensors(&device, false);
    let mut rng = Rng::new(0);
    let mut outputs = Vec::with_capacity(set.len() * net.outputs);
    let task = Task::of(&set.targets);
    let (mut loss_sum, mut metric_sum) = (0f64, 0f64);
    for start in (0..set.len()).step_by(batch.max(1)) {
        let end = (start + batch).min(set.len());
        let idx: Vec<usize> = (start..end).collect();
        let images = &set.images[start * set.image_len()..end * set.image_len()];
        let x = net.input(images, &device);
        let (y, _) = net.forward(x, &params, Mode::Eval, &mut rng, false)?;
        let (l, m) = loss_and_metric(y.clone(), &set.targets.select(&idx), task, &device);
        loss_sum += l.into_scalar::<f32>() as f64 * idx.len() as f64;
        metric_sum += m as f64 * idx.len() as f64;
        let data = y.into_data();
        outputs.extend_from_slice(data.as_slice::<f32>().expect("f32 outputs"));
    }
    let n = set.len().max(1) as f64;
    Ok((
        Score {
            loss: (loss_sum / n) as f32,
            metric: (metric_sum / n) as f32,
        },
        outputs,
    ))
}

/// The batch loss (a scalar tensor, differentiable) and the batch metric
/// (accuracy or mean absolute error).
fn loss_and_metric(
    y: Tensor<2>,
    targets: &Targets,
    task: Task,
    device: &Device,
) -> (Tensor<1>, f32) {
    let [n, k] = y.dims();
    match (task, targets) {
        (Task::Classification, Targets::Classes { labels, .. }) => {
            let mut onehot = vec![0f32; n * k];
            for (i, &l) in labels.iter().enumerate() {
                onehot[i * k + l as usize] = 1.0;
            }
            let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [n, k]), device);
            let logp = activation::log_softmax(y.clone(), 1);
            let loss = (logp * onehot).sum().neg() / n as f32;
            let pred: Tensor<2, Int> = y.argmax(1);
            let pred = pred.into_data();
            let pred = pred.iter::<i64>();
            let correct = pred.zip(labels).filter(|(p, &l)| *p == l as i64).count();
            (loss, correct as f32 / n as f32)
        }
        (_, Targets::Values(v)) => {
            let t = Tensor::<2>::from_data(TensorData::new(v.clone(), [n, 1]), device);
            let err = (y - t).abs();
            let loss = err.clone().mean();
            let mae = loss.clone().into_scalar::<f32>();
            (loss, mae)
        }
        (Task::Regression, Targets::Classes { .. }) => unreachable!("task follows targets"),
    }
}

/// What a run ended with.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// The metric's name (`accuracy`, `mae`).
    pub metric: &'static str,
    pub epochs_run: usize,
    pub stopped_early: bool,
    pub best_validation: Option<Score>,
    pub last: Option<EpochRecord>,
}

/// Trains `net` on `data` and saves it (atomically) after every epoch.
pub fn fit(net: &mut Network, data: &Data, options: &FitOptions) -> Result<FitReport, FitError> {
    if data.train.is_empty() {
        return Err(FitError::Empty);
    }
    let task = data.task();
    net.check_data(&data.test)?;
    let sizes: Vec<usize> = net.params.iter().map(|p| p.values.len()).collect();
    let mut state = match &options.resume {
        Some(model) => TrainState::load(model, net)?,
        None => TrainState::new(
            Adam::new(AdamConfig::default(), &sizes),
            Rng::new(options.seed),
        ),
    };
    let mut log = TrainLog::open(&log_path(&options.save), state.epoch > 0).map_err(|source| {
        FitError::Log {
            path: log_path(&options.save),
            source,
        }
    })?;
    let train_device = Device::flex().autodiff();
    let mut report = FitReport {
        metric: task.metric(),
        epochs_run: 0,
        stopped_early: false,
        best_validation: None,
        last: None,
    };
    while state.epoch < options.epochs {
        let epoch = state.epoch;
        let lr = options.schedule.at(epoch, options.epochs);
        let started = Instant::now();
        let set = data.train.epoch(&mut state.rng);
        let mut order: Vec<usize> = (0..set.len()).collect();
        state.rng.shuffle(&mut order);
        let batches: Vec<&[usize]> = order.chunks(options.batch_size).collect();
        let count = options
            .max_batches
            .map_or(batches.len(), |m| m.min(batches.len()));
        let bar = progress_bar(options.progress, count, epoch, options.epochs);
        let (mut loss_sum, mut metric_sum, mut seen) = (0f64, 0f64, 0usize);
        for batch in batches.iter().take(count) {
            let subset = set.select(batch);
            let (loss_value, metric) = step(
                net,
                &mut state.adam,
                &mut state.rng,
                &subset,
                task,
                lr,
                &train_device,
            )
            .map_err(|e| match e {
                FitError::Diverged { .. } => FitError::Diverged { epoch: epoch + 1 },
                e => e,
            })?;
            loss_sum += loss_value as f64 * batch.len() as f64;
            metric_sum += metric as f64 * batch.len() as f64;
            seen += batch.len();
            let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} {} {:.4} {:.0} images/s",
                loss_sum / seen as f64,
                task.metric(),
                metric_sum / seen as f64,
                rate
            ));
        }
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let (val, _) = evaluate(net, &data.validation, options.batch_size.max(100))?;
        let (test, _) = evaluate(net, &data.test, options.batch_size.max(100))?;
        // A step can leave non-finite weights behind a finite batch loss:
        // never save them over a good model.
        if !val.loss.is_finite() || net.params.iter().any(|p| !all_finite(&p.values)) {
            return Err(FitError::Diverged { epoch: epoch + 1 });
        }
        state.epoch += 1;
        let record = EpochRecord {
            epoch: state.epoch,
            lr,
            loss: (loss_sum / seen.max(1) as f64) as f32,
            metric: (metric_sum / seen.max(1) as f64) as f32,
            val_loss: val.loss,
            val_metric: val.metric,
            test_metric: test.metric,
            images_per_s: (seen as f64 / train_seconds) as f32,
            seconds: started.elapsed().as_secs_f32(),
        };
        eprintln!("{}", record.line(task.metric()));
        log.append(&record).map_err(|source| FitError::Log {
            path: log_path(&options.save),
            source,
        })?;
        let improved = state.best_val_loss.is_none_or(|b| val.loss < b);
        if improved {
            state.best_val_loss = Some(val.loss);
            state.bad_epochs = 0;
            if options.patience.is_some() {
                state.best = Some((
                    net.params.iter().map(|p| p.values.clone()).collect(),
                    net.moving
                        .iter()
                        .map(|m| (m.mean.clone(), m.var.clone()))
                        .collect(),
                ));
            }
            report.best_validation = Some(val);
        } else {
            state.bad_epochs += 1;
        }
        report.epochs_run += 1;
        report.last = Some(record);
        let stop = options.patience.is_some_and(|p| state.bad_epochs >= p);
        let last_epoch = stop || state.epoch >= options.epochs;
        if last_epoch && options.patience.is_some() {
            state.restore_best(net);
        }
        save(net, &options.save)?;
        state.save(&options.save, net)?;
        crate::plot::draw(&log.records, task.metric(), &plot_path(&options.save)).map_err(
            |message| FitError::Plot {
                path: plot_path(&options.save),
                message,
            },
        )?;
        if stop {
            report.stopped_early = true;
            eprintln!(
                "early stopping: no validation loss improvement in {} epochs; best weights restored",
                state.bad_epochs
            );
            break;
        }
    }
    Ok(report)
}

/// One training step on `batch`: forward on the autodiff `device`, loss,
/// backward, Keras's Adam at learning rate `lr`, batch-norm moving
/// averages. Returns the batch loss and metric.
pub fn step(
    net: &mut Network,
    adam: &mut Adam,
    rng: &mut Rng,
    batch: &ImageSet,
    task: Task,
    lr: f32,
    device: &Device,
) -> Result<(f32, f32), FitError> {
    let x = net.input(&batch.images, device);
    let params = net.param_tensors(device, true);
    let (y, stats) = net.forward(x, &params, Mode::Train, rng, false)?;
    let (loss, metric) = loss_and_metric(y, &batch.targets, task, device);
    let grads = loss.backward();
    let loss_value = loss.into_scalar::<f32>();
    if !loss_value.is_finite() {
        return Err(FitError::Diverged { epoch: 0 });
    }
    let alpha = adam.begin_step(lr);
    for (i, p) in params.iter().enumerate() {
        if let Some(g) = p.grad(&grads) {
            let g = g.into_data();
            let g = g.as_slice::<f32>().expect("f32 gradients");
            adam.update(i, alpha, &mut net.params[i].values, g);
        }
    }
    net.update_moving(&stats);
    Ok((loss_value, metric))
}

fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

/// Saves the network's model atomically (a temporary file renamed over the
/// target).
pub fn save(net: &Network, path: &Path) -> Result<(), FitError> {
    keras::write_model(path, &net.to_model()).map_err(|source| FitError::Save {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

fn progress_bar(show: bool, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
    bar
}
