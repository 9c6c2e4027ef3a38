//! The command line shared by `cifar10_train`, `kws_train` and
//! `utk_face_train` (each `bin/` file only names its tool), with
//! akida_models' flags; the action may come before or after the options:
//!
//! ```text
//! cifar10_train train -m ds_cnn_cifar10.h5 -s trained.h5 -e 10 [--data-dir D]
//! cifar10_train -m trained_iq4_wq4_aq4.h5 tune -e 5
//! cifar10_train eval -m trained_iq4_wq4_aq4.h5 -ak
//! cifar10_train eval -m trained_iq4_wq4_aq4.h5 --akd trained_iq4_wq4_aq4.akd
//! kws_train train -m ds_cnn_kws.h5 --classes 12
//! ```
//! Errors print the file and the problem and exit with status 2.

use std::path::PathBuf;
use std::process::ExitCode;

use akida_host::datasets::Split;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::commands::{self, Action, CommandError, Options, Outcome, Tool};

#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    action: ActionArg,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum ActionArg {
    /// Train the model (augmentation, decreasing learning rate); saved after every epoch
    Train,
    /// Quantization-aware fine-tuning of a quantized model (lower rate, early stopping)
    Tune,
    /// Evaluate the model (with -ak or --akd, also its Akida conversion)
    Eval,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SplitArg {
    Test,
    Validation,
}

#[derive(Args, Debug)]
struct Common {
    /// The Keras model (.h5, float or cnn2snn-quantized)
    #[arg(short = 'm', long = "model", global = true, value_name = "M.h5")]
    model: Option<PathBuf>,
    /// Where to save the trained model (default: over the model, atomically)
    #[arg(short = 's', long = "savemodel", global = true, value_name = "OUT.h5")]
    save: Option<PathBuf>,
    /// Epochs (train: the whole run; tune: at most)
    #[arg(short = 'e', long = "epochs", global = true)]
    epochs: Option<usize>,
    /// The dataset folder (default: $AKIDA_DATA_DIR/<dataset>)
    #[arg(long = "data-dir", global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Mini-batch size
    #[arg(long = "batch-size", global = true)]
    batch_size: Option<usize>,
    /// Learning rate (train: the first epoch's)
    #[arg(long = "lr", global = true)]
    lr: Option<f32>,
    /// Seed of shuffling, augmentation and dropout
    #[arg(long, global = true, default_value_t = 0)]
    seed: u64,
    /// Continue the run that saved the model (its state file M_state.bin)
    #[arg(long, global = true)]
    resume: bool,
    /// Stop every epoch after this many batches (smoke tests)
    #[arg(long = "max-batches", global = true, hide = true)]
    max_batches: Option<usize>,
    /// Number of keyword classes (kws_train; must match the dataset and the model)
    #[arg(long, global = true)]
    classes: Option<usize>,
    /// eval: convert the model in memory and evaluate it with the integer runtime too
    #[arg(long = "ak", alias = "action_akida", global = true)]
    akida: bool,
    /// eval: evaluate this converted model (.akd or .fbz) beside the Keras model
    #[arg(long = "akd", global = true, value_name = "M.akd")]
    akd: Option<PathBuf>,
    /// eval: the split evaluated
    #[arg(long, global = true, value_enum)]
    split: Option<SplitArg>,
    /// No progress bar
    #[arg(long = "no-progress", global = true)]
    no_progress: bool,
    /// tune: save the tuned model as trained, without aligning it to the
    /// integer grid of its conversion (`cnn2snn align`)
    #[arg(long = "no-align", global = true)]
    no_align: bool,
}

/// BrainChip's single-dash long flag `-ak` becomes `--ak`.
fn normalize(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| if a == "-ak" { "--ak".to_owned() } else { a })
        .collect()
}

fn about(tool: Tool) -> &'static str {
    match tool {
        Tool::Cifar10 => "Train, tune (quantization-aware) and evaluate CIFAR-10 models (ds_cnn_cifar10, vgg_cifar10)",
        Tool::Kws => "Train, tune (quantization-aware) and evaluate the keyword-spotting model ds_cnn_kws on Speech Commands",
        Tool::UtkFace => "Train, tune (quantization-aware) and evaluate the age regressor vgg_utk_face on UTKFace (mean absolute error)",
    }
}

fn parse(tool: Tool, args: Vec<String>) -> Result<(Action, Options), clap::Error> {
    let mut command = Cli::command().name(tool.name()).about(about(tool));
    if tool != Tool::Kws {
        command = command.mut_arg("classes", |a| a.hide(true));
    }
    let matches = command.try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let c = cli.common;
    let action = match cli.action {
        ActionArg::Train => Action::Train,
        ActionArg::Tune => Action::Tune,
        ActionArg::Eval => Action::Eval {
            akida: c.akida,
            akd: c.akd.clone(),
        },
    };
    let options = Options {
        model: c.model.unwrap_or_default(),
        save: c.save,
        epochs: c.epochs,
        data_dir: c.data_dir,
        batch_size: c.batch_size,
        lr: c.lr,
        seed: c.seed,
        resume: c.resume,
        max_batches: c.max_batches,
        progress: !c.no_progress,
        align: !c.no_align,
        classes: c.classes,
        split: c.split.map(|s| match s {
            SplitArg::Test => Split::Test,
            SplitArg::Validation => Split::Validation,
        }),
    };
    if cli.action != ActionArg::Eval && (c.akida || c.akd.is_some()) {
        return Err(Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            "-ak and --akd apply to eval only",
        ));
    }
    Ok((action, options))
}

fn execute(tool: Tool, action: &Action, options: &Options) -> Result<(), CommandError> {
    if options.model.as_os_str().is_empty() {
        return Err(CommandError::Usage("the model is required: -m M.h5".into()));
    }
    match commands::run(tool, action, options)? {
        Outcome::Trained {
            path,
            report,
            aligned,
        } => {
            if let Some(last) = report.last {
                println!(
                    "{} epoch(s){}; last: test {} {:.4}",
                    report.epochs_run,
                    if report.stopped_early {
                        ", stopped early (best validation weights kept)"
                    } else {
                        ""
                    },
                    report.metric,
                    last.test_metric
                );
            }
            if let Some((aligned, channels)) = aligned {
                println!(
                    "{aligned} of {channels} channels aligned to the integer grid of the conversion (cnn2snn align)"
                );
            }
            println!("Model saved as {}.", path.display());
        }
        Outcome::Evaluated { report, label } => println!("{}", report.text(&label)),
    }
    Ok(())
}

/// The whole tool: parse, run, report; exit status 2 on any error.
pub fn main(tool: Tool) -> ExitCode {
    crate::alloc::keep_freed_memory();
    let (action, options) = match parse(tool, normalize(std::env::args())) {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    akida_host::cli::exit(
        execute(tool, &action, &options).map_err(Box::<dyn std::error::Error>::from),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        normalize(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn action_before_or_after_the_options() {
        let (a, o) = parse(
            Tool::Cifar10,
            args("cifar10_train train -m x.h5 -s y.h5 -e 3"),
        )
        .unwrap();
        let (b, p) = parse(
            Tool::Cifar10,
            args("cifar10_train -m x.h5 -s y.h5 -e 3 train"),
        )
        .unwrap();
        assert_eq!(
            (a, o.model.clone(), o.save.clone(), o.epochs),
            (Action::Train, "x.h5".into(), Some("y.h5".into()), Some(3))
        );
        assert_eq!(
            (b, p.model, p.save, p.epochs),
            (Action::Train, "x.h5".into(), Some("y.h5".into()), Some(3))
        );
        let (e, _) = parse(Tool::Kws, args("kws_train -m q.h5 eval -ak --classes 12")).unwrap();
        assert_eq!(
            e,
            Action::Eval {
                akida: true,
                akd: None
            }
        );
        assert!(parse(Tool::Cifar10, args("cifar10_train train -m x.h5 -ak")).is_err());
        assert!(parse(Tool::Cifar10, args("cifar10_train -m x.h5")).is_err());
    }
}
