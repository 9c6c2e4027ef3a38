//! Embeds the model at build time and sizes the inference buffers from it.
//!
//! The model is `models/default.akd` unless `AKIDA_MODEL` names another
//! `.akd` file. It is decoded and validated here with akida-core, so a corrupt
//! model fails the build, and its workspace sizes become constants.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    fs::copy(manifest.join("memory.x"), out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=AKIDA_MODEL");

    let model_path = match env::var_os("AKIDA_MODEL") {
        Some(p) => PathBuf::from(p),
        None => manifest.join("models").join("default.akd"),
    };
    println!("cargo:rerun-if-changed={}", model_path.display());
    let bytes = fs::read(&model_path)
        .unwrap_or_else(|e| panic!("cannot read model {}: {e}", model_path.display()));
    let model = akida_core::decode(&bytes)
        .unwrap_or_else(|e| panic!("model {} is not valid: {e}", model_path.display()));
    let sizes = model.workspace_sizes(false);
    let input = model.input().len();
    let output = model.output().len();
    let code = format!(
        "/// Path of the embedded model.\n\
         pub const MODEL_PATH: &str = {path:?};\n\
         /// Bytes of one input image (HWC uint8).\n\
         pub const INPUT_LEN: usize = {input};\n\
         /// Elements of one output.\n\
         pub const OUTPUT_LEN: usize = {output};\n\
         /// Whether the model outputs levels (u8) rather than potentials (i32).\n\
         pub const OUTPUTS_LEVELS: bool = {levels};\n\
         pub const LEVELS: usize = {lv};\n\
         pub const SCRATCH: usize = {sc};\n\
         pub const ROW: usize = {row};\n\
         pub const WEIGHTS: usize = {w};\n\
         pub const POTENTIALS: usize = {p};\n",
        path = model_path.display().to_string(),
        levels = model.outputs_levels(),
        lv = sizes.levels.max(1),
        sc = sizes.scratch.max(1),
        row = sizes.row.max(1),
        w = sizes.weights.max(1),
        p = sizes.output.max(1),
    );
    fs::write(out.join("sizes.rs"), code).unwrap();
    fs::copy(&model_path, out.join("model.akd")).unwrap();
}
