//! akida_models' layer blocks (`akida_models.layer_blocks` of the 1.x
//! releases): a convolution, separable convolution or dense layer followed,
//! in this order, by an optional pooling, an optional BatchNormalization and
//! an optional ReLU capped at 6.
//!
//! The positional arguments follow the Python signatures
//! (`conv_block(inputs, filters, kernel_size, pooling, pool_size,
//! add_batchnorm, add_activation, **kwargs)`); the keyword arguments that go
//! to the main layer are an options struct ([`ConvKwargs`], [`DenseKwargs`]).
//! Layer names: `<name>`, `<name>_maxpool` / `<name>_avgpool` /
//! `<name>_global_avg`, `<name>_BN`, `<name>_relu`.

use super::builder::{GraphBuilder, Node};
use super::layers::{
    BatchNormConfig, Conv2DConfig, DenseConfig, LayerConfig, Padding, Pool2DConfig, ReluConfig,
    SeparableConv2DConfig,
};
use super::GraphError;

/// The pooling a convolutional block may add after its convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// `MaxPooling2D(pool_size)`, padding forced equal to the convolution's.
    Max,
    /// `AveragePooling2D(pool_size)`, padding equal to the convolution's.
    Avg,
    /// `GlobalAveragePooling2D()`.
    GlobalAvg,
}

impl Pooling {
    /// Parses the Python spelling (`max`, `avg`, `global_avg`).
    pub fn parse(s: &str) -> Option<Pooling> {
        match s {
            "max" => Some(Pooling::Max),
            "avg" => Some(Pooling::Avg),
            "global_avg" => Some(Pooling::GlobalAvg),
            _ => None,
        }
    }
}

/// `new()`, `name()` and a setter per field of a keyword arguments struct.
macro_rules! kwargs_builder {
    ($kwargs:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        impl $kwargs {
            pub fn new() -> $kwargs {
                $kwargs::default()
            }

            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.name = Some(name.into());
                self
            }

            $(
                pub fn $field(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

/// Keyword arguments of [`conv_block`] and [`separable_conv_block`], passed
/// to the convolution. Defaults are Keras's (stride 1, `valid`, with bias).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvKwargs {
    pub name: Option<String>,
    pub strides: [usize; 2],
    pub padding: Padding,
    pub use_bias: bool,
}

impl Default for ConvKwargs {
    fn default() -> Self {
        ConvKwargs {
            name: None,
            strides: [1, 1],
            padding: Padding::Valid,
            use_bias: true,
        }
    }
}

kwargs_builder!(ConvKwargs {
    strides: [usize; 2],
    padding: Padding,
    use_bias: bool,
});

/// Keyword arguments of [`dense_block`], passed to the `Dense` layer.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseKwargs {
    pub name: Option<String>,
    pub use_bias: bool,
}

impl Default for DenseKwargs {
    fn default() -> Self {
        DenseKwargs {
            name: None,
            use_bias: true,
        }
    }
}

kwargs_builder!(DenseKwargs { use_bias: bool });

/// The convolutional blocks: `$config`'s layer (from `filters`,
/// `kernel_size` and the keyword arguments), then [`finish_block`].
macro_rules! conv_blocks {
    ($($(#[$doc:meta])* $name:ident => $variant:ident($config:ident),)*) => {$(
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)] // mirrors the documented Python signature
        pub fn $name(
            g: &mut GraphBuilder,
            inputs: &Node,
            filters: usize,
            kernel_size: [usize; 2],
            pooling: Option<Pooling>,
            pool_size: [usize; 2],
            add_batchnorm: bool,
            add_activation: bool,
            kwargs: ConvKwargs,
        ) -> Result<Node, GraphError> {
            let config = LayerConfig::$variant($config {
                strides: kwargs.strides,
                padding: kwargs.padding,
                use_bias: kwargs.use_bias,
                ..$config::new(filters, kernel_size)
            });
            let x = g.add(config, kwargs.name.as_deref(), &[inputs])?;
            finish_block(
                g,
                x,
                pooling,
                pool_size,
                kwargs.padding,
                add_batchnorm,
                add_activation,
            )
        }
    )*};
}

conv_blocks! {
    /// `Conv2D` [-> pooling] [-> BatchNormalization] [-> ReLU(6)].
    conv_block => Conv2D(Conv2DConfig),
    /// `SeparableConv2D` [-> pooling] [-> BatchNormalization] [-> ReLU(6)].
    separable_conv_block => SeparableConv2D(SeparableConv2DConfig),
}

/// `Dense` [-> BatchNormalization] [-> ReLU(6)].
pub fn dense_block(
    g: &mut GraphBuilder,
    inputs: &Node,
    units: usize,
    add_batchnorm: bool,
    add_activation: bool,
    kwargs: DenseKwargs,
) -> Result<Node, GraphError> {
    let config = LayerConfig::Dense(DenseConfig {
        use_bias: kwargs.use_bias,
        ..DenseConfig::new(units)
    });
    let x = g.add(config, kwargs.name.as_deref(), &[inputs])?;
    finish_block(
        g,
        x,
        None,
        [2, 2],
        Padding::Valid,
        add_batchnorm,
        add_activation,
    )
}

/// The optional tail shared by all blocks, named after the main layer `x`.
fn finish_block(
    g: &mut GraphBuilder,
    x: Node,
    pooling: Option<Pooling>,
    pool_size: [usize; 2],
    padding: Padding,
    add_batchnorm: bool,
    add_activation: bool,
) -> Result<Node, GraphError> {
    let base = x.layer.clone();
    let mut x = x;
    if let Some(pooling) = pooling {
        let pool = Pool2DConfig {
            padding,
            ..Pool2DConfig::new(pool_size)
        };
        let (config, suffix) = match pooling {
            Pooling::Max => (LayerConfig::MaxPooling2D(pool), "maxpool"),
            Pooling::Avg => (LayerConfig::AveragePooling2D(pool), "avgpool"),
            Pooling::GlobalAvg => (
                LayerConfig::GlobalAveragePooling2D { keepdims: false },
                "global_avg",
            ),
        };
        x = g.add(config, Some(&format!("{base}_{suffix}")), &[&x])?;
    }
    if add_batchnorm {
        let bn = LayerConfig::BatchNormalization(BatchNormConfig::default());
        x = g.add(bn, Some(&format!("{base}_BN")), &[&x])?;
    }
    if add_activation {
        let relu = LayerConfig::ReLU(ReluConfig {
            max_value: Some(6.0),
            ..ReluConfig::default()
        });
        x = g.add(relu, Some(&format!("{base}_relu")), &[&x])?;
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(g: GraphBuilder, out: &Node) -> Vec<(String, String, Vec<usize>)> {
        let m = g.build("m", &[out]).unwrap();
        let shapes = m.output_shapes().unwrap();
        m.layers
            .iter()
            .zip(shapes)
            .map(|(l, s)| (l.name.clone(), l.class_name().to_owned(), s))
            .collect()
    }

    #[test]
    fn conv_block_orders_pool_bn_relu_with_conv_padding() {
        let mut g = GraphBuilder::new(0);
        let x = g.input(&[15, 15, 3], None).unwrap();
        let kw = ConvKwargs::new()
            .name("conv_1")
            .padding(Padding::Same)
            .use_bias(false);
        let y = conv_block(
            &mut g,
            &x,
            8,
            [3, 3],
            Some(Pooling::Max),
            [2, 2],
            true,
            true,
            kw,
        )
        .unwrap();
        let got = names(g, &y);
        let want = [
            ("input_1", "InputLayer", vec![15, 15, 3]),
            ("conv_1", "Conv2D", vec![15, 15, 8]),
            ("conv_1_maxpool", "MaxPooling2D", vec![8, 8, 8]),
            ("conv_1_BN", "BatchNormalization", vec![8, 8, 8]),
            ("conv_1_relu", "ReLU", vec![8, 8, 8]),
        ];
        let want: Vec<_> = want
            .into_iter()
            .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn separable_block_with_global_avg_and_unnamed_dense_block() {
        let mut g = GraphBuilder::new(0);
        let x = g.input(&[4, 4, 3], None).unwrap();
        let kw = ConvKwargs::new().padding(Padding::Same);
        let y = separable_conv_block(
            &mut g,
            &x,
            5,
            [3, 3],
            Some(Pooling::GlobalAvg),
            [2, 2],
            false,
            false,
            kw,
        )
        .unwrap();
        let z = dense_block(
            &mut g,
            &y,
            2,
            true,
            true,
            DenseKwargs::new().use_bias(false),
        )
        .unwrap();
        let got: Vec<String> = names(g, &z).into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(
            got,
            [
                "input_1",
                "separable_conv2d",
                "separable_conv2d_global_avg",
                "dense",
                "dense_BN",
                "dense_relu"
            ]
        );
    }

    #[test]
    fn avg_pool_uses_conv_padding_and_relu_is_capped_at_six() {
        let mut g = GraphBuilder::new(0);
        let x = g.input(&[5, 5, 1], None).unwrap();
        let kw = ConvKwargs::new().name("c");
        let y = conv_block(
            &mut g,
            &x,
            2,
            [3, 3],
            Some(Pooling::Avg),
            [2, 2],
            false,
            true,
            kw,
        )
        .unwrap();
        let m = g.build("m", &[&y]).unwrap();
        match &m.layer("c_avgpool").unwrap().config {
            LayerConfig::AveragePooling2D(p) => assert_eq!(p.padding, Padding::Valid),
            other => panic!("{other:?}"),
        }
        match &m.layer("c_relu").unwrap().config {
            LayerConfig::ReLU(r) => assert_eq!(r.max_value, Some(6.0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(Pooling::parse("global_avg"), Some(Pooling::GlobalAvg));
        assert_eq!(Pooling::parse("global_max"), None);
    }
}
