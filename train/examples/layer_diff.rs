//! Where a cnn2snn-quantized Keras model and its conversion part: for every
//! layer ending in a `QuantizedReLU`, the model truncated there runs in our
//! Keras forward pass (its outputs divided by the step: levels) and, once
//! converted, in the integer runtime (levels); prints per layer how many
//! levels differ on the first `N` images of a uint8 `.npy` batch, and the
//! first differences (image, cell, channel, Keras value / step, integer
//! level).
//!
//! ```sh
//! cargo run --release -p akida-train --example layer_diff -- Q.h5 X.npy [N]
//! ```

use std::path::Path;

use akida_host::cnn2snn::{self, plan::activation_step, ConvertOptions};
use akida_host::formats::npy::{read_npy, TensorData};
use akida_host::keras::{self, LayerConfig};
use akida_host::runtime::{BatchOutput, KernelPolicy, Runtime};
use akida_train::net::{Mode, Network};
use akida_train::rng::Rng;
use anyhow::{bail, Context, Result};
use burn::tensor::Device;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, x) = match args.as_slice() {
        [m, x, ..] => (m, x),
        _ => bail!("usage: layer_diff Q.h5 X.npy [N]"),
    };
    let n: usize = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let model = keras::read_model(Path::new(model))?;
    let x = read_npy(Path::new(x))?;
    let TensorData::U8(images) = x.data else {
        bail!("{}: uint8 images expected", args[1]);
    };
    let image_len: usize = x.shape[1..].iter().product();
    let n = n.min(images.len() / image_len);
    let images = &images[..n * image_len];
    let device = Device::flex();
    for (cut, layer) in model.layers.iter().enumerate() {
        if !matches!(layer.config, LayerConfig::QuantizedReLU { .. }) {
            continue;
        }
        let step = activation_step(layer)?;
        let mut part = model.clone();
        part.layers.truncate(cut + 1);
        part.outputs = vec![layer.name.clone()];
        let net = Network::from_model(&part).context("truncated network")?;
        let params = net.param_tensors(&device, false);
        let (y, _) = net.forward(
            net.input(images, &device),
            &params,
            Mode::Eval,
            &mut Rng::new(0),
            false,
        )?;
        let data = y.into_data();
        let keras = data.as_slice::<f32>().expect("f32 outputs");
        let converted = cnn2snn::convert(&part, &ConvertOptions::default())?.model;
        let channels = converted.output().channels as usize;
        let runtime = Runtime::new(&converted, KernelPolicy::Reference);
        let BatchOutput::Levels(levels) = runtime.forward_batch(images)? else {
            bail!("{}: the conversion outputs potentials", layer.name);
        };
        let per_image = levels.len() / n;
        let mut differ = 0;
        let mut shown = 0;
        for (i, (&k, &l)) in keras.iter().zip(&levels).enumerate() {
            let ratio = k / step;
            if ratio.round() as i64 != l as i64 {
                differ += 1;
                if shown < 5 {
                    shown += 1;
                    let (image, at) = (i / per_image, i % per_image);
                    println!(
                        "  image {image} cell {} channel {}: keras {ratio:.5} steps, integer {l}",
                        at / channels,
                        at % channels
                    );
                }
            }
        }
        println!("{}: {differ} of {} levels differ", layer.name, levels.len());
    }
    Ok(())
}
