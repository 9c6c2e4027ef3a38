//! Keras `.h5` files: the real files written by tf_keras and cnn2snn read to
//! the weights their `.npz` holds, bit for bit; every layer kind survives a
//! write-read round trip; our files look right to h5py.

use std::collections::BTreeMap;
use std::path::Path;

use akida_host::formats::npy::Npz;
use akida_host::keras::{read_model, write_model, LayerConfig, Model, QuantizerKind, WeightRole};
use akida_tests::keras::{
    all_float_kinds, all_quantized_kinds, python, without_raw, zoo_dir, H5PY_DUMP,
};
use akida_tests::{assert_all_equal, reference_dir, reference_sets, scratch_dir};
use serde_json::Value;

/// A weight as its shape and the bits of its float32 values.
type Bits = (Vec<usize>, Vec<u32>);

/// The npz weights under `prefix/<layer>/<i>` (numbered entries only).
fn npz_weights(npz: &mut Npz, prefix: &str) -> BTreeMap<String, Vec<Bits>> {
    let mut by_layer: BTreeMap<String, BTreeMap<usize, Bits>> = BTreeMap::new();
    for name in npz.names() {
        let Some(rest) = name.strip_prefix(&format!("{prefix}/")) else {
            continue;
        };
        let Some((layer, index)) = rest.rsplit_once('/') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue; // scale_factor, int_kernel, ...
        };
        let t = npz.require(&name).unwrap();
        let bits = t
            .as_f32()
            .expect("float32 weights")
            .iter()
            .map(|v| v.to_bits())
            .collect();
        by_layer
            .entry(layer.to_owned())
            .or_default()
            .insert(index, (t.shape.clone(), bits));
    }
    by_layer
        .into_iter()
        .map(|(layer, ws)| (layer, ws.into_values().collect()))
        .collect()
}

/// Our model's weights as (shape, bits), per layer that has any.
fn model_weights(model: &Model) -> BTreeMap<String, Vec<Bits>> {
    model
        .layers
        .iter()
        .filter(|l| !l.weights.is_empty())
        .map(|l| {
            let ws = l
                .weights
                .iter()
                .map(|w| {
                    (
                        w.shape.clone(),
                        w.values.iter().map(|v| v.to_bits()).collect(),
                    )
                })
                .collect();
            (l.name.clone(), ws)
        })
        .collect()
}

/// Reads `NAME{suffix}.h5` of every vector set and compares it to the npz.
fn check_against_npz(suffix: &str, prefix: &str) -> usize {
    let (dir, names) = reference_sets();
    let mut compared = 0;
    for set in names {
        let path = dir.join(format!("{set}{suffix}"));
        let model = read_model(&path).unwrap_or_else(|e| panic!("{e}"));
        model.validate().unwrap();
        let mut npz = Npz::open(&dir.join(format!("{set}.npz"))).unwrap();
        let want = npz_weights(&mut npz, prefix);
        let got = model_weights(&model);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{set}: layers with weights"
        );
        for (layer, ws) in &want {
            assert_eq!(got[layer].len(), ws.len(), "{set} {layer}: weight count");
            for (i, ((gs, gv), (ws, wv))) in got[layer].iter().zip(ws).enumerate() {
                assert_eq!(gs, ws, "{set} {layer}/{i}: shape");
                compared += assert_all_equal(&format!("{set} {layer}/{i}"), gv, wv);
            }
        }
        // The json lists the same layers in the same order (the quantized
        // list leaves out the InputLayer).
        let text = std::fs::read_to_string(dir.join(format!("{set}.json"))).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        let (list, skip) = match suffix {
            "_float.h5" => (&json["keras_float_model_config"]["config"]["layers"], 0),
            _ => (&json["keras_quantized_layers"], 1),
        };
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        let ours: Vec<&str> = model.layers[skip..]
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(ours, names, "{set}{suffix}: layer list");
    }
    compared
}

#[test]
fn float_reference_files_read_to_the_npz_weights() {
    let n = check_against_npz("_float.h5", "float");
    assert!(n > 70_000, "compared {n} values");
}

#[test]
fn quantized_reference_files_read_to_the_npz_weights() {
    let n = check_against_npz("_q.h5", "quantized_keras");
    assert!(n > 70_000, "compared {n} values");
}

#[test]
fn quantized_reference_configs_are_typed() {
    let path = reference_dir().join("ds_cnn_kws_iq8_wq4_aq4_q.h5");
    let model = read_model(&path).unwrap();
    assert_eq!(model.name, "sequential_65");
    assert!(model.is_sequential());
    match &model.layer("conv_0").unwrap().config {
        LayerConfig::QuantizedConv2D { conv, quantizer } => {
            assert_eq!(conv.strides, [2, 2]);
            assert_eq!(quantizer.kind, QuantizerKind::MaxPerAxis);
            assert_eq!(quantizer.bitwidth, 8);
        }
        other => panic!("{other:?}"),
    }
    match &model.layer("separable_1").unwrap().config {
        LayerConfig::QuantizedSeparableConv2D {
            quantizer,
            quantizer_dw,
            ..
        } => {
            assert_eq!((quantizer.bitwidth, quantizer_dw.bitwidth), (4, 4));
            assert_eq!(quantizer_dw.kind, QuantizerKind::Max);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        model.layer("conv_0_relu").unwrap().config,
        LayerConfig::QuantizedReLU {
            bitwidth: 4,
            max_value: 6.0
        }
    );
    let sep = model.layer("separable_1").unwrap();
    assert_eq!(sep.depthwise_kernel().unwrap().shape, vec![3, 3, 64, 1]);
    assert_eq!(sep.pointwise_kernel().unwrap().shape, vec![1, 1, 64, 64]);
    assert_eq!(sep.bias().unwrap().shape, vec![64]);
    assert_eq!(model.param_count().total(), 22_753);
}

#[test]
fn zoo_reference_file_gives_the_reference_summary() {
    let model = read_model(&zoo_dir().join("ds_cnn_kws_akida_models_1.1.0.h5")).unwrap();
    let want = std::fs::read_to_string(zoo_dir().join("ds_cnn_kws_summary.txt")).unwrap();
    assert_eq!(model.summary(), want);
    let bn = model.layer("separable_2_BN").unwrap();
    let [gamma, _, _, var] = bn.batch_norm_weights().unwrap();
    assert_eq!(gamma.name, "separable_2_BN/gamma:0");
    assert_eq!(var.shape, vec![64]);
}

#[test]
fn akida2_zoo_file_with_slashed_names_reads_and_round_trips() {
    let model = read_model(&zoo_dir().join("ds_cnn_kws_akida_models_1.14.2.h5")).unwrap();
    assert_eq!(model.layers[0].name, "input");
    let bn = model.layer("conv_0/BN").unwrap();
    assert_eq!(
        bn.weight(WeightRole::Gamma).unwrap().name,
        "conv_0/BN/gamma:0"
    );
    assert!(matches!(
        model.layer("dw_separable_1").unwrap().config,
        LayerConfig::DepthwiseConv2D(_)
    ));
    match &model.layers[0].config {
        LayerConfig::InputLayer { dtype, .. } => assert_eq!(dtype, "uint8"),
        other => panic!("{other:?}"),
    }
    let dir = scratch_dir("akida2");
    let path = dir.path().join("rewritten.h5");
    write_model(&path, &model).unwrap();
    let back = read_model(&path).unwrap();
    assert_eq!(without_raw(back), without_raw(model));
}

#[test]
fn every_layer_kind_round_trips_bit_for_bit() {
    let dir = scratch_dir("kinds");
    for model in [all_float_kinds(11), all_quantized_kinds(12)] {
        let path = dir.path().join(format!("{}.h5", model.name));
        write_model(&path, &model).unwrap();
        let back = without_raw(read_model(&path).unwrap());
        assert_eq!(back.layers.len(), model.layers.len());
        for (a, b) in back.layers.iter().zip(&model.layers) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.config, b.config, "{}", a.name);
            assert_eq!(a.inbound, b.inbound, "{}", a.name);
            assert_eq!(a.weights.len(), b.weights.len(), "{}", a.name);
            for (wa, wb) in a.weights.iter().zip(&b.weights) {
                assert_eq!((&wa.name, &wa.shape), (&wb.name, &wb.shape));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_all_equal(&wa.name, &bits(&wa.values), &bits(&wb.values));
            }
        }
        assert_eq!(back, model);
    }
}

#[test]
fn rewriting_a_read_file_keeps_unmodelled_fields() {
    let src = reference_dir().join("conv_pool_w2a2_q.h5");
    let model = read_model(&src).unwrap();
    let dir = scratch_dir("rewrite");
    let out = dir.path().join("q.h5");
    write_model(&out, &model).unwrap();
    let again = read_model(&out).unwrap();
    assert_eq!(again, model);
    let dump: Value = serde_json::from_str(&python(H5PY_DUMP, &[&out])).unwrap();
    let config: Value =
        serde_json::from_str(dump["root"]["model_config"].as_str().unwrap()).unwrap();
    let conv = config["config"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["class_name"] == "QuantizedConv2D")
        .unwrap();
    // The quantizer keeps the name cnn2snn gave it; initialisers survive.
    let q_name = conv["config"]["quantizer"]["config"]["name"]
        .as_str()
        .unwrap();
    assert!(q_name.starts_with("max_per_axis_quantizer_"), "{q_name}");
    assert_eq!(
        conv["config"]["kernel_initializer"]["class_name"],
        "GlorotUniform"
    );
    assert_eq!(conv["module"], "cnn2snn.quantization_layers");
    assert_eq!(conv["registered_name"], "QuantizedConv2D");
}

/// Checks what h5py reads from a file we wrote from `model`.
fn check_with_h5py(path: &Path, model: &Model) {
    let dump: Value = serde_json::from_str(&python(H5PY_DUMP, &[path])).unwrap();
    assert_eq!(dump["root"]["backend"], "tensorflow");
    assert_eq!(dump["root"]["keras_version"], "2.19.0");
    assert_eq!(dump["mw"]["backend"], "tensorflow");
    assert_eq!(dump["mw"]["keras_version"], "2.19.0");
    assert_eq!(dump["groups"], serde_json::json!(["model_weights"]));
    for attr in ["backend", "keras_version", "model_config"] {
        assert_eq!(dump["root_types"][attr]["vlen"], true, "{attr}");
    }
    assert_eq!(dump["layer_names_type"]["vlen"], true);
    assert_eq!(dump["top_level"], "float64");
    let names: Vec<&str> = model.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(dump["layer_names"], serde_json::json!(names));
    for layer in &model.layers {
        let d = &dump["layers"][&layer.name];
        let wn: Vec<&str> = layer.weights.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(d["weight_names"], serde_json::json!(wn), "{}", layer.name);
        if layer.weights.is_empty() {
            assert_eq!(d["empty_dtype"], "float64", "{}", layer.name);
        }
        for w in &layer.weights {
            assert_eq!(
                d["datasets"][&w.name],
                serde_json::json!(["float32", w.shape]),
                "{}",
                w.name
            );
        }
    }
    let config: Value =
        serde_json::from_str(dump["root"]["model_config"].as_str().unwrap()).unwrap();
    assert_eq!(config["class_name"], "Functional");
    assert_eq!(config["config"]["name"], model.name.as_str());
    let layers = config["config"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), model.layers.len());
    for (entry, layer) in layers.iter().zip(&model.layers) {
        let keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let want: &[&str] = if matches!(layer.config, LayerConfig::InputLayer { .. }) {
            &[
                "module",
                "class_name",
                "config",
                "registered_name",
                "name",
                "inbound_nodes",
            ]
        } else {
            &[
                "module",
                "class_name",
                "config",
                "registered_name",
                "build_config",
                "name",
                "inbound_nodes",
            ]
        };
        assert_eq!(keys, want, "{}", layer.name);
        assert_eq!(entry["class_name"], layer.class_name());
        assert_eq!(entry["config"]["name"], layer.name.as_str());
    }
    assert_eq!(
        config["config"]["output_layers"],
        serde_json::json!([[model.outputs[0], 0, 0]])
    );
}

#[test]
fn h5py_sees_the_keras_layout_in_our_files() {
    let dir = scratch_dir("h5py");
    for model in [all_float_kinds(5), all_quantized_kinds(6)] {
        let path = dir.path().join(format!("{}.h5", model.name));
        write_model(&path, &model).unwrap();
        check_with_h5py(&path, &model);
    }
}

#[test]
fn our_config_matches_the_tf_keras_dialect_of_the_reference_json() {
    // Rewriting the float reference model must give, layer for layer, the
    // config tf_keras 2.19 itself produced (`keras_float_model_config`).
    let dir = reference_dir();
    let set = "ds_cnn_kws_iq8_wq4_aq4";
    let model = without_raw(read_model(&dir.join(format!("{set}_float.h5"))).unwrap());
    let scratch = scratch_dir("dialect");
    let out = scratch.path().join("f.h5");
    write_model(&out, &model).unwrap();
    let dump: Value = serde_json::from_str(&python(H5PY_DUMP, &[&out])).unwrap();
    let ours: Value = serde_json::from_str(dump["root"]["model_config"].as_str().unwrap()).unwrap();
    let text = std::fs::read_to_string(dir.join(format!("{set}.json"))).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let want = &reference["keras_float_model_config"]["config"];
    for (a, b) in ours["config"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want["layers"].as_array().unwrap())
    {
        assert_eq!(a, b, "layer {}", b["name"]);
    }
    assert_eq!(ours["config"]["input_layers"], want["input_layers"]);
    assert_eq!(ours["config"]["output_layers"], want["output_layers"]);
}
