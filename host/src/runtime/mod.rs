//! Host inference: core's [`forward`] with each layer prepared once (weights
//! unpacked, the fast kernel's operand packed and level cuts computed), and
//! batches spread over every core. Each layer runs with the best backend for
//! its input: the event kernel when the input levels are sparse, the fast
//! dense kernel otherwise. All backends come from `akida-core` and agree bit
//! for bit.

use akida_core::inference::{self, forward, LayerOutput};
use akida_core::kernels::fast::{FastOperands, FastPlan};
use akida_core::kernels::{unpack_weights, Backend, KernelWeights, Prepared};
use akida_core::{
    Dims, ForwardError, LayerKind, PrepBuffers, Preparation, Simd, ValidLayer, ValidModel,
    WorkspaceBuffers, WorkspaceSizes,
};
use rayon::prelude::*;

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

/// The best SIMD instruction set of this CPU for the fast kernel.
pub fn detect_simd() -> Simd {
    Simd::detect()
}

/// One layer, prepared.
struct PreparedLayer {
    unpacked: Vec<i8>,
    /// Length of the main kernel inside `unpacked` (the rest is pointwise).
    main_len: usize,
    /// The fast kernel's plan, packed operand and level cuts, where its
    /// operands fit 16 bits.
    fast: Option<(FastPlan, Vec<i16>, Vec<i32>)>,
}

impl PreparedLayer {
    fn new(layer: &ValidLayer) -> PreparedLayer {
        let mut unpacked = vec![0i8; layer.params().unpacked_len()];
        let w = unpack_weights(layer, &mut unpacked);
        let main_len = w.main.len();
        let fast = FastPlan::of(layer, &w).map(|plan| {
            let mut packed = vec![0i16; plan.packed_len];
            let mut cuts = vec![0i32; plan.cuts_len];
            FastOperands::build(layer, plan, &w, &mut packed, &mut cuts);
            (plan, packed, cuts)
        });
        PreparedLayer {
            unpacked,
            main_len,
            fast,
        }
    }

    fn weights(&self) -> KernelWeights<'_> {
        let (main, pointwise) = self.unpacked.split_at(self.main_len);
        KernelWeights { main, pointwise }
    }

    fn fast_operands(&self) -> Option<FastOperands<'_>> {
        self.fast.as_ref().map(|(plan, packed, cuts)| FastOperands {
            plan: *plan,
            packed_b: packed,
            cuts,
        })
    }
}

/// A valid model prepared for fast host inference.
pub struct Runtime<'m, B, S> {
    model: &'m ValidModel<B, S>,
    layers: Vec<PreparedLayer>,
    simd: Simd,
    policy: KernelPolicy,
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
    /// Prepares a valid model.
    pub fn new(model: &'m ValidModel<B, S>, policy: KernelPolicy) -> Runtime<'m, B, S> {
        let layers = model.layers().map(|l| PreparedLayer::new(&l)).collect();
        Runtime {
            model,
            layers,
            simd: detect_simd(),
            policy,
        }
    }

    /// Uses `simd` for the fast kernel instead of the detected one.
    pub fn with_simd(mut self, simd: Simd) -> Self {
        self.simd = simd;
        self
    }

    pub fn simd(&self) -> Simd {
        self.simd
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

    /// Per-thread buffers of [`forward`] (no preparation buffers: the
    /// layers are prepared once).
    fn scratch(&self) -> WorkspaceBuffers {
        WorkspaceBuffers::new(&WorkspaceSizes {
            weights: 0,
            packed: 0,
            cuts: 0,
            ..self.model.workspace_sizes(true)
        })
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
                let nonzero = input.iter().filter(|&&v| v != 0).take(budget + 1).count();
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
    fn forward_into(
        &self,
        image: &[u8],
        s: &mut WorkspaceBuffers,
        levels: &mut [u8],
        potentials: &mut [i32],
    ) -> Result<(), ForwardError> {
        match forward(self.model, image, &mut s.workspace(), self, |_, _| {})? {
            LayerOutput::Levels(l) => levels.copy_from_slice(l),
            LayerOutput::Potentials(p) => potentials.copy_from_slice(p),
        }
        Ok(())
    }

    /// Runs a batch of `images` (back-to-back HWC uint8 images, a whole
    /// number of them) on every core.
    pub fn forward_batch(&self, images: &[u8]) -> Result<BatchOutput, ForwardError> {
        let in_len = self.input_dims().len();
        let out_len = self.output_dims().len();
        if !images.len().is_multiple_of(in_len) {
            return Err(ForwardError::InputLength {
                expected: in_len,
                found: images.len() % in_len,
            });
        }
        let n = images.len() / in_len;
        let chunks = images.par_chunks_exact(in_len);
        if self.model.outputs_levels() {
            let mut out = vec![0u8; n * out_len];
            chunks
                .zip(out.par_chunks_exact_mut(out_len))
                .try_for_each_init(
                    || self.scratch(),
                    |s, (img, out)| self.forward_into(img, s, out, &mut []),
                )?;
            Ok(BatchOutput::Levels(out))
        } else {
            let mut out = vec![0i32; n * out_len];
            chunks
                .zip(out.par_chunks_exact_mut(out_len))
                .try_for_each_init(
                    || self.scratch(),
                    |s, (img, out)| self.forward_into(img, s, &mut [], out),
                )?;
            Ok(BatchOutput::Potentials(out))
        }
    }

    /// `predict` of a batch: the potentials of the last layer (which must
    /// have no activation) rescaled to float32 as the engine does; `None`
    /// when the last layer outputs levels.
    pub fn predict_batch(&self, images: &[u8]) -> Result<Option<Vec<f32>>, ForwardError> {
        let BatchOutput::Potentials(p) = self.forward_batch(images)? else {
            return Ok(None);
        };
        let last = self.model.last();
        let mut out = vec![0f32; p.len()];
        let per_image = self.output_dims().len();
        for (src, dst) in p
            .chunks_exact(per_image)
            .zip(out.chunks_exact_mut(per_image))
        {
            inference::rescale_output(&last, src, dst);
        }
        Ok(Some(out))
    }
}
