//! Typed configs of the Keras layers the Akida 1.0 flow uses, with the two
//! things every tool needs from them: the output shape for a given input
//! shape, and the weights (role and shape) the layer holds.
//!
//! Shapes never include the batch axis: a Keras `(None, 32, 32, 3)` is the
//! [`Shape`] `[32, 32, 3]`.

use serde_json::Value;

/// A tensor shape without the batch axis (NHWC models: `[H, W, C]` or `[N]`).
pub type Shape = Vec<usize>;

pub use akida_core::Padding;

/// The Keras spelling of a padding (`"valid"`, `"same"`).
pub fn padding_name(padding: Padding) -> &'static str {
    match padding {
        Padding::Valid => "valid",
        Padding::Same => "same",
    }
}

/// Output length of a window of `kernel` cells dilated by `dilation` sliding
/// with `stride` over `n` cells: core's rule ([`akida_core::dims::output_len`],
/// TensorFlow's) on the effective kernel `(kernel - 1) * dilation + 1`.
/// `None` when the window does not fit or a size exceeds `u32`.
pub fn window_len(
    padding: Padding,
    n: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    let effective = kernel
        .checked_sub(1)?
        .checked_mul(dilation.max(1))?
        .checked_add(1)?;
    let [n, effective, stride] = [n, effective, stride].map(|x| u32::try_from(x).ok());
    akida_core::dims::output_len(n?, effective?, stride?, padding).map(|len| len as usize)
}

/// The weights a layer holds, named as Keras names them (`<layer>/<role>:0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightRole {
    Kernel,
    Bias,
    DepthwiseKernel,
    PointwiseKernel,
    Gamma,
    Beta,
    MovingMean,
    MovingVariance,
}

impl WeightRole {
    /// The Keras variable name (`kernel`, `depthwise_kernel`, `moving_mean`...).
    pub fn keras_name(self) -> &'static str {
        match self {
            WeightRole::Kernel => "kernel",
            WeightRole::Bias => "bias",
            WeightRole::DepthwiseKernel => "depthwise_kernel",
            WeightRole::PointwiseKernel => "pointwise_kernel",
            WeightRole::Gamma => "gamma",
            WeightRole::Beta => "beta",
            WeightRole::MovingMean => "moving_mean",
            WeightRole::MovingVariance => "moving_variance",
        }
    }

    /// The role of a stored weight name such as `conv_0/kernel:0` (the part
    /// after the last `/`, without the `:N` suffix).
    pub fn from_weight_name(name: &str) -> Option<WeightRole> {
        let last = name.rsplit('/').next().unwrap_or(name);
        let base = last.split(':').next().unwrap_or(last);
        [
            WeightRole::Kernel,
            WeightRole::Bias,
            WeightRole::DepthwiseKernel,
            WeightRole::PointwiseKernel,
            WeightRole::Gamma,
            WeightRole::Beta,
            WeightRole::MovingMean,
            WeightRole::MovingVariance,
        ]
        .into_iter()
        .find(|r| r.keras_name() == base)
    }

    /// Whether Keras trains this weight (batch-norm statistics it does not):
    /// decides the "Trainable params" line of the summary.
    pub fn trainable(self) -> bool {
        !matches!(self, WeightRole::MovingMean | WeightRole::MovingVariance)
    }
}

/// One weight a layer config calls for: its role and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightSpec {
    pub role: WeightRole,
    pub shape: Shape,
}

/// cnn2snn weight quantizer classes (`cnn2snn.quantization_ops`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuantizerKind {
    /// Per-output-channel max quantizer (Conv2D, Dense, pointwise kernels).
    MaxPerAxis,
    /// Per-tensor max quantizer (separable depthwise kernels).
    Max,
    /// Another cnn2snn quantizer class, kept by name.
    Other(String),
}

impl QuantizerKind {
    /// The Python class name.
    pub fn class_name(&self) -> &str {
        match self {
            QuantizerKind::MaxPerAxis => "MaxPerAxisQuantizer",
            QuantizerKind::Max => "MaxQuantizer",
            QuantizerKind::Other(s) => s,
        }
    }

    /// Maps a Python class name to a kind.
    pub fn from_class_name(s: &str) -> QuantizerKind {
        match s {
            "MaxPerAxisQuantizer" => QuantizerKind::MaxPerAxis,
            "MaxQuantizer" => QuantizerKind::Max,
            other => QuantizerKind::Other(other.to_owned()),
        }
    }
}

/// A cnn2snn weight quantizer config: class and bit width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantizer {
    pub kind: QuantizerKind,
    pub bitwidth: u32,
}

impl Quantizer {
    pub fn max_per_axis(bitwidth: u32) -> Quantizer {
        Quantizer {
            kind: QuantizerKind::MaxPerAxis,
            bitwidth,
        }
    }

    pub fn max(bitwidth: u32) -> Quantizer {
        Quantizer {
            kind: QuantizerKind::Max,
            bitwidth,
        }
    }
}

/// The config of a convolution class: `$arg`s (the first arguments of
/// `new`), the window, the class's own `$field`s, bias and activation;
/// `new` sets Keras's defaults: stride 1, `valid`, no dilation, the
/// `$default`s, bias, linear.
macro_rules! convolution_config {
    (
        $(#[$doc:meta])*
        $name:ident($($arg:ident: $arg_ty:ty),*) { $($field:ident: $ty:ty = $default:expr),* }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $(pub $arg: $arg_ty,)*
            pub kernel_size: [usize; 2],
            pub strides: [usize; 2],
            pub padding: Padding,
            pub dilation_rate: [usize; 2],
            $(pub $field: $ty,)*
            pub use_bias: bool,
            /// Fused activation name (`linear` in the Akida flow; not written
            /// for quantized layers, which have none).
            pub activation: String,
        }

        impl $name {
            /// Keras defaults: stride 1, `valid`, no dilation, bias, linear
            /// (depth multiplier 1).
            pub fn new($($arg: $arg_ty,)* kernel_size: [usize; 2]) -> $name {
                $name {
                    $($arg,)*
                    kernel_size,
                    strides: [1, 1],
                    padding: Padding::Valid,
                    dilation_rate: [1, 1],
                    $($field: $default,)*
                    use_bias: true,
                    activation: "linear".into(),
                }
            }

            /// The output shape of the window over `input`, with `channels`.
            fn window_shape(&self, input: &[usize], channels: usize) -> Result<Shape, String> {
                conv_shape(
                    input,
                    self.kernel_size,
                    self.strides,
                    self.padding,
                    self.dilation_rate,
                    channels,
                )
            }
        }
    };
}

convolution_config!(
    /// `Conv2D` (and the convolution part of `QuantizedConv2D`).
    Conv2DConfig(filters: usize) {}
);

convolution_config!(
    /// `SeparableConv2D` (and the convolution part of `QuantizedSeparableConv2D`).
    SeparableConv2DConfig(filters: usize) { depth_multiplier: usize = 1 }
);

convolution_config!(
    /// `DepthwiseConv2D`.
    DepthwiseConv2DConfig() { depth_multiplier: usize = 1 }
);

/// `Dense` (and the dense part of `QuantizedDense`).
#[derive(Clone, Debug, PartialEq)]
pub struct DenseConfig {
    pub units: usize,
    pub use_bias: bool,
    pub activation: String,
}

impl DenseConfig {
    /// Keras defaults: bias, linear.
    pub fn new(units: usize) -> DenseConfig {
        DenseConfig {
            units,
            use_bias: true,
            activation: "linear".into(),
        }
    }
}

/// `BatchNormalization`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Normalised axes, counted with the batch axis as 0 (Keras writes `[3]`
    /// for NHWC maps, `[1]` for vectors); `-1` means the last axis.
    pub axis: Vec<i64>,
    pub momentum: f64,
    pub epsilon: f64,
    pub center: bool,
    pub scale: bool,
}

impl Default for BatchNormConfig {
    /// Keras defaults: last axis, momentum 0.99, epsilon 0.001, beta and gamma.
    fn default() -> Self {
        BatchNormConfig {
            axis: vec![-1],
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
        }
    }
}

/// `ReLU`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ReluConfig {
    pub max_value: Option<f64>,
    pub negative_slope: f64,
    pub threshold: f64,
}

/// `MaxPooling2D` and `AveragePooling2D`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool2DConfig {
    pub pool_size: [usize; 2],
    pub strides: [usize; 2],
    pub padding: Padding,
}

impl Pool2DConfig {
    /// Keras defaults: strides equal to the pool size, `valid`.
    pub fn new(pool_size: [usize; 2]) -> Pool2DConfig {
        Pool2DConfig {
            pool_size,
            strides: pool_size,
            padding: Padding::Valid,
        }
    }
}

/// A layer's typed config: one variant per Keras (or cnn2snn) class.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerConfig {
    /// `InputLayer`: `batch_input_shape` includes the batch axis (`None`).
    InputLayer {
        batch_input_shape: Vec<Option<usize>>,
        dtype: String,
    },
    /// `Rescaling`: `y = x * scale + offset`.
    Rescaling {
        scale: f64,
        offset: f64,
    },
    Conv2D(Conv2DConfig),
    SeparableConv2D(SeparableConv2DConfig),
    DepthwiseConv2D(DepthwiseConv2DConfig),
    Dense(DenseConfig),
    BatchNormalization(BatchNormConfig),
    ReLU(ReluConfig),
    /// `Activation` (`relu`, `softmax`, `sigmoid`, ...).
    Activation {
        activation: String,
    },
    MaxPooling2D(Pool2DConfig),
    AveragePooling2D(Pool2DConfig),
    GlobalAveragePooling2D {
        keepdims: bool,
    },
    Dropout {
        rate: f64,
    },
    Flatten,
    /// `Reshape`; one entry may be `-1` (inferred).
    Reshape {
        target_shape: Vec<i64>,
    },
    /// cnn2snn `QuantizedConv2D`.
    QuantizedConv2D {
        conv: Conv2DConfig,
        quantizer: Quantizer,
    },
    /// cnn2snn `QuantizedSeparableConv2D`: `quantizer_dw` for the depthwise
    /// kernel, `quantizer` for the pointwise kernel.
    QuantizedSeparableConv2D {
        conv: SeparableConv2DConfig,
        quantizer: Quantizer,
        quantizer_dw: Quantizer,
    },
    /// cnn2snn `QuantizedDense`.
    QuantizedDense {
        dense: DenseConfig,
        quantizer: Quantizer,
    },
    /// cnn2snn `QuantizedReLU`: `bitwidth`-bit activation clipped at `max_value`.
    QuantizedReLU {
        bitwidth: u32,
        max_value: f64,
    },
    /// cnn2snn `ActivationDiscreteRelu`: step `min(2^b - 1, 6) / (2^b - 1)`.
    ActivationDiscreteRelu {
        bitwidth: u32,
    },
    /// A class this crate does not model, kept as read so that a later
    /// compatibility check can name it and a rewrite preserves it.
    Unknown {
        class_name: String,
        module: Option<String>,
        registered_name: Option<String>,
        config: Value,
    },
}

impl LayerConfig {
    /// The Python class name (`Conv2D`, `QuantizedReLU`, ...).
    pub fn class_name(&self) -> &str {
        match self {
            LayerConfig::InputLayer { .. } => "InputLayer",
            LayerConfig::Rescaling { .. } => "Rescaling",
            LayerConfig::Conv2D(_) => "Conv2D",
            LayerConfig::SeparableConv2D(_) => "SeparableConv2D",
            LayerConfig::DepthwiseConv2D(_) => "DepthwiseConv2D",
            LayerConfig::Dense(_) => "Dense",
            LayerConfig::BatchNormalization(_) => "BatchNormalization",
            LayerConfig::ReLU(_) => "ReLU",
            LayerConfig::Activation { .. } => "Activation",
            LayerConfig::MaxPooling2D(_) => "MaxPooling2D",
            LayerConfig::AveragePooling2D(_) => "AveragePooling2D",
            LayerConfig::GlobalAveragePooling2D { .. } => "GlobalAveragePooling2D",
            LayerConfig::Dropout { .. } => "Dropout",
            LayerConfig::Flatten => "Flatten",
            LayerConfig::Reshape { .. } => "Reshape",
            LayerConfig::QuantizedConv2D { .. } => "QuantizedConv2D",
            LayerConfig::QuantizedSeparableConv2D { .. } => "QuantizedSeparableConv2D",
            LayerConfig::QuantizedDense { .. } => "QuantizedDense",
            LayerConfig::QuantizedReLU { .. } => "QuantizedReLU",
            LayerConfig::ActivationDiscreteRelu { .. } => "ActivationDiscreteRelu",
            LayerConfig::Unknown { class_name, .. } => class_name,
        }
    }

    /// Whether this is one of cnn2snn's quantized layer classes.
    pub fn is_quantized(&self) -> bool {
        matches!(
            self,
            LayerConfig::QuantizedConv2D { .. }
                | LayerConfig::QuantizedSeparableConv2D { .. }
                | LayerConfig::QuantizedDense { .. }
                | LayerConfig::QuantizedReLU { .. }
                | LayerConfig::ActivationDiscreteRelu { .. }
        )
    }

    /// The model's input shape (without batch) for an `InputLayer`.
    pub fn input_shape(&self) -> Option<Result<Shape, String>> {
        match self {
            LayerConfig::InputLayer {
                batch_input_shape, ..
            } => Some(
                batch_input_shape
                    .iter()
                    .skip(1)
                    .map(|d| d.ok_or_else(|| "input shape has an unknown dimension".to_owned()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The output shape for the given input shapes (one per inbound layer),
    /// refused when it holds more than [`MAX_TENSOR_VALUES`] values.
    pub fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        let shape = self.output_shape_unchecked(inputs)?;
        check_size("the output", &shape)?;
        Ok(shape)
    }

    fn output_shape_unchecked(&self, inputs: &[Shape]) -> Result<Shape, String> {
        if let Some(shape) = self.input_shape() {
            return shape;
        }
        if let LayerConfig::Unknown { class_name, .. } = self {
            return Err(format!(
                "cannot infer the output shape of class {class_name}"
            ));
        }
        let input = match inputs {
            [one] => one,
            _ => return Err(format!("expects one input, has {}", inputs.len())),
        };
        match self {
            LayerConfig::Conv2D(c) | LayerConfig::QuantizedConv2D { conv: c, .. } => {
                c.window_shape(input, c.filters)
            }
            LayerConfig::SeparableConv2D(c)
            | LayerConfig::QuantizedSeparableConv2D { conv: c, .. } => {
                c.window_shape(input, c.filters)
            }
            LayerConfig::DepthwiseConv2D(c) => {
                let channels = checked_product(&[spatial(input)?[2], c.depth_multiplier])?;
                c.window_shape(input, channels)
            }
            LayerConfig::Dense(d) | LayerConfig::QuantizedDense { dense: d, .. } => {
                let mut out = input.clone();
                match out.last_mut() {
                    Some(last) => *last = d.units,
                    None => return Err("Dense needs at least one input axis".into()),
                }
                Ok(out)
            }
            LayerConfig::MaxPooling2D(p) | LayerConfig::AveragePooling2D(p) => {
                let channels = spatial(input)?[2];
                conv_shape(input, p.pool_size, p.strides, p.padding, [1, 1], channels)
            }
            LayerConfig::GlobalAveragePooling2D { keepdims } => {
                let c = spatial(input)?[2];
                Ok(if *keepdims { vec![1, 1, c] } else { vec![c] })
            }
            LayerConfig::Flatten => Ok(vec![checked_product(input)?]),
            LayerConfig::Reshape { target_shape } => reshape(input, target_shape),
            LayerConfig::BatchNormalization(bn) => {
                bn_channel_axis(&bn.axis, input.len())?;
                Ok(input.clone())
            }
            _ => Ok(input.clone()),
        }
    }

    /// The weights this layer holds for the given input shape, in Keras order
    /// (`None` for an unknown class, whose weights are taken as stored);
    /// refused when a weight would hold more than [`MAX_TENSOR_VALUES`]
    /// values, before anything is allocated.
    pub fn weight_specs(&self, input: &[usize]) -> Result<Option<Vec<WeightSpec>>, String> {
        let specs = self.weight_specs_unchecked(input)?;
        for spec in specs.iter().flatten() {
            check_size(&format!("weight `{}`", spec.role.keras_name()), &spec.shape)?;
        }
        Ok(specs)
    }

    fn weight_specs_unchecked(&self, input: &[usize]) -> Result<Option<Vec<WeightSpec>>, String> {
        let spec = |role, shape: Vec<usize>| WeightSpec { role, shape };
        let specs = match self {
            LayerConfig::Conv2D(c) | LayerConfig::QuantizedConv2D { conv: c, .. } => {
                let cin = spatial(input)?[2];
                let [kh, kw] = c.kernel_size;
                let mut v = vec![spec(WeightRole::Kernel, vec![kh, kw, cin, c.filters])];
                if c.use_bias {
                    v.push(spec(WeightRole::Bias, vec![c.filters]));
                }
                v
            }
            LayerConfig::SeparableConv2D(c)
            | LayerConfig::QuantizedSeparableConv2D { conv: c, .. } => {
                let cin = spatial(input)?[2];
                let [kh, kw] = c.kernel_size;
                let dm = c.depth_multiplier;
                let mut v = vec![
                    spec(WeightRole::DepthwiseKernel, vec![kh, kw, cin, dm]),
                    spec(
                        WeightRole::PointwiseKernel,
                        vec![1, 1, checked_product(&[cin, dm])?, c.filters],
                    ),
                ];
                if c.use_bias {
                    v.push(spec(WeightRole::Bias, vec![c.filters]));
                }
                v
            }
            LayerConfig::DepthwiseConv2D(c) => {
                let cin = spatial(input)?[2];
                let [kh, kw] = c.kernel_size;
                let dm = c.depth_multiplier;
                let mut v = vec![spec(WeightRole::DepthwiseKernel, vec![kh, kw, cin, dm])];
                if c.use_bias {
                    v.push(spec(WeightRole::Bias, vec![checked_product(&[cin, dm])?]));
                }
                v
            }
            LayerConfig::Dense(d) | LayerConfig::QuantizedDense { dense: d, .. } => {
                let fan_in = *input.last().ok_or("Dense needs at least one input axis")?;
                let mut v = vec![spec(WeightRole::Kernel, vec![fan_in, d.units])];
                if d.use_bias {
                    v.push(spec(WeightRole::Bias, vec![d.units]));
                }
                v
            }
            LayerConfig::BatchNormalization(bn) => {
                let c = input[bn_channel_axis(&bn.axis, input.len())?];
                let mut v = Vec::new();
                if bn.scale {
                    v.push(spec(WeightRole::Gamma, vec![c]));
                }
                if bn.center {
                    v.push(spec(WeightRole::Beta, vec![c]));
                }
                v.push(spec(WeightRole::MovingMean, vec![c]));
                v.push(spec(WeightRole::MovingVariance, vec![c]));
                v
            }
            LayerConfig::Unknown { .. } => return Ok(None),
            _ => Vec::new(),
        };
        Ok(Some(specs))
    }
}

/// Most values a layer output or a weight may hold: 2^28 (1 GiB of float32,
/// far above any Akida 1.0 model: the AKD1000 holds about 8 MB of weights).
/// A shape over it, read from a file's config or asked for on the command
/// line, is refused before anything is allocated.
pub const MAX_TENSOR_VALUES: usize = 1 << 28;

/// The number of values of `shape`, or an error when it overflows.
fn checked_product(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("the shape {shape:?} holds more values than this machine can count"))
}

/// Refuses a shape of more than [`MAX_TENSOR_VALUES`] values.
pub fn check_size(what: &str, shape: &[usize]) -> Result<(), String> {
    let n = checked_product(shape)?;
    if n > MAX_TENSOR_VALUES {
        return Err(format!(
            "{what} has shape {shape:?}, {n} values, over the limit of {MAX_TENSOR_VALUES} (2^28, 1 GiB of float32) per tensor"
        ));
    }
    Ok(())
}

/// An `[H, W, C]` input, or an error naming what was found.
fn spatial(input: &[usize]) -> Result<[usize; 3], String> {
    match input {
        [h, w, c] => Ok([*h, *w, *c]),
        _ => Err(format!("expects an (H, W, C) input, got {input:?}")),
    }
}

/// Output of a 2-D window operation with `channels` output channels.
fn conv_shape(
    input: &[usize],
    kernel: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
    dilation: [usize; 2],
    channels: usize,
) -> Result<Shape, String> {
    let [h, w, _] = spatial(input)?;
    let out = |n, axis: usize| {
        window_len(padding, n, kernel[axis], strides[axis], dilation[axis]).ok_or_else(|| {
            format!("window {kernel:?} stride {strides:?} does not fit input {input:?}")
        })
    };
    Ok(vec![out(h, 0)?, out(w, 1)?, channels])
}

/// Keras `Reshape` with at most one `-1` entry.
fn reshape(input: &[usize], target: &[i64]) -> Result<Shape, String> {
    let total = checked_product(input)?;
    let unknown = target.iter().filter(|&&d| d == -1).count();
    if unknown > 1 || target.iter().any(|&d| d < -1 || d == 0) {
        return Err(format!("invalid target shape {target:?}"));
    }
    let known = target
        .iter()
        .filter(|&&d| d > 0)
        .map(|&d| usize::try_from(d).ok())
        .try_fold(1usize, |n, d| n.checked_mul(d?))
        .ok_or_else(|| format!("invalid target shape {target:?}"))?;
    let fill = if unknown == 1 {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {target:?}"));
        }
        total / known
    } else {
        1
    };
    let out: Shape = target
        .iter()
        .map(|&d| if d == -1 { fill } else { d as usize })
        .collect();
    if checked_product(&out)? != total {
        return Err(format!(
            "cannot reshape {input:?} ({total} values) to {target:?}"
        ));
    }
    Ok(out)
}

/// The (batch-less) index of the single axis a batch normalisation works on.
fn bn_channel_axis(axis: &[i64], rank: usize) -> Result<usize, String> {
    let a = match axis {
        [a] => *a,
        _ => {
            return Err(format!(
                "batch normalisation over axes {axis:?} is not supported"
            ))
        }
    };
    // Keras counts the batch axis: axis 3 of (None, H, W, C) is our index 2.
    let idx = if a < 0 { rank as i64 + a } else { a - 1 };
    if idx < 0 || idx as usize >= rank {
        return Err(format!("axis {a} out of range for a rank-{rank} input"));
    }
    Ok(idx as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes a config asks for are checked before anything is allocated:
    /// a 100000x100000 kernel (or `--classes 4000000000`) was an abort on
    /// allocation ("memory allocation of N bytes failed"), a Flatten of a
    /// huge input an overflow.
    #[test]
    fn absurd_sizes_are_refused_not_allocated() {
        let conv = LayerConfig::Conv2D(Conv2DConfig::new(8, [100_000, 100_000]));
        let e = conv.weight_specs(&[8, 6, 1]).unwrap_err();
        assert!(
            e.starts_with("weight `kernel` has shape [100000, 100000, 1, 8], 80000000000 values, over the limit of 268435456"),
            "{e}"
        );
        let dense = LayerConfig::Dense(DenseConfig::new(4_000_000_000));
        assert!(dense
            .weight_specs(&[64])
            .unwrap_err()
            .contains("over the limit"));
        let huge = vec![usize::MAX / 2, 4, 1];
        let e = LayerConfig::Flatten.output_shape(&[huge]).unwrap_err();
        assert!(e.contains("more values than this machine can count"), "{e}");
        let input = LayerConfig::InputLayer {
            batch_input_shape: vec![None, Some(100_000), Some(100_000), Some(3)],
            dtype: "float32".into(),
        };
        assert!(input
            .output_shape(&[])
            .unwrap_err()
            .contains("over the limit"));
        // The largest legal tensor passes.
        let dense = LayerConfig::Dense(DenseConfig::new(1 << 20));
        assert!(dense.weight_specs(&[256]).is_ok());
    }

    #[test]
    fn same_and_valid_padding_follow_tensorflow() {
        assert_eq!(window_len(Padding::Same, 49, 5, 2, 1), Some(25));
        assert_eq!(window_len(Padding::Same, 10, 5, 2, 1), Some(5));
        assert_eq!(window_len(Padding::Valid, 32, 3, 1, 1), Some(30));
        assert_eq!(window_len(Padding::Valid, 15, 2, 2, 1), Some(7));
        assert_eq!(window_len(Padding::Same, 15, 2, 2, 1), Some(8));
        assert_eq!(window_len(Padding::Valid, 2, 3, 1, 1), None);
        // Dilation 2 makes a 3-wide kernel 5 wide.
        assert_eq!(window_len(Padding::Valid, 9, 3, 1, 2), Some(5));
        assert_eq!(window_len(Padding::Valid, 4, 3, 1, 2), None);
        // Sizes beyond u32 do not fit core's rule.
        assert_eq!(window_len(Padding::Same, 1 << 33, 1, 1, 1), None);
        assert_eq!(padding_name(Padding::Same), "same");
    }

    #[test]
    fn shapes_of_every_kind() {
        let conv = LayerConfig::Conv2D(Conv2DConfig {
            strides: [2, 2],
            padding: Padding::Same,
            ..Conv2DConfig::new(64, [5, 5])
        });
        assert_eq!(
            conv.output_shape(&[vec![49, 10, 1]]).unwrap(),
            vec![25, 5, 64]
        );
        let gap = LayerConfig::GlobalAveragePooling2D { keepdims: false };
        assert_eq!(gap.output_shape(&[vec![4, 4, 10]]).unwrap(), vec![10]);
        let flat = LayerConfig::Flatten;
        assert_eq!(flat.output_shape(&[vec![4, 4, 1024]]).unwrap(), vec![16384]);
        let rs = LayerConfig::Reshape {
            target_shape: vec![1, 1, -1],
        };
        assert_eq!(rs.output_shape(&[vec![64]]).unwrap(), vec![1, 1, 64]);
        let dw = LayerConfig::DepthwiseConv2D(DepthwiseConv2DConfig {
            depth_multiplier: 2,
            ..DepthwiseConv2DConfig::new([3, 3])
        });
        assert_eq!(dw.output_shape(&[vec![8, 8, 4]]).unwrap(), vec![6, 6, 8]);
        let mp = LayerConfig::MaxPooling2D(Pool2DConfig::new([2, 2]));
        assert_eq!(
            mp.output_shape(&[vec![15, 15, 32]]).unwrap(),
            vec![7, 7, 32]
        );
        let dense = LayerConfig::Dense(DenseConfig::new(33));
        assert_eq!(dense.output_shape(&[vec![64]]).unwrap(), vec![33]);
        assert!(dense.output_shape(&[vec![64], vec![64]]).is_err());
        assert!(conv.output_shape(&[vec![64]]).is_err());
    }

    #[test]
    fn weight_specs_follow_keras_order() {
        let sep = LayerConfig::SeparableConv2D(SeparableConv2DConfig::new(256, [3, 3]));
        let specs = sep.weight_specs(&[32, 32, 128]).unwrap().unwrap();
        let got: Vec<_> = specs.iter().map(|s| (s.role, s.shape.clone())).collect();
        assert_eq!(
            got,
            vec![
                (WeightRole::DepthwiseKernel, vec![3, 3, 128, 1]),
                (WeightRole::PointwiseKernel, vec![1, 1, 128, 256]),
                (WeightRole::Bias, vec![256]),
            ]
        );
        let bn = LayerConfig::BatchNormalization(BatchNormConfig {
            axis: vec![3],
            ..Default::default()
        });
        let specs = bn.weight_specs(&[4, 4, 7]).unwrap().unwrap();
        assert_eq!(specs.len(), 4);
        assert!(specs.iter().all(|s| s.shape == vec![7]));
        assert_eq!(specs[3].role, WeightRole::MovingVariance);
    }

    #[test]
    fn weight_roles_parse_from_stored_names() {
        assert_eq!(
            WeightRole::from_weight_name("conv_0/kernel:0"),
            Some(WeightRole::Kernel)
        );
        assert_eq!(
            WeightRole::from_weight_name("conv_0/BN/moving_variance:0"),
            Some(WeightRole::MovingVariance)
        );
        assert_eq!(WeightRole::from_weight_name("x/alpha:0"), None);
        assert!(!WeightRole::MovingMean.trainable());
        assert!(WeightRole::Gamma.trainable());
    }
}
