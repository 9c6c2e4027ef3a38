//! Host vs firmware under QEMU: the firmware (Cortex-M4F, mps2-an386) runs
//! the embedded ds_cnn_kws model on every reference input, and its outputs
//! equal the host's and the Akida engine's, every element. The firmware
//! built with another model (`AKIDA_MODEL`) runs the InputData fixtures of
//! `tests/data/cnn2snn/` (our conversion of cnn2snn's quantized files) and
//! gives the engine's outputs too.
//!
//! The embedded model `firmware/models/default.akd` is built from the
//! reference set; a test checks it is current (`AKIDA_BLESS=1` rewrites it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
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

/// Firmware builds one at a time: the tests of this file run in parallel and
/// share the firmware's target directory.
static FIRMWARE_BUILD: Mutex<()> = Mutex::new(());

/// Builds the firmware ELF (release) with the default model and returns
/// its path.
fn build_firmware() -> PathBuf {
    let elf = std::env::temp_dir().join(format!("akida-firmware-{}.elf", std::process::id()));
    build_firmware_with(None, &elf);
    elf
}

/// Builds the firmware (release) with `model` embedded (`AKIDA_MODEL`,
/// which `firmware/build.rs` reads; the default model without it) and
/// copies the ELF to `elf`. `cargo build` runs in the firmware directory,
/// where its `.cargo/config.toml` picks the target, without this build's
/// flags.
fn build_firmware_with(model: Option<&Path>, elf: &Path) {
    let dir = firmware_dir();
    let _one_at_a_time = FIRMWARE_BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--release", "--quiet"])
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("AKIDA_MODEL");
    if let Some(model) = model {
        cargo.env("AKIDA_MODEL", model);
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "firmware build failed");
    let built = dir.join("target/thumbv7em-none-eabihf/release/akida-firmware");
    std::fs::copy(&built, elf).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
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

/// The InputData fixtures (a 16-feature vector through three Dense layers,
/// a 5-channel image) converted by us from cnn2snn's quantized files, run by
/// the firmware under QEMU: every output equals the engine's.
#[test]
fn input_data_fixtures_under_qemu_equal_the_engine() {
    let scratch = scratch_dir("qemu-fixtures");
    let work = scratch.path();
    for name in ["input_data_vector", "input_data_5_channels"] {
        let f = akida_tests::fixtures::fixture(name);
        let model = f
            .ours_from_quantized()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .model;
        assert!(model.input_data().is_some(), "{name}");
        let akd = work.join(format!("{name}.akd"));
        std::fs::write(&akd, akida_host::formats::akd::to_bytes(&model).unwrap()).unwrap();
        let elf = work.join(format!("{name}.elf"));
        build_firmware_with(Some(&akd), &elf);

        let inputs = f.io("inputs").unwrap();
        let engine = f.io("forward").unwrap();
        let images = inputs.shape[0];
        std::fs::write(work.join("input.bin"), inputs.as_u8().unwrap()).unwrap();
        let out = run_qemu(&elf, work, "input.bin output.bin");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: firmware failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("{images} image(s)")), "{stdout}");
        let raw = std::fs::read(work.join("output.bin")).unwrap();
        let n = match (engine.as_i32(), engine.as_u8()) {
            (Some(want), _) => {
                let got: Vec<i32> = raw
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                assert_all_equal(&format!("{name}: firmware vs engine"), &got, want)
            }
            (None, Some(want)) => {
                assert_all_equal(&format!("{name}: firmware vs engine"), &raw, want)
            }
            _ => panic!("{name}: the engine's forward is neither int32 nor uint8"),
        };
        println!("{name} under QEMU: {images} inputs, {n} elements equal to the engine's");
    }
}
