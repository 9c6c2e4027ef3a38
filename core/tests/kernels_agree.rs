//! The dense reference kernel and the event kernel agree, element for
//! element, on random layers of every kind: shapes, strides, paddings,
//! pooling, bit widths, padding values and input sparsities from 0 to 99 %.
//! The fast kernel (every instruction set this CPU has) agrees with them too.

use akida_core::inference::{
    run_layer, run_layer_band, run_layer_stacked, LayerBuffers, LayerOutputMut,
};
use akida_core::kernels::{self, fast};
use akida_core::weights::{pack_into, packed_len, value_range};
use akida_core::{
    Backend, Dims, F32Values, I32Values, Layer, LayerKind, LayerParams, LayerRef, Padding, Pooling,
    PrepBuffers, Preparation, Simd, ValidLayer, Window,
};
use proptest::prelude::*;

mod common;
use common::Bulk;

/// Everything that defines one random layer and its input: the layer's
/// parameters as core describes them, the bits and sparsity of its input,
/// and the seed of its variables.
#[derive(Clone, Debug)]
struct Case {
    params: LayerParams,
    input_bits: Option<u8>,
    sparsity: f64,
    seed: u64,
}

fn kind() -> impl Strategy<Value = LayerKind> {
    prop_oneof![
        Just(LayerKind::InputConvolutional),
        Just(LayerKind::Convolutional),
        Just(LayerKind::SeparableConvolutional),
        Just(LayerKind::FullyConnected),
    ]
}

fn window(max: u32) -> impl Strategy<Value = Window> {
    (1..=max, 1..=max).prop_map(|(r, c)| Window::new(r, c))
}

prop_compose! {
    fn case()(
        kind in kind(),
        rows in 1u32..12, cols in 1u32..12,
        // Past 16, 32, 64 and 96 too: SIMD kernels work on 16, 32 or 64 channels at
        // a time (the paired depthwise product: blocks of 64 with AVX-512,
        // then of 32, then the rest).
        channels in prop_oneof![3 => 1u32..10, 1 => 14u32..40, 1 => 60u32..70, 1 => 94u32..100],
        filters in 1u32..10,
        kernel in window(5), stride in window(3),
        same in any::<bool>(),
        padding_value in prop_oneof![Just(0u8), any::<u8>()],
        pool_kind in 0u8..3, pool_size in window(3), pool_stride in window(3),
        activation in any::<bool>(),
        act_bits in prop::sample::select(vec![1u8, 2, 4]),
        weight_bits in prop::sample::select(vec![2u8, 4, 8]),
        input_bits in prop::sample::select(vec![1u8, 2, 4]),
        sparsity in prop_oneof![Just(0.0), Just(0.5), Just(0.9), Just(0.99), 0.0f64..0.99],
        seed in 1u64..u64::MAX,
    ) -> Case {
        let is_input = kind == LayerKind::InputConvolutional;
        let is_fc = kind == LayerKind::FullyConnected;
        let channels = if is_input { if channels % 2 == 0 { 1 } else { 3 } } else { channels };
        let input = Dims::new(rows, cols, channels);
        let padding = if same && !is_fc { Padding::Same } else { Padding::Valid };
        // 'valid' needs the kernel to fit.
        let kernel = if is_fc { Window::ONE } else if padding == Padding::Valid {
            Window::new(kernel.rows.min(rows), kernel.cols.min(cols))
        } else { kernel };
        let stride = if is_fc { Window::ONE } else { stride };
        let conv = akida_core::dims::slide(input, kernel, stride, padding).unwrap();
        let pooling = match (is_fc, pool_kind) {
            (true, _) | (_, 0) => Pooling::None,
            (_, 1) => {
                let size = if padding == Padding::Valid {
                    Window::new(pool_size.rows.min(conv.rows), pool_size.cols.min(conv.cols))
                } else { pool_size };
                Pooling::Max { size, stride: pool_stride }
            }
            _ => Pooling::GlobalAverage,
        };
        Case {
            params: LayerParams {
                kind, input, filters, kernel, stride, padding,
                padding_value: if is_input { padding_value } else { 0 },
                pooling, activation, act_bits, weights_bits: weight_bits,
            },
            input_bits: if is_input { None } else { Some(input_bits) },
            sparsity, seed,
        }
    }
}

prop_compose! {
    /// A separable layer wide enough for the split byte product
    /// ([`fast::SPLIT_MIN`] channels and filters or more), from the
    /// geometry of a convolutional or separable case.
    fn wide_separable_case()(
        c in case().prop_filter("a convolution's geometry", |c| {
            matches!(c.params.kind, LayerKind::Convolutional | LayerKind::SeparableConvolutional)
        }),
        channels in 128u32..200,
        filters in 128u32..160,
    ) -> Case {
        let mut c = c;
        let p = &mut c.params;
        p.kind = LayerKind::SeparableConvolutional;
        p.input = Dims::new(p.input.rows, p.input.cols, channels);
        p.filters = filters;
        c
    }
}

/// Owned bytes of a case's layer variables and input.
struct Built {
    weights: Vec<u8>,
    weights_pw: Option<Vec<u8>>,
    threshold: Vec<u8>,
    act_step: Vec<u8>,
    input: Vec<u8>,
}

fn random_weights(rng: &mut Bulk, n: usize, bits: u8) -> Vec<u8> {
    let (lo, hi) = value_range(bits);
    // Engine weights are symmetric (-kmax..kmax); use the full range anyway.
    let values: Vec<i8> = (0..n)
        .map(|_| (lo as i64 + rng.below((hi as i64 - lo as i64 + 1) as u64) as i64) as i8)
        .collect();
    let mut buf = vec![0u8; packed_len(n, bits)];
    pack_into(&values, bits, &mut buf).unwrap();
    buf
}

fn shapes(c: &Case) -> ([u32; 4], Option<[u32; 4]>) {
    let (kh, kw, cin, f) = (
        c.params.kernel.rows,
        c.params.kernel.cols,
        c.params.input.channels,
        c.params.filters,
    );
    match c.params.kind {
        LayerKind::InputConvolutional | LayerKind::Convolutional => ([kh, kw, cin, f], None),
        LayerKind::SeparableConvolutional => ([kh, kw, cin, 1], Some([1, 1, cin, f])),
        LayerKind::FullyConnected => ([1, 1, c.params.input.len() as u32, f], None),
    }
}

fn build(c: &Case) -> Built {
    let mut rng = Bulk::new(c.seed);
    let (main, pw) = shapes(c);
    let count = |s: [u32; 4]| s.iter().map(|&d| d as usize).product::<usize>();
    let weights = random_weights(&mut rng, count(main), c.params.weights_bits);
    let weights_pw = pw.map(|s| random_weights(&mut rng, count(s), c.params.weights_bits));
    let f = c.params.filters as usize;
    let threshold: Vec<u8> = (0..f)
        .flat_map(|_| (rng.below(2001) as i32 - 1000).to_le_bytes())
        .collect();
    // Steps whose level cuts fit 16 bits (the fast kernel's narrow count),
    // steps that do not, or both in one layer.
    let wide = rng.below(3);
    let act_step: Vec<u8> = (0..f)
        .flat_map(|_| {
            let top = match wide {
                0 => 1600,
                1 => 1 << 22,
                _ => [1600, 1 << 22][rng.below(2) as usize],
            };
            ((1.0 + rng.below(top) as f32) / 16.0).to_le_bytes()
        })
        .collect();
    let max_input = match c.input_bits {
        None => 255,
        Some(b) => (1u64 << b) - 1,
    };
    let input = (0..c.params.input.len())
        .map(|_| {
            if rng.unit() < c.sparsity {
                0
            } else {
                1 + rng.below(max_input) as u8
            }
        })
        .collect();
    Built {
        weights,
        weights_pw,
        threshold,
        act_step,
        input,
    }
}

fn layer<'a>(c: &Case, b: &'a Built) -> LayerRef<'a> {
    Layer {
        name: "random",
        params: c.params,
        weights: &b.weights,
        weights_pw: b.weights_pw.as_deref(),
        threshold: I32Values(&b.threshold),
        act_step: F32Values(&b.act_step),
    }
}

/// A case's layer checked on its own, with its input range.
fn valid<'b>(c: &Case, b: &'b Built) -> ValidLayer<'b> {
    let max_input = c.input_bits.map_or(255, |b| (1u32 << b) - 1);
    ValidLayer::new(layer(c, b), max_input).expect("random layers are valid")
}

/// Buffers for one layer of any backend.
struct Buffers {
    weights: Vec<i8>,
    packed: Vec<i16>,
    cuts: Vec<i32>,
    scratch: Vec<i32>,
    a: Vec<i16>,
    row: Vec<i32>,
}

impl Buffers {
    fn of(layer: &ValidLayer) -> Buffers {
        let p = layer.params();
        let plan = fast::FastPlan::sizes(layer);
        Buffers {
            weights: vec![0; p.unpacked_len()],
            packed: vec![0; plan.packed_len],
            cuts: vec![0; plan.cuts_len],
            scratch: vec![0; p.scratch_len(&layer.shapes).max(plan.scratch_len())],
            a: vec![0; plan.a_len],
            row: vec![0; plan.gemm.f_pad],
        }
    }
}

/// Conv-part potentials (`None` for the fast kernel, whose potentials are
/// laid out otherwise) and final outputs (levels, potentials) of one
/// backend, and the backend that actually ran the layer.
type Outputs = (Option<Vec<i32>>, Vec<u8>, Vec<i32>, Backend);

fn run(layer: &ValidLayer, input: &[u8], backend: Backend) -> Outputs {
    let mut b = Buffers::of(layer);
    let mut prep = PrepBuffers {
        weights: &mut b.weights,
        packed: &mut b.packed,
        cuts: &mut b.cuts,
    };
    let prepared = backend.prepare(0, layer, input, &mut prep).unwrap();
    let potentials = (prepared.fast.is_none()).then(|| {
        let cells = layer.shapes.conv.rows as usize * layer.shapes.conv.cols as usize;
        let grid = kernels::potentials(layer, &prepared, input, 0..cells, &mut b.a, &mut b.scratch);
        grid.potentials[..layer.shapes.conv.len()].to_vec()
    });
    let buffers = LayerBuffers {
        scratch: &mut b.scratch,
        a: &mut b.a,
        row: &mut b.row,
    };
    let (levels, out) = run_prepared(layer, &prepared, input, buffers);
    (potentials, levels, out, prepared.backend)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn reference_and_event_kernels_agree(c in case()) {
        let b = build(&c);
        let l = valid(&c, &b);
        let reference = run(&l, &b.input, Backend::Reference);
        let event = run(&l, &b.input, Backend::Event);
        prop_assert_eq!(&reference.0, &event.0, "conv potentials differ for {:?}", c);
        prop_assert_eq!(&reference.1, &event.1, "levels differ for {:?}", c);
        prop_assert_eq!(&reference.2, &event.2, "potentials differ for {:?}", c);
        for simd in Simd::available() {
            let (_, levels, out, ran) = run(&l, &b.input, Backend::Fast(simd));
            // Operands beyond 16 bits fall back to the event kernel.
            prop_assert!(ran == Backend::Fast(simd) || ran == Backend::Event);
            prop_assert_eq!(&reference.1, &levels, "fast {} levels differ for {:?}", simd.name(), c);
            prop_assert_eq!(&reference.2, &out, "fast {} potentials differ for {:?}", simd.name(), c);
        }
    }
}

/// A non-zero padding value makes padded cells events: with an all-zero
/// image, the event kernel must still see the padding.
#[test]
fn padding_value_cells_are_events() {
    let c = Case {
        params: LayerParams {
            kind: LayerKind::InputConvolutional,
            kernel: Window::new(3, 3),
            padding: Padding::Same,
            padding_value: 127,
            act_bits: 4,
            weights_bits: 8,
            ..LayerParams::fully_connected(Dims::new(3, 3, 1), 1, 8)
        },
        input_bits: None,
        sparsity: 1.0,
        seed: 7,
    };
    let mut b = build(&c);
    b.input.fill(0);
    let mut w = vec![0u8; 9];
    pack_into(&[1; 9], 8, &mut w).unwrap();
    b.weights = w;
    let l = valid(&c, &b);
    let (reference, _, _, _) = run(&l, &b.input, Backend::Reference);
    let (event, _, _, _) = run(&l, &b.input, Backend::Event);
    // Corner output sees 5 padded cells, edge 3, centre 0.
    assert_eq!(
        reference,
        Some(vec![635, 381, 635, 381, 0, 381, 635, 381, 635])
    );
    assert_eq!(event, reference);
}

/// Runs a prepared layer on `input`: its levels (all zero without
/// activation) and its potentials (all zero with activation).
fn run_prepared(
    layer: &ValidLayer,
    prepared: &kernels::Prepared,
    input: &[u8],
    buffers: LayerBuffers,
) -> (Vec<u8>, Vec<i32>) {
    let n = layer.output_len();
    let (mut levels, mut out) = (vec![0u8; n], vec![0i32; n]);
    let out_buf = if layer.params().activation {
        LayerOutputMut::Levels(&mut levels)
    } else {
        LayerOutputMut::Potentials(&mut out)
    };
    run_layer(layer, prepared, input, buffers, out_buf).unwrap();
    (levels, out)
}

/// Final outputs (levels, potentials) of the fast kernel with the byte
/// product wherever `simd` runs it exactly ([`fast::FastPlan::with_dot`]),
/// and whether the layer took it; `None` where the fast kernel does not
/// apply (operands beyond 16 bits).
fn run_byte_product(
    layer: &ValidLayer,
    input: &[u8],
    simd: Simd,
) -> Option<(Vec<u8>, Vec<i32>, bool)> {
    let mut b = Buffers::of(layer);
    let weights = kernels::unpack_weights(layer, &mut b.weights);
    let plan = fast::FastPlan::of(layer, &weights)?.with_dot(layer, &weights, simd, true);
    let ops = fast::FastOperands::build(layer, plan, &weights, &mut b.packed, &mut b.cuts);
    let prepared = kernels::Prepared {
        backend: Backend::Fast(simd),
        weights,
        fast: Some(ops),
    };
    let buffers = LayerBuffers {
        scratch: &mut b.scratch,
        a: &mut b.a,
        row: &mut b.row,
    };
    let (levels, out) = run_prepared(layer, &prepared, input, buffers);
    Some((levels, out, plan.dot != fast::Dot::I16))
}

/// Runs case `c` with the byte product on every instruction set this CPU
/// runs: levels and potentials equal the reference kernel's, and whether
/// the layer took the byte product is one `accepts(simd, took)` allows.
fn byte_product_agrees(
    c: &Case,
    accepts: impl Fn(Simd, bool) -> bool,
) -> Result<(), TestCaseError> {
    let b = build(c);
    let l = valid(c, &b);
    let reference = run(&l, &b.input, Backend::Reference);
    for simd in Simd::available() {
        let Some((levels, out, took)) = run_byte_product(&l, &b.input, simd) else {
            continue;
        };
        prop_assert!(
            accepts(simd, took),
            "{} took the byte product: {}",
            simd.name(),
            took
        );
        prop_assert_eq!(
            &reference.1,
            &levels,
            "{} byte levels differ for {:?}",
            simd.name(),
            c
        );
        prop_assert_eq!(
            &reference.2,
            &out,
            "{} byte potentials differ for {:?}",
            simd.name(),
            c
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// The byte product (u8 x s8) of every instruction set this CPU runs
    /// equals the reference kernel, and is taken wherever it applies: on
    /// every instruction set (separable layers this narrow keep the 16-bit
    /// product: fewer than fast::SPLIT_MIN channels); only AVX2 may decline
    /// (pairs that could saturate 16 bits).
    #[test]
    fn byte_product_kernels_agree(c in case()) {
        let bytes = c.params.kind != LayerKind::SeparableConvolutional;
        byte_product_agrees(&c, |simd, took| took == bytes || (bytes && simd.name() == "avx2"))?;
    }
}

/// The split byte product of separable layers ([`fast::split_product`])
/// equals the 16-bit product on potentials with a few high parts (some rows
/// clean, some with several, at both ends of the 16-bit range, and odd K
/// and F), for 2-, 4- and 8-bit weights, and declines where high parts are
/// dense.
#[test]
fn split_byte_product_equals_the_sixteen_bit_product() {
    let mut rng = Bulk::new(7);
    for (rows, k, f, bits) in [
        (9, 37, 45, 4),
        (16, 130, 70, 8),
        (5, 8, 3, 2),
        (13, 512, 33, 4),
        // Wide enough for AMX tiles (full and partial 16-row tiles).
        (37, 160, 130, 4),
        (16, 256, 128, 8),
        // K of 37 quads: too few bytes per tile step for AMX tiles, whose
        // instruction set then splits as AVX-512 does.
        (20, 148, 128, 4),
    ] {
        let g = fast::Gemm::new(rows, k, f);
        let half = 1i64 << (bits - 1);
        let w: Vec<i8> = (0..k * f)
            .map(|_| (rng.below(2 * half as u64) as i64 - half) as i8)
            .collect();
        let max_w = half;
        let i16_quads = (i16::MAX as i64 / (2 * 255 * max_w)) as u32;
        let packed = |simd: Simd| {
            let mut b = vec![0i16; g.k_pad * g.f_pad + fast::split_quads_len(&g)];
            fast::pack_b_split(fast::ByteLayout::of(simd, &g), &g, &w, &mut b);
            b
        };
        let mut offsets = vec![0i32; g.f_pad];
        fast::split_offsets(&g, &w, &mut offsets);
        // Per mille of potentials with a high part (on two rows in three),
        // or (2000) every potential of row 1 and none elsewhere: more high
        // pairs in a row than one pass of the correction takes.
        for high_share in [0u64, 1, 20, 1000, 2000] {
            let mut a = vec![0i16; rows * g.k_pad];
            for (r, row) in a.chunks_exact_mut(g.k_pad).enumerate() {
                for v in &mut row[..k] {
                    let is_high = match high_share {
                        2000 => r == 1,
                        share => r % 3 != 0 && rng.below(1000) < share,
                    };
                    *v = if is_high {
                        // A high part: anywhere in the 16-bit range.
                        [i16::MIN + 1, i16::MAX, -129, 128, -5000, 3000][rng.below(6) as usize]
                    } else {
                        rng.below(256) as i16 - 128
                    };
                }
            }
            let mut want = vec![0i32; rows * g.f_pad];
            for (row, out) in a.chunks_exact(g.k_pad).zip(want.chunks_exact_mut(g.f_pad)) {
                for (kk, &d) in row[..k].iter().enumerate() {
                    for (col, o) in out[..f].iter_mut().enumerate() {
                        *o = o.wrapping_add(d as i32 * w[kk * f + col] as i32);
                    }
                }
            }
            for simd in Simd::available() {
                if simd.name() == "avx2" && i16_quads == 0 {
                    continue;
                }
                let b = packed(simd);
                let split = fast::Split {
                    b: &b,
                    offsets: &offsets,
                    i16_quads,
                };
                let mut low = vec![0u8; 2 * rows * g.k4];
                let mut got = vec![i32::MIN; rows * g.f_pad];
                let taken = fast::split_product(simd, &g, &split, &a, &mut low, &mut got);
                let high = a.iter().filter(|&&d| !(-128..=127).contains(&d)).count();
                let dense = high * fast::SPLIT_VALUES_PER_HIGH > rows * g.k_pad;
                // Where high parts are dense, AMX tiles multiply both bytes
                // of every potential (if the product suits them).
                let tiles = simd.name() == "amx" && amx_suits(&g);
                assert_eq!(taken, !dense || tiles, "{} {rows}x{k}x{f}", simd.name());
                if taken {
                    for (r, (gr, wr)) in got.chunks(g.f_pad).zip(want.chunks(g.f_pad)).enumerate() {
                        assert_eq!(
                            &gr[..f],
                            &wr[..f],
                            "{} row {r} share {high_share}",
                            simd.name()
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

    /// Wide separable layers take the split byte product on every
    /// instruction set but plain Rust (AVX2 only where its 16-bit sums
    /// cannot saturate: not with 8-bit pointwise weights) and equal the
    /// reference kernel; inputs of every density, so that some images fall
    /// back to the 16-bit product.
    #[test]
    fn split_product_layers_agree(c in wide_separable_case()) {
        let eight_bit = c.params.weights_bits == 8;
        byte_product_agrees(&c, |simd, took| {
            took == (simd.name() != "portable" && !(simd.name() == "avx2" && eight_bit))
        })?;
    }
}

/// Whether AMX tiles take byte product `g`.
fn amx_suits(g: &fast::Gemm) -> bool {
    #[cfg(target_arch = "x86_64")]
    return fast::amx::suits(g);
    #[cfg(not(target_arch = "x86_64"))]
    return g.k == usize::MAX;
}

/// The byte product of every instruction set equals the portable one on
/// every shape its tiling meets: rows from 1 to 50 (AMX: full 16-row tiles,
/// pairs of them, and a configuration for the rows left), K from 1 to 400
/// (tile steps of 64 bytes, of a divisor of K, and K the AMX tiles decline),
/// 1 to 300 filters, full byte ranges.
#[test]
fn byte_product_equals_the_portable_one_on_every_shape() {
    let mut rng = Bulk::new(11);
    let shapes = (0..60).map(|i| match i {
        0 => (1, 1, 1),
        1 => (50, 256, 128),
        2 => (33, 136, 160),
        3 => (16, 300, 200),
        4 => (1, 128, 128),
        _ => (
            1 + rng.below(50) as usize,
            1 + rng.below(400) as usize,
            1 + rng.below(300) as usize,
        ),
    });
    for (rows, k, f) in shapes.collect::<Vec<_>>() {
        let g = fast::Gemm::new(rows, k, f);
        let mut a = vec![0u8; rows * g.k4];
        for row in a.chunks_exact_mut(g.k4) {
            for v in &mut row[..k] {
                *v = rng.below(256) as u8;
            }
        }
        let w: Vec<i8> = (0..k * f).map(|_| rng.below(256) as u8 as i8).collect();
        let mut b = vec![0i8; g.k4 * g.f_pad];
        fast::pack_b_u8(&g, &w, &mut b);
        let mut want = vec![0i32; rows * g.f_pad];
        fast::gemm_u8_portable(&g, &a, &b, &mut want);
        for simd in Simd::available() {
            if simd.name() == "avx2" {
                continue; // Its 16-bit sums need bounded operands (tested above).
            }
            let mut b = vec![0i8; g.k4 * g.f_pad];
            fast::pack_b_bytes(fast::ByteLayout::of(simd, &g), &g, &w, &mut b);
            let mut got = vec![i32::MIN; rows * g.f_pad];
            fast::gemm_u8(simd, &g, 0, &a, &b, &mut got);
            assert_eq!(got, want, "{} {rows}x{k}x{f}", simd.name());
        }
    }
}

/// The output of one layer run as bands of output rows ([`run_layer_band`],
/// each into its own slice of the output, with buffers of its own), the
/// bands cut at `cuts` (sorted, inside the output rows): levels and
/// potentials; `None` where the layer cannot run in bands (a global
/// average), which must be exactly where the tail says so.
fn run_bands(
    layer: &ValidLayer,
    input: &[u8],
    simd: Simd,
    cuts: &[usize],
) -> Option<(Vec<u8>, Vec<i32>)> {
    let mut b = Buffers::of(layer);
    let mut prep = PrepBuffers {
        weights: &mut b.weights,
        packed: &mut b.packed,
        cuts: &mut b.cuts,
    };
    let backend = Backend::Fast(simd);
    let prepared = backend.prepare(0, layer, input, &mut prep).unwrap();
    prepared.fast.as_ref()?;
    let rows = layer.shapes.output.rows as usize;
    let per_row = layer.shapes.output.cols as usize * layer.params().filters as usize;
    let bounds: Vec<usize> = core::iter::once(0)
        .chain(cuts.iter().copied())
        .chain([rows])
        .collect();
    let n = layer.output_len();
    let (mut levels, mut out) = (vec![0u8; n], vec![i32::MIN; n]);
    for w in bounds.windows(2) {
        let band = w[0]..w[1];
        if band.is_empty() {
            continue;
        }
        let cells = akida_core::tail::band_cells(layer, band.clone());
        let global = matches!(layer.params().pooling, Pooling::GlobalAverage);
        assert_eq!(
            cells.is_none(),
            global,
            "bands refused only for a global average"
        );
        let mut own = Buffers::of(layer);
        let buffers = LayerBuffers {
            scratch: &mut own.scratch,
            a: &mut own.a,
            row: &mut own.row,
        };
        let range = band.start * per_row..band.end * per_row;
        let out_buf = if layer.params().activation {
            LayerOutputMut::Levels(&mut levels[range])
        } else {
            LayerOutputMut::Potentials(&mut out[range])
        };
        // The band reads only its input bytes (band_input): every other
        // byte is changed to another valid level.
        let mut own_input = input.to_vec();
        if let Some(cells) = cells.clone() {
            let keep = akida_core::tail::band_input(layer, cells);
            for (i, v) in own_input.iter_mut().enumerate() {
                if !keep.contains(&i) {
                    *v = if *v == 0 { layer.max_input as u8 } else { 0 };
                }
            }
        }
        let ran = run_layer_band(layer, &prepared, &own_input, band, buffers, out_buf);
        assert_eq!(ran.is_ok(), cells.is_some(), "{ran:?}");
        ran.ok()?;
    }
    Some((levels, out))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// A layer run as bands of its output rows (one image's layer split
    /// over cores) gives what the whole layer gives, for every instruction
    /// set, pooling and cut; global averages refuse bands.
    #[test]
    fn bands_of_output_rows_equal_the_whole_layer(
        c in case(),
        cut_seed in any::<u64>(),
    ) {
        let b = build(&c);
        let l = valid(&c, &b);
        let reference = run(&l, &b.input, Backend::Reference);
        let rows = l.shapes.output.rows as usize;
        let mut rng = Bulk::new(cut_seed);
        let mut cuts: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(rows as u64 + 1) as usize).collect();
        cuts.sort();
        for simd in Simd::available() {
            // None: no fast operands (beyond 16 bits), or a global average.
            let Some((levels, out)) = run_bands(&l, &b.input, simd, &cuts) else {
                continue;
            };
            if l.params().activation {
                prop_assert_eq!(&reference.1, &levels, "{} band levels, cuts {:?}, {:?}", simd.name(), &cuts, c);
            } else {
                prop_assert_eq!(&reference.2, &out, "{} band potentials, cuts {:?}, {:?}", simd.name(), &cuts, c);
            }
        }
    }
}

/// Another input for case `c`'s layer, drawn as [`build`] draws one.
fn another_input(c: &Case, seed: u64) -> Vec<u8> {
    let mut rng = Bulk::new(seed);
    let max_input = c.input_bits.map_or(255, |b| (1u64 << b) - 1);
    (0..c.params.input.len())
        .map(|_| match rng.unit() < c.sparsity {
            true => 0,
            false => 1 + rng.below(max_input) as u8,
        })
        .collect()
}

/// Case `c`'s layer run on `count` inputs as one stack (one product for
/// all of them) gives what each input gives alone, for every instruction
/// set, with the 16-bit product and with the byte products.
fn stacked_agrees(c: &Case, count: usize, seed: u64) -> Result<(), TestCaseError> {
    let b = build(c);
    let l = valid(c, &b);
    let inputs: Vec<Vec<u8>> = core::iter::once(b.input.clone())
        .chain((1..count).map(|j| another_input(c, seed ^ j as u64)))
        .collect();
    let references: Vec<Outputs> = inputs
        .iter()
        .map(|x| run(&l, x, Backend::Reference))
        .collect();
    let n = l.output_len();
    // The 16-bit product, and the byte products where `simd` runs them.
    for (simd, bytes) in Simd::available()
        .into_iter()
        .flat_map(|s| [(s, false), (s, true)])
    {
        let mut own = Buffers::of(&l);
        let weights = kernels::unpack_weights(&l, &mut own.weights);
        let Some(plan) = fast::FastPlan::of(&l, &weights) else {
            continue; // Operands beyond 16 bits: no fast kernel.
        };
        let plan = match bytes {
            true => plan.with_dot(&l, &weights, simd, true),
            false => plan,
        };
        let ops = fast::FastOperands::build(&l, plan, &weights, &mut own.packed, &mut own.cuts);
        let prepared = kernels::Prepared {
            backend: Backend::Fast(simd),
            weights,
            fast: Some(ops),
        };
        let mut scratch = vec![0i32; count * plan.scratch_len()];
        let mut a = vec![0i16; count * plan.a_len];
        let mut row = vec![0i32; plan.gemm.f_pad];
        let mut levels = vec![0u8; count * n];
        let mut potentials = vec![i32::MIN; count * n];
        let mut outs: Vec<LayerOutputMut> = match l.params().activation {
            true => levels
                .chunks_exact_mut(n)
                .map(LayerOutputMut::Levels)
                .collect(),
            false => potentials
                .chunks_exact_mut(n)
                .map(LayerOutputMut::Potentials)
                .collect(),
        };
        let views: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let buffers = LayerBuffers {
            scratch: &mut scratch,
            a: &mut a,
            row: &mut row,
        };
        run_layer_stacked(&l, &prepared, &views, buffers, &mut outs).unwrap();
        drop(outs);
        for (j, reference) in references.iter().enumerate() {
            if l.params().activation {
                prop_assert_eq!(
                    &reference.1[..],
                    &levels[j * n..][..n],
                    "{} {:?} input {} levels, {:?}",
                    simd.name(),
                    plan.dot,
                    j,
                    c
                );
            } else {
                prop_assert_eq!(
                    &reference.2[..],
                    &potentials[j * n..][..n],
                    "{} {:?} input {} potentials, {:?}",
                    simd.name(),
                    plan.dot,
                    j,
                    c
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Several inputs run as one stack give what each input gives alone.
    #[test]
    fn stacked_inputs_equal_each_input_alone(
        c in case(),
        count in 1usize..5,
        seed in any::<u64>(),
    ) {
        stacked_agrees(&c, count, seed)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 30, ..ProptestConfig::default() })]

    /// The same for wide separable layers (the split byte product).
    #[test]
    fn stacked_wide_separable_inputs_equal_each_input_alone(
        c in wide_separable_case(),
        count in 1usize..4,
        seed in any::<u64>(),
    ) {
        stacked_agrees(&c, count, seed)?;
    }
}

/// The start-up check of the byte product passes on every instruction set
/// this CPU runs (a kernel failing it here is a bug, not a CPU quirk).
#[test]
fn every_byte_product_passes_its_self_check() {
    for simd in Simd::available() {
        assert!(fast::self_check_u8(simd), "{} byte product", simd.name());
    }
}

/// The instruction sets named in `AKIDA_EXPECT_SIMD` (comma-separated) are
/// offered by [`Simd::available`], so that the tests looping over it really
/// run their kernels: scripts/test.sh names the NEON ones when it runs these
/// tests on an emulated aarch64 CPU. Nothing to check without the variable.
#[test]
fn expected_instruction_sets_are_available() {
    let Ok(names) = std::env::var("AKIDA_EXPECT_SIMD") else {
        return;
    };
    let available: Vec<&str> = Simd::available().iter().map(|s| s.name()).collect();
    for name in names.split(',').filter(|n| !n.is_empty()) {
        assert!(available.contains(&name), "{name} not in {available:?}");
    }
}

/// The AVX2 byte product widens its 16-bit lanes every `i16_quads` quads:
/// a long K with 4-bit inputs and weights at their extremes (every pair at
/// its bound) crosses several widenings and must still be exact.
#[test]
fn byte_product_at_the_sixteen_bit_bound_is_exact() {
    let (rows, k, f) = (5usize, 1000usize, 33usize);
    let g = fast::Gemm::new(rows, k, f);
    let a = vec![15u8; rows * g.k4];
    let w = vec![-8i8; k * f];
    let i16_quads = (i16::MAX as i64 / (2 * 15 * 8)) as u32;
    for simd in Simd::available() {
        let mut b = vec![0i8; g.k4 * g.f_pad];
        fast::pack_b_bytes(fast::ByteLayout::of(simd, &g), &g, &w, &mut b);
        let mut out = vec![0i32; rows * g.f_pad];
        fast::gemm_u8(simd, &g, i16_quads, &a, &b, &mut out);
        for row in out.chunks_exact(g.f_pad) {
            assert!(
                row[..f].iter().all(|&v| v == -15 * 8 * k as i32),
                "{}",
                simd.name()
            );
            assert!(row[f..].iter().all(|&v| v == 0), "{}", simd.name());
        }
    }
}

/// The case recorded in `kernels_agree.proptest-regressions` (an input
/// convolution of one 1x1x3 image cell, one filter, 4-bit weights holding
/// the asymmetric extreme -8, raw potentials), written out so that it stays
/// checked whatever becomes of the generator the seed replays through:
/// every backend and instruction set, 16-bit and byte products, and the
/// weight widths around it.
#[test]
fn recorded_input_convolution_case_agrees() {
    for weight_bits in [2, 4, 8] {
        for seed in 1..200 {
            let c = Case {
                // A one-cell window over one cell: the input convolution
                // has the fully connected layer's geometry.
                params: LayerParams {
                    kind: LayerKind::InputConvolutional,
                    ..LayerParams::fully_connected(Dims::new(1, 1, 3), 1, weight_bits)
                },
                input_bits: None,
                sparsity: 0.0,
                seed,
            };
            let b = build(&c);
            let l = valid(&c, &b);
            let reference = run(&l, &b.input, Backend::Reference);
            // The definition, by hand: one output, three products.
            let mut w = vec![0i8; 3];
            kernels::unpack_weights(&l, &mut w);
            let want: i32 = (0..3).map(|i| b.input[i] as i32 * w[i] as i32).sum();
            assert_eq!(reference.2, vec![want], "{c:?}");
            assert_eq!(
                run(&l, &b.input, Backend::Event).2,
                reference.2,
                "event {c:?}"
            );
            for simd in Simd::available() {
                let fast = run(&l, &b.input, Backend::Fast(simd));
                assert_eq!(fast.2, reference.2, "{} {c:?}", simd.name());
                let (_, out, took) = run_byte_product(&l, &b.input, simd).unwrap();
                assert!(took || (weight_bits == 8 && simd.name() == "avx2"));
                assert_eq!(out, reference.2, "{} byte product {c:?}", simd.name());
            }
        }
    }
}

/// A fully connected layer's potentials saturate at 20 bits before the
/// activation: filters whose potentials pass `±2^19` by design, with
/// thresholds near the saturated values, give levels that differ with and
/// without the saturation; every instruction set's fast kernel, in both
/// precisions of the scaled levels (`act_step` 1,000 and 20,000), gives the
/// reference kernel's.
#[test]
fn saturated_fully_connected_levels_agree() {
    const INPUTS: usize = 300;
    const FILTERS: usize = 8;
    for act_step in [1000.0f32, 20000.0] {
        let c = Case {
            params: LayerParams {
                activation: true,
                act_bits: 4,
                ..LayerParams::fully_connected(Dims::new(1, 1, INPUTS as u32), FILTERS as u32, 8)
            },
            input_bits: Some(4),
            sparsity: 0.0,
            seed: 11,
        };
        let mut b = build(&c);
        b.input.fill(15);
        // Even filters sum +127 per input, odd ones -128: potentials of
        // +-571,500 and -576,000, beyond the 20-bit range.
        let w: Vec<i8> = (0..INPUTS * FILTERS)
            .map(|i| {
                if (i % FILTERS).is_multiple_of(2) {
                    127
                } else {
                    -128
                }
            })
            .collect();
        pack_into(&w, 8, &mut b.weights).unwrap();
        let s16 = 16.0 * act_step as f64;
        let threshold: Vec<i32> = (0..FILTERS)
            .map(|f| match f % 2 {
                // Saturated at 524,287: a level below 15, unsaturated 15.
                0 => 524_287 - (s16 * (2 + f) as f64 / 16.0) as i32,
                // Saturated at -524,288: above the threshold, unsaturated below.
                _ => -524_288 - 1 - f as i32 * 100,
            })
            .collect();
        b.threshold = threshold.iter().flat_map(|t| t.to_le_bytes()).collect();
        b.act_step = (0..FILTERS).flat_map(|_| act_step.to_le_bytes()).collect();
        let l = valid(&c, &b);
        let (potentials, levels, _, _) = run(&l, &b.input, Backend::Reference);
        // The test can fail: without the saturation every level differs.
        let divisor = akida_core::activation::step_divisor(act_step);
        for (f, &p) in potentials.unwrap().iter().enumerate() {
            let unsaturated = akida_core::activation::level(p, threshold[f], divisor, 4);
            assert_ne!(
                unsaturated, levels[f],
                "filter {f}: saturation changes nothing"
            );
        }
        for simd in Simd::available() {
            let (_, fast_levels, _, ran) = run(&l, &b.input, Backend::Fast(simd));
            assert_eq!(ran, Backend::Fast(simd));
            assert_eq!(fast_levels, levels, "{} act_step {act_step}", simd.name());
        }
    }
}
