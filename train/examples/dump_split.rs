//! Writes a keyword (or, with CLASSES `cifar10`, a CIFAR-10) model's test
//! split, or its first `LIMIT` samples, as `.npy` files, for comparisons
//! outside the tool chain (`scripts/compare_with_tensorflow.py`): the
//! uint8 MFCC inputs `x.npy` (N, 49, 10, 1), the labels `y.npy` (int32) and
//! our Keras forward pass's outputs `keras.npy` (float32, before softmax).
//!
//! ```sh
//! cargo run --release -p akida-train --example dump_split -- MODEL.h5 DATA_DIR CLASSES OUT_DIR
//! ```

use std::path::Path;

use akida_host::datasets::Targets;
use akida_host::formats::npy::{write_npy, Tensor, TensorData};
use akida_host::keras;
use akida_train::commands::Tool;
use akida_train::net::Network;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, data, classes, out] = args.as_slice() else {
        anyhow::bail!("usage: dump_split MODEL.h5 DATA_DIR CLASSES OUT_DIR");
    };
    let out = Path::new(out);
    std::fs::create_dir_all(out)?;
    let data = match classes.as_str() {
        "cifar10" => Tool::Cifar10.load(Path::new(data), None)?,
        n => Tool::Kws.load(Path::new(data), Some(n.parse()?))?,
    };
    let mut set = data.test;
    if let Some(limit) = std::env::var("LIMIT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let limit = limit.min(set.len());
        set.images.truncate(limit * set.image_len());
        if let Targets::Classes { labels, .. } = &mut set.targets {
            labels.truncate(limit);
        }
    }
    let set = &set;
    let net = Network::from_model(&keras::read_model(Path::new(model))?)?;
    net.check_data(set)?;
    let (_, outputs) = akida_train::fit::evaluate(&net, set, 200)?;
    let n = set.len();
    let shape = [n, set.shape[0], set.shape[1], set.shape[2]].to_vec();
    write_npy(
        &out.join("x.npy"),
        &Tensor {
            shape,
            data: TensorData::U8(set.images.clone()),
        },
    )?;
    if let Targets::Classes { labels, .. } = &set.targets {
        let labels = labels.iter().map(|&l| l as i32).collect();
        write_npy(
            &out.join("y.npy"),
            &Tensor {
                shape: vec![n],
                data: TensorData::I32(labels),
            },
        )?;
    }
    let shape = vec![n, net.outputs];
    write_npy(
        &out.join("keras.npy"),
        &Tensor {
            shape,
            data: TensorData::F32(outputs),
        },
    )?;
    println!("{n} samples written to {}", out.display());
    Ok(())
}
