//! Host inference: a converted model prepared once (weights unpacked and
//! packed for the fast kernel, level cuts computed), then run on batches of
//! images over every core, each layer with the best kernel for its input:
//! the event kernel when the input levels are sparse, the fast dense kernel
//! otherwise. All kernels come from `akida-core` and agree bit for bit.

use akida_core::inference::{self, LayerOutputMut};
use akida_core::kernels::fast::{self, FastBuffers, FastLayer, FastPlan, Simd};
use akida_core::kernels::{self, Kernel, KernelWeights};
use akida_core::{activation, Dims, Layer, Model};
use rayon::prelude::*;

/// How the runtime picks a kernel for each layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KernelPolicy {
    /// Event kernel on sparse inputs, fast dense kernel otherwise.
    #[default]
    Auto,
    /// Always the dense reference kernel (the definition; slow).
    Reference,
    /// Always the event kernel.
    Event,
    /// The fast dense kernel wherever its operands fit 16 bits.
    Fast,
}

/// Input density (non-zero fraction) below which `Auto` takes the event
/// kernel of a convolution or fully connected layer (`cargo bench -p
/// akida-tests --bench kernels`: on a 3x3 convolution the event kernel beats
/// the fast one below about 5 % of non-zero inputs).
pub const EVENT_DENSITY: f64 = 0.05;

/// The same for separable layers, whose event kernel is slower (its
/// pointwise stage works on depthwise potentials, far denser than the input).
pub const SEPARABLE_EVENT_DENSITY: f64 = 0.005;

/// The best SIMD instruction set of this CPU for the fast kernel.
pub fn detect_simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
        {
            // SAFETY: the features were detected on this CPU.
            return unsafe { Simd::avx512_vnni_unchecked() };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected on this CPU.
            return unsafe { Simd::avx2_unchecked() };
        }
    }
    Simd::portable()
}

/// One layer, prepared.
struct PreparedLayer {
    unpacked: Vec<i8>,
    /// Length of the main kernel inside `unpacked` (the rest is pointwise).
    main_len: usize,
    fast: Option<(FastPlan, Vec<i16>, Vec<i32>)>,
}

impl PreparedLayer {
    fn new(layer: &Layer, max_input: u32) -> PreparedLayer {
        let mut unpacked = vec![0i8; layer.unpacked_len()];
        let main_len = layer.weights.count();
        let w = kernels::unpack_weights(layer, &mut unpacked);
        let fast = FastPlan::of(layer, &w, max_input).map(|plan| {
            let mut packed = vec![0i16; plan.packed_len];
            fast::pack_b(&plan.gemm, fast::product_weights(layer, &w), &mut packed);
            let mut cuts = vec![0i32; plan.cuts_len];
            if layer.activation {
                fast::level_cuts(layer, &plan, &mut cuts);
            }
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
}

/// A validated model prepared for fast host inference.
pub struct Runtime<'m> {
    model: &'m Model<'m>,
    layers: Vec<PreparedLayer>,
    simd: Simd,
    policy: KernelPolicy,
}

/// Per-thread buffers.
struct Scratch {
    levels: [Vec<u8>; 2],
    scratch: Vec<i32>,
    a: Vec<i16>,
    depthwise: Vec<i32>,
    product: Vec<i32>,
    row: Vec<i32>,
}

/// Outputs of a batch: levels (last layer with activation) or potentials.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchOutput {
    Levels(Vec<u8>),
    Potentials(Vec<i32>),
}

impl<'m> Runtime<'m> {
    /// Prepares a validated model (see `akida_core::decode`).
    pub fn new(model: &'m Model<'m>, policy: KernelPolicy) -> Runtime<'m> {
        let mut max_input = 255;
        let layers = model
            .layers
            .iter()
            .map(|l| {
                let p = PreparedLayer::new(l, max_input);
                max_input = activation::max_level(l.act_bits) as u32;
                p
            })
            .collect();
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

    pub fn model(&self) -> &Model<'m> {
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
        let sizes = self.model.workspace_sizes();
        let fast = |f: fn(&FastPlan) -> usize| {
            self.layers
                .iter()
                .filter_map(|l| l.fast.as_ref().map(|(p, _, _)| f(p)))
                .max()
                .unwrap_or(0)
        };
        let row = fast(|p| p.gemm.f_pad);
        Scratch {
            levels: [vec![0u8; sizes.levels], vec![0u8; sizes.levels]],
            scratch: vec![0i32; sizes.scratch],
            a: vec![0i16; fast(|p| p.a_len)],
            depthwise: vec![0i32; fast(|p| p.depthwise_len)],
            product: vec![0i32; fast(|p| p.product_len)],
            row: vec![0i32; row],
        }
    }

    fn choose(&self, layer: &Layer, prepared: &PreparedLayer, input: &[u8]) -> Option<Kernel> {
        match self.policy {
            KernelPolicy::Reference => Some(Kernel::Reference),
            KernelPolicy::Event => Some(Kernel::Event),
            KernelPolicy::Fast if prepared.fast.is_some() => None,
            KernelPolicy::Fast => Some(Kernel::Event),
            KernelPolicy::Auto => {
                if prepared.fast.is_none() {
                    return Some(Kernel::Event);
                }
                let limit = match layer.kind {
                    akida_core::LayerKind::SeparableConvolutional => SEPARABLE_EVENT_DENSITY,
                    // A fully connected layer is one small product: the
                    // fast kernel wins whatever the density.
                    akida_core::LayerKind::FullyConnected => return None,
                    _ => EVENT_DENSITY,
                };
                // Sparse iff at most `budget` non-zero levels; stop counting
                // as soon as the budget is exceeded (dense inputs exit early).
                let budget = (limit * input.len() as f64) as usize;
                let nonzero = input.iter().filter(|&&v| v != 0).take(budget + 1).count();
                if nonzero <= budget && budget > 0 {
                    Some(Kernel::Event)
                } else {
                    None
                }
            }
        }
    }

    fn run_layer(&self, i: usize, input: &[u8], s: &mut Scratch, out: LayerOutputMut) {
        let layer = &self.model.layers[i];
        let prepared = &self.layers[i];
        match (self.choose(layer, prepared, input), &prepared.fast) {
            (None, Some((plan, packed, cuts))) => {
                let fl = FastLayer {
                    layer,
                    plan: *plan,
                    weights: prepared.weights(),
                    packed_b: packed,
                    cuts,
                };
                let buf = FastBuffers {
                    a: &mut s.a,
                    depthwise: &mut s.depthwise,
                    product: &mut s.product,
                    row: &mut s.row,
                };
                fast::run_layer(&fl, self.simd, input, buf, out);
            }
            (kernel, _) => {
                let kernel = kernel.unwrap_or(Kernel::Event);
                inference::run_layer(
                    layer,
                    prepared.weights(),
                    kernel,
                    input,
                    &mut s.scratch,
                    out,
                );
            }
        }
    }

    /// Runs one image; writes the last layer's output into `levels` or
    /// `potentials` (whichever the model produces).
    fn forward_into(
        &self,
        image: &[u8],
        s: &mut Scratch,
        levels: &mut [u8],
        potentials: &mut [i32],
    ) {
        let last = self.model.layers.len() - 1;
        let [mut src, mut dst] = std::mem::take(&mut s.levels);
        for (i, layer) in self.model.layers.iter().enumerate() {
            let n = layer.output_dims().len();
            let input: &[u8] = if i == 0 {
                image
            } else {
                &src[..layer.input.len()]
            };
            if i < last {
                self.run_layer(i, input, s, LayerOutputMut::Levels(&mut dst[..n]));
                std::mem::swap(&mut src, &mut dst);
            } else if layer.activation {
                self.run_layer(i, input, s, LayerOutputMut::Levels(&mut levels[..n]));
            } else {
                self.run_layer(
                    i,
                    input,
                    s,
                    LayerOutputMut::Potentials(&mut potentials[..n]),
                );
            }
        }
        s.levels = [src, dst];
    }

    /// Runs a batch of `images` (back-to-back HWC uint8 images) on every core.
    pub fn forward_batch(&self, images: &[u8]) -> BatchOutput {
        let in_len = self.input_dims().len();
        let out_len = self.output_dims().len();
        let n = images.len() / in_len;
        let levels = self.model.outputs_levels();
        let (mut lv, mut pt) = if levels {
            (vec![0u8; n * out_len], Vec::new())
        } else {
            (Vec::new(), vec![0i32; n * out_len])
        };
        let chunks = images.par_chunks_exact(in_len);
        if levels {
            chunks.zip(lv.par_chunks_exact_mut(out_len)).for_each_init(
                || self.scratch(),
                |s, (img, out)| self.forward_into(img, s, out, &mut []),
            );
            BatchOutput::Levels(lv)
        } else {
            chunks.zip(pt.par_chunks_exact_mut(out_len)).for_each_init(
                || self.scratch(),
                |s, (img, out)| self.forward_into(img, s, &mut [], out),
            );
            BatchOutput::Potentials(pt)
        }
    }

    /// `predict` of a batch: the potentials of the last layer (which must
    /// have no activation) rescaled to float32 as the engine does.
    pub fn predict_batch(&self, images: &[u8]) -> Option<Vec<f32>> {
        let BatchOutput::Potentials(p) = self.forward_batch(images) else {
            return None;
        };
        let last = self.model.layers.last()?;
        let mut out = vec![0f32; p.len()];
        let per_image = self.output_dims().len();
        for (src, dst) in p
            .chunks_exact(per_image)
            .zip(out.chunks_exact_mut(per_image))
        {
            inference::rescale_output(last, src, dst);
        }
        Some(out)
    }
}
