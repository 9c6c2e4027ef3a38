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

/// Levels of a block of [`CELLS`] cells for `filters` filters: `acc` holds
/// `[filter][CELLS]` accumulators scaled by `2^shift`, `table` per filter
/// `[threshold, S, S - 1]`; level `(filter, slot)` goes to
/// `dst[slot * stride + filter]`. `SAT`: saturate the potentials to 20 bits
/// first. Each level is [`level_fast`] of the unscaled potential.
#[inline]
pub fn tail_levels<const B: u32, const SAT: bool>(
    acc: &[i32],
    table: &[i32],
    dst: &mut [u8],
    stride: usize,
    filters: usize,
    shift: u32,
) {
    assert!(
        acc.len() >= filters * CELLS && table.len() >= 3 * filters,
        "tail: short input"
    );
    assert!(
        filters == 0 || dst.len() > (CELLS - 1) * stride + filters - 1,
        "tail: short output"
    );
    assert!(filters <= stride && shift < 32, "tail: bad layout");
    if filters == 0 {
        return;
    }
    let tail = Tail {
        acc,
        table,
        stride,
        filters,
        shift,
    };
    imp_tail::tail_levels::<B, SAT>(tail, dst);
}

/// The operands of [`tail_levels`] but its output, checked.
#[derive(Clone, Copy)]
struct Tail<'a> {
    acc: &'a [i32],
    table: &'a [i32],
    stride: usize,
    filters: usize,
    shift: u32,
}

#[cfg(not(target_arch = "arm"))]
mod imp_tail {
    pub use super::model_tail::tail_levels;
}

#[allow(dead_code)]
mod model_tail {
    use super::isa::{sdiv, ssat, usat};

    pub fn tail_levels<const B: u32, const SAT: bool>(tail: super::Tail, dst: &mut [u8]) {
        let table = tail.table;
        for f in 0..tail.filters {
            let (t, s, s1) = (table[3 * f], table[3 * f + 1], table[3 * f + 2]);
            for slot in 0..super::CELLS {
                let mut v = tail.acc[f * super::CELLS + slot] >> tail.shift;
                if SAT {
                    v = ssat(v, 20);
                }
                let q = sdiv(s1.wrapping_add((v.wrapping_sub(t)) << B), s);
                dst[slot * tail.stride + f] = usat(q, B) as u8;
            }
        }
    }
}

#[cfg(target_arch = "arm")]
mod imp_tail {
    use core::arch::asm;

    /// The 20-bit saturation of a slot's value, where `SAT` asks for it.
    macro_rules! sat {
        (true) => {
            "ssat r6, #20, r6\n"
        };
        (false) => {
            ""
        };
    }

    macro_rules! slot {
        ($sat:tt, $b:literal) => {
            concat!(
                "ldr r6, [r0], #4\n",
                "asr r6, r6, r11\n",
                sat!($sat),
                "sub r6, r6, r3\n",
                "add r6, r5, r6, lsl #",
                $b,
                "\n",
                "sdiv r6, r6, r4\n",
                "usat r6, #",
                $b,
                ", r6\n",
                "strb r6, [r8]\n",
                "add r8, r8, r9\n",
            )
        };
    }

    /// r0 accumulators, r1 table, r2 level of slot 0 of the filter, r3/r4/r5
    /// threshold, S, S - 1, r6 the value, r8 the slot's level, r9 the stride,
    /// r10 filters left, r11 the shift. r6 is saved: it may not be named.
    macro_rules! tail {
        ($sat:tt, $b:literal, $tail:expr, $dst:expr) => {
            // SAFETY: the caller checked the lengths; r6 is saved and restored.
            unsafe {
                asm!(
                    "push {{r6}}",
                    "2:",
                    "ldm r1!, {{r3, r4, r5}}",
                    "mov r8, r2",
                    slot!($sat, $b),
                    slot!($sat, $b),
                    slot!($sat, $b),
                    slot!($sat, $b),
                    slot!($sat, $b),
                    "add r2, r2, #1",
                    "subs r10, r10, #1",
                    "bne 2b",
                    "pop {{r6}}",
                    inout("r0") $tail.acc.as_ptr() => _,
                    inout("r1") $tail.table.as_ptr() => _,
                    inout("r2") $dst.as_mut_ptr() => _,
                    out("r3") _,
                    out("r4") _,
                    out("r5") _,
                    out("r8") _,
                    in("r9") $tail.stride,
                    inout("r10") $tail.filters => _,
                    in("r11") $tail.shift,
                );
            }
        };
    }

    pub fn tail_levels<const B: u32, const SAT: bool>(tail: super::Tail, dst: &mut [u8]) {
        match (B, SAT) {
            (1, true) => tail!(true, "1", tail, dst),
            (2, true) => tail!(true, "2", tail, dst),
            (4, true) => tail!(true, "4", tail, dst),
            (1, false) => tail!(false, "1", tail, dst),
            (2, false) => tail!(false, "2", tail, dst),
            (4, false) => tail!(false, "4", tail, dst),
            _ => super::model_tail::tail_levels::<B, SAT>(tail, dst),
        }
    }
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
/// unaligned); `act` is the block (`[unit][N][2]` words: 1, 2 or 4 units per
/// weight word at 8, 4 or 2 bits).
#[inline]
pub fn gemm<const N: usize>(bits: u8, w: &[u8], words: usize, act: &[u32]) -> [i32; N] {
    let mut out = [0i32; N];
    gemm_filters::<N>(Operands::new(bits, w, 4 * words, words, 1, act), &mut out);
    out
}

/// [`gemm`] for `filters` filters laid out every `stride` bytes from `w`
/// (an 8-bit filter may end inside its last word: `stride < 4 * words`),
/// over the same block (`g`: see [`Operands`]): `out[f * N + x]`.
#[inline]
pub fn gemm_filters<const N: usize>(g: Operands<'_>, out: &mut [i32]) {
    assert!(N == CELLS || N == 1, "gemm: blocks of 1 or {CELLS} cells");
    check_layout(g.bits, g.stride, g.words);
    if g.words == 0 || g.filters == 0 {
        out[..g.filters * N].fill(0);
        return;
    }
    g.check(N);
    assert!(out.len() >= g.filters * N, "gemm: output too short");
    imp::gemm_filters::<N>(g, out);
}

/// [`gemm_filters`] over a block of [`CELLS`] cells, each accumulator
/// turned straight into a 4-bit level as [`tail_levels`] does (`table`:
/// `[threshold, S, S - 1]` per filter; `SAT`: saturate to 20 bits first):
/// level `(f, slot)` goes to `dst[slot * dst_stride + f]`.
#[inline]
pub fn gemm_levels<const SAT: bool>(
    g: Operands<'_>,
    table: &[i32],
    dst: &mut [u8],
    dst_stride: usize,
) {
    check_layout(g.bits, g.stride, g.words);
    let filters = g.filters;
    if filters == 0 {
        return;
    }
    assert!(g.words > 0, "gemm: an empty reduction");
    g.check(CELLS);
    assert!(table.len() >= 3 * filters, "gemm: short table");
    assert!(
        filters <= dst_stride && dst.len() > (CELLS - 1) * dst_stride + filters - 1,
        "gemm: short output"
    );
    imp::gemm_levels::<SAT>(g, table, dst, dst_stride);
}

/// The weight width and filter stride of a GEMM call.
#[inline(always)]
fn check_layout(bits: u8, stride: usize, words: usize) {
    assert!(matches!(bits, 2 | 4 | 8), "gemm: 2, 4 or 8-bit weights");
    assert!(
        stride <= 4 * words && (bits == 8 || stride == 4 * words),
        "gemm: filters overlap"
    );
}

/// The operands of a GEMM call: `filters` filters of `words` packed weight
/// words at `bits` bits, every `stride` bytes from `w`, over the activation
/// block `act`.
#[derive(Clone, Copy)]
pub struct Operands<'a> {
    pub bits: u8,
    pub w: &'a [u8],
    pub stride: usize,
    pub words: usize,
    pub filters: usize,
    pub act: &'a [u32],
}

impl<'a> Operands<'a> {
    /// `filters` filters of `words` words at `bits` bits, `stride` bytes
    /// apart from `w`, against the activation block `act`.
    #[inline(always)]
    pub fn new(
        bits: u8,
        w: &'a [u8],
        stride: usize,
        words: usize,
        filters: usize,
        act: &'a [u32],
    ) -> Self {
        Operands {
            bits,
            w,
            stride,
            words,
            filters,
            act,
        }
    }

    /// The weights (at least one filter) and an activation block of
    /// `cells` cells are long enough.
    #[inline(always)]
    fn check(&self, cells: usize) {
        let Operands {
            bits,
            w,
            stride,
            words,
            filters,
            act,
        } = *self;
        assert!(
            w.len() >= (filters - 1) * stride + 4 * words,
            "gemm: weights shorter than {filters} filters of {words} words"
        );
        assert!(
            act.len() >= words * (per_word(bits) / 4) * cells * 2,
            "gemm: activation block too short"
        );
    }
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

    pub fn gemm_filters<const N: usize>(g: super::Operands, out: &mut [i32]) {
        for f in 0..g.filters {
            let acc = gemm::<N>(g.bits, &g.w[f * g.stride..], g.words, g.act);
            out[f * N..f * N + N].copy_from_slice(&acc);
        }
    }

    pub fn gemm_levels<const SAT: bool>(
        g: super::Operands,
        table: &[i32],
        dst: &mut [u8],
        dst_stride: usize,
    ) {
        let shift = super::shift(g.bits);
        for f in 0..g.filters {
            let acc = gemm::<{ super::CELLS }>(g.bits, &g.w[f * g.stride..], g.words, g.act);
            let tail = super::Tail {
                acc: &acc,
                table: &table[3 * f..],
                stride: dst_stride,
                filters: 1,
                shift,
            };
            super::model_tail::tail_levels::<4, SAT>(tail, &mut dst[f..]);
        }
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
    pub use super::model::{dw_pair, gemm_filters, gemm_levels};
}

#[cfg(target_arch = "arm")]
mod imp {
    use core::arch::asm;

    /// Five cells: accumulators r0-r4; the activation pairs of two cells
    /// at once with LDM into r6-r9 (of the fifth with LDRD); the weight word
    /// r10, its unpacked pairs r11/r12; weights r5, activations lr. Every
    /// register is named (the allocator may hand out r6 or r7 for `reg`
    /// operands), r6/r7 are saved, and the loop's end lives on the stack.
    macro_rules! cells5 {
        () => {
            concat!(
                "ldm lr!, {{r6, r7, r8, r9}}\n",
                "smlad r0, r6, r11, r0\n",
                "smlad r0, r7, r12, r0\n",
                "smlad r1, r8, r11, r1\n",
                "smlad r1, r9, r12, r1\n",
                "ldm lr!, {{r6, r7, r8, r9}}\n",
                "smlad r2, r6, r11, r2\n",
                "smlad r2, r7, r12, r2\n",
                "smlad r3, r8, r11, r3\n",
                "smlad r3, r9, r12, r3\n",
                "ldrd r6, r7, [lr], #8\n",
                "smlad r4, r6, r11, r4\n",
                "smlad r4, r7, r12, r4\n",
            )
        };
    }

    /// One cell: accumulator r0, its activation pair r1/r2 (registers
    /// named for the same reason).
    macro_rules! cells1 {
        () => {
            concat!(
                "ldrd r1, r2, [r9], #8\n",
                "smlad r0, r1, r4, r0\n",
                "smlad r0, r2, r5, r0\n",
            )
        };
    }

    macro_rules! passes {
        ($bits:tt, $cells:expr, $w:literal, $p0:literal, $p1:literal, $wp:literal, $wend:literal) => {
            concat!(
                "2:\n",
                body!($bits, $cells, $w, $p0, $p1, $wp),
                "cmp ",
                $wp,
                ", ",
                $wend,
                "\n",
                "bne 2b\n"
            )
        };
    }

    /// `ldr $w, [$wp], #4`: the next weight word.
    macro_rules! load {
        ($w:literal, $wp:literal) => {
            concat!("ldr ", $w, ", [", $wp, "], #4\n")
        };
    }

    /// `and $dst, $src, #$mask`: the values of a pass in the top bits.
    macro_rules! mask {
        ($dst:literal, $src:literal, $mask:literal) => {
            concat!("and ", $dst, ", ", $src, ", #", $mask, "\n")
        };
    }

    /// `lsl $w, $w, #$n`: the next values of the word to the top bits.
    macro_rules! next {
        ($w:literal, $n:literal) => {
            concat!("lsl ", $w, ", ", $w, ", #", $n, "\n")
        };
    }

    /// The weight pairs of `$src` (bytes 0, 2 and 1, 3) sign-extended into
    /// `$p0` and `$p1`, then `$cells`.
    macro_rules! pairs {
        ($src:literal, $p0:literal, $p1:literal, $cells:expr) => {
            concat!(
                "sxtb16 ",
                $p0,
                ", ",
                $src,
                "\n",
                "sxtb16 ",
                $p1,
                ", ",
                $src,
                ", ror #8\n",
                $cells,
            )
        };
    }

    /// The loop body: one weight word, without the end test.
    macro_rules! body {
        (8, $cells:expr, $w:literal, $p0:literal, $p1:literal, $wp:literal) => {
            concat!(load!($w, $wp), pairs!($w, $p0, $p1, $cells))
        };
        (4, $cells:expr, $w:literal, $p0:literal, $p1:literal, $wp:literal) => {
            concat!(
                load!($w, $wp),
                mask!($p1, $w, "0xF0F0F0F0"),
                pairs!($p1, $p0, $p1, $cells),
                next!($w, "4"),
                mask!($w, $w, "0xF0F0F0F0"),
                pairs!($w, $p0, $p1, $cells),
            )
        };
        (2, $cells:expr, $w:literal, $p0:literal, $p1:literal, $wp:literal) => {
            concat!(
                load!($w, $wp),
                mask!($p1, $w, "0xC0C0C0C0"),
                pairs!($p1, $p0, $p1, $cells),
                next2!($cells, $w, $p0, $p1),
                next2!($cells, $w, $p0, $p1),
                next2!($cells, $w, $p0, $p1),
            )
        };
    }

    /// The next four 2-bit values of the word `$w`, then `$cells`.
    macro_rules! next2 {
        ($cells:expr, $w:literal, $p0:literal, $p1:literal) => {
            concat!(
                next!($w, "2"),
                mask!($p1, $w, "0xC0C0C0C0"),
                pairs!($p1, $p0, $p1, $cells),
            )
        };
    }

    /// One weight word over five cells, in registers r10-r12, from r5.
    macro_rules! word5 {
        ($bits:tt) => {
            body!($bits, cells5!(), "r10", "r11", "r12", "r5")
        };
    }

    /// The filter loop over a block of five cells: its state in memory
    /// (`lr` points to it: activation block, weight bytes per filter, then
    /// what `$filter_end` reads), the loop's end and the state's address in
    /// a stack frame; per filter the five accumulators start from the
    /// state's zeros, the words are accumulated (two per turn with
    /// `$twice`), then `$filter_end` (r6: the state) stores them and counts
    /// the filter down.
    macro_rules! gemm5_asm {
        ($bits:tt, $w:expr, $state:expr, $twice:expr, $($filter_end:expr),+ $(,)?) => {{
            // SAFETY: the caller checked the weights, the activation block
            // and the output; r6/r7 are saved and restored, the stack frame
            // (loop end, state address) is released.
            unsafe {
                asm!(
                    "push {{r6, r7}}",
                    "sub sp, sp, #8",
                    "str lr, [sp, #4]",
                    "3:",
                    "ldr r6, [sp, #4]",
                    "ldrd lr, r7, [r6]",
                    "add r7, r5, r7",
                    "str r7, [sp]",
                    "add r7, r6, #20",
                    "ldm r7, {{r0, r1, r2, r3, r4}}",
                    "2:",
                    word5!($bits),
                    $twice,
                    "ldr r6, [sp]",
                    "cmp r5, r6",
                    "bne 2b",
                    "ldr r6, [sp, #4]",
                    $($filter_end,)+
                    "bne 3b",
                    "add sp, sp, #8",
                    "pop {{r6, r7}}",
                    inout("lr") $state.as_mut_ptr() => _,
                    inout("r5") $w.as_ptr() => _,
                    out("r0") _,
                    out("r1") _,
                    out("r2") _,
                    out("r3") _,
                    out("r4") _,
                    out("r8") _,
                    out("r9") _,
                    out("r10") _,
                    out("r11") _,
                    out("r12") _,
                );
            }
        }};
    }

    /// Every filter over a block of five cells, the accumulators stored
    /// (the state: activation block, weight bytes, output, filters left,
    /// weight pointer adjustment, five zeros).
    macro_rules! gemm5 {
        ($bits:tt, $w:expr, $state:expr) => {
            gemm5!($bits, $w, $state, "")
        };
        ($bits:tt, $w:expr, $state:expr, $twice:expr) => {
            gemm5_asm!(
                $bits,
                $w,
                $state,
                $twice,
                "ldr r7, [r6, #8]",
                "stm r7!, {{r0, r1, r2, r3, r4}}",
                "str r7, [r6, #8]",
                "ldr r7, [r6, #16]",
                "add r5, r5, r7",
                "ldr r7, [r6, #12]",
                "subs r7, r7, #1",
                "str r7, [r6, #12]",
            )
        };
    }

    /// The level of slot `$r`: saturated (`$sat`) and unscaled by the shift
    /// operand `$sh`,
    /// minus the threshold r7, times 16, plus S - 1 (r9), over S (r8),
    /// clamped to 4 bits, stored at r10, which moves on by the stride r11.
    macro_rules! level {
        ($sat:tt, $r:literal, $sh:literal) => {
            concat!(
                unscale!($sat),
                $r,
                ", ",
                $sh,
                "\n",
                "sub r6, r6, r7\n",
                "add r6, r9, r6, lsl #4\n",
                "sdiv r6, r6, r8\n",
                "usat r6, #4, r6\n",
                "strb r6, [r10]\n",
                "add r10, r10, r11\n",
            )
        };
    }

    /// The start of `level!`'s first instruction: unscaled into r6,
    /// saturated or moved.
    macro_rules! unscale {
        (true) => {
            "ssat r6, #20, "
        };
        (false) => {
            "mov r6, "
        };
    }

    /// Every filter over five cells, each accumulator turned into its
    /// level (see `gemm5`; the state adds the table and the level pointer
    /// and stride).
    macro_rules! gemm5_levels {
        ($bits:tt, $sat:tt, $sh:literal, $w:expr, $state:expr, $twice:expr) => {
            gemm5_asm!(
                $bits,
                $w,
                $state,
                $twice,
                "ldr r10, [r6, #40]",
                "ldm r10!, {{r7, r8, r9}}",
                "str r10, [r6, #40]",
                "ldrd r10, r11, [r6, #8]",
                "add r12, r10, #1",
                "str r12, [r6, #8]",
                level!($sat, "r0", $sh),
                level!($sat, "r1", $sh),
                level!($sat, "r2", $sh),
                level!($sat, "r3", $sh),
                level!($sat, "r4", $sh),
                "ldr r6, [sp, #4]",
                "ldr r7, [r6, #16]",
                "add r5, r5, r7",
                "ldr r7, [r6, #44]",
                "subs r7, r7, #1",
                "str r7, [r6, #44]",
            )
        };
    }

    pub fn gemm_levels<const SAT: bool>(
        g: super::Operands,
        table: &[i32],
        dst: &mut [u8],
        dst_stride: usize,
    ) {
        let (w, words) = (g.w, g.words);
        // Activation block, weight bytes, level pointer, level stride,
        // weight adjustment, five zeros, table, filters left.
        let mut state = [
            g.act.as_ptr() as u32,
            4 * words as u32,
            dst.as_mut_ptr() as u32,
            dst_stride as u32,
            g.stride.wrapping_sub(4 * words) as u32,
            0,
            0,
            0,
            0,
            0,
            table.as_ptr() as u32,
            g.filters as u32,
        ];

        macro_rules! go {
            ($bits:tt, $sh:literal) => {
                if words.is_multiple_of(2) {
                    go!($bits, $sh, word5!($bits))
                } else {
                    go!($bits, $sh, "")
                }
            };
            ($bits:tt, $sh:literal, $twice:expr) => {
                if SAT {
                    gemm5_levels!($bits, true, $sh, w, state, $twice)
                } else {
                    gemm5_levels!($bits, false, $sh, w, state, $twice)
                }
            };
        }
        match g.bits {
            8 => go!(8, "lsl #0"),
            4 => go!(4, "asr #4"),
            _ => go!(2, "asr #6"),
        }
    }

    /// Every filter over one cell: r0 accumulates, r1/r2 activations,
    /// r3 the weight word, r4/r5 its pairs, r8 weights, r9 activations,
    /// r10 weights end, r11 output, r12 filters left; `lr` points to the
    /// activation block, the weight bytes per filter and the adjustment.
    macro_rules! gemm1 {
        ($bits:tt, $w:expr, $state:expr, $out:expr, $filters:expr) => {{
            // SAFETY: as for five cells; no register is used unnamed.
            unsafe {
                asm!(
                    "3:",
                    "movs r0, #0",
                    "ldr r9, [lr]",
                    "ldr r10, [lr, #4]",
                    "add r10, r8, r10",
                    passes!($bits, cells1!(), "r3", "r4", "r5", "r8", "r10"),
                    "str r0, [r11], #4",
                    "ldr r3, [lr, #8]",
                    "add r8, r8, r3",
                    "subs r12, r12, #1",
                    "bne 3b",
                    in("lr") $state.as_ptr(),
                    inout("r8") $w.as_ptr() => _,
                    inout("r11") $out.as_mut_ptr() => _,
                    inout("r12") $filters => _,
                    out("r0") _,
                    out("r1") _,
                    out("r2") _,
                    out("r3") _,
                    out("r4") _,
                    out("r5") _,
                    out("r9") _,
                    out("r10") _,
                    options(nostack),
                );
            }
        }};
    }

    pub fn gemm_filters<const N: usize>(g: super::Operands, out: &mut [i32]) {
        let (bits, w, words, filters, act) = (g.bits, g.w, g.words, g.filters, g.act);
        let adjust = g.stride.wrapping_sub(4 * words) as u32;
        if N == super::CELLS {
            // Activation block, weight bytes per filter, output, filters
            // left, weight adjustment, five zeros.
            let mut state = [
                act.as_ptr() as u32,
                4 * words as u32,
                out.as_mut_ptr() as u32,
                filters as u32,
                adjust,
                0,
                0,
                0,
                0,
                0,
            ];
            // Two words per loop turn when their number is even.
            match (bits, words.is_multiple_of(2)) {
                (8, false) => gemm5!(8, w, state),
                (4, false) => gemm5!(4, w, state),
                (_, false) => gemm5!(2, w, state),
                (8, true) => gemm5!(8, w, state, word5!(8)),
                (4, true) => gemm5!(4, w, state, word5!(4)),
                (_, true) => gemm5!(2, w, state, word5!(2)),
            }
        } else {
            let state = [act.as_ptr() as u32, 4 * words as u32, adjust];
            match bits {
                8 => gemm1!(8, w, state, out, filters),
                4 => gemm1!(4, w, state, out, filters),
                _ => gemm1!(2, w, state, out, filters),
            }
        }
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
        let rec = &mut self.data[6 * tap..6 * tap + 6];
        rec[2] = w[0];
        rec[3] = w[1];
        rec[4] = w[2];
        rec[5] = w[3];
    }

    /// Sets every tap's weights for channels `c0 .. c0 + 4` from a
    /// depthwise kernel as the engine stores it: `(kh, kw, cin)` flipped
    /// (the last stored tap is the first of the cross-correlation), packed
    /// at `bits` (`cin * bits` a multiple of 8, `c0` a multiple of 4).
    pub fn set_quad(&mut self, data: &[u8], bits: u8, cin: usize, c0: usize) {
        let row = cin * bits as usize / 8;
        let taps = self.taps;
        let recs = self.data[..6 * taps].chunks_exact_mut(6);
        let rows = data[..taps * row].chunks_exact(row).rev();
        // One loop per width, each with its width's unpacking.
        macro_rules! fill {
            ($bits:literal) => {
                for (rec, r) in recs.zip(rows) {
                    rec[2..6].copy_from_slice(&quad_weights(r, $bits, c0));
                }
            };
        }
        match bits {
            4 => fill!(4),
            2 => fill!(2),
            _ => fill!(8),
        }
    }

    /// Bytes past the origin the kernel reads.
    pub fn reach(&self) -> usize {
        self.reach
    }
}

/// The four weights `idx .. idx + 4` of a packed tensor (`idx` a multiple
/// of 4), sign-extended: one or two bytes at 2 or 4 bits.
#[inline(always)]
pub fn quad_weights(data: &[u8], bits: u8, idx: usize) -> [i32; 4] {
    match bits {
        8 => {
            let b = &data[idx..idx + 4];
            [
                b[0] as i8 as i32,
                b[1] as i8 as i32,
                b[2] as i8 as i32,
                b[3] as i8 as i32,
            ]
        }
        4 => {
            let b = &data[idx / 2..idx / 2 + 2];
            let v = b[0] as u32 | (b[1] as u32) << 8;
            [
                ((v << 28) as i32) >> 28,
                ((v << 24) as i32) >> 28,
                ((v << 20) as i32) >> 28,
                ((v << 16) as i32) >> 28,
            ]
        }
        _ => {
            let v = data[idx / 4] as u32;
            [
                ((v << 30) as i32) >> 30,
                ((v << 28) as i32) >> 30,
                ((v << 26) as i32) >> 30,
                ((v << 24) as i32) >> 30,
            ]
        }
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

/// [`dw_pair`] and [`dw_split`] for `cells` cells, `stride` bytes apart
/// from `origin`: the activation words of cell `x` go to `out_a[2x..2x+2]`
/// (cell a) and `out_b[2x..2x+2]` (cell b).
#[inline]
pub fn dw_cells(
    window: &[u8],
    origin: usize,
    stride: usize,
    cells: usize,
    table: &DwTable,
    out_a: &mut [u32],
    out_b: &mut [u32],
) {
    if cells == 0 {
        return;
    }
    assert!(
        origin + (cells - 1) * stride + table.reach <= window.len(),
        "dw_cells: the taps reach outside the window"
    );
    assert!(
        out_a.len() >= 2 * cells && out_b.len() >= 2 * cells,
        "dw_cells: short output"
    );
    if table.taps == 0 {
        let (a, b) = dw_split(&[DW_BIAS; 4]);
        for x in 0..cells {
            out_a[2 * x..2 * x + 2].copy_from_slice(&a);
            out_b[2 * x..2 * x + 2].copy_from_slice(&b);
        }
        return;
    }
    let at = DwCells::new(window, origin, stride, cells);
    imp_dw::dw_cells(at, &table.data[..6 * table.taps], out_a, out_b);
}

/// The depthwise part of a separable layer over one block of `cells`
/// cells for `quads` channel quads: quad `q` takes its weights from the
/// stored kernel (`weights`, see [`DwTable::set_quad`]) and its cells from
/// `origin + 4q`; its activation words go to `out_a[q * unit + 2x ..]` and
/// `out_b[q * unit + 2x ..]` (a unit of the activation block per quad).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn dw_quads(
    window: &[u8],
    origin: usize,
    stride: usize,
    cells: usize,
    table: &mut DwTable,
    weights: &[u8],
    bits: u8,
    quads: usize,
    out_a: &mut [u32],
    out_b: &mut [u32],
    unit: usize,
) {
    if cells == 0 || quads == 0 {
        return;
    }
    let cin = 4 * quads;
    assert!(
        origin + 4 * (quads - 1) + (cells - 1) * stride + table.reach <= window.len(),
        "dw_quads: the taps reach outside the window"
    );
    let end = (quads - 1) * unit + 2 * cells;
    assert!(
        out_a.len() >= end && out_b.len() >= end,
        "dw_quads: short output"
    );
    assert!(
        weights.len() >= table.taps * cin * bits as usize / 8,
        "dw_quads: short kernel"
    );
    if table.taps == 0 {
        for q in 0..quads {
            dw_cells(
                window,
                origin + 4 * q,
                stride,
                cells,
                table,
                &mut out_a[q * unit..],
                &mut out_b[q * unit..],
            );
        }
        return;
    }
    let at = DwCells::new(window, origin, stride, cells);
    let kernel = DwKernel {
        weights,
        bits,
        quads,
        unit,
    };
    imp_dw::dw_quads(at, kernel, table, out_a, out_b);
}

/// The cells of a depthwise call (checked): `cells` cells `stride` bytes
/// apart from `origin` in `window`.
#[derive(Clone, Copy)]
struct DwCells<'a> {
    window: &'a [u8],
    origin: usize,
    stride: usize,
    cells: usize,
}

impl<'a> DwCells<'a> {
    #[inline(always)]
    fn new(window: &'a [u8], origin: usize, stride: usize, cells: usize) -> Self {
        DwCells {
            window,
            origin,
            stride,
            cells,
        }
    }
}

/// The stored kernel of [`dw_quads`] (see [`DwTable::set_quad`]): `quads`
/// channel quads at `bits` bits; the outputs of quad `q` start `q * unit`
/// words on.
#[derive(Clone, Copy)]
struct DwKernel<'a> {
    weights: &'a [u8],
    bits: u8,
    quads: usize,
    unit: usize,
}

#[cfg(not(target_arch = "arm"))]
mod imp_dw {
    pub use super::model_dw::{dw_cells, dw_quads};
}

#[allow(dead_code)]
mod model_dw {
    use super::{DwCells, DwKernel, DwTable};

    pub fn dw_quads(
        at: DwCells,
        k: DwKernel,
        table: &mut DwTable,
        out_a: &mut [u32],
        out_b: &mut [u32],
    ) {
        for q in 0..k.quads {
            table.set_quad(k.weights, k.bits, 4 * k.quads, 4 * q);
            let t = &table.data[..6 * table.taps];
            let quad = DwCells {
                origin: at.origin + 4 * q,
                ..at
            };
            dw_cells(quad, t, &mut out_a[q * k.unit..], &mut out_b[q * k.unit..]);
        }
    }

    pub fn dw_cells(at: DwCells, table: &[i32], out_a: &mut [u32], out_b: &mut [u32]) {
        for x in 0..at.cells {
            let mut acc = [super::DW_BIAS; 4];
            super::model::dw_pair(at.window, at.origin + x * at.stride, table, &mut acc);
            let (a, b) = super::dw_split(&acc);
            out_a[2 * x..2 * x + 2].copy_from_slice(&a);
            out_b[2 * x..2 * x + 2].copy_from_slice(&b);
        }
    }
}

#[cfg(target_arch = "arm")]
mod imp_dw {
    use core::arch::asm;

    /// One tap: offsets of cells a and b and two weights (r4, r5, r8, r9),
    /// the two input words (r10, r11), four lane pairs, the last two
    /// weights; accumulators r0-r3, the cells' origin r12, the table lr.
    macro_rules! tap {
        () => {
            concat!(
                "ldm lr!, {{r4, r5, r8, r9}}\n",
                "ldr r10, [r12, r4]\n",
                "ldr r11, [r12, r5]\n",
                "pkhbt r4, r10, r11, lsl #16\n",
                "pkhtb r5, r11, r10, asr #16\n",
                "uxtb16 r10, r4\n",
                "mla r0, r10, r8, r0\n",
                "uxtb16 r10, r4, ror #8\n",
                "mla r1, r10, r9, r1\n",
                "ldrd r8, r9, [lr], #8\n",
                "uxtb16 r10, r5\n",
                "mla r2, r10, r8, r2\n",
                "uxtb16 r10, r5, ror #8\n",
                "mla r3, r10, r9, r3\n",
            )
        };
    }

    /// The cell loop around `$taps`; the state (origin, stride, cells
    /// left, outputs a and b, table start and end, four biases) is in
    /// memory, its address on the stack.
    macro_rules! cells {
        ($taps:expr) => {
            concat!(
                "push {{r0, r7}}\n",
                "3:\n",
                "ldr r4, [sp]\n",
                "ldr r12, [r4]\n",
                "ldr lr, [r4, #20]\n",
                "ldr r7, [r4, #24]\n",
                "add r5, r4, #28\n",
                "ldm r5, {{r0, r1, r2, r3}}\n",
                $taps,
                "pkhbt r4, r0, r2, lsl #16\n",
                "eor r4, r4, #0x80008000\n",
                "pkhbt r5, r1, r3, lsl #16\n",
                "eor r5, r5, #0x80008000\n",
                "pkhtb r8, r2, r0, asr #16\n",
                "pkhtb r9, r3, r1, asr #16\n",
                "ldr r10, [sp]\n",
                "ldr r11, [r10, #12]\n",
                "strd r4, r5, [r11], #8\n",
                "str r11, [r10, #12]\n",
                "ldr r11, [r10, #16]\n",
                "strd r8, r9, [r11], #8\n",
                "str r11, [r10, #16]\n",
                "ldrd r11, r12, [r10]\n",
                "add r11, r11, r12\n",
                "str r11, [r10]\n",
                "ldr r11, [r10, #8]\n",
                "subs r11, r11, #1\n",
                "str r11, [r10, #8]\n",
                "bne 3b\n",
                "pop {{r0, r7}}\n",
            )
        };
    }

    pub fn dw_quads(
        at: super::DwCells,
        k: super::DwKernel,
        table: &mut super::DwTable,
        out_a: &mut [u32],
        out_b: &mut [u32],
    ) {
        let b = super::DW_BIAS;
        let n = 6 * table.taps;
        let base = at.window.as_ptr() as u32 + at.origin as u32;
        let (oa, ob) = (out_a.as_mut_ptr() as u32, out_b.as_mut_ptr() as u32);
        let mut state: [u32; 11] = [0, at.stride as u32, 0, 0, 0, 0, 0, b, b, b, b];
        for q in 0..k.quads {
            table.set_quad(k.weights, k.bits, 4 * k.quads, 4 * q);
            let t = table.data[..n].as_ptr() as u32;
            let out = (4 * q * k.unit) as u32;
            state[0] = base + 4 * q as u32;
            state[2] = at.cells as u32;
            state[3] = oa + out;
            state[4] = ob + out;
            state[5] = t;
            state[6] = t + 4 * n as u32;
            run(&mut state, n);
        }
    }

    /// The cell loop over the state (see `cells!`).
    #[inline(always)]
    fn run(state: &mut [u32; 11], n: usize) {
        // SAFETY: the caller checked that every tap of every cell reads
        // inside the window and that the outputs hold the cells; r7 is saved.
        unsafe {
            if n == 6 * 9 {
                asm!(
                    cells!(concat!(".rept 9\n", tap!(), ".endr\n")),
                    inout("r0") state.as_mut_ptr() => _,
                    out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                    out("lr") _,
                );
            } else {
                asm!(
                    cells!(concat!("2:\n", tap!(), "cmp lr, r7\n", "bne 2b\n")),
                    inout("r0") state.as_mut_ptr() => _,
                    out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                    out("lr") _,
                );
            }
        }
    }

    pub fn dw_cells(at: super::DwCells, table: &[i32], out_a: &mut [u32], out_b: &mut [u32]) {
        let b = super::DW_BIAS;
        let t = table.as_ptr() as u32;
        let mut state: [u32; 11] = [
            at.window.as_ptr() as u32 + at.origin as u32,
            at.stride as u32,
            at.cells as u32,
            out_a.as_mut_ptr() as u32,
            out_b.as_mut_ptr() as u32,
            t,
            t + 4 * table.len() as u32,
            b,
            b,
            b,
            b,
        ];
        run(&mut state, table.len());
    }
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
        assert_eq!(isa::sxtb16(0x80FF_7F01), 0xFFFF_0001);
        assert_eq!(isa::sxtb16_ror8(0x80FF_7F01), 0xFF80_007F);
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
