//! Host inference: core's layers ([`run_layer`]) with each layer prepared
//! once (weights unpacked, the fast kernel's operand packed, as bytes where
//! the instruction set has an exact u8 x s8 product, and level cuts
//! computed), and batches spread over every core. Each layer runs with the
//! best backend for its input: the event kernel when the input levels are
//! sparse, the fast dense kernel otherwise; a layer whose input is all zero
//! copies its output for a zero input, computed once. All backends come from
//! `akida-core` and agree bit for bit.

use akida_core::inference::{self, run_layer, LayerBuffers, LayerOutputMut};
use akida_core::kernels::fast::{self, FastOperands, FastPlan};
use akida_core::kernels::{unpack_weights, Backend, KernelWeights, Prepared};
use akida_core::{
    Dims, ForwardError, LayerKind, PrepBuffers, Preparation, Simd, ValidLayer, ValidModel,
};
use rayon::prelude::*;
use std::time::Instant;

mod bands;
use bands::{BandBuffers, Crew};

/// How the runtime picks a backend for each layer (`akida run --kernel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KernelPolicy {
    /// Event kernel on sparse inputs, fast dense kernel otherwise
    #[default]
    Auto,
    /// Fast dense kernel wherever it applies
    Fast,
    /// Event kernel everywhere
    Event,
    /// Dense reference kernel everywhere (slow)
    Reference,
}

impl KernelPolicy {
    /// The policy as `--kernel` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            KernelPolicy::Auto => "auto",
            KernelPolicy::Fast => "fast",
            KernelPolicy::Event => "event",
            KernelPolicy::Reference => "reference",
        }
    }
}

/// Input density (non-zero fraction) below which `Auto` takes the event
/// kernel of a convolution (`cargo bench -p akida-tests --bench kernels`:
/// on a 3x3 convolution the event kernel beats the fast one below about 5 %
/// of non-zero inputs).
pub const EVENT_DENSITY: f64 = 0.05;

/// The same for separable layers, whose event kernel is slower (its
/// pointwise stage works on depthwise potentials, far denser than the input).
pub const SEPARABLE_EVENT_DENSITY: f64 = 0.005;

/// Images between two progress reports of a batch (each step runs on every
/// core).
pub const PROGRESS_STEP: usize = 4096;

/// Images a thread runs together through a model's weight-heavy last
/// layers ([`Runtime::group_from`]): layer after layer over the group, so
/// that each such layer's packed weights, read by every image, stay in the
/// core's cache between the images instead of coming from memory once per
/// image.
pub const GROUP: usize = 8;

/// Rows of A a stack of images multiplies at once in a weight-heavy layer
/// (at most [`GROUP`] images; [`inference::run_layer_stacked`]): a layer
/// of few conv cells runs the images of a group as one product of up to
/// this many rows, so that its B is read once for them all. Measured on
/// `ds_cnn_cifar10`'s 4x4-cell `separable_9` (1,024 x 1,024 weights, a
/// group of 8 images, one thread): AVX2 2,954 to 1,722 us; AVX-512 VNNI
/// and AMX tiles about unchanged (their groups already keep B in cache).
pub const STACK_ROWS: usize = 128;

/// The fewest multiply-accumulates of a layer that one image runs in bands
/// of output rows over the cores ([`Runtime::latencies`] with bands, and
/// batches of fewer images than threads): below, handing out the bands
/// costs about what it saves (`ds_cnn_kws`, 2 threads: p50 36.9 us with
/// its four 584,000-MAC separable layers in bands, 34.4-34.7 with its
/// 200,000-MAC input convolution too, 41.2-41.5 on one thread).
pub const BAND_MIN_MACS: u64 = 150_000;

/// The best SIMD instruction set of this CPU for the fast kernel.
pub fn detect_simd() -> Simd {
    Simd::detect()
}

/// Ends a crew's helpers when dropped.
struct EndCrew<'c>(&'c Crew);

impl Drop for EndCrew<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Whether a layer, about to run with `prepared`, runs in bands of output
/// rows: the fast kernel on levels, no global average, at least two output
/// rows and [`BAND_MIN_MACS`].
fn in_bands(layer: &ValidLayer, prepared: &Prepared) -> bool {
    matches!(prepared.backend, Backend::Fast(_))
        && prepared.fast.is_some()
        && layer.params().activation
        && layer.shapes.output.rows > 1
        && akida_core::tail::band_cells(layer, 0..1).is_some()
        && layer_macs(layer) >= BAND_MIN_MACS
}

/// What a layer outputs for an all-zero input (the same every time).
enum ZeroOutput {
    Levels(Vec<u8>),
    Potentials(Vec<i32>),
}

/// One layer, prepared.
struct PreparedLayer {
    unpacked: Vec<i8>,
    /// Length of the main kernel inside `unpacked` (the rest is pointwise).
    main_len: usize,
    /// The fast kernel's plan, packed operand and level cuts, where its
    /// operands fit 16 bits.
    fast: Option<(FastPlan, Vec<i16>, Vec<i32>)>,
    /// The output for an all-zero input (not for the first layer, whose
    /// input is an image).
    zero: Option<ZeroOutput>,
}

impl PreparedLayer {
    fn new(index: usize, layer: &ValidLayer, simd: Simd, allow_u8: bool) -> PreparedLayer {
        let mut unpacked = vec![0i8; layer.params().unpacked_len()];
        let w = unpack_weights(layer, &mut unpacked);
        let main_len = w.main.len();
        let fast = FastPlan::of(layer, &w).map(|plan| {
            let plan = plan.with_dot(layer, &w, simd, allow_u8);
            let mut packed = vec![0i16; plan.packed_len];
            let mut cuts = vec![0i32; plan.cuts_len];
            FastOperands::build(layer, plan, &w, &mut packed, &mut cuts);
            (plan, packed, cuts)
        });
        let mut prepared = PreparedLayer {
            unpacked,
            main_len,
            fast,
            zero: None,
        };
        if index > 0 {
            prepared.zero = prepared.zero_output(layer);
        }
        prepared
    }

    /// The layer's output for an all-zero input, by the event kernel.
    fn zero_output(&self, layer: &ValidLayer) -> Option<ZeroOutput> {
        let p = layer.params();
        let input = vec![0u8; p.input.len()];
        let prepared = Prepared {
            backend: Backend::Event,
            weights: self.weights(),
            fast: None,
        };
        let mut scratch = vec![0i32; p.scratch_len(&layer.shapes)];
        let mut row = vec![0i32; p.filters as usize];
        let buffers = LayerBuffers {
            scratch: &mut scratch,
            a: &mut [],
            row: &mut row,
        };
        let n = layer.output_len();
        if p.activation {
            let mut out = vec![0u8; n];
            run_layer(
                layer,
                &prepared,
                &input,
                buffers,
                LayerOutputMut::Levels(&mut out),
            )
            .ok()?;
            Some(ZeroOutput::Levels(out))
        } else {
            let mut out = vec![0i32; n];
            run_layer(
                layer,
                &prepared,
                &input,
                buffers,
                LayerOutputMut::Potentials(&mut out),
            )
            .ok()?;
            Some(ZeroOutput::Potentials(out))
        }
    }

    fn weights(&self) -> KernelWeights<'_> {
        let (main, pointwise) = self.unpacked.split_at(self.main_len);
        KernelWeights { main, pointwise }
    }

    fn fast_operands(&self) -> Option<FastOperands<'_>> {
        self.fast
            .as_ref()
            .map(|(plan, packed, cuts)| FastOperands::from_parts(*plan, packed, cuts))
    }
}

/// An image's two level buffers as layer `i` uses them: it reads the
/// buffer `(i + 1) % 2` (the layer before wrote it) and writes buffer
/// `i % 2`.
fn levels_of_layer(buffers: &mut [Vec<u8>; 2], i: usize) -> (&[u8], &mut Vec<u8>) {
    let [even, odd] = buffers;
    match i % 2 {
        0 => (&*odd, even),
        _ => (&*even, odd),
    }
}

/// How one image runs one layer ([`Runtime::route`]).
#[derive(Clone, Copy)]
enum Route<'z> {
    /// An all-zero input: the layer's output for it, computed once.
    Zero(&'z ZeroOutput),
    /// The input through this backend.
    Run(Backend),
}

/// The non-zero values of `levels`, counted until more than `budget`
/// (then some count above it). Counted a block at a time, so that the count
/// is vectorized (a byte at a time, the scan of a silent layer's input
/// cost as much as the layer, and its speed hung on the loop's alignment).
fn count_nonzero(levels: &[u8], budget: usize) -> usize {
    let mut nonzero = 0;
    // 255 bytes: the block's count fits a byte, so a vector counts 16 or 32 at once.
    for block in levels.chunks(255) {
        nonzero += block.iter().fold(0u8, |n, &v| n + u8::from(v != 0)) as usize;
        if nonzero > budget {
            break;
        }
    }
    nonzero
}

/// A valid model prepared for fast host inference.
pub struct Runtime<'m, B, S> {
    model: &'m ValidModel<B, S>,
    layers: Vec<PreparedLayer>,
    simd: Simd,
    /// Whether `simd`'s byte product passed its start-up check
    /// ([`fast::self_check_u8`]); if not, every layer multiplies in 16 bits.
    u8_checked: bool,
    policy: KernelPolicy,
    /// The first of the layers run over a group of images at a time
    /// ([`GROUP`]): from it on, every layer's weights outweigh its input
    /// and output levels.
    group_from: usize,
}

/// Per-thread buffers of a group of images.
struct Scratch {
    /// Two level buffers per image of the group (a layer's input and
    /// output).
    levels: Vec<[Vec<u8>; 2]>,
    scratch: Vec<i32>,
    a: Vec<i16>,
    row: Vec<i32>,
    /// The last layer's potentials, per image of the group.
    output: Vec<i32>,
    /// A and the product of a stack of images ([`STACK_ROWS`]); empty for
    /// a group of one.
    stack_scratch: Vec<i32>,
    stack_a: Vec<i16>,
}

/// Outputs of a batch: levels (last layer with activation) or potentials.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchOutput {
    Levels(Vec<u8>),
    Potentials(Vec<i32>),
}

impl<B: AsRef<[u8]> + Sync, S: AsRef<str> + Sync> Preparation for Runtime<'_, B, S> {
    fn prepare<'s>(
        &'s self,
        index: usize,
        layer: &ValidLayer,
        input: &[u8],
        _buffers: &'s mut PrepBuffers,
    ) -> Result<Prepared<'s>, ForwardError> {
        // `choose` picks the fast backend only where its operands exist.
        let backend = self.choose(layer, &self.layers[index], input);
        Ok(self.prepared_for(index, backend))
    }
}

impl<'m, B: AsRef<[u8]> + Sync, S: AsRef<str> + Sync> Runtime<'m, B, S> {
    /// Prepares a valid model for this CPU's best instruction set, with the
    /// byte product where it applies.
    pub fn new(model: &'m ValidModel<B, S>, policy: KernelPolicy) -> Runtime<'m, B, S> {
        Runtime::with(model, policy, detect_simd(), true)
    }

    /// Prepares a valid model for `simd`, with the byte product where it
    /// applies if `u8` (see [`Self::with_kernels`]).
    pub fn with(
        model: &'m ValidModel<B, S>,
        policy: KernelPolicy,
        simd: Simd,
        u8: bool,
    ) -> Runtime<'m, B, S> {
        Runtime {
            model,
            layers: Vec::new(),
            simd,
            u8_checked: false,
            policy,
            group_from: 0,
        }
        .with_kernels(simd, u8)
    }

    /// Uses `simd` for the fast kernel instead of the detected one (the
    /// layers are prepared again: the byte product depends on it).
    pub fn with_simd(self, simd: Simd) -> Self {
        self.with_kernels(simd, true)
    }

    /// Uses `simd`, with the byte product where it applies if `u8` (and
    /// its start-up check passes), else the 16-bit product everywhere.
    pub fn with_kernels(mut self, simd: Simd, u8: bool) -> Self {
        self.simd = simd;
        self.u8_checked = u8 && fast::self_check_u8(simd);
        self.layers = self
            .model
            .layers()
            .enumerate()
            .map(|(i, l)| PreparedLayer::new(i, &l, simd, self.u8_checked))
            .collect();
        self.group_from = self.weight_heavy_from();
        self
    }

    /// The first layer from which every layer's prepared weights (unpacked
    /// and packed) take more bytes than its input and output levels; the
    /// model's length if the last layer's do not.
    fn weight_heavy_from(&self) -> usize {
        let heavy: Vec<bool> = self
            .model
            .layers()
            .zip(&self.layers)
            .map(|(l, prepared)| {
                let weights = prepared.unpacked.len()
                    + prepared
                        .fast
                        .as_ref()
                        .map_or(0, |(_, packed, _)| 2 * packed.len());
                weights > l.params().input.len() + l.output_len()
            })
            .collect();
        heavy.iter().rposition(|h| !h).map_or(0, |i| i + 1)
    }

    /// Where a batch's groups of images start running layer after layer
    /// ([`GROUP`]).
    pub fn group_from(&self) -> usize {
        self.group_from
    }

    pub fn simd(&self) -> Simd {
        self.simd
    }

    /// How the byte product runs, for reports: its instruction, `unused`
    /// when no layer takes it, `off` when not asked for, or the failed
    /// start-up check.
    pub fn u8_report(&self, asked: bool) -> &'static str {
        let used = self
            .layers
            .iter()
            .any(|l| matches!(&l.fast, Some((p, _, _)) if p.dot != fast::Dot::I16));
        match (asked, self.u8_checked, used) {
            (false, _, _) => "off",
            (true, false, _) => "off (its start-up check failed: 16-bit products used)",
            (true, true, true) => self.simd.u8_instruction(),
            (true, true, false) => "unused",
        }
    }

    pub fn model(&self) -> &'m ValidModel<B, S> {
        self.model
    }

    /// Input size of one image.
    pub fn input_dims(&self) -> Dims {
        self.model.input()
    }

    /// Output size of one image.
    pub fn output_dims(&self) -> Dims {
        self.model.output()
    }

    /// Buffers for groups of up to `group` images.
    fn scratch(&self, group: usize) -> Scratch {
        let sizes = self.model.workspace_sizes(true);
        let (mut stack_scratch, mut stack_a) = (0, 0);
        if group > 1 {
            for (i, prepared) in self.layers.iter().enumerate().skip(self.group_from) {
                if let Some((plan, _, _)) = &prepared.fast {
                    let n = self.stack_count(i).min(group);
                    stack_scratch = stack_scratch.max(n * plan.scratch_len());
                    stack_a = stack_a.max(n * plan.a_len);
                }
            }
        }
        Scratch {
            stack_scratch: vec![0i32; stack_scratch],
            stack_a: vec![0i16; stack_a],
            levels: (0..group)
                .map(|_| [vec![0u8; sizes.levels], vec![0u8; sizes.levels]])
                .collect(),
            scratch: vec![0i32; sizes.scratch],
            a: vec![0i16; sizes.a],
            row: vec![0i32; sizes.row],
            output: vec![0i32; group * sizes.output],
        }
    }

    /// The backend of one layer for this input.
    fn choose(&self, layer: &ValidLayer, prepared: &PreparedLayer, input: &[u8]) -> Backend {
        let fast = Backend::Fast(self.simd);
        match self.policy {
            KernelPolicy::Reference => Backend::Reference,
            KernelPolicy::Event => Backend::Event,
            KernelPolicy::Fast if prepared.fast.is_some() => fast,
            KernelPolicy::Fast => Backend::Event,
            KernelPolicy::Auto => {
                if prepared.fast.is_none() {
                    return Backend::Event;
                }
                let limit = match layer.params().kind {
                    LayerKind::SeparableConvolutional => SEPARABLE_EVENT_DENSITY,
                    // A fully connected layer is one small product: the
                    // fast kernel wins whatever the density.
                    LayerKind::FullyConnected => return fast,
                    _ => EVENT_DENSITY,
                };
                // Sparse iff at most `budget` non-zero levels; stop counting
                // as soon as the budget is exceeded (dense inputs exit early).
                let budget = (limit * input.len() as f64) as usize;
                let nonzero = count_nonzero(input, budget);
                if nonzero <= budget && budget > 0 {
                    Backend::Event
                } else {
                    fast
                }
            }
        }
    }

    /// Runs one image with core's forward; copies the last layer's output
    /// into `levels` or `potentials` (whichever the model produces).
    /// Layer after layer as core's `forward` does, with this runtime's
    /// preparation, and the zero-input output copied where it applies.
    fn forward_into(
        &self,
        image: &[u8],
        s: &mut Scratch,
        levels: &mut [u8],
        potentials: &mut [i32],
        crew: Option<&Crew>,
    ) -> Result<(), ForwardError> {
        let expected = self.model.input().len();
        if image.len() != expected {
            return Err(ForwardError::InputLength {
                expected,
                found: image.len(),
            });
        }
        self.forward_group(image, s, levels, potentials, crew, |_, _, _| {})
    }

    /// Runs a group of images (back to back, at most as many as `s` has
    /// room for) and copies each one's output into its slot of `levels` or
    /// `potentials` (whichever the model produces): each image alone
    /// through the layers before [`Self::group_from`], then the group layer
    /// after layer. Calls `observe(i, backend, input)` after layer `i` ran
    /// on an image's `input` with `backend` (`None`: the zero-input copy);
    /// for a single image, in layer order.
    fn forward_group(
        &self,
        images: &[u8],
        s: &mut Scratch,
        levels: &mut [u8],
        potentials: &mut [i32],
        crew: Option<&Crew>,
        mut observe: impl FnMut(usize, Option<Backend>, &[u8]),
    ) -> Result<(), ForwardError> {
        let in_len = self.model.input().len();
        let count = images.len() / in_len;
        if images.len() != count * in_len || count == 0 {
            return Err(ForwardError::InputLength {
                expected: in_len,
                found: images.len() % in_len,
            });
        }
        assert!(count <= s.levels.len(), "a group larger than its buffers");
        for image in images.chunks_exact(in_len) {
            // Values above an InputData layer's bits are refused, as the
            // engine refuses them (core's `forward` does the same).
            self.model.check_input(image)?;
        }
        let layers: Vec<ValidLayer> = self.model.layers().collect();
        let split = self.group_from.min(layers.len());
        let (alone, grouped) = layers.split_at(split);
        for (j, image) in images.chunks_exact(in_len).enumerate() {
            for (i, layer) in alone.iter().enumerate() {
                let route = self.route(i, layer, Self::layer_input(i, layer, image, j, s));
                self.step(i, layer, image, j, s, route, crew, &mut observe)?;
            }
        }
        for (i, layer) in grouped.iter().enumerate() {
            let i = split + i;
            // Images whose input takes the fast kernel run in stacks.
            let mut stack = Vec::with_capacity(count);
            for (j, image) in images.chunks_exact(in_len).enumerate() {
                let route = self.route(i, layer, Self::layer_input(i, layer, image, j, s));
                match self.stacks(i, route, s) {
                    true => stack.push(j),
                    false => self.step(i, layer, image, j, s, route, crew, &mut observe)?,
                }
            }
            for part in stack.chunks(self.stack_count(i)) {
                self.step_stacked(i, layer, images, part, s, &mut observe)?;
            }
        }
        let last = layers.len() - 1;
        let n = self.model.output().len();
        for j in 0..count {
            if self.model.outputs_levels() {
                levels[j * n..][..n].copy_from_slice(&s.levels[j][last % 2][..n]);
            } else {
                potentials[j * n..][..n].copy_from_slice(&s.output[j * n..][..n]);
            }
        }
        Ok(())
    }

    /// Images a stack of layer `i` holds ([`STACK_ROWS`] rows of A, at most
    /// [`GROUP`]); 1 where the layer has no fast operands.
    fn stack_count(&self, i: usize) -> usize {
        match &self.layers[i].fast {
            Some((plan, _, _)) => (STACK_ROWS / plan.gemm.rows.max(1)).clamp(1, GROUP),
            None => 1,
        }
    }

    /// The input of layer `i` for image `j` of a group (`image`: its input
    /// image): the image, or the image's levels from the layer before.
    fn layer_input<'s>(
        i: usize,
        layer: &ValidLayer,
        image: &'s [u8],
        j: usize,
        s: &'s Scratch,
    ) -> &'s [u8] {
        match i {
            0 => image,
            _ => &s.levels[j][(i + 1) % 2][..layer.params().input.len()],
        }
    }

    /// How layer `i` runs on `input`, decided once per image and layer
    /// (the count of non-zero levels behind it is a pass over the input).
    fn route(&self, i: usize, layer: &ValidLayer, input: &[u8]) -> Route<'_> {
        match &self.layers[i].zero {
            Some(z) if count_nonzero(input, 0) == 0 => Route::Zero(z),
            _ => Route::Run(self.choose(layer, &self.layers[i], input)),
        }
    }

    /// Whether an image whose input takes `route` runs layer `i` in a
    /// stack: the layer stacks more than one image, and the input is not
    /// all zero and takes the fast kernel.
    fn stacks(&self, i: usize, route: Route<'_>, s: &Scratch) -> bool {
        self.stack_count(i) >= 2
            && !s.stack_a.is_empty()
            && matches!(route, Route::Run(Backend::Fast(_)))
    }

    /// Layer `i` on images `part` of a group as one stack (see
    /// [`Self::stacks`]; `images`: the group's input images).
    fn step_stacked(
        &self,
        i: usize,
        layer: &ValidLayer,
        images: &[u8],
        part: &[usize],
        s: &mut Scratch,
        observe: &mut impl FnMut(usize, Option<Backend>, &[u8]),
    ) -> Result<(), ForwardError> {
        let in_len = layer.params().input.len();
        let image_len = self.model.input().len();
        let n = layer.output_len();
        let prepared = self.prepared_for(i, Backend::Fast(self.simd));
        let mut inputs: Vec<&[u8]> = Vec::with_capacity(part.len());
        let mut outs: Vec<LayerOutputMut> = Vec::with_capacity(part.len());
        let mut potentials = s.output.chunks_exact_mut(n);
        for (j, buffers) in s.levels.iter_mut().enumerate() {
            let out_potentials = potentials.next();
            if !part.contains(&j) {
                continue;
            }
            let (src, dst) = levels_of_layer(buffers, i);
            inputs.push(match i {
                0 => &images[j * image_len..][..image_len],
                _ => &src[..in_len],
            });
            outs.push(match (layer.params().activation, out_potentials) {
                (true, _) => LayerOutputMut::Levels(&mut dst[..n]),
                (false, Some(p)) => LayerOutputMut::Potentials(p),
                (false, None) => unreachable!("room for every image's potentials"),
            });
        }
        let buffers = LayerBuffers {
            scratch: &mut s.stack_scratch,
            a: &mut s.stack_a,
            row: &mut s.row,
        };
        inference::run_layer_stacked(layer, &prepared, &inputs, buffers, &mut outs)?;
        for input in inputs {
            observe(i, Some(prepared.backend), input);
        }
        Ok(())
    }

    /// Layer `i` on image `j` of a group (`image`: its input image) by
    /// `route` ([`Self::route`] of its input): reads the image or the
    /// image's previous levels, writes its levels (buffer `i % 2` of the
    /// image) or, without activation, its potentials.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        i: usize,
        layer: &ValidLayer,
        image: &[u8],
        j: usize,
        s: &mut Scratch,
        route: Route<'_>,
        crew: Option<&Crew>,
        observe: &mut impl FnMut(usize, Option<Backend>, &[u8]),
    ) -> Result<(), ForwardError> {
        let (src, dst) = levels_of_layer(&mut s.levels[j], i);
        let input: &[u8] = if i == 0 {
            image
        } else {
            &src[..layer.params().input.len()]
        };
        let n = layer.output_len();
        // Only a last layer outputs potentials (the buffer's room).
        let potentials = j * n..(j + 1) * n;
        let backend = match route {
            Route::Run(backend) => backend,
            Route::Zero(z) => {
                match z {
                    ZeroOutput::Levels(l) => dst[..n].copy_from_slice(l),
                    ZeroOutput::Potentials(p) => s.output[potentials].copy_from_slice(p),
                }
                observe(i, None, input);
                return Ok(());
            }
        };
        let prepared = self.prepared_for(i, backend);
        let buffers = LayerBuffers {
            scratch: &mut s.scratch,
            a: &mut s.a,
            row: &mut s.row,
        };
        if let Some(crew) = crew.filter(|_| in_bands(layer, &prepared)) {
            crew.run(i, layer, &prepared, input, buffers, &mut dst[..n])?;
            observe(i, Some(prepared.backend), input);
            return Ok(());
        }
        let out = if layer.params().activation {
            LayerOutputMut::Levels(&mut dst[..n])
        } else {
            LayerOutputMut::Potentials(&mut s.output[potentials])
        };
        run_layer(layer, &prepared, input, buffers, out)?;
        observe(i, Some(prepared.backend), input);
        Ok(())
    }

    /// Runs a batch of `images` (back-to-back HWC uint8 images, a whole
    /// number of them) on every core.
    pub fn forward_batch(&self, images: &[u8]) -> Result<BatchOutput, ForwardError> {
        self.forward_batch_progress(images, &|_| {})
    }

    /// [`Self::forward_batch`], calling `progress(done)` with the number of
    /// images done after every [`PROGRESS_STEP`] of them.
    pub fn forward_batch_progress(
        &self,
        images: &[u8],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<BatchOutput, ForwardError> {
        let in_len = self.input_dims().len();
        let out_len = self.output_dims().len();
        if !images.len().is_multiple_of(in_len) {
            return Err(ForwardError::InputLength {
                expected: in_len,
                found: images.len() % in_len,
            });
        }
        let n = images.len() / in_len;
        if self.model.outputs_levels() {
            let mut out = vec![0u8; n * out_len];
            self.steps(images, &mut out, progress, |s, imgs, out, crew| {
                self.forward_group(imgs, s, out, &mut [], crew, |_, _, _| {})
            })?;
            Ok(BatchOutput::Levels(out))
        } else {
            let mut out = vec![0i32; n * out_len];
            self.steps(images, &mut out, progress, |s, imgs, out, crew| {
                self.forward_group(imgs, s, &mut [], out, crew, |_, _, _| {})
            })?;
            Ok(BatchOutput::Potentials(out))
        }
    }

    /// Runs `one` on every group of images of `images` ([`GROUP`], fewer
    /// at the end) into its slots of `out`, on every core,
    /// [`PROGRESS_STEP`] images at a time; with fewer images than threads,
    /// one image at a time, its large layers in bands over the cores.
    fn steps<T: Send>(
        &self,
        images: &[u8],
        out: &mut [T],
        progress: &(dyn Fn(usize) + Sync),
        one: impl Fn(&mut Scratch, &[u8], &mut [T], Option<&Crew>) -> Result<(), ForwardError> + Sync,
    ) -> Result<(), ForwardError> {
        let in_len = self.input_dims().len();
        let out_len = self.output_dims().len();
        let n = images.len() / in_len.max(1);
        if n < rayon::current_num_threads() {
            return self.with_crew(|crew| {
                let mut s = self.scratch(1);
                for (img, o) in images.chunks_exact(in_len).zip(out.chunks_mut(out_len)) {
                    one(&mut s, img, o, crew)?;
                }
                progress(n);
                Ok(())
            });
        }
        let mut done = 0;
        for (imgs, outs) in images
            .chunks(in_len * PROGRESS_STEP)
            .zip(out.chunks_mut(out_len * PROGRESS_STEP))
        {
            imgs.par_chunks(in_len * GROUP)
                .zip(outs.par_chunks_mut(out_len * GROUP))
                .try_for_each_init(|| self.scratch(GROUP), |s, (img, o)| one(s, img, o, None))?;
            done += imgs.len() / in_len;
            progress(done);
        }
        Ok(())
    }

    /// Runs `run` with a crew of helper threads, one per thread of the
    /// rayon pool but this one, that run bands of one image's large layers
    /// (`None` on a single thread).
    fn with_crew<R>(&self, run: impl FnOnce(Option<&Crew>) -> R) -> R {
        let helpers = rayon::current_num_threads().saturating_sub(1);
        if helpers == 0 {
            return run(None);
        }
        let sizes = self.model.workspace_sizes(true);
        let crew = Crew::new(helpers, || BandBuffers {
            scratch: vec![0i32; sizes.scratch],
            a: vec![0i16; sizes.a],
            row: vec![0i32; sizes.row],
        });
        let layers: Vec<ValidLayer> = self.model.layers().collect();
        std::thread::scope(|scope| {
            for h in 0..helpers {
                let (crew, layers) = (&crew, &layers);
                scope.spawn(move || {
                    crew.serve(h, layers, |i| {
                        self.prepared_for(i, Backend::Fast(self.simd))
                    })
                });
            }
            // The helpers end however `run` ends (a panic included).
            let _end = EndCrew(&crew);
            run(Some(&crew))
        })
    }

    /// Layer `index` prepared for `backend`: its weights, and the fast
    /// kernel's operands where that backend is the fast one.
    fn prepared_for(&self, index: usize, backend: Backend) -> Prepared<'_> {
        let prepared = &self.layers[index];
        let fast = match backend {
            Backend::Fast(_) => prepared.fast_operands(),
            _ => None,
        };
        Prepared {
            backend,
            weights: prepared.weights(),
            fast,
        }
    }

    /// `predict` of a batch: the potentials of the last layer (which must
    /// have no activation) rescaled to float32 as the engine does; `None`
    /// when the last layer outputs levels.
    pub fn predict_batch(&self, images: &[u8]) -> Result<Option<Vec<f32>>, ForwardError> {
        let BatchOutput::Potentials(p) = self.forward_batch(images)? else {
            return Ok(None);
        };
        Ok(Some(self.rescale(&p)))
    }

    /// The engine's `predict` of a batch's output potentials.
    pub fn rescale(&self, p: &[i32]) -> Vec<f32> {
        let last = self.model.last();
        let mut out = vec![0f32; p.len()];
        let per_image = self.output_dims().len();
        for (src, dst) in p
            .chunks_exact(per_image)
            .zip(out.chunks_exact_mut(per_image))
        {
            inference::rescale_output(&last, src, dst);
        }
        out
    }
}

/// The dense multiply-accumulates of one image through `layer` (depthwise
/// and pointwise for a separable layer), what G MAC/s figures count.
pub fn layer_macs(layer: &ValidLayer) -> u64 {
    let p = layer.params();
    let conv = layer.shapes.conv;
    let cells = conv.rows as u64 * conv.cols as u64;
    let cin = p.input.channels as u64;
    let f = p.filters as u64;
    match p.kind {
        LayerKind::InputConvolutional | LayerKind::Convolutional => {
            cells * f * p.kernel.area() as u64 * cin
        }
        LayerKind::SeparableConvolutional => cells * cin * (p.kernel.area() as u64 + f),
        LayerKind::FullyConnected => p.input.len() as u64 * f,
    }
}

/// Where one layer's time went in [`Runtime::profile`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerProfile {
    pub name: String,
    pub kind: LayerKind,
    /// Dense multiply-accumulates per image ([`layer_macs`]).
    pub macs: u64,
    /// Wall time of the layer over all images, one thread.
    pub seconds: f64,
    /// Images the fast kernel ran this layer for (the others: event or
    /// reference, as the policy chose, or the zero-input copy).
    pub fast_images: usize,
    /// Images whose input to this layer was all zero (output copied).
    pub zero_images: usize,
    /// Mean fraction of non-zero input values.
    pub density: f64,
}

impl<B: AsRef<[u8]> + Sync, S: AsRef<str> + Sync> Runtime<'_, B, S> {
    /// Runs `images` one after another on this thread, timing each layer.
    pub fn profile(&self, images: &[u8]) -> Result<Vec<LayerProfile>, ForwardError> {
        let in_len = self.input_dims().len();
        let mut profile: Vec<LayerProfile> = self
            .model
            .layers()
            .map(|l| LayerProfile {
                name: l.name().to_owned(),
                kind: l.params().kind,
                macs: layer_macs(&l),
                seconds: 0.0,
                fast_images: 0,
                zero_images: 0,
                density: 0.0,
            })
            .collect();
        let mut s = self.scratch(1);
        let out_len = self.output_dims().len();
        let (mut levels, mut potentials) = (vec![0u8; out_len], vec![0i32; out_len]);
        let n = images.len() / in_len;
        let outputs_levels = self.model.outputs_levels();
        for image in images.chunks_exact(in_len) {
            let (l, p): (&mut [u8], &mut [i32]) = if outputs_levels {
                (&mut levels, &mut [])
            } else {
                (&mut [], &mut potentials)
            };
            let mut last = Instant::now();
            self.forward_group(image, &mut s, l, p, None, |i, backend, input| {
                let now = Instant::now();
                let layer = &mut profile[i];
                layer.seconds += (now - last).as_secs_f64();
                layer.density += nonzero(input) / n as f64;
                match backend {
                    Some(Backend::Fast(_)) => layer.fast_images += 1,
                    None => layer.zero_images += 1,
                    _ => {}
                }
                last = Instant::now();
            })?;
        }
        Ok(profile)
    }

    /// Runs `images` one at a time and returns the wall time of each, in
    /// seconds (single-image latency): on this thread alone, or (`bands`)
    /// with each large layer split in bands of output rows over this thread
    /// and helpers on the other cores ([`BAND_MIN_MACS`]).
    pub fn latencies(&self, images: &[u8], bands: bool) -> Result<Vec<f64>, ForwardError> {
        let in_len = self.input_dims().len();
        let out_len = self.output_dims().len();
        let mut s = self.scratch(1);
        let (mut levels, mut potentials) = (vec![0u8; out_len], vec![0i32; out_len]);
        let outputs_levels = self.model.outputs_levels();
        let mut run = |crew: Option<&Crew>| {
            images
                .chunks_exact(in_len)
                .map(|image| {
                    let (l, p): (&mut [u8], &mut [i32]) = if outputs_levels {
                        (&mut levels, &mut [])
                    } else {
                        (&mut [], &mut potentials)
                    };
                    let start = Instant::now();
                    self.forward_into(image, &mut s, l, p, crew)?;
                    Ok(start.elapsed().as_secs_f64())
                })
                .collect()
        };
        match bands {
            true => self.with_crew(run),
            false => run(None),
        }
    }
}

fn nonzero(v: &[u8]) -> f64 {
    v.iter().filter(|&&x| x != 0).count() as f64 / v.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::{count_nonzero, BatchOutput, KernelPolicy, Runtime};
    use akida_core::{
        Dims, LayerKind, LayerParams, OwnedLayer, OwnedModel, Padding, Pooling, Simd, Window,
    };

    /// xorshift64: the bulk values of the wide model and its images.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A layer of 4-bit weights (3x3, `same`) with random weights in
    /// `-8..=7`, thresholds and steps that leave many levels non-zero.
    fn layer(rng: &mut Rng, name: &str, params: LayerParams) -> OwnedLayer {
        let count = |s: [u32; 4]| s.iter().map(|&d| d as usize).product::<usize>();
        let (main, pw) = params.weight_shapes();
        let mut weights =
            |n: usize| -> Vec<i8> { (0..n).map(|_| rng.below(16) as i8 - 8).collect() };
        let w = weights(count(main));
        let w_pw = pw.map(|s| weights(count(s)));
        let f = params.filters as usize;
        let threshold: Vec<i32> = (0..f).map(|_| rng.below(200) as i32 - 100).collect();
        // Steps up to 8,000 (S16 to 128,000: both precisions of the scaled
        // levels), so that levels are graded rather than 0 or 15 and each
        // image's output differs.
        let act_step: Vec<f32> = (0..f)
            .map(|_| (16 + rng.below(128_000)) as f32 / 16.0)
            .collect();
        OwnedLayer::new(name, params, &w, w_pw.as_deref(), &threshold, &act_step).unwrap()
    }

    /// Input convolution (16x16x3 to 128 filters) then separable layers of
    /// 128 to 256 channels and filters (wide enough for every fast path:
    /// the split byte product, AMX tiles), max pooling, and a last layer
    /// of global-average potentials; every layer after the first has
    /// weights heavier than its levels (groups of images run it).
    fn wide_model(seed: u64) -> OwnedModel {
        let mut rng = Rng(seed);
        let base = |kind, input, filters| LayerParams {
            kind,
            input,
            filters,
            kernel: Window::new(3, 3),
            stride: Window::ONE,
            padding: Padding::Same,
            padding_value: 0,
            pooling: Pooling::None,
            activation: true,
            act_bits: 4,
            weights_bits: 4,
        };
        let sep = LayerKind::SeparableConvolutional;
        let l0 = base(LayerKind::InputConvolutional, Dims::new(16, 16, 3), 128);
        let l1 = LayerParams {
            pooling: Pooling::Max {
                size: Window::new(2, 2),
                stride: Window::new(2, 2),
            },
            ..base(sep, Dims::new(16, 16, 128), 160)
        };
        let l2 = base(sep, Dims::new(8, 8, 160), 256);
        let l3 = LayerParams {
            pooling: Pooling::GlobalAverage,
            activation: false,
            act_bits: 1,
            ..base(sep, Dims::new(8, 8, 256), 10)
        };
        OwnedModel {
            layers: [("conv_0", l0), ("sep_1", l1), ("sep_2", l2), ("sep_3", l3)]
                .into_iter()
                .map(|(name, p)| layer(&mut rng, name, p))
                .collect(),
            input_data: None,
        }
    }

    /// On a wide model, batches (whole groups of images and a partial one)
    /// give the reference kernel's potentials with every instruction set
    /// this CPU runs, each taking its byte product, and with each policy
    /// that uses the fast kernel; so does each image alone (with two cores
    /// or more, its layers in bands of output rows over them: a band copied
    /// back wrong was caught here). Its 8x8-cell layers run pairs of images
    /// as stacks (`STACK_ROWS`): a stack's inputs swapped was caught.
    #[test]
    fn wide_model_batches_equal_the_reference_kernel_on_every_instruction_set() {
        let model = wide_model(0x5EED).validate().unwrap();
        let mut rng = Rng(99);
        let in_len = model.input().len();
        let count = 2 * super::GROUP + 3;
        let images: Vec<u8> = (0..count * in_len).map(|_| rng.below(256) as u8).collect();
        let want = Runtime::new(&model, KernelPolicy::Reference)
            .forward_batch(&images)
            .unwrap();
        let BatchOutput::Potentials(p) = &want else {
            panic!("expected potentials");
        };
        assert!(p.iter().any(|&v| v != 0), "a silent model tests nothing");
        // Images with the same output would hide one image's result taken
        // for another's (in a group, a stack or a band).
        let mut outputs: Vec<&[i32]> = p.chunks_exact(10).collect();
        outputs.sort();
        outputs.dedup();
        assert_eq!(outputs.len(), count, "every image's output differs");
        for simd in Simd::available() {
            for policy in [KernelPolicy::Fast, KernelPolicy::Auto] {
                let rt = Runtime::new(&model, policy).with_kernels(simd, true);
                assert_eq!(rt.group_from(), 1, "layers run in groups");
                if simd != Simd::portable() {
                    assert_eq!(rt.u8_report(true), simd.u8_instruction());
                }
                let got = rt.forward_batch(&images).unwrap();
                assert_eq!(got, want, "{} {policy:?}", simd.name());
                let one = rt.forward_batch(&images[..in_len]).unwrap();
                let BatchOutput::Potentials(one) = one else {
                    panic!("expected potentials");
                };
                assert_eq!(one[..], p[..10], "{} one image", simd.name());
            }
        }
    }

    #[test]
    fn non_zero_levels_are_counted_up_past_the_budget() {
        let mut v = vec![0u8; 1000];
        assert_eq!(count_nonzero(&v, 0), 0);
        for i in (0..1000).step_by(3) {
            v[i] = (i % 15 + 1) as u8;
        }
        // Within budget: the exact count (334 of 1000), blocks of 255 included.
        assert_eq!(count_nonzero(&v, 1000), 334);
        assert_eq!(count_nonzero(&v, 334), 334);
        // Over budget: stops after the block that crossed it (85 in the first).
        assert_eq!(count_nonzero(&v, 10), 85);
        assert!(count_nonzero(&v, 100) > 100);
        // Every value counts, the largest too.
        assert_eq!(count_nonzero(&[255; 600], 1000), 600);
    }
}
