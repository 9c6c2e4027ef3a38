//! A Keras model as the Akida 1.0 flow handles it: one input followed by a
//! plain chain of layers (cnn2snn's `sequentialize`), and the rewrites
//! cnn2snn applies to such a chain before quantizing or converting.

use crate::keras::{self, Layer, LayerConfig, Shape, WeightRole};

use super::Cnn2snnError;

/// An input layer and the layers after it, each fed by the one before.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub name: String,
    pub input: Layer,
    pub layers: Vec<Layer>,
}

impl Chain {
    /// The chain of a serial model; anything else (several inputs or
    /// outputs, a branch, a layer fed by several layers) is refused, naming
    /// the first layer that breaks the chain.
    pub fn from_model(model: &keras::Model) -> Result<Chain, Cnn2snnError> {
        let not_serial = |layer: &str, why: &str| Cnn2snnError::NotSerial {
            layer: layer.to_owned(),
            why: why.to_owned(),
        };
        if model.inputs.len() != 1 {
            return Err(not_serial(
                &model.name,
                "the model must have exactly one input",
            ));
        }
        if model.outputs.len() != 1 {
            return Err(not_serial(
                &model.name,
                "the model must have exactly one output",
            ));
        }
        let Some((input, rest)) = model.layers.split_first() else {
            return Err(not_serial(&model.name, "the model has no layers"));
        };
        if !matches!(input.config, LayerConfig::InputLayer { .. }) {
            return Err(not_serial(
                &input.name,
                "the first layer must be the InputLayer",
            ));
        }
        let mut previous = &input.name;
        for layer in rest {
            if layer.inbound.len() != 1 || &layer.inbound[0] != previous {
                return Err(not_serial(
                    &layer.name,
                    "each layer must be fed by exactly the layer before it (a serial feed-forward graph)",
                ));
            }
            previous = &layer.name;
        }
        if &model.outputs[0] != previous {
            return Err(not_serial(
                &model.outputs[0],
                "the output must be the last layer",
            ));
        }
        Ok(Chain {
            name: model.name.clone(),
            input: input.clone(),
            layers: rest.to_vec(),
        })
    }

    /// The chain as a Keras model (inbound names rebuilt).
    pub fn into_model(self) -> keras::Model {
        let mut model = keras::Model::new(self.name);
        model.inputs = vec![self.input.name.clone()];
        let mut previous = self.input.name.clone();
        model.layers.push(self.input);
        for mut layer in self.layers {
            layer.inbound = vec![previous.clone()];
            previous = layer.name.clone();
            model.layers.push(layer);
        }
        model.outputs = vec![previous];
        model
    }

    /// The model input shape (without the batch axis).
    pub fn input_shape(&self) -> Result<Shape, Cnn2snnError> {
        match self.input.config.input_shape() {
            Some(Ok(shape)) => Ok(shape),
            Some(Err(message)) => Err(Cnn2snnError::Shape {
                layer: self.input.name.clone(),
                message,
            }),
            None => Err(Cnn2snnError::Shape {
                layer: self.input.name.clone(),
                message: "the input layer has no shape".into(),
            }),
        }
    }

    /// The input shape of every layer of the chain, in order.
    pub fn input_shapes(&self) -> Result<Vec<Shape>, Cnn2snnError> {
        let mut shape = self.input_shape()?;
        let mut out = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            out.push(shape.clone());
            shape = layer
                .config
                .output_shape(std::slice::from_ref(&shape))
                .map_err(|message| Cnn2snnError::Shape {
                    layer: layer.name.clone(),
                    message,
                })?;
        }
        Ok(out)
    }
}

/// Whether a layer is a neural layer (float or quantized) cnn2snn folds
/// batch normalization into.
pub fn is_neural(config: &LayerConfig) -> bool {
    matches!(
        config,
        LayerConfig::Conv2D(_)
            | LayerConfig::SeparableConv2D(_)
            | LayerConfig::Dense(_)
            | LayerConfig::QuantizedConv2D { .. }
            | LayerConfig::QuantizedSeparableConv2D { .. }
            | LayerConfig::QuantizedDense { .. }
    )
}

/// Whether a layer is an activation cnn2snn quantizes (ReLU or a quantized activation).
pub fn is_activation(config: &LayerConfig) -> bool {
    matches!(
        config,
        LayerConfig::ReLU(_)
            | LayerConfig::QuantizedReLU { .. }
            | LayerConfig::ActivationDiscreteRelu { .. }
    )
}

/// Removes Dropout layers (no effect at inference).
pub fn remove_dropout(chain: &mut Chain) {
    chain
        .layers
        .retain(|l| !matches!(l.config, LayerConfig::Dropout { .. }));
}

/// Activation followed by MaxPooling2D becomes MaxPooling2D then activation
/// (equivalent for increasing activations), so pooling joins its neural layer.
pub fn invert_pooling_activation(chain: &mut Chain) {
    let mut i = 0;
    while i + 1 < chain.layers.len() {
        if is_activation(&chain.layers[i].config)
            && matches!(chain.layers[i + 1].config, LayerConfig::MaxPooling2D(_))
        {
            chain.layers.swap(i, i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
}

/// MaxPooling2D or GlobalAveragePooling2D followed by BatchNormalization
/// becomes BatchNormalization then pooling, so the batch normalization can
/// be folded. Moving it in front of a max pooling needs every gamma > 0.
pub fn invert_batchnorm_pooling(chain: &mut Chain) -> Result<(), Cnn2snnError> {
    let mut i = 0;
    while i + 1 < chain.layers.len() {
        let pool = &chain.layers[i].config;
        let is_max = matches!(pool, LayerConfig::MaxPooling2D(_));
        let is_gap = matches!(pool, LayerConfig::GlobalAveragePooling2D { .. });
        let next_is_bn = matches!(
            chain.layers[i + 1].config,
            LayerConfig::BatchNormalization(_)
        );
        if (is_max || is_gap) && next_is_bn {
            let bn = &chain.layers[i + 1];
            if is_max {
                let gamma = bn.weight(WeightRole::Gamma);
                let non_positive =
                    gamma.map_or(0, |g| g.values.iter().filter(|&&v| v <= 0.0).count());
                if non_positive > 0 {
                    return Err(Cnn2snnError::NegativeGamma {
                        layer: bn.name.clone(),
                        count: non_positive,
                    });
                }
            }
            if is_gap {
                if let LayerConfig::BatchNormalization(cfg) = &mut chain.layers[i + 1].config {
                    cfg.axis = vec![-1];
                }
            }
            chain.layers.swap(i, i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Folds each BatchNormalization into the neural layer just before it:
/// `s = gamma / sqrt(var + eps)`, `kernel' = kernel * s` (the pointwise
/// kernel of a separable layer), `bias' = beta + (bias - mean) * s`, in
/// float32; the layer gains a bias if it had none.
pub fn fold_batchnorm(chain: &mut Chain) -> Result<(), Cnn2snnError> {
    let shapes = chain.input_shapes()?;
    let mut i = 0;
    let mut out = Vec::with_capacity(chain.layers.len());
    let layers = std::mem::take(&mut chain.layers);
    let mut it = layers.into_iter().peekable();
    while let Some(mut layer) = it.next() {
        let folds = is_neural(&layer.config)
            && it
                .peek()
                .is_some_and(|n| matches!(n.config, LayerConfig::BatchNormalization(_)));
        if folds {
            let bn = it.next().expect("peeked");
            check_bn_axis(&bn, &shapes[i + 1])?;
            fold_into(&mut layer, &bn)?;
            i += 2;
        } else {
            i += 1;
        }
        out.push(layer);
    }
    chain.layers = out;
    Ok(())
}

fn check_bn_axis(bn: &Layer, input: &Shape) -> Result<(), Cnn2snnError> {
    let LayerConfig::BatchNormalization(cfg) = &bn.config else {
        return Ok(());
    };
    // Axes count the batch axis as 0: the last axis is input.len().
    let last = input.len() as i64;
    let ok = cfg.axis.len() == 1 && (cfg.axis[0] == -1 || cfg.axis[0] == last);
    if ok {
        Ok(())
    } else {
        Err(Cnn2snnError::BatchNormAxis {
            layer: bn.name.clone(),
            axis: cfg.axis.clone(),
        })
    }
}

fn fold_into(layer: &mut Layer, bn: &Layer) -> Result<(), Cnn2snnError> {
    let LayerConfig::BatchNormalization(cfg) = &bn.config else {
        return Ok(());
    };
    let missing = |role: &str| Cnn2snnError::MissingWeight {
        layer: bn.name.clone(),
        weight: role.to_owned(),
    };
    let channels = match layer.config {
        LayerConfig::Dense(ref d) => d.units,
        LayerConfig::QuantizedDense { ref dense, .. } => dense.units,
        LayerConfig::Conv2D(ref c) => c.filters,
        LayerConfig::QuantizedConv2D { ref conv, .. } => conv.filters,
        LayerConfig::SeparableConv2D(ref c) => c.filters,
        LayerConfig::QuantizedSeparableConv2D { ref conv, .. } => conv.filters,
        _ => return Ok(()),
    };
    let ones = vec![1f32; channels];
    let zeros = vec![0f32; channels];
    let gamma = match bn.weight(WeightRole::Gamma) {
        Some(w) => &w.values,
        None if !cfg.scale => &ones,
        None => return Err(missing("gamma")),
    };
    let beta = match bn.weight(WeightRole::Beta) {
        Some(w) => &w.values,
        None if !cfg.center => &zeros,
        None => return Err(missing("beta")),
    };
    let mean = &bn
        .weight(WeightRole::MovingMean)
        .ok_or_else(|| missing("moving_mean"))?
        .values;
    let var = &bn
        .weight(WeightRole::MovingVariance)
        .ok_or_else(|| missing("moving_variance"))?
        .values;
    let mut negative = var.iter().enumerate().filter(|(_, &v)| v < 0.0);
    if let Some((channel, &value)) = negative.next() {
        return Err(Cnn2snnError::NegativeVariance {
            layer: bn.name.clone(),
            channel,
            value,
            count: 1 + negative.count(),
        });
    }
    let eps = cfg.epsilon as f32;
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(&g, &v)| g / (v + eps).sqrt())
        .collect();
    if scale.len() != channels || beta.len() != channels || mean.len() != channels {
        return Err(Cnn2snnError::Shape {
            layer: bn.name.clone(),
            message: format!(
                "batch normalization over {} channels, the layer has {channels}",
                scale.len()
            ),
        });
    }
    let nulls = scale.iter().filter(|&&s| s == 0.0).count();
    if nulls > 0 {
        return Err(Cnn2snnError::NullGamma {
            layer: bn.name.clone(),
            count: nulls,
        });
    }
    let kernel_role = match layer.config {
        LayerConfig::SeparableConv2D(_) | LayerConfig::QuantizedSeparableConv2D { .. } => {
            WeightRole::PointwiseKernel
        }
        _ => WeightRole::Kernel,
    };
    let name = layer.name.clone();
    let kernel = layer
        .weight_mut(kernel_role)
        .ok_or_else(|| Cnn2snnError::MissingWeight {
            layer: name.clone(),
            weight: kernel_role.keras_name().to_owned(),
        })?;
    for (i, w) in kernel.values.iter_mut().enumerate() {
        *w *= scale[i % channels];
    }
    let bias: Vec<f32> = match layer.bias() {
        Some(b) => b.values.clone(),
        None => zeros.clone(),
    };
    let folded: Vec<f32> = (0..channels)
        .map(|c| beta[c] + (bias[c] - mean[c]) * scale[c])
        .collect();
    set_use_bias(&mut layer.config);
    match layer.weight_mut(WeightRole::Bias) {
        Some(b) => b.values = folded,
        None => {
            // Keras order: kernel(s) then bias.
            layer.weights.push(keras::Weight::new(
                &name,
                WeightRole::Bias,
                vec![channels],
                folded,
            ));
        }
    }
    Ok(())
}

fn set_use_bias(config: &mut LayerConfig) {
    match config {
        LayerConfig::Conv2D(c) | LayerConfig::QuantizedConv2D { conv: c, .. } => c.use_bias = true,
        LayerConfig::SeparableConv2D(c) | LayerConfig::QuantizedSeparableConv2D { conv: c, .. } => {
            c.use_bias = true
        }
        LayerConfig::Dense(d) | LayerConfig::QuantizedDense { dense: d, .. } => d.use_bias = true,
        _ => {}
    }
}
