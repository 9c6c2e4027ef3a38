//! The layer parameters as BrainChip's engine names them (the `params` of
//! `akida.Layer`, the reference `.json` files and `.fbz` files), mapped to and
//! from core's [`LayerParams`].
//!
//! Akida's "width"/"x" is the NHWC *height* axis (rows) and its
//! "height"/"y" the NHWC width (cols): `kernel_width` is the kernel's row
//! count, `stride_x` the row stride, `input_width` the number of rows.

use std::collections::BTreeMap;

use akida_core::layer::INPUT_BITS;
use akida_core::{Dims, InputData, LayerKind, LayerParams, Padding, Pooling, Window};

/// Integer parameters by name, sorted (as the engine stores them).
pub type EngineParams = BTreeMap<String, i32>;

/// Engine `layer_type` codes.
pub fn layer_type_code(kind: LayerKind) -> i32 {
    match kind {
        LayerKind::InputConvolutional => 2,
        LayerKind::FullyConnected => 3,
        LayerKind::Convolutional => 4,
        LayerKind::SeparableConvolutional => 5,
    }
}

/// Engine `layer_type` of an InputData layer (not a [`LayerKind`]: it has
/// no weights and computes nothing; see [`InputData`]).
pub const INPUT_DATA_CODE: i32 = 1;

/// Layer kind of an engine `layer_type` code (InputData, 1, is read by
/// [`input_data_from_params`]).
pub fn kind_of_code(code: i32) -> Option<LayerKind> {
    match code {
        2 => Some(LayerKind::InputConvolutional),
        3 => Some(LayerKind::FullyConnected),
        4 => Some(LayerKind::Convolutional),
        5 => Some(LayerKind::SeparableConvolutional),
        _ => None,
    }
}

/// Layer kind of an engine type name (`InputConvolutional`, ...).
pub fn kind_of_name(name: &str) -> Option<LayerKind> {
    LayerKind::ALL.into_iter().find(|k| k.name() == name)
}

/// Why engine params do not describe a layer we run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("parameter `{0}` is missing")]
    Missing(&'static str),
    #[error("parameter `{key}` has value {value}, which is out of range")]
    Value { key: &'static str, value: i32 },
    #[error("unknown parameter `{0}`")]
    Unknown(String),
    #[error("pooling type {0} is not supported (0 none, 1 max, 2 global average)")]
    PoolType(i32),
    #[error("a non-input layer needs the previous layer's output size")]
    NoInput,
    #[error("stride {}x{} exceeds the {}x{} kernel (the engine: \"Strides > kernel size are not supported\")", stride.rows, stride.cols, kernel.rows, kernel.cols)]
    StrideAboveKernel { stride: Window, kernel: Window },
    #[error("max pooling stride {}x{} exceeds its {}x{} size (the engine: \"Parameter pool_stride cannot be higher than pool_size.\")", stride.rows, stride.cols, size.rows, size.cols)]
    PoolStrideAboveSize { stride: Window, size: Window },
}

/// The rules the engine checks when it makes a layer from its params: a
/// Convolutional or SeparableConvolutional stride at most its kernel, a max
/// pooling stride at most its size (per axis).
pub fn engine_rules(g: &LayerParams) -> Result<(), ParamsError> {
    let above = |a: Window, b: Window| a.rows > b.rows || a.cols > b.cols;
    let convolution = matches!(
        g.kind,
        LayerKind::Convolutional | LayerKind::SeparableConvolutional
    );
    if convolution && above(g.stride, g.kernel) {
        return Err(ParamsError::StrideAboveKernel {
            stride: g.stride,
            kernel: g.kernel,
        });
    }
    if let Pooling::Max { size, stride } = g.pooling {
        if above(stride, size) {
            return Err(ParamsError::PoolStrideAboveSize { stride, size });
        }
    }
    Ok(())
}

/// Keys of a layer kind's params, sorted (without `layer_type`): a
/// convolution's, to which the input convolution adds its input size and
/// padding value.
pub fn keys(kind: LayerKind) -> Vec<&'static str> {
    const CONVOLUTION: [&str; 14] = [
        "act_bits",
        "activation",
        "filters",
        "kernel_height",
        "kernel_width",
        "padding",
        "pool_type",
        "pooling_height",
        "pooling_stride_x",
        "pooling_stride_y",
        "pooling_width",
        "stride_x",
        "stride_y",
        "weights_bits",
    ];
    const INPUT: [&str; 4] = [
        "input_channels",
        "input_height",
        "input_width",
        "padding_value",
    ];
    match kind {
        LayerKind::InputConvolutional => {
            let mut keys = [&CONVOLUTION[..], &INPUT[..]].concat();
            keys.sort_unstable();
            keys
        }
        LayerKind::Convolutional | LayerKind::SeparableConvolutional => CONVOLUTION.to_vec(),
        LayerKind::FullyConnected => vec!["act_bits", "activation", "units", "weights_bits"],
    }
}

/// Keys of an InputData layer's params, sorted (without `layer_type`).
pub const INPUT_DATA_KEYS: [&str; 5] = [
    "input_bits",
    "input_channels",
    "input_height",
    "input_signed",
    "input_width",
];

/// The engine params of an InputData layer (without `layer_type`); its
/// input is unsigned, as every Akida 1.0 input is.
pub fn input_data_to_params<S>(d: &InputData<S>) -> EngineParams {
    let mut p = EngineParams::new();
    p.insert("input_bits".into(), d.bits as i32);
    p.insert("input_channels".into(), d.dims.channels as i32);
    p.insert("input_height".into(), d.dims.cols as i32);
    p.insert("input_signed".into(), 0);
    p.insert("input_width".into(), d.dims.rows as i32);
    p
}

/// Reads an InputData layer's params (strictly: every key present, no
/// other but `layer_type`): its size and input bits. A signed input
/// (`input_signed` 1) is not an Akida 1.0 input.
pub fn input_data_from_params(p: &EngineParams) -> Result<(Dims, u8), ParamsError> {
    if let Some(k) = p
        .keys()
        .find(|k| k.as_str() != "layer_type" && !INPUT_DATA_KEYS.contains(&k.as_str()))
    {
        return Err(ParamsError::Unknown(k.clone()));
    }
    let bits = get(p, "input_bits")?;
    if !u8::try_from(bits).is_ok_and(|b| INPUT_BITS.contains(&b)) {
        return Err(ParamsError::Value {
            key: "input_bits",
            value: bits,
        });
    }
    small(p, "input_signed", &[0])?;
    let dims = Dims::new(
        positive(p, "input_width")?,
        positive(p, "input_height")?,
        positive(p, "input_channels")?,
    );
    Ok((dims, bits as u8))
}

/// The engine params of a layer (without `layer_type`).
pub fn to_params(g: &LayerParams) -> EngineParams {
    let mut p = EngineParams::new();
    let mut set = |k: &str, v: i64| {
        p.insert(k.to_owned(), v as i32);
    };
    set("act_bits", g.act_bits as i64);
    set("activation", g.activation as i64);
    set("weights_bits", g.weights_bits as i64);
    if g.kind == LayerKind::FullyConnected {
        set("units", g.filters as i64);
        return p;
    }
    set("filters", g.filters as i64);
    if g.kind == LayerKind::InputConvolutional {
        set("input_width", g.input.rows as i64);
        set("input_height", g.input.cols as i64);
        set("input_channels", g.input.channels as i64);
        set("padding_value", g.padding_value as i64);
    }
    set("kernel_width", g.kernel.rows as i64);
    set("kernel_height", g.kernel.cols as i64);
    set("stride_x", g.stride.rows as i64);
    set("stride_y", g.stride.cols as i64);
    set(
        "padding",
        match g.padding {
            Padding::Valid => 0,
            Padding::Same => 1,
        },
    );
    let (pool_type, size, stride) = match g.pooling {
        Pooling::None => (0, (-1, -1), (-1, -1)),
        Pooling::Max { size, stride } => (
            1,
            (size.rows as i64, size.cols as i64),
            (stride.rows as i64, stride.cols as i64),
        ),
        Pooling::GlobalAverage => (2, (-1, -1), (-1, -1)),
    };
    set("pool_type", pool_type);
    set("pooling_width", size.0);
    set("pooling_height", size.1);
    set("pooling_stride_x", stride.0);
    set("pooling_stride_y", stride.1);
    p
}

fn get(p: &EngineParams, key: &'static str) -> Result<i32, ParamsError> {
    p.get(key).copied().ok_or(ParamsError::Missing(key))
}

fn positive(p: &EngineParams, key: &'static str) -> Result<u32, ParamsError> {
    let v = get(p, key)?;
    if v <= 0 {
        return Err(ParamsError::Value { key, value: v });
    }
    Ok(v as u32)
}

fn small(p: &EngineParams, key: &'static str, allowed: &[i32]) -> Result<u8, ParamsError> {
    let v = get(p, key)?;
    if !allowed.contains(&v) {
        return Err(ParamsError::Value { key, value: v });
    }
    Ok(v as u8)
}

/// Reads a layer's params. `previous` is the previous layer's output size
/// (`None` for the first layer, whose input size the params carry). With
/// `strict`, a key the kind does not have is an error (the engine's rule);
/// otherwise extra keys (such as `layer_type`) are ignored.
pub fn from_params(
    kind: LayerKind,
    p: &EngineParams,
    previous: Option<Dims>,
    strict: bool,
) -> Result<LayerParams, ParamsError> {
    if strict {
        if let Some(k) = p
            .keys()
            .find(|k| k.as_str() != "layer_type" && !keys(kind).contains(&k.as_str()))
        {
            return Err(ParamsError::Unknown(k.clone()));
        }
    }
    let act_bits = small(p, "act_bits", &[1, 2, 4])?;
    let activation = small(p, "activation", &[0, 1])? == 1;
    // The engine's CNP layers take 1, 2, 4 or 8 bits, its input
    // convolution any width (held as int8 but 1, 2 and 4).
    let widths: &[i32] = match kind {
        LayerKind::InputConvolutional => &[1, 2, 3, 4, 5, 6, 7, 8],
        _ => &[1, 2, 4, 8],
    };
    let weights_bits = small(p, "weights_bits", widths)?;
    let input = match kind {
        LayerKind::InputConvolutional => Dims::new(
            positive(p, "input_width")?,
            positive(p, "input_height")?,
            positive(p, "input_channels")?,
        ),
        _ => previous.ok_or(ParamsError::NoInput)?,
    };
    if kind == LayerKind::FullyConnected {
        return Ok(LayerParams {
            activation,
            act_bits,
            ..LayerParams::fully_connected(input, positive(p, "units")?, weights_bits)
        });
    }
    let padding = match small(p, "padding", &[0, 1])? {
        0 => Padding::Valid,
        _ => Padding::Same,
    };
    let padding_value = match kind {
        LayerKind::InputConvolutional => {
            let v = get(p, "padding_value")?;
            u8::try_from(v).map_err(|_| ParamsError::Value {
                key: "padding_value",
                value: v,
            })?
        }
        _ => 0,
    };
    let pooling = match get(p, "pool_type")? {
        0 => Pooling::None,
        1 => Pooling::Max {
            size: Window::new(
                positive(p, "pooling_width")?,
                positive(p, "pooling_height")?,
            ),
            stride: Window::new(
                positive(p, "pooling_stride_x")?,
                positive(p, "pooling_stride_y")?,
            ),
        },
        2 => {
            for key in ["pooling_width", "pooling_height"] {
                let v = get(p, key)?;
                if v != -1 {
                    // A local average pooling: not an Akida 1.0 layer cnn2snn makes.
                    return Err(ParamsError::Value { key, value: v });
                }
            }
            Pooling::GlobalAverage
        }
        other => return Err(ParamsError::PoolType(other)),
    };
    Ok(LayerParams {
        kind,
        input,
        filters: positive(p, "filters")?,
        kernel: Window::new(positive(p, "kernel_width")?, positive(p, "kernel_height")?),
        stride: Window::new(positive(p, "stride_x")?, positive(p, "stride_y")?),
        padding,
        padding_value,
        pooling,
        activation,
        act_bits,
        weights_bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip_for_every_kind() {
        let g = LayerParams {
            kind: LayerKind::InputConvolutional,
            input: Dims::new(14, 10, 3),
            filters: 8,
            kernel: Window::new(5, 3),
            stride: Window::new(2, 1),
            padding: Padding::Same,
            padding_value: 127,
            pooling: Pooling::Max {
                size: Window::new(2, 1),
                stride: Window::new(2, 1),
            },
            activation: true,
            act_bits: 4,
            weights_bits: 8,
        };
        let p = to_params(&g);
        assert_eq!(p["kernel_width"], 5);
        assert_eq!(p["kernel_height"], 3);
        assert_eq!(p["input_width"], 14);
        assert_eq!(p["stride_x"], 2);
        assert_eq!(
            p.keys().map(String::as_str).collect::<Vec<_>>(),
            keys(g.kind)
        );
        assert_eq!(from_params(g.kind, &p, None, true), Ok(g));

        let fc = LayerParams::fully_connected(Dims::new(2, 1, 8), 3, 4);
        let p = to_params(&fc);
        assert_eq!(
            p.keys().map(String::as_str).collect::<Vec<_>>(),
            keys(fc.kind)
        );
        assert_eq!(from_params(fc.kind, &p, Some(fc.input), true), Ok(fc));
    }

    #[test]
    fn strict_params_refuse_unknown_keys() {
        let mut p = EngineParams::new();
        for k in keys(LayerKind::FullyConnected) {
            p.insert((*k).to_owned(), 1);
        }
        p.insert("stride_x".into(), 1);
        assert_eq!(
            from_params(
                LayerKind::FullyConnected,
                &p,
                Some(Dims::new(1, 1, 4)),
                true
            ),
            Err(ParamsError::Unknown("stride_x".into()))
        );
    }
}
