//! # akida-train
//!
//! Training for akida-rs on [burn](https://burn.dev) 0.22: the zoo's Keras
//! models (`.h5`, float or cnn2snn-quantized) trained on burn's `flex` CPU
//! backend, with our own float32 kernels plugged in as a backend extension,
//! and the tools `cifar10_train`, `kws_train` and `utk_face_train`.
//!
//! - [`kernels`]: float32 kernels, forward and backward, on NHWC slices.
//! - [`ops`]: the kernels as burn operations (`TrainOps`, with backward).
//! - [`net`]: a Keras model as a network: weights, forward pass, cnn2snn's
//!   fake quantization for quantized layers.
//! - [`optim`]: Keras's Adam. [`rng`]: seeded randomness.
//! - [`data`]: training sources and augmentation; [`fit`]: the training
//!   loop; [`state`]: resumable state; [`log`], [`plot`]: the CSV log and
//!   the training-curve PNG.
//! - [`eval`]: Keras model vs its Akida conversion on the integer runtime.
//! - [`commands`], [`cli`]: the three tools; [`alloc`]: their allocator
//!   settings.

pub mod alloc;
pub mod cli;
pub mod commands;
pub mod data;
pub mod eval;
pub mod fit;
pub mod kernels;
pub mod log;
pub mod net;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod rng;
pub mod state;
