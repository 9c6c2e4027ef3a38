//! The neural part of each layer kind, computed two ways that must agree bit
//! for bit: a plain dense [`reference`] kernel that gathers every input of
//! every neuron, and an [`event`] kernel that visits only non-zero input
//! levels ("spikes") and scatters their contributions, as the NSoC does.
//!
//! Both take the weights unpacked into one canonical order (see
//! [`unpack_weights`]) and write the potentials of the neural part, before
//! pooling, into an i32 buffer in HWC order.

pub mod event;
#[allow(unsafe_code)] // SIMD intrinsics behind checked CPU features.
pub mod fast;
pub mod reference;

use crate::dims::{Dims, Window};
use crate::layer::{Layer, LayerKind};

/// Which kernel computes the neural part of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Dense gather over every input, the obvious definition.
    Reference,
    /// Scatter of non-zero inputs only.
    Event,
}

/// The geometry of a sliding-window (convolution or depthwise) product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub input: Dims,
    /// Rows and cols of the output; channels = filters (or input channels
    /// for a depthwise product).
    pub output: Dims,
    pub kernel: Window,
    pub stride: Window,
    /// Padding (rows, cols) before the first input row and col.
    pub pads: (usize, usize),
}

impl ConvShape {
    /// The convolution geometry of a validated layer (depthwise part for a
    /// separable layer has `output.channels == input.channels`).
    pub fn of(layer: &Layer) -> ConvShape {
        ConvShape {
            input: layer.input,
            output: layer.conv_dims(),
            kernel: layer.kernel,
            stride: layer.stride,
            pads: layer.conv_pads(),
        }
    }

    /// The same geometry with `channels` output channels.
    pub fn with_output_channels(mut self, channels: u32) -> ConvShape {
        self.output.channels = channels;
        self
    }

    /// Input cell under kernel tap (`i`, `j`) of output cell (`oy`, `ox`),
    /// `None` when it lies in the padding.
    #[inline(always)]
    pub fn input_cell(&self, oy: usize, ox: usize, i: usize, j: usize) -> Option<(usize, usize)> {
        let r = (oy * self.stride.rows as usize + i).checked_sub(self.pads.0)?;
        let c = (ox * self.stride.cols as usize + j).checked_sub(self.pads.1)?;
        (r < self.input.rows as usize && c < self.input.cols as usize).then_some((r, c))
    }

    /// Output cell that kernel tap `i` (resp. `j`) of padded-frame row `pr`
    /// (resp. col) feeds, along one axis.
    #[inline(always)]
    pub fn output_of(padded: usize, tap: usize, stride: u32, out_len: u32) -> Option<usize> {
        let d = padded.checked_sub(tap)?;
        let s = stride as usize;
        if d % s != 0 {
            return None;
        }
        let o = d / s;
        (o < out_len as usize).then_some(o)
    }
}

/// A layer's weights unpacked to one i8 per weight, in the kernels' order.
#[derive(Clone, Copy, Debug)]
pub struct KernelWeights<'w> {
    /// Input and plain convolution: (kh, kw, cin, f) for cross-correlation.
    /// Separable: depthwise (kh, kw, cin) for cross-correlation.
    /// Fully connected: (rows * cols * channels of the input in HWC order, units).
    pub main: &'w [i8],
    /// Separable: pointwise (cin, f). Empty for other kinds.
    pub pointwise: &'w [i8],
}

/// Unpacks a validated layer's weights into `out` (at least
/// `layer.unpacked_len()` long) in the kernels' order: Akida's stored
/// (flipped) convolution kernels are flipped back so every kernel computes a
/// cross-correlation, and the fully connected rows move from Akida's
/// (C, W, H) flattening to HWC.
pub fn unpack_weights<'w>(layer: &Layer, out: &'w mut [i8]) -> KernelWeights<'w> {
    let w = &layer.weights;
    let n_main = w.count();
    let (main, rest) = out.split_at_mut(n_main);
    let [kh, kw, cin, f] = w.shape.map(|d| d as usize);
    match layer.kind {
        LayerKind::InputConvolutional => {
            for (k, slot) in main.iter_mut().enumerate() {
                *slot = w.get(k);
            }
        }
        LayerKind::Convolutional | LayerKind::SeparableConvolutional => {
            // stored[i][j][c][f] holds the flipped kernel.
            let plane = cin * f;
            for i in 0..kh {
                for j in 0..kw {
                    let src = ((kh - 1 - i) * kw + (kw - 1 - j)) * plane;
                    let dst = (i * kw + j) * plane;
                    for k in 0..plane {
                        main[dst + k] = w.get(src + k);
                    }
                }
            }
        }
        LayerKind::FullyConnected => {
            let d = layer.input;
            let (rows, cols, ch) = (d.rows as usize, d.cols as usize, d.channels as usize);
            let units = f;
            for c in 0..ch {
                for col in 0..cols {
                    for row in 0..rows {
                        let src = (c * cols * rows + col * rows + row) * units;
                        let dst = d.index(row, col, c) * units;
                        for u in 0..units {
                            main[dst + u] = w.get(src + u);
                        }
                    }
                }
            }
        }
    }
    let pointwise: &'w [i8] = match &layer.weights_pw {
        Some(pw) => {
            let n = pw.count();
            let dst = &mut rest[..n];
            for (k, slot) in dst.iter_mut().enumerate() {
                *slot = pw.get(k);
            }
            dst
        }
        None => &[],
    };
    KernelWeights { main, pointwise }
}

/// Potentials of the neural part of `layer` into `scratch[..conv_len]`
/// (a separable layer also uses the following `rows*cols*cin` cells for its
/// depthwise potentials). Returns the conv-part potentials.
pub fn potentials<'s>(
    layer: &Layer,
    weights: KernelWeights,
    kernel: Kernel,
    input: &[u8],
    scratch: &'s mut [i32],
) -> &'s [i32] {
    let shape = ConvShape::of(layer);
    let n = shape.output.len();
    let (out, rest) = scratch.split_at_mut(n);
    match (layer.kind, kernel) {
        (LayerKind::InputConvolutional | LayerKind::Convolutional, Kernel::Reference) => {
            reference::convolution(&shape, weights.main, input, layer.padding_value, out)
        }
        (LayerKind::InputConvolutional | LayerKind::Convolutional, Kernel::Event) => {
            event::convolution(&shape, weights.main, input, layer.padding_value, out)
        }
        (LayerKind::SeparableConvolutional, k) => {
            let dw_shape = shape.with_output_channels(layer.input.channels);
            let depthwise = &mut rest[..dw_shape.output.len()];
            let cin = layer.input.channels as usize;
            match k {
                Kernel::Reference => {
                    reference::depthwise(&dw_shape, weights.main, input, depthwise);
                    reference::pointwise(depthwise, cin, weights.pointwise, out);
                }
                Kernel::Event => {
                    event::depthwise(&dw_shape, weights.main, input, depthwise);
                    event::pointwise(depthwise, cin, weights.pointwise, out);
                }
            }
        }
        (LayerKind::FullyConnected, Kernel::Reference) => {
            reference::fully_connected(weights.main, input, out)
        }
        (LayerKind::FullyConnected, Kernel::Event) => {
            event::fully_connected(weights.main, input, out)
        }
    }
    out
}
