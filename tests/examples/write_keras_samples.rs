//! Writes Keras `.h5` files made by akida-rs into a folder, for
//! `scripts/check_keras_compat.py` to load with tf_keras and cnn2snn:
//! the four zoo models, a float and a quantized model holding every layer
//! kind, and our rewrite of every reference `*_float.h5` / `*_q.h5`.
//!
//! `cargo run -p akida-tests --example write_keras_samples -- OUT_DIR`

use std::path::PathBuf;

use akida_host::keras::{read_model, write_model, Model};
use akida_host::zoo::ZooModel;
use akida_tests::keras::{all_float_kinds, all_quantized_kinds};
use akida_tests::{reference_dir, set_names};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "keras_samples".into()),
    );
    std::fs::create_dir_all(&out)?;
    let mut models: Vec<(String, Model)> = ZooModel::ALL
        .iter()
        .map(|m| Ok((m.name().to_owned(), m.build(0)?)))
        .collect::<Result<_, akida_host::keras::GraphError>>()?;
    models.push(("all_float_kinds".into(), all_float_kinds(1)));
    models.push(("all_quantized_kinds".into(), all_quantized_kinds(2)));
    let dir = reference_dir();
    for set in set_names(&dir) {
        for suffix in ["_float", "_q"] {
            let name = format!("{set}{suffix}");
            let model = read_model(&dir.join(format!("{name}.h5")))?;
            models.push((format!("rewritten_{name}"), model));
        }
    }
    for (name, model) in models {
        let path = out.join(format!("{name}.h5"));
        write_model(&path, &model)?;
        println!("{}", path.display());
    }
    Ok(())
}
