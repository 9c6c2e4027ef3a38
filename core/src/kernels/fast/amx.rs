//! The byte products on AMX-INT8 tiles (Intel Sapphire Rapids and later):
//! `tdpbusd` multiplies a tile of 16 rows x 64 bytes of A (u8) by a tile of
//! 16 quads x 16 filters of B (s8, four bytes per filter) into 16 x 16
//! exact 32-bit sums, 16 times the multiply-adds of one zmm `vpdpbusd`.
//! B is packed tile by tile ([`pack_tiles`]), each tile's rows one run of
//! memory, so that its loads stream (the quads' layout of the other
//! kernels puts a tile's rows `4 * f_pad` bytes apart).
//!
//! Eight tile registers, shaped once per product by `ldtilecfg`: here four
//! accumulators, two tiles of A and two of B. The compiler neither uses nor
//! knows the tile registers, so their state lives across the `asm!` blocks
//! of one product, which ends with `tilerelease` (tiles back to their initial
//! state, so that a context switch need not save them).
//!
//! Linux hands the tile data state to a process only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`): [`request`]
//! makes it once, and the AMX instruction set is offered only when it
//! succeeds.

use super::Gemm;
use core::arch::asm;

/// Rows of a full tile (and of A per accumulator).
const TILE_ROWS: usize = 16;
/// Bytes of a tile row: 64 bytes of A (16 quads of K), or 16 filters of
/// 4-byte sums or quads.
const TILE_BYTES: usize = 64;
/// Filters per accumulator tile.
const TILE_FILTERS: usize = 16;

/// The tile configuration `ldtilecfg` reads (palette 1): per tile register,
/// its rows and bytes per row.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
    reserved2: [u8; 16],
}

/// Loads a configuration: tiles 0-3 accumulators of `m` rows x 16 filters,
/// tiles 4-5 A (`m` rows x `kc` bytes), tiles 6-7 B (`kc / 4` quads x 16
/// filters). Zeroes every tile.
///
/// # Safety
/// AMX-TILE available and permitted ([`request`]).
unsafe fn configure(m: usize, kc: usize) {
    debug_assert!((1..=TILE_ROWS).contains(&m) && kc.is_multiple_of(4) && kc <= TILE_BYTES);
    let mut cfg = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
        reserved2: [0; 16],
    };
    for t in 0..4 {
        cfg.rows[t] = m as u8;
        cfg.colsb[t] = TILE_BYTES as u16;
    }
    for t in 4..6 {
        cfg.rows[t] = m as u8;
        cfg.colsb[t] = kc as u16;
    }
    for t in 6..8 {
        cfg.rows[t] = (kc / 4) as u8;
        cfg.colsb[t] = TILE_BYTES as u16;
    }
    // SAFETY: the caller's contract; `cfg` is 64 valid bytes.
    unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly)) };
}

/// Starts the accumulator tiles of the filters from `f0`: `tiles` of them
/// (tmm0-tmm1, or tmm0-tmm3: two rows of tiles), zero, or every row the
/// initial values `init[f0..]` (loaded with a row stride of 0).
///
/// # Safety
/// AMX-TILE available and permitted, a configuration loaded; `init`, if
/// any, valid for 32 values from `f0`.
#[inline(always)]
unsafe fn start_sums(init: Option<*const i32>, f0: usize, tiles: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        match (init, tiles) {
            (None, 2) => asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem)),
            (None, _) => asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            ),
            (Some(i), 2) => asm!(
                "tileloadd tmm0, [{i0} + {zero} * 1]",
                "tileloadd tmm1, [{i1} + {zero} * 1]",
                i0 = in(reg) i.add(f0),
                i1 = in(reg) i.add(f0 + TILE_FILTERS),
                zero = in(reg) 0usize,
                options(nostack, readonly)
            ),
            (Some(i), _) => asm!(
                "tileloadd tmm0, [{i0} + {zero} * 1]",
                "tileloadd tmm1, [{i1} + {zero} * 1]",
                "tileloadd tmm2, [{i0} + {zero} * 1]",
                "tileloadd tmm3, [{i1} + {zero} * 1]",
                i0 = in(reg) i.add(f0),
                i1 = in(reg) i.add(f0 + TILE_FILTERS),
                zero = in(reg) 0usize,
                options(nostack, readonly)
            ),
        }
    }
}

/// Stores the accumulator tiles started by [`start_sums`] at `c` (the
/// product's first row and filter of the block, rows `sc` bytes apart):
/// tmm0-tmm1 side by side, and tmm2-tmm3 (`tiles` 4) one tile of rows
/// below (`m` rows, the configured accumulator rows).
///
/// # Safety
/// AMX-TILE available and permitted, a configuration of `m`-row
/// accumulators loaded; `c` valid for the block's rows and 32 filters.
#[inline(always)]
unsafe fn store_sums(c: *mut i32, sc: usize, m: usize, tiles: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        match tiles {
            2 => asm!(
                "tilestored [{c0} + {sc} * 1], tmm0",
                "tilestored [{c1} + {sc} * 1], tmm1",
                c0 = in(reg) c,
                c1 = in(reg) c.add(TILE_FILTERS),
                sc = in(reg) sc,
                options(nostack)
            ),
            _ => {
                let below = c.byte_add(m * sc);
                asm!(
                    "tilestored [{c0} + {sc} * 1], tmm0",
                    "tilestored [{c1} + {sc} * 1], tmm1",
                    "tilestored [{c2} + {sc} * 1], tmm2",
                    "tilestored [{c3} + {sc} * 1], tmm3",
                    c0 = in(reg) c,
                    c1 = in(reg) c.add(TILE_FILTERS),
                    c2 = in(reg) below,
                    c3 = in(reg) below.add(TILE_FILTERS),
                    sc = in(reg) sc,
                    options(nostack)
                )
            }
        }
    }
}

/// Ends the use of the tiles.
///
/// # Safety
/// AMX-TILE available and permitted.
unsafe fn release() {
    // SAFETY: the caller's contract.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// Bytes of K per tile step for a row of `k4` bytes: the largest multiple
/// of 4 up to 64 that divides `k4`, so that every step fills its tiles (a
/// tile configuration holds one shape, and `ldtilecfg` zeroes the sums).
pub fn chunk(k4: usize) -> usize {
    (1..=TILE_BYTES.min(k4) / 4)
        .rev()
        .map(|quads| 4 * quads)
        .find(|c| k4.is_multiple_of(*c))
        .unwrap_or(4)
}

/// The fewest channels (K) and filters (F) of a product on tiles: below,
/// the tiles' set-up and the stores of their sums cost more than they save
/// (`ds_cnn_kws`, 64 x 64 separable products and a fully connected layer of
/// 64 inputs: 41.3 us per image on tiles, 38.9 with AVX-512 VNNI, one
/// thread; `ds_cnn_cifar10`'s products from 128 x 128 up gain 1.3x).
pub const TILES_MIN: usize = 128;

/// Packs the K x F weight matrix `w` (`w[k * f + filter]`) for the tiles:
/// per block of 32 filters, per step of [`chunk`] bytes of K, the block's
/// two tiles of `chunk / 4` quads x 16 filters (64 bytes a quad row),
/// zero beyond K and F; `k4 * f_pad` bytes, as the quads' layout.
pub fn pack_tiles(g: &Gemm, w: &[i8], out: &mut [i8]) {
    let kc = chunk(g.k4);
    let out = &mut out[..g.k4 * g.f_pad];
    out.fill(0);
    for k in 0..g.k {
        let (step, quad, byte) = (k / kc, k % kc / 4, k % 4);
        for filter in 0..g.f {
            let at = tile_start(g, kc, filter / (2 * TILE_FILTERS), step)
                + (filter / TILE_FILTERS % 2) * tile_len(kc)
                + quad * TILE_BYTES
                + (filter % TILE_FILTERS) * 4
                + byte;
            out[at] = w[k * g.f + filter];
        }
    }
}

/// Bytes of one B tile of `kc / 4` quads.
const fn tile_len(kc: usize) -> usize {
    kc / 4 * TILE_BYTES
}

/// Where the two B tiles of filter block `block` (32 filters) at K step
/// `step` start in [`pack_tiles`]' layout.
const fn tile_start(g: &Gemm, kc: usize, block: usize, step: usize) -> usize {
    (block * (g.k4 / kc) + step) * 2 * tile_len(kc)
}

/// Whether the tiles run product `g` well: at least [`TILES_MIN`] channels
/// and filters, and K steps of at least 32 bytes (or one step, where the A
/// rows are shorter than a tile).
pub fn suits(g: &Gemm) -> bool {
    let c = chunk(g.k4);
    g.k >= TILES_MIN && g.f >= TILES_MIN && (c >= 32 || c == g.k4)
}

/// The rows of a product in blocks of `m` rows: pairs of blocks
/// (`two(r0)`) while they fit before `end`, then one (`one(r0)`).
fn row_blocks(
    start: usize,
    end: usize,
    m: usize,
    mut two: impl FnMut(usize),
    mut one: impl FnMut(usize),
) {
    let mut r0 = start;
    while r0 + 2 * m <= end {
        two(r0);
        r0 += 2 * m;
    }
    if r0 < end {
        one(r0);
    }
}

/// The rows of a product as full tiles of 16 rows, then one configuration
/// for the rows left: `blocks(start, end, m)` runs under a configuration of
/// `m`-row tiles.
///
/// # Safety
/// AMX permitted; `kc` from [`chunk`].
unsafe fn by_tile_rows(rows: usize, kc: usize, mut blocks: impl FnMut(usize, usize, usize)) {
    let full = rows / TILE_ROWS * TILE_ROWS;
    if full > 0 {
        // SAFETY: the caller's contract.
        unsafe { configure(TILE_ROWS, kc) };
        blocks(0, full, TILE_ROWS);
    }
    if rows > full {
        // SAFETY: the caller's contract.
        unsafe { configure(rows - full, kc) };
        blocks(full, rows, rows - full);
    }
    // SAFETY: the caller's contract.
    unsafe { release() };
}

/// `product (rows x f_pad) = A (rows x k4, u8) · B (s8, [`pack_tiles`])` on tiles:
/// 32 rows x 32 filters a block (four accumulators), K in [`chunk`] steps;
/// all the filters of a block's rows before the next rows, so that those
/// rows of A stay in the L1 cache (B, read once per block of rows, streams
/// from L2 where it is larger; the other order streams A as often).
///
/// # Safety
/// AMX-INT8 available and permitted ([`request`]), AVX-512 F and BW;
/// slices sized by `g` (checked), `f_pad` a multiple of 32.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn gemm_u8(g: &Gemm, a: &[u8], b: &[i8], init: Option<&[i32]>, product: &mut [i32]) {
    assert!(a.len() >= g.rows * g.k4 && b.len() >= g.k4 * g.f_pad);
    assert!(init.is_none_or(|i| i.len() >= g.f_pad));
    let init = init.map(<[i32]>::as_ptr);
    assert!(product.len() >= g.rows * g.f_pad && g.f_pad.is_multiple_of(2 * TILE_FILTERS));
    let kc = chunk(g.k4);
    // A rows are k4 bytes apart, B tile rows 64, product rows 4 f_pad.
    let (sa, sb, sc) = (g.k4, TILE_BYTES, g.f_pad * 4);
    let (a, b, c) = (a.as_ptr(), b.as_ptr(), product.as_mut_ptr());
    let steps = g.k4 / kc;
    // SAFETY: every tile read or written below lies inside the slices
    // checked above: A rows r0..r0 + 2m (or + m) <= rows, bytes up to k4;
    // B tiles of filter blocks f0 / 32 < f_pad / 32 at steps < k4 / kc
    // (pack_tiles: k4 * f_pad bytes); the product's rows
    // and filters likewise.
    unsafe {
        by_tile_rows(g.rows, kc, |start, end, m| {
            row_blocks(
                start,
                end,
                m,
                |r0| {
                    for f0 in (0..g.f_pad).step_by(2 * TILE_FILTERS) {
                        start_sums(init, f0, 4);
                        for s in 0..steps {
                            let a0 = a.add(r0 * sa + s * kc);
                            let b0 = b.add(tile_start(g, kc, f0 / (2 * TILE_FILTERS), s));
                            asm!(
                                "tileloadd tmm4, [{a0} + {sa} * 1]",
                                "tileloadd tmm5, [{a1} + {sa} * 1]",
                                "tileloadd tmm6, [{b0} + {sb} * 1]",
                                "tileloadd tmm7, [{b1} + {sb} * 1]",
                                "tdpbusd tmm0, tmm4, tmm6",
                                "tdpbusd tmm1, tmm4, tmm7",
                                "tdpbusd tmm2, tmm5, tmm6",
                                "tdpbusd tmm3, tmm5, tmm7",
                                a0 = in(reg) a0,
                                a1 = in(reg) a0.add(m * sa),
                                b0 = in(reg) b0,
                                b1 = in(reg) b0.add(tile_len(kc)),
                                sa = in(reg) sa,
                                sb = in(reg) sb,
                                options(nostack, readonly)
                            );
                        }
                        store_sums(c.add(r0 * g.f_pad + f0), sc, m, 4);
                    }
                },
                |r0| {
                    for f0 in (0..g.f_pad).step_by(2 * TILE_FILTERS) {
                        start_sums(init, f0, 2);
                        for s in 0..steps {
                            let b0 = b.add(tile_start(g, kc, f0 / (2 * TILE_FILTERS), s));
                            asm!(
                                "tileloadd tmm4, [{a0} + {sa} * 1]",
                                "tileloadd tmm6, [{b0} + {sb} * 1]",
                                "tileloadd tmm7, [{b1} + {sb} * 1]",
                                "tdpbusd tmm0, tmm4, tmm6",
                                "tdpbusd tmm1, tmm4, tmm7",
                                a0 = in(reg) a.add(r0 * sa + s * kc),
                                b0 = in(reg) b0,
                                b1 = in(reg) b0.add(tile_len(kc)),
                                sa = in(reg) sa,
                                sb = in(reg) sb,
                                options(nostack, readonly)
                            );
                        }
                        store_sums(c.add(r0 * g.f_pad + f0), sc, m, 2);
                    }
                },
            )
        })
    }
}

/// The pointwise product of a separable layer on tiles, every potential
/// split exactly as `d = 256 h + l` (`l = d & 255` unsigned, `h = d >> 8`
/// signed, both bytes since `d` fits 16 bits): `product = l · B + 256 (h ·
/// B)`, the first by `tdpbusd` (u8 x s8), the second by `tdpbssd` (s8 x
/// s8), each into its own accumulators, added when stored. 16 rows x 32
/// filters a block.
///
/// Wrapping 32-bit arithmetic: the sum of the two terms is the exact
/// potential, which fits i32 (the layer's validated bound).
///
/// # Safety
/// AMX-INT8 available and permitted ([`request`]), AVX-512 F and BW;
/// slices sized by `g` (checked), `f_pad` a multiple of 32.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn gemm_split(g: &Gemm, low: &[u8], high: &[i8], b: &[i8], product: &mut [i32]) {
    let n = g.rows * g.k4;
    assert!(low.len() >= n && high.len() >= n && b.len() >= g.k4 * g.f_pad);
    assert!(product.len() >= g.rows * g.f_pad && g.f_pad.is_multiple_of(2 * TILE_FILTERS));
    let kc = chunk(g.k4);
    // A rows are k4 bytes apart, B tile rows 64, product rows 4 f_pad.
    let (sa, sb, sc) = (g.k4, TILE_BYTES, g.f_pad * 4);
    let (l, h, b, c) = (
        low.as_ptr(),
        high.as_ptr(),
        b.as_ptr(),
        product.as_mut_ptr(),
    );
    let steps = g.k4 / kc;
    let mut hi = [[0i32; 2 * TILE_FILTERS]; TILE_ROWS];
    let sh = 2 * TILE_FILTERS * 4;
    // SAFETY: as in `gemm_u8`, one block of m rows at a time.
    unsafe {
        by_tile_rows(g.rows, kc, |start, end, m| {
            for r0 in (start..end).step_by(m) {
                for f0 in (0..g.f_pad).step_by(2 * TILE_FILTERS) {
                    start_sums(None, f0, 4);
                    for s in 0..steps {
                        let b0 = b.add(tile_start(g, kc, f0 / (2 * TILE_FILTERS), s));
                        asm!(
                            "tileloadd tmm4, [{l0} + {sa} * 1]",
                            "tileloadd tmm5, [{h0} + {sa} * 1]",
                            "tileloadd tmm6, [{b0} + {sb} * 1]",
                            "tileloadd tmm7, [{b1} + {sb} * 1]",
                            "tdpbusd tmm0, tmm4, tmm6",
                            "tdpbusd tmm1, tmm4, tmm7",
                            "tdpbssd tmm2, tmm5, tmm6",
                            "tdpbssd tmm3, tmm5, tmm7",
                            l0 = in(reg) l.add(r0 * sa + s * kc),
                            h0 = in(reg) h.add(r0 * sa + s * kc),
                            b0 = in(reg) b0,
                            b1 = in(reg) b0.add(tile_len(kc)),
                            sa = in(reg) sa,
                            sb = in(reg) sb,
                            options(nostack, readonly)
                        );
                    }
                    let c0 = c.add(r0 * g.f_pad + f0);
                    let hp = hi.as_mut_ptr() as *mut i32;
                    asm!(
                        "tilestored [{c0} + {sc} * 1], tmm0",
                        "tilestored [{c1} + {sc} * 1], tmm1",
                        "tilestored [{h0} + {sh} * 1], tmm2",
                        "tilestored [{h1} + {sh} * 1], tmm3",
                        c0 = in(reg) c0,
                        c1 = in(reg) c0.add(TILE_FILTERS),
                        h0 = in(reg) hp,
                        h1 = in(reg) hp.add(TILE_FILTERS),
                        sc = in(reg) sc,
                        sh = in(reg) sh,
                        options(nostack)
                    );
                    for (r, hi_r) in hi.iter().enumerate().take(m) {
                        add_shifted(c0.add(r * g.f_pad), hi_r);
                    }
                }
            }
        })
    }
}

/// `out[f] += high[f] << 8` (wrapping) for the 32 filters of a block row.
///
/// # Safety
/// AVX-512 F; `out` valid for 32 i32 reads and writes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn add_shifted(out: *mut i32, high: &[i32; 2 * TILE_FILTERS]) {
    use core::arch::x86_64::*;
    for z in 0..2 {
        // SAFETY: the caller's contract; `high` holds 32 values.
        unsafe {
            let o = out.add(16 * z);
            let h = _mm512_loadu_si512(high.as_ptr().add(16 * z) as *const _);
            let sum = _mm512_add_epi32(_mm512_loadu_si512(o as *const _), _mm512_slli_epi32(h, 8));
            _mm512_storeu_si512(o as *mut _, sum);
        }
    }
}

/// `arch_prctl` operation asking for an extended state component.
#[cfg(all(feature = "std", target_os = "linux"))]
const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
/// The AMX tile data state component.
#[cfg(all(feature = "std", target_os = "linux"))]
const XFEATURE_XTILEDATA: i64 = 18;

/// Whether this CPU has AMX-TILE and AMX-INT8 (CPUID leaf 7) and Linux
/// granted this process the tile data state. Asks once; later calls return
/// the first answer.
#[cfg(feature = "std")]
pub fn request() -> bool {
    static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GRANTED.get_or_init(|| cpu_has_amx_int8() && granted_by_os())
}

#[cfg(feature = "std")]
fn cpu_has_amx_int8() -> bool {
    // Leaf 7 is read only where the highest leaf reaches it.
    if core::arch::x86_64::__cpuid(0).eax < 7 {
        return false;
    }
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    // EDX bit 24: AMX-TILE, bit 25: AMX-INT8.
    leaf7.edx >> 24 & 1 == 1 && leaf7.edx >> 25 & 1 == 1
}

#[cfg(all(feature = "std", target_os = "linux"))]
fn granted_by_os() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    let ret: i64;
    // SAFETY: the arch_prctl system call with a request that only changes
    // which state components this process may use; `syscall` clobbers rcx
    // and r11.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        )
    };
    ret == 0
}

/// Other systems: not offered (their permission models are not handled).
#[cfg(all(feature = "std", not(target_os = "linux")))]
fn granted_by_os() -> bool {
    false
}
