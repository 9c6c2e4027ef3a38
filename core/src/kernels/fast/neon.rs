//! The byte product on aarch64 (ARM64 hosts) with the NEON dot-product
//! instructions, through `asm!` (their Rust intrinsics are unstable):
//!
//! - `sdot vD.4s, vB.16b, vA.4b[lane]` (FEAT_DotProd, Armv8.4-A and many
//!   8.2 cores): each of the four 32-bit lanes of `vD` gains the dot product
//!   of a quad of `vB` (one filter's four bytes of K, [`super::pack_b_u8`]'s
//!   layout) with the quad `lane` of `vA` (a row's four bytes of K), both
//!   signed. A holds u8, so the kernel multiplies `A ^ 0x80` (= `A - 128` as
//!   an s8) and adds `128 * sum_k B[k][f]` per filter, column sums it takes
//!   by the same instruction on a vector of ones before the rows;
//! - `sudot vD.4s, vB.16b, vA.4b[lane]` (FEAT_I8MM, Armv8.6-A): the same
//!   with the lane's quad unsigned, so A is used as it is.
//!
//! Exact: every step adds modulo 2^32, and `sum (a - 128) b + 128 sum b =
//! sum a b` holds modulo 2^32, so the results are those of
//! [`super::gemm_u8_portable`] (whose sums fit i32 for every layer the fast
//! kernel runs).
//!
//! A tile is [`ROWS`] rows of A times [`FILTERS`] filters, accumulated in 16
//! registers over the whole K, a 16-byte load of A per row and four of B per
//! four quads of K.

use super::{Gemm, TILE_F};
use core::arch::aarch64::*;
use core::arch::asm;

/// Filters per tile: four q registers of 4 filters x 4 bytes.
const FILTERS: usize = 16;
const _: () = assert!(TILE_F.is_multiple_of(FILTERS));
/// Rows of A per tile.
const ROWS: usize = 4;

/// `acc + B · A.quad[L]` per filter, signed x signed.
///
/// # Safety
/// The CPU must support the dot-product instructions.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn sdot<const L: i32>(acc: int32x4_t, b: int8x16_t, a: uint8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: the caller's contract; registers only.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {b:v}.16b, {a:v}.4b[{l}]",
            acc = inout(vreg) acc,
            b = in(vreg) b,
            a = in(vreg) a,
            l = const L,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `acc + B · A.quad[L]` per filter, B signed, A unsigned.
///
/// # Safety
/// The CPU must support the dot-product and int8 matrix instructions.
#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
unsafe fn sudot<const L: i32>(acc: int32x4_t, b: int8x16_t, a: uint8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: the caller's contract; registers only.
    unsafe {
        asm!(
            "sudot {acc:v}.4s, {b:v}.16b, {a:v}.4b[{l}]",
            acc = inout(vreg) acc,
            b = in(vreg) b,
            a = in(vreg) a,
            l = const L,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Checks the slices of a byte product.
fn check_u8(g: &Gemm, a: &[u8], b: &[i8], product: &[i32]) {
    assert!(a.len() >= g.rows * g.k4 && b.len() >= g.k4 * g.f_pad);
    assert!(product.len() >= g.rows * g.f_pad);
    assert!(g.f_pad.is_multiple_of(TILE_F) && g.k4.is_multiple_of(4));
}

/// The byte product with `sdot` on `A - 128`, plus `128 * sum_k B[k][f]`.
///
/// # Safety
/// The CPU must support the dot-product instructions (FEAT_DotProd).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn gemm_u8_sdot(g: &Gemm, a: &[u8], b: &[i8], product: &mut [i32]) {
    check_u8(g, a, b, product);
    // SAFETY: the caller's contract; slices checked above.
    unsafe { tiles::<false>(g, a, b, product) }
}

/// The byte product with `sudot` (u8 A x s8 B directly).
///
/// # Safety
/// The CPU must support the dot-product and int8 matrix instructions
/// (FEAT_DotProd, FEAT_I8MM).
#[target_feature(enable = "neon,dotprod,i8mm")]
pub unsafe fn gemm_u8_sudot(g: &Gemm, a: &[u8], b: &[i8], product: &mut [i32]) {
    check_u8(g, a, b, product);
    // SAFETY: the caller's contract; slices checked above.
    unsafe { tiles::<true>(g, a, b, product) }
}

/// The product in tiles: per block of [`FILTERS`] filters, its correction
/// (`sdot` only), then the rows [`ROWS`] at a time and the rows left in one
/// tile. `SU`: `sudot` on A, else `sdot` on `A ^ 0x80`.
///
/// # Safety
/// The CPU must support the instruction `SU` picks; slices checked by
/// [`check_u8`].
#[inline(always)]
unsafe fn tiles<const SU: bool>(g: &Gemm, a: &[u8], b: &[i8], product: &mut [i32]) {
    let (a, b, out) = (a.as_ptr(), b.as_ptr(), product.as_mut_ptr());
    for f0 in (0..g.f_pad).step_by(FILTERS) {
        // SAFETY: the caller's contract; every load and store below lies
        // inside the checked slices: A rows up to `rows`, bytes up to `k4`;
        // B quads up to `k4 / 4`, filters f0..f0 + 16 <= f_pad; the
        // product's rows and filters likewise.
        unsafe {
            let corr = match SU {
                true => [vdupq_n_s32(0); 4],
                false => correction(g, b, f0),
            };
            let mut r0 = 0;
            while r0 + ROWS <= g.rows {
                tile::<ROWS, SU>(g, a, b, out, r0, f0, corr);
                r0 += ROWS;
            }
            match g.rows - r0 {
                0 => {}
                1 => tile::<1, SU>(g, a, b, out, r0, f0, corr),
                2 => tile::<2, SU>(g, a, b, out, r0, f0, corr),
                3 => tile::<3, SU>(g, a, b, out, r0, f0, corr),
                _ => unreachable!("fewer rows left than ROWS"),
            }
        }
    }
}

/// `128 * sum_k B[k][f]` for the filters `f0..f0 + 16` (wrapping): the
/// column sums by `sdot` on a vector of ones.
///
/// # Safety
/// The CPU must support the dot-product instructions; B holds `k4 / 4`
/// quads of `f_pad` filters.
#[inline(always)]
unsafe fn correction(g: &Gemm, b: *const i8, f0: usize) -> [int32x4_t; 4] {
    // SAFETY: the caller's contract (B's quads up to k4 / 4, filters up to
    // f0 + 16 <= f_pad).
    unsafe {
        let ones = vdupq_n_u8(1);
        let mut sums = [vdupq_n_s32(0); 4];
        for q in 0..g.k4 / 4 {
            let bp = b.add((q * g.f_pad + f0) * 4);
            for (z, sum) in sums.iter_mut().enumerate() {
                *sum = sdot::<0>(*sum, vld1q_s8(bp.add(16 * z)), ones);
            }
        }
        sums.map(|s| vshlq_n_s32::<7>(s))
    }
}

/// `R` rows of A from `r0` times the filters `f0..f0 + 16`, plus `corr`,
/// into the product.
///
/// # Safety
/// As [`tiles`]; rows `r0..r0 + R` exist.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const SU: bool>(
    g: &Gemm,
    a: *const u8,
    b: *const i8,
    out: *mut i32,
    r0: usize,
    f0: usize,
    corr: [int32x4_t; 4],
) {
    // SAFETY: the caller's contract: A's rows r0..r0 + R hold k4 bytes,
    // read 16 at a time while 16 are left, then 4; B's quad q of the
    // filters f0.. holds 64 bytes at (q * f_pad + f0) * 4; the product's
    // rows hold f_pad cells.
    unsafe {
        // A as the instruction takes it: bit 7 flipped (A - 128) for sdot.
        let flip = vdupq_n_u8(if SU { 0 } else { 0x80 });
        let mut acc = [[vdupq_n_s32(0); 4]; R];
        let row = |r: usize| a.add((r0 + r) * g.k4);
        let quad_b = |q: usize| b.add((q * g.f_pad + f0) * 4);
        let steps = g.k4 / 16;
        for s in 0..steps {
            let av: [uint8x16_t; R] =
                core::array::from_fn(|r| veorq_u8(vld1q_u8(row(r).add(16 * s)), flip));
            lane::<R, 0, SU>(&mut acc, quad_b(4 * s), &av);
            lane::<R, 1, SU>(&mut acc, quad_b(4 * s + 1), &av);
            lane::<R, 2, SU>(&mut acc, quad_b(4 * s + 2), &av);
            lane::<R, 3, SU>(&mut acc, quad_b(4 * s + 3), &av);
        }
        for q in 4 * steps..g.k4 / 4 {
            let av: [uint8x16_t; R] = core::array::from_fn(|r| {
                let quad = (row(r).add(4 * q) as *const u32).read_unaligned();
                veorq_u8(vreinterpretq_u8_u32(vdupq_n_u32(quad)), flip)
            });
            lane::<R, 0, SU>(&mut acc, quad_b(q), &av);
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let o = out.add((r0 + r) * g.f_pad + f0);
            for (z, (&v, &c)) in acc_r.iter().zip(&corr).enumerate() {
                vst1q_s32(o.add(4 * z), vaddq_s32(v, c));
            }
        }
    }
}

/// One quad of K: every row's quad `L` of `av` times the 16 filters' quads
/// at `bp`, into the accumulators.
///
/// # Safety
/// As [`tiles`]; `bp` holds 64 bytes.
#[inline(always)]
unsafe fn lane<const R: usize, const L: i32, const SU: bool>(
    acc: &mut [[int32x4_t; 4]; R],
    bp: *const i8,
    av: &[uint8x16_t; R],
) {
    // SAFETY: the caller's contract.
    unsafe {
        let bv = [0, 1, 2, 3].map(|z| vld1q_s8(bp.add(16 * z)));
        for (acc_r, &a) in acc.iter_mut().zip(av) {
            for (acc, &bz) in acc_r.iter_mut().zip(&bv) {
                *acc = match SU {
                    true => sudot::<L>(*acc, bz, a),
                    false => sdot::<L>(*acc, bz, a),
                };
            }
        }
    }
}

/// # Safety
/// The CPU must support the dot-product instructions.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn with_dotprod<T: super::SimdTask>(task: T) -> T::Output {
    task.run()
}

/// # Safety
/// The CPU must support the dot-product and int8 matrix instructions.
#[target_feature(enable = "neon,dotprod,i8mm")]
pub unsafe fn with_i8mm<T: super::SimdTask>(task: T) -> T::Output {
    task.run()
}
