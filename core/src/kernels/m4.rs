//! Cortex-M4 kernels: the DSP instructions of the M4 (`SMLAD`, `SXTB16`,
//! `UXTB16`, `PKHBT`/`PKHTB`, `SSAT`/`USAT`, `SDIV`) through stable `asm!`
//! on `target_arch = "arm"`, and everywhere else a portable model of the
//! same instruction sequence ([`isa`]), so that the host property tests run
//! the very data flow the firmware runs against the reference kernels.
//!
//! Two kernels do almost all the multiply-accumulates of a streamed layer
//! ([`crate::stream`]):
//!
//! - [`gemm`]: one filter over a block of [`CELLS`] (or one) cells,
//!   `acc[x] = sum_k act[x][k] * w[k]`, with 16-bit activations in pairs and
//!   weights read packed (8, 4 or 2 bits) in the [`layout`] below: two
//!   multiply-accumulates per `SMLAD`, one packed weight word unpacked with
//!   `AND`/`LSL`/`SXTB16` for every five cells. 4- and 2-bit weights are
//!   unpacked scaled by 16 or 64 (the top bits of each byte), so the
//!   accumulators hold the potentials shifted left by [`shift`] bits.
//! - [`dw_pair`]: the depthwise part of a separable layer, four channels of
//!   two cells at once: the two cells' inputs travel as the 16-bit lanes of
//!   one register (`PKHBT`/`PKHTB`/`UXTB16`) and one `MLA` by a channel's
//!   weight adds to both lanes.
//!
//! ## Weight layout of [`gemm`]
//! Filter-major: filter `f`'s `K` weights start at byte `f * K * bits / 8`.
//! Within a filter, each 32-bit little-endian word holds `32 / bits`
//! consecutive reduction indices `v = 0 ..`: value `v` sits in byte `v % 4`,
//! in the bit field `[8 - bits * (v / 4 + 1), 8 - bits * (v / 4))`. So an
//! `AND` with `0xF0F0F0F0` (`0xC0C0C0C0`) keeps the values `0..4` of a word
//! in the top bits of each byte, `SXTB16` sign-extends bytes 0 and 2 (`v`
//! = 0, 2) and, rotated by 8, bytes 1 and 3 (`v` = 1, 3); a left shift by
//! `bits` brings the next four. 8-bit weights are in natural order.
//!
//! ## Activation layout
//! Four reduction indices `4u .. 4u + 4` of a cell are one "unit" of two
//! words: `(a[4u], a[4u+2])` and `(a[4u+1], a[4u+3])` as 16-bit halves,
//! the order `UXTB16` gives for four bytes. A block is `[unit][cell][2]`
//! words, so the kernel walks it with one post-incremented `LDRD` per cell.

use crate::kernels::ConvShape;

/// Cells of one [`gemm`] block.
pub const CELLS: usize = 5;

/// Reduction indices per 32-bit weight word.
#[inline(always)]
pub const fn per_word(bits: u8) -> usize {
    32 / bits as usize
}

/// Left shift of the [`gemm`] accumulators: weights unpacked into the top
/// bits of a byte are scaled by `2^(8 - bits)`.
#[inline(always)]
pub const fn shift(bits: u8) -> u32 {
    8 - bits as u32
}

/// Portable models of the M4 instructions the kernels use, bit for bit.
pub mod isa {
    /// `SXTB16 rd, rm`: bytes 0 and 2 sign-extended into the two halves.
    #[inline(always)]
    pub fn sxtb16(x: u32) -> u32 {
        let lo = x as u8 as i8 as i16 as u16 as u32;
        let hi = (x >> 16) as u8 as i8 as i16 as u16 as u32;
        lo | hi << 16
    }

    /// `SXTB16 rd, rm, ror #8`.
    #[inline(always)]
    pub fn sxtb16_ror8(x: u32) -> u32 {
        sxtb16(x.rotate_right(8))
    }

    /// `UXTB16 rd, rm`: bytes 0 and 2 zero-extended into the two halves.
    #[inline(always)]
    pub fn uxtb16(x: u32) -> u32 {
        x & 0x00FF_00FF
    }

    /// `UXTB16 rd, rm, ror #8`.
    #[inline(always)]
    pub fn uxtb16_ror8(x: u32) -> u32 {
        uxtb16(x.rotate_right(8))
    }

    /// `SMLAD rd, rn, rm, ra`: both signed 16-bit products added to `acc`.
    #[inline(always)]
    pub fn smlad(acc: i32, n: u32, m: u32) -> i32 {
        let lo = (n as u16 as i16 as i32) * (m as u16 as i16 as i32);
        let hi = ((n >> 16) as u16 as i16 as i32) * ((m >> 16) as u16 as i16 as i32);
        acc.wrapping_add(lo).wrapping_add(hi)
    }

    /// `MLA rd, rn, rm, ra`.
    #[inline(always)]
    pub fn mla(acc: u32, n: u32, m: u32) -> u32 {
        acc.wrapping_add(n.wrapping_mul(m))
    }

    /// `PKHBT rd, rn, rm, lsl #16`: bottom half of `n`, bottom half of `m` on top.
    #[inline(always)]
    pub fn pkhbt(n: u32, m: u32) -> u32 {
        (n & 0xFFFF) | m << 16
    }

    /// `PKHTB rd, rn, rm, asr #16`: top half of `n`, top half of `m` below.
    #[inline(always)]
    pub fn pkhtb(n: u32, m: u32) -> u32 {
        (n & 0xFFFF_0000) | ((m as i32 >> 16) as u32 & 0xFFFF)
    }

    /// `SSAT rd, #bits, rn`: clamp to a signed `bits`-bit range.
    #[inline(always)]
    pub fn ssat(x: i32, bits: u32) -> i32 {
        let max = (1i32 << (bits - 1)) - 1;
        x.clamp(-max - 1, max)
    }

    /// `USAT rd, #bits, rn`: clamp to `[0, 2^bits - 1]`.
    #[inline(always)]
    pub fn usat(x: i32, bits: u32) -> i32 {
        x.clamp(0, (1i32 << bits) - 1)
    }

    /// `SDIV rd, rn, rm` (rounds toward zero; the callers never divide by 0).
    #[inline(always)]
    pub fn sdiv(n: i32, d: i32) -> i32 {
        n.wrapping_div(d)
    }
}

/// The instructions the tail uses, one instruction each on the M4.
#[cfg(target_arch = "arm")]
mod op {
    use core::arch::asm;

    #[inline(always)]
    pub fn ssat20(x: i32) -> i32 {
        let r: i32;
        // SAFETY: a register-only instruction.
        unsafe {
            asm!("ssat {r}, #20, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    #[inline(always)]
    pub fn sdiv(n: i32, d: i32) -> i32 {
        let r: i32;
        // SAFETY: a register-only instruction (SDIV by 0 gives 0 without a trap).
        unsafe {
            asm!("sdiv {r}, {n}, {d}", r = lateout(reg) r, n = in(reg) n, d = in(reg) d, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    #[inline(always)]
    pub fn usat<const B: u32>(x: i32) -> i32 {
        let r: i32;
        // SAFETY: a register-only instruction.
        unsafe {
            asm!("usat {r}, #{b}, {x}", r = lateout(reg) r, x = in(reg) x, b = const B, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }
}

#[cfg(not(target_arch = "arm"))]
mod op {
    use super::isa;

    #[inline(always)]
    pub fn ssat20(x: i32) -> i32 {
        isa::ssat(x, 20)
    }

    #[inline(always)]
    pub fn sdiv(n: i32, d: i32) -> i32 {
        isa::sdiv(n, d)
    }

    #[inline(always)]
    pub fn usat<const B: u32>(x: i32) -> i32 {
        isa::usat(x, B)
    }
}

/// Clamps a potential to the signed 20-bit range (`SSAT #20`).
#[inline(always)]
pub fn ssat20(x: i32) -> i32 {
    op::ssat20(x)
}

/// Largest `|threshold|`, divisor and `|potential|` for which
/// [`level_fast`] is exact: `(d << 4) + divisor` stays below `2^31`.
pub const TAIL_LIMIT: i64 = 1 << 25;

/// The step activation of [`crate::activation::level`] without a 64-bit
/// division: `USAT_B(SDIV((d << B) + S - 1, S))` with `d = potential -
/// threshold`. Exact when `|potential|`, `|threshold|` and `S` are at most
/// [`TAIL_LIMIT`] and `S >= 1` (a `d <= 0` gives a quotient `<= 0`).
#[inline(always)]
pub fn level_fast<const B: u32>(potential: i32, threshold: i32, divisor: i32) -> u8 {
    let d = potential - threshold;
    op::usat::<B>(op::sdiv((d << B) + divisor - 1, divisor)) as u8
}

// ---------------------------------------------------------------------------
// Weight layout
// ---------------------------------------------------------------------------

/// Whether a `K`-long reduction at `bits` bits fits the [`gemm`] layout:
/// whole bytes per filter, and whole words for 4- and 2-bit weights (8-bit
/// filters may end inside a word: the activations beyond `K` are zero).
pub fn gemm_layout_fits(k: usize, bits: u8) -> bool {
    match bits {
        8 => k > 0,
        4 | 2 => k > 0 && k.is_multiple_of(per_word(bits)),
        _ => false,
    }
}

/// Bytes of one filter in the [`gemm`] layout.
#[inline(always)]
pub fn filter_bytes(k: usize, bits: u8) -> usize {
    k * bits as usize / 8
}

/// Packed words the [`gemm`] kernel reads for one filter.
#[inline(always)]
pub fn filter_words(k: usize, bits: u8) -> usize {
    k.div_ceil(per_word(bits))
}

/// Activation units (of four reduction indices) of a `K`-long reduction.
#[inline(always)]
pub fn units(k: usize) -> usize {
    k.div_ceil(4)
}

/// Byte and bit position of reduction index `k` of filter `f`.
#[inline(always)]
fn position(k_len: usize, bits: u8, f: usize, k: usize) -> (usize, u32) {
    let per = per_word(bits);
    let (word, v) = (k / per, k % per);
    let byte = filter_bytes(k_len, bits) * f + 4 * word + v % 4;
    let lsb = 8 - bits as u32 * (v as u32 / 4 + 1);
    (byte, lsb)
}

/// Weight `(f, k)` of a tensor in the [`gemm`] layout.
pub fn gemm_get(data: &[u8], bits: u8, k_len: usize, f: usize, k: usize) -> i8 {
    let (byte, lsb) = position(k_len, bits, f, k);
    let field = (data[byte] >> lsb) << (8 - bits as u32);
    (field as i8) >> (8 - bits as u32)
}

/// Writes the [`gemm`] layout of `filters` filters of `k_len` weights into
/// `out` (`filters * filter_bytes(k_len, bits)` bytes), weight `(f, k)`
/// from `get(k, f)`.
pub fn write_gemm_layout(
    out: &mut [u8],
    bits: u8,
    k_len: usize,
    filters: usize,
    get: impl Fn(usize, usize) -> i8,
) {
    let mask = ((1u16 << bits) - 1) as u8;
    out[..filters * filter_bytes(k_len, bits)].fill(0);
    for f in 0..filters {
        for k in 0..k_len {
            let (byte, lsb) = position(k_len, bits, f, k);
            out[byte] |= ((get(k, f) as u8) & mask) << lsb;
        }
    }
}

// ---------------------------------------------------------------------------
// GEMM: one filter over a block of cells
// ---------------------------------------------------------------------------

/// One filter over a block of `N` cells (`N` = [`CELLS`] or 1):
/// `acc[x] = 2^shift(bits) * sum_k act[x][k] * w[k]` over `words` packed
/// weight words. `w` starts at the filter (at least `4 * words` bytes, read
/// unaligned); `act` is the block (`[unit][N][2]` words, at least
/// `units * N * 2`, where a word holds `4 * units / words` ... units per
/// word: 1, 2, 4 for 8, 4, 2 bits).
#[inline]
pub fn gemm<const N: usize>(bits: u8, w: &[u8], words: usize, act: &[u32]) -> [i32; N] {
    let units_per_word = per_word(bits) / 4;
    assert!(
        w.len() >= 4 * words,
        "gemm: weights shorter than {words} words"
    );
    assert!(
        act.len() >= words * units_per_word * N * 2,
        "gemm: activation block too short"
    );
    if words == 0 {
        return [0; N];
    }
    imp::gemm::<N>(bits, w, words, act)
}

/// The portable model of the kernel, instruction for instruction.
#[allow(dead_code)]
mod model {
    use super::isa::*;

    fn word(w: &[u8], i: usize) -> u32 {
        u32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]])
    }

    pub fn gemm<const N: usize>(bits: u8, w: &[u8], words: usize, act: &[u32]) -> [i32; N] {
        let mut acc = [0i32; N];
        let mut ap = 0;
        let mask = match bits {
            4 => 0xF0F0_F0F0,
            2 => 0xC0C0_C0C0,
            _ => 0xFFFF_FFFF,
        };
        let passes = 8 / bits as usize;
        for i in 0..words {
            let mut wd = word(w, i);
            for pass in 0..passes {
                if pass > 0 {
                    wd <<= bits;
                }
                let p1 = wd & mask;
                let p0 = sxtb16(p1);
                let p1 = sxtb16_ror8(p1);
                for a in acc.iter_mut() {
                    let (a0, a1) = (act[ap], act[ap + 1]);
                    ap += 2;
                    *a = smlad(*a, a0, p0);
                    *a = smlad(*a, a1, p1);
                }
            }
        }
        acc
    }

    pub fn dw_pair(window: &[u8], origin: usize, table: &[i32], acc: &mut [u32; 4]) {
        let load = |off: i32| {
            let o = origin.wrapping_add(off as isize as usize);
            u32::from_le_bytes([window[o], window[o + 1], window[o + 2], window[o + 3]])
        };
        for t in table.chunks_exact(6) {
            let (a, b) = (load(t[0]), load(t[1]));
            let lo = pkhbt(a, b);
            let hi = pkhtb(b, a);
            acc[0] = mla(acc[0], uxtb16(lo), t[2] as u32);
            acc[1] = mla(acc[1], uxtb16_ror8(lo), t[3] as u32);
            acc[2] = mla(acc[2], uxtb16(hi), t[4] as u32);
            acc[3] = mla(acc[3], uxtb16_ror8(hi), t[5] as u32);
        }
    }
}

#[cfg(not(target_arch = "arm"))]
mod imp {
    pub use super::model::{dw_pair, gemm};
}

#[cfg(target_arch = "arm")]
mod imp {
    use core::arch::asm;

    /// Five cells: accumulators in r0-r4, the activation pair of a cell in
    /// r6/r7 (saved around the block). The allocator may hand out r6 or r7
    /// for `reg` operands, so every operand of this block is in a named
    /// register: pointers r5 (weights), r8 (activations), r9 (weights end),
    /// the weight word r10, its unpacked pairs r11/r12.
    macro_rules! cells5 {
        () => {
            concat!(
                "ldrd r6, r7, [r8], #8\n",
                "smlad r0, r6, r11, r0\n",
                "smlad r0, r7, r12, r0\n",
                "ldrd r6, r7, [r8], #8\n",
                "smlad r1, r6, r11, r1\n",
                "smlad r1, r7, r12, r1\n",
                "ldrd r6, r7, [r8], #8\n",
                "smlad r2, r6, r11, r2\n",
                "smlad r2, r7, r12, r2\n",
                "ldrd r6, r7, [r8], #8\n",
                "smlad r3, r6, r11, r3\n",
                "smlad r3, r7, r12, r3\n",
                "ldrd r6, r7, [r8], #8\n",
                "smlad r4, r6, r11, r4\n",
                "smlad r4, r7, r12, r4\n",
            )
        };
    }

    macro_rules! cells1 {
        () => {
            concat!(
                "ldrd {a0}, {a1}, [{ap}], #8\n",
                "smlad {acc}, {a0}, {p0}, {acc}\n",
                "smlad {acc}, {a1}, {p1}, {acc}\n",
            )
        };
    }

    /// The unpacking of one weight word, pass by pass, around a cell block,
    /// with the registers named: weight word, pairs, weight pointer and end.
    macro_rules! passes {
        (8, $cells:expr, $w:literal, $p0:literal, $p1:literal, $wp:literal, $wend:literal) => {
            concat!(
                "2:\n",
                "ldr ", $w, ", [", $wp, "], #4\n",
                "sxtb16 ", $p0, ", ", $w, "\n",
                "sxtb16 ", $p1, ", ", $w, ", ror #8\n",
                $cells,
                "cmp ", $wp, ", ", $wend, "\n",
                "bne 2b\n",
            )
        };
        (4, $cells:expr, $w:literal, $p0:literal, $p1:literal, $wp:literal, $wend:literal) => {
            concat!(
                "2:\n",
                "ldr ", $w, ", [", $wp, "], #4\n",
                "and ", $p1, ", ", $w, ", #0xF0F0F0F0\n",
                "sxtb16 ", $p0, ", ", $p1, "\n",
                "sxtb16 ", $p1, ", ", $p1, ", ror #8\n",
                $cells,
                "lsl ", $w, ", ", $w, ", #4\n",
                "and ", $w, ", ", $w, ", #0xF0F0F0F0\n",
                "sxtb16 ", $p0, ", ", $w, "\n",
                "sxtb16 ", $p1, ", ", $w, ", ror #8\n",
                $cells,
                "cmp ", $wp, ", ", $wend, "\n",
                "bne 2b\n",
            )
        };
        (2, $cells:expr, $w:literal, $p0:literal, $p1:literal, $wp:literal, $wend:literal) => {
            concat!(
                "2:\n",
                "ldr ", $w, ", [", $wp, "], #4\n",
                "and ", $p1, ", ", $w, ", #0xC0C0C0C0\n",
                "sxtb16 ", $p0, ", ", $p1, "\n",
                "sxtb16 ", $p1, ", ", $p1, ", ror #8\n",
                $cells,
                "lsl ", $w, ", ", $w, ", #2\n",
                "and ", $p1, ", ", $w, ", #0xC0C0C0C0\n",
                "sxtb16 ", $p0, ", ", $p1, "\n",
                "sxtb16 ", $p1, ", ", $p1, ", ror #8\n",
                $cells,
                "lsl ", $w, ", ", $w, ", #2\n",
                "and ", $p1, ", ", $w, ", #0xC0C0C0C0\n",
                "sxtb16 ", $p0, ", ", $p1, "\n",
                "sxtb16 ", $p1, ", ", $p1, ", ror #8\n",
                $cells,
                "lsl ", $w, ", ", $w, ", #2\n",
                "and ", $p1, ", ", $w, ", #0xC0C0C0C0\n",
                "sxtb16 ", $p0, ", ", $p1, "\n",
                "sxtb16 ", $p1, ", ", $p1, ", ror #8\n",
                $cells,
                "cmp ", $wp, ", ", $wend, "\n",
                "bne 2b\n",
            )
        };
    }

    macro_rules! gemm5 {
        ($bits:tt, $w:expr, $words:expr, $act:expr) => {{
            let (mut r0, mut r1, mut r2, mut r3, mut r4) = (0i32, 0i32, 0i32, 0i32, 0i32);
            let wp = $w.as_ptr();
            // SAFETY: the caller checked that `w` holds `4 * words` bytes and
            // `act` the words the loop reads; r6/r7 are saved and restored.
            unsafe {
                asm!(
                    "push {{r6, r7}}",
                    passes!($bits, cells5!(), "r10", "r11", "r12", "r5", "r9"),
                    "pop {{r6, r7}}",
                    inout("r5") wp => _,
                    inout("r8") $act.as_ptr() => _,
                    in("r9") wp.add(4 * $words),
                    out("r10") _,
                    out("r11") _,
                    out("r12") _,
                    inout("r0") r0,
                    inout("r1") r1,
                    inout("r2") r2,
                    inout("r3") r3,
                    inout("r4") r4,
                    options(readonly),
                );
            }
            [r0, r1, r2, r3, r4]
        }};
    }

    macro_rules! gemm1 {
        ($bits:tt, $w:expr, $words:expr, $act:expr) => {{
            let mut acc = 0i32;
            let wp = $w.as_ptr();
            // SAFETY: as for five cells; no register is used unnamed.
            unsafe {
                asm!(
                    passes!($bits, cells1!(), "{w}", "{p0}", "{p1}", "{wp}", "{wend}"),
                    wp = inout(reg) wp => _,
                    ap = inout(reg) $act.as_ptr() => _,
                    wend = in(reg) wp.add(4 * $words),
                    w = out(reg) _,
                    p0 = out(reg) _,
                    p1 = out(reg) _,
                    a0 = out(reg) _,
                    a1 = out(reg) _,
                    acc = inout(reg) acc,
                    options(readonly, nostack),
                );
            }
            [acc]
        }};
    }

    pub fn gemm<const N: usize>(bits: u8, w: &[u8], words: usize, act: &[u32]) -> [i32; N] {
        let mut out = [0i32; N];
        match N {
            super::CELLS => {
                let r = match bits {
                    8 => gemm5!(8, w, words, act),
                    4 => gemm5!(4, w, words, act),
                    _ => gemm5!(2, w, words, act),
                };
                out.copy_from_slice(&r);
            }
            1 => {
                let r = match bits {
                    8 => gemm1!(8, w, words, act),
                    4 => gemm1!(4, w, words, act),
                    _ => gemm1!(2, w, words, act),
                };
                out.copy_from_slice(&r);
            }
            _ => return super::model::gemm::<N>(bits, w, words, act),
        }
        out
    }

    pub fn dw_pair(window: &[u8], origin: usize, table: &[i32], acc: &mut [u32; 4]) {
        let [mut a0, mut a1, mut a2, mut a3] = *acc;
        // SAFETY: the caller checked that every tap offset of `table` reads
        // four bytes inside `window`; r7 is saved and restored.
        unsafe {
            asm!(
                "push {{r7}}",
                "add r7, lr, r4",
                "2:",
                "ldm lr!, {{r4, r5, r8, r9}}",
                "ldr r10, [r12, r4]",
                "ldr r11, [r12, r5]",
                "pkhbt r4, r10, r11, lsl #16",
                "pkhtb r5, r11, r10, asr #16",
                "uxtb16 r10, r4",
                "mla r0, r10, r8, r0",
                "uxtb16 r10, r4, ror #8",
                "mla r1, r10, r9, r1",
                "ldrd r8, r9, [lr], #8",
                "uxtb16 r10, r5",
                "mla r2, r10, r8, r2",
                "uxtb16 r10, r5, ror #8",
                "mla r3, r10, r9, r3",
                "cmp lr, r7",
                "bne 2b",
                "pop {{r7}}",
                inout("r0") a0,
                inout("r1") a1,
                inout("r2") a2,
                inout("r3") a3,
                inout("r4") table.len() * 4 => _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                in("r12") window.as_ptr().add(origin),
                inout("lr") table.as_ptr() => _,
                options(readonly),
            );
        }
        *acc = [a0, a1, a2, a3];
    }
}

// ---------------------------------------------------------------------------
// Depthwise: four channels of two cells
// ---------------------------------------------------------------------------

/// Most taps (kernel rows x cols) of the fast depthwise kernel.
pub const MAX_TAPS: usize = 25;

/// Initial value of a [`dw_pair`] accumulator: the low lane starts at
/// `2^15`, so it never borrows from the high lane.
pub const DW_BIAS: u32 = 0x8000;

/// Largest `|depthwise potential|` the 16-bit lanes hold.
pub const DW_LIMIT: i64 = i16::MAX as i64;

/// Tap table of [`dw_pair`]: per tap `[offset_a, offset_b, w0, w1, w2, w3]`
/// (byte offsets of the two cells' input words from the origin, the tap's
/// weights of four channels). Offsets are set once per layer and checked
/// against the window; weights per channel quad.
#[derive(Clone, Debug)]
pub struct DwTable {
    data: [i32; 6 * MAX_TAPS],
    taps: usize,
    /// Highest byte the offsets reach past the origin (exclusive).
    reach: usize,
}

impl DwTable {
    /// A table for a `kernel` window over `window_cols` window columns of
    /// `channels` channels: cell b is `row_delta` window rows below cell a.
    /// `None` beyond [`MAX_TAPS`] taps.
    pub fn new(shape: &ConvShape, window_cols: usize, row_delta: usize) -> Option<DwTable> {
        let (kh, kw) = (shape.kernel.rows as usize, shape.kernel.cols as usize);
        let taps = kh * kw;
        if taps > MAX_TAPS {
            return None;
        }
        let c = shape.input.channels as usize;
        let row = window_cols * c;
        let mut t = DwTable {
            data: [0; 6 * MAX_TAPS],
            taps,
            reach: 0,
        };
        for i in 0..kh {
            for j in 0..kw {
                let a = i * row + j * c;
                let b = a + row_delta * row;
                let rec = &mut t.data[6 * (i * kw + j)..][..6];
                rec[0] = a as i32;
                rec[1] = b as i32;
                t.reach = t.reach.max(b + 4);
            }
        }
        Some(t)
    }

    /// Sets the weights of tap `tap` for the quad's four channels.
    #[inline(always)]
    pub fn set(&mut self, tap: usize, w: [i32; 4]) {
        self.data[6 * tap + 2..6 * tap + 6].copy_from_slice(&w);
    }

    /// Bytes past the origin the kernel reads.
    pub fn reach(&self) -> usize {
        self.reach
    }
}

/// Depthwise products of four channels for two cells, added to `acc` (each
/// `[channel]` word holds cell a in the low lane, biased by [`DW_BIAS`], and
/// cell b in the high lane): `origin` is the byte of the quad's first
/// channel at the cells' common window origin.
#[inline]
pub fn dw_pair(window: &[u8], origin: usize, table: &DwTable, acc: &mut [u32; 4]) {
    assert!(
        origin + table.reach <= window.len(),
        "dw_pair: the taps reach outside the window"
    );
    if table.taps == 0 {
        return;
    }
    imp::dw_pair(window, origin, &table.data[..6 * table.taps], acc);
}

/// The two cells' activation words of a quad from [`dw_pair`] accumulators:
/// `(cell a: (c, c+2), (c+1, c+3)), (cell b: ...)` as 16-bit pairs.
#[inline(always)]
pub fn dw_split(acc: &[u32; 4]) -> ([u32; 2], [u32; 2]) {
    let flip = 0x8000_8000;
    let a = [
        isa::pkhbt(acc[0], acc[2]) ^ flip,
        isa::pkhbt(acc[1], acc[3]) ^ flip,
    ];
    let b = [isa::pkhtb(acc[2], acc[0]), isa::pkhtb(acc[3], acc[1])];
    (a, b)
}

/// A 16-bit lane as its signed value.
#[inline(always)]
pub fn lane(word: u32, high: bool) -> i32 {
    match high {
        false => word as u16 as i16 as i32,
        true => (word >> 16) as u16 as i16 as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_models() {
        assert_eq!(isa::sxtb16(0x80FF_7F01), 0xFF80_0001);
        assert_eq!(isa::sxtb16_ror8(0x80FF_7F01), 0xFFFF_007F);
        assert_eq!(isa::uxtb16(0x80FF_7F01), 0x00FF_0001);
        assert_eq!(isa::smlad(10, 0xFFFF_0002, 0x0003_0004), 10 + 8 - 3);
        assert_eq!(isa::pkhbt(0x1111_2222, 0x3333_4444), 0x4444_2222);
        assert_eq!(isa::pkhtb(0x1111_2222, 0x8333_4444), 0x1111_8333);
        assert_eq!(isa::ssat(1 << 20, 20), (1 << 19) - 1);
        assert_eq!(isa::usat(-3, 4), 0);
        assert_eq!(isa::sdiv(-7, 2), -3);
    }

    #[test]
    fn layout_round_trips() {
        for bits in [2u8, 4, 8] {
            let k = per_word(bits) * 3;
            let f = 3;
            let (lo, hi) = crate::weights::value_range(bits);
            let val = |k: usize, f: usize| {
                (lo as i32 + ((k * 7 + f * 3) as i32 % (hi as i32 - lo as i32 + 1))) as i8
            };
            let mut out = [0u8; 64];
            write_gemm_layout(&mut out, bits, k, f, val);
            for ff in 0..f {
                for kk in 0..k {
                    assert_eq!(
                        gemm_get(&out, bits, k, ff, kk),
                        val(kk, ff),
                        "{bits} {ff} {kk}"
                    );
                }
            }
        }
    }
}
