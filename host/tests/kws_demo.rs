//! `kws_demo` end to end: the shipped 12-class keyword model on the 48
//! shipped Speech Commands clips, on the host and on the Cortex-M4F
//! firmware under QEMU (the raw PCM over its I/O boundary, the front end
//! computed on the M4): host and device agree on every clip's features,
//! potentials and label; the accuracy and the M4 figures are printed;
//! `--json` writes one record per clip; a user's own clips are padded or
//! cut to one second and said so; bad audio and models get a clear error
//! naming the file, exit status 2.

use std::path::Path;

mod common;

use assert_cmd::cargo::cargo_bin_cmd;
use common::{scratch, stderr, stdout};
use serde_json::Value;

fn write_wav(path: &Path, channels: u16, rate: u32, samples: usize) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..samples * channels as usize {
        // A 440 Hz tone, loud enough to leave the silence floor.
        let t = i as f64 / rate as f64;
        w.write_sample((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// The number after `key` in `text` (`key 12/48` gives 12 and 48).
fn fraction(text: &str, key: &str) -> (usize, usize) {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no `{key}` in:\n{text}"))
        + key.len();
    let word: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '/')
        .collect();
    let (a, b) = word.split_once('/').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn host_and_device_agree_on_the_shipped_clips() {
    let dir = scratch("kws_demo", "shipped");
    let json = dir.path().join("clips.json");
    let out = cargo_bin_cmd!("kws_demo")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = stdout(&out);
    println!("{text}");
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for key in ["features", "potentials", "labels"] {
        assert_eq!(fraction(&text, &format!("{key} ")), (48, 48), "{key}");
    }
    // The accuracy of each side, on clips of the test split.
    let host = text.split("host accuracy ").nth(1).unwrap();
    let device = text.split("device accuracy ").nth(1).unwrap();
    let (right, of) = fraction(host, "(");
    assert_eq!(fraction(device, "("), (right, of));
    assert_eq!(of, 48);
    assert!(
        right >= 29,
        "host accuracy {right}/48 (the model gives about 77 %)"
    );
    // The M4 figures: the front end and the model counted under QEMU.
    assert!(
        text.contains("per clip on the M4") && text.contains("ms at 120 MHz"),
        "{text}"
    );
    let records: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(records.len(), 48);
    for r in &records {
        assert!(r["expected"].is_string(), "{r}");
        assert_eq!(r["host"], r["device"], "{r}");
        assert_eq!(r["host_scores"].as_array().unwrap().len(), 12, "{r}");
        assert_eq!(r["host_scores"], r["device_scores"], "{r}");
    }
    let right_in_json = records
        .iter()
        .filter(|r| r["expected"] == r["host"])
        .count();
    assert_eq!(right_in_json, right);
}

#[test]
fn a_users_clips_are_fitted_to_one_second() {
    let dir = scratch("kws_demo", "fitted");
    let yes = dir.path().join("yes");
    std::fs::create_dir(&yes).unwrap();
    write_wav(&yes.join("short.wav"), 1, 16000, 8000);
    write_wav(&yes.join("long.wav"), 1, 16000, 24000);
    let out = cargo_bin_cmd!("kws_demo")
        .args(["--count", "off", "--audio"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_owned()
    };
    assert!(line("yes/long.wav").ends_with("cut from 1500 ms"), "{text}");
    assert!(
        line("yes/short.wav").ends_with("padded from 500 ms"),
        "{text}"
    );
    assert_eq!(fraction(&text, "labels "), (2, 2));
}

#[test]
fn bad_audio_and_models_are_refused_naming_the_file() {
    let dir = scratch("kws_demo", "bad");
    let stereo = dir.path().join("stereo.wav");
    write_wav(&stereo, 2, 16000, 16000);
    let cd = dir.path().join("cd.wav");
    write_wav(&cd, 1, 44100, 44100);
    let not_kws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/cnn2snn/input_data_vector/engine.fbz");
    let cases: [(&[&str], &Path, &str); 3] = [
        (&["--audio"], &stereo, "stereo.wav: 2 channels"),
        (&["--audio"], &cd, "cd.wav: sample rate 44100 Hz"),
        (&["-m"], &not_kws, "not a keyword model"),
    ];
    for (flag, path, says) in cases {
        let out = cargo_bin_cmd!("kws_demo")
            .args(flag)
            .arg(path)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says) && !err.contains("panicked"), "{err}");
    }
    // A model without labels beside it.
    let model = dir.path().join("kws.akd");
    std::fs::copy(akida_host::commands::kws_demo::shipped_model(), &model).unwrap();
    let out = cargo_bin_cmd!("kws_demo")
        .arg("-m")
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--labels"), "{}", stderr(&out));
}
