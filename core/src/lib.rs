//! # akida-core
//!
//! The single source of numeric truth of akida-rs: what an Akida 1.0
//! (AKD1000 "NSoC") layer computes, bit for bit as BrainChip's engine does,
//! and the `.akd` model file. `no_std`, and no heap anywhere in inference:
//! models are decoded in place from their bytes and run on buffers the
//! caller provides.
//!
//! - [`dims`]: HWC sizes, windows, TensorFlow padding.
//! - [`weights`]: weights packed at 2, 4 or 8 bits; little-endian variables.
//! - [`layer`]: the layer kinds, their parameters, a layer over any storage,
//!   the InputData layer.
//! - [`model`]: a model, its validation, the [`ValidModel`] that runs.
//! - [`kernels`]: the backends (reference, event, fast) computing potentials.
//! - [`tail`]: pooling, [`saturation`] and [`activation`] after the kernel.
//! - [`inference`]: running a layer and a model ([`forward`]).
//! - [`format`]: the `.akd` file (header, checksum, postcard payload).
//! - [`stream`]: row-streaming inference in a small static workspace (the
//!   firmware), with the Cortex-M4 kernels of [`kernels::m4`].
//! - [`wire`]: the framed byte protocol between a host and the firmware.
//! - [`mfcc`]: the keyword-spotting front end (PCM to MFCC to uint8 input).
#![no_std]
// `unsafe_code` is denied by the workspace lints; only the x86 SIMD
// micro-kernels of `kernels::fast`, the Cortex-M4 `asm!` of `kernels::m4`
// and `VSQRT` of `mfcc`, and the workspace views of `stream` allow it.

#[cfg(feature = "std")]
extern crate std;

pub mod activation;
pub mod dims;
pub mod format;
pub mod inference;
pub mod kernels;
pub mod layer;
pub mod mfcc;
pub mod model;
pub mod pooling;
pub mod saturation;
pub mod stream;
pub mod tail;
pub mod weights;
pub mod wire;

pub use dims::{Dims, Padding, Window};
pub use format::{decode, encode_into, FormatError};
#[cfg(feature = "std")]
pub use inference::WorkspaceBuffers;
pub use inference::{forward, run_layer, ForwardError, LayerOutput, LayerOutputMut, Workspace};
pub use kernels::{Backend, KernelWeights, PrepBuffers, Preparation, Prepared, Simd};
#[cfg(feature = "std")]
pub use layer::OwnedLayer;
pub use layer::{InputData, Layer, LayerKind, LayerParams, LayerRef, LayerShapes, Pooling};
#[cfg(feature = "std")]
pub use model::OwnedModel;
pub use model::{Model, ModelError, ModelRef, ValidLayer, ValidModel, WorkspaceSizes, MAX_LAYERS};
pub use weights::{F32Values, I32Values, PackedWeights};
