//! `model.summary()` as tf_keras 2.19 prints it (`layer_utils.print_summary`):
//! three columns for a chain of layers, four (with "Connected to") for other
//! graphs, long cells wrapped onto continuation lines, then the parameter
//! totals with their float32 memory size.
//!
//! The default width is 110 characters, the width of the reference
//! summaries in `tests/data/reference/zoo/`.

use super::{Model, Shape};

/// Line length of the reference summaries.
pub const DEFAULT_LINE_LENGTH: usize = 110;

impl Model {
    /// The summary at the default width.
    pub fn summary(&self) -> String {
        self.summary_with_width(DEFAULT_LINE_LENGTH)
    }

    /// The summary with lines of `line_length` characters.
    pub fn summary_with_width(&self, line_length: usize) -> String {
        let sequential = self.layers.iter().all(|l| l.inbound.len() <= 1)
            && self.outputs.len() <= 1
            && self.inputs.len() <= 1
            && !has_branches(self);
        let fractions: &[f64] = if sequential {
            &[0.45, 0.85, 1.0]
        } else {
            &[0.3, 0.6, 0.7, 1.0]
        };
        let positions: Vec<usize> = fractions
            .iter()
            .map(|f| (line_length as f64 * f) as usize)
            .collect();
        let mut header = vec!["Layer (type)", "Output Shape", "Param #"];
        if !sequential {
            header.push("Connected to");
        }
        let mut out = Vec::new();
        out.push(format!("Model: \"{}\"", self.name));
        out.push("_".repeat(line_length));
        let header: Vec<String> = header.into_iter().map(str::to_owned).collect();
        print_row(&mut out, &header, &positions);
        out.push("=".repeat(line_length));
        let shapes = self.known_output_shapes();
        for (layer, shape) in self.layers.iter().zip(shapes) {
            let is_input = matches!(layer.config, super::LayerConfig::InputLayer { .. });
            let shape = match shape {
                Some(s) if is_input => format!("[{}]", shape_text(&s)),
                Some(s) => shape_text(&s),
                None => "?".to_owned(),
            };
            let mut row = vec![
                format!("{} ({})", layer.name, layer.class_name()),
                shape,
                layer.param_count().total().to_string(),
            ];
            if !sequential {
                let connected: Vec<String> = layer
                    .inbound
                    .iter()
                    .map(|n| format!("'{n}[0][0]'"))
                    .collect();
                row.push(format!("[{}]", connected.join(", ")));
            }
            print_row(&mut out, &row, &positions);
            out.push(" ".repeat(line_length));
        }
        out.push("=".repeat(line_length));
        let count = self.param_count();
        let total = count.total();
        out.push(format!(
            "Total params: {total} ({})",
            readable_size(total * 4)
        ));
        out.push(format!(
            "Trainable params: {} ({})",
            count.trainable,
            readable_size(count.trainable * 4)
        ));
        out.push(format!(
            "Non-trainable params: {} ({})",
            count.non_trainable,
            readable_size(count.non_trainable * 4)
        ));
        out.push("_".repeat(line_length));
        let mut text = out.join("\n");
        text.push('\n');
        text
    }
}

/// Whether a layer feeds more than one other layer.
fn has_branches(model: &Model) -> bool {
    let mut seen = std::collections::HashSet::new();
    model
        .layers
        .iter()
        .flat_map(|l| l.inbound.iter())
        .any(|n| !seen.insert(n.as_str()))
}

/// Python's repr of a batch shape tuple: `(None, 32, 32, 3)`, `(None, 10)`.
fn shape_text(shape: &Shape) -> String {
    if shape.is_empty() {
        return "(None,)".to_owned();
    }
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("(None, {})", dims.join(", "))
}

/// Keras `readable_memory_size`: bytes in the largest unit below 1024.
fn readable_size(bytes: usize) -> String {
    let units = ["Byte", "KB", "MB", "GB", "TB", "PB"];
    let mut size = bytes as f64;
    for unit in units {
        if size / 1024.0 < 1.0 {
            return format!("{size:.2} {unit}");
        }
        size /= 1024.0;
    }
    format!("{size:.2} PB")
}

/// Keras `print_row`: each cell is cut to its column (2 spaces apart), at
/// the first `),` / `},` / `],` / `',` that fits, and the rest continues on
/// the following lines.
fn print_row(out: &mut Vec<String>, fields: &[String], positions: &[usize]) {
    let mut left: Vec<Vec<char>> = fields.iter().map(|f| f.chars().collect()).collect();
    let last = positions.len() - 1;
    while left.iter().any(|f| !f.is_empty()) {
        let mut line = String::new();
        for col in 0..left.len() {
            let start = if col > 0 { positions[col - 1] } else { 0 };
            let end = positions[col];
            let space = if col != last { 2 } else { 0 };
            let mut cutoff = end.saturating_sub(start).saturating_sub(space);
            if col != last {
                cutoff = cutoff.saturating_sub(1);
            }
            let fit_len = cutoff.min(left[col].len());
            let fit: String = left[col][..fit_len].iter().collect();
            let breaks = ["),", "},", "],", "',"];
            if let Some(b) = breaks
                .iter()
                .filter_map(|b| fit.find(b).map(|i| i + b.len()))
                .min()
            {
                cutoff = b;
            }
            let take = cutoff.min(left[col].len());
            if col == 0 {
                line.push(' ');
            }
            line.extend(&left[col][..take]);
            line.push_str(&" ".repeat(space));
            left[col].drain(..take);
            let width = line.chars().count();
            line.push_str(&" ".repeat(end.saturating_sub(width)));
        }
        out.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_match_keras() {
        assert_eq!(readable_size(23713 * 4), "92.63 KB");
        assert_eq!(readable_size(21901696 * 4), "83.55 MB");
        assert_eq!(readable_size(0), "0.00 Byte");
        assert_eq!(readable_size(640 * 4), "2.50 KB");
    }

    #[test]
    fn long_cells_wrap_like_keras() {
        let mut out = Vec::new();
        let fields = vec![
            "separable_4_global_avg (GlobalAveragePooling2D)".to_owned(),
            "(None, 64)".to_owned(),
            "0".to_owned(),
        ];
        print_row(&mut out, &fields, &[49, 93, 110]);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            format!(
                " separable_4_global_avg (GlobalAveragePooling2D  (None, 64){}0{}",
                " ".repeat(34),
                " ".repeat(16)
            )
        );
        assert_eq!(out[1].trim_end(), " )");
        assert_eq!(out[1].len(), 110);
    }
}
