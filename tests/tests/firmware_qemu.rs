//! The Cortex-M4F firmware under QEMU (`mps2-an386`), one binary with
//! run-time model loading:
//!
//! - every reference set, every input, through `akida flash --target qemu`:
//!   outputs equal the host's and BrainChip's engine's, every element;
//! - random models of every layer kind (the M4 kernels in `asm!` against
//!   the host's reference kernel);
//! - 200 corruptions of a model file and 200 of input frames: each gets an
//!   error code, none a fault, a hang or a wrong answer reported as success;
//! - the CMSDK UART transport, the fault and panic reports, the board build
//!   of `--target probe`.
//!
//! The embedded model `firmware/models/default.akd` is built from the
//! reference set; a test checks it is current (`AKIDA_BLESS=1` rewrites it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use akida_core::wire::{Command, Reply, Status};
use akida_host::commands::flash::{flash_probe, flash_qemu, QemuOptions};
use akida_host::firmware::{self, Counting, QemuConfig, Session, Transport};
use akida_host::formats::akd;
use akida_host::formats::npy::{self, TensorData};
use akida_host::keras::init::Rng;
use akida_tests::{
    assert_all_equal, data_dir, random, reference_outputs, reference_sets, stream_outputs,
    BatchOutputs, ReferenceSet,
};

const FIRMWARE_SET: &str = "ds_cnn_kws_iq8_wq4_aq4";

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("firmware")
}

fn kws() -> ReferenceSet {
    // Always the repository copy: the embedded model is built from it.
    ReferenceSet::open(&data_dir().join("reference").join("vectors"), FIRMWARE_SET)
}

fn elf() -> PathBuf {
    firmware::qemu_firmware().unwrap_or_else(|e| panic!("{}", akida_host::cli::report(&e)))
}

fn run(session: &Session, transport: Transport) -> firmware::QemuRun {
    let mut config = QemuConfig::new(elf());
    config.transport = transport;
    config.timeout = Duration::from_secs(120);
    firmware::run(&config, session).unwrap_or_else(|e| panic!("{}", akida_host::cli::report(&e)))
}

fn outputs(reply: &Reply) -> BatchOutputs {
    assert_eq!(reply.status, Status::Ok, "{reply:?}");
    match reply.detail[0] {
        0 => BatchOutputs::Levels(reply.data.clone()),
        _ => BatchOutputs::Potentials(
            reply
                .data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
    }
}

fn concat(parts: Vec<BatchOutputs>, levels: bool) -> BatchOutputs {
    let mut out = match levels {
        true => BatchOutputs::Levels(Vec::new()),
        false => BatchOutputs::Potentials(Vec::new()),
    };
    for p in parts {
        match (&mut out, p) {
            (BatchOutputs::Levels(a), BatchOutputs::Levels(b)) => a.extend(b),
            (BatchOutputs::Potentials(a), BatchOutputs::Potentials(b)) => a.extend(b),
            _ => panic!("output kinds differ"),
        }
    }
    out
}

#[test]
fn embedded_firmware_model_is_current() {
    let bytes = akd::to_bytes(&kws().akida_model()).unwrap();
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

/// Every reference set through `akida flash --target qemu` (one firmware
/// binary, each model loaded at run time): the outputs written to `-o`
/// equal the engine's and the host's, every element.
#[test]
fn every_reference_set_on_the_firmware_equals_host_and_engine() {
    let (dir, names) = reference_sets();
    let work = tempfile::tempdir().unwrap();
    let options = QemuOptions {
        counting: Counting::Off,
        firmware: Some(elf()),
        ..QemuOptions::default()
    };
    let (mut elements, mut images) = (0, 0);
    for name in &names {
        let mut set = ReferenceSet::open(&dir, name);
        let model = set.akida_model();
        let model_path = work.path().join(format!("{name}.akd"));
        std::fs::write(&model_path, akd::to_bytes(&model).unwrap()).unwrap();
        let inputs = set.array("input_uint8");
        let (input_path, output_path) = (work.path().join("x.npy"), work.path().join("y.npy"));
        npy::write_npy(&input_path, &inputs).unwrap();
        let report = flash_qemu(&model_path, Some(&input_path), Some(&output_path), &options)
            .unwrap_or_else(|e| panic!("{name}: {}", akida_host::cli::report(&e)));
        let got = npy::read_npy(&output_path).unwrap();
        let engine = set.array("akida_forward");
        assert_eq!(got.shape, engine.shape, "{name}");
        let host = reference_outputs(&model, inputs.as_u8().unwrap());
        elements += match (&got.data, &host) {
            (TensorData::I32(f), BatchOutputs::Potentials(h)) => {
                assert_all_equal(&format!("{name}: firmware vs host"), f, h);
                assert_all_equal(
                    &format!("{name}: firmware vs engine"),
                    f,
                    engine.as_i32().unwrap(),
                )
            }
            (TensorData::U8(f), BatchOutputs::Levels(h)) => {
                assert_all_equal(&format!("{name}: firmware vs host"), f, h);
                assert_all_equal(
                    &format!("{name}: firmware vs engine"),
                    f,
                    engine.as_u8().unwrap(),
                )
            }
            _ => panic!("{name}: output kinds differ"),
        };
        images += report.images;
    }
    println!(
        "firmware under QEMU: {} reference sets, {images} inputs, {elements} elements equal to the host and the engine",
        names.len()
    );
}

/// Random models of every kind, shape and bit width, loaded one after the
/// other into one firmware run: the M4 kernels in `asm!` give the host
/// reference kernel's outputs.
#[test]
fn random_models_on_the_firmware_equal_the_reference() {
    const MODELS: u64 = 60;
    let mut session = Session::new();
    let mut expected = Vec::new();
    for seed in 1000..1000 + MODELS {
        let model = random::model(seed);
        let images = random::inputs(seed, &model, 2, (seed % 3) as f64 * 0.4);
        let bytes = akd::to_bytes(&model).unwrap();
        session.load(&bytes);
        for image in images.chunks_exact(model.input().len()) {
            session.infer(image);
        }
        let want = reference_outputs(&model, &images);
        assert_eq!(
            stream_outputs(&bytes, &images),
            want,
            "host stream, seed {seed}"
        );
        expected.push((seed, model.outputs_levels(), want));
    }
    session.quit();
    let r = run(&session, Transport::Semihosting);
    assert_eq!(r.exit, Some(0), "{:?}", r.log);
    assert_eq!(r.replies.len(), session.commands.len());
    let mut at = 0;
    let mut elements = 0;
    for (seed, levels, want) in expected {
        assert_eq!(r.replies[at].status, Status::Ok, "load of seed {seed}");
        at += 1;
        let mut parts = Vec::new();
        while at < session.commands.len() && session.commands[at] == Command::Infer {
            parts.push(outputs(&r.replies[at]));
            at += 1;
        }
        let got = concat(parts, levels);
        assert_eq!(got, want, "firmware vs reference, seed {seed}");
        elements += got.len();
    }
    println!("{MODELS} random models on the firmware: {elements} elements equal to the reference");
}

/// Sends `frame` then a ping; the replies up to the ping's are the frame's.
fn groups(replies: &[Reply], pings: u32) -> Vec<Vec<Reply>> {
    let mut out = vec![Vec::new(); pings as usize];
    let mut current = 0usize;
    for r in replies {
        if current < pings as usize
            && r.status == Status::Ok
            && r.data == (current as u32).to_le_bytes()
        {
            current += 1;
        } else if current < pings as usize {
            out[current].push(r.clone());
        }
    }
    assert_eq!(
        current, pings as usize,
        "pings lost: the stream never resynchronised"
    );
    out
}

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// A random corruption of a model file: bits, bytes, truncation, extension
/// or header fields; with `recheck`, damaged payload bytes under a
/// recomputed `.akd` checksum (the damage reaches the decoder and the
/// model rules).
fn corrupt_model(rng: &mut Rng, good: &[u8], recheck: bool) -> Vec<u8> {
    let mut b = good.to_vec();
    match if recheck { 5 } else { below(rng, 5) } {
        0 => {
            for _ in 0..1 + below(rng, 8) {
                let i = below(rng, b.len());
                b[i] ^= 1 << below(rng, 8);
            }
        }
        1 => {
            for _ in 0..1 + below(rng, 16) {
                let i = below(rng, b.len());
                b[i] = rng.next_u64() as u8;
            }
        }
        2 => b.truncate(below(rng, b.len())),
        3 => b.extend((0..1 + below(rng, 64)).map(|_| rng.next_u64() as u8)),
        4 => {
            // Magic, version, reserved or length.
            let i = below(rng, 12);
            b[i] = b[i].wrapping_add(1 + below(rng, 255) as u8);
        }
        _ => {
            for _ in 0..1 + below(rng, 4) {
                let i = 16 + below(rng, b.len() - 16);
                b[i] = rng.next_u64() as u8;
            }
            let version = u16::from_le_bytes([b[4], b[5]]);
            let (header, payload) = b.split_at_mut(16);
            akida_core::format::write_header(header, version, payload);
        }
    }
    b
}

/// A random corruption of an input frame, keeping its byte length, or a
/// well-formed frame of the wrong size.
fn corrupt_frame(rng: &mut Rng, image: &[u8]) -> Vec<u8> {
    let mut f = akida_core::wire::frame(Command::Infer as u8, image);
    match below(rng, 4) {
        0 => {
            for _ in 0..1 + below(rng, 4) {
                let i = below(rng, f.len());
                f[i] ^= 1 << below(rng, 8);
            }
        }
        1 => {
            for _ in 0..1 + below(rng, 8) {
                let i = below(rng, f.len());
                f[i] = f[i].wrapping_add(1 + below(rng, 255) as u8);
            }
        }
        2 => {
            // The header only.
            let i = below(rng, 16);
            f[i] ^= 1 << below(rng, 8);
        }
        _ => {
            let n = match below(rng, 2) {
                0 => below(rng, image.len()),
                _ => image.len() + 1 + below(rng, 64),
            };
            let data: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            f = akida_core::wire::frame(Command::Infer as u8, &data);
        }
    }
    f
}

/// 200 corrupted model files and 200 corrupted input frames, in one run:
/// every one gets an error code, the firmware neither faults nor hangs
/// (the whole run takes under 10 s), and never reports a wrong answer as a
/// success. 100 more files are damaged under a recomputed checksum: each is
/// refused or, when the damage still makes a valid model (weights changed),
/// gives the host's output for that model.
#[test]
fn corrupted_models_and_frames_get_error_codes() {
    let mut set = kws();
    let good = akd::to_bytes(&set.akida_model()).unwrap();
    let inputs = set.array("input_uint8");
    let image = inputs.as_u8().unwrap()[..490].to_vec();
    let mut rng = Rng::new(11);
    let mut session = Session::new();
    let mut cases = Vec::new();
    let mut seq = 0u32;
    for k in 0..300 {
        let recheck = k >= 200;
        let bytes = corrupt_model(&mut rng, &good, recheck);
        let host = akida_core::decode(&bytes)
            .ok()
            .map(|m| reference_outputs(&m, &image));
        assert!(
            recheck || host.is_none(),
            "a raw corruption left a valid file"
        );
        session.load(&bytes);
        if host.is_some() {
            session.infer(&image);
        }
        session.ping(seq);
        seq += 1;
        cases.push((recheck, host));
    }
    // A good model, then damaged frames.
    session.load(&good).ping(seq);
    seq += 1;
    let frames: Vec<Vec<u8>> = (0..200).map(|_| corrupt_frame(&mut rng, &image)).collect();
    for f in &frames {
        session.raw(f).ping(seq);
        seq += 1;
    }
    // Still answering right afterwards.
    session.infer(&image).ping(seq);
    seq += 1;
    session.quit();
    let r = run(&session, Transport::Semihosting);
    assert_eq!(
        r.exit,
        Some(0),
        "the firmware did not end the session cleanly: {:?}",
        r.log
    );
    // No hang: `run` gives QEMU a deadline; the time is a figure, not a test.
    println!("400 corruptions took {:?}", r.wall);
    let g = groups(&r.replies, seq);
    let mut codes = std::collections::BTreeMap::new();
    let (mut raw, mut rechecked_refused, mut valid_after_damage) = (0, 0, 0);
    for (i, (recheck, host)) in cases.iter().enumerate() {
        let replies = &g[i];
        match host {
            None => {
                assert!(
                    !replies.is_empty() && replies.iter().all(|r| r.status != Status::Ok),
                    "model corruption {i} (checksum recomputed: {recheck}) was not refused: {replies:?}"
                );
                match recheck {
                    false => raw += 1,
                    true => rechecked_refused += 1,
                }
                *codes.entry(format!("{:?}", replies[0].status)).or_insert(0) += 1;
            }
            Some(want) => {
                assert_eq!(replies.len(), 2, "{replies:?}");
                if replies[0].status == Status::Ok {
                    assert_eq!(&outputs(&replies[1]), want, "model corruption {i}");
                    valid_after_damage += 1;
                } else {
                    assert_eq!(replies[0].status, Status::TooLarge, "{replies:?}");
                    rechecked_refused += 1;
                }
            }
        }
    }
    assert_eq!(raw, 200);
    let base = cases.len() + 1;
    assert_eq!(g[base - 1].len(), 1);
    assert_eq!(g[base - 1][0].status, Status::Ok, "the good model loads");
    for (i, replies) in g[base..base + frames.len()].iter().enumerate() {
        assert!(
            !replies.is_empty() && replies.iter().all(|r| r.status != Status::Ok),
            "frame corruption {i} was not refused: {replies:?}"
        );
        *codes.entry(format!("{:?}", replies[0].status)).or_insert(0) += 1;
    }
    let last = &g[base + frames.len()];
    assert_eq!(
        outputs(&last[0]),
        reference_outputs(&akd::from_bytes(&good).unwrap(), &image)
    );
    println!(
        "{raw} model and {} frame corruptions refused; of 100 under a recomputed checksum {rechecked_refused} refused, {valid_after_damage} still valid and run right; {:.2} s; codes {codes:?}",
        frames.len(),
        r.wall.as_secs_f64()
    );
}

/// The CMSDK UART path (QEMU `-serial` on a pipe): a model loaded and run
/// over UART0 gives the reference outputs.
#[test]
fn uart_transport_loads_and_runs_a_model() {
    let (dir, _) = reference_sets();
    let mut set = ReferenceSet::open(&dir, "dense_w4a4");
    let model = set.akida_model();
    let inputs = set.array("input_uint8");
    let images = &inputs.as_u8().unwrap()[..2 * model.input().len()];
    let mut session = Session::new();
    session.load(&akd::to_bytes(&model).unwrap());
    for image in images.chunks_exact(model.input().len()) {
        session.infer(image);
    }
    session.quit();
    let r = run(&session, Transport::Uart);
    assert_eq!(r.exit, Some(0), "{:?}", r.log);
    assert_eq!(r.replies.len(), 4);
    assert_eq!(r.replies[0].status, Status::Ok);
    let got = concat(
        vec![outputs(&r.replies[1]), outputs(&r.replies[2])],
        model.outputs_levels(),
    );
    assert_eq!(got, reference_outputs(&model, images));
    assert!(
        r.log.iter().any(|l| l.contains("loaded model: 4 layers")),
        "the defmt log: {:?}",
        r.log
    );
    println!(
        "UART: {} bytes sent in {:.2} s",
        session.bytes.len(),
        r.wall.as_secs_f64()
    );
}

/// A bus fault and a panic are reported on the defmt log and end QEMU with
/// codes 3 and 101.
#[test]
fn faults_and_panics_report_and_exit_with_codes() {
    for (mode, code, text) in [
        ("fault", 3, "HardFault at pc"),
        ("panic", 101, "index out of bounds"),
    ] {
        let out = std::process::Command::new("qemu-system-arm")
            .args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic"])
            .args(["-monitor", "none", "-serial", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-kernel")
            .arg(elf())
            .args(["-append", mode])
            .output()
            .expect("qemu-system-arm is installed (scripts/setup.sh)");
        assert_eq!(out.status.code(), Some(code), "{mode}");
        let log = firmware::decode_log(&elf(), &out.stdout);
        assert!(log.iter().any(|l| l.contains(text)), "{mode}: {log:?}");
    }
}

/// The instruction counts of a run: deterministic, one mark before each
/// inference and after each layer.
#[test]
fn instruction_counts_mark_every_layer() {
    let mut set = kws();
    let bytes = akd::to_bytes(&set.akida_model()).unwrap();
    let inputs = set.array("input_uint8");
    let mut session = Session::new();
    session.load(&bytes);
    for image in inputs.as_u8().unwrap().chunks_exact(490).take(2) {
        session.infer(image);
    }
    session.quit();
    let mut config = QemuConfig::new(elf());
    config.counting = Counting::Plugin;
    let r = firmware::run(&config, &session)
        .unwrap_or_else(|e| panic!("{}", akida_host::cli::report(&e)));
    let counts = r.counts.expect("counted");
    assert_eq!(counts.marks.len(), 2 * 7);
    let per_layer = firmware::layer_counts(&counts.marks, 6);
    assert_eq!(
        per_layer[0], per_layer[1],
        "the same instructions for every input"
    );
    let total: u64 = per_layer[0].iter().sum();
    let macs = 2_538_112.0;
    println!(
        "ds_cnn_kws: {total} instructions per inference, {:.3} per MAC: {:?}",
        total as f64 / macs,
        per_layer[0]
    );
    assert!(
        total as f64 / macs <= 1.5,
        "{total} instructions per inference"
    );
}

/// `--target probe`: the nRF52840 firmware builds with the model embedded
/// and is handed to probe-rs (here a stand-in that records its arguments).
#[test]
fn probe_target_builds_the_board_firmware_and_calls_probe_rs() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("m.akd");
    std::fs::write(&model, akd::to_bytes(&kws().akida_model()).unwrap()).unwrap();
    let record = work.path().join("args.txt");
    let fake = work.path().join("probe-rs");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" > {}\n", record.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = flash_probe(&model, "nRF52840_xxAA", &fake, false)
        .unwrap_or_else(|e| panic!("{}", akida_host::cli::report(&e)));
    let args = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        args.trim(),
        format!("run --chip nRF52840_xxAA {}", report.elf.display())
    );
    assert!(report.flashed);
    // The model in flash, the buffers sized from it.
    assert!(report.flash > 15_000 && report.flash < 200_000, "{report}");
    assert!(report.ram < 32 * 1024, "{report}");
    let e = flash_probe(&model, "STM32H743", &fake, true).unwrap_err();
    assert!(akida_host::cli::report(&e).contains("no board for chip `STM32H743`"));
    println!("{report}");
}

/// The InputData fixtures (a 16-feature vector through three Dense layers,
/// a 5-channel image) converted by us from cnn2snn's quantized files, loaded
/// into the firmware at run time under QEMU: every output equals the
/// engine's.
#[test]
fn input_data_fixtures_under_qemu_equal_the_engine() {
    let work = tempfile::tempdir().unwrap();
    let options = QemuOptions {
        counting: Counting::Off,
        firmware: Some(elf()),
        ..QemuOptions::default()
    };
    for name in ["input_data_vector", "input_data_5_channels"] {
        let f = akida_tests::fixtures::fixture(name);
        let model = f
            .ours_from_quantized()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .model;
        assert!(model.input_data().is_some(), "{name}");
        let model_path = work.path().join(format!("{name}.akd"));
        std::fs::write(&model_path, akd::to_bytes(&model).unwrap()).unwrap();
        let inputs = f.io("inputs").unwrap();
        let engine = f.io("forward").unwrap();
        let (input_path, output_path) = (work.path().join("x.npy"), work.path().join("y.npy"));
        npy::write_npy(&input_path, &inputs).unwrap();
        let report = flash_qemu(&model_path, Some(&input_path), Some(&output_path), &options)
            .unwrap_or_else(|e| panic!("{name}: {}", akida_host::cli::report(&e)));
        let got = npy::read_npy(&output_path).unwrap();
        assert_eq!(got.shape, engine.shape, "{name}");
        let n = match (&got.data, engine.as_i32(), engine.as_u8()) {
            (TensorData::I32(f), Some(want), _) => {
                assert_all_equal(&format!("{name}: firmware vs engine"), f, want)
            }
            (TensorData::U8(f), None, Some(want)) => {
                assert_all_equal(&format!("{name}: firmware vs engine"), f, want)
            }
            _ => panic!("{name}: output kinds differ from the engine's"),
        };
        println!(
            "{name} under QEMU: {} inputs, {n} elements equal to the engine's",
            report.images
        );
    }
}
