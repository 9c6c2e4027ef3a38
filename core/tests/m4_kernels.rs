//! The Cortex-M4 kernels of `kernels::m4`, run here through their portable
//! model of the instructions (SMLAD, SXTB16, UXTB16, PKHBT/PKHTB, MLA,
//! SSAT/USAT/SDIV), agree with plain integer arithmetic: the GEMM on
//! weights rewritten into its layout at 8, 4 and 2 bits, the paired
//! depthwise kernel, and the division-free step activation against
//! `activation::level`. The same code, compiled for the M4, is checked
//! under QEMU (`tests/tests/firmware_qemu.rs`).

use akida_core::activation;
use akida_core::kernels::m4::{self, DwTable, CELLS, DW_BIAS};
use akida_core::kernels::ConvShape;
use akida_core::weights::value_range;
use akida_core::{Dims, Window};
use proptest::prelude::*;

mod common;
use common::Bulk;

/// Writes activation `v` at reduction index `k` of cell `slot` (the
/// kernels' `[unit][cell][2]` layout of 16-bit pairs).
fn put(block: &mut [u32], cells: usize, slot: usize, k: usize, v: i16) {
    let (u, q) = (k / 4, k % 4);
    let word = &mut block[(u * cells + slot) * 2 + (q & 1)];
    let shift = 16 * (q >> 1) as u32;
    *word = (*word & !(0xFFFF << shift)) | ((v as u16 as u32) << shift);
}

fn check_gemm<const N: usize>(bits: u8, k: usize, filters: usize, act_max: i64, seed: u64) {
    let mut rng = Bulk::new(seed);
    let (lo, hi) = value_range(bits);
    let w: Vec<i8> = (0..k * filters)
        .map(|_| rng.range(lo as i64, hi as i64) as i8)
        .collect();
    let a: Vec<i16> = (0..k * N)
        .map(|_| rng.range(-act_max, act_max) as i16)
        .collect();
    // Filters one after the other, plus four bytes an 8-bit filter may read past its end.
    let mut packed = vec![0u8; filters * m4::filter_bytes(k, bits) + 4];
    m4::write_gemm_layout(&mut packed, bits, k, filters, |kk, f| w[f * k + kk]);
    for f in 0..filters {
        for kk in 0..k {
            assert_eq!(m4::gemm_get(&packed, bits, k, f, kk), w[f * k + kk]);
        }
    }
    let units = m4::units(k);
    let mut block = vec![0u32; units * N * 2];
    for x in 0..N {
        for kk in 0..k {
            put(&mut block, N, x, kk, a[x * k + kk]);
        }
    }
    let words = m4::filter_words(k, bits);
    for f in 0..filters {
        let got = m4::gemm::<N>(
            bits,
            &packed[f * m4::filter_bytes(k, bits)..],
            words,
            &block,
        );
        for x in 0..N {
            let want: i64 = (0..k)
                .map(|kk| a[x * k + kk] as i64 * w[f * k + kk] as i64)
                .sum();
            assert_eq!(
                got[x] as i64,
                want << m4::shift(bits),
                "bits {bits} k {k} filter {f} cell {x}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn gemm_equals_dot_products(
        bits in prop::sample::select(vec![2u8, 4, 8]),
        words in 1usize..12,
        tail in 0usize..4,
        filters in 1usize..5,
        wide in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // 8-bit filters may end inside a word; 4- and 2-bit ones fill words.
        let k = words * m4::per_word(bits) - if bits == 8 { tail } else { 0 };
        let act_max = if wide { 4000 } else { 255 };
        check_gemm::<CELLS>(bits, k, filters, act_max, seed);
        check_gemm::<1>(bits, k, filters, act_max, seed);
    }

    #[test]
    fn paired_depthwise_equals_direct_sums(
        kh in 1u32..6, kw in 1u32..6, quads in 1usize..4, cols in 1u32..8,
        delta in 1usize..3, levels in prop::sample::select(vec![1i64, 3, 15, 255]),
        seed in any::<u64>(),
    ) {
        let mut rng = Bulk::new(seed);
        let c = 4 * quads;
        let shape = ConvShape {
            input: Dims::new(8, cols, c as u32),
            output: Dims::new(1, 1, c as u32),
            kernel: Window::new(kh, kw),
            stride: Window::ONE,
            pads: (0, 0),
        };
        let wcols = cols as usize + kw as usize;
        let rows = kh as usize + delta;
        let window: Vec<u8> = (0..rows * wcols * c + 4).map(|_| rng.range(0, levels) as u8).collect();
        let Some(mut table) = DwTable::new(&shape, wcols, delta) else {
            prop_assert!(kh * kw > m4::MAX_TAPS as u32);
            return Ok(());
        };
        // The kernel's precondition: every depthwise sum fits 16 bits.
        let wmax = (m4::DW_LIMIT / (levels * (kh * kw) as i64)).clamp(1, 8);
        let w: Vec<i32> = (0..(kh * kw) as usize * c).map(|_| rng.range(-wmax, wmax - 1) as i32).collect();
        for q in 0..quads {
            for t in 0..(kh * kw) as usize {
                table.set(t, [0, 1, 2, 3].map(|i| w[t * c + 4 * q + i]));
            }
            for x in 0..(wcols - kw as usize + 1) {
                let origin = x * c + 4 * q;
                if origin + table.reach() > window.len() {
                    continue;
                }
                let mut acc = [DW_BIAS; 4];
                m4::dw_pair(&window, origin, &table, &mut acc);
                let (a, b) = m4::dw_split(&acc);
                for (cell, words, row0) in [(0, a, 0usize), (1, b, delta)] {
                    for ch in 0..4 {
                        let mut want = 0i32;
                        for i in 0..kh as usize {
                            for j in 0..kw as usize {
                                let v = window[((row0 + i) * wcols + x + j) * c + 4 * q + ch];
                                want += v as i32 * w[(i * kw as usize + j) * c + 4 * q + ch];
                            }
                        }
                        // Activation pairs (c, c+2) and (c+1, c+3).
                        let got = m4::lane(words[ch & 1], ch >= 2);
                        prop_assert_eq!(got, want, "cell {} channel {} x {}", cell, 4 * q + ch, x);
                    }
                }
            }
        }
    }

    #[test]
    fn division_free_levels_equal_the_definition(
        p in -(1i32 << 25)..(1 << 25),
        t in -(1i32 << 25)..(1 << 25),
        d in 1i32..(1 << 25),
        near in any::<bool>(),
    ) {
        // Half the cases near the threshold, where the levels change.
        let p = if near { t.saturating_add(p % 4096) } else { p };
        let p = p.clamp(-(1 << 25), 1 << 25);
        for (bits, got) in [
            (1u8, m4::level_fast::<1>(p, t, d)),
            (2, m4::level_fast::<2>(p, t, d)),
            (4, m4::level_fast::<4>(p, t, d)),
        ] {
            prop_assert_eq!(got, activation::level(p, t, d as i64, bits), "bits {}", bits);
        }
    }
}

#[test]
fn saturation_matches_twenty_bits() {
    for v in [
        i32::MIN,
        -(1 << 19) - 1,
        -(1 << 19),
        0,
        (1 << 19) - 1,
        1 << 19,
        i32::MAX,
    ] {
        assert_eq!(m4::ssat20(v), akida_core::saturation::saturate(v as i64));
    }
}

#[test]
fn quad_weights_read_packed_tensors() {
    for bits in [2u8, 4, 8] {
        let (lo, hi) = value_range(bits);
        let values: Vec<i8> = (0..32)
            .map(|k| (lo as i32 + (k * 5) % (hi as i32 - lo as i32 + 1)) as i8)
            .collect();
        let mut packed = vec![0u8; 32];
        akida_core::weights::pack_into(&values, bits, &mut packed).unwrap();
        for idx in (0..32).step_by(4) {
            let want = [0, 1, 2, 3].map(|c| values[idx + c] as i32);
            assert_eq!(
                m4::quad_weights(&packed, bits, idx),
                want,
                "bits {bits} idx {idx}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn block_tail_equals_the_definition(
        filters in 1usize..9, pad in 0usize..3, shift in prop::sample::select(vec![0u32, 4, 6]),
        sat in any::<bool>(), seed in any::<u64>(),
    ) {
        let mut rng = Bulk::new(seed);
        let stride = filters + pad;
        let acc: Vec<i32> = (0..filters * CELLS).map(|_| (rng.range(-(1 << 21), 1 << 21) as i32) << shift).collect();
        let mut table = Vec::new();
        for _ in 0..filters {
            let d = rng.range(1, 1 << 12) as i32;
            table.extend([rng.range(-(1 << 20), 1 << 20) as i32, d, d - 1]);
        }
        for bits in [1u32, 2, 4] {
            let mut got = vec![0u8; (CELLS - 1) * stride + filters];
            match (bits, sat) {
                (1, true) => m4::tail_levels::<1, true>(&acc, &table, &mut got, stride, filters, shift),
                (2, true) => m4::tail_levels::<2, true>(&acc, &table, &mut got, stride, filters, shift),
                (4, true) => m4::tail_levels::<4, true>(&acc, &table, &mut got, stride, filters, shift),
                (1, false) => m4::tail_levels::<1, false>(&acc, &table, &mut got, stride, filters, shift),
                (2, false) => m4::tail_levels::<2, false>(&acc, &table, &mut got, stride, filters, shift),
                _ => m4::tail_levels::<4, false>(&acc, &table, &mut got, stride, filters, shift),
            }
            for f in 0..filters {
                for slot in 0..CELLS {
                    let mut p = acc[f * CELLS + slot] >> shift;
                    if sat {
                        p = akida_core::saturation::saturate(p as i64);
                    }
                    let want = activation::level(p, table[3 * f], table[3 * f + 1] as i64, bits as u8);
                    prop_assert_eq!(got[slot * stride + f], want, "bits {} filter {} slot {}", bits, f, slot);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn fused_levels_equal_gemm_then_tail(
        bits in prop::sample::select(vec![2u8, 4, 8]),
        words in 1usize..6, filters in 1usize..6, sat in any::<bool>(), seed in any::<u64>(),
    ) {
        let mut rng = Bulk::new(seed);
        let k = words * m4::per_word(bits);
        let (lo, hi) = value_range(bits);
        let w: Vec<i8> = (0..k * filters).map(|_| rng.range(lo as i64, hi as i64) as i8).collect();
        let mut packed = vec![0u8; filters * m4::filter_bytes(k, bits) + 4];
        m4::write_gemm_layout(&mut packed, bits, k, filters, |kk, f| w[f * k + kk]);
        let mut block = vec![0u32; m4::units(k) * CELLS * 2];
        for x in 0..CELLS {
            for kk in 0..k {
                put(&mut block, CELLS, x, kk, rng.range(0, 255) as i16);
            }
        }
        let mut table = Vec::new();
        for _ in 0..filters {
            let d = rng.range(1, 600) as i32;
            table.extend([rng.range(-3000, 3000) as i32, d, d - 1]);
        }
        let fb = m4::filter_bytes(k, bits);
        let mut acc = vec![0i32; filters * CELLS];
        m4::gemm_filters::<CELLS>(m4::Operands::new(bits, &packed, fb, words, filters, &block), &mut acc);
        let stride = filters + 3;
        let (mut want, mut got) = (vec![0u8; 5 * stride], vec![0u8; 5 * stride]);
        match sat {
            true => m4::tail_levels::<4, true>(&acc, &table, &mut want, stride, filters, m4::shift(bits)),
            false => m4::tail_levels::<4, false>(&acc, &table, &mut want, stride, filters, m4::shift(bits)),
        }
        match sat {
            true => m4::gemm_levels::<true>(m4::Operands::new(bits, &packed, fb, words, filters, &block), &table, &mut got, stride),
            false => m4::gemm_levels::<false>(m4::Operands::new(bits, &packed, fb, words, filters, &block), &table, &mut got, stride),
        }
        prop_assert_eq!(got, want);
    }
}
