//! The `cnn2snn` command: the documented flow on the reference ds_cnn_kws
//! float model (quantize, check, convert to .akd and .fbz), its file names,
//! and its refusals (exit status 2, nothing written).

use std::path::Path;
use std::process::{Command, Output};

mod common;

use akida_host::formats;
use akida_host::formats::npy::Npz;
use common::{files_in, reference_dir, scratch, text};

const SET: &str = "ds_cnn_kws_iq8_wq4_aq4";

fn cnn2snn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnn2snn"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cnn2snn runs")
}

#[test]
fn documented_flow_gives_the_engine_variables() {
    let dir = scratch("cnn2snn", "flow");
    std::fs::copy(
        reference_dir().join(format!("{SET}_float.h5")),
        dir.join("ds_cnn_kws.h5"),
    )
    .unwrap();
    // -m after the action, as BrainChip's command takes it.
    let o = cnn2snn(
        &dir,
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
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("saved as ds_cnn_kws_iq8_wq4_aq4.h5"),
        "{}",
        text(&o)
    );
    // -m before the action.
    let o = cnn2snn(&dir, &["-m", "ds_cnn_kws_iq8_wq4_aq4.h5", "check"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 error(s)"), "{}", text(&o));
    let o = cnn2snn(&dir, &["-m", "ds_cnn_kws_iq8_wq4_aq4.h5", "convert"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cnn2snn(
        &dir,
        &[
            "-m",
            "ds_cnn_kws_iq8_wq4_aq4.h5",
            "convert",
            "-s",
            "kws.fbz",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));

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
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quantizing_again_replaces_the_suffix_and_laq_appends_one() {
    let dir = scratch("cnn2snn", "names");
    std::fs::copy(
        reference_dir().join(format!("{SET}_q.h5")),
        dir.join("x_iq4_wq4_aq4.h5"),
    )
    .unwrap();
    let o = cnn2snn(
        &dir,
        &["-m", "x_iq4_wq4_aq4.h5", "quantize", "-wq", "2", "-aq", "2"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("x_iq2_wq2_aq2.h5").exists());
    let o = cnn2snn(
        &dir,
        &[
            "-m",
            "x_iq4_wq4_aq4.h5",
            "quantize",
            "-iq",
            "8",
            "-laq",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("x_iq8_wq4_aq4_laq1.h5").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refusals_exit_2_and_write_nothing() {
    let dir = scratch("cnn2snn", "refuse");
    std::fs::copy(
        reference_dir().join(format!("{SET}_float.h5")),
        dir.join("float.h5"),
    )
    .unwrap();
    std::fs::write(dir.join("bad.h5"), b"not hdf5").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["-m", "float.h5", "convert"], "conv_0"),
        (&["-m", "float.h5", "quantize", "-wq", "1"], "-wq 1"),
        (&["-m", "bad.h5", "quantize"], "bad.h5"),
        (&["-m", "missing.h5", "convert"], "missing.h5"),
        (&["-m", "float.h5", "convert", "-s", "out.txt"], "out.txt"),
    ];
    for (args, named) in cases {
        let o = cnn2snn(&dir, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(named), "{args:?}: {}", text(&o));
    }
    assert_eq!(files_in(&dir), ["bad.h5", "float.h5"]);
    let o = cnn2snn(&dir, &["-m", "float.h5", "check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("error [not-quantized] layer `separable_1`"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
