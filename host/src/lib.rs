//! # akida-host
//!
//! The std side of akida-rs, laid out as the tool chain runs:
//!
//! - [`keras`]: Keras models: the graph, `.h5` files, layer blocks, the zoo.
//! - [`cnn2snn`]: quantize, check and convert (BrainChip's cnn2snn flow).
//! - [`formats`]: converted-model files (`.akd`, BrainChip's `.fbz`) and
//!   tensor files (`.npy`, `.npz`).
//! - [`runtime`]: host inference, core's forward prepared and batched.
//! - [`datasets`]: datasets in their official layouts.
//! - [`firmware`]: the Cortex-M4F firmware from the host: builds, QEMU
//!   sessions over UART or semihosting, its defmt log, instruction counts.
//! - [`kws`]: keyword spotting: WAV clips, the host's and the device's
//!   answers (front end and model), their agreement.
//! - [`commands`]: what each command-line tool does (`bin/` only parses
//!   arguments and calls these).
//! - [`cli`], [`fsutil`]: error reports of the tools; atomic saves.

pub mod cli;
pub mod cnn2snn;
pub mod commands;
pub mod datasets;
pub mod firmware;
pub mod formats;
pub mod fsutil;
pub mod keras;
pub mod kws;
pub mod runtime;
#[cfg(test)]
pub(crate) mod test_support;
pub mod zoo;
