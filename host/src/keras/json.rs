//! The `model_config` JSON of Keras `.h5` files: reading the dialects that
//! tf.keras 2.x and cnn2snn write (`Functional` or `Sequential`, layers with
//! or without `module` / `registered_name` / `build_config`, input shapes as
//! `batch_input_shape` or `batch_shape`), and writing the tf_keras 2.19
//! `model.to_json()` dialect (`module`, `class_name`, `config`,
//! `registered_name`, `build_config`, `name`, `inbound_nodes`).
//!
//! A layer read from a file keeps its raw `config` object; writing it back
//! starts from that object and overwrites only the fields this crate models,
//! so initialisers, regularisers and the like survive a read-write cycle.
//! Models are always written as `Functional` (a `Sequential` file read in
//! comes back out with explicit inbound nodes; both load the same way).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::layers::{
    BatchNormConfig, Conv2DConfig, DenseConfig, DepthwiseConv2DConfig, LayerConfig, Padding,
    Pool2DConfig, Quantizer, QuantizerKind, ReluConfig, SeparableConv2DConfig, Shape,
};
use super::{Layer, Model, RawConfig};

type Object = Map<String, Value>;

// ---------------------------------------------------------------- reading

/// Parses a `model_config` (the graph without weights). Errors are messages
/// naming the layer and field.
pub fn parse_model_config(v: &Value) -> Result<Model, String> {
    let class = v
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or("no `class_name` at the top level")?;
    let config = v
        .get("config")
        .and_then(Value::as_object)
        .ok_or("no `config` object at the top level")?;
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("model");
    let entries = config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or("no `layers` list in the model config")?;
    match class {
        "Functional" | "Model" => parse_functional(name, config, entries),
        "Sequential" => parse_sequential(name, entries),
        other => Err(format!(
            "model class `{other}` is not supported (Functional or Sequential)"
        )),
    }
}

fn parse_functional(name: &str, config: &Object, entries: &[Value]) -> Result<Model, String> {
    let mut model = Model::new(name);
    for entry in entries {
        let mut layer = parse_entry(entry)?;
        layer.inbound = match entry.get("inbound_nodes") {
            Some(nodes) => {
                parse_inbound_nodes(nodes).map_err(|e| format!("layer `{}`: {e}", layer.name))?
            }
            None => Vec::new(),
        };
        model.layers.push(layer);
    }
    model.inputs =
        parse_endpoints(config.get("input_layers")).map_err(|e| format!("input_layers: {e}"))?;
    model.outputs =
        parse_endpoints(config.get("output_layers")).map_err(|e| format!("output_layers: {e}"))?;
    Ok(model)
}

fn parse_sequential(name: &str, entries: &[Value]) -> Result<Model, String> {
    let mut model = Model::new(name);
    for entry in entries {
        let mut layer = parse_entry(entry)?;
        if model.layers.is_empty() && !matches!(layer.config, LayerConfig::InputLayer { .. }) {
            // Older files give the first layer a batch_input_shape instead of
            // an InputLayer; Keras then creates `<first>_input`.
            let shape = layer
                .raw
                .as_ref()
                .and_then(|r| batch_shape(&r.config).transpose())
                .transpose()?
                .ok_or("a Sequential model needs an InputLayer or a batch_input_shape")?;
            let input = Layer::new(
                format!("{}_input", layer.name),
                LayerConfig::InputLayer {
                    batch_input_shape: shape,
                    dtype: "float32".into(),
                },
                Vec::new(),
            );
            model.layers.push(input);
        }
        layer.inbound = model
            .layers
            .last()
            .map(|l| vec![l.name.clone()])
            .unwrap_or_default();
        model.layers.push(layer);
    }
    model.inputs = model
        .layers
        .first()
        .map(|l| vec![l.name.clone()])
        .unwrap_or_default();
    model.outputs = model
        .layers
        .last()
        .map(|l| vec![l.name.clone()])
        .unwrap_or_default();
    Ok(model)
}

/// One entry of `layers`: class, config, name (no inbound nodes yet).
fn parse_entry(entry: &Value) -> Result<Layer, String> {
    let class = entry
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or("a layer entry has no `class_name`")?;
    let config = entry
        .get("config")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("a {class} layer has no `config` object"))?;
    let name = entry
        .get("name")
        .or_else(|| config.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a {class} layer has no name"))?;
    let module = entry.get("module").and_then(Value::as_str);
    let registered = entry.get("registered_name").and_then(Value::as_str);
    let parsed = parse_layer_config(class, module, registered, config)
        .map_err(|e| format!("layer `{name}` ({class}): {e}"))?;
    let mut layer = Layer::new(name, parsed, Vec::new());
    layer.raw = Some(RawConfig {
        class_name: class.to_owned(),
        config: config.clone(),
    });
    Ok(layer)
}

/// `inbound_nodes` of tf.keras (`[[["name", 0, 0, {}], ...]]`) or Keras 3
/// (`[{"args": [{"config": {"keras_history": ["name", 0, 0]}}]}]`): the
/// layers feeding the first node.
fn parse_inbound_nodes(nodes: &Value) -> Result<Vec<String>, String> {
    let nodes = nodes.as_array().ok_or("inbound_nodes is not a list")?;
    let Some(first) = nodes.first() else {
        return Ok(Vec::new());
    };
    if let Some(args) = first.get("args") {
        let mut names = Vec::new();
        collect_keras_history(args, &mut names);
        return Ok(names);
    }
    let tensors = first.as_array().ok_or("an inbound node is not a list")?;
    tensors
        .iter()
        .map(|t| {
            t.get(0)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "an inbound tensor has no layer name".to_owned())
        })
        .collect()
}

fn collect_keras_history(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(name) = o
                .get("config")
                .and_then(|c| c.get("keras_history"))
                .and_then(|h| h.get(0))
                .and_then(Value::as_str)
            {
                out.push(name.to_owned());
            } else {
                o.values().for_each(|x| collect_keras_history(x, out));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_keras_history(x, out)),
        _ => {}
    }
}

/// `input_layers` / `output_layers`: `[["name", 0, 0], ...]` or `["name", 0, 0]`.
fn parse_endpoints(v: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(list) = v.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    if let Some(name) = list.first().and_then(Value::as_str) {
        return Ok(vec![name.to_owned()]);
    }
    list.iter()
        .map(|e| {
            e.get(0)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("bad endpoint {e}"))
        })
        .collect()
}

/// Maps a class name and config to a typed config; unknown classes are kept.
pub fn parse_layer_config(
    class: &str,
    module: Option<&str>,
    registered_name: Option<&str>,
    c: &Object,
) -> Result<LayerConfig, String> {
    // Akida 2.0 models use quantizeml's layers, some of which share a class
    // name with cnn2snn's: keep them as unknown classes, by module.
    let quantizeml = module.is_some_and(|m| m.starts_with("quantizeml"));
    Ok(match class {
        _ if quantizeml => LayerConfig::Unknown {
            class_name: class.to_owned(),
            module: module.map(str::to_owned),
            registered_name: registered_name.map(str::to_owned),
            config: Value::Object(c.clone()),
        },
        "InputLayer" => LayerConfig::InputLayer {
            batch_input_shape: batch_shape(c)?.ok_or("no batch_input_shape")?,
            dtype: dtype_name(c.get("dtype")),
        },
        "Rescaling" => LayerConfig::Rescaling {
            scale: req_f64(c, "scale")?,
            offset: opt_f64(c, "offset")?.unwrap_or(0.0),
        },
        "Conv2D" => LayerConfig::Conv2D(conv2d(c)?),
        "SeparableConv2D" => LayerConfig::SeparableConv2D(separable(c)?),
        "DepthwiseConv2D" => LayerConfig::DepthwiseConv2D(DepthwiseConv2DConfig {
            kernel_size: pair(c, "kernel_size")?.ok_or("no kernel_size")?,
            strides: pair(c, "strides")?.unwrap_or([1, 1]),
            padding: padding(c)?,
            dilation_rate: pair(c, "dilation_rate")?.unwrap_or([1, 1]),
            depth_multiplier: opt_usize(c, "depth_multiplier")?.unwrap_or(1),
            use_bias: opt_bool(c, "use_bias")?.unwrap_or(true),
            activation: activation(c)?,
        }),
        "Dense" => LayerConfig::Dense(dense(c)?),
        "BatchNormalization" => LayerConfig::BatchNormalization(batch_norm(c)?),
        "ReLU" => LayerConfig::ReLU(ReluConfig {
            max_value: opt_f64(c, "max_value")?,
            negative_slope: opt_f64(c, "negative_slope")?.unwrap_or(0.0),
            threshold: opt_f64(c, "threshold")?.unwrap_or(0.0),
        }),
        "Activation" => LayerConfig::Activation {
            activation: activation(c)?,
        },
        "MaxPooling2D" | "MaxPool2D" => LayerConfig::MaxPooling2D(pool(c)?),
        "AveragePooling2D" | "AvgPool2D" => LayerConfig::AveragePooling2D(pool(c)?),
        "GlobalAveragePooling2D" | "GlobalAvgPool2D" => LayerConfig::GlobalAveragePooling2D {
            keepdims: opt_bool(c, "keepdims")?.unwrap_or(false),
        },
        "Dropout" => LayerConfig::Dropout {
            rate: req_f64(c, "rate")?,
        },
        "Flatten" => LayerConfig::Flatten,
        "Reshape" => LayerConfig::Reshape {
            target_shape: int_list(c, "target_shape")?.ok_or("no target_shape")?,
        },
        "QuantizedConv2D" => LayerConfig::QuantizedConv2D {
            conv: conv2d(c)?,
            quantizer: quantizer(c, "quantizer")?,
        },
        "QuantizedSeparableConv2D" => LayerConfig::QuantizedSeparableConv2D {
            conv: separable(c)?,
            quantizer: quantizer(c, "quantizer")?,
            quantizer_dw: quantizer(c, "quantizer_dw")?,
        },
        "QuantizedDense" => LayerConfig::QuantizedDense {
            dense: dense(c)?,
            quantizer: quantizer(c, "quantizer")?,
        },
        "QuantizedReLU" => {
            let bitwidth = opt_u32(c, "bitwidth")?.unwrap_or(1);
            LayerConfig::QuantizedReLU {
                bitwidth,
                // cnn2snn: no max_value means 2^bits - 1.
                max_value: opt_f64(c, "max_value")?.unwrap_or(2f64.powi(bitwidth as i32) - 1.0),
            }
        }
        "ActivationDiscreteRelu" => LayerConfig::ActivationDiscreteRelu {
            bitwidth: opt_u32(c, "bitwidth")?.unwrap_or(1),
        },
        other => LayerConfig::Unknown {
            class_name: other.to_owned(),
            module: module.map(str::to_owned),
            registered_name: registered_name.map(str::to_owned),
            config: Value::Object(c.clone()),
        },
    })
}

fn conv2d(c: &Object) -> Result<Conv2DConfig, String> {
    Ok(Conv2DConfig {
        filters: req_usize(c, "filters")?,
        kernel_size: pair(c, "kernel_size")?.ok_or("no kernel_size")?,
        strides: pair(c, "strides")?.unwrap_or([1, 1]),
        padding: padding(c)?,
        dilation_rate: pair(c, "dilation_rate")?.unwrap_or([1, 1]),
        use_bias: opt_bool(c, "use_bias")?.unwrap_or(true),
        activation: activation(c)?,
    })
}

fn separable(c: &Object) -> Result<SeparableConv2DConfig, String> {
    Ok(SeparableConv2DConfig {
        filters: req_usize(c, "filters")?,
        kernel_size: pair(c, "kernel_size")?.ok_or("no kernel_size")?,
        strides: pair(c, "strides")?.unwrap_or([1, 1]),
        padding: padding(c)?,
        dilation_rate: pair(c, "dilation_rate")?.unwrap_or([1, 1]),
        depth_multiplier: opt_usize(c, "depth_multiplier")?.unwrap_or(1),
        use_bias: opt_bool(c, "use_bias")?.unwrap_or(true),
        activation: activation(c)?,
    })
}

fn dense(c: &Object) -> Result<DenseConfig, String> {
    Ok(DenseConfig {
        units: req_usize(c, "units")?,
        use_bias: opt_bool(c, "use_bias")?.unwrap_or(true),
        activation: activation(c)?,
    })
}

fn batch_norm(c: &Object) -> Result<BatchNormConfig, String> {
    let axis = match c.get("axis") {
        None => vec![-1],
        Some(Value::Number(n)) => vec![n.as_i64().ok_or("axis is not an integer")?],
        Some(_) => int_list(c, "axis")?.unwrap_or_default(),
    };
    let d = BatchNormConfig::default();
    Ok(BatchNormConfig {
        axis,
        momentum: opt_f64(c, "momentum")?.unwrap_or(d.momentum),
        epsilon: opt_f64(c, "epsilon")?.unwrap_or(d.epsilon),
        center: opt_bool(c, "center")?.unwrap_or(true),
        scale: opt_bool(c, "scale")?.unwrap_or(true),
    })
}

fn pool(c: &Object) -> Result<Pool2DConfig, String> {
    let pool_size = pair(c, "pool_size")?.unwrap_or([2, 2]);
    Ok(Pool2DConfig {
        pool_size,
        strides: pair(c, "strides")?.unwrap_or(pool_size),
        padding: padding(c)?,
    })
}

fn quantizer(c: &Object, key: &str) -> Result<Quantizer, String> {
    let q = c.get(key).ok_or_else(|| format!("no `{key}`"))?;
    let class = q
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{key}` has no class_name"))?;
    let bitwidth = q
        .get("config")
        .and_then(|c| c.get("bitwidth"))
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("`{key}` has no integer bitwidth"))?;
    Ok(Quantizer {
        kind: QuantizerKind::from_class_name(class),
        bitwidth: bitwidth as u32,
    })
}

/// `batch_input_shape` (tf.keras) or `batch_shape` (Keras 3), if present.
fn batch_shape(c: &Object) -> Result<Option<Vec<Option<usize>>>, String> {
    let Some(v) = c.get("batch_input_shape").or_else(|| c.get("batch_shape")) else {
        return Ok(None);
    };
    let list = v.as_array().ok_or("batch_input_shape is not a list")?;
    list.iter()
        .map(|d| match d {
            Value::Null => Ok(None),
            _ => d
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| format!("bad dimension {d} in batch_input_shape")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A dtype given as a name or as a Keras 3 policy object.
fn dtype_name(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("config")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("float32")
            .to_owned(),
        _ => "float32".into(),
    }
}

fn activation(c: &Object) -> Result<String, String> {
    match c.get("activation") {
        None | Some(Value::Null) => Ok("linear".into()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("activation {other} is not a name")),
    }
}

fn padding(c: &Object) -> Result<Padding, String> {
    match c.get("padding") {
        None => Ok(Padding::Valid),
        Some(v) => v
            .as_str()
            .and_then(Padding::parse)
            .ok_or_else(|| format!("padding {v} is not `valid` or `same`")),
    }
}

fn req_usize(c: &Object, key: &str) -> Result<usize, String> {
    opt_usize(c, key)?.ok_or_else(|| format!("no `{key}`"))
}

fn opt_usize(c: &Object, key: &str) -> Result<Option<usize>, String> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("`{key}` is not a non-negative integer: {v}")),
    }
}

fn opt_u32(c: &Object, key: &str) -> Result<Option<u32>, String> {
    Ok(opt_usize(c, key)?.map(|n| n as u32))
}

fn req_f64(c: &Object, key: &str) -> Result<f64, String> {
    opt_f64(c, key)?.ok_or_else(|| format!("no `{key}`"))
}

fn opt_f64(c: &Object, key: &str) -> Result<Option<f64>, String> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` is not a number: {v}")),
    }
}

fn opt_bool(c: &Object, key: &str) -> Result<Option<bool>, String> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("`{key}` is not a boolean: {v}")),
    }
}

/// An integer or a pair of integers (Keras accepts both for sizes).
fn pair(c: &Object, key: &str) -> Result<Option<[usize; 2]>, String> {
    let bad = || format!("`{key}` is not an integer or a pair of integers");
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let n = n.as_u64().ok_or_else(bad)? as usize;
            Ok(Some([n, n]))
        }
        Some(Value::Array(a)) => match a.as_slice() {
            [x, y] => Ok(Some([
                x.as_u64().ok_or_else(bad)? as usize,
                y.as_u64().ok_or_else(bad)? as usize,
            ])),
            [x] => {
                let n = x.as_u64().ok_or_else(bad)? as usize;
                Ok(Some([n, n]))
            }
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

fn int_list(c: &Object, key: &str) -> Result<Option<Vec<i64>>, String> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| format!("`{key}` holds a non-integer {v}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(format!("`{key}` is not a list: {v}")),
    }
}

// ---------------------------------------------------------------- writing

/// The `model_config` of `model` in the tf_keras 2.19 `to_json` dialect.
pub fn model_config(model: &Model) -> Value {
    let inputs = model.known_input_shapes();
    let mut writer = Writer::default();
    let layers: Vec<Value> = model
        .layers
        .iter()
        .zip(inputs)
        .map(|(layer, input)| writer.layer_entry(layer, input.as_deref()))
        .collect();
    let endpoints = |names: &[String]| -> Value {
        Value::Array(names.iter().map(|n| json!([n, 0, 0])).collect())
    };
    json!({
        "class_name": "Functional",
        "config": {
            "name": model.name,
            "trainable": true,
            "layers": layers,
            "input_layers": endpoints(&model.inputs),
            "output_layers": endpoints(&model.outputs),
        }
    })
}

/// Per-model state of the writer: Keras numbers quantizer objects
/// (`max_per_axis_quantizer`, `max_per_axis_quantizer_1`, ...).
#[derive(Default)]
struct Writer {
    quantizer_counts: HashMap<String, usize>,
}

impl Writer {
    fn layer_entry(&mut self, layer: &Layer, inputs: Option<&[Shape]>) -> Value {
        let (module, registered) = module_of(&layer.config);
        let mut entry = Object::new();
        if let Some(m) = module {
            entry.insert("module".into(), json!(m));
        }
        entry.insert("class_name".into(), json!(layer.class_name()));
        entry.insert("config".into(), Value::Object(self.layer_config(layer)));
        entry.insert("registered_name".into(), json!(registered));
        let is_input = matches!(layer.config, LayerConfig::InputLayer { .. });
        if let (false, Some([shape])) = (is_input, inputs) {
            let mut dims = vec![Value::Null];
            dims.extend(shape.iter().map(|&d| json!(d)));
            entry.insert("build_config".into(), json!({ "input_shape": dims }));
        }
        entry.insert("name".into(), json!(layer.name));
        let node: Vec<Value> = layer.inbound.iter().map(|n| json!([n, 0, 0, {}])).collect();
        let nodes = if node.is_empty() {
            json!([])
        } else {
            json!([node])
        };
        entry.insert("inbound_nodes".into(), nodes);
        Value::Object(entry)
    }

    /// The layer's `config` object: the full default config of its class,
    /// or its raw config with the modelled fields updated.
    fn layer_config(&mut self, layer: &Layer) -> Object {
        if let LayerConfig::Unknown { config, .. } = &layer.config {
            let mut c = config.as_object().cloned().unwrap_or_default();
            c.insert("name".into(), json!(layer.name));
            return c;
        }
        let fresh = self.fresh_config(layer);
        let raw = layer
            .raw
            .as_ref()
            .filter(|r| r.class_name == layer.class_name());
        let Some(raw) = raw else {
            return fresh;
        };
        let is_input = matches!(layer.config, LayerConfig::InputLayer { .. });
        let mut out = raw.config.clone();
        if is_input {
            out.shift_remove("batch_shape");
        }
        for (key, value) in fresh {
            if key == "quantizer" || key == "quantizer_dw" {
                let merged = merge_quantizer(out.get(&key), value);
                out.insert(key, merged);
            } else if is_modelled(&key, is_input) {
                out.insert(key, value);
            }
        }
        out
    }

    /// A complete config in the order and with the defaults tf_keras writes.
    fn fresh_config(&mut self, layer: &Layer) -> Object {
        let name = layer.name.as_str();
        let v = match &layer.config {
            LayerConfig::InputLayer {
                batch_input_shape,
                dtype,
            } => json!({
                "batch_input_shape": batch_input_shape,
                "dtype": dtype,
                "sparse": false,
                "ragged": false,
                "name": name,
            }),
            LayerConfig::Rescaling { scale, offset } => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "scale": scale, "offset": integral_or_float(*offset),
            }),
            LayerConfig::Conv2D(c) => conv2d_json(name, c),
            LayerConfig::SeparableConv2D(c) => separable_json(name, c),
            LayerConfig::DepthwiseConv2D(c) => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "kernel_size": c.kernel_size, "strides": c.strides,
                "padding": c.padding.as_str(), "data_format": "channels_last",
                "dilation_rate": c.dilation_rate, "groups": 1,
                "activation": c.activation, "use_bias": c.use_bias,
                "bias_initializer": initializer("Zeros"),
                "bias_regularizer": null, "activity_regularizer": null, "bias_constraint": null,
                "depth_multiplier": c.depth_multiplier,
                "depthwise_initializer": glorot(),
                "depthwise_regularizer": null, "depthwise_constraint": null,
            }),
            LayerConfig::Dense(d) => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "units": d.units, "activation": d.activation, "use_bias": d.use_bias,
                "kernel_initializer": glorot(), "bias_initializer": initializer("Zeros"),
                "kernel_regularizer": null, "bias_regularizer": null,
                "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null,
            }),
            LayerConfig::BatchNormalization(bn) => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "axis": bn.axis, "momentum": bn.momentum, "epsilon": bn.epsilon,
                "center": bn.center, "scale": bn.scale,
                "beta_initializer": initializer("Zeros"), "gamma_initializer": initializer("Ones"),
                "moving_mean_initializer": initializer("Zeros"),
                "moving_variance_initializer": initializer("Ones"),
                "beta_regularizer": null, "gamma_regularizer": null,
                "beta_constraint": null, "gamma_constraint": null,
            }),
            LayerConfig::ReLU(r) => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "max_value": r.max_value, "negative_slope": r.negative_slope,
                "threshold": r.threshold,
            }),
            LayerConfig::Activation { activation } => json!({
                "name": name, "trainable": true, "dtype": "float32", "activation": activation,
            }),
            LayerConfig::MaxPooling2D(p) | LayerConfig::AveragePooling2D(p) => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "pool_size": p.pool_size, "padding": p.padding.as_str(),
                "strides": p.strides, "data_format": "channels_last",
            }),
            LayerConfig::GlobalAveragePooling2D { keepdims } => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "data_format": "channels_last", "keepdims": keepdims,
            }),
            LayerConfig::Dropout { rate } => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "rate": rate, "noise_shape": null, "seed": null,
            }),
            LayerConfig::Flatten => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "data_format": "channels_last",
            }),
            LayerConfig::Reshape { target_shape } => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "target_shape": target_shape,
            }),
            LayerConfig::QuantizedConv2D { conv, quantizer } => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "filters": conv.filters, "kernel_size": conv.kernel_size,
                "strides": conv.strides, "padding": conv.padding.as_str(),
                "dilation_rate": conv.dilation_rate, "use_bias": conv.use_bias,
                "kernel_initializer": glorot(), "bias_initializer": initializer("Zeros"),
                "kernel_regularizer": null, "bias_regularizer": null,
                "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null,
                "quantizer": self.quantizer_json(quantizer),
            }),
            LayerConfig::QuantizedSeparableConv2D {
                conv,
                quantizer,
                quantizer_dw,
            } => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "filters": conv.filters, "kernel_size": conv.kernel_size,
                "strides": conv.strides, "padding": conv.padding.as_str(),
                "dilation_rate": conv.dilation_rate, "groups": 1, "use_bias": conv.use_bias,
                "kernel_initializer": glorot(), "bias_initializer": initializer("Zeros"),
                "kernel_regularizer": null, "bias_regularizer": null,
                "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null,
                "depthwise_initializer": glorot(), "pointwise_initializer": glorot(),
                "depthwise_regularizer": null, "pointwise_regularizer": null,
                "depthwise_constraint": null, "pointwise_constraint": null,
                "quantizer_dw": self.quantizer_json(quantizer_dw),
                "quantizer": self.quantizer_json(quantizer),
            }),
            LayerConfig::QuantizedDense { dense, quantizer } => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "units": dense.units, "use_bias": dense.use_bias,
                "kernel_initializer": glorot(), "bias_initializer": initializer("Zeros"),
                "kernel_regularizer": null, "bias_regularizer": null,
                "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null,
                "quantizer": self.quantizer_json(quantizer),
            }),
            LayerConfig::QuantizedReLU {
                bitwidth,
                max_value,
            } => json!({
                "name": name, "trainable": true, "dtype": "float32",
                "bitwidth": bitwidth, "max_value": max_value,
            }),
            LayerConfig::ActivationDiscreteRelu { bitwidth } => json!({
                "name": name, "trainable": true, "dtype": "float32", "bitwidth": bitwidth,
            }),
            LayerConfig::Unknown { config, .. } => config.clone(),
        };
        match v {
            Value::Object(o) => o,
            _ => Object::new(),
        }
    }

    /// A cnn2snn quantizer object, named as Keras numbers them.
    fn quantizer_json(&mut self, q: &Quantizer) -> Value {
        let base = super::builder::snake_case(q.kind.class_name());
        let n = self.quantizer_counts.entry(base.clone()).or_insert(0);
        let name = if *n == 0 { base } else { format!("{base}_{n}") };
        *n += 1;
        json!({
            "module": "cnn2snn.quantization_ops",
            "class_name": q.kind.class_name(),
            "config": {"name": name, "trainable": true, "dtype": "float32", "bitwidth": q.bitwidth},
            "registered_name": q.kind.class_name(),
        })
    }
}

fn conv2d_json(name: &str, c: &Conv2DConfig) -> Value {
    json!({
        "name": name, "trainable": true, "dtype": "float32",
        "filters": c.filters, "kernel_size": c.kernel_size, "strides": c.strides,
        "padding": c.padding.as_str(), "data_format": "channels_last",
        "dilation_rate": c.dilation_rate, "groups": 1,
        "activation": c.activation, "use_bias": c.use_bias,
        "kernel_initializer": glorot(), "bias_initializer": initializer("Zeros"),
        "kernel_regularizer": null, "bias_regularizer": null,
        "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null,
    })
}

fn separable_json(name: &str, c: &SeparableConv2DConfig) -> Value {
    json!({
        "name": name, "trainable": true, "dtype": "float32",
        "filters": c.filters, "kernel_size": c.kernel_size, "strides": c.strides,
        "padding": c.padding.as_str(), "data_format": "channels_last",
        "dilation_rate": c.dilation_rate, "groups": 1,
        "activation": c.activation, "use_bias": c.use_bias,
        "kernel_initializer": glorot(), "bias_initializer": initializer("Zeros"),
        "kernel_regularizer": null, "bias_regularizer": null,
        "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null,
        "depth_multiplier": c.depth_multiplier,
        "depthwise_initializer": glorot(), "pointwise_initializer": glorot(),
        "depthwise_regularizer": null, "pointwise_regularizer": null,
        "depthwise_constraint": null, "pointwise_constraint": null,
    })
}

/// `module` and `registered_name` of a layer entry: Keras classes are
/// `keras.layers` / null, cnn2snn classes their module / class name.
fn module_of(config: &LayerConfig) -> (Option<String>, Option<String>) {
    match config {
        LayerConfig::Unknown {
            module,
            registered_name,
            ..
        } => (module.clone(), registered_name.clone()),
        c if c.is_quantized() => (
            Some("cnn2snn.quantization_layers".into()),
            Some(c.class_name().to_owned()),
        ),
        _ => (Some("keras.layers".into()), None),
    }
}

/// Fields this crate does not model and so takes from a raw config.
fn is_modelled(key: &str, is_input: bool) -> bool {
    let unmodelled = key.ends_with("_initializer")
        || key.ends_with("_regularizer")
        || key.ends_with("_constraint")
        || matches!(
            key,
            "trainable" | "data_format" | "groups" | "sparse" | "ragged" | "noise_shape" | "seed"
        )
        || (key == "dtype" && !is_input);
    !unmodelled
}

/// Keeps a raw quantizer object (its name and extra fields) when it has the
/// same class, updating its bit width.
fn merge_quantizer(raw: Option<&Value>, fresh: Value) -> Value {
    let same_class = raw
        .and_then(|r| r.get("class_name"))
        .is_some_and(|c| Some(c) == fresh.get("class_name"));
    match (raw, same_class) {
        (Some(r), true) => {
            let mut r = r.clone();
            if let (Some(cfg), Some(bits)) = (
                r.get_mut("config").and_then(Value::as_object_mut),
                fresh.get("config").and_then(|c| c.get("bitwidth")),
            ) {
                cfg.insert("bitwidth".into(), bits.clone());
            }
            r
        }
        _ => fresh,
    }
}

fn initializer(class: &str) -> Value {
    json!({"module": "keras.initializers", "class_name": class, "config": {}, "registered_name": null})
}

fn glorot() -> Value {
    json!({
        "module": "keras.initializers", "class_name": "GlorotUniform",
        "config": {"seed": null}, "registered_name": null,
    })
}

/// An integral value as a JSON integer (as akida_models writes
/// `Rescaling(1/255, 0)`), anything else as a float.
fn integral_or_float(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functional_entries_round_trip() {
        let text = r#"{"class_name": "Functional", "config": {"name": "m", "trainable": true,
          "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 8, 8, 1], "dtype": "float32", "sparse": false, "ragged": false, "name": "in"}, "name": "in", "inbound_nodes": []},
            {"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "use_bias": false, "activation": "linear", "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}}}, "name": "c", "inbound_nodes": [[["in", 0, 0, {}]]]},
            {"class_name": "Custom", "config": {"name": "x", "alpha": 3}, "name": "x", "inbound_nodes": [[["c", 0, 0, {}], ["in", 0, 0, {}]]]}
          ],
          "input_layers": [["in", 0, 0]], "output_layers": [["x", 0, 0]]}}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        let m = parse_model_config(&v).unwrap();
        assert_eq!(m.inputs, ["in"]);
        assert_eq!(m.outputs, ["x"]);
        assert_eq!(m.layers[2].inbound, ["c", "in"]);
        match &m.layers[1].config {
            LayerConfig::Conv2D(c) => {
                assert_eq!(
                    (c.filters, c.padding, c.use_bias),
                    (2, Padding::Same, false)
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.layers[2].class_name(), "Custom");
        let out = model_config(&m);
        let conv = &out["config"]["layers"][1];
        assert_eq!(conv["module"], "keras.layers");
        assert_eq!(conv["config"]["kernel_regularizer"]["config"]["l2"], 0.01);
        assert_eq!(conv["build_config"]["input_shape"], json!([null, 8, 8, 1]));
        assert_eq!(out["config"]["layers"][2]["config"]["alpha"], 3);
        let again = parse_model_config(&out).unwrap();
        assert_eq!(again.layers.len(), 3);
        assert_eq!(again.layers[1].config, m.layers[1].config);
        assert_eq!(again.layers[2].inbound, m.layers[2].inbound);
    }

    #[test]
    fn sequential_without_input_layer_gets_one() {
        let text = r#"{"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "Dense", "config": {"name": "d", "units": 3, "batch_input_shape": [null, 4]}},
            {"class_name": "QuantizedReLU", "config": {"name": "r", "bitwidth": 2, "max_value": 6.0}}
        ]}}"#;
        let m = parse_model_config(&serde_json::from_str(text).unwrap()).unwrap();
        let names: Vec<_> = m.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["d_input", "d", "r"]);
        assert_eq!(m.layers[2].inbound, ["d"]);
        assert_eq!(m.output_shapes().unwrap(), vec![vec![4], vec![3], vec![3]]);
        assert!(m.is_sequential());
    }

    #[test]
    fn bad_configs_name_the_layer_and_field() {
        let text = r#"{"class_name": "Functional", "config": {"name": "m", "layers": [
            {"class_name": "Conv2D", "config": {"name": "c", "kernel_size": 3}, "name": "c", "inbound_nodes": []}]}}"#;
        let err = parse_model_config(&serde_json::from_str(text).unwrap()).unwrap_err();
        assert_eq!(err, "layer `c` (Conv2D): no `filters`");
        let err =
            parse_model_config(&json!({"class_name": "Subclassed", "config": {"layers": []}}))
                .unwrap_err();
        assert!(err.contains("Subclassed"), "{err}");
        let err = parse_model_config(&json!({"config": {}})).unwrap_err();
        assert!(err.contains("class_name"), "{err}");
    }

    #[test]
    fn quantizers_are_numbered_and_raw_ones_kept() {
        let q = LayerConfig::QuantizedDense {
            dense: DenseConfig::new(3),
            quantizer: Quantizer::max_per_axis(4),
        };
        let mut m = Model::new("q");
        m.layers.push(Layer::new(
            "in",
            LayerConfig::InputLayer {
                batch_input_shape: vec![None, Some(5)],
                dtype: "float32".into(),
            },
            vec![],
        ));
        m.layers.push(Layer::new("a", q.clone(), vec!["in".into()]));
        m.layers.push(Layer::new("b", q, vec!["a".into()]));
        let out = model_config(&m);
        let layers = &out["config"]["layers"];
        assert_eq!(layers[1]["module"], "cnn2snn.quantization_layers");
        assert_eq!(layers[1]["registered_name"], "QuantizedDense");
        assert_eq!(
            layers[1]["config"]["quantizer"]["config"]["name"],
            "max_per_axis_quantizer"
        );
        assert_eq!(
            layers[2]["config"]["quantizer"]["config"]["name"],
            "max_per_axis_quantizer_1"
        );
        assert_eq!(layers[2]["config"]["quantizer"]["config"]["bitwidth"], 4);
        let raw = json!({"module": "cnn2snn.quantization_ops", "class_name": "MaxPerAxisQuantizer",
            "config": {"name": "mine", "bitwidth": 2}, "registered_name": "MaxPerAxisQuantizer"});
        let merged = merge_quantizer(Some(&raw), layers[2]["config"]["quantizer"].clone());
        assert_eq!(merged["config"]["name"], "mine");
        assert_eq!(merged["config"]["bitwidth"], 4);
    }
}
