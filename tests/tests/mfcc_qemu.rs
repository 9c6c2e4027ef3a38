//! The keyword-spotting front end on the Cortex-M4F under QEMU equals the
//! host's bit for bit: the firmware example `mfcc` (akida-core's MFCC only)
//! turns real Speech Commands clips, background noise, silence and a
//! full-scale signal into float32 MFCCs and uint8 model inputs, and every
//! float's bits and every byte match what the host computes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use akida_core::mfcc::{self, CLIP_SAMPLES, COEFFS, FRAMES, INPUT_LEN};
use akida_host::datasets::speech_commands::read_wav;
use akida_tests::data_dir;

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("firmware")
}

/// Builds the firmware's `mfcc` example (release) and returns its path.
fn build_example() -> PathBuf {
    let dir = firmware_dir();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--example", "mfcc"])
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "firmware example build failed");
    dir.join("target/thumbv7em-none-eabihf/release/examples/mfcc")
}

fn clips() -> Vec<[i16; CLIP_SAMPLES]> {
    let set = data_dir().join("datasets").join("speech_commands-mini");
    let mut clips = Vec::new();
    for class in ["yes", "no", "up", "down", "_silence_", "_unknown_"] {
        let mut names: Vec<_> = std::fs::read_dir(set.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names.iter().take(2) {
            clips.push(mfcc::pad_clip(&read_wav(path).unwrap()));
        }
    }
    let noise = read_wav(&set.join("_background_noise_/running_tap.wav")).unwrap();
    clips.push(mfcc::pad_clip(&noise));
    clips.push([0; CLIP_SAMPLES]);
    let mut full = [0i16; CLIP_SAMPLES];
    for (i, s) in full.iter_mut().enumerate() {
        *s = if (i / 7) % 2 == 0 { i16::MAX } else { i16::MIN };
    }
    clips.push(full);
    clips
}

#[test]
fn mfcc_on_the_cortex_m4f_equals_the_host_bit_for_bit() {
    let elf = build_example();
    let clips = clips();
    let work = std::env::temp_dir().join(format!("akida-mfcc-qemu-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let pcm: Vec<u8> = clips
        .iter()
        .flat_map(|c| c.iter().flat_map(|s| s.to_le_bytes()))
        .collect();
    std::fs::write(work.join("pcm.bin"), pcm).unwrap();

    let mut child = Command::new("qemu-system-arm")
        .args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic"])
        .args(["-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(&elf)
        .args(["-append", "pcm.bin mfcc.bin features.bin"])
        .current_dir(&work)
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
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "example failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} clip(s)", clips.len())),
        "{stdout}"
    );
    let device_mfcc = std::fs::read(work.join("mfcc.bin")).unwrap();
    let device_features = std::fs::read(work.join("features.bin")).unwrap();
    std::fs::remove_dir_all(&work).unwrap();
    assert_eq!(device_mfcc.len(), clips.len() * FRAMES * COEFFS * 4);
    assert_eq!(device_features.len(), clips.len() * INPUT_LEN);

    let mut floats = 0;
    for (n, clip) in clips.iter().enumerate() {
        let mut host = [[0f32; COEFFS]; FRAMES];
        mfcc::mfcc(clip, &mut host);
        let mut features = [0u8; INPUT_LEN];
        mfcc::to_input(&host, &mut features);
        for (i, v) in host.iter().flatten().enumerate() {
            let at = (n * FRAMES * COEFFS + i) * 4;
            let bits = u32::from_le_bytes(device_mfcc[at..at + 4].try_into().unwrap());
            assert_eq!(
                bits,
                v.to_bits(),
                "clip {n} value {i}: device {} host {v}",
                f32::from_bits(bits)
            );
            floats += 1;
        }
        assert_eq!(
            &device_features[n * INPUT_LEN..(n + 1) * INPUT_LEN],
            &features[..],
            "clip {n}: uint8 inputs differ"
        );
    }
    println!(
        "MFCC under QEMU: {} clips, {floats} float32 values and {} uint8 inputs equal to the host",
        clips.len(),
        clips.len() * INPUT_LEN
    );
}
