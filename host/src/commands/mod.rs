//! What each command-line tool does, as library functions the binaries
//! call after parsing their arguments (so every rule is tested without a
//! process):
//!
//! - [`akida`]: `akida summary | run | convert-format`;
//! - [`flash`]: `akida flash` (the Cortex-M4F firmware under QEMU or on a board);
//! - [`cnn2snn`]: `cnn2snn quantize | convert | check` on files;
//! - [`akida_models`]: `akida_models create | summary`;
//! - [`kws_demo`]: keyword spotting on the host and the firmware, side by side.

pub mod akida;
pub mod akida_models;
pub mod cnn2snn;
pub mod flash;
pub mod kws_demo;
