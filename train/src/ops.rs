//! The trainer's kernels as burn operations: a backend extension
//! ([`TrainOps`], `#[backend_extension(Autodiff, Flex)]`) implemented on
//! burn's `flex` CPU backend with [`crate::kernels`], and on
//! `Autodiff<Flex>` with a hand-written backward pass per operation (the
//! same kernels' gradients). The functions at the bottom take and return
//! ordinary `burn::Tensor`s, on a plain or an autodiff `flex` device.
//!
//! Every map is NHWC and every kernel in Keras layout, so that no layout
//! copy stands between the layers and the `.h5` weights.

use std::sync::Arc;

use akida_host::keras::QuantizerKind;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Dispatch, Flex, TensorMetadata};
use burn::tensor::{Tensor, TensorData};

use crate::kernels::{self, norm::Act, Geometry};

/// A float tensor of the autodiff `flex` backend.
type AdTensor = FloatTensor<Autodiff<Flex>>;

/// The custom operations. Window arguments: kernel size, strides, padding
/// before (top, left) and output size; see [`Geometry`].
#[backend_extension(Autodiff, Flex)]
pub trait TrainOps: burn::backend::Backend {
    /// Convolution: `x` `[n, h, w, cin]`, `kernel` `[kh, kw, cin, cout]`.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_nhwc(
        x: FloatTensor<Self>,
        kernel: FloatTensor<Self>,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> FloatTensor<Self>;

    /// Depthwise convolution: `x` `[n, h, w, c]`, `kernel` `[kh, kw, c, 1]`.
    #[allow(clippy::too_many_arguments)]
    fn depthwise_nhwc(
        x: FloatTensor<Self>,
        kernel: FloatTensor<Self>,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> FloatTensor<Self>;

    /// Max pooling of `x` `[n, h, w, c]`.
    #[allow(clippy::too_many_arguments)]
    fn max_pool_nhwc(
        x: FloatTensor<Self>,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> FloatTensor<Self>;

    /// Per-channel (last axis) mean and biased variance of `x`, as a
    /// `[2, c]` tensor; never tracked.
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Batch normalization over the last axis with the statistics `stats`
    /// (`[2, c]`: mean, variance), then the activation coded by `act`
    /// ([`Act::code`]). `train`: the statistics are the batch's, and the
    /// gradient flows through them.
    fn batch_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        eps: f32,
        act: f32,
        train: bool,
    ) -> FloatTensor<Self>;

    /// cnn2snn's quantized ReLU.
    fn quantized_relu(x: FloatTensor<Self>, step: f32, levels: f32) -> FloatTensor<Self>;

    /// cnn2snn's weight quantizer: `per_axis` (MaxPerAxisQuantizer, per
    /// last-axis channel) or per tensor (MaxQuantizer).
    fn fake_quant(w: FloatTensor<Self>, bits: u32, per_axis: bool) -> FloatTensor<Self>;
}

// ---------------------------------------------------------------------------
// Flex: the forward kernels.

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.shape().as_slice().to_vec()
}

/// The tensor's values, contiguous.
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) if s.len() == t.shape().num_elements() => std::borrow::Cow::Borrowed(s),
        _ => {
            let c = t.to_contiguous();
            std::borrow::Cow::Owned(c.as_slice::<f32>().expect("contiguous f32").to_vec())
        }
    }
}

fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

#[allow(clippy::too_many_arguments)]
fn geometry(
    x: &[usize],
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    pad_top: usize,
    pad_left: usize,
    oh: usize,
    ow: usize,
) -> Geometry {
    let [n, h, w, c] = <[usize; 4]>::try_from(x).expect("an NHWC input");
    Geometry {
        n,
        h,
        w,
        c,
        kh,
        kw,
        sh,
        sw,
        pad_top,
        pad_left,
        oh,
        ow,
    }
}

fn conv_forward(g: &Geometry, x: &FlexTensor, k: &FlexTensor) -> FlexTensor {
    let cout = *dims(k).last().expect("a kernel");
    let y = kernels::conv::forward(g, cout, &values(x), &values(k));
    tensor(y, vec![g.n, g.oh, g.ow, cout])
}

fn depthwise_forward(g: &Geometry, x: &FlexTensor, k: &FlexTensor) -> FlexTensor {
    let y = kernels::depthwise::forward(g, &values(x), &values(k));
    tensor(y, vec![g.n, g.oh, g.ow, g.c])
}

fn pool_forward(g: &Geometry, x: &FlexTensor) -> (FlexTensor, Arc<Vec<u32>>) {
    let len = g.n * g.out_pixels() * g.c;
    let (mut y, mut arg) = (vec![0f32; len], vec![0u32; len]);
    kernels::pool::forward(g, &values(x), &mut y, &mut arg);
    (tensor(y, vec![g.n, g.oh, g.ow, g.c]), Arc::new(arg))
}

fn stats_split(stats: &FlexTensor) -> (Vec<f32>, Vec<f32>) {
    let s = values(stats);
    let c = s.len() / 2;
    (s[..c].to_vec(), s[c..].to_vec())
}

fn norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stats: &FlexTensor,
    eps: f32,
    act: f32,
) -> FlexTensor {
    let (mean, var) = stats_split(stats);
    let (scale, shift) = kernels::norm::affine(&values(gamma), &values(beta), &mean, &var, eps);
    let xv = values(x);
    let y = kernels::norm::forward_vec(&xv, &scale, &shift, Act::from_code(act));
    tensor(y, dims(x))
}

fn qrelu_forward(x: &FlexTensor, step: f32, levels: f32) -> FlexTensor {
    let y = kernels::quant::relu_forward_vec(&values(x), step, levels);
    tensor(y, dims(x))
}

fn quantizer(per_axis: bool) -> QuantizerKind {
    if per_axis {
        QuantizerKind::MaxPerAxis
    } else {
        QuantizerKind::Max
    }
}

fn quant_forward(w: &FlexTensor, bits: u32, per_axis: bool) -> FlexTensor {
    let shape = dims(w);
    let channels = *shape.last().expect("a weight tensor");
    let q = kernels::quant::weights_forward(&quantizer(per_axis), bits, &values(w), channels)
        .expect("bit widths are checked when the network is built");
    tensor(q, shape)
}

impl TrainOps for Flex {
    fn conv2d_nhwc(
        x: FlexTensor,
        kernel: FlexTensor,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> FlexTensor {
        let g = geometry(&dims(&x), kh, kw, sh, sw, pad_top, pad_left, oh, ow);
        conv_forward(&g, &x, &kernel)
    }

    fn depthwise_nhwc(
        x: FlexTensor,
        kernel: FlexTensor,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> FlexTensor {
        let g = geometry(&dims(&x), kh, kw, sh, sw, pad_top, pad_left, oh, ow);
        depthwise_forward(&g, &x, &kernel)
    }

    fn max_pool_nhwc(
        x: FlexTensor,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> FlexTensor {
        let g = geometry(&dims(&x), kh, kw, sh, sw, pad_top, pad_left, oh, ow);
        pool_forward(&g, &x).0
    }

    fn batch_stats(x: FlexTensor) -> FlexTensor {
        let c = *dims(&x).last().expect("a tensor");
        let (mut mean, var) = kernels::norm::stats(&values(&x), c);
        mean.extend(var);
        tensor(mean, vec![2, c])
    }

    fn batch_norm_act(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        eps: f32,
        act: f32,
        _train: bool,
    ) -> FlexTensor {
        norm_forward(&x, &gamma, &beta, &stats, eps, act)
    }

    fn quantized_relu(x: FlexTensor, step: f32, levels: f32) -> FlexTensor {
        qrelu_forward(&x, step, levels)
    }

    fn fake_quant(w: FlexTensor, bits: u32, per_axis: bool) -> FlexTensor {
        quant_forward(&w, bits, per_axis)
    }
}

// ---------------------------------------------------------------------------
// Autodiff<Flex>: the same forward, and each operation's backward.

type Ad<C> = Autodiff<Flex, C>;

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = (FlexTensor, FlexTensor, Geometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_k] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, k, g) = ops.state;
        let kshape = dims(&k);
        let cout = *kshape.last().expect("a kernel");
        let (xv, kv, dyv) = (values(&x), values(&k), values(&dy));
        let dx = node_x
            .as_ref()
            .map(|_| kernels::conv::input_gradient(&g, cout, &xv, &kv, &dyv));
        let mut dk = node_k
            .as_ref()
            .map(|_| vec![0f32; g.kh * g.kw * g.c * cout]);
        kernels::conv::backward(&g, cout, &xv, &kv, &dyv, None, dk.as_deref_mut());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, tensor(dx, dims(&x)));
        }
        if let (Some(node), Some(dk)) = (node_k, dk) {
            grads.register::<Flex>(node.id, tensor(dk, kshape));
        }
    }
}

#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 2> for DepthwiseBackward {
    type State = (FlexTensor, FlexTensor, Geometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_k] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, k, g) = ops.state;
        let mut dx = node_x.as_ref().map(|_| vec![0f32; g.n * g.in_image()]);
        let mut dk = node_k.as_ref().map(|_| vec![0f32; g.kh * g.kw * g.c]);
        kernels::depthwise::backward(
            &g,
            &values(&x),
            &values(&k),
            &values(&dy),
            dx.as_deref_mut(),
            dk.as_deref_mut(),
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, tensor(dx, dims(&x)));
        }
        if let (Some(node), Some(dk)) = (node_k, dk) {
            grads.register::<Flex>(node.id, tensor(dk, dims(&k)));
        }
    }
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (Arc<Vec<u32>>, Geometry);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (arg, g) = ops.state;
        if let Some(node) = node_x {
            let mut dx = vec![0f32; g.n * g.in_image()];
            kernels::pool::backward(&g, &arg, &values(&dy), &mut dx);
            grads.register::<Flex>(node.id, tensor(dx, vec![g.n, g.h, g.w, g.c]));
        }
    }
}

#[derive(Debug)]
struct NormBackward;

/// What the normalization's backward needs.
#[derive(Clone, Debug)]
struct NormState {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    stats: FlexTensor,
    eps: f32,
    act: f32,
    train: bool,
}

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let (mean, var) = stats_split(&s.stats);
        let (dx, dgamma, dbeta) = kernels::norm::backward(
            &values(&s.x),
            &values(&dy),
            &values(&s.gamma),
            &values(&s.beta),
            &mean,
            &var,
            s.eps,
            Act::from_code(s.act),
            s.train,
        );
        let c = dgamma.len();
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, dims(&s.x)));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, vec![c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, vec![c]));
        }
    }
}

#[derive(Debug)]
struct QreluBackward;

impl Backward<Flex, 1> for QreluBackward {
    type State = (FlexTensor, f32, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, step, levels) = ops.state;
        if let Some(node) = node_x {
            let dx = kernels::quant::relu_backward_vec(&values(&x), &values(&dy), step, levels);
            grads.register::<Flex>(node.id, tensor(dx, dims(&x)));
        }
    }
}

#[derive(Debug)]
struct QuantBackward;

impl Backward<Flex, 1> for QuantBackward {
    type State = (FlexTensor, u32, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_w] = ops.parents;
        let dq = grads.consume::<Flex>(&ops.node);
        let (w, bits, per_axis) = ops.state;
        if let Some(node) = node_w {
            let shape = dims(&w);
            let channels = *shape.last().expect("a weight tensor");
            let dw = kernels::quant::weights_backward(
                &quantizer(per_axis),
                bits,
                &values(&w),
                channels,
                &values(&dq),
            )
            .expect("bit widths are checked when the network is built");
            grads.register::<Flex>(node.id, tensor(dw, shape));
        }
    }
}

impl<C: CheckpointStrategy> TrainOps for Ad<C> {
    fn conv2d_nhwc(
        x: AdTensor,
        kernel: AdTensor,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> AdTensor {
        let g = geometry(
            &dims(x.primitive()),
            kh,
            kw,
            sh,
            sw,
            pad_top,
            pad_left,
            oh,
            ow,
        );
        let y = conv_forward(&g, x.primitive(), kernel.primitive());
        match ConvBackward
            .prepare::<C>([x.node(), kernel.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((x.into_primitive(), kernel.into_primitive(), g), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn depthwise_nhwc(
        x: AdTensor,
        kernel: AdTensor,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> AdTensor {
        let g = geometry(
            &dims(x.primitive()),
            kh,
            kw,
            sh,
            sw,
            pad_top,
            pad_left,
            oh,
            ow,
        );
        let y = depthwise_forward(&g, x.primitive(), kernel.primitive());
        match DepthwiseBackward
            .prepare::<C>([x.node(), kernel.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((x.into_primitive(), kernel.into_primitive(), g), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn max_pool_nhwc(
        x: AdTensor,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        pad_top: usize,
        pad_left: usize,
        oh: usize,
        ow: usize,
    ) -> AdTensor {
        let g = geometry(
            &dims(x.primitive()),
            kh,
            kw,
            sh,
            sw,
            pad_top,
            pad_left,
            oh,
            ow,
        );
        let (y, arg) = pool_forward(&g, x.primitive());
        match PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((arg, g), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn batch_stats(x: AdTensor) -> AdTensor {
        AdTensor::new(Flex::batch_stats(x.into_primitive()))
    }

    fn batch_norm_act(
        x: AdTensor,
        gamma: AdTensor,
        beta: AdTensor,
        stats: AdTensor,
        eps: f32,
        act: f32,
        train: bool,
    ) -> AdTensor {
        let y = norm_forward(
            x.primitive(),
            gamma.primitive(),
            beta.primitive(),
            stats.primitive(),
            eps,
            act,
        );
        match NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                NormState {
                    x: x.into_primitive(),
                    gamma: gamma.into_primitive(),
                    beta: beta.into_primitive(),
                    stats: stats.into_primitive(),
                    eps,
                    act,
                    train,
                },
                y,
            ),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn quantized_relu(x: AdTensor, step: f32, levels: f32) -> AdTensor {
        let y = qrelu_forward(x.primitive(), step, levels);
        match QreluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x.into_primitive(), step, levels), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn fake_quant(w: AdTensor, bits: u32, per_axis: bool) -> AdTensor {
        let q = quant_forward(w.primitive(), bits, per_axis);
        match QuantBackward
            .prepare::<C>([w.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((w.into_primitive(), bits, per_axis), q),
            OpsKind::UnTracked(prep) => prep.finish(q),
        }
    }
}

// ---------------------------------------------------------------------------
// Tensor-level functions.

/// `conv2d` of an NHWC batch with a Keras kernel.
pub fn conv2d(x: Tensor<4>, kernel: Tensor<4>, g: &Geometry) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as TrainOps>::conv2d_nhwc(
        x.into_dispatch(),
        kernel.into_dispatch(),
        g.kh,
        g.kw,
        g.sh,
        g.sw,
        g.pad_top,
        g.pad_left,
        g.oh,
        g.ow,
    ))
}

/// Depthwise convolution of an NHWC batch with a Keras `[kh, kw, c, 1]`
/// kernel.
pub fn depthwise(x: Tensor<4>, kernel: Tensor<4>, g: &Geometry) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as TrainOps>::depthwise_nhwc(
        x.into_dispatch(),
        kernel.into_dispatch(),
        g.kh,
        g.kw,
        g.sh,
        g.sw,
        g.pad_top,
        g.pad_left,
        g.oh,
        g.ow,
    ))
}

/// Max pooling of an NHWC batch.
pub fn max_pool(x: Tensor<4>, g: &Geometry) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as TrainOps>::max_pool_nhwc(
        x.into_dispatch(),
        g.kh,
        g.kw,
        g.sh,
        g.sw,
        g.pad_top,
        g.pad_left,
        g.oh,
        g.ow,
    ))
}

/// Mean and biased variance over every axis but the last, as `[2, c]`.
pub fn batch_stats<const D: usize>(x: Tensor<D>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as TrainOps>::batch_stats(x.into_dispatch()))
}

/// Batch normalization over the last axis, then `act`.
pub fn batch_norm_act<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    stats: Tensor<2>,
    eps: f32,
    act: Act,
    train: bool,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as TrainOps>::batch_norm_act(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.into_dispatch(),
        eps,
        act.code(),
        train,
    ))
}

/// cnn2snn's `QuantizedReLU` (`levels = 2^bits - 1`).
pub fn quantized_relu<const D: usize>(x: Tensor<D>, step: f32, levels: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as TrainOps>::quantized_relu(
        x.into_dispatch(),
        step,
        levels,
    ))
}

/// cnn2snn's weight fake quantization.
pub fn fake_quant<const D: usize>(w: Tensor<D>, bits: u32, per_axis: bool) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as TrainOps>::fake_quant(
        w.into_dispatch(),
        bits,
        per_axis,
    ))
}
