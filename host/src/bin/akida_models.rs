//! `akida_models`: creates the legacy Akida 1.0 zoo models as Keras `.h5`
//! files and prints the summary of a Keras `.h5` file.
//!
//! Every error is printed on stderr and exits with status 2 (as argument
//! errors do); nothing is written then.

use std::path::PathBuf;
use std::process::ExitCode;

use akida_host::commands::akida_models::{self, models_help};
use anyhow::Result;
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
        } => {
            let path = akida_models::create(&model, save_model.as_deref(), seed, classes)?;
            println!("Model saved as {}", path.display());
        }
        Command::Summary { model } => print!("{}", akida_models::summary(&model)?),
    }
    Ok(())
}
