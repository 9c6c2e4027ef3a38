//! What `cifar10_train`, `kws_train` and `utk_face_train` do, with
//! akida_models' actions: `train` (from scratch or on, with augmentation and
//! a decreasing learning rate), `tune` (quantization-aware fine-tuning of a
//! cnn2snn-quantized model: a lower rate, early stopping on the validation
//! loss) and `eval` (the Keras model, and with `-ak` its conversion made in
//! memory or with `--akd` a converted file, through the integer runtime).

use std::path::{Path, PathBuf};

use akida_host::cnn2snn::{self, Cnn2snnError};
use akida_host::datasets::{self, cifar10, speech_commands, utkface, DatasetError, Split};
use akida_host::formats::{self, ModelFileError};
use akida_host::keras::{self, H5Error};

use crate::data::{Data, ImageAugment, TrainSource};
use crate::eval::{self, EvalError, EvalReport};
use crate::fit::{self, FitError, FitOptions, FitReport, Schedule};
use crate::net::{NetError, Network};

/// The three tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `cifar10_train`: ds_cnn_cifar10, vgg_cifar10 on CIFAR-10.
    Cifar10,
    /// `kws_train`: ds_cnn_kws on Speech Commands.
    Kws,
    /// `utk_face_train`: vgg_utk_face on UTKFace (age, mean absolute error).
    UtkFace,
}

/// A tool's training recipe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    pub batch_size: usize,
    /// `train`: epochs and starting learning rate (decaying geometrically
    /// to a hundredth of it at the last epoch).
    pub train_epochs: usize,
    pub train_lr: f32,
    /// `tune`: epochs at most, constant learning rate, early-stopping
    /// patience (epochs without validation-loss improvement).
    pub tune_epochs: usize,
    pub tune_lr: f32,
    pub patience: usize,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Cifar10 => "cifar10_train",
            Tool::Kws => "kws_train",
            Tool::UtkFace => "utk_face_train",
        }
    }

    /// The dataset's folder under `$AKIDA_DATA_DIR`.
    pub fn data_name(self) -> &'static str {
        match self {
            Tool::Cifar10 => "cifar10",
            Tool::Kws => "speech_commands",
            Tool::UtkFace => "utkface",
        }
    }

    fn dataset(self) -> (&'static str, &'static str) {
        match self {
            Tool::Cifar10 => ("CIFAR-10", cifar10::HOW_TO_GET),
            Tool::Kws => ("Speech Commands", speech_commands::HOW_TO_GET),
            Tool::UtkFace => ("UTKFace", utkface::HOW_TO_GET),
        }
    }

    pub fn recipe(self) -> Recipe {
        match self {
            Tool::Cifar10 => Recipe {
                batch_size: 100,
                train_epochs: 30,
                train_lr: 1e-3,
                tune_epochs: 10,
                tune_lr: 1e-4,
                patience: 3,
            },
            // The akida_models keyword recipe: Adam, batch 100.
            Tool::Kws => Recipe {
                batch_size: 100,
                train_epochs: 100,
                train_lr: 1e-3,
                tune_epochs: 30,
                tune_lr: 1e-4,
                patience: 5,
            },
            Tool::UtkFace => Recipe {
                batch_size: 100,
                train_epochs: 60,
                train_lr: 1e-3,
                tune_epochs: 20,
                tune_lr: 1e-4,
                patience: 5,
            },
        }
    }

    /// Loads the data of this tool from `dir`.
    pub fn load(self, dir: &Path, classes: Option<usize>) -> Result<Data, DatasetError> {
        Ok(match self {
            Tool::Cifar10 => Data {
                train: TrainSource::Images(
                    cifar10::load(dir, Split::Train)?,
                    ImageAugment::FlipShift(3),
                ),
                validation: cifar10::load(dir, Split::Validation)?,
                test: cifar10::load(dir, Split::Test)?,
            },
            Tool::Kws => Data {
                train: TrainSource::Audio(speech_commands::load(dir, Split::Train, classes)?),
                validation: speech_commands::load(dir, Split::Validation, classes)?.features(),
                test: speech_commands::load(dir, Split::Test, classes)?.features(),
            },
            Tool::UtkFace => Data {
                train: TrainSource::Images(utkface::load(dir, Split::Train)?, ImageAugment::Flip),
                validation: utkface::load(dir, Split::Validation)?,
                test: utkface::load(dir, Split::Test)?,
            },
        })
    }
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Train,
    Tune,
    /// `akida`: also convert in memory and run; `akd`: also run this file.
    Eval {
        akida: bool,
        akd: Option<PathBuf>,
    },
}

/// The options every action takes.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub model: PathBuf,
    /// Where `train`/`tune` save (default: over the model, atomically).
    pub save: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub batch_size: Option<usize>,
    pub lr: Option<f32>,
    pub seed: u64,
    pub resume: bool,
    pub max_batches: Option<usize>,
    pub progress: bool,
    /// `tune`: align the saved model to the integer grid of its conversion
    /// (`cnn2snn::align`), so that the converted model computes its levels.
    pub align: bool,
    /// `kws_train --classes`.
    pub classes: Option<usize>,
    /// `eval`: the split evaluated (test by default).
    pub split: Option<Split>,
}

/// Why a command failed. Each variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Read(H5Error),
    #[error("{}", path.display())]
    Net {
        path: PathBuf,
        #[source]
        source: NetError,
    },
    #[error(transparent)]
    Data(#[from] DatasetError),
    #[error("{}", path.display())]
    Fit {
        path: PathBuf,
        #[source]
        source: FitError,
    },
    #[error("{}", path.display())]
    Eval {
        path: PathBuf,
        #[source]
        source: Box<EvalError>,
    },
    #[error(transparent)]
    Converted(ModelFileError),
    #[error("{0}")]
    Usage(String),
    #[error("{}: {problem}", path.display())]
    SavePath { path: PathBuf, problem: String },
    #[error("{}", path.display())]
    Align {
        path: PathBuf,
        #[source]
        source: Cnn2snnError,
    },
    #[error(transparent)]
    SaveAligned(H5Error),
}

/// What a command did, to print.
#[derive(Clone, Debug)]
pub enum Outcome {
    Trained {
        path: PathBuf,
        report: FitReport,
        /// `tune`: channels aligned, of all (see [`Options::align`]).
        aligned: Option<(usize, usize)>,
    },
    Evaluated {
        report: EvalReport,
        label: String,
    },
}

/// Refuses, before anything is read or trained, options no run can use: a
/// zero epoch count or batch size, a learning rate that is not a positive
/// number (a NaN rate trains NaN weights), and a save path whose folder does
/// not exist or that is a folder (found only after an epoch otherwise).
fn check_options(action: &Action, options: &Options) -> Result<(), CommandError> {
    if options.epochs == Some(0) && !matches!(action, Action::Eval { .. }) {
        return Err(CommandError::Usage("-e (epochs) must be at least 1".into()));
    }
    if options.batch_size == Some(0) {
        return Err(CommandError::Usage(
            "--batch-size must be at least 1".into(),
        ));
    }
    if let Some(lr) = options.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(CommandError::Usage(format!(
                "--lr must be a positive number, not {lr}"
            )));
        }
    }
    if matches!(action, Action::Eval { .. }) {
        return Ok(());
    }
    let save = options.save.as_ref().unwrap_or(&options.model);
    let refuse = |problem: String| {
        Err(CommandError::SavePath {
            path: save.clone(),
            problem,
        })
    };
    if save.is_dir() {
        return refuse("is a folder: give the file to save the model in".into());
    }
    let folder = match save.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return refuse(format!(
            "cannot save there: the folder {} does not exist",
            folder.display()
        ));
    }
    Ok(())
}

/// Runs one action of a tool.
pub fn run(tool: Tool, action: &Action, options: &Options) -> Result<Outcome, CommandError> {
    if options.classes.is_some() && tool != Tool::Kws {
        return Err(CommandError::Usage(format!(
            "--classes applies to kws_train only, not {}",
            tool.name()
        )));
    }
    check_options(action, options)?;
    let model = keras::read_model(&options.model).map_err(CommandError::Read)?;
    let mut net = Network::from_model(&model).map_err(|source| CommandError::Net {
        path: options.model.clone(),
        source,
    })?;
    let (name, how) = tool.dataset();
    let dir = datasets::data_dir(options.data_dir.as_deref(), name, tool.data_name(), how)?;
    let data = tool.load(&dir, options.classes)?;
    let recipe = tool.recipe();
    match action {
        Action::Train | Action::Tune => {
            let tune = *action == Action::Tune;
            let lr = options.lr.unwrap_or(if tune {
                recipe.tune_lr
            } else {
                recipe.train_lr
            });
            let save = options
                .save
                .clone()
                .unwrap_or_else(|| options.model.clone());
            let fit_options = FitOptions {
                epochs: options.epochs.unwrap_or(if tune {
                    recipe.tune_epochs
                } else {
                    recipe.train_epochs
                }),
                batch_size: options.batch_size.unwrap_or(recipe.batch_size),
                schedule: if tune {
                    Schedule::Constant(lr)
                } else {
                    Schedule::Decay {
                        start: lr,
                        end: lr / 100.0,
                    }
                },
                patience: tune.then_some(recipe.patience),
                seed: options.seed,
                save: save.clone(),
                resume: options.resume.then(|| options.model.clone()),
                max_batches: options.max_batches,
                progress: options.progress,
            };
            let report =
                fit::fit(&mut net, &data, &fit_options).map_err(|source| CommandError::Fit {
                    path: save.clone(),
                    source,
                })?;
            let aligned = if tune && options.align {
                Some(align_saved(&save)?)
            } else {
                None
            };
            Ok(Outcome::Trained {
                path: save,
                report,
                aligned,
            })
        }
        Action::Eval { akida, akd } => {
            let set = match options.split.unwrap_or(Split::Test) {
                Split::Test => &data.test,
                Split::Validation => &data.validation,
                Split::Train => {
                    return Err(CommandError::Usage(
                        "eval runs on the validation or test split".into(),
                    ))
                }
            };
            let eval_err = |path: &Path| {
                let path = path.to_owned();
                move |source| CommandError::Eval {
                    path,
                    source: Box::new(source),
                }
            };
            let converted = match (akida, akd) {
                (true, Some(_)) => {
                    return Err(CommandError::Usage(
                        "give -ak (convert in memory) or --akd FILE, not both".into(),
                    ))
                }
                (true, None) => Some(eval::convert(&net).map_err(eval_err(&options.model))?),
                (false, Some(path)) => Some(formats::load(path).map_err(CommandError::Converted)?),
                (false, None) => None,
            };
            let report = eval::evaluate_pair(&net, converted.as_ref(), set)
                .map_err(eval_err(akd.as_deref().unwrap_or(&options.model)))?;
            let quantized = model.layers.iter().any(|l| l.config.is_quantized());
            let label = format!(
                "{} Keras model {}",
                if quantized { "quantized" } else { "float" },
                options.model.display()
            );
            Ok(Outcome::Evaluated { report, label })
        }
    }
}

/// Aligns the tuned model saved at `path` (atomically, over itself): its
/// converted model then computes its levels ([`cnn2snn::align`]).
fn align_saved(path: &Path) -> Result<(usize, usize), CommandError> {
    let model = keras::read_model(path).map_err(CommandError::Read)?;
    let alignment = cnn2snn::align(&model, None).map_err(|source| CommandError::Align {
        path: path.to_owned(),
        source,
    })?;
    keras::write_model(path, &alignment.model).map_err(CommandError::SaveAligned)?;
    Ok(alignment.counts())
}
