//! # akida-host
//!
//! The std side of akida-rs: tensor files, owned models and their `.akd`
//! files, and (in later modules) Keras `.h5` I/O, quantization, conversion
//! and the command-line tools.

pub mod akd;
pub mod cli;
pub mod cnn2snn;
pub mod datasets;
pub mod engine_params;
pub mod fbz;
pub mod fsutil;
pub mod keras;
pub mod model_file;
pub mod runtime;
pub mod runtime_cli;
pub mod tensor;
pub mod zoo;
