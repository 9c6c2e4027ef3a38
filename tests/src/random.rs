//! Random valid models of every layer kind and their inputs, for property
//! tests of the streaming engine (host and firmware under QEMU): an input
//! convolution, then up to three convolution, separable or dense layers with
//! random shapes, strides, paddings, poolings and bit widths, thresholds and
//! act_steps scaled so that levels spread over their range.

use akida_core::weights::value_range;
use akida_core::{Dims, LayerKind, LayerParams, Padding, Pooling, Window};
use akida_host::formats::akd::{self, ConvertedLayer, ConvertedModel};
use akida_host::keras::init::Rng;

fn below(rng: &mut Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[below(rng, items.len() as u64) as usize]
}

fn channels(rng: &mut Rng) -> u32 {
    // Mostly multiples of 4 and 8 (the M4 kernels' layouts), some not.
    pick(rng, &[4, 8, 8, 16, 16, 12, 24, 32, 3, 5, 6, 1])
}

/// Random layer parameters of `kind` on `input`, `None` if the draw does
/// not fit (a 'valid' window larger than the input).
fn params(rng: &mut Rng, kind: LayerKind, input: Dims, last: bool) -> Option<LayerParams> {
    let fc = kind == LayerKind::FullyConnected;
    let kernel = if fc {
        Window::ONE
    } else {
        Window::new(1 + below(rng, 5) as u32, 1 + below(rng, 5) as u32)
    };
    let stride = if fc {
        Window::ONE
    } else {
        Window::new(1 + below(rng, 2) as u32, 1 + below(rng, 2) as u32)
    };
    let padding = if !fc && below(rng, 4) != 0 {
        Padding::Same
    } else {
        Padding::Valid
    };
    let conv = akida_core::dims::slide(input, kernel, stride, padding)?;
    let pooling = match (fc, below(rng, 6)) {
        (true, _) | (_, 0..=3) => Pooling::None,
        (_, 4) => {
            let size = Window::new(1 + below(rng, 3) as u32, 1 + below(rng, 3) as u32);
            let stride = Window::new(1 + below(rng, 2) as u32, 1 + below(rng, 2) as u32);
            akida_core::dims::slide(conv, size, stride, padding)?;
            Pooling::Max { size, stride }
        }
        _ => Pooling::GlobalAverage,
    };
    let weights_bits = match kind {
        LayerKind::InputConvolutional => pick(rng, &[8, 8, 4, 2]),
        _ => pick(rng, &[4, 4, 2, 8]),
    };
    let filters = match kind {
        LayerKind::FullyConnected => 1 + below(rng, 24) as u32,
        _ => channels(rng),
    };
    Some(LayerParams {
        kind,
        input,
        filters,
        kernel,
        stride,
        padding,
        padding_value: match kind {
            LayerKind::InputConvolutional if below(rng, 2) == 0 => below(rng, 256) as u8,
            _ => 0,
        },
        pooling,
        activation: !last || below(rng, 2) == 0,
        act_bits: pick(rng, &[1, 2, 4, 4]),
        weights_bits,
    })
}

/// Random weights, thresholds and act_steps of a layer whose input levels
/// reach `max_input`.
fn layer(rng: &mut Rng, name: String, p: LayerParams, max_input: u32) -> ConvertedLayer {
    let (main, pw) = p.weight_shapes();
    let count = |s: [u32; 4]| s.iter().map(|&d| d as usize).product::<usize>();
    let (lo, hi) = value_range(p.weights_bits);
    let mut values = |n: usize| -> Vec<i8> {
        (0..n)
            .map(|_| (lo as i64 + below(rng, (hi as i64 - lo as i64 + 1) as u64) as i64) as i8)
            .collect()
    };
    let weights = values(count(main));
    let weights_pw = pw.map(|s| values(count(s)));
    // A typical potential: inputs times weights over the reduction.
    let reduction = match p.kind {
        LayerKind::FullyConnected => p.input.len(),
        LayerKind::SeparableConvolutional => p.kernel.area() * p.input.channels as usize,
        _ => p.kernel.area() * p.input.channels as usize,
    } as f64;
    let mut scale = reduction.sqrt() * max_input as f64 * hi as f64 / 2.0;
    if p.pooling == Pooling::GlobalAverage {
        let conv = p.conv_output().expect("valid");
        scale *= (conv.rows * conv.cols) as f64;
    }
    let f = p.filters as usize;
    let threshold: Vec<i32> = (0..f)
        .map(|_| ((below(rng, 1000) as f64 / 1000.0 - 0.3) * scale) as i32)
        .collect();
    let levels = ((1u32 << p.act_bits) - 1) as f64;
    let act_step: Vec<f32> = (0..f)
        .map(|_| {
            let s = scale / levels * (0.2 + below(rng, 1000) as f64 / 1000.0) / 16.0;
            (s.max(1.0 / 16.0)) as f32
        })
        .collect();
    ConvertedLayer::new(
        name,
        p,
        &weights,
        weights_pw.as_deref(),
        &threshold,
        &act_step,
    )
    .expect("weights in range")
}

/// A random valid model of 2 to 4 layers.
pub fn model(seed: u64) -> ConvertedModel {
    let mut rng = Rng::new(seed);
    loop {
        if let Some(m) = try_model(&mut rng) {
            return m;
        }
    }
}

fn try_model(rng: &mut Rng) -> Option<ConvertedModel> {
    let input = Dims::new(
        3 + below(rng, 14) as u32,
        3 + below(rng, 12) as u32,
        pick(rng, &[1, 3]),
    );
    let n = 2 + below(rng, 3) as usize;
    let mut layers = Vec::new();
    let mut dims = input;
    let mut max_input = 255;
    for i in 0..n {
        let last = i == n - 1;
        let kind = match i {
            0 => LayerKind::InputConvolutional,
            // Once the map is a single cell, mostly dense layers.
            _ if dims.rows * dims.cols == 1 => pick(
                rng,
                &[
                    LayerKind::FullyConnected,
                    LayerKind::FullyConnected,
                    LayerKind::SeparableConvolutional,
                ],
            ),
            _ => pick(
                rng,
                &[
                    LayerKind::Convolutional,
                    LayerKind::SeparableConvolutional,
                    LayerKind::SeparableConvolutional,
                    LayerKind::FullyConnected,
                ],
            ),
        };
        let p = params(rng, kind, dims, last)?;
        let l = layer(rng, format!("layer_{i}"), p, max_input);
        dims = p.output()?;
        max_input = (1 << p.act_bits) - 1;
        layers.push(l);
    }
    akd::build(layers).ok()
}

/// `n` random input images of a model, with `zeros` the share of zero bytes.
pub fn inputs(seed: u64, model: &ConvertedModel, n: usize, zeros: f64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    (0..n * model.input().len())
        .map(|_| {
            if (below(&mut rng, 1000) as f64) < zeros * 1000.0 {
                0
            } else {
                below(&mut rng, 256) as u8
            }
        })
        .collect()
}
