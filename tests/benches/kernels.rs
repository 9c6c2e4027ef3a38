//! Dense reference vs event kernel on a 3x3 convolution at several input
//! sparsities, and host inference of the ds_cnn_kws reference model.
//!
//! `cargo bench -p akida-tests --bench kernels`

use akida_core::inference::forward;
use akida_core::inference::LayerOutputMut;
use akida_core::kernels::{self, fast, unpack_weights, Kernel};
use akida_core::weights::{pack_into, packed_len};
use akida_core::{
    decode, Dims, F32Slice, I32Slice, Layer, LayerKind, PackedWeights, Padding, Pooling, Window,
};
use akida_tests::{data_dir, Buffers, ReferenceSet};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Deterministic pseudo-random values.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

fn conv3x3(c: &mut Criterion) {
    let (rows, cols, cin, f) = (32u32, 32u32, 64u32, 64u32);
    let mut seed = 1u64;
    let n = (3 * 3 * cin * f) as usize;
    let values: Vec<i8> = (0..n).map(|_| (lcg(&mut seed) % 15) as i8 - 7).collect();
    let mut packed = vec![0u8; packed_len(n, 4)];
    pack_into(&values, 4, &mut packed).unwrap();
    let th: Vec<u8> = (0..f).flat_map(|_| 0i32.to_le_bytes()).collect();
    let st: Vec<u8> = (0..f).flat_map(|_| 1f32.to_le_bytes()).collect();
    let layer = Layer {
        name: "conv3x3",
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
        weights: PackedWeights {
            bits: 4,
            shape: [3, 3, cin, f],
            data: &packed,
        },
        weights_pw: None,
        threshold: I32Slice(&th),
        act_step: F32Slice(&st),
    };
    let mut unpacked = vec![0i8; layer.unpacked_len()];
    let w = unpack_weights(&layer, &mut unpacked);
    let mut scratch = vec![0i32; layer.scratch_len()];
    // The fast dense kernel, prepared once (packed weights, level cuts).
    let simd = akida_host::runtime::detect_simd();
    let plan = fast::FastPlan::of(&layer, &w, 15).unwrap();
    let mut packed = vec![0i16; plan.packed_len];
    fast::pack_b(&plan.gemm, fast::product_weights(&layer, &w), &mut packed);
    let mut cuts = vec![0i32; plan.cuts_len];
    fast::level_cuts(&layer, &plan, &mut cuts);
    let fl = fast::FastLayer {
        layer: &layer,
        plan,
        weights: w,
        packed_b: &packed,
        cuts: &cuts,
    };
    let (mut a, mut dw, mut product, mut row) = (
        vec![0i16; plan.a_len],
        vec![0i32; plan.depthwise_len],
        vec![0i32; plan.product_len],
        vec![0i32; plan.gemm.f_pad],
    );
    let mut levels = vec![0u8; layer.output_dims().len()];
    let mut group = c.benchmark_group("conv3x3_32x32x64_to_64");
    group.throughput(Throughput::Elements(1));
    for sparsity in [0u64, 50, 90, 99] {
        let input: Vec<u8> = (0..layer.input.len())
            .map(|_| {
                if lcg(&mut seed) % 100 < sparsity {
                    0
                } else {
                    1 + (lcg(&mut seed) % 15) as u8
                }
            })
            .collect();
        for kernel in [Kernel::Reference, Kernel::Event] {
            group.bench_with_input(
                BenchmarkId::new(format!("{kernel:?}"), format!("{sparsity}%")),
                &input,
                |b, input| {
                    b.iter(|| kernels::potentials(&layer, w, kernel, input, &mut scratch)[0])
                },
            );
        }
        // Fast kernel: the whole layer (product, then activation into levels).
        group.bench_with_input(
            BenchmarkId::new(format!("Fast-{}", simd.name()), format!("{sparsity}%")),
            &input,
            |b, input| {
                b.iter(|| {
                    let buf = fast::FastBuffers {
                        a: &mut a,
                        depthwise: &mut dw,
                        product: &mut product,
                        row: &mut row,
                    };
                    fast::run_layer(&fl, simd, input, buf, LayerOutputMut::Levels(&mut levels));
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
    let bytes = set.akida_model().to_akd_bytes().unwrap();
    let model = decode(&bytes).unwrap();
    let inputs = set.array("input_uint8");
    let image = &inputs.as_u8().unwrap()[..model.input().len()];
    let mut buffers = Buffers::for_model(&model);
    let mut group = c.benchmark_group("ds_cnn_kws_iq8_wq4_aq4_forward");
    group.throughput(Throughput::Elements(1));
    for kernel in [Kernel::Reference, Kernel::Event] {
        group.bench_function(format!("{kernel:?}"), |bench| {
            bench.iter(|| {
                let mut ws = buffers.workspace();
                let _ = forward(&model, image, &mut ws, kernel, |_, _| {}).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conv3x3, ds_cnn_kws);
criterion_main!(benches);
