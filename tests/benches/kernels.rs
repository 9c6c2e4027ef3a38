//! Dense reference vs event kernel on a 3x3 convolution at several input
//! sparsities, and host inference of the ds_cnn_kws reference model.
//!
//! `cargo bench -p akida-tests --bench kernels`

use akida_core::inference::{forward, run_layer, LayerBuffers, LayerOutputMut};
use akida_core::kernels::{self, fast};
use akida_core::weights::{pack_into, packed_len};
use akida_core::{
    decode, Backend, Dims, F32Values, I32Values, Layer, LayerKind, LayerParams, Padding, Pooling,
    PrepBuffers, Preparation, ValidLayer, Window,
};
use akida_host::keras::init::Rng;
use akida_tests::{data_dir, Buffers, ReferenceSet};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn conv3x3(c: &mut Criterion) {
    let (rows, cols, cin, f) = (32u32, 32u32, 64u32, 64u32);
    let mut rng = Rng::new(1);
    let n = (3 * 3 * cin * f) as usize;
    let values: Vec<i8> = (0..n).map(|_| (rng.next_u64() % 15) as i8 - 7).collect();
    let mut packed = vec![0u8; packed_len(n, 4)];
    pack_into(&values, 4, &mut packed).unwrap();
    let th: Vec<u8> = (0..f).flat_map(|_| 0i32.to_le_bytes()).collect();
    let st: Vec<u8> = (0..f).flat_map(|_| 1f32.to_le_bytes()).collect();
    let layer = Layer {
        name: "conv3x3",
        params: LayerParams {
            kind: LayerKind::Convolutional,
            input: Dims::new(rows, cols, cin),
            filters: f,
            kernel: Window::new(3, 3),
            stride: Window::ONE,
            padding: Padding::Same,
            padding_value: 0,
            pooling: Pooling::None,
            activation: true,
            act_bits: 4,
            weights_bits: 4,
        },
        weights: &packed[..],
        weights_pw: None,
        threshold: I32Values(&th[..]),
        act_step: F32Values(&st[..]),
    };
    let layer = ValidLayer::new(layer, 15).unwrap();
    let p = layer.params();
    let plan = fast::FastPlan::sizes(&layer);
    let mut weights = vec![0i8; p.unpacked_len()];
    let (mut packed_b, mut cuts) = (vec![0i16; plan.packed_len], vec![0i32; plan.cuts_len]);
    let mut scratch = vec![0i32; p.scratch_len(&layer.shapes).max(plan.scratch_len())];
    let (mut a, mut row) = (vec![0i16; plan.a_len], vec![0i32; plan.gemm.f_pad]);
    let mut levels = vec![0u8; layer.output_len()];
    let simd = akida_host::runtime::detect_simd();
    let mut group = c.benchmark_group("conv3x3_32x32x64_to_64");
    group.throughput(Throughput::Elements(1));
    for sparsity in [0u64, 50, 90, 99] {
        let input: Vec<u8> = (0..p.input.len())
            .map(|_| {
                if rng.next_u64() % 100 < sparsity {
                    0
                } else {
                    1 + (rng.next_u64() % 15) as u8
                }
            })
            .collect();
        // Reference and event kernels: the potentials of the neural part.
        for backend in [Backend::Reference, Backend::Event] {
            let mut prep = PrepBuffers {
                weights: &mut weights,
                packed: &mut packed_b,
                cuts: &mut cuts,
            };
            let prepared = backend.prepare(0, &layer, &input, &mut prep).unwrap();
            group.bench_with_input(
                BenchmarkId::new(format!("{backend:?}"), format!("{sparsity}%")),
                &input,
                |b, input| {
                    b.iter(|| {
                        let cells =
                            layer.shapes.conv.rows as usize * layer.shapes.conv.cols as usize;
                        kernels::potentials(
                            &layer,
                            &prepared,
                            input,
                            0..cells,
                            &mut a,
                            &mut scratch,
                        )
                        .potentials[0]
                    })
                },
            );
        }
        // Fast kernel, prepared once (packed weights, level cuts): the whole
        // layer (product, then activation into levels).
        let mut prep = PrepBuffers {
            weights: &mut weights,
            packed: &mut packed_b,
            cuts: &mut cuts,
        };
        let fast = Backend::Fast(simd);
        let prepared = fast.prepare(0, &layer, &input, &mut prep).unwrap();
        group.bench_with_input(
            BenchmarkId::new(format!("Fast-{}", simd.name()), format!("{sparsity}%")),
            &input,
            |b, input| {
                b.iter(|| {
                    let buffers = LayerBuffers {
                        scratch: &mut scratch,
                        a: &mut a,
                        row: &mut row,
                    };
                    let out = LayerOutputMut::Levels(&mut levels);
                    run_layer(&layer, &prepared, input, buffers, out).unwrap();
                    levels[0]
                })
            },
        );
    }
    group.finish();
}

fn ds_cnn_kws(c: &mut Criterion) {
    let mut set = ReferenceSet::open(
        &data_dir().join("reference/vectors"),
        "ds_cnn_kws_iq8_wq4_aq4",
    );
    let bytes = akida_host::formats::akd::to_bytes(&set.akida_model()).unwrap();
    let model = decode(&bytes).unwrap();
    let inputs = set.array("input_uint8");
    let image = &inputs.as_u8().unwrap()[..model.input().len()];
    let mut buffers = Buffers::for_model(&model);
    let mut group = c.benchmark_group("ds_cnn_kws_iq8_wq4_aq4_forward");
    group.throughput(Throughput::Elements(1));
    for kernel in [Backend::Reference, Backend::Event] {
        group.bench_function(format!("{kernel:?}"), |bench| {
            bench.iter(|| {
                let mut ws = buffers.workspace();
                let _ = forward(&model, image, &mut ws, &kernel, |_, _| {}).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conv3x3, ds_cnn_kws);
criterion_main!(benches);
