//! Embeds the model (`models/default.akd`, or `AKIDA_MODEL`), prepared and
//! checked by akida-embedded-build, and sizes the loader's buffers.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    akida_embedded_build::memory_x("memory.x");
    // The examples (the MFCC check of tests/tests/mfcc_qemu.rs) link like the
    // binary: memory_x gives the linker scripts to binaries only.
    println!("cargo:rustc-link-arg-examples=-Tlink.x");
    println!("cargo:rustc-link-arg-examples=-Tdefmt.x");
    let embedded = akida_embedded_build::embed_model("models/default.akd");
    // The loader's arena and workspace (bytes), for models loaded at run time.
    let kib = |var: &str, default: usize| {
        println!("cargo:rerun-if-env-changed={var}");
        env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
            * 1024
    };
    let arena = kib("AKIDA_ARENA_KIB", 1024);
    let workspace = kib("AKIDA_WORKSPACE_KIB", 2048) / 8;
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::write(
        out.join("loader.rs"),
        format!(
            "/// Bytes of the loader's arena.\npub const ARENA: usize = {arena};\n\
             /// u64 words of the loader's workspace.\npub const WORKSPACE_WORDS: usize = {};\n",
            workspace.max(embedded.workspace_words)
        ),
    )
    .unwrap();
}
