//! Host vs firmware under QEMU: the firmware (Cortex-M4F, mps2-an386) runs
//! the embedded ds_cnn_kws model on every reference input, and its outputs
//! equal the host's and the Akida engine's, every element.
//!
//! The embedded model `firmware/models/default.akd` is built from the
//! reference set; a test checks it is current (`AKIDA_BLESS=1` rewrites it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use akida_core::inference::{forward, LayerOutput};
use akida_core::{decode, Backend};
use akida_tests::{assert_all_equal, data_dir, scratch_dir, Buffers, ReferenceSet};

const FIRMWARE_SET: &str = "ds_cnn_kws_iq8_wq4_aq4";

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("firmware")
}

fn reference_set() -> ReferenceSet {
    // Always the repository copy: the embedded model is built from it.
    ReferenceSet::open(&data_dir().join("reference").join("vectors"), FIRMWARE_SET)
}

#[test]
fn embedded_firmware_model_is_current() {
    let bytes = akida_host::formats::akd::to_bytes(&reference_set().akida_model()).unwrap();
    let path = firmware_dir().join("models").join("default.akd");
    if std::env::var_os("AKIDA_BLESS").is_some() {
        akida_host::fsutil::atomic_write(&path, &bytes).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        committed == bytes,
        "{} is stale: rerun with AKIDA_BLESS=1",
        path.display()
    );
}

/// Builds the firmware ELF (release) and returns its path.
fn build_firmware() -> PathBuf {
    let dir = firmware_dir();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet"])
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "firmware build failed");
    dir.join("target/thumbv7em-none-eabihf/release/akida-firmware")
}

/// Runs the ELF under QEMU in `work` with semihosting arguments.
fn run_qemu(elf: &Path, work: &Path, args: &str) -> std::process::Output {
    let mut child = Command::new("qemu-system-arm")
        .args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic"])
        .args(["-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(elf)
        .args(["-append", args])
        .current_dir(work)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("qemu-system-arm is installed (scripts/setup.sh)");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("QEMU did not finish in 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn firmware_under_qemu_equals_host_and_engine() {
    let elf = build_firmware();
    let mut set = reference_set();
    let owned = set.akida_model();
    let bytes = akida_host::formats::akd::to_bytes(&owned).unwrap();
    let model = decode(&bytes).unwrap();
    let inputs = set.array("input_uint8");
    let engine = set.array("akida_forward");
    let images = inputs.shape[0];

    let scratch = scratch_dir("qemu");
    let work = scratch.path();
    std::fs::write(work.join("input.bin"), inputs.as_u8().unwrap()).unwrap();
    let out = run_qemu(&elf, work, "input.bin output.bin");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "firmware failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{images} image(s)")), "{stdout}");
    let raw = std::fs::read(work.join("output.bin")).unwrap();
    let firmware: Vec<i32> = raw
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();

    // The host, same core, dense reference kernel.
    let mut buffers = Buffers::for_model(&model);
    let image_len = inputs.len() / images;
    let mut host = Vec::new();
    for n in 0..images {
        let mut ws = buffers.workspace();
        let image = &inputs.as_u8().unwrap()[n * image_len..(n + 1) * image_len];
        match forward(&model, image, &mut ws, &Backend::Reference, |_, _| {}).unwrap() {
            LayerOutput::Potentials(p) => host.extend_from_slice(p),
            LayerOutput::Levels(_) => panic!("{FIRMWARE_SET} ends without activation"),
        }
    }
    let n = assert_all_equal("firmware vs host", &firmware, &host);
    assert_all_equal("firmware vs engine", &firmware, engine.as_i32().unwrap());
    println!("firmware under QEMU: {images} images, {n} elements equal to host and engine");
}
