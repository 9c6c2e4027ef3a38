//! The streaming engine of the firmware (`akida_core::stream`: a window of
//! rows, the M4 kernels through their portable instruction model, levels
//! written in place) gives the engine's outputs on every reference set and
//! the reference kernel's outputs on random models of every layer kind, and
//! the reference ds_cnn_kws fits the embedded memory budget.

use akida_core::stream::{prepare, StreamLayer};
use akida_tests::{
    assert_all_equal, random, reference_outputs, reference_sets, stream_outputs, BatchOutputs,
    ReferenceSet,
};

#[test]
fn every_reference_set_streams_to_the_engine_outputs() {
    let (dir, names) = reference_sets();
    let (mut elements, mut fast, mut layers) = (0, 0, 0);
    for name in &names {
        let mut set = ReferenceSet::open(&dir, name);
        let bytes = akida_host::formats::akd::to_bytes(&set.akida_model()).unwrap();
        let inputs = set.array("input_uint8");
        let engine = set.array("akida_forward");
        let got = stream_outputs(&bytes, inputs.as_u8().unwrap());
        elements += match (&got, engine.as_i32(), engine.as_u8()) {
            (BatchOutputs::Potentials(p), Some(e), _) => assert_all_equal(name, p, e),
            (BatchOutputs::Levels(l), _, Some(e)) => assert_all_equal(name, l, e),
            _ => panic!("{name}: output kinds differ"),
        };
        let prepared = prepare(&bytes).unwrap();
        fast += prepared.layers.iter().filter(|l| l.fast).count();
        layers += prepared.layers.len();
    }
    println!(
        "{} sets, {elements} elements equal to the engine; {fast} of {layers} layers on the M4 kernels",
        names.len()
    );
    assert!(
        fast * 2 > layers,
        "most reference layers should run the M4 kernels"
    );
}

#[test]
fn random_models_stream_like_the_reference() {
    let (mut fast, mut layers, mut elements) = (0, 0, 0);
    for seed in 0..300u64 {
        let model = random::model(seed);
        let bytes = akida_host::formats::akd::to_bytes(&model).unwrap();
        let images = random::inputs(seed, &model, 3, (seed % 4) as f64 * 0.3);
        let want = reference_outputs(&model, &images);
        let got = stream_outputs(&bytes, &images);
        assert_eq!(got, want, "seed {seed}: {model:#?}");
        elements += got.len();
        let p = prepare(&bytes).unwrap();
        fast += p.layers.iter().filter(|l: &&StreamLayer| l.fast).count();
        layers += p.layers.len();
    }
    println!(
        "300 random models, {elements} elements equal; {fast} of {layers} layers on the M4 kernels"
    );
    assert!(
        fast * 3 > layers,
        "the random models must exercise the M4 kernels"
    );
}

#[test]
fn ds_cnn_kws_fits_the_embedded_budget() {
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/models/default.akd"),
    )
    .unwrap();
    let prepared = prepare(&bytes).unwrap();
    let model = prepared.model();
    assert!(
        prepared.layers.iter().all(|l| l.fast),
        "every ds_cnn_kws layer runs the M4 kernels"
    );
    let sizes = model.sizes();
    println!(
        "ds_cnn_kws streaming workspace: {sizes:?} = {} bytes",
        sizes.bytes()
    );
    assert!(
        sizes.bytes() <= 24 * 1024,
        "activations and scratch exceed 24 KB: {sizes:?}"
    );
    assert_eq!(sizes.levels[1], 0, "ds_cnn_kws needs one level buffer");
}
