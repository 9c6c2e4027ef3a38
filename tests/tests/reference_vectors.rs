//! Parity with BrainChip's Akida engine: every layer output of every
//! reference vector set, with both kernels, every element; the host runtime
//! and `akida run`'s `run_tensor` on the final outputs.

use akida_core::inference::{forward, rescale_output, LayerOutput};
use akida_core::{decode, Backend};
use akida_tests::{assert_all_equal, reference_sets, Buffers, ReferenceSet};

#[test]
fn every_layer_of_every_set_equals_the_engine_with_both_kernels() {
    let (dir, names) = reference_sets();
    let mut compared = 0usize;
    for name in &names {
        let mut set = ReferenceSet::open(&dir, name);
        let owned = set.akida_model();
        // Through the .akd file, as the firmware would read it.
        let bytes =
            akida_host::formats::akd::to_bytes(&owned).unwrap_or_else(|e| panic!("{name}: {e}"));
        let model = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let layers = set.layers();
        let inputs = set.array("input_uint8");
        let images = inputs.shape[0];
        let image_len = inputs.len() / images;
        let per_layer: Vec<_> = layers
            .iter()
            .map(|l| set.array(&format!("{}/forward", l.prefix)))
            .collect();
        let final_forward = set.array("akida_forward");
        let final_predict = set.array("akida_predict");

        let mut buffers = Buffers::for_model(&model);
        for kernel in [Backend::Reference, Backend::Event] {
            for n in 0..images {
                let image = &inputs.as_u8().unwrap()[n * image_len..(n + 1) * image_len];
                let mut ws = buffers.workspace();
                let mut seen = 0;
                let out = forward(&model, image, &mut ws, &kernel, |i, out| {
                    let want = &per_layer[i];
                    let len = want.len() / images;
                    let what =
                        format!("{name} {kernel:?} image {n} layer {i} ({})", layers[i].name);
                    compared += match out {
                        LayerOutput::Levels(l) => assert_all_equal(
                            &what,
                            l,
                            &want.as_u8().expect("levels are uint8")[n * len..(n + 1) * len],
                        ),
                        LayerOutput::Potentials(p) => assert_all_equal(
                            &what,
                            p,
                            &want.as_i32().expect("potentials are int32")[n * len..(n + 1) * len],
                        ),
                    };
                    seen += 1;
                })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(seen, layers.len());
                let len = final_forward.len() / images;
                let LayerOutput::Potentials(p) = out else {
                    panic!("{name}: the reference sets end without activation");
                };
                let what = format!("{name} {kernel:?} image {n} akida_forward");
                compared += assert_all_equal(
                    &what,
                    p,
                    &final_forward.as_i32().unwrap()[n * len..(n + 1) * len],
                );
                let mut predict = vec![0f32; p.len()];
                rescale_output(&model.last(), p, &mut predict);
                let bits: Vec<u32> = predict.iter().map(|x| x.to_bits()).collect();
                let want: Vec<u32> = final_predict.as_f32().unwrap()[n * len..(n + 1) * len]
                    .iter()
                    .map(|x| x.to_bits())
                    .collect();
                compared += assert_all_equal(
                    &format!("{name} {kernel:?} image {n} akida_predict"),
                    &bits,
                    &want,
                );
            }
        }
    }
    println!(
        "compared {compared} elements of {} reference sets in {} (both kernels): all equal",
        names.len(),
        dir.display()
    );
}

/// The host runtime (prepared model, batch over all cores, per-layer kernel
/// choice) gives the engine's outputs through every fast-kernel path this
/// CPU runs: every instruction set (portable always; AVX2, AVX-VNNI,
/// AVX-512 VNNI where present), each with the u8 x s8 byte product and with
/// the 16-bit product only.
#[test]
fn host_runtime_batches_equal_the_engine_with_every_policy() {
    use akida_core::kernels::fast::Simd;
    use akida_host::runtime::{BatchOutput, KernelPolicy, Runtime};

    let (dir, names) = reference_sets();
    let simds = Simd::available();
    // Instruction sets whose byte product some layer of some set took.
    let mut took_bytes = Vec::new();
    let mut compared = 0;
    for name in &names {
        let mut set = ReferenceSet::open(&dir, name);
        let bytes = akida_host::formats::akd::to_bytes(&set.akida_model()).unwrap();
        let model = decode(&bytes).unwrap();
        let inputs = set.array("input_uint8");
        let want = set.array("akida_forward");
        let want_predict = set.array("akida_predict");
        for policy in [
            KernelPolicy::Auto,
            KernelPolicy::Fast,
            KernelPolicy::Event,
            KernelPolicy::Reference,
        ] {
            for (simd, u8) in simds.iter().flat_map(|&s| [(s, true), (s, false)]) {
                let rt = Runtime::new(&model, policy).with_kernels(simd, u8);
                let what = format!("{name} {policy:?} {} byte product {u8}", simd.name());
                let report = rt.u8_report(u8);
                assert!(!report.starts_with("off ("), "{what}: {report}");
                if u8 && report == simd.u8_instruction() && !took_bytes.contains(&simd) {
                    took_bytes.push(simd);
                }
                let BatchOutput::Potentials(p) = rt.forward_batch(inputs.as_u8().unwrap()).unwrap()
                else {
                    panic!("{what}: expected potentials");
                };
                compared += assert_all_equal(&what, &p, want.as_i32().unwrap());
                let predict = rt.predict_batch(inputs.as_u8().unwrap()).unwrap().unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                compared += assert_all_equal(
                    &format!("{what} predict"),
                    &bits(&predict),
                    &bits(want_predict.as_f32().unwrap()),
                );
            }
        }
    }
    // Each instruction set's byte product ran on some layer (the reference
    // models have 4-bit weights on 4-bit or 8-bit inputs: AVX2 takes them too).
    for simd in &simds {
        assert!(
            took_bytes.contains(simd),
            "{}: byte product never taken",
            simd.name()
        );
    }
    println!(
        "host runtime: {compared} elements of {} sets equal to the engine, through {}",
        names.len(),
        simds
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// `akida run`'s library side: `run_tensor` on the engine's inputs gives the
/// engine's `forward` and `predict` outputs exactly, from BrainChip's own
/// `.fbz` of every set that has one (and there must be one).
#[test]
fn run_tensor_matches_the_engine_on_every_reference_set() {
    use akida_host::commands::akida::{run_tensor, RunOptions};
    use akida_host::formats::npy::Tensor;

    let (dir, names) = reference_sets();
    let mut sets = 0;
    for name in &names {
        let path = dir.join(format!("{name}.fbz"));
        if !path.exists() {
            continue;
        }
        let model = akida_host::formats::load(&path).unwrap();
        let mut set = ReferenceSet::open(&dir, name);
        let input = set.array("input_uint8");
        let forward = set.array("akida_forward");
        let predict = set.array("akida_predict");
        let (out, stats) = run_tensor(&model, &input, RunOptions::default()).unwrap();
        assert_eq!(stats.images, input.shape[0]);
        assert_eq!(out, forward, "{}", path.display());
        let options = RunOptions {
            predict: true,
            ..RunOptions::default()
        };
        let (out, _) = run_tensor(&model, &input, options).unwrap();
        let bits =
            |t: &Tensor| -> Vec<u32> { t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect() };
        assert_eq!(out.shape, predict.shape, "{}", path.display());
        assert_eq!(bits(&out), bits(&predict), "{}", path.display());
        sets += 1;
    }
    assert!(sets > 0, "no reference set (.fbz) in {}", dir.display());
}
