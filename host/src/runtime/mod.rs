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

/// The best SIMD instruction set of this CPU for the fast kernel.
pub fn detect_simd() -> Simd {
    Simd::detect()
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
}

/// Per-thread buffers of [`forward`].
struct Scratch {
    levels: [Vec<u8>; 2],
    scratch: Vec<i32>,
    a: Vec<i16>,
    row: Vec<i32>,
    output: Vec<i32>,
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
        let prepared = &self.layers[index];
        // `choose` picks the fast backend only where its operands exist.
        let backend = self.choose(layer, prepared, input);
        let fast = match backend {
            Backend::Fast(_) => prepared.fast_operands(),
            _ => None,
        };
        Ok(Prepared {
            backend,
            weights: prepared.weights(),
            fast,
        })
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
        self
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

    fn scratch(&self) -> Scratch {
        let sizes = self.model.workspace_sizes(true);
        Scratch {
            levels: [vec![0u8; sizes.levels], vec![0u8; sizes.levels]],
            scratch: vec![0i32; sizes.scratch],
            a: vec![0i16; sizes.a],
            row: vec![0i32; sizes.row],
            output: vec![0i32; sizes.output],
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
    ) -> Result<(), ForwardError> {
        self.forward_observed(image, s, levels, potentials, |_, _, _| {})
    }

    /// [`Self::forward_into`], calling `observe(i, backend, input)` after
    /// layer `i` ran on `input` with `backend` (`None`: the zero-input copy).
    fn forward_observed(
        &self,
        image: &[u8],
        s: &mut Scratch,
        levels: &mut [u8],
        potentials: &mut [i32],
        mut observe: impl FnMut(usize, Option<Backend>, &[u8]),
    ) -> Result<(), ForwardError> {
        let expected = self.model.input().len();
        if image.len() != expected {
            return Err(ForwardError::InputLength {
                expected,
                found: image.len(),
            });
        }
        // Values above an InputData layer's bits are refused, as the engine
        // refuses them (core's `forward` does the same).
        self.model.check_input(image)?;
        let [level_a, level_b] = &mut s.levels;
        let (mut src, mut dst): (&mut Vec<u8>, &mut Vec<u8>) = (level_a, level_b);
        let last = self.model.len() - 1;
        let mut no_buffers = PrepBuffers {
            weights: &mut [],
            packed: &mut [],
            cuts: &mut [],
        };
        for (i, layer) in self.model.layers().enumerate() {
            let input: &[u8] = if i == 0 {
                image
            } else {
                &src[..layer.params().input.len()]
            };
            let n = layer.output_len();
            let zero = match &self.layers[i].zero {
                Some(z) if count_nonzero(input, 0) == 0 => Some(z),
                _ => None,
            };
            if let Some(z) = zero {
                match z {
                    ZeroOutput::Levels(l) => dst[..n].copy_from_slice(l),
                    ZeroOutput::Potentials(p) => s.output[..n].copy_from_slice(p),
                }
                observe(i, None, input);
            } else {
                let prepared = self.prepare(i, &layer, input, &mut no_buffers)?;
                let buffers = LayerBuffers {
                    scratch: &mut s.scratch,
                    a: &mut s.a,
                    row: &mut s.row,
                };
                let out = if layer.params().activation {
                    LayerOutputMut::Levels(&mut dst[..n])
                } else {
                    LayerOutputMut::Potentials(&mut s.output[..n])
                };
                run_layer(&layer, &prepared, input, buffers, out)?;
                observe(i, Some(prepared.backend), input);
            }
            if i != last {
                core::mem::swap(&mut src, &mut dst);
            }
        }
        let n = self.model.output().len();
        if self.model.outputs_levels() {
            levels.copy_from_slice(&dst[..n]);
        } else {
            potentials.copy_from_slice(&s.output[..n]);
        }
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
            self.steps(images, &mut out, progress, |s, img, out| {
                self.forward_into(img, s, out, &mut [])
            })?;
            Ok(BatchOutput::Levels(out))
        } else {
            let mut out = vec![0i32; n * out_len];
            self.steps(images, &mut out, progress, |s, img, out| {
                self.forward_into(img, s, &mut [], out)
            })?;
            Ok(BatchOutput::Potentials(out))
        }
    }

    /// Runs `one` on every image of `images` into its slot of `out`, on
    /// every core, [`PROGRESS_STEP`] images at a time.
    fn steps<T: Send>(
        &self,
        images: &[u8],
        out: &mut [T],
        progress: &(dyn Fn(usize) + Sync),
        one: impl Fn(&mut Scratch, &[u8], &mut [T]) -> Result<(), ForwardError> + Sync,
    ) -> Result<(), ForwardError> {
        let in_len = self.input_dims().len();
        let out_len = self.output_dims().len();
        let mut done = 0;
        for (imgs, outs) in images
            .chunks(in_len * PROGRESS_STEP)
            .zip(out.chunks_mut(out_len * PROGRESS_STEP))
        {
            imgs.par_chunks_exact(in_len)
                .zip(outs.par_chunks_exact_mut(out_len))
                .try_for_each_init(|| self.scratch(), |s, (img, o)| one(s, img, o))?;
            done += imgs.len() / in_len;
            progress(done);
        }
        Ok(())
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
        let mut s = self.scratch();
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
            self.forward_observed(image, &mut s, l, p, |i, backend, input| {
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

    /// Runs `images` one at a time on this thread and returns the wall time
    /// of each, in seconds (single-image latency).
    pub fn latencies(&self, images: &[u8]) -> Result<Vec<f64>, ForwardError> {
        let in_len = self.input_dims().len();
        let out_len = self.output_dims().len();
        let mut s = self.scratch();
        let (mut levels, mut potentials) = (vec![0u8; out_len], vec![0i32; out_len]);
        let outputs_levels = self.model.outputs_levels();
        images
            .chunks_exact(in_len)
            .map(|image| {
                let (l, p): (&mut [u8], &mut [i32]) = if outputs_levels {
                    (&mut levels, &mut [])
                } else {
                    (&mut [], &mut potentials)
                };
                let start = Instant::now();
                self.forward_into(image, &mut s, l, p)?;
                Ok(start.elapsed().as_secs_f64())
            })
            .collect()
    }
}

fn nonzero(v: &[u8]) -> f64 {
    v.iter().filter(|&&x| x != 0).count() as f64 / v.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::count_nonzero;

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
