//! Why bytes are not a `.fbz` model we can read, or a model cannot be
//! written as one. File-level problems are [`FbzError`] variants; problems of
//! one layer are a [`LayerError`] wrapped with the layer's index and name;
//! problems of the FlatBuffers tables themselves are a [`FlatBuffersError`].

use akida_core::MAX_LAYERS;

use akida_core::weights::PackError;

use crate::formats::akd::BuildError;
use crate::formats::fbz::params::ParamsError;

/// Why a `.fbz` file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FbzError {
    #[error("not a Snappy raw block")]
    Snappy(#[from] snap::Error),
    #[error("the Snappy block is truncated: its header announces {declared} bytes, the file holds {found}")]
    Truncated { declared: u64, found: u64 },
    #[error("not a FlatBuffers model")]
    FlatBuffers(#[from] FlatBuffersError),
    #[error("the {table} table has no `{field}`")]
    MissingField {
        table: &'static str,
        field: &'static str,
    },
    #[error("engine version `{0}` is not supported (this reader knows akida 2.x files)")]
    Version(String),
    #[error("the model carries on-chip learning settings, which are not supported")]
    Learning,
    #[error("the model has {0} layers, at most {MAX_LAYERS} are supported")]
    TooManyLayers(usize),
    #[error("layer {index} (`{name}`)")]
    Layer {
        index: usize,
        name: String,
        source: LayerError,
    },
    #[error(transparent)]
    Model(BuildError),
}

/// Why the FlatBuffers tables of a `.fbz` file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FlatBuffersError {
    /// An offset, length, vtable or string that the generated accessors
    /// refused (out of the buffer, malformed, not UTF-8, ...). Boxed: it
    /// names where it happened, which would make every `FbzError` large.
    #[error(transparent)]
    Invalid(Box<planus::Error>),
    /// Offsets that point at the same data so often that copying the tables
    /// out would take far more memory than the buffer's size.
    #[error("its tables share data so often that copying them out would take over {limit} bytes (the buffer holds {buffer})")]
    ApparentSize { limit: usize, buffer: usize },
}

impl From<planus::Error> for FbzError {
    fn from(e: planus::Error) -> Self {
        FbzError::FlatBuffers(FlatBuffersError::Invalid(Box::new(e)))
    }
}

/// Why one layer of a `.fbz` file is not a layer we can run or write.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum LayerError {
    #[error("an InputData layer (layer_type 1) may only be the first layer")]
    InputDataNotFirst,
    #[error("unknown layer_type {0} (1 InputData, 2 InputConvolutional, 3 FullyConnected, 4 Convolutional, 5 SeparableConvolutional)")]
    LayerType(i32),
    #[error("float (double) params are not supported")]
    DoubleParams,
    #[error("param `{0}` appears more than once")]
    DuplicateParam(String),
    #[error("param `{0}` is missing")]
    MissingParam(String),
    #[error("param `{key}` is {found}, but this layer has {expected}")]
    ParamValue {
        key: String,
        found: i32,
        expected: i32,
    },
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error(
        "inbound layers are {found:?}, expected {expected:?} (only chains of layers are supported)"
    )]
    Inbound {
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error("unknown variable `{0}` (expected weights, weights_pw, threshold, act_step)")]
    UnknownVariable(String),
    #[error("variable `{0}` appears more than once")]
    DuplicateVariable(String),
    #[error("variable `{0}` is missing")]
    MissingVariable(&'static str),
    #[error("variable `{variable}` has dtype code {found}, expected {expected}")]
    Dtype {
        variable: &'static str,
        expected: u8,
        found: u8,
    },
    #[error("variable `{variable}` has {found} dimensions, expected {expected}")]
    Rank {
        variable: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("variable `{variable}` has numpy shape {shape:?} but {found} bytes of data")]
    DataLength {
        variable: &'static str,
        shape: Vec<u32>,
        found: usize,
    },
    #[error("variable `{variable}` holds {value}, outside the range of {bits}-bit weights")]
    WeightValue {
        variable: &'static str,
        value: i8,
        bits: u8,
    },
    #[error("weight bit width {0} has no engine dtype")]
    WeightBits(u8),
    #[error("variable {variable} has shape {found:?}, but the params give {expected:?}")]
    Shape {
        variable: &'static str,
        expected: [u32; 4],
        found: [u32; 4],
    },
    #[error(transparent)]
    Pack(PackError),
}
