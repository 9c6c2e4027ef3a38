//! `akida_models`: creates the legacy Akida 1.0 zoo models as Keras `.h5`
//! files and prints the summary of a Keras `.h5` file.
//!
//! Every error is printed on stderr and exits with status 2 (as argument
//! errors do); nothing is written then.

use std::path::PathBuf;
use std::process::ExitCode;

use akida_host::keras::{read_model, write_model};
use akida_host::zoo::{ds_cnn_kws, ZooModel};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "akida_models",
    version,
    about = "Akida 1.0 model zoo: create Keras models, print their summary",
    after_help = models_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a zoo model (float, Keras-initialised) and save it as .h5
    #[command(after_help = models_help())]
    Create {
        /// The path/name to save the model to (default: NAME.h5 in the
        /// current folder; ".h5" is appended when missing)
        #[arg(
            short = 's',
            long = "save_model",
            alias = "save-model",
            value_name = "PATH"
        )]
        save_model: Option<PathBuf>,
        /// Seed of the weight initialisation
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of classes (ds_cnn_kws only; default 33)
        #[arg(long)]
        classes: Option<usize>,
        /// The model to create (see the list below)
        #[arg(value_name = "NAME")]
        model: String,
    },
    /// Print the Keras summary of a model file
    Summary {
        /// The Keras .h5 file
        #[arg(short = 'm', long = "model", value_name = "FILE.h5")]
        model: PathBuf,
    },
}

/// The model list shown by `--help`.
fn models_help() -> String {
    let mut text = String::from("Models:\n");
    for m in ZooModel::ALL {
        text.push_str(&format!("  {:<16}{}\n", m.name(), m.description()));
    }
    text
}

fn main() -> ExitCode {
    akida_host::cli::exit(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Create {
            save_model,
            seed,
            classes,
            model,
        } => create(&model, save_model, seed, classes),
        Command::Summary { model } => {
            let m = read_model(&model)?;
            print!("{}", m.summary());
            Ok(())
        }
    }
}

fn create(name: &str, save: Option<PathBuf>, seed: u64, classes: Option<usize>) -> Result<()> {
    let Some(zoo) = ZooModel::from_name(name) else {
        let known: Vec<&str> = ZooModel::ALL.iter().map(|m| m.name()).collect();
        bail!("unknown model `{name}`; available: {}", known.join(", "));
    };
    let model = match (zoo, classes) {
        (ZooModel::DsCnnKws, Some(0)) => bail!("--classes must be at least 1"),
        (ZooModel::DsCnnKws, Some(n)) => ds_cnn_kws(n, seed)?,
        (_, Some(_)) => bail!("--classes applies to ds_cnn_kws only"),
        (_, None) => zoo.build(seed)?,
    };
    let mut path = save.unwrap_or_else(|| PathBuf::from(format!("{name}.h5")));
    if path.extension().is_none_or(|e| e != "h5") {
        let mut s = path.into_os_string();
        s.push(".h5");
        path = PathBuf::from(s);
    }
    write_model(&path, &model).with_context(|| format!("cannot save {name}"))?;
    println!("Model saved as {}", path.display());
    Ok(())
}
