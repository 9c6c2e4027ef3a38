//! `kws_demo --from-scratch` through the functions the command calls: the
//! documented flow on the Speech Commands mini set (create, one epoch of
//! training, quantize 8/4/4, one epoch of tuning, convert), then the
//! shipped clips on the host and on the Cortex-M4F firmware under QEMU
//! with the new model embedded: every file of the flow is written, and host
//! and device agree on every clip.

use std::path::Path;

use akida_host::commands::kws_demo::{self, DemoOptions, ScratchOptions};
use akida_host::firmware::Counting;
use akida_host::kws::DeviceOptions;

#[test]
fn from_scratch_makes_a_model_host_and_device_agree_on() {
    let dir = tempfile::tempdir().unwrap();
    let kws_train = Path::new(env!("CARGO_BIN_EXE_kws_train"));
    let akd = kws_demo::from_scratch(&ScratchOptions {
        data_dir: kws_demo::mini_set(),
        out: dir.path().to_owned(),
        epochs: 1,
        tune_epochs: 1,
        tools: kws_train.parent().unwrap().to_owned(),
    })
    .unwrap();
    assert_eq!(akd, dir.path().join("ds_cnn_kws_12_iq8_wq4_aq4.akd"));
    for file in ["ds_cnn_kws_12.h5", "ds_cnn_kws_12_iq8_wq4_aq4.h5"] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
    let labels = std::fs::read_to_string(dir.path().join("labels.txt")).unwrap();
    assert_eq!(labels.lines().count(), 12);
    assert_eq!(labels.lines().nth(2), Some("yes"));
    let report = kws_demo::run(&DemoOptions {
        model: akd,
        labels: None,
        audio: kws_demo::shipped_clips(),
        device: DeviceOptions {
            counting: Counting::Off,
            ..DeviceOptions::default()
        },
    })
    .unwrap();
    assert_eq!(report.rows.len(), 48);
    assert_eq!(report.agreement(), [48; 3]);
    assert_eq!(report.accuracy(false), report.accuracy(true));
}
