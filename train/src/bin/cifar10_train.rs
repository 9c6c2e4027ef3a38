//! `cifar10_train`: see [`akida_train::cli`] for the command line.

use std::process::ExitCode;

// mimalloc: burn's step allocates and frees large buffers; with glibc's
// allocator a third of the time went to page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    akida_train::cli::main(akida_train::commands::Tool::Cifar10)
}
