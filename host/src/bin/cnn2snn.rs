//! `cnn2snn`: quantize a Keras model, convert a quantized model to an Akida
//! 1.0 model, or check its compatibility, with the flags of BrainChip's
//! command:
//!
//! ```text
//! cnn2snn -m vgg_cifar10.h5 quantize -wq 4 -aq 4 [-iq 8] [-laq 1]
//! cnn2snn -m vgg_cifar10_iq4_wq4_aq4.h5 convert [-sc 255 -sh 0] [-s M.fbz] [--strict]
//! cnn2snn -m vgg_cifar10_iq4_wq4_aq4.h5 check
//! cnn2snn -m vgg_cifar10_iq4_wq4_aq4.h5 align [-s OUT.h5]   # ours: converted == quantized
//! ```
//! `-m` may come before or after the action. Errors exit with status 2 and
//! write nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use akida_host::cnn2snn::{ConvertOptions, InputScaling, QuantizeOptions};
use akida_host::commands::cnn2snn::{align_file, check_file, convert_file, quantize_file};
use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cnn2snn",
    version,
    about = "Quantize Keras models and convert them to Akida 1.0 models"
)]
struct Cli {
    /// The source model (.h5)
    #[arg(short = 'm', long = "model", global = true, value_name = "M.h5")]
    model: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Quantize a Keras model (saved as M_iqI_wqW_aqA.h5)
    Quantize(QuantizeArgs),
    /// Convert a quantized Keras model to an Akida model (.akd, or .fbz with -s)
    Convert(ConvertArgs),
    /// Print the compatibility report (errors and AKD1000 warnings) without converting
    Check(ScalingArgs),
    /// Move a quantized model's biases and kernel scales (by less than one
    /// potential unit) so that its conversion rounds nothing and the
    /// converted model computes the Keras model's levels (not in BrainChip's
    /// cnn2snn; the file stays a cnn2snn model). Saves over M.h5 unless -s.
    Align(AlignArgs),
}

#[derive(Args)]
struct AlignArgs {
    #[command(flatten)]
    scaling: ScalingArgs,
    /// Output path (default: over the model, atomically)
    #[arg(short = 's', long = "save_model", value_name = "PATH")]
    save_model: Option<PathBuf>,
}

#[derive(Args)]
struct QuantizeArgs {
    /// Weight bits of every neural layer but the first (0: float)
    #[arg(long = "wq", alias = "weight_quantization", default_value_t = 4)]
    weight_quantization: u32,
    /// Activation bits (0: float)
    #[arg(long = "aq", alias = "activ_quantization", default_value_t = 4)]
    activ_quantization: u32,
    /// Weight bits of the first layer (default: -wq)
    #[arg(long = "iq", alias = "input_weight_quantization")]
    input_weight_quantization: Option<i64>,
    /// Re-quantize only the last activation to this width (appends _laqB)
    #[arg(long = "laq", alias = "last_activ_quantization")]
    last_activ_quantization: Option<u32>,
    /// Do not fold BatchNormalization layers
    #[arg(long = "no-fold-BN")]
    no_fold_bn: bool,
    /// Output path (default: M_iqI_wqW_aqA.h5 next to the model)
    #[arg(short = 's', long = "save_model", value_name = "PATH")]
    save_model: Option<PathBuf>,
}

#[derive(Args)]
struct ScalingArgs {
    /// Scale applied on uint8 inputs (with --shift; not with a Rescaling layer)
    #[arg(long = "sc", alias = "scale")]
    scale: Option<f64>,
    /// Shift applied on uint8 inputs (with --scale)
    #[arg(long = "sh", alias = "shift")]
    shift: Option<f64>,
}

impl ScalingArgs {
    /// The scaling of both flags; one flag alone is ignored, as BrainChip's
    /// cnn2snn ignores it, but with a warning on stderr.
    fn scaling(&self) -> Option<InputScaling> {
        match (self.scale, self.shift) {
            (Some(scale), None) => {
                eprintln!("warning: -sc {scale} is ignored without -sh (cnn2snn applies the input scaling only when both are given)");
            }
            (None, Some(shift)) => {
                eprintln!("warning: -sh {shift} is ignored without -sc (cnn2snn applies the input scaling only when both are given)");
            }
            _ => {}
        }
        self.both()
    }

    fn both(&self) -> Option<InputScaling> {
        match (self.scale, self.shift) {
            (Some(scale), Some(shift)) => Some(InputScaling { scale, shift }),
            _ => None,
        }
    }
}

#[derive(Args)]
struct ConvertArgs {
    #[command(flatten)]
    scaling: ScalingArgs,
    /// Output path: .akd (ours) or .fbz (BrainChip's); default M.akd
    #[arg(short = 's', long = "save_model", value_name = "PATH")]
    save_model: Option<PathBuf>,
    /// Turn AKD1000 silicon-limit warnings into errors
    #[arg(long)]
    strict: bool,
}

/// BrainChip's single-dash long flags (`-wq 4`) become clap long flags.
fn normalize(args: impl Iterator<Item = String>) -> Vec<String> {
    const LONG: [&str; 6] = ["wq", "aq", "iq", "laq", "sc", "sh"];
    args.map(|a| {
        let flag = a.strip_prefix('-').filter(|r| !r.starts_with('-'));
        match flag {
            Some(rest)
                if LONG
                    .iter()
                    .any(|l| rest == *l || rest.starts_with(&format!("{l}="))) =>
            {
                format!("-{a}")
            }
            _ => a,
        }
    })
    .collect()
}

fn main() -> ExitCode {
    akida_host::cli::exit(run(Cli::parse_from(normalize(std::env::args()))))
}

fn run(cli: Cli) -> Result<()> {
    let Some(model) = cli.model else {
        bail!("the source model is required: -m M.h5");
    };
    match cli.action {
        Action::Quantize(q) => {
            let input_weight_bits = match q.input_weight_quantization {
                None | Some(-1) => None,
                Some(b) if b >= 0 => Some(b as u32),
                Some(b) => bail!("-iq {b}: bit widths are not negative"),
            };
            let options = QuantizeOptions {
                input_weight_bits,
                last_activation_bits: q.last_activ_quantization,
                fold_batchnorm: !q.no_fold_bn,
                ..QuantizeOptions::new(q.weight_quantization, q.activ_quantization)
            };
            let out = quantize_file(&model, &options, q.save_model.as_deref())?;
            println!(
                "Model successfully quantized and saved as {}.",
                out.display()
            );
        }
        Action::Convert(c) => {
            let options = ConvertOptions {
                input_scaling: c.scaling.scaling(),
                strict: c.strict,
            };
            let (out, conversion) = convert_file(&model, &options, c.save_model.as_deref())?;
            for finding in &conversion.report.findings {
                eprintln!("{finding}");
            }
            for note in &conversion.notes {
                eprintln!("warning: {note}");
            }
            println!(
                "Model successfully converted and saved as {}.",
                out.display()
            );
        }
        Action::Align(a) => {
            let (out, alignment) =
                align_file(&model, a.scaling.scaling(), a.save_model.as_deref())?;
            for layer in &alignment.layers {
                println!("{}", akida_host::cnn2snn::align::describe(layer));
            }
            let (aligned, channels) = alignment.counts();
            if alignment.saturating() > 0 {
                eprintln!(
                    "warning: {} channel(s) have levels past the engine's 20-bit potential range: where potentials reach them, the converted model saturates and the Keras model does not",
                    alignment.saturating()
                );
            }
            println!(
                "{aligned} of {channels} channels aligned; model saved as {}.",
                out.display()
            );
        }
        Action::Check(s) => {
            let report = check_file(&model, s.scaling())?;
            print!("{report}");
            let (errors, warnings) = (report.errors().count(), report.warnings().count());
            println!(
                "{}: {errors} error(s), {warnings} warning(s)",
                model.display()
            );
            if errors > 0 {
                bail!(
                    "{} is not compatible with Akida 1.0 conversion",
                    model.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_long_flags_are_normalized() {
        let args = [
            "cnn2snn", "-m", "x.h5", "quantize", "-wq", "4", "-aq=2", "-iq", "8", "-s", "o.h5",
        ];
        let out = normalize(args.iter().map(|s| s.to_string()));
        assert_eq!(
            out,
            [
                "cnn2snn", "-m", "x.h5", "quantize", "--wq", "4", "--aq=2", "--iq", "8", "-s",
                "o.h5"
            ]
        );
    }
}
