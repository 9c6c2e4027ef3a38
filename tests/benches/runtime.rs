//! Host runtime throughput on a batch of 1000 images (all cores, per-layer
//! kernel choice) for the ds_cnn_kws reference model.
//!
//! `cargo bench -p akida-tests --bench runtime`

use akida_core::decode;
use akida_host::runtime::{KernelPolicy, Runtime};
use akida_tests::{data_dir, ReferenceSet};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn batch(c: &mut Criterion) {
    let mut set = ReferenceSet::open(
        &data_dir().join("reference/vectors"),
        "ds_cnn_kws_iq8_wq4_aq4",
    );
    let bytes = akida_host::formats::akd::to_bytes(&set.akida_model()).unwrap();
    let model = decode(&bytes).unwrap();
    let inputs = set.array("input_uint8");
    let one = inputs.as_u8().unwrap();
    let images: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(1000 * model.input().len())
        .collect();
    let mut group = c.benchmark_group("ds_cnn_kws_batch1000");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(10);
    for policy in [KernelPolicy::Auto, KernelPolicy::Fast, KernelPolicy::Event] {
        let rt = Runtime::new(&model, policy);
        group.bench_function(format!("{policy:?}/{}", rt.simd().name()), |b| {
            b.iter(|| rt.forward_batch(&images))
        });
    }
    group.finish();
}

/// ds_cnn_cifar10 from the zoo, quantized 4/4/4 and converted by us.
fn ds_cnn_cifar10(c: &mut Criterion) {
    use akida_host::cnn2snn::{self, QuantizeOptions};
    let float = akida_host::zoo::ds_cnn_cifar10(0).unwrap();
    let quantized = cnn2snn::quantize(&float, &QuantizeOptions::new(4, 4)).unwrap();
    let converted = cnn2snn::convert(&quantized, &Default::default())
        .unwrap()
        .model;
    let bytes = akida_host::formats::akd::to_bytes(&converted).unwrap();
    let model = decode(&bytes).unwrap();
    let mut rng = akida_host::keras::init::Rng::new(7);
    let images: Vec<u8> = (0..100 * model.input().len())
        .map(|_| (rng.next_u64() >> 56) as u8)
        .collect();
    let mut group = c.benchmark_group("ds_cnn_cifar10_444_batch100");
    group.throughput(Throughput::Elements(100));
    group.sample_size(10);
    for policy in [KernelPolicy::Auto, KernelPolicy::Fast] {
        let rt = Runtime::new(&model, policy);
        group.bench_function(format!("{policy:?}/{}", rt.simd().name()), |b| {
            b.iter(|| rt.forward_batch(&images))
        });
    }
    group.finish();
}

criterion_group!(benches, batch, ds_cnn_cifar10);
criterion_main!(benches);
