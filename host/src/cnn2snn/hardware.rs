//! The AKD1000 silicon limits (BrainChip's "Akida 1.0 hardware
//! constraints") as one table of constants, and the warning rules that read
//! it. The software engine does not enforce them: a model that breaks one
//! converts and runs here and in the engine, but would not map onto the chip.
//! A finding names the Keras layer to change: the neural layer, or the
//! pooling layer for the pooling rules.

use std::ops::RangeInclusive;

use akida_core::{Dims, LayerKind, Padding, Pooling, Window};

use super::chain::{self, Chain};
use super::check::{Report, Rule};
use super::plan::{activation_bits, PlannedLayer};
use crate::keras::LayerConfig;

/// Square kernel sizes of the input convolution.
pub const INPUT_KERNELS: [u32; 3] = [3, 5, 7];
/// Square strides of the input convolution.
pub const INPUT_STRIDES: RangeInclusive<u32> = 1..=3;
/// Rows of the input image.
pub const INPUT_ROWS: RangeInclusive<u32> = 5..=256;
/// Least columns of the input image.
pub const INPUT_MIN_COLS: u32 = 5;
/// Most filters of the input convolution: (input channels, kernel size, filters).
pub const INPUT_FILTERS: [(u32, u32, u32); 6] = [
    (1, 3, 512),
    (1, 5, 192),
    (1, 7, 96),
    (3, 3, 192),
    (3, 5, 64),
    (3, 7, 32),
];
/// Max pooling windows of the input convolution (stride equal to the size).
pub const INPUT_POOLS: [(u32, u32); 4] = [(1, 1), (1, 2), (2, 1), (2, 2)];
/// Square kernel sizes of a convolution.
pub const CONV_KERNELS: [u32; 4] = [1, 3, 5, 7];
/// Square kernel sizes of a separable convolution.
pub const SEPARABLE_KERNELS: [u32; 3] = [3, 5, 7];
/// The only kernel size a stride of 2 works with (else stride 1).
pub const STRIDE_2_KERNEL: u32 = 3;
/// Weight bits of convolutional and fully connected layers.
pub const WEIGHT_BITS: [u8; 3] = [1, 2, 4];
/// Weight bits of separable layers.
pub const SEPARABLE_WEIGHT_BITS: [u8; 2] = [2, 4];
/// Most inputs of a fully connected layer.
pub const FC_MAX_INPUTS: usize = 57334;
/// Square max pooling windows after a (separable) convolution.
pub const MAX_POOL_SIZES: [u32; 2] = [1, 2];
/// Square max pooling strides (not above the window).
pub const MAX_POOL_STRIDES: [u32; 2] = [1, 2];
/// Rows of the input of a global average pooling (Akida's width).
pub const GLOBAL_POOL_ROWS: RangeInclusive<u32> = 1..=32;
/// Least columns of the input of a global average pooling.
pub const GLOBAL_POOL_MIN_COLS: u32 = 3;

/// `3x3, 5x5 and 7x7` for square sizes.
fn square_list(sizes: &[u32]) -> String {
    let items: Vec<String> = sizes.iter().map(|k| format!("{k}x{k}")).collect();
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.join(""),
    }
}

/// `1, 2 or 4` for a list of numbers.
fn number_list<T: ToString>(values: &[T]) -> String {
    let items: Vec<String> = values.iter().map(T::to_string).collect();
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => items.join(""),
    }
}

/// The Keras pooling layer merged into a planned layer (the pooling rules
/// name it), or the neural layer when it has none.
pub(crate) fn pooling_name<'a>(chain: &'a Chain, p: &'a PlannedLayer) -> &'a str {
    chain.layers[p.neural + 1..]
        .iter()
        .take_while(|l| !chain::is_neural(&l.config) && activation_bits(&l.config).is_none())
        .find(|l| {
            matches!(
                l.config,
                LayerConfig::MaxPooling2D(_) | LayerConfig::GlobalAveragePooling2D { .. }
            )
        })
        .map_or(p.name.as_str(), |l| l.name.as_str())
}

/// Every hardware warning of the planned layers.
pub fn warnings(chain: &Chain, plan: &[PlannedLayer], report: &mut Report) {
    for (i, p) in plan.iter().enumerate() {
        match p.geometry.kind {
            LayerKind::InputConvolutional => input_warnings(chain, p, report),
            LayerKind::Convolutional | LayerKind::SeparableConvolutional => {
                conv_warnings(p, report);
                pooling_warnings(chain, plan, i, report);
            }
            LayerKind::FullyConnected => fully_connected_warnings(p, report),
        }
    }
}

fn input_warnings(chain: &Chain, p: &PlannedLayer, report: &mut Report) {
    let g = &p.geometry;
    let name = p.name.as_str();
    let (kh, kw) = (g.kernel.rows, g.kernel.cols);
    if !(kh == kw && INPUT_KERNELS.contains(&kh)) {
        report.warn(
            Rule::KernelSize,
            name,
            format!(
                "the input convolution supports {} kernels, found {kh}x{kw}",
                square_list(&INPUT_KERNELS)
            ),
        );
    }
    let (sr, sc) = (g.stride.rows, g.stride.cols);
    if sr != sc || !INPUT_STRIDES.contains(&sr) {
        let strides: Vec<u32> = INPUT_STRIDES.collect();
        report.warn(
            Rule::StrideKernel,
            name,
            format!(
                "the input convolution supports strides {}, found {sr}x{sc}",
                number_list(&strides).replace(" or ", " and ")
            ),
        );
    }
    if !INPUT_ROWS.contains(&g.input.rows) || g.input.cols < INPUT_MIN_COLS {
        report.warn(
            Rule::InputSize,
            name,
            format!(
                "the input must have {} to {} rows and at least {INPUT_MIN_COLS} columns, found {}x{}",
                INPUT_ROWS.start(),
                INPUT_ROWS.end(),
                g.input.rows,
                g.input.cols
            ),
        );
    }
    let limit = INPUT_FILTERS
        .iter()
        .find(|&&(c, k, _)| c == g.input.channels && k == kh)
        .map(|&(_, _, filters)| filters);
    if let Some(limit) = limit.filter(|&l| g.filters > l) {
        report.warn(
            Rule::InputConvFilters,
            name,
            format!(
                "at most {limit} filters for a {kh}x{kw} kernel on {} channel(s), found {}",
                g.input.channels, g.filters
            ),
        );
    }
    match g.pooling {
        Pooling::Max { size, stride } => {
            if !(INPUT_POOLS.contains(&(size.rows, size.cols)) && size == stride) {
                let pools: Vec<String> = INPUT_POOLS
                    .iter()
                    .map(|(r, c)| format!("{r}x{c}"))
                    .collect();
                report.warn(
                    Rule::InputConvPooling,
                    pooling_name(chain, p),
                    format!(
                        "the input convolution `{name}` supports max pooling {} with stride equal to size, found {}",
                        pools.join(", "),
                        pool_text(size, stride)
                    ),
                );
            }
        }
        Pooling::GlobalAverage => report.warn(
            Rule::GlobalPoolSize,
            pooling_name(chain, p),
            format!("the input convolution `{name}` does not support global average pooling"),
        ),
        Pooling::None => {}
    }
}

fn conv_warnings(p: &PlannedLayer, report: &mut Report) {
    let g = &p.geometry;
    let name = p.name.as_str();
    let (kh, kw) = (g.kernel.rows, g.kernel.cols);
    let separable = g.kind == LayerKind::SeparableConvolutional;
    let kernels: &[u32] = if separable {
        &SEPARABLE_KERNELS
    } else {
        &CONV_KERNELS
    };
    if !(kh == kw && kernels.contains(&kh)) {
        report.warn(
            Rule::KernelSize,
            name,
            format!(
                "{} layers support {} kernels, found {kh}x{kw}",
                g.kind.name(),
                square_list(kernels)
            ),
        );
    }
    let (sr, sc) = (g.stride.rows, g.stride.cols);
    let stride_ok =
        sr == sc && (sr == 1 || (sr == 2 && kh == STRIDE_2_KERNEL && kw == STRIDE_2_KERNEL));
    if !stride_ok {
        report.warn(
            Rule::StrideKernel,
            name,
            format!("stride {sr}x{sc} with a {kh}x{kw} kernel: the AKD1000 supports stride 1, and stride 2 only with {k}x{k} kernels", k = STRIDE_2_KERNEL),
        );
    }
    if g.padding == Padding::Valid {
        report.warn(
            Rule::ValidPadding,
            name,
            "'valid' padding is only supported on the input convolution ('same' elsewhere)",
        );
    }
    let (bits, rule, what): (&[u8], _, _) = if separable {
        (
            &SEPARABLE_WEIGHT_BITS,
            Rule::SeparableWeightBits,
            "separable",
        )
    } else {
        (&WEIGHT_BITS, Rule::HardwareWeightBits, "convolutional")
    };
    if !bits.contains(&g.weights_bits) {
        report.warn(
            rule,
            name,
            format!(
                "{what} layers support {}-bit weights, found {}",
                number_list(bits),
                g.weights_bits
            ),
        );
    }
}

fn fully_connected_warnings(p: &PlannedLayer, report: &mut Report) {
    let g = &p.geometry;
    let name = p.name.as_str();
    if g.input.rows != 1 || g.input.cols != 1 {
        report.warn(
            Rule::FullyConnectedInput,
            name,
            format!(
                "a fully connected layer takes a 1x1xC input on the AKD1000, found {}x{}x{}",
                g.input.rows, g.input.cols, g.input.channels
            ),
        );
    }
    if g.input.len() > FC_MAX_INPUTS {
        report.warn(
            Rule::FullyConnectedInputSize,
            name,
            format!("at most {FC_MAX_INPUTS} inputs, found {}", g.input.len()),
        );
    }
    if !WEIGHT_BITS.contains(&g.weights_bits) {
        report.warn(
            Rule::HardwareWeightBits,
            name,
            format!(
                "fully connected layers support {}-bit weights, found {}",
                number_list(&WEIGHT_BITS),
                g.weights_bits
            ),
        );
    }
}

fn pool_text(size: Window, stride: Window) -> String {
    format!(
        "{}x{} stride {}x{}",
        size.rows, size.cols, stride.rows, stride.cols
    )
}

fn pooling_warnings(chain: &Chain, plan: &[PlannedLayer], i: usize, report: &mut Report) {
    let p = &plan[i];
    let g = &p.geometry;
    let pool = pooling_name(chain, p);
    let name = p.name.as_str();
    match g.pooling {
        Pooling::Max { size, stride } => {
            let size_ok = size.rows == size.cols && MAX_POOL_SIZES.contains(&size.rows);
            let stride_ok = stride.rows == stride.cols
                && MAX_POOL_STRIDES.contains(&stride.rows)
                && stride.rows <= size.rows;
            if !size_ok || !stride_ok {
                report.warn(
                    Rule::MaxPoolSize,
                    pool,
                    format!(
                        "max pooling (of `{name}`) supports {} windows with stride {} (not above the size), found {}",
                        square_list(&MAX_POOL_SIZES).replace(" and ", " or "),
                        number_list(&MAX_POOL_STRIDES),
                        pool_text(size, stride)
                    ),
                );
            }
            let follower_ok = plan.get(i + 1).is_some_and(|n| {
                matches!(
                    n.geometry.kind,
                    LayerKind::Convolutional | LayerKind::SeparableConvolutional
                )
            });
            if !follower_ok {
                report.warn(
                    Rule::MaxPoolFollower,
                    pool,
                    format!("`{name}` with max pooling must be followed by a Convolutional or SeparableConvolutional layer"),
                );
            }
        }
        Pooling::GlobalAverage => {
            // Akida's width is the NHWC row count, its rows the NHWC columns.
            let conv = g.conv_output().unwrap_or(Dims::new(0, 0, 0));
            if !GLOBAL_POOL_ROWS.contains(&conv.rows) || conv.cols < GLOBAL_POOL_MIN_COLS {
                report.warn(
                    Rule::GlobalPoolSize,
                    pool,
                    format!(
                        "global average pooling (of `{name}`) needs an input of {} to {} rows and at least {GLOBAL_POOL_MIN_COLS} columns, found {}x{}",
                        GLOBAL_POOL_ROWS.start(),
                        GLOBAL_POOL_ROWS.end(),
                        conv.rows,
                        conv.cols
                    ),
                );
            }
        }
        Pooling::None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_the_messages_always_did() {
        assert_eq!(square_list(&INPUT_KERNELS), "3x3, 5x5 and 7x7");
        assert_eq!(square_list(&CONV_KERNELS), "1x1, 3x3, 5x5 and 7x7");
        assert_eq!(number_list(&WEIGHT_BITS), "1, 2 or 4");
        assert_eq!(number_list(&SEPARABLE_WEIGHT_BITS), "2 or 4");
        assert_eq!(
            square_list(&MAX_POOL_SIZES).replace(" and ", " or "),
            "1x1 or 2x2"
        );
    }
}
