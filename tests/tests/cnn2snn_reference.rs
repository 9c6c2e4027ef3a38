//! Our quantize and convert against BrainChip's cnn2snn and Akida engine,
//! on every reference vector set, every element:
//!
//! - quantize of `NAME_float.h5` at the set's bits gives the quantized
//!   Keras weights (`quantized_keras/<layer>/<i>`, float32 bit for bit), the
//!   scale factors and the integer kernels of the `.npz`;
//! - convert of the reference `NAME_q.h5` gives the engine's weights,
//!   thresholds and act_steps (`akida/<i>_<layer>/*`), and running it gives
//!   `akida_forward` and `akida_predict`;
//! - the same from our own quantized model (the full pipeline);
//! - BrainChip's `NAME.fbz` reads as exactly our convert of `NAME_q.h5`.

use akida_host::cnn2snn::{self, quantizer, QuantizeOptions};
use akida_host::formats::akd::ConvertedModel;
use akida_host::keras::{self, LayerConfig, WeightRole};
use akida_host::runtime::{BatchOutput, KernelPolicy, Runtime};
use akida_tests::{assert_all_equal, reference_sets, ReferenceSet};

fn bits(set: &ReferenceSet, key: &str) -> u32 {
    set.json["bits"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{}: bits.{key}", set.name)) as u32
}

fn f32_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Compares our quantized Keras model with `quantized_keras/*` of the set.
fn compare_quantized(set: &mut ReferenceSet, model: &keras::Model) -> usize {
    let mut compared = 0;
    let name = set.name.clone();
    let names = set.npz.names();
    let layer_names: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix("quantized_keras/"))
        .filter_map(|n| n.split('/').next())
        .map(str::to_owned)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(!layer_names.is_empty(), "{name}: no quantized_keras arrays");
    for layer_name in layer_names {
        let layer = model
            .layer(&layer_name)
            .unwrap_or_else(|| panic!("{name}: our quantized model has no layer {layer_name}"));
        for (i, w) in layer.weights.iter().enumerate() {
            let want = set.array(&format!("quantized_keras/{layer_name}/{i}"));
            assert_eq!(want.shape, w.shape, "{name} {layer_name}/{i} shape");
            compared += assert_all_equal(
                &format!("{name} quantized_keras/{layer_name}/{i}"),
                &f32_bits(&w.values),
                &f32_bits(want.as_f32().unwrap()),
            );
        }
        // Scale factors and integer kernels.
        let (main_role, dw) = match &layer.config {
            LayerConfig::QuantizedSeparableConv2D {
                quantizer,
                quantizer_dw,
                ..
            } => (
                WeightRole::PointwiseKernel,
                Some((quantizer_dw.clone(), quantizer.clone())),
            ),
            LayerConfig::QuantizedConv2D { .. } | LayerConfig::QuantizedDense { .. } => {
                (WeightRole::Kernel, None)
            }
            _ => continue,
        };
        let q = akida_host::cnn2snn::plan::quantizers(&layer.config)
            .unwrap()
            .0
            .clone();
        let w = layer.weight(main_role).unwrap();
        let sf = quantizer::scale_factors(&q.kind, q.bitwidth, &w.values, *w.shape.last().unwrap())
            .unwrap();
        let want_sf = set.array(&format!("quantized_keras/{layer_name}/scale_factor"));
        compared += assert_all_equal(
            &format!("{name} {layer_name} scale_factor"),
            &f32_bits(&sf),
            &f32_bits(want_sf.as_f32().unwrap()),
        );
        let ints = quantizer::integers(&quantizer::quantize(&w.values, &sf, q.bitwidth), &sf);
        let want = set.array(&format!("quantized_keras/{layer_name}/int_kernel"));
        compared += assert_all_equal(
            &format!("{name} {layer_name} int_kernel"),
            &ints,
            want.as_i8().unwrap(),
        );
        if let Some((qdw, _)) = dw {
            let w = layer.weight(WeightRole::DepthwiseKernel).unwrap();
            let sf = quantizer::scale_factors(
                &qdw.kind,
                qdw.bitwidth,
                &w.values,
                *w.shape.last().unwrap(),
            )
            .unwrap();
            let want_sf = set.array(&format!("quantized_keras/{layer_name}/scale_factor_dw"));
            compared += assert_all_equal(
                &format!("{name} {layer_name} scale_factor_dw"),
                &f32_bits(&sf),
                &f32_bits(want_sf.as_f32().unwrap()),
            );
            let ints = quantizer::integers(&quantizer::quantize(&w.values, &sf, qdw.bitwidth), &sf);
            let want = set.array(&format!(
                "quantized_keras/{layer_name}/int_depthwise_kernel"
            ));
            compared += assert_all_equal(
                &format!("{name} {layer_name} int_depthwise_kernel"),
                &ints,
                want.as_i8().unwrap(),
            );
        }
    }
    compared
}

/// Compares a converted model with the engine's variables and outputs.
fn compare_converted(set: &mut ReferenceSet, what: &str, model: &ConvertedModel) -> usize {
    let name = set.name.clone();
    let layers = set.layers();
    assert_eq!(
        model.layers.len(),
        layers.len(),
        "{name} {what}: layer count"
    );
    let mut compared = 0;
    for (ours, reference) in model.layers.iter().zip(&layers) {
        let tag = format!("{name} {what} {}", reference.prefix);
        assert_eq!(ours.name, reference.name, "{tag}: name");
        let params = akida_host::formats::fbz::params::to_params(&ours.params);
        for (k, v) in &reference.params {
            if k == "act_bits" && reference.params.get("activation") == Some(&0) {
                continue; // ignored on a last layer without activation
            }
            assert_eq!(params.get(k), Some(v), "{tag}: param {k}");
        }
        let w = set.array(&format!("{}/weights", reference.prefix));
        assert_eq!(
            ours.weights().shape.map(|d| d as usize).to_vec(),
            w.shape,
            "{tag}: weights shape"
        );
        compared += assert_all_equal(
            &format!("{tag}/weights"),
            &ours.weights().values().collect::<Vec<_>>(),
            w.as_i8().unwrap(),
        );
        if let Some(pw) = ours.pointwise() {
            let w = set.array(&format!("{}/weights_pw", reference.prefix));
            compared += assert_all_equal(
                &format!("{tag}/weights_pw"),
                &pw.values().collect::<Vec<_>>(),
                w.as_i8().unwrap(),
            );
        }
        let th = set.array(&format!("{}/threshold", reference.prefix));
        compared += assert_all_equal(
            &format!("{tag}/threshold"),
            &ours.threshold.iter().collect::<Vec<_>>(),
            th.as_i32().unwrap(),
        );
        let st = set.array(&format!("{}/act_step", reference.prefix));
        compared += assert_all_equal(
            &format!("{tag}/act_step"),
            &f32_bits(&ours.act_step.iter().collect::<Vec<_>>()),
            &f32_bits(st.as_f32().unwrap()),
        );
    }
    let bytes = akida_host::formats::akd::to_bytes(model).unwrap();
    let decoded = akida_core::decode(&bytes).unwrap();
    let rt = Runtime::new(&decoded, KernelPolicy::Auto);
    let inputs = set.array("input_uint8");
    let BatchOutput::Potentials(p) = rt.forward_batch(inputs.as_u8().unwrap()).unwrap() else {
        panic!("{name} {what}: expected potentials");
    };
    compared += assert_all_equal(
        &format!("{name} {what} akida_forward"),
        &p,
        set.array("akida_forward").as_i32().unwrap(),
    );
    let predict = rt.predict_batch(inputs.as_u8().unwrap()).unwrap().unwrap();
    compared += assert_all_equal(
        &format!("{name} {what} akida_predict"),
        &f32_bits(&predict),
        &f32_bits(set.array("akida_predict").as_f32().unwrap()),
    );
    compared
}

#[test]
fn quantize_and_convert_match_cnn2snn_and_the_engine_on_every_set() {
    let (dir, names) = reference_sets();
    let mut compared = 0;
    for name in &names {
        let mut set = ReferenceSet::open(&dir, name);
        let float = keras::read_model(&dir.join(format!("{name}_float.h5"))).unwrap();
        let options = QuantizeOptions {
            input_weight_bits: Some(bits(&set, "input_weight_quantization")),
            ..QuantizeOptions::new(
                bits(&set, "weight_quantization"),
                bits(&set, "activ_quantization"),
            )
        };
        let ours_q =
            cnn2snn::quantize(&float, &options).unwrap_or_else(|e| panic!("{name}: quantize: {e}"));
        compared += compare_quantized(&mut set, &ours_q);

        let reference_q = keras::read_model(&dir.join(format!("{name}_q.h5"))).unwrap();
        let conversion = cnn2snn::convert(&reference_q, &Default::default())
            .unwrap_or_else(|e| panic!("{name}: convert of the reference _q.h5: {e}"));
        compared += compare_converted(&mut set, "convert(_q.h5)", &conversion.model);
        // BrainChip's own .fbz of the set reads as exactly our conversion.
        let fbz = akida_host::formats::load(dir.join(format!("{name}.fbz")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            fbz, conversion.model,
            "{name}: NAME.fbz differs from our convert of NAME_q.h5"
        );

        let ours = cnn2snn::convert(&ours_q, &Default::default())
            .unwrap_or_else(|e| panic!("{name}: convert of our quantized model: {e}"));
        compared += compare_converted(&mut set, "convert(quantize(_float.h5))", &ours.model);
    }
    println!(
        "cnn2snn parity: {compared} elements of {} reference sets equal",
        names.len()
    );
}
