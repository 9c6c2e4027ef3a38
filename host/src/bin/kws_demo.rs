//! `kws_demo`: keyword spotting on the host and on the Cortex-M4F firmware
//! under QEMU, side by side.
//!
//! ```text
//! kws_demo                               # the shipped model on the shipped clips
//! kws_demo --audio my_clips/ [--json out.json]
//! kws_demo --from-scratch [--data-dir SPEECH_COMMANDS] [-e 30] [--tune-epochs 8]
//! ```
//! Exit status 0 when host and device agree on every clip (features,
//! potentials, labels), 1 when they do not, 2 on any other error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use akida_host::cli;
use akida_host::commands::kws_demo::{self, DemoError, DemoOptions, ScratchOptions};
use akida_host::firmware::{Counting, Transport};
use akida_host::kws::DeviceOptions;
use clap::{Parser, ValueEnum};

#[derive(Parser)]
#[command(
    name = "kws_demo",
    version,
    about = "Keyword spotting: the same answer from the host and the Cortex-M4F firmware (QEMU)"
)]
struct Cli {
    /// The converted keyword model (.akd or .fbz); default: the shipped 12-class ds_cnn_kws
    #[arg(short = 'm', long = "model", value_name = "M.akd")]
    model: Option<PathBuf>,
    /// Class names, one per line (default: labels.txt beside the model)
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// A 1 s 16 kHz mono 16-bit WAV file, a folder of them, or a folder of one folder per label (default: the shipped clips)
    #[arg(long, value_name = "PATH")]
    audio: Option<PathBuf>,
    /// Write one JSON record per clip here
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// First make the model with the tool chain: create, train, quantize 8/4/4, tune, convert
    #[arg(long = "from-scratch")]
    from_scratch: bool,
    /// Speech Commands folder for --from-scratch (default: the mini set of the tests)
    #[arg(long = "data-dir", value_name = "DIR", requires = "from_scratch")]
    data_dir: Option<PathBuf>,
    /// Where --from-scratch writes its models
    #[arg(
        long = "out",
        value_name = "DIR",
        default_value = "kws_from_scratch",
        requires = "from_scratch"
    )]
    out: PathBuf,
    /// Training epochs of --from-scratch
    #[arg(
        short = 'e',
        long = "epochs",
        default_value_t = 30,
        requires = "from_scratch"
    )]
    epochs: u32,
    /// Tuning epochs of --from-scratch (quantization-aware)
    #[arg(long = "tune-epochs", default_value_t = 8, requires = "from_scratch")]
    tune_epochs: u32,
    /// How the M4's instructions are counted under QEMU
    #[arg(long, value_enum, default_value_t = Count::Plugin)]
    count: Count,
    /// A firmware ELF with the model embedded (default: built from firmware/)
    #[arg(long, value_name = "ELF")]
    firmware: Option<PathBuf>,
    /// Talk to the firmware over its UART (QEMU's CMSDK UART0) instead of semihosting files
    #[arg(long)]
    uart: bool,
    /// Print the firmware's log
    #[arg(long)]
    log: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Count {
    Off,
    Plugin,
    Trace,
}

fn run(cli: Cli) -> Result<(), DemoError> {
    let mut model = cli.model.unwrap_or_else(kws_demo::shipped_model);
    if cli.from_scratch {
        let exe = std::env::current_exe().map_err(|source| DemoError::Tool {
            program: "kws_demo".into(),
            source,
        })?;
        model = kws_demo::from_scratch(&ScratchOptions {
            data_dir: cli.data_dir.unwrap_or_else(kws_demo::mini_set),
            out: cli.out,
            epochs: cli.epochs,
            tune_epochs: cli.tune_epochs,
            tools: exe.parent().map(PathBuf::from).unwrap_or_default(),
        })?;
    }
    let options = DemoOptions {
        model,
        labels: cli.labels,
        audio: cli.audio.unwrap_or_else(kws_demo::shipped_clips),
        device: DeviceOptions {
            counting: match cli.count {
                Count::Off => Counting::Off,
                Count::Plugin => Counting::Plugin,
                Count::Trace => Counting::Trace,
            },
            firmware: cli.firmware,
            transport: match cli.uart {
                true => Transport::Uart,
                false => Transport::Semihosting,
            },
            timeout: Duration::from_secs(600),
        },
    };
    let report = kws_demo::run(&options)?;
    if cli.log {
        for line in &report.device.log {
            println!("firmware: {line}");
        }
    }
    print!("{report}");
    if let Some(path) = &cli.json {
        kws_demo::write_json(&report, path)?;
        println!("wrote {}", path.display());
    }
    kws_demo::check_agreement(&report)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Err(e @ DemoError::Disagree(_)) => {
            eprintln!("error: {}", cli::report(&e));
            ExitCode::from(1)
        }
        r => cli::exit(r.map_err(anyhow::Error::from)),
    }
}
