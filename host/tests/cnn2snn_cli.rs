//! The `cnn2snn` command: the documented flow on the reference ds_cnn_kws
//! float model (quantize, check, convert to .akd and .fbz), its file names,
//! and its refusals (exit status 2, nothing written).

use std::path::Path;

mod common;

use akida_host::formats;
use akida_host::formats::npy::Npz;
use assert_cmd::assert::Assert;
use assert_cmd::cargo::cargo_bin_cmd;
use common::{files_in, reference_dir, scratch, text};

const SET: &str = "ds_cnn_kws_iq8_wq4_aq4";

/// Runs `cnn2snn ARGS` in `dir`.
fn cnn2snn(dir: &Path, args: &[&str]) -> Assert {
    cargo_bin_cmd!("cnn2snn")
        .args(args)
        .current_dir(dir)
        .assert()
}

/// Standard output then standard error of a successful `cnn2snn ARGS` in `dir`.
fn cnn2snn_ok(dir: &Path, args: &[&str]) -> String {
    text(cnn2snn(dir, args).success().get_output())
}

#[test]
fn documented_flow_gives_the_engine_variables() {
    let dir = scratch("cnn2snn", "flow");
    let dir = dir.path();
    std::fs::copy(
        reference_dir().join(format!("{SET}_float.h5")),
        dir.join("ds_cnn_kws.h5"),
    )
    .unwrap();
    // -m after the action, as BrainChip's command takes it.
    let out = cnn2snn_ok(
        dir,
        &[
            "quantize",
            "-m",
            "ds_cnn_kws.h5",
            "-iq",
            "8",
            "-wq",
            "4",
            "-aq",
            "4",
        ],
    );
    assert!(out.contains("saved as ds_cnn_kws_iq8_wq4_aq4.h5"), "{out}");
    // -m before the action.
    let out = cnn2snn_ok(dir, &["-m", "ds_cnn_kws_iq8_wq4_aq4.h5", "check"]);
    assert!(out.contains("0 error(s)"), "{out}");
    cnn2snn(dir, &["-m", "ds_cnn_kws_iq8_wq4_aq4.h5", "convert"]).success();
    cnn2snn(
        dir,
        &[
            "-m",
            "ds_cnn_kws_iq8_wq4_aq4.h5",
            "convert",
            "-s",
            "kws.fbz",
        ],
    )
    .success();

    let akd = formats::load(dir.join("ds_cnn_kws_iq8_wq4_aq4.akd")).unwrap();
    let fbz = formats::load(dir.join("kws.fbz")).unwrap();
    assert_eq!(akd, fbz);
    let mut npz = Npz::open(&reference_dir().join(format!("{SET}.npz"))).unwrap();
    let mut compared = 0;
    for (i, layer) in akd.layers.iter().enumerate() {
        let prefix = format!("akida/{i}_{}", layer.name);
        let w = npz.require(&format!("{prefix}/weights")).unwrap();
        let values = layer.weights().values().collect::<Vec<_>>();
        assert_eq!(values, w.as_i8().unwrap(), "{prefix}/weights");
        if let Some(pw) = layer.pointwise() {
            let want = npz.require(&format!("{prefix}/weights_pw")).unwrap();
            let values = pw.values().collect::<Vec<_>>();
            assert_eq!(values, want.as_i8().unwrap(), "{prefix}/weights_pw");
            compared += want.len();
        }
        let th = npz.require(&format!("{prefix}/threshold")).unwrap();
        let threshold = layer.threshold.iter().collect::<Vec<_>>();
        assert_eq!(threshold, th.as_i32().unwrap(), "{prefix}/threshold");
        let st = npz.require(&format!("{prefix}/act_step")).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&layer.act_step.iter().collect::<Vec<_>>()),
            bits(st.as_f32().unwrap()),
            "{prefix}/act_step"
        );
        compared += w.len() + th.len() + st.len();
    }
    assert!(compared > 20_000);
}

#[test]
fn quantizing_again_replaces_the_suffix_and_laq_appends_one() {
    let dir = scratch("cnn2snn", "names");
    let dir = dir.path();
    std::fs::copy(
        reference_dir().join(format!("{SET}_q.h5")),
        dir.join("x_iq4_wq4_aq4.h5"),
    )
    .unwrap();
    cnn2snn(
        dir,
        &["-m", "x_iq4_wq4_aq4.h5", "quantize", "-wq", "2", "-aq", "2"],
    )
    .success();
    assert!(dir.join("x_iq2_wq2_aq2.h5").exists());
    cnn2snn(
        dir,
        &[
            "-m",
            "x_iq4_wq4_aq4.h5",
            "quantize",
            "-iq",
            "8",
            "-laq",
            "1",
        ],
    )
    .success();
    assert!(dir.join("x_iq8_wq4_aq4_laq1.h5").exists());
}

#[test]
fn refusals_exit_2_and_write_nothing() {
    let dir = scratch("cnn2snn", "refuse");
    let dir = dir.path();
    std::fs::copy(
        reference_dir().join(format!("{SET}_float.h5")),
        dir.join("float.h5"),
    )
    .unwrap();
    std::fs::write(dir.join("bad.h5"), b"not hdf5").unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["-m", "float.h5", "convert"], "conv_0"),
        (&["-m", "float.h5", "align"], "float.h5"),
        (&["-m", "float.h5", "quantize", "-wq", "1"], "-wq 1"),
        (&["-m", "bad.h5", "quantize"], "bad.h5"),
        (&["-m", "missing.h5", "convert"], "missing.h5"),
        (&["-m", "float.h5", "convert", "-s", "out.txt"], "out.txt"),
    ];
    for (args, named) in cases {
        let refused = text(cnn2snn(dir, args).code(2).get_output());
        assert!(refused.contains(named), "{args:?}: {refused}");
    }
    assert_eq!(files_in(dir), ["bad.h5", "float.h5"]);
    let found = text(
        cnn2snn(dir, &["-m", "float.h5", "check"])
            .code(2)
            .get_output(),
    );
    assert!(
        found.contains("error [not-quantized] layer `separable_1`"),
        "{found}"
    );
}

/// `cnn2snn align` saves over the model (or `-s`), keeps every integer
/// weight, and moves act_steps and thresholds a little: the kernel scales
/// by under 1 % here, the biases by under one potential unit.
#[test]
fn align_keeps_the_integer_weights_and_moves_the_rest_a_little() {
    let dir = scratch("cnn2snn", "align");
    let dir = dir.path();
    std::fs::copy(
        reference_dir().join(format!("{SET}_float.h5")),
        dir.join("kws.h5"),
    )
    .unwrap();
    cnn2snn_ok(dir, &["-m", "kws.h5", "quantize", "-iq", "8"]);
    cnn2snn_ok(
        dir,
        &["-m", "kws_iq8_wq4_aq4.h5", "convert", "-s", "raw.akd"],
    );
    let out = cnn2snn_ok(dir, &["-m", "kws_iq8_wq4_aq4.h5", "align", "-s", "a.h5"]);
    assert!(
        out.contains("channels aligned; model saved as a.h5"),
        "{out}"
    );
    let out = cnn2snn_ok(dir, &["-m", "kws_iq8_wq4_aq4.h5", "align"]);
    assert!(out.contains("model saved as kws_iq8_wq4_aq4.h5"), "{out}");
    assert_eq!(
        std::fs::read(dir.join("a.h5")).unwrap(),
        std::fs::read(dir.join("kws_iq8_wq4_aq4.h5")).unwrap()
    );
    cnn2snn_ok(dir, &["-m", "a.h5", "convert", "-s", "aligned.akd"]);
    let raw = formats::load(dir.join("raw.akd")).unwrap();
    let aligned = formats::load(dir.join("aligned.akd")).unwrap();
    let mut moved = 0;
    for (r, a) in raw.layers.iter().zip(&aligned.layers) {
        assert_eq!(
            r.weights().values().collect::<Vec<_>>(),
            a.weights().values().collect::<Vec<_>>(),
            "{}",
            r.name
        );
        for (x, y) in r.threshold.iter().zip(a.threshold.iter()) {
            let bound = 1.0 + 0.01 * x.abs() as f64;
            assert!(((x - y).abs() as f64) <= bound, "{}: {x} -> {y}", r.name);
            moved += usize::from(x != y);
        }
        for (x, y) in r.act_step.iter().zip(a.act_step.iter()) {
            assert!((x - y).abs() <= 0.01 * x, "{}: {x} -> {y}", r.name);
        }
    }
    assert!(moved > 0, "alignment moved no threshold");
}
