//! cnn2snn's post-conversion fix of Akida 1.0 activation variables
//! (`transforms/act_step_equalization.py`), on every layer but the last:
//!
//! - an act_step above the hardware range (2^16 - 1 for CNP layers, 2^20 - 1
//!   for the input layer) is clipped to it; the threshold of a layer with
//!   activation moves by `round(0.5 * (new - old)) / 2^(act_bits - 4)`, and
//!   the next layer's weights on that input channel are floor-divided by
//!   `old / new`;
//! - a threshold above 2^19 - 1 (CNP) or 2^23 - 1 (input layer) is clipped.
//!
//! Each fix is reported, as cnn2snn warns. cnn2snn divides the next layer's
//! weights by broadcasting the ratios over their third axis, which fails for
//! a fully connected layer whose input is not 1x1xC (its rows are the
//! C*W*H inputs): such a model is refused, as cnn2snn refuses it.

use akida_core::LayerKind;

use crate::formats::akd::ConvertedLayer;

use super::Cnn2snnError;

const HRC_ACT_STEP_LIMIT: f32 = ((1 << 20) - 1) as f32;
const HRC_THRESHOLD_LIMIT: i32 = (1 << 23) - 1;
const CNP_ACT_STEP_LIMIT: f32 = ((1 << 16) - 1) as f32;
const CNP_THRESHOLD_LIMIT: i32 = (1 << 19) - 1;

fn is_hrc(layer: &ConvertedLayer) -> bool {
    layer.params.kind == LayerKind::InputConvolutional
}

/// Applies both fixes to a chain of converted layers; returns one note per
/// layer changed.
pub fn fix_activation_variables(
    layers: &mut [ConvertedLayer],
) -> Result<Vec<String>, Cnn2snnError> {
    let mut notes = equalize_act_steps(layers)?;
    notes.extend(saturate_thresholds(layers));
    Ok(notes)
}

fn equalize_act_steps(layers: &mut [ConvertedLayer]) -> Result<Vec<String>, Cnn2snnError> {
    let mut notes = Vec::new();
    let n = layers.len();
    for i in 0..n.saturating_sub(1) {
        let layer = &mut layers[i];
        let limit = if is_hrc(layer) {
            HRC_ACT_STEP_LIMIT
        } else {
            CNP_ACT_STEP_LIMIT
        };
        if !layer.act_step.iter().any(|s| s > limit) {
            continue;
        }
        let next = &layers[i + 1];
        let inputs = next.params.input;
        let broadcasts = next.params.kind != LayerKind::FullyConnected
            || inputs.rows * inputs.cols == 1
            || inputs.channels == 1;
        if !broadcasts {
            return Err(Cnn2snnError::Equalization {
                layer: layers[i].name.clone(),
                next: next.name.clone(),
                input: inputs,
            });
        }
        let layer = &mut layers[i];
        let ratio: Vec<f32> = layer
            .act_step
            .iter()
            .map(|s| if s > limit { s / limit } else { 1.0 })
            .collect();
        let clipped = ratio.iter().filter(|&&r| r != 1.0).count();
        let divisor = 2f32.powi(layer.params.act_bits as i32 - 4);
        for c in 0..ratio.len() {
            let original = layer.act_step.get(c);
            if original > limit {
                layer.act_step.set(c, limit);
                if layer.params.activation {
                    let effect = (0.5 * (limit - original)).round_ties_even() / divisor;
                    let threshold = layer.threshold.get(c).wrapping_add(effect as i32);
                    layer.threshold.set(c, threshold);
                }
            }
        }
        notes.push(format!(
            "layer `{}`: {clipped} act_step value(s) above {limit} clipped; thresholds and the next layer's weights adjusted",
            layer.name
        ));
        divide_next_weights(&mut layers[i + 1], &ratio);
    }
    Ok(notes)
}

/// Floor-divides the next layer's weights of input channel `c` by `ratio[c]`.
fn divide_next_weights(next: &mut ConvertedLayer, ratio: &[f32]) {
    let channels = ratio.len();
    let [_, _, rows, cols] = next.weights().shape.map(|d| d as usize);
    let count = next.weights().count();
    let input = next.params.input;
    let (h, wd) = (input.rows as usize, input.cols as usize);
    for r in 0..rows {
        // Input channel of weight row r: axis 2 is the channel for
        // convolutions; for a fully connected layer rows are in Akida's
        // (C, W, H) order, so the channel is r / (W * H).
        let c = match next.params.kind {
            LayerKind::FullyConnected => r / (h * wd).max(1),
            _ => r,
        };
        let ratio = ratio[c.min(channels - 1)];
        if ratio == 1.0 {
            continue;
        }
        for tap in 0..count / (rows * cols) {
            for k in 0..cols {
                let at = (tap * rows + r) * cols + k;
                let v = (next.weights().get(at) as f32 / ratio).floor() as i8;
                // A ratio above 1 shrinks the value towards zero, within range.
                next.set_weight(at, v)
                    .expect("a weight divided by a ratio above 1 fits its bits");
            }
        }
    }
}

fn saturate_thresholds(layers: &mut [ConvertedLayer]) -> Vec<String> {
    let mut notes = Vec::new();
    let n = layers.len();
    for layer in layers.iter_mut().take(n.saturating_sub(1)) {
        let limit = if is_hrc(layer) {
            HRC_THRESHOLD_LIMIT
        } else {
            CNP_THRESHOLD_LIMIT
        };
        let high = layer.threshold.iter().filter(|&t| t > limit).count();
        if high > 0 {
            for c in 0..layer.threshold.len() {
                let t = layer.threshold.get(c).min(limit);
                layer.threshold.set(c, t);
            }
            notes.push(format!(
                "The {} layer holds very high threshold values which are not compatible with the hardware. Those are clipped to the maximum supported value {limit}. Continuing execution.",
                layer.name
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use akida_core::{Dims, LayerParams, Padding, Pooling, Window};

    fn layer(kind: LayerKind, input: Dims, filters: u32, weights: Vec<i8>) -> ConvertedLayer {
        let g = LayerParams {
            kind,
            input,
            filters,
            kernel: if kind == LayerKind::FullyConnected {
                Window::ONE
            } else {
                Window::new(1, 1)
            },
            stride: Window::ONE,
            padding: if kind == LayerKind::FullyConnected {
                Padding::Valid
            } else {
                Padding::Same
            },
            padding_value: 0,
            pooling: Pooling::None,
            activation: true,
            act_bits: 4,
            weights_bits: 8,
        };
        ConvertedLayer::new(
            "l",
            g,
            &weights,
            None,
            &vec![10; filters as usize],
            &vec![1.0; filters as usize],
        )
        .unwrap()
    }

    #[test]
    fn large_act_steps_are_clipped_and_compensated() {
        let mut first = layer(LayerKind::Convolutional, Dims::new(2, 2, 2), 2, vec![1; 4]);
        first.act_step = [131070.0, 2.0].into_iter().collect(); // twice the CNP limit, and fine
        let second = layer(
            LayerKind::Convolutional,
            Dims::new(2, 2, 2),
            2,
            vec![7, -7, 3, 3],
        );
        let mut layers = vec![first, second];
        let notes = fix_activation_variables(&mut layers).unwrap();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("act_step"));
        assert_eq!(
            layers[0].act_step.iter().collect::<Vec<_>>(),
            [65535.0, 2.0]
        );
        // effect = round(0.5 * (65535 - 131070)) / 2^0 = -32768 (ties to even of -32767.5)
        assert_eq!(
            layers[0].threshold.iter().collect::<Vec<_>>(),
            [10 - 32768, 10]
        );
        // Channel 0 rows divided by 2 (floor), channel 1 untouched.
        assert_eq!(
            layers[1].weights().values().collect::<Vec<_>>(),
            [3, -4, 3, 3]
        );
    }

    #[test]
    fn equalizing_into_a_fully_connected_layer_needs_a_1x1_input() {
        // cnn2snn broadcasts 2 ratios over the 8 rows of a 2x2x2 input: it fails.
        let mut first = layer(LayerKind::Convolutional, Dims::new(2, 2, 2), 2, vec![1; 4]);
        first.act_step = [131070.0, 2.0].into_iter().collect();
        let dense = layer(
            LayerKind::FullyConnected,
            Dims::new(2, 2, 2),
            2,
            vec![1; 16],
        );
        let mut layers = vec![first.clone(), dense];
        match fix_activation_variables(&mut layers) {
            Err(Cnn2snnError::Equalization { layer, input, .. }) => {
                assert_eq!((layer.as_str(), input), ("l", Dims::new(2, 2, 2)))
            }
            other => panic!("{other:?}"),
        }
        // On a 1x1x2 input the rows are the channels: it works.
        let dense = layer(LayerKind::FullyConnected, Dims::new(1, 1, 2), 2, vec![6; 4]);
        let mut layers = vec![first, dense];
        fix_activation_variables(&mut layers).unwrap();
        assert_eq!(
            layers[1].weights().values().collect::<Vec<_>>(),
            [3, 3, 6, 6]
        );
    }

    #[test]
    fn high_thresholds_are_clipped_with_a_note() {
        let mut first = layer(
            LayerKind::InputConvolutional,
            Dims::new(2, 2, 1),
            2,
            vec![1; 2],
        );
        first.threshold = [1 << 24, 5].into_iter().collect();
        let second = layer(
            LayerKind::FullyConnected,
            Dims::new(2, 2, 2),
            2,
            vec![1; 16],
        );
        let mut layers = vec![first, second];
        let notes = fix_activation_variables(&mut layers).unwrap();
        assert_eq!(
            layers[0].threshold.iter().collect::<Vec<_>>(),
            [HRC_THRESHOLD_LIMIT, 5]
        );
        assert!(notes[0].contains("clipped"));
    }
}
