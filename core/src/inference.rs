//! Running layers and models on caller-provided buffers, no heap.
//!
//! A layer is: potentials of its neural part (a [`Backend`]'s kernel), then
//! the [`crate::tail`] (pooling, saturation, activation). [`forward`] runs a
//! whole model layer after layer, for any [`Preparation`]: a plain backend
//! (the firmware), or the host runtime's prepared layers.

use crate::activation;
use crate::kernels::fast::{self, SimdTask};
use crate::kernels::{self, Backend, PrepBuffers, Preparation, Prepared};
use crate::model::{ValidLayer, ValidModel};
use crate::tail::{self, Activation, Band};

/// Where a layer writes its output.
pub enum LayerOutputMut<'o> {
    Levels(&'o mut [u8]),
    Potentials(&'o mut [i32]),
}

impl LayerOutputMut<'_> {
    /// Cells it holds.
    fn cells(&self) -> usize {
        match self {
            LayerOutputMut::Levels(l) => l.len(),
            LayerOutputMut::Potentials(p) => p.len(),
        }
    }

    /// The same output, borrowed again.
    fn reborrow(&mut self) -> LayerOutputMut<'_> {
        match self {
            LayerOutputMut::Levels(l) => LayerOutputMut::Levels(l),
            LayerOutputMut::Potentials(p) => LayerOutputMut::Potentials(p),
        }
    }
}

/// What a layer produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerOutput<'o> {
    /// uint8 levels (layers with activation).
    Levels(&'o [u8]),
    /// int32 potentials after pooling and saturation (last layer without activation).
    Potentials(&'o [i32]),
}

/// Why inference could not run (buffers or input of the wrong size, or an
/// input value above what the model's InputData layer takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("input holds {found} values, the model takes {expected}")]
    InputLength { expected: usize, found: usize },
    /// The engine refuses such an input too ("Input values must be in the
    /// range (0, 15). Got 16."), naming the first one in HWC order.
    #[error("input value {value} at (row {row}, col {col}, channel {channel}) is out of range: the model's InputData layer takes {bits}-bit values, 0 to {max}")]
    InputValue {
        row: u32,
        col: u32,
        channel: u32,
        value: u8,
        max: u8,
        bits: u8,
    },
    #[error("workspace buffer `{buffer}` holds {found} cells, {needed} needed")]
    Workspace {
        buffer: &'static str,
        needed: usize,
        found: usize,
    },
    /// [`run_layer_band`] on a layer or backend that cannot run in bands.
    #[error("output rows {start}..{end} of this layer cannot run as a band (fast kernel, no global average, rows inside the output)")]
    Band { start: usize, end: usize },
    /// [`run_layer_stacked`] on a backend other than the fast kernel, or
    /// with as many outputs as inputs.
    #[error("a stack of {inputs} inputs and {outputs} outputs cannot run (fast kernel, one output per input)")]
    Stack { inputs: usize, outputs: usize },
}

/// Buffers one layer computes in (see [`crate::WorkspaceSizes`]).
pub struct LayerBuffers<'w> {
    /// i32 potentials of the neural part (and depthwise potentials).
    pub scratch: &'w mut [i32],
    /// The fast kernel's left operand.
    pub a: &'w mut [i16],
    /// One pooled row of potentials.
    pub row: &'w mut [i32],
}

/// Runs one layer with prepared data: `input` holds its HWC input (image or
/// levels), `out` the output size.
pub fn run_layer(
    layer: &ValidLayer,
    prepared: &Prepared,
    input: &[u8],
    buffers: LayerBuffers,
    out: LayerOutputMut,
) -> Result<(), ForwardError> {
    let p = layer.params();
    let (scratch_len, a_len, row_len) = match &prepared.fast {
        Some(ops) => (ops.plan.scratch_len(), ops.plan.a_len, ops.plan.gemm.f_pad),
        None => (p.scratch_len(&layer.shapes), 0, p.filters as usize),
    };
    kernels::need("scratch", scratch_len, buffers.scratch.len())?;
    kernels::need("a", a_len, buffers.a.len())?;
    kernels::need("row", row_len, buffers.row.len())?;
    let cells = layer.shapes.conv.rows as usize * layer.shapes.conv.cols as usize;
    let task = LayerTask {
        layer,
        prepared,
        input,
        band: Band::all(layer),
        cells: 0..cells,
        buffers,
        out,
    };
    match prepared.backend {
        Backend::Fast(simd) => fast::with_simd(simd, task),
        _ => task.run(),
    }
    Ok(())
}

/// Runs output rows `rows` of one layer with the fast kernel (a band: its
/// conv cells only, [`tail::band_cells`]), so that bands of one image's
/// layer can run on several cores; `out` holds those rows' output only,
/// the buffers what the band needs (the layer's sizes are enough). The
/// bands of a layer together give what [`run_layer`] gives.
pub fn run_layer_band(
    layer: &ValidLayer,
    prepared: &Prepared,
    input: &[u8],
    rows: core::ops::Range<usize>,
    buffers: LayerBuffers,
    out: LayerOutputMut,
) -> Result<(), ForwardError> {
    let refuse = ForwardError::Band {
        start: rows.start,
        end: rows.end,
    };
    let (Backend::Fast(simd), Some(ops)) = (prepared.backend, &prepared.fast) else {
        return Err(refuse);
    };
    let Some(cells) = tail::band_cells(layer, rows.clone()) else {
        return Err(refuse);
    };
    let plan = &ops.plan;
    let a_len = cells.len() * plan.gemm.k_pad + fast::A_SLACK;
    need_fast(plan, 1, a_len, &buffers)?;
    let out_len = (rows.end - rows.start)
        * layer.shapes.output.cols as usize
        * layer.params().filters as usize;
    kernels::need("out", out_len, out.cells())?;
    let task = LayerTask {
        layer,
        prepared,
        input,
        band: Band {
            rows,
            first_cell: cells.start,
        },
        cells,
        buffers,
        out,
    };
    fast::with_simd(simd, task);
    Ok(())
}

/// Runs one layer for several inputs at once with the fast kernel: one
/// product for all of them ([`fast::potentials_stacked`]: the layer's B read
/// once for the stack), then each input's tail into its output. `buffers`
/// hold `inputs.len()` times the layer's `a` and `scratch` (one `row`);
/// each input is a whole layer input and each output a whole layer output.
pub fn run_layer_stacked(
    layer: &ValidLayer,
    prepared: &Prepared,
    inputs: &[&[u8]],
    buffers: LayerBuffers,
    outs: &mut [LayerOutputMut],
) -> Result<(), ForwardError> {
    let refuse = ForwardError::Stack {
        inputs: inputs.len(),
        outputs: outs.len(),
    };
    let (Backend::Fast(simd), Some(ops)) = (prepared.backend, &prepared.fast) else {
        return Err(refuse);
    };
    if inputs.len() != outs.len() {
        return Err(refuse);
    }
    let n = inputs.len();
    let plan = &ops.plan;
    need_fast(plan, n, n * plan.a_len, &buffers)?;
    let input_len = layer.params().input.len();
    for input in inputs {
        kernels::need("input", input_len, input.len())?;
    }
    for out in outs.iter() {
        kernels::need("out", layer.output_len(), out.cells())?;
    }
    let task = StackTask {
        layer,
        prepared,
        ops,
        simd,
        inputs,
        buffers,
        outs,
    };
    fast::with_simd(simd, task);
    Ok(())
}

/// Checks `buffers` against what the fast kernel of `plan` needs for `n`
/// inputs with `a_len` cells of A in all.
fn need_fast(
    plan: &fast::FastPlan,
    n: usize,
    a_len: usize,
    buffers: &LayerBuffers,
) -> Result<(), ForwardError> {
    let scratch = n * plan.scratch_len();
    kernels::need("scratch", scratch, buffers.scratch.len())?;
    kernels::need("a", a_len, buffers.a.len())?;
    kernels::need("row", plan.gemm.f_pad, buffers.row.len())
}

/// [`run_layer_stacked`]'s product then tails, compiled once per
/// instruction set.
struct StackTask<'l, 'p, 'i, 'w, 'o, 's> {
    layer: &'l ValidLayer<'l>,
    prepared: &'p Prepared<'p>,
    ops: &'p fast::FastOperands<'p>,
    simd: fast::Simd,
    inputs: &'i [&'i [u8]],
    buffers: LayerBuffers<'w>,
    outs: &'s mut [LayerOutputMut<'o>],
}

impl SimdTask for StackTask<'_, '_, '_, '_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let StackTask {
            layer,
            prepared,
            ops,
            simd,
            inputs,
            buffers,
            outs,
        } = self;
        let LayerBuffers { scratch, a, row } = buffers;
        let grid =
            fast::potentials_stacked(layer, ops, &prepared.weights, simd, inputs, a, scratch);
        let per_input = ops.plan.gemm.rows * grid.stride;
        let activation = tail_activation(layer, Some(ops));
        for (potentials, out) in grid.potentials.chunks_exact(per_input).zip(outs) {
            let grid = kernels::Grid {
                potentials,
                stride: grid.stride,
            };
            tail::finish(
                layer,
                grid,
                Band::all(layer),
                activation,
                row,
                out.reborrow(),
            );
        }
    }
}

/// How the tail finds `layer`'s levels: the fast operands' form where the
/// layer has an activation and fast operands, else by division.
fn tail_activation<'p>(
    layer: &ValidLayer,
    ops: Option<&'p fast::FastOperands<'p>>,
) -> Activation<'p> {
    match ops {
        Some(ops) if layer.params().activation => ops.activation(),
        _ => Activation::Divide,
    }
}

/// One layer's potentials then tail, compiled once per instruction set.
struct LayerTask<'l, 'p, 'i, 'w, 'o> {
    layer: &'l ValidLayer<'l>,
    prepared: &'p Prepared<'p>,
    input: &'i [u8],
    /// The output rows and the conv cells they need (all, or a band).
    band: Band,
    cells: core::ops::Range<usize>,
    buffers: LayerBuffers<'w>,
    out: LayerOutputMut<'o>,
}

impl SimdTask for LayerTask<'_, '_, '_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let LayerTask {
            layer,
            prepared,
            input,
            band,
            cells,
            buffers,
            out,
        } = self;
        let LayerBuffers { scratch, a, row } = buffers;
        let grid = kernels::potentials(layer, prepared, input, cells, a, scratch);
        let activation = tail_activation(layer, prepared.fast.as_ref());
        tail::finish(layer, grid, band, activation, row, out);
    }
}

/// Caller-provided buffers for [`forward`], sized by
/// [`ValidModel::workspace_sizes`].
pub struct Workspace<'w> {
    pub levels: [&'w mut [u8]; 2],
    pub scratch: &'w mut [i32],
    pub a: &'w mut [i16],
    pub row: &'w mut [i32],
    pub output: &'w mut [i32],
    /// Filled by a [`Preparation`] that prepares on the fly.
    pub prep: PrepBuffers<'w>,
}

/// Owned buffers of a [`Workspace`], sized by [`crate::WorkspaceSizes`].
#[cfg(feature = "std")]
#[derive(Clone, Debug, Default)]
pub struct WorkspaceBuffers {
    levels: [std::vec::Vec<u8>; 2],
    scratch: std::vec::Vec<i32>,
    a: std::vec::Vec<i16>,
    row: std::vec::Vec<i32>,
    output: std::vec::Vec<i32>,
    weights: std::vec::Vec<i8>,
    packed: std::vec::Vec<i16>,
    cuts: std::vec::Vec<i32>,
}

#[cfg(feature = "std")]
impl WorkspaceBuffers {
    /// Zeroed buffers of `sizes`.
    pub fn new(sizes: &crate::WorkspaceSizes) -> WorkspaceBuffers {
        use std::vec;
        WorkspaceBuffers {
            levels: [vec![0; sizes.levels], vec![0; sizes.levels]],
            scratch: vec![0; sizes.scratch],
            a: vec![0; sizes.a],
            row: vec![0; sizes.row],
            output: vec![0; sizes.output],
            weights: vec![0; sizes.weights],
            packed: vec![0; sizes.packed],
            cuts: vec![0; sizes.cuts],
        }
    }

    /// The workspace borrowing these buffers.
    pub fn workspace(&mut self) -> Workspace<'_> {
        let [a, b] = &mut self.levels;
        Workspace {
            levels: [a, b],
            scratch: &mut self.scratch,
            a: &mut self.a,
            row: &mut self.row,
            output: &mut self.output,
            prep: PrepBuffers {
                weights: &mut self.weights,
                packed: &mut self.packed,
                cuts: &mut self.cuts,
            },
        }
    }
}

/// Runs a valid model on one HWC uint8 input (an image, or the values of
/// its InputData layer, each at most [`ValidModel::max_input`]), each layer with the backend
/// and data `preparation` supplies. `observe(i, output)` sees every layer's
/// output. Returns the last layer's output, borrowed from the workspace.
pub fn forward<'w, B, S, P>(
    model: &ValidModel<B, S>,
    input: &[u8],
    ws: &'w mut Workspace,
    preparation: &P,
    mut observe: impl FnMut(usize, LayerOutput<'_>),
) -> Result<LayerOutput<'w>, ForwardError>
where
    B: AsRef<[u8]>,
    S: AsRef<str>,
    P: Preparation + ?Sized,
{
    let expected = model.input().len();
    if input.len() != expected {
        return Err(ForwardError::InputLength {
            expected,
            found: input.len(),
        });
    }
    model.check_input(input)?;
    let Workspace {
        levels: [level_a, level_b],
        scratch,
        a,
        row,
        output,
        prep,
    } = ws;
    // `src` holds the current layer's input levels after layer 0.
    let (mut src, mut dst): (&mut [u8], &mut [u8]) = (level_a, level_b);
    let last = model.len() - 1;
    for (i, layer) in model.layers().enumerate() {
        let layer_input: &[u8] = if i == 0 {
            input
        } else {
            &src[..layer.params().input.len()]
        };
        let prepared = preparation.prepare(i, &layer, layer_input, prep)?;
        let buffers = LayerBuffers {
            scratch: &mut scratch[..],
            a: &mut a[..],
            row: &mut row[..],
        };
        let n = layer.output_len();
        if layer.params().activation {
            kernels::need("levels", n, dst.len())?;
            let out = LayerOutputMut::Levels(&mut dst[..n]);
            run_layer(&layer, &prepared, layer_input, buffers, out)?;
            observe(i, LayerOutput::Levels(&dst[..n]));
        } else {
            kernels::need("output", n, output.len())?;
            let out = LayerOutputMut::Potentials(&mut output[..n]);
            run_layer(&layer, &prepared, layer_input, buffers, out)?;
            observe(i, LayerOutput::Potentials(&output[..n]));
        }
        if i != last {
            core::mem::swap(&mut src, &mut dst);
        }
    }
    let n = model.output().len();
    if model.outputs_levels() {
        Ok(LayerOutput::Levels(&dst[..n]))
    } else {
        Ok(LayerOutput::Potentials(&output[..n]))
    }
}

/// `predict` of a model whose last layer has no activation: each potential
/// rescaled to `f32(p - threshold) / act_step` of its filter.
pub fn rescale_output(layer: &ValidLayer, potentials: &[i32], out: &mut [f32]) {
    let l = &layer.layer;
    let f = l.params.filters as usize;
    for (k, (&p, o)) in potentials.iter().zip(out.iter_mut()).enumerate() {
        let filter = k % f;
        *o = activation::rescale(p, l.threshold.get(filter), l.act_step.get(filter));
    }
}
