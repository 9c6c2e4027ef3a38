//! Running layers and models on caller-provided buffers, no heap.
//!
//! A layer is: potentials of its neural part (a kernel), then pooling, then
//! 20-bit saturation (all kinds but the input convolution), then either the
//! step activation into levels or, for a last layer without activation, the
//! raw potentials.

use crate::activation;
use crate::kernels::{self, Kernel, KernelWeights};
use crate::layer::{Layer, Pooling};
use crate::model::{Model, WorkspaceSizes};
use crate::pooling;
use crate::saturation;

/// Where a layer writes its output.
pub enum LayerOutputMut<'o> {
    Levels(&'o mut [u8]),
    Potentials(&'o mut [i32]),
}

/// What a layer produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerOutput<'o> {
    /// uint8 levels (layers with activation).
    Levels(&'o [u8]),
    /// int32 potentials after pooling and saturation (last layer without activation).
    Potentials(&'o [i32]),
}

/// Why inference could not start (buffers or input of the wrong size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("input holds {found} values, the model takes {expected}")]
    InputLength { expected: usize, found: usize },
    #[error("workspace buffer `{buffer}` holds {found} cells, {needed} needed")]
    Workspace {
        buffer: &'static str,
        needed: usize,
        found: usize,
    },
}

/// Pooling, saturation and activation of conv-part `potentials` into `out`.
pub fn finish(layer: &Layer, potentials: &[i32], out: LayerOutputMut) {
    let conv = layer.conv_dims();
    let od = layer.output_dims();
    let pads = layer.pool_pads();
    let saturates = layer.kind.saturates();
    let f = od.channels as usize;
    let bits = layer.act_bits;
    let emit = |index: usize, filter: usize, p: i64, out: &mut LayerOutputMut| {
        let p = if saturates {
            saturation::saturate(p)
        } else {
            p.clamp(i32::MIN as i64, i32::MAX as i64) as i32
        };
        match out {
            LayerOutputMut::Levels(levels) => {
                let divisor = activation::step_divisor(layer.act_step.get(filter));
                levels[index] = activation::level(p, layer.threshold.get(filter), divisor, bits);
            }
            LayerOutputMut::Potentials(buf) => buf[index] = p,
        }
    };
    let mut out = out;
    match layer.pooling {
        Pooling::None => {
            for (index, &p) in potentials[..od.len()].iter().enumerate() {
                emit(index, index % f, p as i64, &mut out);
            }
        }
        Pooling::Max { size, stride } => {
            let pool = pooling::MaxPool {
                size,
                stride,
                pad_before: pads,
            };
            for r in 0..od.rows as usize {
                for c in 0..od.cols as usize {
                    for filter in 0..f {
                        let p = pooling::max_at(potentials, conv, &pool, (r, c), filter);
                        emit(od.index(r, c, filter), filter, p, &mut out);
                    }
                }
            }
        }
        Pooling::GlobalAverage => {
            for filter in 0..f {
                let p = pooling::global_sum(potentials, conv, filter);
                emit(filter, filter, p, &mut out);
            }
        }
    }
}

/// Runs one validated layer: `input` holds its HWC input (image or levels),
/// `scratch` at least `layer.scratch_len()` cells, `out` the output size.
pub fn run_layer(
    layer: &Layer,
    weights: KernelWeights,
    kernel: Kernel,
    input: &[u8],
    scratch: &mut [i32],
    out: LayerOutputMut,
) {
    let potentials = kernels::potentials(layer, weights, kernel, input, scratch);
    finish(layer, potentials, out);
}

/// Caller-provided buffers for [`forward`], sized by [`Model::workspace_sizes`].
pub struct Workspace<'w> {
    pub levels: [&'w mut [u8]; 2],
    pub scratch: &'w mut [i32],
    pub weights: &'w mut [i8],
    pub output: &'w mut [i32],
}

impl<'w> Workspace<'w> {
    fn check(&self, needed: WorkspaceSizes) -> Result<(), ForwardError> {
        let have = [
            ("levels[0]", self.levels[0].len(), needed.levels),
            ("levels[1]", self.levels[1].len(), needed.levels),
            ("scratch", self.scratch.len(), needed.scratch),
            ("weights", self.weights.len(), needed.weights),
            ("output", self.output.len(), needed.output),
        ];
        for (buffer, found, needed) in have {
            if found < needed {
                return Err(ForwardError::Workspace {
                    buffer,
                    needed,
                    found,
                });
            }
        }
        Ok(())
    }
}

/// Runs a validated model on one HWC uint8 input, unpacking each layer's
/// weights into the workspace as it goes. `observe(i, output)` sees every
/// layer's output. Returns the last layer's output, borrowed from the workspace.
pub fn forward<'w>(
    model: &Model,
    input: &[u8],
    ws: &'w mut Workspace,
    kernel: Kernel,
    mut observe: impl FnMut(usize, LayerOutput<'_>),
) -> Result<LayerOutput<'w>, ForwardError> {
    let expected = model.input().len();
    if input.len() != expected {
        return Err(ForwardError::InputLength {
            expected,
            found: input.len(),
        });
    }
    ws.check(model.workspace_sizes())?;
    let [level_a, level_b] = &mut ws.levels;
    // `src` holds the current layer's input levels after layer 0.
    let (mut src, mut dst): (&mut [u8], &mut [u8]) = (level_a, level_b);
    let last = model.layers.len() - 1;
    for (i, layer) in model.layers.iter().enumerate() {
        let weights = kernels::unpack_weights(layer, ws.weights);
        let layer_input: &[u8] = if i == 0 {
            input
        } else {
            &src[..layer.input.len()]
        };
        let n = layer.output_dims().len();
        if layer.activation {
            run_layer(
                layer,
                weights,
                kernel,
                layer_input,
                ws.scratch,
                LayerOutputMut::Levels(&mut dst[..n]),
            );
            observe(i, LayerOutput::Levels(&dst[..n]));
        } else {
            run_layer(
                layer,
                weights,
                kernel,
                layer_input,
                ws.scratch,
                LayerOutputMut::Potentials(&mut ws.output[..n]),
            );
            observe(i, LayerOutput::Potentials(&ws.output[..n]));
        }
        if i != last {
            core::mem::swap(&mut src, &mut dst);
        } else if layer.activation {
            return Ok(LayerOutput::Levels(&dst[..n]));
        }
    }
    let n = model.output().len();
    Ok(LayerOutput::Potentials(&ws.output[..n]))
}

/// `predict` of a model whose last layer has no activation: each potential
/// rescaled to `f32(p - threshold) / act_step` of its filter.
pub fn rescale_output(layer: &Layer, potentials: &[i32], out: &mut [f32]) {
    let f = layer.filters as usize;
    for (k, (&p, o)) in potentials.iter().zip(out.iter_mut()).enumerate() {
        let filter = k % f;
        *o = activation::rescale(p, layer.threshold.get(filter), layer.act_step.get(filter));
    }
}
