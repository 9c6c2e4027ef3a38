//! Building models the way Keras's functional API does: each call adds a
//! layer fed by earlier "tensors" ([`Node`]s), infers its output shape,
//! creates its weights with Keras's initialisers and names it as Keras would
//! (`conv2d`, `conv2d_1`, ..., `input_1`) unless a name is given.

use std::collections::{HashMap, HashSet};

use super::init::{initial_values, Rng};
use super::layers::{LayerConfig, Shape};
use super::{GraphError, Layer, Model, Weight};

/// A symbolic tensor: the output of the layer `layer`, of shape `shape`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub layer: String,
    pub shape: Shape,
}

/// Accumulates layers into a [`Model`].
#[derive(Debug)]
pub struct GraphBuilder {
    layers: Vec<Layer>,
    names: HashSet<String>,
    counters: HashMap<String, usize>,
    inputs: Vec<String>,
    rng: Rng,
}

impl GraphBuilder {
    /// A builder whose kernels are drawn from `seed`.
    pub fn new(seed: u64) -> GraphBuilder {
        GraphBuilder {
            layers: Vec::new(),
            names: HashSet::new(),
            counters: HashMap::new(),
            inputs: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    /// Adds a float32 `InputLayer` of `shape` (without batch); Keras names
    /// these `input_1`, `input_2`, ...
    pub fn input(&mut self, shape: &[usize], name: Option<&str>) -> Result<Node, GraphError> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => self.numbered_name("input", 1),
        };
        self.claim(&name)?;
        let mut batch_input_shape = vec![None];
        batch_input_shape.extend(shape.iter().map(|&d| Some(d)));
        let config = LayerConfig::InputLayer {
            batch_input_shape,
            dtype: "float32".into(),
        };
        self.layers
            .push(Layer::new(name.clone(), config, Vec::new()));
        self.inputs.push(name.clone());
        Ok(Node {
            layer: name,
            shape: shape.to_vec(),
        })
    }

    /// Adds a layer fed by `inputs`, named `name` or automatically. Fails if
    /// the name is taken or the shapes do not fit the config.
    pub fn add(
        &mut self,
        mut config: LayerConfig,
        name: Option<&str>,
        inputs: &[&Node],
    ) -> Result<Node, GraphError> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => self.numbered_name(&snake_case(config.class_name()), 0),
        };
        let shapes: Vec<Shape> = inputs.iter().map(|n| n.shape.clone()).collect();
        let shape_err = |message| GraphError::Shape {
            layer: name.clone(),
            message,
        };
        if let ([input], LayerConfig::BatchNormalization(bn)) = (shapes.as_slice(), &mut config) {
            // Keras stores the resolved axis (counted with the batch axis).
            let rank = input.len() as i64 + 1;
            for a in bn.axis.iter_mut().filter(|a| **a < 0) {
                *a += rank;
            }
        }
        let out = config.output_shape(&shapes).map_err(shape_err)?;
        let specs = match shapes.as_slice() {
            [one] => config.weight_specs(one).map_err(shape_err)?,
            _ => None,
        };
        self.claim(&name)?;
        let weights = specs
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let values = initial_values(&mut self.rng, s);
                Weight::new(&name, s.role, s.shape.clone(), values)
            })
            .collect();
        let inbound = inputs.iter().map(|n| n.layer.clone()).collect();
        let mut layer = Layer::new(name.clone(), config, inbound);
        layer.weights = weights;
        self.layers.push(layer);
        Ok(Node {
            layer: name,
            shape: out,
        })
    }

    /// The model with the given outputs (inputs are every `InputLayer` added).
    pub fn build(self, name: &str, outputs: &[&Node]) -> Result<Model, GraphError> {
        let model = Model {
            name: name.to_owned(),
            layers: self.layers,
            inputs: self.inputs,
            outputs: outputs.iter().map(|n| n.layer.clone()).collect(),
        };
        model.validate()?;
        Ok(model)
    }

    fn claim(&mut self, name: &str) -> Result<(), GraphError> {
        if self.names.insert(name.to_owned()) {
            Ok(())
        } else {
            Err(GraphError::DuplicateName(name.to_owned()))
        }
    }

    /// Keras's unique-name scheme: `base`, `base_1`, `base_2`... (or from
    /// `base_1` when `first` is 1, as for inputs), skipping taken names.
    fn numbered_name(&mut self, base: &str, first: usize) -> String {
        let counter = self.counters.entry(base.to_owned()).or_insert(first);
        loop {
            let n = *counter;
            *counter += 1;
            let candidate = if n == 0 {
                base.to_owned()
            } else {
                format!("{base}_{n}")
            };
            if !self.names.contains(&candidate) {
                return candidate;
            }
        }
    }
}

/// Keras's `to_snake_case` of a class name (`MaxPooling2D` -> `max_pooling2d`,
/// `ReLU` -> `re_lu`).
pub fn snake_case(class: &str) -> String {
    let chars: Vec<char> = class.chars().collect();
    // Pass 1: "(.)([A-Z][a-z]+)" -> "\1_\2".
    let mut first = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let starts_word = i > 0
            && c.is_ascii_uppercase()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        if starts_word {
            first.push('_');
        }
        first.push(c);
    }
    // Pass 2: "([a-z])([A-Z])" -> "\1_\2", then lower case.
    let chars: Vec<char> = first.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() && chars[i - 1].is_ascii_lowercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keras::layers::{BatchNormConfig, DenseConfig};

    #[test]
    fn snake_case_matches_keras() {
        for (class, want) in [
            ("Conv2D", "conv2d"),
            ("SeparableConv2D", "separable_conv2d"),
            ("MaxPooling2D", "max_pooling2d"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
            ("BatchNormalization", "batch_normalization"),
            ("ReLU", "re_lu"),
            ("Flatten", "flatten"),
            ("QuantizedConv2D", "quantized_conv2d"),
        ] {
            assert_eq!(snake_case(class), want, "{class}");
        }
    }

    #[test]
    fn automatic_names_count_like_keras() {
        let mut b = GraphBuilder::new(0);
        let x = b.input(&[4], None).unwrap();
        assert_eq!(x.layer, "input_1");
        let a = b
            .add(LayerConfig::Dropout { rate: 0.1 }, None, &[&x])
            .unwrap();
        let c = b
            .add(LayerConfig::Dropout { rate: 0.1 }, None, &[&a])
            .unwrap();
        assert_eq!(
            (a.layer.as_str(), c.layer.as_str()),
            ("dropout", "dropout_1")
        );
        let d = b
            .add(
                LayerConfig::Dense(DenseConfig::new(3)),
                Some("dense_1"),
                &[&c],
            )
            .unwrap();
        let e = b
            .add(LayerConfig::Dense(DenseConfig::new(3)), None, &[&d])
            .unwrap();
        let f = b
            .add(LayerConfig::Dense(DenseConfig::new(3)), None, &[&e])
            .unwrap();
        assert_eq!((e.layer.as_str(), f.layer.as_str()), ("dense", "dense_2"));
        let dup = b.add(LayerConfig::Flatten, Some("dense"), &[&f]);
        assert_eq!(dup.unwrap_err(), GraphError::DuplicateName("dense".into()));
    }

    #[test]
    fn batch_norm_axis_is_resolved_and_shape_errors_name_the_layer() {
        let mut b = GraphBuilder::new(0);
        let x = b.input(&[5, 5, 2], None).unwrap();
        let y = b
            .add(
                LayerConfig::BatchNormalization(BatchNormConfig::default()),
                Some("bn"),
                &[&x],
            )
            .unwrap();
        let m = b.build("m", &[&y]).unwrap();
        match &m.layer("bn").unwrap().config {
            LayerConfig::BatchNormalization(bn) => assert_eq!(bn.axis, vec![3]),
            other => panic!("{other:?}"),
        }
        let mut b = GraphBuilder::new(0);
        let x = b.input(&[5], None).unwrap();
        let err = b
            .add(
                LayerConfig::GlobalAveragePooling2D { keepdims: false },
                Some("gap"),
                &[&x],
            )
            .unwrap_err();
        assert!(matches!(err, GraphError::Shape { ref layer, .. } if layer == "gap"));
    }
}
