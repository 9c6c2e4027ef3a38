//! cnn2snn's act_step equalization against BrainChip's tools: a model whose
//! conversion clips an act_step (see tests/data/equalization/README.md)
//! converts to the engine's variables and outputs, every element.

use akida_host::cnn2snn::{self, ConvertOptions};
use akida_host::formats::npy::Npz;
use akida_host::keras;
use akida_host::runtime::{BatchOutput, KernelPolicy, Runtime};
use akida_tests::{assert_all_equal, data_dir};

#[test]
fn equalized_conversion_equals_brainchips() {
    let dir = data_dir().join("equalization");
    let model = keras::read_model(&dir.join("ds_cnn_kws_zoo_iq8_wq4_aq4.h5")).unwrap();
    let conversion = cnn2snn::convert(&model, &ConvertOptions::default()).unwrap();
    assert!(
        conversion
            .notes
            .iter()
            .any(|n| n.contains("`separable_4`") && n.contains("act_step")),
        "the fixture must exercise the equalization: {:?}",
        conversion.notes
    );
    let mut npz = Npz::open(&dir.join("ds_cnn_kws_zoo_iq8_wq4_aq4.npz")).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut compared = 0;
    for (i, layer) in conversion.model.layers.iter().enumerate() {
        let prefix = format!("akida/{i}_{}", layer.name);
        let w = npz.require(&format!("{prefix}/weights")).unwrap();
        compared += assert_all_equal(
            &format!("{prefix}/weights"),
            &layer.weights().values().collect::<Vec<_>>(),
            w.as_i8().unwrap(),
        );
        if let Some(pw) = layer.pointwise() {
            let w = npz.require(&format!("{prefix}/weights_pw")).unwrap();
            compared += assert_all_equal(
                &format!("{prefix}/weights_pw"),
                &pw.values().collect::<Vec<_>>(),
                w.as_i8().unwrap(),
            );
        }
        let th = npz.require(&format!("{prefix}/threshold")).unwrap();
        compared += assert_all_equal(
            &format!("{prefix}/threshold"),
            &layer.threshold.iter().collect::<Vec<_>>(),
            th.as_i32().unwrap(),
        );
        let st = npz.require(&format!("{prefix}/act_step")).unwrap();
        compared += assert_all_equal(
            &format!("{prefix}/act_step"),
            &bits(&layer.act_step.iter().collect::<Vec<_>>()),
            &bits(st.as_f32().unwrap()),
        );
    }
    let bytes = akida_host::formats::akd::to_bytes(&conversion.model).unwrap();
    let decoded = akida_core::decode(&bytes).unwrap();
    let rt = Runtime::new(&decoded, KernelPolicy::Auto);
    let inputs = npz.require("input_uint8").unwrap();
    let BatchOutput::Potentials(p) = rt.forward_batch(inputs.as_u8().unwrap()).unwrap() else {
        panic!("expected potentials");
    };
    compared += assert_all_equal(
        "akida_forward",
        &p,
        npz.require("akida_forward").unwrap().as_i32().unwrap(),
    );
    let predict = rt.predict_batch(inputs.as_u8().unwrap()).unwrap();
    let want = npz.require("akida_predict").unwrap();
    compared += assert_all_equal(
        "akida_predict",
        &bits(&predict.unwrap()),
        &bits(want.as_f32().unwrap()),
    );
    println!("equalization: {compared} elements equal to BrainChip's conversion and engine");
}
