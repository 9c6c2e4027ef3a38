//! The four legacy zoo models: created, saved, read back and summarised,
//! they match the reference `model.summary()` printouts of akida_models 1.1.0
//! (layer names, classes, output shapes, parameter counts, totals).

use akida_host::keras::{read_model, write_model, LayerConfig};
use akida_host::zoo::ZooModel;
use akida_tests::keras::{auto_name_stem, is_auto_named, parse_summary, without_raw, zoo_dir};
use akida_tests::scratch_dir;

/// Compares our summary to the reference one, allowing another counter on
/// names Keras numbers automatically.
fn assert_summary_matches(model: &str, ours: &str, reference: &str) {
    let ours = parse_summary(ours);
    let want = parse_summary(reference);
    assert_eq!(ours.model, want.model);
    assert_eq!(ours.rows.len(), want.rows.len(), "{model}: layer count");
    for (a, b) in ours.rows.iter().zip(&want.rows) {
        if is_auto_named(&b.name) {
            assert!(is_auto_named(&a.name), "{model}: {} vs {}", a.name, b.name);
            assert_eq!(auto_name_stem(&a.name), auto_name_stem(&b.name), "{model}");
        } else {
            assert_eq!(a.name, b.name, "{model}: layer name");
        }
        assert_eq!(a.class, b.class, "{model} {}: class", b.name);
        assert_eq!(a.shape, b.shape, "{model} {}: output shape", b.name);
        assert_eq!(a.params, b.params, "{model} {}: parameters", b.name);
    }
    assert_eq!(ours.totals, want.totals, "{model}: totals");
}

#[test]
fn created_models_match_the_reference_summaries() {
    let scratch = scratch_dir("zoo");
    let dir = scratch.path();
    for zoo in ZooModel::ALL {
        let name = zoo.name();
        let model = zoo.build(42).unwrap();
        let path = dir.join(format!("{name}.h5"));
        write_model(&path, &model).unwrap();
        let back = read_model(&path).unwrap();
        let reference =
            std::fs::read_to_string(zoo_dir().join(format!("{name}_summary.txt"))).unwrap();
        assert_summary_matches(name, &back.summary(), &reference);
        // The summary text differs from the reference only in automatic names.
        let ours_lines = back.summary().lines().count();
        assert_eq!(
            ours_lines,
            reference.lines().count(),
            "{name}: summary lines"
        );
        assert_eq!(without_raw(back), model, "{name}: round trip");
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn rescaling_inputs_follow_akida_models() {
    let want = [
        (ZooModel::DsCnnCifar10, 1.0 / 255.0, 0.0, vec![32, 32, 3]),
        (ZooModel::VggCifar10, 1.0 / 255.0, 0.0, vec![32, 32, 3]),
        (ZooModel::VggUtkFace, 1.0 / 127.0, -1.0, vec![32, 32, 3]),
        (ZooModel::DsCnnKws, 1.0 / 255.0, 0.0, vec![49, 10, 1]),
    ];
    for (zoo, scale, offset, input) in want {
        let model = zoo.build(0).unwrap();
        assert_eq!(
            model.layers[1].config,
            LayerConfig::Rescaling { scale, offset },
            "{}",
            zoo.name()
        );
        assert_eq!(model.output_shapes().unwrap()[0], input, "{}", zoo.name());
    }
}

#[test]
fn weights_are_keras_initialised_and_seeded() {
    let a = ZooModel::VggUtkFace.build(1).unwrap();
    let b = ZooModel::VggUtkFace.build(1).unwrap();
    let c = ZooModel::VggUtkFace.build(2).unwrap();
    assert_eq!(a, b);
    let kernel = a.layer("conv_2").unwrap().kernel().unwrap();
    assert_eq!(kernel.shape, vec![3, 3, 32, 64]);
    let limit = (6.0f64 / (3.0 * 3.0 * 32.0 + 3.0 * 3.0 * 64.0)).sqrt() as f32;
    assert!(kernel.values.iter().all(|v| v.abs() <= limit));
    let spread = kernel.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        spread > 0.9 * limit,
        "uniform over ±limit: max {spread}, limit {limit}"
    );
    assert_ne!(kernel, c.layer("conv_2").unwrap().kernel().unwrap());
    let [gamma, beta, mean, var] = a.layer("conv_2_BN").unwrap().batch_norm_weights().unwrap();
    assert!(gamma.values.iter().all(|&v| v == 1.0));
    assert!(beta.values.iter().all(|&v| v == 0.0));
    assert!(mean.values.iter().all(|&v| v == 0.0));
    assert!(var.values.iter().all(|&v| v == 1.0));
    let bias = a.layer("dense_2").unwrap().bias().unwrap();
    assert_eq!(bias.values, vec![0.0]);
}
