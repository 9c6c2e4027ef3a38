//! The `config` object of every Keras (and cnn2snn) layer class the Akida 1.0
//! flow models, derived with serde, fields declared in the order tf_keras
//! 2.19's `model.to_json()` writes them.
//!
//! Every declared field is a [`Field`]: absent, null or a value, so a config
//! read from a file is written back with the keys it had (initialisers,
//! regularisers and the like included, null stays null); keys no struct
//! declares are kept in its `extra` map. Reading checks types and ranges:
//! sizes are integers in `0..2^32` (Akida's dimensions are `u32`), and an
//! invalid value is reported with the path of its field.
//!
//! Classes without a struct here are kept whole as
//! [`LayerConfig::Unknown`].

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::layers::{
    padding_name, BatchNormConfig, Conv2DConfig, DenseConfig, DepthwiseConv2DConfig, LayerConfig,
    Padding, Pool2DConfig, Quantizer, QuantizerKind, ReluConfig, SeparableConv2DConfig,
};
use super::Layer;

/// Why a layer's `config` object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    /// A field the class needs is absent or null.
    #[error("no `{0}`")]
    Missing(&'static str),
    /// A field holds a value of the wrong type or out of range; the path
    /// names the field (`strides[0]`, `quantizer.config.bitwidth`).
    #[error("invalid config")]
    Invalid(#[source] serde_path_to_error::Error<serde_json::Error>),
}

// ------------------------------------------------------------ field types

/// One key of a config object: absent, present as `null`, or set. A null
/// modelled field reads as its default, as in Keras.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum Field<T> {
    #[default]
    Absent,
    Null,
    Set(T),
}

impl<T: Clone> Field<T> {
    pub(super) fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    fn get(&self) -> Option<T> {
        match self {
            Field::Set(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn or(&self, default: T) -> T {
        self.get().unwrap_or(default)
    }

    fn required(&self, name: &'static str) -> Result<T, FieldError> {
        self.get().ok_or(FieldError::Missing(name))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Field::Null, Field::Set))
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Set(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

/// A size (filters, units, a kernel side...): an integer in `0..2^32`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub(super) struct Size(usize);

struct SizeVisitor;

impl<'de> Visitor<'de> for SizeVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer in 0..2^32")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<usize, E> {
        match u32::try_from(n) {
            Ok(n) => Ok(n as usize),
            Err(_) => Err(E::invalid_value(de::Unexpected::Unsigned(n), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<usize, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(n), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor).map(Size)
    }
}

/// A 2-D size: Keras accepts one integer for both axes, `[n]` or `[h, w]`;
/// written as `[h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub(super) struct Pair([usize; 2]);

impl<'de> Deserialize<'de> for Pair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairVisitor;
        impl<'de> Visitor<'de> for PairVisitor {
            type Value = Pair;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a pair of integers in 0..2^32")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Pair, E> {
                SizeVisitor.visit_u64(n).map(|n| Pair([n; 2]))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Pair, E> {
                SizeVisitor.visit_i64(n).map(|n| Pair([n; 2]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pair, A::Error> {
                let first: Size = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let second: Size = seq.next_element()?.unwrap_or(first);
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Pair([first.0, second.0]))
            }
        }
        d.deserialize_any(PairVisitor)
    }
}

/// Batch-norm `axis`: one integer or a list; written as a list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub(super) struct Axes(Vec<i64>);

impl<'de> Deserialize<'de> for Axes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "an integer or a list of integers")]
        enum OneOrMany {
            One(i64),
            Many(Vec<i64>),
        }
        Ok(Axes(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(a) => a,
        }))
    }
}

/// A float written as an integer when integral (akida_models writes
/// `Rescaling(1/255, 0)` with an integer offset).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub(super) struct IntOrFloat(f64);

impl Serialize for IntOrFloat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.fract() == 0.0 && x.abs() < 9.0e15 {
            s.serialize_i64(x as i64)
        } else {
            s.serialize_f64(x)
        }
    }
}

/// A dtype given as a name or as a Keras 3 policy object
/// (`{"class_name": "DTypePolicy", "config": {"name": "float32"}}`);
/// anything else reads as `float32`. Written as the name.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub(super) struct DtypeName(String);

impl<'de> Deserialize<'de> for DtypeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct PolicyConfig {
            name: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Dtype {
            Name(String),
            Policy { config: PolicyConfig },
            Other(IgnoredAny),
        }
        Ok(DtypeName(match Dtype::deserialize(d)? {
            Dtype::Name(name)
            | Dtype::Policy {
                config: PolicyConfig { name },
            } => name,
            Dtype::Other(_) => "float32".into(),
        }))
    }
}

/// A batch shape (`[null, 32, 32, 3]`), read from `batch_input_shape`
/// (tf.keras) or `batch_shape` (Keras 3).
pub(super) type BatchShape = Vec<Option<Size>>;

/// `padding`: `"valid"` or `"same"`, any case (as Keras accepts), as core's
/// [`Padding`].
mod keras_padding {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Field<Padding>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Field::Set(p) => s.serialize_str(padding_name(*p)),
            _ => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Field<Padding>, D::Error> {
        let Some(name) = Option::<String>::deserialize(d)? else {
            return Ok(Field::Null);
        };
        match name.to_ascii_lowercase().as_str() {
            "valid" => Ok(Field::Set(Padding::Valid)),
            "same" => Ok(Field::Set(Padding::Same)),
            _ => Err(de::Error::invalid_value(
                de::Unexpected::Str(&name),
                &"`valid` or `same`",
            )),
        }
    }
}

/// A bit width (`bitwidth`), read as a [`Size`]: serde_json's
/// `arbitrary_precision` (turned on by defmt-decoder) would word an
/// out-of-range plain `u32` as "invalid number", without the value.
mod keras_bits {
    use super::*;

    pub fn serialize<S: Serializer>(b: &Field<u32>, s: S) -> Result<S::Ok, S::Error> {
        b.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Field<u32>, D::Error> {
        Ok(Option::<Size>::deserialize(d)?.map_or(Field::Null, |b| Field::Set(b.0 as u32)))
    }

    /// The same, for a required field.
    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        Size::deserialize(d).map(|b| b.0 as u32)
    }
}

// ---------------------------------------------------------------- classes

/// Declares a config struct: every field a [`Field`] (absent fields are not
/// written), unknown keys kept in `extra` (written after the declared ones),
/// and `fresh()`, the config tf_keras writes for a new layer: the fields
/// given a default (the unmodelled ones) set, the others absent.
///
/// Fields are listed in the order tf_keras writes them; a group of fields
/// several classes share in the same order is named once: `@layer` (the
/// base `Layer`'s), `@window` (a convolution window's, after `filters`) and
/// `@kernel` (the kernel and bias initialisers, regularisers and
/// constraints).
macro_rules! keras_config {
    (@fields $head:tt [$($done:tt)*] @layer, $($rest:tt)*) => {
        keras_config!(@fields $head [$($done)*
            name: String,
            trainable: Value = true,
            dtype: Value = "float32",
        ] $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] @window, $($rest:tt)*) => {
        keras_config!(@fields $head [$($done)*
            kernel_size: Pair,
            strides: Pair,
            #[serde(with = "keras_padding")]
            padding: Padding,
            data_format: Value = "channels_last",
            dilation_rate: Pair,
            groups: Value = 1,
            activation: String,
            use_bias: bool,
        ] $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] @kernel, $($rest:tt)*) => {
        keras_config!(@fields $head [$($done)*
            kernel_initializer: Value = glorot(),
            bias_initializer: Value = zeros(),
            kernel_regularizer: Value = NULL,
            bias_regularizer: Value = NULL,
            activity_regularizer: Value = NULL,
            kernel_constraint: Value = NULL,
            bias_constraint: Value = NULL,
        ] $($rest)*);
    };
    (
        @fields $head:tt [$($done:tt)*]
        $(#[$fmeta:meta])* $field:ident: $ty:ty $(= $default:expr)?, $($rest:tt)*
    ) => {
        keras_config!(@fields $head [$($done)*
            $(#[$fmeta])* $field: $ty $(= $default)?,
        ] $($rest)*);
    };
    (
        @fields [$(#[$meta:meta])* $name:ident]
        [$($(#[$fmeta:meta])* $field:ident: $ty:ty $(= $default:expr)?,)*]
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
        #[serde(default)]
        pub(super) struct $name {
            $(
                $(#[$fmeta])*
                #[serde(skip_serializing_if = "Field::is_absent")]
                pub $field: Field<$ty>,
            )*
            /// Keys no field declares, kept as read.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }

        impl $name {
            fn fresh() -> $name {
                $name {
                    $($field: keras_config!(@default $($default)?),)*
                    extra: Map::new(),
                }
            }
        }
    };
    (@default) => { Field::Absent };
    (@default $default:expr) => { Field::Set(($default).into()) };
    (
        $(#[$meta:meta])*
        $name:ident { $($fields:tt)* }
    ) => {
        keras_config!(@fields [$(#[$meta])* $name] [] $($fields)*);
    };
}

const NULL: Value = Value::Null;

/// A Keras initialiser object.
fn initializer(class: &str, config: Value) -> Value {
    serde_json::json!({
        "module": "keras.initializers", "class_name": class,
        "config": config, "registered_name": null,
    })
}

fn zeros() -> Value {
    initializer("Zeros", serde_json::json!({}))
}

fn ones() -> Value {
    initializer("Ones", serde_json::json!({}))
}

fn glorot() -> Value {
    initializer("GlorotUniform", serde_json::json!({"seed": null}))
}

keras_config!(
    /// `InputLayer`.
    InputJson {
        #[serde(alias = "batch_shape")]
        batch_input_shape: BatchShape,
        dtype: DtypeName,
        sparse: Value = false,
        ragged: Value = false,
        name: String,
    }
);

keras_config!(
    /// `Rescaling`.
    RescalingJson {
        @layer,
        scale: f64,
        offset: IntOrFloat,
    }
);

keras_config!(
    /// `Conv2D` and cnn2snn's `QuantizedConv2D` (which has no `data_format`,
    /// `groups` or `activation`, and a `quantizer`).
    ConvJson {
        @layer,
        filters: Size,
        @window,
        @kernel,
        quantizer: QuantizerJson,
    }
);

keras_config!(
    /// `SeparableConv2D` and cnn2snn's `QuantizedSeparableConv2D` (which has
    /// no `data_format`, `activation` or `depth_multiplier`, and two
    /// quantizers).
    SeparableJson {
        @layer,
        filters: Size,
        @window,
        @kernel,
        depth_multiplier: Size,
        depthwise_initializer: Value = glorot(),
        pointwise_initializer: Value = glorot(),
        depthwise_regularizer: Value = NULL,
        pointwise_regularizer: Value = NULL,
        depthwise_constraint: Value = NULL,
        pointwise_constraint: Value = NULL,
        quantizer_dw: QuantizerJson,
        quantizer: QuantizerJson,
    }
);

keras_config!(
    /// `DepthwiseConv2D`.
    DepthwiseJson {
        @layer,
        @window,
        bias_initializer: Value = zeros(),
        bias_regularizer: Value = NULL,
        activity_regularizer: Value = NULL,
        bias_constraint: Value = NULL,
        depth_multiplier: Size,
        depthwise_initializer: Value = glorot(),
        depthwise_regularizer: Value = NULL,
        depthwise_constraint: Value = NULL,
    }
);

keras_config!(
    /// `Dense` and cnn2snn's `QuantizedDense` (no `activation`, a
    /// `quantizer`).
    DenseJson {
        @layer,
        units: Size,
        activation: String,
        use_bias: bool,
        @kernel,
        quantizer: QuantizerJson,
    }
);

keras_config!(
    /// `BatchNormalization`.
    BatchNormJson {
        @layer,
        axis: Axes,
        momentum: f64,
        epsilon: f64,
        center: bool,
        scale: bool,
        beta_initializer: Value = zeros(),
        gamma_initializer: Value = ones(),
        moving_mean_initializer: Value = zeros(),
        moving_variance_initializer: Value = ones(),
        beta_regularizer: Value = NULL,
        gamma_regularizer: Value = NULL,
        beta_constraint: Value = NULL,
        gamma_constraint: Value = NULL,
    }
);

keras_config!(
    /// `ReLU`.
    ReluJson {
        @layer,
        max_value: f64,
        negative_slope: f64,
        threshold: f64,
    }
);

keras_config!(
    /// `Activation`.
    ActivationJson {
        @layer,
        activation: String,
    }
);

keras_config!(
    /// `MaxPooling2D` and `AveragePooling2D`.
    PoolJson {
        @layer,
        pool_size: Pair,
        #[serde(with = "keras_padding")]
        padding: Padding,
        strides: Pair,
        data_format: Value = "channels_last",
    }
);

keras_config!(
    /// `GlobalAveragePooling2D`.
    GlobalPoolJson {
        @layer,
        data_format: Value = "channels_last",
        keepdims: bool,
    }
);

keras_config!(
    /// `Dropout`.
    DropoutJson {
        @layer,
        rate: f64,
        noise_shape: Value = NULL,
        seed: Value = NULL,
    }
);

keras_config!(
    /// `Flatten`.
    FlattenJson {
        @layer,
        data_format: Value = "channels_last",
    }
);

keras_config!(
    /// `Reshape`.
    ReshapeJson {
        @layer,
        target_shape: Vec<i64>,
    }
);

keras_config!(
    /// cnn2snn's `QuantizedReLU` and `ActivationDiscreteRelu` (no
    /// `max_value`).
    BitwidthJson {
        @layer,
        #[serde(with = "keras_bits")]
        bitwidth: u32,
        max_value: f64,
    }
);

/// A cnn2snn weight quantizer object (`module`, `class_name`, `config`,
/// `registered_name`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub(super) struct QuantizerJson {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    module: Field<Value>,
    class_name: String,
    config: QuantizerConfigJson,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    registered_name: Field<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// The `config` of a quantizer object.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub(super) struct QuantizerConfigJson {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    name: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    trainable: Field<Value>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    dtype: Field<Value>,
    #[serde(deserialize_with = "keras_bits::required")]
    bitwidth: u32,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A layer's `config` object, ready to write (the configs with initialisers
/// boxed).
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum ConfigJson {
    Input(InputJson),
    Rescaling(RescalingJson),
    Conv(Box<ConvJson>),
    Separable(Box<SeparableJson>),
    Depthwise(Box<DepthwiseJson>),
    Dense(Box<DenseJson>),
    BatchNorm(Box<BatchNormJson>),
    Relu(ReluJson),
    Activation(ActivationJson),
    Pool(PoolJson),
    GlobalPool(GlobalPoolJson),
    Dropout(DropoutJson),
    Flatten(FlattenJson),
    Reshape(ReshapeJson),
    Bitwidth(BitwidthJson),
    Unknown(Map<String, Value>),
}

// ---------------------------------------------------------------- reading

/// One config object as the struct `C`, naming the field of a bad value.
fn parse<C: DeserializeOwned>(config: &Map<String, Value>) -> Result<C, FieldError> {
    serde_path_to_error::deserialize(config).map_err(FieldError::Invalid)
}

/// The typed config of a layer of class `class`; classes without a struct
/// here (and quantizeml's, which share some cnn2snn class names) are kept
/// whole as [`LayerConfig::Unknown`].
///
/// The class picks the struct here rather than through a serde tag on the
/// entry: the choice also depends on `module`, an unknown class keeps its
/// data, and deserializing the config on its own (not buffered inside a
/// tagged enum) lets errors name the field's path.
pub(super) fn read_config(
    class: &str,
    module: Option<&str>,
    registered_name: Option<&str>,
    config: &Map<String, Value>,
) -> Result<LayerConfig, FieldError> {
    let unknown = || LayerConfig::Unknown {
        class_name: class.to_owned(),
        module: module.map(str::to_owned),
        registered_name: registered_name.map(str::to_owned),
        config: Value::Object(config.clone()),
    };
    if module.is_some_and(|m| m.starts_with("quantizeml")) {
        return Ok(unknown());
    }
    Ok(match class {
        "InputLayer" => {
            let c: InputJson = parse(config)?;
            LayerConfig::InputLayer {
                batch_input_shape: batch_shape(c.batch_input_shape.required("batch_input_shape")?),
                dtype: c.dtype.or(DtypeName("float32".into())).0,
            }
        }
        "Rescaling" => {
            let c: RescalingJson = parse(config)?;
            LayerConfig::Rescaling {
                scale: c.scale.required("scale")?,
                offset: c.offset.or(IntOrFloat(0.0)).0,
            }
        }
        "Conv2D" => LayerConfig::Conv2D(parse::<ConvJson>(config)?.read()?),
        "QuantizedConv2D" => {
            let c: ConvJson = parse(config)?;
            LayerConfig::QuantizedConv2D {
                conv: c.read()?,
                quantizer: read_quantizer(&c.quantizer, "quantizer")?,
            }
        }
        "SeparableConv2D" => LayerConfig::SeparableConv2D(parse::<SeparableJson>(config)?.read()?),
        "QuantizedSeparableConv2D" => {
            let c: SeparableJson = parse(config)?;
            LayerConfig::QuantizedSeparableConv2D {
                conv: c.read()?,
                quantizer: read_quantizer(&c.quantizer, "quantizer")?,
                quantizer_dw: read_quantizer(&c.quantizer_dw, "quantizer_dw")?,
            }
        }
        "DepthwiseConv2D" => LayerConfig::DepthwiseConv2D(parse::<DepthwiseJson>(config)?.read()?),
        "Dense" => LayerConfig::Dense(parse::<DenseJson>(config)?.read()?),
        "QuantizedDense" => {
            let c: DenseJson = parse(config)?;
            LayerConfig::QuantizedDense {
                dense: c.read()?,
                quantizer: read_quantizer(&c.quantizer, "quantizer")?,
            }
        }
        "BatchNormalization" => {
            let c: BatchNormJson = parse(config)?;
            let d = BatchNormConfig::default();
            LayerConfig::BatchNormalization(BatchNormConfig {
                axis: c.axis.or(Axes(d.axis)).0,
                momentum: c.momentum.or(d.momentum),
                epsilon: c.epsilon.or(d.epsilon),
                center: c.center.or(d.center),
                scale: c.scale.or(d.scale),
            })
        }
        "ReLU" => {
            let c: ReluJson = parse(config)?;
            LayerConfig::ReLU(ReluConfig {
                max_value: c.max_value.get(),
                negative_slope: c.negative_slope.or(0.0),
                threshold: c.threshold.or(0.0),
            })
        }
        "Activation" => LayerConfig::Activation {
            activation: parse::<ActivationJson>(config)?
                .activation
                .or("linear".into()),
        },
        "MaxPooling2D" | "MaxPool2D" => {
            LayerConfig::MaxPooling2D(parse::<PoolJson>(config)?.read())
        }
        "AveragePooling2D" | "AvgPool2D" => {
            LayerConfig::AveragePooling2D(parse::<PoolJson>(config)?.read())
        }
        "GlobalAveragePooling2D" | "GlobalAvgPool2D" => LayerConfig::GlobalAveragePooling2D {
            keepdims: parse::<GlobalPoolJson>(config)?.keepdims.or(false),
        },
        "Dropout" => LayerConfig::Dropout {
            rate: parse::<DropoutJson>(config)?.rate.required("rate")?,
        },
        "Flatten" => {
            parse::<FlattenJson>(config)?;
            LayerConfig::Flatten
        }
        "Reshape" => LayerConfig::Reshape {
            target_shape: parse::<ReshapeJson>(config)?
                .target_shape
                .required("target_shape")?,
        },
        "QuantizedReLU" => {
            let c: BitwidthJson = parse(config)?;
            let bitwidth = c.bitwidth.or(1);
            LayerConfig::QuantizedReLU {
                bitwidth,
                // cnn2snn: no max_value means 2^bits - 1.
                max_value: c.max_value.or(2f64.powi(bitwidth.min(1024) as i32) - 1.0),
            }
        }
        "ActivationDiscreteRelu" => LayerConfig::ActivationDiscreteRelu {
            bitwidth: parse::<BitwidthJson>(config)?.bitwidth.or(1),
        },
        _ => unknown(),
    })
}

/// The batch shape an older Sequential file gives its first layer instead of
/// an `InputLayer` (`None` when the config has none).
pub(super) fn first_layer_batch_shape(
    config: &Map<String, Value>,
) -> Result<Option<Vec<Option<usize>>>, FieldError> {
    #[derive(Deserialize)]
    struct FirstLayer {
        #[serde(default, alias = "batch_shape")]
        batch_input_shape: Option<BatchShape>,
    }
    let first: FirstLayer = parse(config)?;
    Ok(first.batch_input_shape.map(batch_shape))
}

fn batch_shape(shape: BatchShape) -> Vec<Option<usize>> {
    shape.into_iter().map(|d| d.map(|s| s.0)).collect()
}

fn read_quantizer(q: &Field<QuantizerJson>, key: &'static str) -> Result<Quantizer, FieldError> {
    let q = q.required(key)?;
    Ok(Quantizer {
        kind: QuantizerKind::from_class_name(&q.class_name),
        bitwidth: q.config.bitwidth,
    })
}

/// `read` (the typed config of a convolution class's JSON `$j`) and `with`
/// (`base` with the fields of the typed config `$c` set, and `name`): the
/// window's fields, then `$read` and `$write`, the class's own (read first,
/// so that a missing `filters` is reported before a missing `kernel_size`).
macro_rules! convolution_json {
    (
        $json:ident => $config:ident, |$j:ident, $c:ident|
        read { $($read:ident: $read_value:expr,)* }
        write { $($write:ident: $write_value:expr,)* }
    ) => {
        impl $json {
            fn read(&self) -> Result<$config, FieldError> {
                let $j = self;
                Ok($config {
                    $($read: $read_value,)*
                    kernel_size: $j.kernel_size.required("kernel_size")?.0,
                    strides: $j.strides.or(Pair([1, 1])).0,
                    padding: $j.padding.or(Padding::Valid),
                    dilation_rate: $j.dilation_rate.or(Pair([1, 1])).0,
                    use_bias: $j.use_bias.or(true),
                    activation: $j.activation.or("linear".into()),
                })
            }

            /// `base` with the fields the class and its quantized class share
            /// set.
            fn with($c: &$config, name: Field<String>, base: $json) -> $json {
                $json {
                    name,
                    $($write: $write_value,)*
                    kernel_size: set(Pair($c.kernel_size)),
                    strides: set(Pair($c.strides)),
                    padding: set($c.padding),
                    dilation_rate: set(Pair($c.dilation_rate)),
                    use_bias: set($c.use_bias),
                    ..base
                }
            }
        }
    };
}

convolution_json!(ConvJson => Conv2DConfig, |j, c|
    read { filters: j.filters.required("filters")?.0, }
    write { filters: set(Size(c.filters)), }
);

convolution_json!(SeparableJson => SeparableConv2DConfig, |j, c|
    read {
        filters: j.filters.required("filters")?.0,
        depth_multiplier: j.depth_multiplier.or(Size(1)).0,
    }
    write { filters: set(Size(c.filters)), }
);

convolution_json!(DepthwiseJson => DepthwiseConv2DConfig, |j, c|
    read { depth_multiplier: j.depth_multiplier.or(Size(1)).0, }
    write {
        activation: set(c.activation.clone()),
        depth_multiplier: set(Size(c.depth_multiplier)),
    }
);

impl DenseJson {
    fn read(&self) -> Result<DenseConfig, FieldError> {
        Ok(DenseConfig {
            units: self.units.required("units")?.0,
            use_bias: self.use_bias.or(true),
            activation: self.activation.or("linear".into()),
        })
    }
}

impl PoolJson {
    fn read(&self) -> Pool2DConfig {
        let pool_size = self.pool_size.or(Pair([2, 2]));
        Pool2DConfig {
            pool_size: pool_size.0,
            strides: self.strides.or(pool_size).0,
            padding: self.padding.or(Padding::Valid),
        }
    }
}

// ---------------------------------------------------------------- writing

fn set<T>(v: T) -> Field<T> {
    Field::Set(v)
}

/// Numbers quantizer objects as Keras does within a model
/// (`max_per_axis_quantizer`, `max_per_axis_quantizer_1`, ...).
#[derive(Default)]
pub(super) struct QuantizerNames(HashMap<String, usize>);

impl QuantizerNames {
    /// The quantizer object for `q`: the one read with the layer (its name
    /// and extra keys kept) with the bit width updated when it has the same
    /// class, else a new one. A number is drawn either way.
    fn object(&mut self, read: &Field<QuantizerJson>, q: &Quantizer) -> Field<QuantizerJson> {
        let class = q.kind.class_name();
        let base = super::builder::snake_case(class);
        let n = self.0.entry(base.clone()).or_insert(0);
        let name = if *n == 0 { base } else { format!("{base}_{n}") };
        *n += 1;
        if let Field::Set(r) = read {
            if r.class_name == class {
                let mut r = r.clone();
                r.config.bitwidth = q.bitwidth;
                return set(r);
            }
        }
        set(QuantizerJson {
            module: set("cnn2snn.quantization_ops".into()),
            class_name: class.to_owned(),
            config: QuantizerConfigJson {
                name: set(name),
                trainable: set(true.into()),
                dtype: set("float32".into()),
                bitwidth: q.bitwidth,
                extra: Map::new(),
            },
            registered_name: set(class.into()),
            extra: Map::new(),
        })
    }
}

/// The config read with the layer when it is of the layer's class (a config
/// that no longer parses is dropped), else `fresh()`.
fn base<C: DeserializeOwned>(layer: &Layer, fresh: impl FnOnce() -> C) -> C {
    layer
        .raw
        .as_ref()
        .filter(|r| r.class_name == layer.class_name())
        .and_then(|r| C::deserialize(&r.config).ok())
        .unwrap_or_else(fresh)
}

/// The `config` object of `layer`: the config read with it (unmodelled and
/// unknown fields kept) or tf_keras's defaults, with the modelled fields
/// set from its typed config.
pub(super) fn write_config(layer: &Layer, quantizers: &mut QuantizerNames) -> ConfigJson {
    let name = set(layer.name.clone());
    match &layer.config {
        LayerConfig::InputLayer {
            batch_input_shape,
            dtype,
        } => ConfigJson::Input(InputJson {
            batch_input_shape: set(batch_input_shape.iter().map(|d| d.map(Size)).collect()),
            dtype: set(DtypeName(dtype.clone())),
            name,
            ..base(layer, InputJson::fresh)
        }),
        LayerConfig::Rescaling { scale, offset } => ConfigJson::Rescaling(RescalingJson {
            name,
            scale: set(*scale),
            offset: set(IntOrFloat(*offset)),
            ..base(layer, RescalingJson::fresh)
        }),
        LayerConfig::Conv2D(conv) => ConfigJson::Conv(Box::new(ConvJson {
            activation: set(conv.activation.clone()),
            ..ConvJson::with(conv, name, base(layer, ConvJson::fresh))
        })),
        LayerConfig::QuantizedConv2D { conv, quantizer } => {
            let c = base(layer, || ConvJson {
                data_format: Field::Absent,
                groups: Field::Absent,
                ..ConvJson::fresh()
            });
            ConfigJson::Conv(Box::new(ConvJson {
                quantizer: quantizers.object(&c.quantizer, quantizer),
                ..ConvJson::with(conv, name, c)
            }))
        }
        LayerConfig::SeparableConv2D(conv) => ConfigJson::Separable(Box::new(SeparableJson {
            activation: set(conv.activation.clone()),
            depth_multiplier: set(Size(conv.depth_multiplier)),
            ..SeparableJson::with(conv, name, base(layer, SeparableJson::fresh))
        })),
        LayerConfig::QuantizedSeparableConv2D {
            conv,
            quantizer,
            quantizer_dw,
        } => {
            let c = base(layer, || SeparableJson {
                data_format: Field::Absent,
                ..SeparableJson::fresh()
            });
            ConfigJson::Separable(Box::new(SeparableJson {
                quantizer_dw: quantizers.object(&c.quantizer_dw, quantizer_dw),
                quantizer: quantizers.object(&c.quantizer, quantizer),
                ..SeparableJson::with(conv, name, c)
            }))
        }
        LayerConfig::DepthwiseConv2D(conv) => ConfigJson::Depthwise(Box::new(DepthwiseJson::with(
            conv,
            name,
            base(layer, DepthwiseJson::fresh),
        ))),
        LayerConfig::Dense(dense) => ConfigJson::Dense(Box::new(DenseJson {
            activation: set(dense.activation.clone()),
            ..DenseJson::with(dense, name, base(layer, DenseJson::fresh))
        })),
        LayerConfig::QuantizedDense { dense, quantizer } => {
            let c = base(layer, DenseJson::fresh);
            ConfigJson::Dense(Box::new(DenseJson {
                quantizer: quantizers.object(&c.quantizer, quantizer),
                ..DenseJson::with(dense, name, c)
            }))
        }
        LayerConfig::BatchNormalization(bn) => ConfigJson::BatchNorm(Box::new(BatchNormJson {
            name,
            axis: set(Axes(bn.axis.clone())),
            momentum: set(bn.momentum),
            epsilon: set(bn.epsilon),
            center: set(bn.center),
            scale: set(bn.scale),
            ..base(layer, BatchNormJson::fresh)
        })),
        LayerConfig::ReLU(r) => ConfigJson::Relu(ReluJson {
            name,
            max_value: r.max_value.map_or(Field::Null, Field::Set),
            negative_slope: set(r.negative_slope),
            threshold: set(r.threshold),
            ..base(layer, ReluJson::fresh)
        }),
        LayerConfig::Activation { activation } => ConfigJson::Activation(ActivationJson {
            name,
            activation: set(activation.clone()),
            ..base(layer, ActivationJson::fresh)
        }),
        LayerConfig::MaxPooling2D(p) | LayerConfig::AveragePooling2D(p) => {
            ConfigJson::Pool(PoolJson {
                name,
                pool_size: set(Pair(p.pool_size)),
                padding: set(p.padding),
                strides: set(Pair(p.strides)),
                ..base(layer, PoolJson::fresh)
            })
        }
        LayerConfig::GlobalAveragePooling2D { keepdims } => {
            ConfigJson::GlobalPool(GlobalPoolJson {
                name,
                keepdims: set(*keepdims),
                ..base(layer, GlobalPoolJson::fresh)
            })
        }
        LayerConfig::Dropout { rate } => ConfigJson::Dropout(DropoutJson {
            name,
            rate: set(*rate),
            ..base(layer, DropoutJson::fresh)
        }),
        LayerConfig::Flatten => ConfigJson::Flatten(FlattenJson {
            name,
            ..base(layer, FlattenJson::fresh)
        }),
        LayerConfig::Reshape { target_shape } => ConfigJson::Reshape(ReshapeJson {
            name,
            target_shape: set(target_shape.clone()),
            ..base(layer, ReshapeJson::fresh)
        }),
        LayerConfig::QuantizedReLU {
            bitwidth,
            max_value,
        } => ConfigJson::Bitwidth(BitwidthJson {
            name,
            bitwidth: set(*bitwidth),
            max_value: set(*max_value),
            ..base(layer, BitwidthJson::fresh)
        }),
        LayerConfig::ActivationDiscreteRelu { bitwidth } => ConfigJson::Bitwidth(BitwidthJson {
            name,
            bitwidth: set(*bitwidth),
            ..base(layer, BitwidthJson::fresh)
        }),
        LayerConfig::Unknown { config, .. } => {
            let mut c = config.as_object().cloned().unwrap_or_default();
            c.insert("name".into(), Value::String(layer.name.clone()));
            ConfigJson::Unknown(c)
        }
    }
}

impl DenseJson {
    /// `base` with the fields `Dense` and `QuantizedDense` share set.
    fn with(d: &DenseConfig, name: Field<String>, base: DenseJson) -> DenseJson {
        DenseJson {
            name,
            units: set(Size(d.units)),
            use_bias: set(d.use_bias),
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sizes_take_the_forms_keras_writes() {
        let pair = |v: Value| {
            Pair::deserialize(&v)
                .map(|p| p.0)
                .map_err(|e| e.to_string())
        };
        assert_eq!(pair(json!(3)), Ok([3, 3]));
        assert_eq!(pair(json!([3])), Ok([3, 3]));
        assert_eq!(pair(json!([3, 5])), Ok([3, 5]));
        assert!(pair(json!([1, 2, 3])).is_err());
        assert!(pair(json!([])).is_err());
        assert!(pair(json!(2.5)).unwrap_err().contains("floating point"));
        assert_eq!(
            Size::deserialize(&json!(u32::MAX)).unwrap().0,
            u32::MAX as usize
        );
        assert!(Size::deserialize(&json!(1u64 << 32)).is_err());
        assert_eq!(serde_json::to_value(Pair([2, 1])).unwrap(), json!([2, 1]));
    }

    #[test]
    fn fields_keep_absent_null_and_set_apart() {
        let c: ReluJson = serde_json::from_value(json!({"max_value": null, "x": 1})).unwrap();
        assert_eq!(c.max_value, Field::Null);
        assert_eq!(c.threshold, Field::Absent);
        assert_eq!(c.extra, json!({"x": 1}).as_object().unwrap().clone());
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"max_value": null, "x": 1})
        );
        let c: PoolJson = serde_json::from_value(json!({"padding": "Same"})).unwrap();
        assert_eq!(c.padding, Field::Set(Padding::Same));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"padding": "same"})
        );
    }

    #[test]
    fn fresh_configs_have_tf_keras_keys_in_order() {
        let keys = |v: Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        let dense = serde_json::to_value(DenseJson {
            name: set("d".into()),
            units: set(Size(3)),
            activation: set("linear".into()),
            use_bias: set(true),
            ..DenseJson::fresh()
        })
        .unwrap();
        assert_eq!(
            keys(dense),
            [
                "name",
                "trainable",
                "dtype",
                "units",
                "activation",
                "use_bias",
                "kernel_initializer",
                "bias_initializer",
                "kernel_regularizer",
                "bias_regularizer",
                "activity_regularizer",
                "kernel_constraint",
                "bias_constraint"
            ]
        );
    }
}
