//! The four legacy Akida 1.0 zoo models, exactly as akida_models 1.1.0
//! defines them (`AKIDA_V1_SEMANTICS.md` section 5): float Keras models with
//! a `Rescaling` input stage, built from the layer blocks and initialised as
//! Keras does (seeded).

use crate::keras::blocks::{
    conv_block, dense_block, separable_conv_block, ConvKwargs, DenseKwargs, Pooling,
};
use crate::keras::{GraphBuilder, GraphError, LayerConfig, Model, Node, Padding};

/// A zoo model that `akida_models create` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZooModel {
    DsCnnCifar10,
    VggCifar10,
    VggUtkFace,
    DsCnnKws,
}

impl ZooModel {
    /// Every model, in the order `--help` lists them.
    pub const ALL: [ZooModel; 4] = [
        ZooModel::DsCnnCifar10,
        ZooModel::VggCifar10,
        ZooModel::VggUtkFace,
        ZooModel::DsCnnKws,
    ];

    /// The command-line (and Keras model) name.
    pub fn name(self) -> &'static str {
        match self {
            ZooModel::DsCnnCifar10 => "ds_cnn_cifar10",
            ZooModel::VggCifar10 => "vgg_cifar10",
            ZooModel::VggUtkFace => "vgg_utk_face",
            ZooModel::DsCnnKws => "ds_cnn_kws",
        }
    }

    /// One line for `--help`.
    pub fn description(self) -> &'static str {
        match self {
            ZooModel::DsCnnCifar10 => "A Depthwise Separable CIFAR10 model inspired by MobileNet",
            ZooModel::VggCifar10 => "A VGG-like CIFAR10 model",
            ZooModel::VggUtkFace => "A VGG-like UTKFace model",
            ZooModel::DsCnnKws => "A Depthwise Separable keyword spotting model (--classes)",
        }
    }

    /// The model called `name`, if any.
    pub fn from_name(name: &str) -> Option<ZooModel> {
        ZooModel::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Builds the model with its default number of classes.
    pub fn build(self, seed: u64) -> Result<Model, GraphError> {
        match self {
            ZooModel::DsCnnCifar10 => ds_cnn_cifar10(seed),
            ZooModel::VggCifar10 => vgg_cifar10(seed),
            ZooModel::VggUtkFace => vgg_utk_face(seed),
            ZooModel::DsCnnKws => ds_cnn_kws(33, seed),
        }
    }
}

/// `Input(shape)` followed by `Rescaling(1 / scale, offset)` (akida_models'
/// `input_scaling=(scale, offset)`).
fn rescaled_input(
    g: &mut GraphBuilder,
    shape: &[usize],
    scale: f64,
    offset: f64,
) -> Result<Node, GraphError> {
    let x = g.input(shape, None)?;
    let rescaling = LayerConfig::Rescaling {
        scale: 1.0 / scale,
        offset,
    };
    g.add(rescaling, None, &[&x])
}

/// Convolution keyword arguments shared by the zoo: named, no bias.
fn kw(name: &str, padding: Padding) -> ConvKwargs {
    ConvKwargs::new()
        .name(name)
        .padding(padding)
        .use_bias(false)
}

/// `conv_block` or `separable_conv_block`.
type Block = fn(
    &mut GraphBuilder,
    &Node,
    usize,
    [usize; 2],
    Option<Pooling>,
    [usize; 2],
    bool,
    bool,
    ConvKwargs,
) -> Result<Node, GraphError>;

/// The zoo's usual block: `block` with BatchNormalization and ReLU, pooling
/// (if any) over 2x2.
fn bn_relu(
    block: Block,
    g: &mut GraphBuilder,
    x: &Node,
    filters: usize,
    kernel_size: [usize; 2],
    pooling: Option<Pooling>,
    kwargs: ConvKwargs,
) -> Result<Node, GraphError> {
    block(
        g,
        x,
        filters,
        kernel_size,
        pooling,
        [2, 2],
        true,
        true,
        kwargs,
    )
}

/// ds_cnn_cifar10: a MobileNet-like CIFAR-10 classifier (2,681,984 parameters).
pub fn ds_cnn_cifar10(seed: u64) -> Result<Model, GraphError> {
    let mut g = GraphBuilder::new(seed);
    let x = rescaled_input(&mut g, &[32, 32, 3], 255.0, 0.0)?;
    let same = Padding::Same;
    let mut x = bn_relu(
        conv_block,
        &mut g,
        &x,
        128,
        [3, 3],
        None,
        kw("conv_0", same),
    )?;
    let separables: [(usize, bool); 9] = [
        (128, false),
        (256, false),
        (256, true),
        (512, false),
        (512, true),
        (512, false),
        (512, true),
        (1024, false),
        (1024, false),
    ];
    for (i, (filters, max_pool)) in separables.into_iter().enumerate() {
        let pooling = max_pool.then_some(Pooling::Max);
        let name = format!("separable_{}", i + 1);
        x = bn_relu(
            separable_conv_block,
            &mut g,
            &x,
            filters,
            [3, 3],
            pooling,
            kw(&name, same),
        )?;
    }
    let x = separable_conv_block(
        &mut g,
        &x,
        10,
        [3, 3],
        Some(Pooling::GlobalAvg),
        [2, 2],
        false,
        false,
        kw("separable_10", same),
    )?;
    g.build("ds_cnn_cifar10", &[&x])
}

/// vgg_cifar10: a VGG-like CIFAR-10 classifier (21,901,696 parameters).
pub fn vgg_cifar10(seed: u64) -> Result<Model, GraphError> {
    let mut g = GraphBuilder::new(seed);
    let mut x = rescaled_input(&mut g, &[32, 32, 3], 255.0, 0.0)?;
    let convs: [(usize, [usize; 2], bool); 7] = [
        (128, [3, 3], false),
        (128, [3, 3], true),
        (256, [3, 3], false),
        (256, [3, 3], true),
        (512, [3, 3], false),
        (512, [3, 3], true),
        (1024, [1, 1], false),
    ];
    for (i, (filters, kernel, max_pool)) in convs.into_iter().enumerate() {
        let pooling = max_pool.then_some(Pooling::Max);
        let name = format!("conv_{i}");
        x = bn_relu(
            conv_block,
            &mut g,
            &x,
            filters,
            kernel,
            pooling,
            kw(&name, Padding::Same),
        )?;
    }
    let x = g.add(LayerConfig::Flatten, None, &[&x])?;
    let dense = |name: &str| DenseKwargs::new().name(name).use_bias(false);
    let x = dense_block(&mut g, &x, 1024, true, true, dense("dense_7"))?;
    let x = dense_block(&mut g, &x, 10, false, false, dense("dense_8"))?;
    g.build("vgg_cifar10", &[&x])
}

/// vgg_utk_face: a VGG-like age regressor for UTKFace (459,249 parameters).
pub fn vgg_utk_face(seed: u64) -> Result<Model, GraphError> {
    let mut g = GraphBuilder::new(seed);
    let mut x = rescaled_input(&mut g, &[32, 32, 3], 127.0, -1.0)?;
    // (filters, max pooling, dropout after); conv_0 is `valid`.
    let convs: [(usize, bool, bool); 5] = [
        (32, false, false),
        (32, true, true),
        (64, false, false),
        (64, true, true),
        (84, false, true),
    ];
    for (i, (filters, max_pool, dropout)) in convs.into_iter().enumerate() {
        let pooling = max_pool.then_some(Pooling::Max);
        let padding = if i == 0 {
            Padding::Valid
        } else {
            Padding::Same
        };
        let kwargs = kw(&format!("conv_{i}"), padding);
        x = bn_relu(conv_block, &mut g, &x, filters, [3, 3], pooling, kwargs)?;
        if dropout {
            x = g.add(LayerConfig::Dropout { rate: 0.3 }, None, &[&x])?;
        }
    }
    let x = g.add(LayerConfig::Flatten, None, &[&x])?;
    let dense_1 = DenseKwargs::new().name("dense_1").use_bias(false);
    let x = dense_block(&mut g, &x, 64, true, true, dense_1)?;
    let x = dense_block(
        &mut g,
        &x,
        1,
        false,
        false,
        DenseKwargs::new().name("dense_2"),
    )?;
    g.build("vgg_utk_face", &[&x])
}

/// ds_cnn_kws: a MobileNet-like keyword spotter on 49x10 MFCC maps (23,713
/// parameters with 33 classes); ends in softmax, or sigmoid for one class.
pub fn ds_cnn_kws(classes: usize, seed: u64) -> Result<Model, GraphError> {
    let mut g = GraphBuilder::new(seed);
    let x = rescaled_input(&mut g, &[49, 10, 1], 255.0, 0.0)?;
    let same = Padding::Same;
    let conv_0 = kw("conv_0", same).strides([2, 2]);
    let mut x = bn_relu(conv_block, &mut g, &x, 64, [5, 5], None, conv_0)?;
    for i in 1..=4 {
        let pooling = (i == 4).then_some(Pooling::GlobalAvg);
        let name = format!("separable_{i}");
        x = bn_relu(
            separable_conv_block,
            &mut g,
            &x,
            64,
            [3, 3],
            pooling,
            kw(&name, same),
        )?;
    }
    let x = g.add(
        LayerConfig::Reshape {
            target_shape: vec![1, 1, 64],
        },
        Some("reshape_1"),
        &[&x],
    )?;
    let x = g.add(LayerConfig::Flatten, None, &[&x])?;
    let dense_5 = DenseKwargs::new().name("dense_5");
    let x = dense_block(&mut g, &x, classes, false, false, dense_5)?;
    let act = if classes > 1 { "softmax" } else { "sigmoid" };
    let x = g.add(
        LayerConfig::Activation {
            activation: act.into(),
        },
        Some(&format!("act_{act}")),
        &[&x],
    )?;
    g.build("ds_cnn_kws", &[&x])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_references() {
        let want = [
            (ZooModel::DsCnnCifar10, 2_681_984, 9_728),
            (ZooModel::VggCifar10, 21_901_696, 7_680),
            (ZooModel::VggUtkFace, 459_249, 680),
            (ZooModel::DsCnnKws, 23_713, 640),
        ];
        for (m, total, non_trainable) in want {
            let model = m.build(0).unwrap();
            let count = model.param_count();
            assert_eq!(count.total(), total, "{}", m.name());
            assert_eq!(count.non_trainable, non_trainable, "{}", m.name());
            assert!(model.is_sequential(), "{}", m.name());
            assert_eq!(model.name, m.name());
        }
    }

    #[test]
    fn names_round_trip_and_seeds_change_weights() {
        for m in ZooModel::ALL {
            assert_eq!(ZooModel::from_name(m.name()), Some(m));
        }
        assert_eq!(ZooModel::from_name("mobilenet"), None);
        let a = ds_cnn_kws(33, 1).unwrap();
        let b = ds_cnn_kws(33, 1).unwrap();
        let c = ds_cnn_kws(33, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a.layer("conv_0").unwrap().kernel(),
            c.layer("conv_0").unwrap().kernel()
        );
        let one = ds_cnn_kws(1, 0).unwrap();
        assert_eq!(one.layers.last().unwrap().name, "act_sigmoid");
        assert_eq!(one.output_shapes().unwrap().last().unwrap(), &vec![1]);
    }
}
