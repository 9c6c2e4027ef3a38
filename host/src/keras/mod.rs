//! Keras models as the Akida 1.0 flow sees them: an ordered graph of layers,
//! each with a typed config ([`LayerConfig`]), its inbound layers and its
//! float32 weights in Keras order; read from and written to tf.keras 2.x
//! `.h5` files ([`h5`], whose `model_config` JSON is derived with serde in
//! [`json`] and [`config`]), printed like `model.summary()` ([`summary`])
//! and built with akida_models' layer blocks ([`blocks`]).
//!
//! The graph keeps inbound layer names rather than assuming a chain, so that
//! non-serial models read from a file can be represented and rejected later
//! with a clear message.

pub mod blocks;
pub mod builder;
pub mod config;
pub mod h5;
pub mod init;
pub mod json;
pub mod layers;
pub mod summary;

use std::collections::HashMap;

pub use builder::{GraphBuilder, Node};
pub use config::FieldError;
pub use h5::{read_model, write_model, H5Error};
pub use json::ConfigError;
pub use layers::{
    padding_name, window_len, BatchNormConfig, Conv2DConfig, DenseConfig, DepthwiseConv2DConfig,
    LayerConfig, Padding, Pool2DConfig, Quantizer, QuantizerKind, ReluConfig,
    SeparableConv2DConfig, Shape, WeightRole, WeightSpec,
};

/// One float32 weight tensor, named as Keras stores it (`conv_0/kernel:0`).
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    /// C-order values; `values.len()` is the product of `shape`.
    pub values: Vec<f32>,
}

impl Weight {
    /// A weight named `<layer>/<role>:0` (the Keras name).
    pub fn new(layer: &str, role: WeightRole, shape: Vec<usize>, values: Vec<f32>) -> Weight {
        Weight {
            name: format!("{layer}/{}:0", role.keras_name()),
            shape,
            values,
        }
    }

    /// The role this weight plays, from its name.
    pub fn role(&self) -> Option<WeightRole> {
        WeightRole::from_weight_name(&self.name)
    }

    /// Number of values (product of the shape).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The raw Keras `config` object of a layer read from a file, with the class
/// it belongs to; written back (with the modelled fields updated) as long as
/// the layer keeps that class.
#[derive(Clone, Debug, PartialEq)]
pub struct RawConfig {
    pub class_name: String,
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// One layer of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: String,
    pub config: LayerConfig,
    /// Names of the layers feeding this one (empty for an `InputLayer`).
    pub inbound: Vec<String>,
    /// Weights in Keras order (kernel before bias; BN gamma, beta, mean, var).
    pub weights: Vec<Weight>,
    /// The config as read from a file, if any (preserves unmodelled fields).
    pub raw: Option<RawConfig>,
}

impl Layer {
    /// A layer without weights or raw config.
    pub fn new(name: impl Into<String>, config: LayerConfig, inbound: Vec<String>) -> Layer {
        Layer {
            name: name.into(),
            config,
            inbound,
            weights: Vec::new(),
            raw: None,
        }
    }

    /// The Python class name of the layer.
    pub fn class_name(&self) -> &str {
        self.config.class_name()
    }

    /// The weight playing `role`, if the layer has one.
    pub fn weight(&self, role: WeightRole) -> Option<&Weight> {
        self.weights.iter().find(|w| w.role() == Some(role))
    }

    /// Mutable access to the weight playing `role`.
    pub fn weight_mut(&mut self, role: WeightRole) -> Option<&mut Weight> {
        self.weights.iter_mut().find(|w| w.role() == Some(role))
    }

    /// `kernel` (Conv2D, Dense and their quantized forms).
    pub fn kernel(&self) -> Option<&Weight> {
        self.weight(WeightRole::Kernel)
    }

    /// `bias`, when the layer uses one.
    pub fn bias(&self) -> Option<&Weight> {
        self.weight(WeightRole::Bias)
    }

    /// `depthwise_kernel` (separable and depthwise convolutions).
    pub fn depthwise_kernel(&self) -> Option<&Weight> {
        self.weight(WeightRole::DepthwiseKernel)
    }

    /// `pointwise_kernel` (separable convolutions).
    pub fn pointwise_kernel(&self) -> Option<&Weight> {
        self.weight(WeightRole::PointwiseKernel)
    }

    /// Batch-norm `gamma`, `beta`, `moving_mean`, `moving_variance`.
    pub fn batch_norm_weights(&self) -> Option<[&Weight; 4]> {
        Some([
            self.weight(WeightRole::Gamma)?,
            self.weight(WeightRole::Beta)?,
            self.weight(WeightRole::MovingMean)?,
            self.weight(WeightRole::MovingVariance)?,
        ])
    }

    /// Parameter counts of this layer's weights.
    pub fn param_count(&self) -> ParamCount {
        let mut count = ParamCount::default();
        for w in &self.weights {
            if w.role().is_none_or(|r| r.trainable()) {
                count.trainable += w.len();
            } else {
                count.non_trainable += w.len();
            }
        }
        count
    }
}

/// Trainable and non-trainable parameter counts (Keras's summary lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParamCount {
    pub trainable: usize,
    pub non_trainable: usize,
}

impl ParamCount {
    pub fn total(&self) -> usize {
        self.trainable + self.non_trainable
    }
}

impl std::ops::Add for ParamCount {
    type Output = ParamCount;
    fn add(self, o: ParamCount) -> ParamCount {
        ParamCount {
            trainable: self.trainable + o.trainable,
            non_trainable: self.non_trainable + o.non_trainable,
        }
    }
}

/// Why a graph is not well formed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("two layers are named `{0}`")]
    DuplicateName(String),
    #[error("layer `{layer}` takes its input from `{inbound}`, which is not an earlier layer")]
    UnknownInbound { layer: String, inbound: String },
    #[error("model {what} names layer `{name}`, which does not exist")]
    UnknownEndpoint { what: &'static str, name: String },
    #[error("layer `{layer}`: {message}")]
    Shape { layer: String, message: String },
    #[error("layer `{layer}` ({class}) should hold {expected} weights, holds {found}")]
    WeightCount {
        layer: String,
        class: String,
        expected: usize,
        found: usize,
    },
    #[error("layer `{layer}`: weight `{weight}` has shape {found:?}, expected {expected:?}")]
    WeightShape {
        layer: String,
        weight: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("layer `{layer}`: weight `{weight}` should be the {expected}")]
    WeightRole {
        layer: String,
        weight: String,
        expected: &'static str,
    },
    #[error("layer `{layer}` ({class}): {what} is not supported (only {supported})")]
    Unsupported {
        layer: String,
        class: String,
        what: String,
        supported: &'static str,
    },
    #[error("layer `{layer}`: weight `{weight}` has {found} values for shape {shape:?}")]
    WeightLength {
        layer: String,
        weight: String,
        shape: Vec<usize>,
        found: usize,
    },
}

/// A Keras model: a name and its layers in topological order.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
    pub layers: Vec<Layer>,
    /// Names of the input layers (`input_layers` of the Keras config).
    pub inputs: Vec<String>,
    /// Names of the output layers (`output_layers` of the Keras config).
    pub outputs: Vec<String>,
}

impl Model {
    /// An empty model.
    pub fn new(name: impl Into<String>) -> Model {
        Model {
            name: name.into(),
            layers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Mutable access to the layer called `name`.
    pub fn layer_mut(&mut self, name: &str) -> Option<&mut Layer> {
        self.layers.iter_mut().find(|l| l.name == name)
    }

    /// Whether the model is a plain chain: one input, one output, and every
    /// layer fed by exactly the layer before it (what the Akida 1.0 converter
    /// accepts).
    pub fn is_sequential(&self) -> bool {
        self.inputs.len() == 1
            && self.outputs.len() == 1
            && self.outputs[0] == self.layers.last().map_or("", |l| l.name.as_str())
            && self.layers.iter().enumerate().all(|(i, l)| match i {
                0 => l.inbound.is_empty(),
                _ => l.inbound.len() == 1 && l.inbound[0] == self.layers[i - 1].name,
            })
    }

    /// Parameter counts of the whole model.
    pub fn param_count(&self) -> ParamCount {
        self.layers
            .iter()
            .map(Layer::param_count)
            .fold(ParamCount::default(), |a, b| a + b)
    }

    /// Output shape of every layer, in layer order; the first layer whose
    /// shape cannot be inferred is an error.
    pub fn output_shapes(&self) -> Result<Vec<Shape>, GraphError> {
        self.shapes_or_errors().into_iter().collect()
    }

    /// Output shape of every layer where it can be inferred (a layer after an
    /// unknown class has none), without failing: what readers and the summary
    /// use.
    pub fn known_output_shapes(&self) -> Vec<Option<Shape>> {
        self.shapes_or_errors()
            .into_iter()
            .map(Result::ok)
            .collect()
    }

    /// The input shapes of each layer (one per inbound layer), where known.
    pub fn known_input_shapes(&self) -> Vec<Option<Vec<Shape>>> {
        let outs = self.known_output_shapes();
        let index: HashMap<&str, usize> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.as_str(), i))
            .collect();
        self.layers
            .iter()
            .map(|l| {
                l.inbound
                    .iter()
                    .map(|n| index.get(n.as_str()).and_then(|&i| outs[i].clone()))
                    .collect()
            })
            .collect()
    }

    fn shapes_or_errors(&self) -> Vec<Result<Shape, GraphError>> {
        let mut by_name: HashMap<&str, Result<Shape, GraphError>> = HashMap::new();
        let mut out = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let result = self.layer_shape(layer, &by_name);
            by_name.insert(&layer.name, result.clone());
            out.push(result);
        }
        out
    }

    fn layer_shape(
        &self,
        layer: &Layer,
        known: &HashMap<&str, Result<Shape, GraphError>>,
    ) -> Result<Shape, GraphError> {
        let mut inputs = Vec::with_capacity(layer.inbound.len());
        for name in &layer.inbound {
            match known.get(name.as_str()) {
                Some(Ok(s)) => inputs.push(s.clone()),
                Some(Err(e)) => return Err(e.clone()),
                None => {
                    return Err(GraphError::UnknownInbound {
                        layer: layer.name.clone(),
                        inbound: name.clone(),
                    })
                }
            }
        }
        layer.config.output_shape(&inputs).map_err(|message| {
            // A channels-first input read as channels-last may not fit.
            unsupported_layout(layer)
                .err()
                .unwrap_or_else(|| GraphError::Shape {
                    layer: layer.name.clone(),
                    message,
                })
        })
    }

    /// Checks the graph: unique names, inbound layers defined earlier,
    /// inputs/outputs defined, and, where the input shape of a layer is known,
    /// that its weights have the roles and shapes its config calls for.
    pub fn validate(&self) -> Result<(), GraphError> {
        let mut seen = std::collections::HashSet::new();
        for layer in &self.layers {
            for inbound in &layer.inbound {
                if !seen.contains(inbound.as_str()) {
                    return Err(GraphError::UnknownInbound {
                        layer: layer.name.clone(),
                        inbound: inbound.clone(),
                    });
                }
            }
            if !seen.insert(layer.name.as_str()) {
                return Err(GraphError::DuplicateName(layer.name.clone()));
            }
        }
        for (what, names) in [("input", &self.inputs), ("output", &self.outputs)] {
            if let Some(name) = names.iter().find(|n| !seen.contains(n.as_str())) {
                return Err(GraphError::UnknownEndpoint {
                    what,
                    name: name.clone(),
                });
            }
        }
        let inputs = self.known_input_shapes();
        for (layer, input) in self.layers.iter().zip(inputs) {
            check_weight_lengths(layer)?;
            match input.as_deref() {
                Some([one]) => check_weights(layer, one)?,
                _ => continue,
            }
        }
        Ok(())
    }
}

/// Every weight holds as many values as its shape says.
fn check_weight_lengths(layer: &Layer) -> Result<(), GraphError> {
    for w in &layer.weights {
        if w.values.len() != w.len() {
            return Err(GraphError::WeightLength {
                layer: layer.name.clone(),
                weight: w.name.clone(),
                shape: w.shape.clone(),
                found: w.values.len(),
            });
        }
    }
    Ok(())
}

/// Config values that change the weight shapes in ways this crate does not
/// model: a grouped convolution, channels-first data. Checked when the
/// weights do not have the shapes a channels-last, ungrouped layer calls
/// for, so that such a file is refused as unsupported, not as a wrong shape.
fn unsupported_layout(layer: &Layer) -> Result<(), GraphError> {
    let Some(raw) = &layer.raw else {
        return Ok(());
    };
    let unsupported = |what: String, supported| GraphError::Unsupported {
        layer: layer.name.clone(),
        class: layer.class_name().to_owned(),
        what,
        supported,
    };
    if let Some(groups) = raw.config.get("groups") {
        if groups.as_u64() != Some(1) {
            return Err(unsupported(
                format!("groups={groups} (a grouped convolution)"),
                "groups=1",
            ));
        }
    }
    if let Some(format) = raw.config.get("data_format") {
        if !format.is_null() && format.as_str() != Some("channels_last") {
            return Err(unsupported(
                format!("data_format {format}"),
                "channels_last",
            ));
        }
    }
    Ok(())
}

/// The layer's weights match the roles and shapes its config calls for.
fn check_weights(layer: &Layer, input: &[usize]) -> Result<(), GraphError> {
    let shape_err = |message| GraphError::Shape {
        layer: layer.name.clone(),
        message,
    };
    let Some(specs) = layer.config.weight_specs(input).map_err(shape_err)? else {
        return Ok(());
    };
    if specs.len() != layer.weights.len() {
        return Err(GraphError::WeightCount {
            layer: layer.name.clone(),
            class: layer.class_name().to_owned(),
            expected: specs.len(),
            found: layer.weights.len(),
        });
    }
    for (spec, w) in specs.iter().zip(&layer.weights) {
        if w.role() != Some(spec.role) {
            return Err(GraphError::WeightRole {
                layer: layer.name.clone(),
                weight: w.name.clone(),
                expected: spec.role.keras_name(),
            });
        }
        if w.shape != spec.shape {
            unsupported_layout(layer)?;
            return Err(GraphError::WeightShape {
                layer: layer.name.clone(),
                weight: w.name.clone(),
                expected: spec.shape.clone(),
                found: w.shape.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Model {
        let mut b = GraphBuilder::new(7);
        let x = b.input(&[8, 8, 3], None).unwrap();
        let x = b
            .add(
                LayerConfig::Conv2D(Conv2DConfig::new(4, [3, 3])),
                Some("conv"),
                &[&x],
            )
            .unwrap();
        let x = b.add(LayerConfig::Flatten, None, &[&x]).unwrap();
        let x = b
            .add(
                LayerConfig::Dense(DenseConfig::new(2)),
                Some("dense"),
                &[&x],
            )
            .unwrap();
        b.build("chain", &[&x]).unwrap()
    }

    #[test]
    fn accessors_find_weights_by_role() {
        let m = chain();
        let conv = m.layer("conv").unwrap();
        assert_eq!(conv.kernel().unwrap().shape, vec![3, 3, 3, 4]);
        assert_eq!(conv.kernel().unwrap().name, "conv/kernel:0");
        assert_eq!(conv.bias().unwrap().values, vec![0.0; 4]);
        assert!(conv.depthwise_kernel().is_none());
        assert_eq!(
            m.layer("dense").unwrap().kernel().unwrap().shape,
            vec![144, 2]
        );
        assert_eq!(m.param_count().total(), 3 * 3 * 3 * 4 + 4 + 144 * 2 + 2);
        assert!(m.is_sequential());
        assert_eq!(
            m.output_shapes().unwrap(),
            vec![vec![8, 8, 3], vec![6, 6, 4], vec![144], vec![2]]
        );
        m.validate().unwrap();
    }

    #[test]
    fn validate_names_the_bad_weight() {
        let mut m = chain();
        m.layer_mut("dense").unwrap().weights[0].shape = vec![2, 144];
        let err = m.validate().unwrap_err();
        assert_eq!(
            err,
            GraphError::WeightShape {
                layer: "dense".into(),
                weight: "dense/kernel:0".into(),
                expected: vec![144, 2],
                found: vec![2, 144],
            }
        );
        let mut m = chain();
        m.layer_mut("conv").unwrap().weights.pop();
        assert!(matches!(m.validate(), Err(GraphError::WeightCount { .. })));
        let mut m = chain();
        m.layers[3].inbound = vec!["nowhere".into()];
        assert!(matches!(
            m.validate(),
            Err(GraphError::UnknownInbound { .. })
        ));
        assert!(!m.is_sequential());
    }

    #[test]
    fn unknown_layers_stop_shape_inference_only_downstream() {
        let mut m = chain();
        m.layers[2].config = LayerConfig::Unknown {
            class_name: "Custom".into(),
            module: None,
            registered_name: None,
            config: serde_json::json!({}),
        };
        let shapes = m.known_output_shapes();
        assert_eq!(shapes[1], Some(vec![6, 6, 4]));
        assert_eq!(shapes[2], None);
        assert_eq!(shapes[3], None);
        assert!(m.output_shapes().is_err());
        m.validate().unwrap();
    }
}
