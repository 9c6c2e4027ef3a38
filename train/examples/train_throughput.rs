//! Training throughput of a Keras model on random data: the trainer's own
//! step (forward, cross-entropy, backward, Keras's Adam, batch-norm moving
//! averages), as `fit` runs it. `bench/train_throughput.sh` runs it beside
//! tf_keras on the same model.
//!
//! `cargo run --release -p akida-train --example train_throughput -- M.h5 [BATCH [STEPS [WARMUP]]]`
//! prints `images/s N`.

use std::time::Instant;

use akida_host::datasets::{ImageSet, Targets};
use akida_train::data::Task;
use akida_train::fit::step;
use akida_train::net::Network;
use akida_train::optim::{Adam, AdamConfig};
use akida_train::rng::Rng;
use anyhow::{Context, Result};
use burn::tensor::Device;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    akida_train::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .context("usage: train_throughput M.h5 [BATCH [STEPS [WARMUP]]]")?;
    let arg = |i: usize, default: usize| -> Result<usize> {
        args.get(i)
            .map_or(Ok(default), |s| s.parse().context("a number"))
    };
    let (batch, steps, warmup) = (arg(2, 100)?, arg(3, 10)?, arg(4, 2)?);
    let model = akida_host::keras::read_model(std::path::Path::new(path))?;
    let mut net = Network::from_model(&model)?;
    let mut rng = Rng::new(1);
    let images: Vec<u8> = (0..batch * net.input_len())
        .map(|_| rng.below(256) as u8)
        .collect();
    let classes = net.outputs;
    let set = ImageSet {
        shape: net.input_shape,
        images,
        targets: Targets::Classes {
            labels: (0..batch).map(|_| rng.below(classes) as u32).collect(),
            classes,
        },
    };
    let sizes: Vec<usize> = net.params.iter().map(|p| p.values.len()).collect();
    let mut adam = Adam::new(AdamConfig::default(), &sizes);
    let device = Device::flex().autodiff();
    for _ in 0..warmup {
        step(
            &mut net,
            &mut adam,
            &mut rng,
            &set,
            Task::Classification,
            1e-3,
            &device,
        )?;
    }
    let start = Instant::now();
    for _ in 0..steps {
        step(
            &mut net,
            &mut adam,
            &mut rng,
            &set,
            Task::Classification,
            1e-3,
            &device,
        )?;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "images/s {:.1} ({} steps of {} in {:.2} s, {} threads)",
        (steps * batch) as f64 / seconds,
        steps,
        batch,
        seconds,
        rayon::current_num_threads()
    );
    Ok(())
}
