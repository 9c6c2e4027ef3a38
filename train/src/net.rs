//! A Keras model (a chain of the layers the Akida 1.0 flow uses, float or
//! cnn2snn-quantized) as a network burn can run and differentiate: its
//! weights as float32 vectors named as in the `.h5` file, and a forward pass
//! over NHWC tensors built from [`crate::ops`].
//!
//! Quantized layers compute exactly as cnn2snn's: every step, the kernels
//! go through the layer's weight quantizer ([`crate::ops::fake_quant`]) and
//! activations through `QuantizedReLU`; what is trained and saved are the
//! float "shadow" weights, as cnn2snn keeps them.
//!
//! Batch normalization follows Keras: batch statistics in training (the
//! moving averages updated with the layer's momentum, from the unbiased
//! variance on 4-D maps as TensorFlow's fused kernel does and the biased one
//! on 2-D inputs), moving statistics otherwise.

use akida_host::datasets::{ImageSet, Targets};
use akida_host::keras::{self, LayerConfig, Padding, Quantizer, QuantizerKind, WeightRole};
use burn::tensor::{activation, Device, Tensor, TensorData};

use crate::kernels::norm::Act;
use crate::kernels::{Geometry, WindowError};
use crate::ops;
use crate::rng::Rng;

/// Why a model cannot be trained.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("the model is not a chain of layers (one input, one output, each layer fed by the one before)")]
    NotSequential,
    #[error("layer `{layer}` ({class}) is not supported for training")]
    Unsupported { layer: String, class: String },
    #[error("layer `{layer}`: {message}")]
    Layer { layer: String, message: String },
    #[error("layer `{layer}`")]
    Window {
        layer: String,
        #[source]
        source: WindowError,
    },
    #[error("the model's shapes do not infer")]
    Graph(#[source] keras::GraphError),
}

/// Why a network cannot take a dataset: checked before any training or
/// evaluation starts, so that a model of another family is refused by name
/// instead of failing inside a tensor operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataMismatch {
    #[error("the model takes {}x{}x{} inputs (height x width x channels); the data's are {}x{}x{}",
        model[0], model[1], model[2], data[0], data[1], data[2])]
    Input { model: [usize; 3], data: [usize; 3] },
    #[error("the model outputs {outputs} value(s) per sample; the data has {expected} classes")]
    Classes { outputs: usize, expected: usize },
    #[error("the model outputs {outputs} values per sample; the data has one value per sample")]
    Values { outputs: usize },
}

/// A trainable weight: the Keras layer and role it belongs to, its shape
/// and float32 values.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub layer: String,
    pub role: WeightRole,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Batch normalization's moving statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Moving {
    pub layer: String,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// A weight quantizer of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WeightQuant {
    bits: u32,
    per_axis: bool,
}

impl WeightQuant {
    fn of(layer: &str, q: &Quantizer) -> Result<WeightQuant, NetError> {
        let per_axis = match q.kind {
            QuantizerKind::MaxPerAxis => true,
            QuantizerKind::Max => false,
            QuantizerKind::Other(ref name) => {
                return Err(NetError::Layer {
                    layer: layer.into(),
                    message: format!("quantizer {name} is not supported for training (MaxQuantizer and MaxPerAxisQuantizer are)"),
                })
            }
        };
        if q.bitwidth < 2 {
            return Err(NetError::Layer {
                layer: layer.into(),
                message: format!("weight bitwidth {} (at least 2)", q.bitwidth),
            });
        }
        Ok(WeightQuant {
            bits: q.bitwidth,
            per_axis,
        })
    }
}

/// Window parameters of a convolution or pooling, before the batch size is
/// known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    kernel: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
}

impl Window {
    fn geometry(&self, layer: &str, n: usize, hwc: [usize; 3]) -> Result<Geometry, NetError> {
        let [h, w, c] = hwc;
        Geometry::new([n, h, w, c], self.kernel, self.strides, self.padding).map_err(|source| {
            NetError::Window {
                layer: layer.into(),
                source,
            }
        })
    }
}

/// One stage of the forward pass. Indices point into the parameter list.
#[derive(Clone, Debug)]
enum Stage {
    Conv {
        name: String,
        window: Window,
        kernel: usize,
        bias: Option<usize>,
        quant: Option<WeightQuant>,
    },
    Separable {
        name: String,
        window: Window,
        depthwise: usize,
        pointwise: usize,
        bias: Option<usize>,
        quant_dw: Option<WeightQuant>,
        quant_pw: Option<WeightQuant>,
    },
    Depthwise {
        name: String,
        window: Window,
        kernel: usize,
        bias: Option<usize>,
    },
    Dense {
        kernel: usize,
        bias: Option<usize>,
        quant: Option<WeightQuant>,
    },
    BatchNorm {
        gamma: Option<usize>,
        beta: Option<usize>,
        moving: usize,
        eps: f32,
        momentum: f32,
        act: Act,
    },
    Relu(Act),
    QuantizedRelu {
        step: f32,
        levels: f32,
    },
    MaxPool {
        name: String,
        window: Window,
    },
    GlobalAvg {
        keepdims: bool,
    },
    Flatten,
    /// Reshape to `[1, 1, c]` maps.
    ToMap,
    Dropout(f32),
    /// Softmax at the output: kept for predictions, skipped for the loss.
    Softmax,
}

/// An activation between stages: NHWC maps or flat vectors.
#[derive(Clone, Debug)]
pub enum Activation {
    Map(Tensor<4>),
    Flat(Tensor<2>),
}

/// Whether a forward pass trains (batch statistics, dropout, gradients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A model ready to train.
#[derive(Clone, Debug)]
pub struct Network {
    pub model: keras::Model,
    /// `akida_in = x * scale + offset` of the leading Rescaling (1, 0 if
    /// none): applied to the uint8 batch.
    pub input_scale: f32,
    pub input_offset: f32,
    /// `[H, W, C]` of one input.
    pub input_shape: [usize; 3],
    /// Outputs per sample.
    pub outputs: usize,
    pub params: Vec<Param>,
    pub moving: Vec<Moving>,
    stages: Vec<Stage>,
}

/// One batch normalization's batch statistics.
#[derive(Debug, Clone)]
pub struct BatchNormUpdate {
    /// Index into [`Network::moving`].
    pub moving: usize,
    pub mean: Vec<f32>,
    /// Biased variance.
    pub var: Vec<f32>,
    /// Values per channel in the batch.
    pub count: usize,
    /// Whether the input was a 4-D map (TensorFlow's fused kernel).
    pub map: bool,
    pub momentum: f32,
}

/// What a training forward pass produced besides the output: each batch
/// normalization's batch mean and variance (for the moving averages).
#[derive(Debug, Default)]
pub struct BatchStats {
    pub updates: Vec<BatchNormUpdate>,
}

fn weight(layer: &keras::Layer, role: WeightRole) -> Result<&keras::Weight, NetError> {
    layer.weight(role).ok_or_else(|| NetError::Layer {
        layer: layer.name.clone(),
        message: format!("weight `{}` is missing", role.keras_name()),
    })
}

/// A NaN or infinite weight (or moving statistic) would turn every
/// output and every later weight into NaN: refused by layer, weight and
/// index before a run starts, as `cnn2snn` refuses it at quantize and
/// convert.
fn refuse_non_finite(model: &keras::Model) -> Result<(), NetError> {
    for layer in &model.layers {
        for w in &layer.weights {
            if let Some(i) = w.values.iter().position(|v| !v.is_finite()) {
                return Err(NetError::Layer {
                    layer: layer.name.clone(),
                    message: format!(
                        "weight `{}` holds {} at index {i}: a model with NaN or infinite weights cannot be trained or evaluated",
                        w.name, w.values[i]
                    ),
                });
            }
        }
    }
    Ok(())
}

impl Network {
    /// The network of a Keras model.
    pub fn from_model(model: &keras::Model) -> Result<Network, NetError> {
        if !model.is_sequential() {
            return Err(NetError::NotSequential);
        }
        refuse_non_finite(model)?;
        let shapes = model.output_shapes().map_err(NetError::Graph)?;
        let mut params: Vec<Param> = Vec::new();
        let mut moving = Vec::new();
        let mut stages = Vec::new();
        let (mut input_scale, mut input_offset) = (1f32, 0f32);
        let mut input_shape = None;
        let layers = &model.layers;
        let add =
            |params: &mut Vec<Param>, layer: &keras::Layer, role| -> Result<usize, NetError> {
                let w = weight(layer, role)?;
                params.push(Param {
                    layer: layer.name.clone(),
                    role,
                    shape: w.shape.clone(),
                    values: w.values.clone(),
                });
                Ok(params.len() - 1)
            };
        let mut i = 0;
        while i < layers.len() {
            let layer = &layers[i];
            let name = layer.name.clone();
            let unsupported = || NetError::Unsupported {
                layer: layer.name.clone(),
                class: layer.class_name().to_owned(),
            };
            let bias =
                |params: &mut Vec<Param>, use_bias: bool| -> Result<Option<usize>, NetError> {
                    if use_bias {
                        add(params, layer, WeightRole::Bias).map(Some)
                    } else {
                        Ok(None)
                    }
                };
            match &layer.config {
                LayerConfig::InputLayer { .. } => {
                    let s = &shapes[i];
                    input_shape = Some(match s.as_slice() {
                        [h, w, c] => [*h, *w, *c],
                        _ => {
                            return Err(NetError::Layer {
                                layer: name,
                                message: format!("input shape {s:?}: an (H, W, C) input is needed"),
                            })
                        }
                    });
                }
                LayerConfig::Rescaling { scale, offset } => {
                    if i != 1 {
                        return Err(NetError::Layer {
                            layer: name,
                            message: "Rescaling must follow the input directly".into(),
                        });
                    }
                    input_scale = *scale as f32;
                    input_offset = *offset as f32;
                }
                LayerConfig::Conv2D(c) | LayerConfig::QuantizedConv2D { conv: c, .. } => {
                    if c.dilation_rate != [1, 1] || c.activation != "linear" {
                        return Err(NetError::Layer {
                            layer: name,
                            message: "only undilated, linear convolutions are supported".into(),
                        });
                    }
                    let quant = match &layer.config {
                        LayerConfig::QuantizedConv2D { quantizer, .. } => {
                            Some(WeightQuant::of(&name, quantizer)?)
                        }
                        _ => None,
                    };
                    let kernel = add(&mut params, layer, WeightRole::Kernel)?;
                    let bias = bias(&mut params, c.use_bias)?;
                    stages.push(Stage::Conv {
                        name,
                        window: Window {
                            kernel: c.kernel_size,
                            strides: c.strides,
                            padding: c.padding,
                        },
                        kernel,
                        bias,
                        quant,
                    });
                }
                LayerConfig::SeparableConv2D(c)
                | LayerConfig::QuantizedSeparableConv2D { conv: c, .. } => {
                    if c.dilation_rate != [1, 1]
                        || c.depth_multiplier != 1
                        || c.activation != "linear"
                    {
                        return Err(NetError::Layer {
                            layer: name,
                            message: "only undilated, linear separable convolutions with depth multiplier 1 are supported".into(),
                        });
                    }
                    let (quant_pw, quant_dw) = match &layer.config {
                        LayerConfig::QuantizedSeparableConv2D {
                            quantizer,
                            quantizer_dw,
                            ..
                        } => (
                            Some(WeightQuant::of(&name, quantizer)?),
                            Some(WeightQuant::of(&name, quantizer_dw)?),
                        ),
                        _ => (None, None),
                    };
                    let depthwise = add(&mut params, layer, WeightRole::DepthwiseKernel)?;
                    let pointwise = add(&mut params, layer, WeightRole::PointwiseKernel)?;
                    let bias = bias(&mut params, c.use_bias)?;
                    stages.push(Stage::Separable {
                        name,
                        window: Window {
                            kernel: c.kernel_size,
                            strides: c.strides,
                            padding: c.padding,
                        },
                        depthwise,
                        pointwise,
                        bias,
                        quant_dw,
                        quant_pw,
                    });
                }
                LayerConfig::DepthwiseConv2D(c) => {
                    if c.dilation_rate != [1, 1]
                        || c.depth_multiplier != 1
                        || c.activation != "linear"
                    {
                        return Err(unsupported());
                    }
                    let kernel = add(&mut params, layer, WeightRole::DepthwiseKernel)?;
                    let bias = bias(&mut params, c.use_bias)?;
                    stages.push(Stage::Depthwise {
                        name,
                        window: Window {
                            kernel: c.kernel_size,
                            strides: c.strides,
                            padding: c.padding,
                        },
                        kernel,
                        bias,
                    });
                }
                LayerConfig::Dense(d) | LayerConfig::QuantizedDense { dense: d, .. } => {
                    if d.activation != "linear" {
                        return Err(NetError::Layer {
                            layer: name,
                            message: format!(
                                "activation `{}` inside Dense is not supported",
                                d.activation
                            ),
                        });
                    }
                    let quant = match &layer.config {
                        LayerConfig::QuantizedDense { quantizer, .. } => {
                            Some(WeightQuant::of(&name, quantizer)?)
                        }
                        _ => None,
                    };
                    let kernel = add(&mut params, layer, WeightRole::Kernel)?;
                    let bias = bias(&mut params, d.use_bias)?;
                    stages.push(Stage::Dense {
                        kernel,
                        bias,
                        quant,
                    });
                }
                LayerConfig::BatchNormalization(bn) => {
                    let rank = shapes[i].len();
                    let last = bn.axis.as_slice() == [-1] || bn.axis.as_slice() == [rank as i64];
                    if !last {
                        return Err(NetError::Layer {
                            layer: name,
                            message: format!("batch normalization over axis {:?}: only the last axis is supported", bn.axis),
                        });
                    }
                    let gamma = if bn.scale {
                        Some(add(&mut params, layer, WeightRole::Gamma)?)
                    } else {
                        None
                    };
                    let beta = if bn.center {
                        Some(add(&mut params, layer, WeightRole::Beta)?)
                    } else {
                        None
                    };
                    moving.push(Moving {
                        layer: name.clone(),
                        mean: weight(layer, WeightRole::MovingMean)?.values.clone(),
                        var: weight(layer, WeightRole::MovingVariance)?.values.clone(),
                    });
                    // A ReLU right after is fused into the normalization.
                    let act = match layers.get(i + 1).map(|l| &l.config) {
                        Some(LayerConfig::ReLU(r))
                            if r.negative_slope == 0.0 && r.threshold == 0.0 =>
                        {
                            i += 1;
                            match r.max_value {
                                Some(m) => Act::ReluMax(m as f32),
                                None => Act::Relu,
                            }
                        }
                        _ => Act::None,
                    };
                    stages.push(Stage::BatchNorm {
                        gamma,
                        beta,
                        moving: moving.len() - 1,
                        eps: bn.epsilon as f32,
                        momentum: bn.momentum as f32,
                        act,
                    });
                }
                LayerConfig::ReLU(r) => {
                    if r.negative_slope != 0.0 || r.threshold != 0.0 {
                        return Err(unsupported());
                    }
                    stages.push(Stage::Relu(match r.max_value {
                        Some(m) => Act::ReluMax(m as f32),
                        None => Act::Relu,
                    }));
                }
                LayerConfig::QuantizedReLU { bitwidth, .. }
                | LayerConfig::ActivationDiscreteRelu { bitwidth } => {
                    let step = akida_host::cnn2snn::plan::activation_step(layer).map_err(|e| {
                        NetError::Layer {
                            layer: name.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    let levels = (2f64.powi(*bitwidth as i32) - 1.0) as f32;
                    stages.push(Stage::QuantizedRelu { step, levels });
                }
                LayerConfig::Activation { activation } => match activation.as_str() {
                    "softmax" if i + 1 == layers.len() => stages.push(Stage::Softmax),
                    "relu" => stages.push(Stage::Relu(Act::Relu)),
                    "linear" => {}
                    _ => return Err(unsupported()),
                },
                LayerConfig::MaxPooling2D(p) => stages.push(Stage::MaxPool {
                    name,
                    window: Window {
                        kernel: p.pool_size,
                        strides: p.strides,
                        padding: p.padding,
                    },
                }),
                LayerConfig::GlobalAveragePooling2D { keepdims } => stages.push(Stage::GlobalAvg {
                    keepdims: *keepdims,
                }),
                LayerConfig::Flatten => stages.push(Stage::Flatten),
                LayerConfig::Reshape { .. } => match shapes[i].as_slice() {
                    [1, 1, _] => stages.push(Stage::ToMap),
                    [_] => stages.push(Stage::Flatten),
                    other => {
                        return Err(NetError::Layer {
                            layer: name,
                            message: format!(
                                "reshape to {other:?}: only (C,) and (1, 1, C) are supported"
                            ),
                        })
                    }
                },
                LayerConfig::Dropout { rate } => stages.push(Stage::Dropout(*rate as f32)),
                _ => return Err(unsupported()),
            }
            i += 1;
        }
        let input_shape = input_shape.ok_or(NetError::NotSequential)?;
        let outputs = shapes.last().map(|s| s.iter().product()).unwrap_or(0);
        Ok(Network {
            model: model.clone(),
            input_scale,
            input_offset,
            input_shape,
            outputs,
            params,
            moving,
            stages,
        })
    }

    /// Whether this network takes `set`'s inputs and predicts its targets.
    pub fn check_data(&self, set: &ImageSet) -> Result<(), DataMismatch> {
        if self.input_shape != set.shape {
            return Err(DataMismatch::Input {
                model: self.input_shape,
                data: set.shape,
            });
        }
        match &set.targets {
            Targets::Classes { classes, .. } if *classes != self.outputs => {
                Err(DataMismatch::Classes {
                    outputs: self.outputs,
                    expected: *classes,
                })
            }
            Targets::Values(_) if self.outputs != 1 => Err(DataMismatch::Values {
                outputs: self.outputs,
            }),
            _ => Ok(()),
        }
    }

    /// Elements of one input.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// The batch as the network's float input: `u8 * scale + offset`
    /// (Keras's Rescaling in float32).
    pub fn input(&self, images: &[u8], device: &Device) -> Tensor<4> {
        let n = images.len() / self.input_len();
        let data: Vec<f32> = images
            .iter()
            .map(|&v| v as f32 * self.input_scale + self.input_offset)
            .collect();
        let [h, w, c] = self.input_shape;
        Tensor::from_data(TensorData::new(data, [n, h, w, c]), device)
    }

    /// The parameters as tensors on `device` (leaves requiring gradients
    /// when `grad`).
    pub fn param_tensors(&self, device: &Device, grad: bool) -> Vec<Tensor<1>> {
        self.params
            .iter()
            .map(|p| {
                let t = Tensor::<1>::from_data(
                    TensorData::new(p.values.clone(), [p.values.len()]),
                    device,
                );
                if grad {
                    t.require_grad()
                } else {
                    t
                }
            })
            .collect()
    }

    /// The forward pass. `Train` uses batch statistics and dropout (drawn
    /// from `rng`) and returns them for the moving averages; the output is
    /// `[n, outputs]`, before a final softmax unless `softmax`.
    pub fn forward(
        &self,
        x: Tensor<4>,
        params: &[Tensor<1>],
        mode: Mode,
        rng: &mut Rng,
        softmax: bool,
    ) -> Result<(Tensor<2>, BatchStats), NetError> {
        let mut stats = BatchStats::default();
        let n = x.dims()[0];
        let device = x.device();
        let p4 = |i: usize| -> Tensor<4> {
            let s = &self.params[i].shape;
            params[i].clone().reshape([s[0], s[1], s[2], s[3]])
        };
        let mut a = Activation::Map(x);
        for stage in &self.stages {
            a = match (stage, a) {
                (
                    Stage::Conv {
                        name,
                        window,
                        kernel,
                        bias,
                        quant,
                    },
                    Activation::Map(x),
                ) => {
                    let g = window.geometry(name, n, hwc(&x))?;
                    let mut k = p4(*kernel);
                    if let Some(q) = quant {
                        k = ops::fake_quant(k, q.bits, q.per_axis);
                    }
                    let y = ops::conv2d(x, k, &g);
                    Activation::Map(add_bias(y, bias.map(|b| params[b].clone())))
                }
                (
                    Stage::Separable {
                        name,
                        window,
                        depthwise,
                        pointwise,
                        bias,
                        quant_dw,
                        quant_pw,
                    },
                    Activation::Map(x),
                ) => {
                    let g = window.geometry(name, n, hwc(&x))?;
                    let mut dw = p4(*depthwise);
                    if let Some(q) = quant_dw {
                        dw = ops::fake_quant(dw, q.bits, q.per_axis);
                    }
                    let mut pw = p4(*pointwise);
                    if let Some(q) = quant_pw {
                        pw = ops::fake_quant(pw, q.bits, q.per_axis);
                    }
                    let y = ops::depthwise(x, dw, &g);
                    let g1 = Geometry::new([n, g.oh, g.ow, g.c], [1, 1], [1, 1], Padding::Valid)
                        .map_err(|source| NetError::Window {
                            layer: name.clone(),
                            source,
                        })?;
                    let y = ops::conv2d(y, pw, &g1);
                    Activation::Map(add_bias(y, bias.map(|b| params[b].clone())))
                }
                (
                    Stage::Depthwise {
                        name,
                        window,
                        kernel,
                        bias,
                    },
                    Activation::Map(x),
                ) => {
                    let g = window.geometry(name, n, hwc(&x))?;
                    let y = ops::depthwise(x, p4(*kernel), &g);
                    Activation::Map(add_bias(y, bias.map(|b| params[b].clone())))
                }
                (
                    Stage::Dense {
                        kernel,
                        bias,
                        quant,
                    },
                    a,
                ) => {
                    let x = flat(a);
                    let s = &self.params[*kernel].shape;
                    let mut k = params[*kernel].clone().reshape([s[0], s[1]]);
                    if let Some(q) = quant {
                        k = ops::fake_quant(k, q.bits, q.per_axis);
                    }
                    let mut y = x.matmul(k);
                    if let Some(b) = bias {
                        let units = self.params[*b].values.len();
                        y = y + params[*b].clone().reshape([1, units]);
                    }
                    Activation::Flat(y)
                }
                (
                    Stage::BatchNorm {
                        gamma,
                        beta,
                        moving,
                        eps,
                        momentum,
                        act,
                    },
                    a,
                ) => {
                    let m = &self.moving[*moving];
                    let c = m.mean.len();
                    let gamma_t = match gamma {
                        Some(g) => params[*g].clone(),
                        None => Tensor::ones([c], &device),
                    };
                    let beta_t = match beta {
                        Some(b) => params[*b].clone(),
                        None => Tensor::zeros([c], &device),
                    };
                    let train = mode == Mode::Train;
                    let (count, map, batch) = match &a {
                        Activation::Map(x) => {
                            let d = x.dims();
                            (
                                d[0] * d[1] * d[2],
                                true,
                                train.then(|| ops::batch_stats(x.clone().detach())),
                            )
                        }
                        Activation::Flat(x) => (
                            x.dims()[0],
                            false,
                            train.then(|| ops::batch_stats(x.clone().detach())),
                        ),
                    };
                    let stats_t = match batch {
                        Some(s) => {
                            let v = s.to_data();
                            let v = v.as_slice::<f32>().expect("f32 statistics");
                            stats.updates.push(BatchNormUpdate {
                                moving: *moving,
                                mean: v[..c].to_vec(),
                                var: v[c..].to_vec(),
                                count,
                                map,
                                momentum: *momentum,
                            });
                            s
                        }
                        None => {
                            let mut v = m.mean.clone();
                            v.extend_from_slice(&m.var);
                            Tensor::from_data(TensorData::new(v, [2, c]), &device)
                        }
                    };
                    match a {
                        Activation::Map(x) => Activation::Map(ops::batch_norm_act(
                            x, gamma_t, beta_t, stats_t, *eps, *act, train,
                        )),
                        Activation::Flat(x) => Activation::Flat(ops::batch_norm_act(
                            x, gamma_t, beta_t, stats_t, *eps, *act, train,
                        )),
                    }
                }
                (Stage::Relu(act), a) => match a {
                    Activation::Map(x) => Activation::Map(relu(x, *act)),
                    Activation::Flat(x) => Activation::Flat(relu(x, *act)),
                },
                (Stage::QuantizedRelu { step, levels }, a) => match a {
                    Activation::Map(x) => Activation::Map(ops::quantized_relu(x, *step, *levels)),
                    Activation::Flat(x) => Activation::Flat(ops::quantized_relu(x, *step, *levels)),
                },
                (Stage::MaxPool { name, window }, Activation::Map(x)) => {
                    let g = window.geometry(name, n, hwc(&x))?;
                    Activation::Map(ops::max_pool(x, &g))
                }
                (Stage::GlobalAvg { keepdims }, Activation::Map(x)) => {
                    let [n, h, w, c] = x.dims();
                    let y: Tensor<2> = x.reshape([n, h * w, c]).mean_dim(1).reshape([n, c]);
                    if *keepdims {
                        Activation::Map(y.reshape([n, 1, 1, c]))
                    } else {
                        Activation::Flat(y)
                    }
                }
                (Stage::Flatten, a) => Activation::Flat(flat(a)),
                (Stage::ToMap, a) => {
                    let x = flat(a);
                    let [n, c] = x.dims();
                    Activation::Map(x.reshape([n, 1, 1, c]))
                }
                (Stage::Dropout(rate), a) => {
                    if mode == Mode::Train && *rate > 0.0 {
                        match a {
                            Activation::Map(x) => Activation::Map(dropout(x, *rate, rng)),
                            Activation::Flat(x) => Activation::Flat(dropout(x, *rate, rng)),
                        }
                    } else {
                        a
                    }
                }
                (Stage::Softmax, a) => {
                    let x = flat(a);
                    Activation::Flat(if softmax {
                        activation::softmax(x, 1)
                    } else {
                        x
                    })
                }
                (stage, _) => {
                    return Err(NetError::Layer {
                        layer: format!("{stage:?}"),
                        message: "expects an (H, W, C) input".into(),
                    })
                }
            };
        }
        Ok((flat(a), stats))
    }

    /// Applies a training step's batch statistics to the moving averages,
    /// as Keras does.
    pub fn update_moving(&mut self, stats: &BatchStats) {
        for u in &stats.updates {
            let m = &mut self.moving[u.moving];
            // 4-D maps: TensorFlow's fused kernel feeds the unbiased
            // variance to the moving average; 2-D inputs the biased one.
            let correction = if u.map && u.count > 1 {
                u.count as f32 / (u.count as f32 - 1.0)
            } else {
                1.0
            };
            let f = 1.0 - u.momentum;
            for (mv, b) in m.mean.iter_mut().zip(&u.mean) {
                *mv -= (*mv - b) * f;
            }
            for (mv, b) in m.var.iter_mut().zip(&u.var) {
                *mv -= (*mv - b * correction) * f;
            }
        }
    }

    /// The Keras model with the network's current weights.
    pub fn to_model(&self) -> keras::Model {
        let mut model = self.model.clone();
        for p in &self.params {
            if let Some(w) = model.layer_mut(&p.layer).and_then(|l| l.weight_mut(p.role)) {
                w.values.clone_from(&p.values);
            }
        }
        for m in &self.moving {
            if let Some(l) = model.layer_mut(&m.layer) {
                if let Some(w) = l.weight_mut(WeightRole::MovingMean) {
                    w.values.clone_from(&m.mean);
                }
                if let Some(w) = l.weight_mut(WeightRole::MovingVariance) {
                    w.values.clone_from(&m.var);
                }
            }
        }
        model
    }
}

fn hwc(x: &Tensor<4>) -> [usize; 3] {
    let [_, h, w, c] = x.dims();
    [h, w, c]
}

fn flat(a: Activation) -> Tensor<2> {
    match a {
        Activation::Flat(x) => x,
        Activation::Map(x) => {
            let [n, h, w, c] = x.dims();
            x.reshape([n, h * w * c])
        }
    }
}

fn add_bias(y: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    match bias {
        Some(b) => {
            let c = b.dims()[0];
            y + b.reshape([1, 1, 1, c])
        }
        None => y,
    }
}

fn relu<const D: usize>(x: Tensor<D>, act: Act) -> Tensor<D> {
    match act {
        Act::None => x,
        Act::Relu => activation::relu(x),
        Act::ReluMax(m) => activation::relu(x).clamp_max(m),
    }
}

fn dropout<const D: usize>(x: Tensor<D>, rate: f32, rng: &mut Rng) -> Tensor<D> {
    let dims = x.dims();
    let len: usize = dims.iter().product();
    let keep = 1.0 - rate;
    let mask: Vec<f32> = (0..len)
        .map(|_| {
            if rng.next_f32() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::<D>::from_data(TensorData::new(mask, dims), &x.device());
    x * mask
}
