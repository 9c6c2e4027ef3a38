//! `akida`: the runtime command of akida-rs. Prints the layer table of a
//! converted model, runs a uint8 `.npy` batch through it on every core,
//! converts models between `.akd` and `.fbz`, and runs a model on the
//! Cortex-M4F firmware (under QEMU, or flashed on a board with probe-rs).
//!
//! Every error is printed on stderr and exits with status 2 (as argument
//! errors do); nothing is written then. The work is done by
//! [`akida_host::commands::akida`].

use std::path::PathBuf;
use std::process::ExitCode;

use akida_host::commands::akida::{
    convert_format, profile_files, run_files, simd_by_name, summary_table, RunOptions,
};
use akida_host::commands::flash::{flash_probe, flash_qemu, QemuOptions};
use akida_host::firmware::{Counting, Transport};
use akida_host::formats;
use akida_host::runtime::KernelPolicy;
use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "akida",
    version,
    about = "Akida 1.0 runtime: model summary, batch inference, .akd/.fbz conversion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the layers of a converted model (.akd or .fbz)
    Summary {
        /// The converted model
        #[arg(short = 'm', long = "model", value_name = "MODEL.akd|fbz")]
        model: PathBuf,
    },
    /// Run a uint8 .npy batch (N,H,W,C) or image (H,W,C) through a model
    Run {
        /// The converted model
        #[arg(short = 'm', long = "model", value_name = "MODEL.akd|fbz")]
        model: PathBuf,
        /// The input: uint8, NHWC batch or one HWC image
        #[arg(short = 'i', long = "input", value_name = "X.npy")]
        input: PathBuf,
        /// The output: uint8 levels or int32 potentials (float32 with --predict)
        #[arg(short = 'o', long = "output", value_name = "Y.npy")]
        output: PathBuf,
        /// Write float32 rescaled potentials (last layer without activation)
        #[arg(long)]
        predict: bool,
        /// Kernel choice per layer
        #[arg(long, value_enum, default_value_t = KernelPolicy::Auto)]
        kernel: KernelPolicy,
        /// Then print each layer's time and the single-image latency (p50,
        /// p99), one image at a time on one thread
        #[arg(long)]
        layers: bool,
        /// Instruction set of the fast kernel (default: the best this CPU
        /// has): portable, avx2, avx-vnni, avx512-vnni, amx
        #[arg(long, value_name = "NAME")]
        simd: Option<String>,
        /// 16-bit products everywhere (no u8 x s8 byte product)
        #[arg(long)]
        no_byte_product: bool,
    },
    /// Run a model on the Cortex-M4F firmware: under QEMU (loaded at run
    /// time, with memory and instruction figures) or on a board (built with
    /// the model embedded, flashed with probe-rs)
    Flash {
        /// The converted model
        #[arg(short = 'm', long = "model", value_name = "MODEL.akd|fbz")]
        model: PathBuf,
        /// Where it runs
        #[arg(long, value_enum, default_value_t = Target::Qemu)]
        target: Target,
        /// The input (qemu): uint8, NHWC batch or one HWC image; one all-zero image without it
        #[arg(short = 'i', long = "input", value_name = "X.npy")]
        input: Option<PathBuf>,
        /// The outputs (qemu): uint8 levels or int32 potentials
        #[arg(short = 'o', long = "output", value_name = "Y.npy")]
        output: Option<PathBuf>,
        /// The chip (probe), as probe-rs names it: nRF52840_xxAA
        #[arg(long, required_if_eq("target", "probe"))]
        chip: Option<String>,
        /// The byte stream to the firmware (qemu)
        #[arg(long, value_enum, default_value_t = Stream::Semihosting)]
        transport: Stream,
        /// How instructions are counted (qemu): a TCG plugin, QEMU's
        /// -singlestep -d exec trace (slow), or not at all
        #[arg(long, value_enum, default_value_t = Count::Plugin)]
        count: Count,
        /// A firmware ELF to run (qemu) instead of building firmware/
        #[arg(long, value_name = "ELF")]
        firmware: Option<PathBuf>,
        /// The probe-rs program (probe)
        #[arg(long, value_name = "PATH", default_value = "probe-rs")]
        probe_rs: PathBuf,
        /// Build the board firmware without flashing it (probe)
        #[arg(long)]
        build_only: bool,
        /// Print the firmware's log (defmt, decoded)
        #[arg(long)]
        log: bool,
    },
    /// Convert a model between .akd and .fbz (formats by extension)
    ConvertFormat {
        /// The model to read
        #[arg(value_name = "IN.akd|fbz")]
        input: PathBuf,
        /// The model to write
        #[arg(value_name = "OUT.akd|fbz")]
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    /// The firmware under QEMU's mps2-an386 (Cortex-M4F)
    Qemu,
    /// A board through a debug probe (probe-rs)
    Probe,
}

#[derive(Clone, Copy, ValueEnum)]
enum Stream {
    Semihosting,
    Uart,
}

#[derive(Clone, Copy, ValueEnum)]
enum Count {
    Plugin,
    Trace,
    Off,
}

fn main() -> ExitCode {
    akida_host::cli::exit(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Summary { model } => {
            let m = formats::load(&model)?;
            println!("Model: {}", model.display());
            print!("{}", summary_table(&m));
        }
        Command::Run {
            model,
            input,
            output,
            predict,
            kernel,
            layers,
            simd,
            no_byte_product,
        } => {
            let simd = simd.as_deref().map(simd_by_name).transpose()?;
            let options = RunOptions {
                policy: kernel,
                predict,
                simd,
                no_byte_product,
            };
            let stats = run_files(&model, &input, &output, options)?;
            println!("{stats}");
            if layers {
                print!("{}", profile_files(&model, &input, options)?);
            }
        }
        Command::Flash {
            model,
            target: Target::Qemu,
            input,
            output,
            transport,
            count,
            firmware,
            log,
            ..
        } => {
            let options = QemuOptions {
                transport: match transport {
                    Stream::Semihosting => Transport::Semihosting,
                    Stream::Uart => Transport::Uart,
                },
                counting: match count {
                    Count::Plugin => Counting::Plugin,
                    Count::Trace => Counting::Trace,
                    Count::Off => Counting::Off,
                },
                firmware,
                ..QemuOptions::default()
            };
            let report = flash_qemu(&model, input.as_deref(), output.as_deref(), &options)?;
            if log {
                for line in &report.log {
                    println!("firmware: {line}");
                }
            }
            print!("{report}");
            if let Some(o) = output {
                println!("outputs written to {}", o.display());
            }
        }
        Command::Flash {
            model,
            target: Target::Probe,
            chip,
            probe_rs,
            build_only,
            ..
        } => {
            let chip = chip.unwrap_or_default();
            let report = flash_probe(&model, &chip, &probe_rs, build_only)?;
            print!("{report}");
        }
        Command::ConvertFormat { input, output } => {
            convert_format(&input, &output)?;
            println!("Model saved as {}", output.display());
        }
    }
    Ok(())
}
