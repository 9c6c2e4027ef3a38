//! The `model_config` JSON of Keras `.h5` files, derived with serde: reading
//! the dialects that tf.keras 2.x, Keras 3 and cnn2snn write (`Functional` or
//! `Sequential`, layers with or without `module` / `registered_name` /
//! `build_config`, input shapes as `batch_input_shape` or `batch_shape`), and
//! writing the tf_keras 2.19 `model.to_json()` dialect (`module`,
//! `class_name`, `config`, `registered_name`, `build_config`, `name`,
//! `inbound_nodes`).
//!
//! The per-class `config` objects are in [`super::config`]. A layer read
//! from a file keeps its raw `config` object ([`RawConfig`]); writing it back
//! starts from that object and sets only the fields this crate models, so
//! initialisers, regularisers and unknown keys survive a read-write cycle.
//! Models are always written as `Functional` (a `Sequential` file read in
//! comes back out with explicit inbound nodes; both load the same way).

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::config::{
    first_layer_batch_shape, read_config, write_config, FieldError, QuantizerNames,
};
use super::layers::{LayerConfig, Shape};
use super::{Layer, Model, RawConfig};

/// Why a `model_config` does not describe a model this crate can read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The top level is not a `Functional` or `Sequential` config (the path
    /// names the bad field).
    #[error("not a Functional or Sequential model config")]
    Model(#[source] serde_path_to_error::Error<serde_json::Error>),
    #[error("no `layers` list in the model config")]
    NoLayers,
    #[error("a {class} layer has no name")]
    NoName { class: String },
    /// A layer's `config` object is incomplete or invalid.
    #[error("layer `{layer}` ({class})")]
    Layer {
        layer: String,
        class: String,
        #[source]
        source: FieldError,
    },
    #[error("a Sequential model needs an InputLayer or a batch_input_shape")]
    NoInputShape,
}

// ------------------------------------------------------------- wire types

/// The top level: the model class and its config.
#[derive(Deserialize, Serialize)]
#[serde(tag = "class_name", content = "config")]
enum ModelConfig<C> {
    #[serde(alias = "Model")]
    Functional(GraphConfig<C>),
    Sequential(GraphConfig<C>),
}

/// The `config` of a model; `C` is a layer's `config` object (a raw map
/// when reading, the typed form when writing).
#[derive(Deserialize, Serialize)]
struct GraphConfig<C> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trainable: Option<Value>,
    #[serde(default = "Option::default")]
    layers: Option<Vec<LayerEntry<C>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_layers: Option<Endpoints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_layers: Option<Endpoints>,
}

/// One entry of `layers`, keys in tf_keras's order.
#[derive(Deserialize, Serialize)]
struct LayerEntry<C> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    class_name: String,
    config: C,
    #[serde(default)]
    registered_name: Option<String>,
    /// Written for layers whose input shape is known; not needed to read.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    build_config: Option<BuildConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default)]
    inbound_nodes: InboundNodes,
}

#[derive(Serialize)]
struct BuildConfig {
    /// With the batch axis (`null`).
    input_shape: Vec<Option<usize>>,
}

/// A reference to a layer's output: `["name", node, tensor, ...]`; only the
/// name matters here.
struct LayerRef(String);

impl<'de> Deserialize<'de> for LayerRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> Visitor<'de> for RefVisitor {
            type Value = LayerRef;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list starting with a layer name")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LayerRef, A::Error> {
                let name = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LayerRef(name))
            }
        }
        d.deserialize_seq(RefVisitor)
    }
}

/// `input_layers` / `output_layers`: `[["name", 0, 0], ...]`, or one
/// `["name", 0, 0]`; written as a list of `[name, 0, 0]`.
struct Endpoints(Vec<String>);

impl<'de> Deserialize<'de> for Endpoints {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a layer reference or a list of them")]
        enum OneOrMany {
            One(LayerRef),
            Many(Vec<LayerRef>),
        }
        Ok(Endpoints(match OneOrMany::deserialize(d)? {
            OneOrMany::One(r) => vec![r.0],
            OneOrMany::Many(refs) => refs.into_iter().map(|r| r.0).collect(),
        }))
    }
}

impl Serialize for Endpoints {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|name| (name, 0, 0)))
    }
}

/// `inbound_nodes`: the layers feeding a layer's first node, from tf.keras
/// (`[[["name", 0, 0, {}], ...]]`) or Keras 3
/// (`[{"args": [{"config": {"keras_history": ["name", 0, 0]}}], ...}]`);
/// written in the tf.keras form.
#[derive(Default)]
struct InboundNodes(Vec<String>);

impl<'de> Deserialize<'de> for InboundNodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a tf.keras or Keras 3 inbound node")]
        enum Node {
            Tensors(Vec<LayerRef>),
            Call { args: Value },
        }
        let nodes = Vec::<Node>::deserialize(d)?;
        Ok(InboundNodes(match nodes.into_iter().next() {
            None => Vec::new(),
            Some(Node::Tensors(refs)) => refs.into_iter().map(|r| r.0).collect(),
            Some(Node::Call { args }) => {
                let mut names = Vec::new();
                collect_keras_history(&args, &mut names);
                names
            }
        }))
    }
}

impl Serialize for InboundNodes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut nodes = s.serialize_seq(Some(usize::from(!self.0.is_empty())))?;
        if !self.0.is_empty() {
            let tensors: Vec<_> = self.0.iter().map(|n| (n, 0, 0, Map::new())).collect();
            nodes.serialize_element(&tensors)?;
        }
        nodes.end()
    }
}

/// The layers named by the `keras_history` of Keras 3 call arguments (free
/// form: tensors may be nested in lists and dicts).
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

// ---------------------------------------------------------------- reading

/// Parses a `model_config` (the graph without weights). Errors name the
/// layer and field.
pub fn parse_model_config(v: &Value) -> Result<Model, ConfigError> {
    let top: ModelConfig<Map<String, Value>> =
        serde_path_to_error::deserialize(v).map_err(ConfigError::Model)?;
    let (graph, sequential) = match top {
        ModelConfig::Functional(g) => (g, false),
        ModelConfig::Sequential(g) => (g, true),
    };
    let entries = graph.layers.ok_or(ConfigError::NoLayers)?;
    let mut model = Model::new(graph.name.as_deref().unwrap_or("model"));
    if !sequential {
        for entry in entries {
            model.layers.push(read_entry(entry)?);
        }
        model.inputs = graph.input_layers.map(|e| e.0).unwrap_or_default();
        model.outputs = graph.output_layers.map(|e| e.0).unwrap_or_default();
        return Ok(model);
    }
    for entry in entries {
        let mut layer = read_entry(entry)?;
        if model.layers.is_empty() && !matches!(layer.config, LayerConfig::InputLayer { .. }) {
            // Older files give the first layer a batch_input_shape instead of
            // an InputLayer; Keras then creates `<first>_input`.
            model.layers.push(implicit_input(&layer)?);
        }
        layer.inbound = model
            .layers
            .last()
            .map(|l| vec![l.name.clone()])
            .unwrap_or_default();
        model.layers.push(layer);
    }
    let name_at = |l: Option<&Layer>| l.map(|l| vec![l.name.clone()]).unwrap_or_default();
    model.inputs = name_at(model.layers.first());
    model.outputs = name_at(model.layers.last());
    Ok(model)
}

/// One entry of `layers`: class, typed config, name and inbound layers,
/// keeping the raw config.
fn read_entry(entry: LayerEntry<Map<String, Value>>) -> Result<Layer, ConfigError> {
    let LayerEntry {
        module,
        class_name,
        config,
        registered_name,
        name,
        inbound_nodes,
        ..
    } = entry;
    let name = name
        .or_else(|| {
            config
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .ok_or_else(|| ConfigError::NoName {
            class: class_name.clone(),
        })?;
    let typed = read_config(
        &class_name,
        module.as_deref(),
        registered_name.as_deref(),
        &config,
    )
    .map_err(|source| ConfigError::Layer {
        layer: name.clone(),
        class: class_name.clone(),
        source,
    })?;
    let mut layer = Layer::new(name, typed, inbound_nodes.0);
    layer.raw = Some(RawConfig { class_name, config });
    Ok(layer)
}

/// The `<first>_input` InputLayer Keras creates for a Sequential model whose
/// first layer carries the batch shape.
fn implicit_input(first: &Layer) -> Result<Layer, ConfigError> {
    let raw = first.raw.as_ref().map(|r| &r.config);
    let shape = raw
        .map(first_layer_batch_shape)
        .transpose()
        .map_err(|source| ConfigError::Layer {
            layer: first.name.clone(),
            class: first.class_name().to_owned(),
            source,
        })?
        .flatten()
        .ok_or(ConfigError::NoInputShape)?;
    let config = LayerConfig::InputLayer {
        batch_input_shape: shape,
        dtype: "float32".into(),
    };
    Ok(Layer::new(
        format!("{}_input", first.name),
        config,
        Vec::new(),
    ))
}

// ---------------------------------------------------------------- writing

/// The `model_config` of `model` in the tf_keras 2.19 `to_json` dialect,
/// ready to serialize.
pub fn model_config(model: &Model) -> impl Serialize {
    let inputs = model.known_input_shapes();
    let mut quantizers = QuantizerNames::default();
    let layers = model
        .layers
        .iter()
        .zip(inputs)
        .map(|(layer, input)| {
            let (module, registered_name) = module_of(&layer.config);
            let is_input = matches!(layer.config, LayerConfig::InputLayer { .. });
            let build_config = match (is_input, input.as_deref()) {
                (false, Some([shape])) => Some(build_config(shape)),
                _ => None,
            };
            LayerEntry {
                module,
                class_name: layer.class_name().to_owned(),
                config: write_config(layer, &mut quantizers),
                registered_name,
                build_config,
                name: Some(layer.name.clone()),
                inbound_nodes: InboundNodes(layer.inbound.clone()),
            }
        })
        .collect();
    ModelConfig::Functional(GraphConfig {
        name: Some(model.name.clone()),
        trainable: Some(Value::Bool(true)),
        layers: Some(layers),
        input_layers: Some(Endpoints(model.inputs.clone())),
        output_layers: Some(Endpoints(model.outputs.clone())),
    })
}

fn build_config(input: &Shape) -> BuildConfig {
    let mut input_shape = vec![None];
    input_shape.extend(input.iter().map(|&d| Some(d)));
    BuildConfig { input_shape }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keras::{DenseConfig, Padding, Quantizer};

    /// What `model_config` writes, as a JSON value.
    fn written(model: &Model) -> Value {
        serde_json::to_value(model_config(model)).unwrap()
    }

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
        let out = written(&m);
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
        assert_eq!(crate::cli::report(&err), "layer `c` (Conv2D): no `filters`");
        let err =
            parse_model_config(&json!({"class_name": "Subclassed", "config": {"layers": []}}))
                .unwrap_err();
        let err = crate::cli::report(&err);
        assert!(err.contains("Subclassed"), "{err}");
        let err = parse_model_config(&json!({"config": {}})).unwrap_err();
        let err = crate::cli::report(&err);
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
        let out = written(&m);
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
        // A quantizer read with the layer keeps its name (and unknown keys)
        // when the class is the same; only the bit width follows the model.
        let raw = json!({"name": "b", "units": 3, "quantizer": {
            "module": "cnn2snn.quantization_ops", "class_name": "MaxPerAxisQuantizer",
            "config": {"name": "mine", "bitwidth": 2, "extra": 1},
            "registered_name": "MaxPerAxisQuantizer"}});
        m.layers[2].raw = Some(RawConfig {
            class_name: "QuantizedDense".into(),
            config: raw.as_object().unwrap().clone(),
        });
        let out = written(&m);
        let merged = &out["config"]["layers"][2]["config"]["quantizer"];
        assert_eq!(merged["config"]["name"], "mine");
        assert_eq!(merged["config"]["bitwidth"], 4);
        assert_eq!(merged["config"]["extra"], 1);
    }

    /// A one-layer Functional model around `conv`, a Conv2D entry's config.
    fn conv_model(conv: Value) -> Value {
        json!({"class_name": "Functional", "config": {"name": "m", "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 8, 8, 1], "dtype": "float32", "name": "in"}, "name": "in", "inbound_nodes": []},
            {"class_name": "Conv2D", "config": conv, "name": "conv_0", "inbound_nodes": [[["in", 0, 0, {}]]]}
        ], "input_layers": [["in", 0, 0]], "output_layers": [["conv_0", 0, 0]]}})
    }

    #[test]
    fn unknown_fields_survive_a_read_write_round_trip() {
        // Unmodelled fields keep their values (null stays null, an absent
        // `groups` stays absent), unknown keys come back after the declared
        // ones, and unknown classes and quantizer keys are kept whole.
        let conv = json!({
            "name": "conv_0", "trainable": false, "dtype": "float32", "filters": 4,
            "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
            "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear",
            "use_bias": true,
            "kernel_initializer": {"class_name": "HeNormal", "config": {"seed": 7}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
            "bias_regularizer": null, "activity_regularizer": null,
            "kernel_constraint": null, "bias_constraint": null,
            "my_option": {"a": [1, 2]}, "another": null
        });
        let mut v = conv_model(conv.clone());
        let layers = v["config"]["layers"].as_array_mut().unwrap();
        layers.push(json!({"module": "my.layers", "class_name": "Custom",
            "config": {"name": "x", "alpha": 3, "nested": {"k": [null]}},
            "registered_name": "my>Custom", "name": "x", "inbound_nodes": [[["conv_0", 0, 0, {}]]]}));
        layers.push(json!({"class_name": "QuantizedReLU",
            "config": {"name": "q", "bitwidth": 4, "max_value": 6.0, "my_flag": true},
            "name": "q", "inbound_nodes": [[["x", 0, 0, {}]]]}));
        let m = parse_model_config(&v).unwrap();
        let out = written(&m);
        let layers = &out["config"]["layers"];
        assert_eq!(layers[1]["config"], conv);
        let keys: Vec<&str> = layers[1]["config"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.last(), Some(&"another"));
        assert_eq!(keys[keys.len() - 2], "my_option");
        assert!(!keys.contains(&"groups"));
        assert_eq!(layers[2]["module"], "my.layers");
        assert_eq!(layers[2]["registered_name"], "my>Custom");
        assert_eq!(
            layers[2]["config"],
            json!({"name": "x", "alpha": 3, "nested": {"k": [null]}})
        );
        assert_eq!(layers[3]["config"]["my_flag"], true);
        assert_eq!(parse_model_config(&out).unwrap(), m);
    }

    #[test]
    fn out_of_range_integers_name_the_layer_and_field() {
        let base = json!({"name": "conv_0", "filters": 4, "kernel_size": 3});
        let with = |key: &str, value: Value| {
            let mut conv = base.clone();
            conv[key] = value;
            let err = parse_model_config(&conv_model(conv)).unwrap_err();
            assert!(
                matches!(
                    &err,
                    ConfigError::Layer { layer, source: FieldError::Invalid(_), .. }
                        if layer == "conv_0"
                ),
                "{err:?}"
            );
            crate::cli::report(&err)
        };
        let err = with("strides", json!(4294967298u64));
        assert!(
            err.starts_with("layer `conv_0` (Conv2D): invalid config: strides: invalid value: integer `4294967298`"),
            "{err}"
        );
        let err = with("strides", json!([1, 4294967296u64]));
        assert!(
            err.starts_with("layer `conv_0` (Conv2D): invalid config: strides[1]: invalid value: integer `4294967296`"),
            "{err}"
        );
        let err = with("filters", json!(-8));
        assert!(
            err.starts_with(
                "layer `conv_0` (Conv2D): invalid config: filters: invalid value: integer `-8`"
            ),
            "{err}"
        );
        let err = with("kernel_size", json!([-3, 3]));
        assert!(
            err.contains("kernel_size[0]: invalid value: integer `-3`"),
            "{err}"
        );
        let err = with("use_bias", json!("yes"));
        assert!(err.contains("use_bias: invalid type: string"), "{err}");
        let err = with("padding", json!("causal"));
        assert!(
            err.contains("padding: invalid value: string \"causal\""),
            "{err}"
        );
        // The largest u32 is a valid size.
        let mut conv = base.clone();
        conv["filters"] = json!(u32::MAX);
        let m = parse_model_config(&conv_model(conv)).unwrap();
        match &m.layers[1].config {
            LayerConfig::Conv2D(c) => assert_eq!(c.filters, u32::MAX as usize),
            other => panic!("{other:?}"),
        }
        // Nested fields are named by their path.
        let text = r#"{"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 4], "name": "in"}},
            {"class_name": "QuantizedDense", "config": {"name": "d", "units": 3, "quantizer":
                {"class_name": "MaxPerAxisQuantizer", "config": {"bitwidth": 4294967300}}}}]}}"#;
        let err = parse_model_config(&serde_json::from_str(text).unwrap()).unwrap_err();
        let err = crate::cli::report(&err);
        assert!(
            err.starts_with("layer `d` (QuantizedDense): invalid config: quantizer.config.bitwidth: invalid value: integer `4294967300`"),
            "{err}"
        );
        let text = r#"{"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [null, -4], "name": "in"}}]}}"#;
        let err = parse_model_config(&serde_json::from_str(text).unwrap()).unwrap_err();
        let err = crate::cli::report(&err);
        assert!(
            err.starts_with("layer `in` (InputLayer): invalid config: batch_input_shape[1]"),
            "{err}"
        );
    }

    #[test]
    fn both_input_shape_dialects_read() {
        // tf.keras 2.x: batch_input_shape, no module / registered_name /
        // build_config, list inbound nodes.
        let tf_keras = json!({"class_name": "Functional", "config": {"name": "m", "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 6, 6, 2],
                "dtype": "uint8", "sparse": false, "ragged": false, "name": "input"},
             "name": "input", "inbound_nodes": []},
            {"class_name": "Conv2D", "config": {"name": "conv", "filters": 3, "kernel_size": [3, 3],
                "padding": "SAME"}, "name": "conv", "inbound_nodes": [[["input", 0, 0, {}]]]}
        ], "input_layers": [["input", 0, 0]], "output_layers": [["conv", 0, 0]]}});
        // Keras 3: batch_shape, a dtype policy, module / registered_name /
        // build_config, call-style inbound nodes, single endpoints.
        let keras3 = json!({"module": "keras", "class_name": "Functional", "config": {"name": "m",
            "trainable": true, "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [null, 6, 6, 2],
                "dtype": "uint8", "sparse": false, "name": "input"},
             "registered_name": null, "name": "input", "inbound_nodes": []},
            {"module": "keras.layers", "class_name": "Conv2D", "config": {"name": "conv",
                "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
                "filters": 3, "kernel_size": [3, 3], "padding": "same"},
             "registered_name": null, "build_config": {"input_shape": [null, 6, 6, 2]}, "name": "conv",
             "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, 6, 6, 2],
                "dtype": "uint8", "keras_history": ["input", 0, 0]}}], "kwargs": {}}]}
        ], "input_layers": ["input", 0, 0], "output_layers": ["conv", 0, 0]}});
        let a = parse_model_config(&tf_keras).unwrap();
        let b = parse_model_config(&keras3).unwrap();
        for m in [&a, &b] {
            assert_eq!(
                m.layers[0].config,
                LayerConfig::InputLayer {
                    batch_input_shape: vec![None, Some(6), Some(6), Some(2)],
                    dtype: "uint8".into(),
                }
            );
            assert_eq!(m.layers[1].inbound, ["input"]);
            assert_eq!(
                (&m.inputs[..], &m.outputs[..]),
                (&["input".to_owned()][..], &["conv".to_owned()][..])
            );
            assert_eq!(m.output_shapes().unwrap()[1], vec![6, 6, 3]);
        }
        let strip = |m: &Model| {
            m.layers
                .iter()
                .map(|l| (l.name.clone(), l.config.clone(), l.inbound.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&a), strip(&b));
        // Written back in the tf_keras dialect: batch_input_shape, a dtype
        // name, lower-case padding.
        let out = written(&b);
        let input = &out["config"]["layers"][0]["config"];
        assert_eq!(input["batch_input_shape"], json!([null, 6, 6, 2]));
        assert!(input.get("batch_shape").is_none());
        assert_eq!(input["dtype"], "uint8");
        assert_eq!(
            written(&a)["config"]["layers"][1]["config"]["padding"],
            "same"
        );
        // A Sequential file's first layer may carry the shape either way.
        for key in ["batch_input_shape", "batch_shape"] {
            let v = json!({"class_name": "Sequential", "config": {"name": "s", "layers": [
                {"class_name": "Dense", "config": {"name": "d", "units": 3, key: [null, 4]}}]}});
            let m = parse_model_config(&v).unwrap();
            assert_eq!(m.layers[0].name, "d_input");
            assert_eq!(m.output_shapes().unwrap(), vec![vec![4], vec![3]]);
        }
        let v = json!({"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "Dense", "config": {"name": "d", "units": 3}}]}});
        assert!(matches!(
            parse_model_config(&v),
            Err(ConfigError::NoInputShape)
        ));
    }
}
