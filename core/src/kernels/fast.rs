//! Fast dense kernels for hosts: every neural product becomes one integer
//! matrix product `A (rows x K) · B (K x F)` in 16-bit operands with 32-bit
//! sums, run by a SIMD micro-kernel where the CPU has one (AVX-512 VNNI,
//! AVX2) and by plain Rust elsewhere.
//!
//! - input and plain convolution: A is the im2col of the input (padded cells
//!   hold `padding_value`), K = kh * kw * cin in the kernels' (kh, kw, cin)
//!   order, B the unpacked kernel;
//! - separable: the depthwise potentials (computed directly in 16 bits, which
//!   [`FastPlan::of`] proves lossless; with AVX2, taps in byte pairs by
//!   `vpmaddubsw` where no pair can saturate, [`FastPlan::depthwise_pairs`])
//!   times the pointwise kernel;
//! - fully connected: one row, the HWC input.
//!
//! Where A holds uint8 values (the image or input levels of a convolution or
//! fully connected layer), the product can instead run on bytes
//! ([`Dot::U8`]): A as u8, B as s8 packed in quads of K, which the u8 x s8
//! dot-product instructions take (AVX-512 VNNI and AVX-VNNI `vpdpbusd`, exact
//! in 32 bits; AVX2 `vpmaddubsw`, whose 16-bit pair sums and 16-bit running
//! sums [`FastPlan::with_dot`] proves cannot saturate or wrap from the
//! layer's input range and weights; on aarch64, NEON `sudot` where the CPU
//! has I8MM, else `sdot` on `A - 128` plus `128 * sum_k B[k][f]` per filter,
//! both exact in 32 bits, `neon`). [`FastPlan::with_dot`] picks it per
//! instruction set. The separable pointwise product, whose A (depthwise
//! potentials) is signed and wider than a byte, runs on bytes too where the
//! potentials mostly fit one ([`Dot::SplitU8`], [`split_product`]): each
//! `d + 128` splits into a low byte, multiplied by the byte product, and a
//! high part, zero for `-128 <= d <= 127`, whose few pairs are multiplied
//! in 16 bits.
//!
//! On aarch64 (ARM64 hosts, `Simd` `neon-dotprod` and `neon-i8mm`, offered
//! where the CPU has FEAT_DotProd, and FEAT_I8MM for the second) the byte
//! products (plain and split) run the `neon` micro-kernels (`asm!`: the
//! dot-product intrinsics are unstable); the 16-bit product, the depthwise
//! potentials and the high part of a split product run the plain Rust code,
//! compiled for NEON, the aarch64 baseline. scripts/test.sh runs the core
//! tests on an emulated aarch64 CPU (QEMU user mode, `-cpu max`, which has
//! both features).
//!
//! The products are exact (no saturation anywhere: operands fit 16 bits and
//! the validated potential bound fits 32), so the results equal the
//! reference kernel's bit for bit; property tests hold them equal.
//!
//! Levels follow from the potentials, 32 filters at a time, by one float
//! multiply per potential where every filter of a 4-bit layer allows it
//! ([`LevelScales`], [`activation::LevelScale`]), else by counting
//! precomputed level cuts ([`level_cuts`]), in 16-bit lanes where a
//! layer's cuts fit them ([`NarrowCuts`]), else in 32-bit lanes.

use super::{ConvShape, Grid, KernelWeights};
use crate::activation::{self, Precision};
use crate::layer::LayerKind;
use crate::model::ValidLayer;
use crate::tail::CUT_BLOCK;

#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// Filters per micro-kernel tile; B's columns are padded to a multiple
/// (of [`CUT_BLOCK`] too, the filters whose levels are counted at once).
pub const TILE_F: usize = 32;
const _: () = assert!(TILE_F.is_multiple_of(CUT_BLOCK));

/// The SIMD instruction set the fast kernels may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Simd(Isa);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX2 plus AVX-VNNI (256-bit `vpdpbusd`).
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    /// AVX-512 VNNI, and AMX-INT8 tiles for the byte products.
    #[cfg(target_arch = "x86_64")]
    Amx,
    /// NEON with the dot-product instructions (`sdot`) for the byte
    /// products.
    #[cfg(target_arch = "aarch64")]
    NeonDotprod,
    /// NEON with the dot-product and int8 matrix instructions (`sudot`, u8 x
    /// s8) for the byte products.
    #[cfg(target_arch = "aarch64")]
    NeonI8mm,
}

impl Simd {
    /// Plain Rust, any CPU.
    pub const fn portable() -> Simd {
        Simd(Isa::Portable)
    }

    /// AVX2 micro-kernels.
    ///
    /// # Safety
    /// The CPU must support AVX2 (`is_x86_feature_detected!("avx2")`).
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx2_unchecked() -> Simd {
        Simd(Isa::Avx2)
    }

    /// AVX2 micro-kernels, and AVX-VNNI `vpdpbusd` for the byte product.
    ///
    /// # Safety
    /// The CPU must support AVX2 and AVX-VNNI.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx_vnni_unchecked() -> Simd {
        Simd(Isa::AvxVnni)
    }

    /// AVX-512 VNNI micro-kernels.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx512_vnni_unchecked() -> Simd {
        Simd(Isa::Avx512Vnni)
    }

    /// AVX-512 VNNI micro-kernels, and AMX-INT8 tiles (`tdpbusd`,
    /// `tdpbssd`) for the byte products.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI and AMX-TILE and
    /// AMX-INT8, and the operating system must have granted this process
    /// the tile state (on Linux, [`Simd::available`] asks for it).
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn amx_unchecked() -> Simd {
        Simd(Isa::Amx)
    }

    /// NEON, and the dot-product instruction `sdot` for the byte products
    /// ([`neon`]).
    ///
    /// # Safety
    /// The CPU must support FEAT_DotProd
    /// (`is_aarch64_feature_detected!("dotprod")`).
    #[cfg(target_arch = "aarch64")]
    pub const unsafe fn neon_dotprod_unchecked() -> Simd {
        Simd(Isa::NeonDotprod)
    }

    /// NEON, and the mixed-sign dot-product instruction `sudot` (u8 x s8)
    /// for the byte products ([`neon`]).
    ///
    /// # Safety
    /// The CPU must support FEAT_DotProd and FEAT_I8MM
    /// (`is_aarch64_feature_detected!("dotprod")` and `("i8mm")`).
    #[cfg(target_arch = "aarch64")]
    pub const unsafe fn neon_i8mm_unchecked() -> Simd {
        Simd(Isa::NeonI8mm)
    }

    /// The best instruction set of this CPU (std: it needs the run-time
    /// CPU feature detection).
    #[cfg(feature = "std")]
    pub fn detect() -> Simd {
        Simd::available().pop().unwrap_or(Simd::portable())
    }

    /// Every instruction set this CPU runs, portable first, best last.
    #[cfg(feature = "std")]
    #[allow(unsafe_code)] // Each constructor's requirement is checked first.
    pub fn available() -> std::vec::Vec<Simd> {
        #[allow(unused_mut)]
        let mut v = std::vec![Simd::portable()];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: detected on this CPU.
                v.push(unsafe { Simd::avx2_unchecked() });
                if std::is_x86_feature_detected!("avxvnni") {
                    // SAFETY: detected on this CPU.
                    v.push(unsafe { Simd::avx_vnni_unchecked() });
                }
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                // SAFETY: detected on this CPU.
                v.push(unsafe { Simd::avx512_vnni_unchecked() });
                if amx::request() {
                    // SAFETY: AVX-512 detected above, AMX-INT8 by CPUID,
                    // and the tile state granted by the system.
                    v.push(unsafe { Simd::amx_unchecked() });
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            // SAFETY: detected on this CPU.
            v.push(unsafe { Simd::neon_dotprod_unchecked() });
            if std::arch::is_aarch64_feature_detected!("i8mm") {
                // SAFETY: both detected on this CPU.
                v.push(unsafe { Simd::neon_i8mm_unchecked() });
            }
        }
        v
    }

    /// Name of the instruction set, for reports.
    pub fn name(&self) -> &'static str {
        match self.0 {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => "avx-vnni",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => "avx512-vnni",
            #[cfg(target_arch = "x86_64")]
            Isa::Amx => "amx",
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => "neon-dotprod",
            #[cfg(target_arch = "aarch64")]
            Isa::NeonI8mm => "neon-i8mm",
        }
    }

    /// The instruction that runs the byte product ([`Dot::U8`]) with this
    /// instruction set, for reports.
    pub fn u8_instruction(&self) -> &'static str {
        match self.0 {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "vpmaddubsw",
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => "vpdpbusd ymm",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => "vpdpbusd zmm",
            #[cfg(target_arch = "x86_64")]
            Isa::Amx => "tdpbusd (AMX) from 128 channels and filters, else vpdpbusd zmm",
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => "sdot (A - 128, plus 128 x column sums)",
            #[cfg(target_arch = "aarch64")]
            Isa::NeonI8mm => "sudot",
        }
    }

    /// Whether this instruction set runs a byte product whose 16-bit lanes
    /// may sum `i16_quads` quads ([`Dot::U8`]) exactly: AVX2 needs at least
    /// one, the others sum in 32 bits.
    pub fn runs_u8(&self, i16_quads: u32) -> bool {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i16_quads; // Only AVX2 sums in 16-bit lanes.
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => i16_quads >= 1,
            _ => true,
        }
    }
}

/// Sizes of one matrix product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    /// Rows of A (output cells).
    pub rows: usize,
    /// Inner dimension and its padding to an even count.
    pub k: usize,
    pub k_pad: usize,
    /// K padded to quads: the row length of a byte A ([`Dot::U8`]).
    pub k4: usize,
    /// Columns of B (filters) and their padding to [`TILE_F`].
    pub f: usize,
    pub f_pad: usize,
}

impl Gemm {
    pub fn new(rows: usize, k: usize, f: usize) -> Gemm {
        Gemm {
            rows,
            k,
            k_pad: k.next_multiple_of(2),
            k4: k.next_multiple_of(4),
            f,
            f_pad: f.next_multiple_of(TILE_F),
        }
    }
}

/// How the product of a layer multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dot {
    /// A and B in 16 bits, pairs of K (`vpmaddwd`, `vpdpwssd`).
    I16,
    /// A in u8 and B in s8, quads of K, 32-bit sums. `i16_quads`: how many
    /// quads a 16-bit lane may sum without saturating or wrapping
    /// (`i16::MAX / (2 * max_a * max_|w|)`, the AVX2 `vpmaddubsw` chunk).
    U8 { i16_quads: u32 },
    /// The pointwise product of a separable layer on bytes: each depthwise
    /// potential `d` is split as `d + 128 = 256 h + l` with `l` a byte, and
    /// the product is `l · W` (the byte product, `i16_quads` as in
    /// [`Dot::U8`] for `l <= 255`) plus `256 h · W` over the pairs whose `h`
    /// is not zero (16 bits) minus `128 · sum_k W[k]` per filter
    /// ([`split_product`]). Exact; where too many potentials leave
    /// `-128..=127` for the high part to be sparse, the layer runs the
    /// 16-bit product for that input instead.
    SplitU8 { i16_quads: u32 },
}

/// Bytes the kernels align A and the product to: a cache line, so that a
/// row of 64 bytes (an AMX tile row, a zmm) is one line, not two.
pub const ALIGN: usize = 64;

/// i16 cells of A's buffer beyond its rows, room to start them at
/// [`ALIGN`] wherever the buffer starts.
pub const A_SLACK: usize = ALIGN / 2;

/// i32 cells of the scratch buffer beyond the product and depthwise
/// potentials, room to start them at [`ALIGN`].
pub const SCRATCH_SLACK: usize = ALIGN / 4;

/// `v` from its first element at an [`ALIGN`]-byte address (at most
/// `ALIGN` bytes in; the buffers are sized with that slack). The AMX tiles
/// read and write rows of 64 bytes: where a buffer started off a line, each
/// row took two lines (`ds_cnn_cifar10` ran 19-23 % slower in a build whose
/// allocations happened to land so).
fn aligned<T>(v: &mut [T]) -> &mut [T] {
    let skip = v.as_ptr().align_offset(ALIGN).min(v.len());
    &mut v[skip..]
}

/// Everything the fast kernel of one layer needs to know, and the buffer
/// sizes it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastPlan {
    pub gemm: Gemm,
    /// i16 cells of packed B (for a separable layer: the 16-bit pairs,
    /// then room for the byte quads of [`Dot::SplitU8`]).
    pub packed_len: usize,
    /// i16 cells of A (im2col or narrowed depthwise).
    pub a_len: usize,
    /// i32 cells after the product in the scratch buffer (separable only):
    /// room for the low bytes of the depthwise potentials
    /// ([`Dot::SplitU8`]).
    pub depthwise_len: usize,
    /// i32 cells of the product (rows x f_pad).
    pub product_len: usize,
    /// i32 cells of the level cuts: the cuts (levels x f_pad), then room
    /// for their 16-bit form ([`NarrowCuts`]) or the scaled form
    /// ([`LevelScales`]); for a separable layer, then the offsets of
    /// [`Dot::SplitU8`] (`offsets_len`).
    pub cuts_len: usize,
    /// The last i32 cells of the cuts buffer, the per-filter offsets added
    /// to the byte product ([`Dot::SplitU8`]): `f_pad` for a separable
    /// layer, else 0.
    pub offsets_len: usize,
    /// The level cuts per filter (`2^act_bits - 1`; 0 without activation).
    pub cut_count: usize,
    /// How the tail finds levels ([`LevelForm`]).
    pub level_form: LevelForm,
    /// Whether the depthwise product of a separable layer may multiply its
    /// taps in byte pairs summed in 16 bits (u8 input x s8 weight, the AVX2
    /// `vpmaddubsw`): no pair exceeds `i16::MAX` (`2 * max_input * max|w|`)
    /// and the kernel has at most [`MAX_PAIRED_TAPS`] taps.
    pub depthwise_pairs: bool,
    /// How the product multiplies ([`Self::sizes`] and [`Self::of`]: 16-bit;
    /// [`Self::with_dot`] may choose bytes). A byte A and a byte B fit the
    /// buffers sized for 16 bits (`k4 <= 2 * k_pad`).
    pub dot: Dot,
    /// How a byte product's B is packed ([`Self::with_dot`]: for its
    /// instruction set).
    pub byte_layout: ByteLayout,
}

impl FastPlan {
    /// The plan of a layer from its sizes alone (whether its operands fit 16
    /// bits is [`Self::of`]'s question).
    pub fn sizes(layer: &ValidLayer) -> FastPlan {
        let p = layer.params();
        let conv = layer.shapes.conv;
        let cin = p.input.channels as usize;
        let cells = conv.rows as usize * conv.cols as usize;
        let (rows, k, depthwise_len) = match p.kind {
            LayerKind::InputConvolutional | LayerKind::Convolutional => {
                (cells, p.kernel.area() * cin, 0)
            }
            LayerKind::SeparableConvolutional => (cells, cin, cells * cin),
            LayerKind::FullyConnected => (1, p.input.len(), 0),
        };
        let gemm = Gemm::new(rows, k, p.filters as usize);
        let levels = activation::max_level(p.act_bits) as usize;
        // Room for the split byte product where a layer may take it
        // (Dot::SplitU8): byte quads of B, the low bytes of A (and the high
        // ones, for AMX tiles), the offsets.
        let (split_b, low, offsets_len) = match Self::may_split(p.kind, &gemm) {
            true => (
                split_quads_len(&gemm),
                (2 * rows * gemm.k4).div_ceil(4),
                gemm.f_pad,
            ),
            false => (0, 0, 0),
        };
        FastPlan {
            gemm,
            packed_len: gemm.k_pad * gemm.f_pad + split_b,
            a_len: rows * gemm.k_pad + A_SLACK,
            depthwise_len: depthwise_len.max(low) + SCRATCH_SLACK,
            product_len: rows * gemm.f_pad,
            cuts_len: offsets_len
                + if p.activation {
                    levels * gemm.f_pad
                        + NarrowCuts::len(levels, gemm.f_pad).max(LevelScales::len(gemm.f_pad))
                } else {
                    0
                },
            offsets_len,
            cut_count: if p.activation { levels } else { 0 },
            level_form: LevelForm::Cuts,
            depthwise_pairs: false,
            dot: Dot::I16,
            byte_layout: ByteLayout::Quads,
        }
    }

    /// i32 cells of the scratch buffer the fast kernel takes for one input:
    /// the product, then the depthwise potentials or the split's bytes,
    /// with [`SCRATCH_SLACK`] to align them.
    pub const fn scratch_len(&self) -> usize {
        self.product_len + self.depthwise_len
    }

    /// Whether a layer of this kind and product may take the split byte
    /// product ([`Dot::SplitU8`]): separable, with at least [`SPLIT_MIN`]
    /// channels and filters. [`Self::sizes`] makes room for it only there.
    pub fn may_split(kind: LayerKind, gemm: &Gemm) -> bool {
        kind == LayerKind::SeparableConvolutional && gemm.k >= SPLIT_MIN && gemm.f >= SPLIT_MIN
    }

    /// The plan of a layer, `None` if an operand could exceed 16 bits (then
    /// the event or reference kernel must run the layer): the depthwise
    /// potentials of a separable layer, on inputs up to `layer.max_input`.
    pub fn of(layer: &ValidLayer, weights: &KernelWeights) -> Option<FastPlan> {
        let p = layer.params();
        if p.kind == LayerKind::SeparableConvolutional {
            let cin = p.input.channels as usize;
            let taps = p.kernel.area();
            let fits = (0..cin).all(|c| {
                let sum: i64 = (0..taps)
                    .map(|t| (weights.main[t * cin + c] as i64).abs())
                    .sum();
                sum * layer.max_input as i64 <= i16::MAX as i64
            });
            if !fits {
                return None;
            }
        }
        let mut plan = FastPlan::sizes(layer);
        plan.level_form = LevelForm::of(layer);
        if p.kind == LayerKind::SeparableConvolutional {
            let max_w = weights
                .main
                .iter()
                .map(|&v| (v as i64).abs())
                .max()
                .unwrap_or(0);
            plan.depthwise_pairs = p.kernel.area() <= MAX_PAIRED_TAPS
                && 2 * max_w * layer.max_input as i64 <= i16::MAX as i64;
        }
        Some(plan)
    }

    /// This plan with the byte product where `simd` runs it exactly and
    /// `allow_u8` (the instruction set passed its start-up check): layers
    /// whose A is uint8 (input and plain convolutions, fully connected).
    /// The AVX2 `vpmaddubsw` sums pairs `a0 * w0 + a1 * w1` into 16 bits with
    /// saturation, then we add them in 16-bit lanes: with `max_a` the
    /// highest input value (or padding value) and `max_w` the largest weight
    /// magnitude, a pair is at most `2 * max_a * max_w` in magnitude, so
    /// `n = i16::MAX / (2 * max_a * max_w)` quads (n pairs per lane) never
    /// leave i16; the lanes are widened to 32 bits every `n` quads.
    pub fn with_dot(
        mut self,
        layer: &ValidLayer,
        weights: &KernelWeights,
        simd: Simd,
        allow_u8: bool,
    ) -> FastPlan {
        let p = layer.params();
        if !allow_u8 {
            return self;
        }
        let separable = p.kind == LayerKind::SeparableConvolutional;
        let w = product_weights(layer, weights);
        let max_w = w.iter().map(|&v| (v as i64).abs()).max().unwrap_or(0);
        // The low bytes of a separable layer's depthwise potentials reach 255.
        let max_a = match separable {
            true => u8::MAX as i64,
            false => (layer.max_input as i64).max(p.padding_value as i64),
        };
        let pair = 2 * max_a * max_w;
        let i16_quads = if pair == 0 {
            u32::MAX
        } else {
            (i16::MAX as i64 / pair).min(u32::MAX as i64) as u32
        };
        if !simd.runs_u8(i16_quads) {
            return self;
        }
        if !separable {
            self.dot = Dot::U8 { i16_quads };
        } else if simd.0 != Isa::Portable && Self::may_split(p.kind, &self.gemm) {
            // In plain Rust, and on small products, the split costs more
            // than it saves.
            self.dot = Dot::SplitU8 { i16_quads };
        }
        if self.dot != Dot::I16 {
            self.byte_layout = ByteLayout::of(simd, &self.gemm);
        }
        self
    }
}

/// Packs B: the kernels' (K x F) weight matrix `w` (main, or pointwise for a
/// separable layer) as pairs of rows interleaved per column,
/// `out[(k/2) * f_pad * 2 + col * 2 + k % 2]`, zero beyond K and F.
pub fn pack_b(g: &Gemm, w: &[i8], out: &mut [i16]) {
    let out = &mut out[..g.k_pad * g.f_pad];
    out.fill(0);
    for k in 0..g.k {
        for col in 0..g.f {
            out[(k / 2) * g.f_pad * 2 + col * 2 + k % 2] = w[k * g.f + col] as i16;
        }
    }
}

/// Packs B for the byte product: `out[(k/4) * f_pad * 4 + col * 4 + k % 4]`,
/// zero beyond K and F.
pub fn pack_b_u8(g: &Gemm, w: &[i8], out: &mut [i8]) {
    let out = &mut out[..g.k4 * g.f_pad];
    out.fill(0);
    for k in 0..g.k {
        for col in 0..g.f {
            out[(k / 4) * g.f_pad * 4 + col * 4 + k % 4] = w[k * g.f + col];
        }
    }
}

/// How a byte product's B is packed for an instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteLayout {
    /// Quads of K per filter ([`pack_b_u8`]).
    Quads,
    /// The quads in panels of `width` filters (the last panel the
    /// `f_pad % width` filters left), each panel's rows of K one run of
    /// memory ([`pack_panels`]): what the zmm and ymm kernels read, a tile's
    /// filters at a time. In rows over all the filters, one tile's column of
    /// B lay `4 f_pad` bytes apart per quad of K, a power of two from 128
    /// filters on, so the column fell on a few sets of the L1 cache and did
    /// not stay there.
    Panels(usize),
    /// AMX tiles ([`amx::pack_tiles`]): where [`gemm_u8`] and the split
    /// product run `simd`'s product on tiles (AMX, [`amx::suits`]).
    Tiles,
}

impl ByteLayout {
    /// The layout `simd`'s byte products read for product `g`.
    pub fn of(simd: Simd, g: &Gemm) -> ByteLayout {
        #[cfg(target_arch = "x86_64")]
        match simd.0 {
            Isa::Amx if amx::suits(g) => return ByteLayout::Tiles,
            // zmm tiles of 64 filters (then 32: `filter_tiles!`).
            Isa::Amx | Isa::Avx512Vnni => return ByteLayout::Panels(2 * TILE_F),
            Isa::Avx2 | Isa::AvxVnni => return ByteLayout::Panels(x86::YMM_TILE_F),
            _ => {}
        }
        let _ = (simd, g);
        ByteLayout::Quads
    }
}

/// Packs B (as [`pack_b_u8`]) in `layout`: what [`gemm_u8`] and
/// [`split_product`] read on an instruction set whose
/// [`ByteLayout::of`] is `layout`.
pub fn pack_b_bytes(layout: ByteLayout, g: &Gemm, w: &[i8], out: &mut [i8]) {
    match layout {
        ByteLayout::Quads => pack_b_u8(g, w, out),
        ByteLayout::Panels(width) => pack_panels(g, w, width, out),
        #[cfg(target_arch = "x86_64")]
        ByteLayout::Tiles => amx::pack_tiles(g, w, out),
        #[cfg(not(target_arch = "x86_64"))]
        ByteLayout::Tiles => unreachable!("AMX tiles on x86-64 only"),
    }
}

/// B's quads in panels of `width` filters ([`ByteLayout::Panels`]): filter
/// `col` of the panel from filter `p0` (`pw` wide: `width`, or what is left
/// of `f_pad`) at `p0 * k4 + (k / 4) * 4 pw + (col - p0) * 4 + k % 4`.
fn pack_panels(g: &Gemm, w: &[i8], width: usize, out: &mut [i8]) {
    let out = &mut out[..g.k4 * g.f_pad];
    out.fill(0);
    for col in 0..g.f {
        let p0 = col / width * width;
        let pw = width.min(g.f_pad - p0);
        for k in 0..g.k {
            out[p0 * g.k4 + (k / 4) * 4 * pw + (col - p0) * 4 + k % 4] = w[k * g.f + col];
        }
    }
}

/// i16 cells of the byte quads of B after its 16-bit pairs in a split
/// product's packed B ([`pack_b_split`]).
pub fn split_quads_len(g: &Gemm) -> usize {
    (g.k4 * g.f_pad).div_ceil(2)
}

/// Packs B for the split byte product ([`Dot::SplitU8`]): the 16-bit pairs
/// ([`pack_b`], for the high part and the 16-bit fallback), then the byte
/// quads ([`pack_b_bytes`] in `layout`) in the i16 cells that follow;
/// `k_pad * f_pad + split_quads_len` cells.
pub fn pack_b_split(layout: ByteLayout, g: &Gemm, w: &[i8], out: &mut [i16]) {
    let (pairs, quads) = out.split_at_mut(g.k_pad * g.f_pad);
    pack_b(g, w, pairs);
    pack_b_bytes(
        layout,
        g,
        w,
        bytemuck_i8(bytes_mut(&mut quads[..split_quads_len(g)])),
    );
}

/// The bytes of an i16 buffer (a byte A or B lives in the 16-bit buffers).
fn bytes_mut(v: &mut [i16]) -> &mut [u8] {
    // SAFETY: same allocation, twice the length in bytes; u8 has no
    // alignment or validity requirement.
    unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 2) }
}

/// The bytes of an i32 buffer (the low bytes of a split product live in
/// the scratch buffer).
fn i32_bytes_mut(v: &mut [i32]) -> &mut [u8] {
    // SAFETY: same allocation, four times the length in bytes; u8 has no
    // alignment or validity requirement.
    unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 4) }
}

/// Bytes as signed bytes.
fn bytemuck_i8(v: &mut [u8]) -> &mut [i8] {
    // SAFETY: i8 and u8 have the same size, alignment and valid values.
    unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut i8, v.len()) }
}

/// An i16 buffer read as signed bytes.
fn signed_bytes(v: &[i16]) -> &[i8] {
    // SAFETY: as in `bytes_mut`; any byte is a valid i8.
    unsafe { core::slice::from_raw_parts(v.as_ptr() as *const i8, v.len() * 2) }
}

/// The weights of the product: pointwise for a separable layer, else main.
pub fn product_weights<'w>(layer: &ValidLayer, weights: &KernelWeights<'w>) -> &'w [i8] {
    match layer.params().kind {
        LayerKind::SeparableConvolutional => weights.pointwise,
        _ => weights.main,
    }
}

/// Level cuts of a layer with activation: the output level is the number
/// of cuts a potential exceeds (see [`activation::level_cut`]), counted
/// [`CUT_BLOCK`] filters at a time, so the cuts are laid out block by
/// block, `[block][level][filter in block]` (one block's cuts are one run);
/// padding columns never fire. Their 16-bit form ([`NarrowCuts`]) or the
/// scaled form ([`LevelScales`]) follows, as `plan.level_form` says.
pub fn level_cuts(layer: &ValidLayer, plan: &FastPlan, out: &mut [i32]) {
    let p = layer.params();
    let f = p.filters as usize;
    let f_pad = plan.gemm.f_pad;
    let levels = activation::max_level(p.act_bits) as usize;
    let (cuts, rest) = out[..plan.cuts_len - plan.offsets_len].split_at_mut(levels * f_pad);
    cuts.fill(i32::MAX);
    for filter in 0..f {
        let (threshold, divisor) = threshold_and_divisor(layer, filter);
        for k in 0..levels {
            cuts[cut_index(levels, k, filter)] =
                activation::level_cut(threshold, divisor, p.act_bits, k);
        }
    }
    match plan.level_form {
        LevelForm::Cuts => {}
        LevelForm::NarrowCuts => NarrowCuts::write(cuts, levels, f_pad, rest),
        LevelForm::Scaled(_) => LevelScales::write(layer, f_pad, rest),
    }
}

/// Where cut `k` of `filter` lies in a layer's blocked cuts ([`level_cuts`]).
pub const fn cut_index(levels: usize, k: usize, filter: usize) -> usize {
    (filter / CUT_BLOCK * levels + k) * CUT_BLOCK + filter % CUT_BLOCK
}

/// How a layer's tail finds levels from potentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelForm {
    /// Count the i32 cuts, 8 lanes to a 256-bit register.
    Cuts,
    /// Count the 16-bit cuts ([`NarrowCuts`]), 16 lanes.
    NarrowCuts,
    /// One float multiply per potential ([`LevelScales`]), whatever the
    /// level count, in the precision every filter's `S16` allows: chosen
    /// for 4-bit activations (15 cuts to count).
    Scaled(Precision),
}

impl LevelForm {
    /// Activations with at least this many cuts take the scaled form where
    /// it is exact: with 15 cuts the count costs two instructions per cut
    /// and 16 lanes (or 8, in i32), the scaled form seven per 8 lanes (or
    /// 4, in double precision).
    pub const SCALED_MIN_CUTS: usize = 15;

    /// The fastest exact form for `layer` (with activation; `Cuts` for a
    /// layer without).
    pub fn of(layer: &ValidLayer) -> LevelForm {
        let p = layer.params();
        if !p.activation {
            LevelForm::Cuts
        } else if let Some(precision) = LevelScales::precision(layer)
            .filter(|_| activation::max_level(p.act_bits) as usize >= Self::SCALED_MIN_CUTS)
        {
            LevelForm::Scaled(precision)
        } else if NarrowCuts::fit(layer) {
            LevelForm::NarrowCuts
        } else {
            LevelForm::Cuts
        }
    }
}

/// Levels by a float multiply ([`activation::LevelScale`]), as three rows
/// of `f_pad` i32 words after the i32 cuts: each filter's threshold, top
/// potential, and scale (f32 bits). Padding columns have all three 0, so
/// their level is 0.
pub struct LevelScales;

impl LevelScales {
    /// i32 words of the scaled form over `f_pad` columns.
    pub const fn len(f_pad: usize) -> usize {
        3 * f_pad
    }

    /// The precision that is exact for every filter of `layer` (with
    /// activation): single where all allow it, else double; `None` where a
    /// filter has no scaled form.
    pub fn precision(layer: &ValidLayer) -> Option<Precision> {
        let mut precision = Precision::Single;
        for filter in 0..layer.params().filters as usize {
            if Self::scale(layer, filter)?.precision == Precision::Double {
                precision = Precision::Double;
            }
        }
        Some(precision)
    }

    fn scale(layer: &ValidLayer, filter: usize) -> Option<activation::LevelScale> {
        let (threshold, divisor) = threshold_and_divisor(layer, filter);
        activation::LevelScale::of(threshold, divisor, layer.params().act_bits)
    }

    /// Writes the scaled form of `layer` (every filter fitting) to `out`.
    pub fn write(layer: &ValidLayer, f_pad: usize, out: &mut [i32]) {
        let rows = &mut out[..Self::len(f_pad)];
        rows.fill(0);
        let (threshold, rest) = rows.split_at_mut(f_pad);
        let (top, scale) = rest.split_at_mut(f_pad);
        for filter in 0..layer.params().filters as usize {
            let s = Self::scale(layer, filter).expect("LevelScales::precision");
            threshold[filter] = s.threshold;
            top[filter] = s.top;
            scale[filter] = s.scale.to_bits() as i32;
        }
    }
}

/// A filter's threshold and `floor(16 * act_step)`.
fn threshold_and_divisor(layer: &ValidLayer, filter: usize) -> (i32, i64) {
    let l = &layer.layer;
    let divisor = activation::step_divisor(l.act_step.get(filter));
    (l.threshold.get(filter), divisor)
}

/// The level cuts in 16 bits, so that levels are counted 16 lanes to a
/// 256-bit register instead of 8. Per filter, with its cuts `c_0 <= ... <=
/// c_last`: `lo = c_0 - 1` and `hi = c_last + 1` (saturated at `i32::MAX`)
/// as i32, and each cut as `c_k - lo` in i16. A potential `v` clamped to
/// `[lo, hi]` exceeds exactly the cuts `v` exceeds (below `lo` it exceeds
/// none; above `hi`, all), so its level is the number of `c_k - lo` that
/// `clamp(v, lo, hi) - lo` exceeds, all of them in `0..=hi - lo`. Valid
/// when `c_0 > i32::MIN` and `hi - lo <= i16::MAX` for every filter
/// ([`Self::fit`]); padding columns (every cut `i32::MAX`) never fire.
///
/// Layout (i32 words, after the i32 cuts): the `lo` row, the `hi` row
/// (`f_pad` each), then the i16 cuts blocked as the i32 ones,
/// `[block][level][filter in block]`, two to a word in memory order (as
/// `[i32]` read as `[i16]`).
pub struct NarrowCuts;

impl NarrowCuts {
    /// i32 words of the 16-bit form of `levels` cuts over `f_pad` columns.
    pub const fn len(levels: usize, f_pad: usize) -> usize {
        2 * f_pad + levels * f_pad / 2
    }

    /// Whether every filter of `layer` (with activation) has cuts that fit.
    pub fn fit(layer: &ValidLayer) -> bool {
        let p = layer.params();
        let last = activation::max_level(p.act_bits) as usize - 1;
        (0..p.filters as usize).all(|filter| {
            let (threshold, divisor) = threshold_and_divisor(layer, filter);
            Self::fits(
                activation::level_cut(threshold, divisor, p.act_bits, 0),
                activation::level_cut(threshold, divisor, p.act_bits, last),
            )
        })
    }

    /// Whether a filter's cuts from `first` to `last` fit: `first - 1` is an
    /// i32 and `hi - lo` an i16.
    pub const fn fits(first: i32, last: i32) -> bool {
        let hi = if last == i32::MAX {
            last as i64
        } else {
            last as i64 + 1
        };
        first > i32::MIN && hi - (first as i64 - 1) <= i16::MAX as i64
    }

    /// Writes the 16-bit form of `cuts` (blocked, `levels` per filter, all
    /// fitting) to `out`.
    pub fn write(cuts: &[i32], levels: usize, f_pad: usize, out: &mut [i32]) {
        let (bounds, narrow) = out[..Self::len(levels, f_pad)].split_at_mut(2 * f_pad);
        let (lo, hi) = bounds.split_at_mut(f_pad);
        for col in 0..f_pad {
            lo[col] = cuts[cut_index(levels, 0, col)] - 1;
            hi[col] = cuts[cut_index(levels, levels - 1, col)].saturating_add(1);
        }
        // Cut i of the i16 run is i32 cut i of the blocked table.
        let half =
            |i: usize| (cuts[i] - lo[i / (levels * CUT_BLOCK) * CUT_BLOCK + i % CUT_BLOCK]) as i16;
        for (w, word) in narrow.iter_mut().enumerate() {
            let (a, b) = (half(2 * w).to_ne_bytes(), half(2 * w + 1).to_ne_bytes());
            *word = i32::from_ne_bytes([a[0], a[1], b[0], b[1]]);
        }
    }
}

/// The fast kernel's operands of one layer: its plan, packed B and level
/// cuts (see [`pack_b`], [`level_cuts`]).
#[derive(Clone, Copy, Debug)]
pub struct FastOperands<'p> {
    pub plan: FastPlan,
    pub packed_b: &'p [i16],
    /// `[level][f_pad]`, then their 16-bit or scaled form (`plan.level_form`)
    /// ([`level_cuts`]); empty for a layer without activation.
    pub cuts: &'p [i32],
    /// Per-filter offsets of the split byte product ([`Dot::SplitU8`]),
    /// `f_pad` of them; empty for other products.
    pub offsets: &'p [i32],
}

impl<'p> FastOperands<'p> {
    /// The operands in the buffers [`Self::build`] filled: `packed` and
    /// `cuts` hold at least `plan.packed_len` and `plan.cuts_len` cells.
    pub fn from_parts(plan: FastPlan, packed: &'p [i16], cuts: &'p [i32]) -> FastOperands<'p> {
        let (cuts, offsets) = cuts[..plan.cuts_len].split_at(plan.cuts_len - plan.offsets_len);
        FastOperands {
            plan,
            packed_b: &packed[..plan.packed_len],
            cuts,
            offsets,
        }
    }

    /// How the layer's tail finds levels (`plan.level_form`): the scaled
    /// form, or the i32 cuts with their 16-bit form where every filter's
    /// fits ([`NarrowCuts`]).
    pub fn activation(&self) -> crate::tail::Activation<'p> {
        use crate::tail::Activation;
        let stride = self.plan.gemm.f_pad;
        let (cuts, form) = self.cuts.split_at(self.plan.cut_count * stride);
        match self.plan.level_form {
            LevelForm::Scaled(precision) => Activation::Scaled {
                rows: &form[..LevelScales::len(stride)],
                stride,
                precision,
            },
            LevelForm::NarrowCuts => Activation::Cuts {
                cuts,
                narrow: Some(form),
                stride,
            },
            LevelForm::Cuts => Activation::Cuts {
                cuts,
                narrow: None,
                stride,
            },
        }
    }

    /// Packs B and computes the level cuts of `layer` into the buffers
    /// (sized by `plan.packed_len` and `plan.cuts_len`).
    pub fn build(
        layer: &ValidLayer,
        plan: FastPlan,
        weights: &KernelWeights,
        packed: &'p mut [i16],
        cuts: &'p mut [i32],
    ) -> FastOperands<'p> {
        let w = product_weights(layer, weights);
        let g = &plan.gemm;
        match plan.dot {
            Dot::I16 => pack_b(g, w, packed),
            Dot::U8 { .. } => {
                let bytes = bytes_mut(&mut packed[..plan.packed_len]);
                // SAFETY-free reinterpretation: i8 and u8 share a layout.
                let signed: &mut [i8] = bytemuck_i8(bytes);
                pack_b_bytes(plan.byte_layout, g, w, signed)
            }
            Dot::SplitU8 { .. } => {
                pack_b_split(plan.byte_layout, g, w, &mut packed[..plan.packed_len]);
                let offsets = &mut cuts[plan.cuts_len - plan.offsets_len..plan.cuts_len];
                split_offsets(g, w, offsets);
            }
        }
        if layer.params().activation {
            level_cuts(layer, &plan, cuts);
        }
        FastOperands::from_parts(plan, packed, cuts)
    }
}

/// Work to compile once per instruction set (see [`with_simd`]). `run`
/// must be `#[inline(always)]`, and so must what it calls, so that it is
/// inlined into the instruction set's copy.
pub trait SimdTask {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `task` compiled for `simd`'s instruction set, so that the plain-Rust
/// stages it inlines (im2col, depthwise, the layer tail) vectorize too.
#[inline(always)]
pub fn with_simd<T: SimdTask>(simd: Simd, task: T) -> T::Output {
    match simd.0 {
        Isa::Portable => task.run(),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX2 support.
        Isa::Avx2 => unsafe { x86::with_avx2(task) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX-VNNI support.
        Isa::AvxVnni => unsafe { x86::with_avx_vnni(task) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX-512 VNNI support.
        Isa::Avx512Vnni => unsafe { x86::with_avx512(task) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX-512 VNNI support.
        Isa::Amx => unsafe { x86::with_avx512(task) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: constructing this Simd value asserted dot-product support.
        Isa::NeonDotprod => unsafe { neon::with_dotprod(task) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: constructing this Simd value asserted dot-product and
        // int8 matrix support.
        Isa::NeonI8mm => unsafe { neon::with_i8mm(task) },
    }
}

/// The potentials of a layer with the fast kernel, of conv cells `cells`
/// (all of them: `0..plan.gemm.rows`; a band of them, see
/// [`crate::tail::band_cells`]): builds A into `a`, multiplies it by packed
/// B into `scratch` (which also holds the depthwise potentials of a
/// separable layer), the band's first cell first. Buffers sized by the plan
/// (a band needs less).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn potentials<'s>(
    layer: &ValidLayer,
    ops: &FastOperands,
    weights: &KernelWeights,
    simd: Simd,
    input: &[u8],
    cells: core::ops::Range<usize>,
    a: &mut [i16],
    scratch: &'s mut [i32],
) -> Grid<'s> {
    stacked(layer, ops, weights, simd, &[input], cells, a, scratch)
}

/// The potentials of a layer for several inputs at once (a stack): the
/// rows of A of input `j` follow those of input `j - 1`, and one product
/// multiplies them all, so that B is read once for the whole stack (a
/// layer of few cells and many weights multiplies its B by a few rows
/// only). The grid holds input `j`'s cells from cell `j * plan.gemm.rows`.
/// `a` holds `inputs.len() * plan.a_len` cells, `scratch`
/// `inputs.len() * plan.scratch_len()`.
#[inline(always)]
pub fn potentials_stacked<'s>(
    layer: &ValidLayer,
    ops: &FastOperands,
    weights: &KernelWeights,
    simd: Simd,
    inputs: &[&[u8]],
    a: &mut [i16],
    scratch: &'s mut [i32],
) -> Grid<'s> {
    let cells = 0..ops.plan.gemm.rows;
    stacked(layer, ops, weights, simd, inputs, cells, a, scratch)
}

/// [`potentials`] of conv cells `cells` of every input of `inputs`, their
/// rows one after the other.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn stacked<'s>(
    layer: &ValidLayer,
    ops: &FastOperands,
    weights: &KernelWeights,
    simd: Simd,
    inputs: &[&[u8]],
    cells: core::ops::Range<usize>,
    a: &mut [i16],
    scratch: &'s mut [i32],
) -> Grid<'s> {
    let plan = &ops.plan;
    assert!(cells.end <= plan.gemm.rows, "cells beyond the layer's");
    let first = cells.start;
    let per_input = cells.len();
    let n = inputs.len();
    let g = &Gemm {
        rows: per_input * n,
        ..plan.gemm
    };
    let p = layer.params();
    let a = &mut aligned(a)[..g.rows * g.k_pad];
    let (product, depthwise) = aligned(scratch).split_at_mut(n * plan.product_len);
    let product = &mut product[..g.rows * g.f_pad];
    let grid = |product: &'s mut [i32]| Grid {
        potentials: product,
        stride: g.f_pad,
    };
    if let Dot::U8 { i16_quads } = plan.dot {
        let a = &mut bytes_mut(a)[..g.rows * g.k4];
        for (input, a) in inputs.iter().zip(a.chunks_exact_mut(per_input * g.k4)) {
            match p.kind {
                LayerKind::FullyConnected => {
                    a[..g.k].copy_from_slice(&input[..g.k]);
                    a[g.k..].fill(0);
                }
                _ => im2col(
                    &ConvShape::of(layer),
                    input,
                    p.padding_value,
                    g.k4,
                    first,
                    a,
                ),
            }
        }
        let b = &signed_bytes(ops.packed_b)[..g.k4 * g.f_pad];
        gemm_u8(simd, g, i16_quads, a, b, product);
        return grid(product);
    }
    for (input, a) in inputs.iter().zip(a.chunks_exact_mut(per_input * g.k_pad)) {
        match p.kind {
            LayerKind::InputConvolutional | LayerKind::Convolutional => im2col(
                &ConvShape::of(layer),
                input,
                p.padding_value,
                g.k_pad,
                first,
                a,
            ),
            LayerKind::SeparableConvolutional => {
                let shape = ConvShape::of(layer).with_output_channels(p.input.channels);
                depthwise_potentials(simd, plan, &shape, weights.main, input, first, a);
            }
            LayerKind::FullyConnected => {
                for (dst, &src) in a.iter_mut().zip(*input) {
                    *dst = src as i16;
                }
                a[g.k..].fill(0);
            }
        }
    }
    if let Dot::SplitU8 { i16_quads } = plan.dot {
        let low = &mut i32_bytes_mut(depthwise)[..2 * g.rows * g.k4];
        let split = Split {
            b: ops.packed_b,
            offsets: ops.offsets,
            i16_quads,
        };
        if split_product(simd, g, &split, a, low, product) {
            return grid(product);
        }
    }
    gemm(simd, g, a, ops.packed_b, product);
    grid(product)
}

/// The operands of the split byte product of a separable layer
/// ([`Dot::SplitU8`]).
#[derive(Clone, Copy, Debug)]
pub struct Split<'p> {
    /// Packed B: the 16-bit pairs ([`pack_b`], `k_pad * f_pad` cells), then
    /// the byte quads ([`pack_b_u8`]).
    pub b: &'p [i16],
    /// Per filter, `-128 * sum_k W[k][filter]` ([`split_offsets`]).
    pub offsets: &'p [i32],
    /// As in [`Dot::U8`], for bytes up to 255.
    pub i16_quads: u32,
}

/// The offsets of the split product: `-128 * sum_k W[k][filter]`, undoing
/// the 128 added to every depthwise potential; zero for padding filters.
pub fn split_offsets(g: &Gemm, w: &[i8], out: &mut [i32]) {
    out.fill(0);
    for row in w.chunks_exact(g.f).take(g.k) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o -= 128 * v as i32;
        }
    }
}

/// The fewest channels (K) and filters (F) of a separable layer whose
/// pointwise product is split ([`Dot::SplitU8`]): below, the passes the
/// split adds (low bytes, offsets, the high-part check) cost about what the
/// byte product saves (`ds_cnn_kws`, 64 x 64: 58.0 us per image with the
/// 16-bit product, 62.6 split, one thread, AVX-512 VNNI; `ds_cnn_cifar10`'s
/// 10-filter last layer: 16 against 31 us).
pub const SPLIT_MIN: usize = 128;

/// At most one potential in this many may have a high part for the split
/// product to run: a pair with a high part costs what it costs in the
/// 16-bit product, on top of the byte product's half, so the split pays
/// while (isolated) high parts stay under a quarter of the pairs.
pub const SPLIT_VALUES_PER_HIGH: usize = 16;

/// The high part `h` of a potential: `(d + 128) >> 8`, zero for
/// `-128 <= d <= 127`.
#[inline(always)]
fn high(d: i16) -> i32 {
    (d as i32 + 128) >> 8
}

/// Whether a potential has a high part, as a number (0 or 1) so that
/// loops over a row sum or OR it without branches.
#[inline(always)]
fn has_high(d: i16) -> u16 {
    // d + 128 outside 0..=255, wrapping: d > 32639 wraps to a negative.
    u16::from(d.wrapping_add(128) as u16 > 255)
}

/// `product = A · W` for the 16-bit depthwise potentials `a` of a separable
/// layer, on bytes ([`Dot::SplitU8`]): writes the low bytes `l = d + 128
/// (mod 256)` of `a` into `low` (`2 x rows x k4`: then which rows have a
/// high part, or with AMX tiles the high bytes), runs the byte product
/// `l · W` from the offsets `-128 · sum_k W[k]` and adds, for every pair of
/// potentials with a high part
/// `h = (d + 128) >> 8`, `256 (h0 W[k] + h1 W[k+1])`. Where more than one
/// potential in [`SPLIT_VALUES_PER_HIGH`] has a high part, AMX tiles
/// multiply both bytes of every potential instead
/// ([`split_bytes`], `amx::gemm_split`), and other instruction sets return
/// `false` without computing anything (then the caller runs the 16-bit
/// product). `split.b` packed by [`pack_b_split`] in [`ByteLayout::of`]`
/// (simd, g)`.
#[inline(always)]
pub fn split_product(
    simd: Simd,
    g: &Gemm,
    split: &Split,
    a: &[i16],
    low: &mut [u8],
    product: &mut [i32],
) -> bool {
    let quads = &signed_bytes(&split.b[g.k_pad * g.f_pad..])[..g.k4 * g.f_pad];
    // Every loop over a row here is branch-free, so that it vectorizes.
    // Which rows have a high part goes after the low bytes (room the
    // sparse case does not use otherwise).
    let (low, rest) = low[..2 * g.rows * g.k4].split_at_mut(g.rows * g.k4);
    let rows_high = &mut rest[..g.rows];
    let mut high_values = 0usize;
    for ((row, low_row), row_high) in a
        .chunks_exact(g.k_pad)
        .zip(low.chunks_exact_mut(g.k4))
        .zip(rows_high.iter_mut())
    {
        let (head, tail) = low_row.split_at_mut(g.k_pad.min(g.k4));
        for (l, &d) in head.iter_mut().zip(row) {
            // The low byte of d + 128: bit 7 of d flipped.
            *l = d as u8 ^ 0x80;
        }
        tail.fill(0);
        let count = row.iter().map(|&d| has_high(d) as u32).sum::<u32>();
        *row_high = u8::from(count > 0);
        high_values += count as usize;
    }
    if high_values * SPLIT_VALUES_PER_HIGH > g.rows * g.k_pad {
        #[cfg(target_arch = "x86_64")]
        if simd.0 == Isa::Amx && amx::suits(g) {
            // Dense high parts: both bytes of every potential on tiles.
            let high = bytemuck_i8(rest);
            split_bytes(g, a, low, high);
            // SAFETY: constructing this Simd value asserted AMX-INT8
            // support and permission, and AVX-512 support; slices checked
            // inside.
            unsafe { amx::gemm_split(g, low, high, quads, product) };
            return true;
        }
        return false;
    }
    let pairs = &split.b[..g.k_pad * g.f_pad];
    // The offsets are the product's initial values. Wrapping: the terms'
    // sum is the exact potential, which fits i32 (the layer's validated
    // bound), so it comes out right even where a partial sum would not.
    let offsets = Some(&split.offsets[..g.f_pad]);
    gemm_u8_from(simd, g, split.i16_quads, low, quads, offsets, product);
    let rows_high = &rest[..g.rows];
    // A row's pairs with a high part, gathered a pass at a time.
    let mut list = [HighPair::default(); HIGH_PAIRS_PER_PASS];
    for ((row, out), &row_high) in a
        .chunks_exact(g.k_pad)
        .zip(product.chunks_exact_mut(g.f_pad))
        .zip(rows_high)
    {
        if row_high == 0 {
            continue;
        }
        // Branch-free gathering: every pair is written, only those with a
        // high part advance the count.
        let mut n = 0;
        for (k2, pair) in row.chunks_exact(2).enumerate() {
            let (h0, h1) = (high(pair[0]), high(pair[1]));
            list[n] = HighPair {
                k2: k2 as u32,
                h: (h0 as u16 as u32 | (h1 as u16 as u32) << 16) as i32,
            };
            n += usize::from(h0 | h1 != 0);
            if n == HIGH_PAIRS_PER_PASS {
                add_high_part(simd, g.f_pad, pairs, &list, out);
                n = 0;
            }
        }
        add_high_part(simd, g.f_pad, pairs, &list[..n], out);
    }
    true
}

/// Every potential `d` of `a` (rows `k_pad` apart) as two bytes, `d = 256
/// h + l`: `l = d & 255` into `low`, `h = d >> 8` into `high` (rows `k4`
/// apart, zero beyond `k_pad`). Exact for any i16.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // AMX tiles only.
fn split_bytes(g: &Gemm, a: &[i16], low: &mut [u8], high: &mut [i8]) {
    for ((row, l_row), h_row) in a
        .chunks_exact(g.k_pad)
        .zip(low.chunks_exact_mut(g.k4))
        .zip(high.chunks_exact_mut(g.k4))
        .take(g.rows)
    {
        let n = g.k_pad.min(g.k4);
        for ((l, h), &d) in l_row[..n].iter_mut().zip(&mut h_row[..n]).zip(row) {
            *l = d as u8;
            *h = (d >> 8) as i8;
        }
        l_row[n..].fill(0);
        h_row[n..].fill(0);
    }
}

/// A pair of potentials with a high part: its index in pairs of K, and
/// its two high parts as 16-bit halves (low half first, as `vpmaddwd`
/// takes them).
#[derive(Clone, Copy, Debug, Default)]
struct HighPair {
    k2: u32,
    h: i32,
}

/// High pairs gathered before a pass over a row of the product.
const HIGH_PAIRS_PER_PASS: usize = 128;

/// `out[f] += 256 * sum over list (h0 B[k2][f][0] + h1 B[k2][f][1])`,
/// with `pairs` the 16-bit packed B: in registers a block of filters at a
/// time where the instruction set has them, else in plain Rust.
#[inline(always)]
fn add_high_part(simd: Simd, f_pad: usize, pairs: &[i16], list: &[HighPair], out: &mut [i32]) {
    if list.is_empty() {
        return;
    }
    match simd.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX-512 VNNI support.
        Isa::Avx512Vnni | Isa::Amx => unsafe { x86::high_part_avx512(f_pad, pairs, list, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX2 support.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::high_part_avx2(f_pad, pairs, list, out) },
        _ => {
            for hp in list {
                let (h0, h1) = (hp.h as i16 as i32, (hp.h >> 16) as i16 as i32);
                let b_row = &pairs[hp.k2 as usize * f_pad * 2..][..f_pad * 2];
                for (o, bw) in out.iter_mut().zip(b_row.chunks_exact(2)) {
                    let part = h0 * bw[0] as i32 + h1 * bw[1] as i32;
                    *o = o.wrapping_add(part.wrapping_mul(256));
                }
            }
        }
    }
}

/// A value of A: a byte, or a byte widened to 16 bits.
trait AValue: Copy + From<u8> {
    /// `dst[i] = src[i]` for the common length.
    fn copy_from_bytes(dst: &mut [Self], src: &[u8]);
}

impl AValue for u8 {
    #[inline(always)]
    fn copy_from_bytes(dst: &mut [u8], src: &[u8]) {
        dst.copy_from_slice(&src[..dst.len()]);
    }
}

impl AValue for i16 {
    #[inline(always)]
    fn copy_from_bytes(dst: &mut [i16], src: &[u8]) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v as i16;
        }
    }
}

/// im2col: row `p` of A (rows `stride` apart: `k_pad` for 16-bit A, `k4`
/// for a byte A) holds the receptive field of output cell `first + p` in
/// (kh, kw, cin) order, padded cells `pad_value`, zero beyond K. Per kernel
/// row, the taps inside the input are one run of the input
/// ([`ConvShape::taps_inside`]), the rest padding.
///
/// A is filled with the padding value in one pass first: filling each
/// row's few padded taps and its tail separately cost a `memset` call each
/// (`ds_cnn_kws`'s input convolution, 1 channel, 5 x 5: 13.7 us per image
/// with them, 12.7 without, on a Zen 2 core).
#[inline(always)]
fn im2col<T: AValue>(
    s: &ConvShape,
    input: &[u8],
    pad_value: u8,
    stride: usize,
    first: usize,
    a: &mut [T],
) {
    let cin = s.input.channels as usize;
    let (kh, kw) = (s.kernel.rows as usize, s.kernel.cols as usize);
    let k = kh * kw * cin;
    // K rounded up to pairs or quads: at most three cells beyond K per row.
    assert!(stride >= k && stride - k < 4);
    let ocols = s.output.cols as usize;
    let zero = T::from(0);
    a.fill(T::from(pad_value));
    for (p, row) in (first..).zip(a.chunks_exact_mut(stride)) {
        let taps = s.taps_inside(p / ocols, p % ocols);
        let (fields, rest) = row.split_at_mut(k);
        let run = taps.cols.len() * cin;
        if run > 0 {
            let (r, c) = taps.first;
            for (i, krow) in fields.chunks_exact_mut(kw * cin).enumerate() {
                if taps.rows.contains(&i) {
                    let base = s.input.index(r + i - taps.rows.start, c, 0);
                    let inside = &mut krow[taps.cols.start * cin..][..run];
                    T::copy_from_bytes(inside, &input[base..base + run]);
                }
            }
        }
        // Element stores, not a `memset` call.
        for x in rest.iter_mut().take(3) {
            *x = zero;
        }
    }
}

/// Most kernel taps the paired depthwise product takes (7 x 7 and below).
pub const MAX_PAIRED_TAPS: usize = 49;

/// The depthwise potentials of a separable layer into A: in byte pairs with
/// AVX2 (AVX-512 BW where the CPU has it) where the plan allows
/// ([`FastPlan::depthwise_pairs`]), else in 16-bit lanes
/// ([`depthwise_into_a`]); the same values either way.
#[inline(always)]
fn depthwise_potentials(
    simd: Simd,
    plan: &FastPlan,
    s: &ConvShape,
    w: &[i8],
    input: &[u8],
    first: usize,
    a: &mut [i16],
) {
    #[cfg(target_arch = "x86_64")]
    if plan.depthwise_pairs && simd.0 != Isa::Portable {
        return match simd.0 {
            // SAFETY: constructing this Simd value asserted AVX-512 BW support.
            Isa::Avx512Vnni | Isa::Amx => unsafe {
                x86::depthwise_pairs_avx512(s, w, input, plan.gemm.k_pad, first, a)
            },
            // SAFETY: a non-portable Simd value asserted AVX2 support (every
            // instruction set here includes it).
            _ => unsafe { x86::depthwise_pairs_avx2(s, w, input, plan.gemm.k_pad, first, a) },
        };
    }
    let _ = simd;
    depthwise_into_a(s, w, input, plan.gemm.k_pad, first, a)
}

/// Depthwise potentials straight into A's rows (`k_pad` apart, zero beyond
/// the channels), in wrapping 16-bit arithmetic vectorized over channels.
/// Exact: [`FastPlan::of`] admits the fast kernel for a separable layer only
/// when `sum |w| * max_input <= i16::MAX` for every channel, which bounds
/// every partial sum, so no 16-bit operation wraps.
#[inline(always)]
fn depthwise_into_a(
    s: &ConvShape,
    w: &[i8],
    input: &[u8],
    k_pad: usize,
    first: usize,
    a: &mut [i16],
) {
    let c_n = s.input.channels as usize;
    let kw = s.kernel.cols as usize;
    let ocols = s.output.cols as usize;
    for (p, row) in (first..).zip(a.chunks_exact_mut(k_pad)) {
        let (acc, rest) = row.split_at_mut(c_n);
        acc.fill(0);
        rest.fill(0);
        let (oy, ox) = (p / ocols, p % ocols);
        for i in 0..s.kernel.rows as usize {
            for j in 0..kw {
                if let Some((r, c)) = s.input_cell(oy, ox, i, j) {
                    let x = &input[s.input.index(r, c, 0)..][..c_n];
                    let wt = &w[(i * kw + j) * c_n..][..c_n];
                    for ((a, &v), &wk) in acc.iter_mut().zip(x).zip(wt) {
                        *a = a.wrapping_add((v as i16).wrapping_mul(wk as i16));
                    }
                }
            }
        }
    }
}

/// `product (rows x f_pad) = A (rows x k_pad) · B`.
pub fn gemm(simd: Simd, g: &Gemm, a: &[i16], b: &[i16], product: &mut [i32]) {
    match simd.0 {
        Isa::Portable => gemm_portable(g, a, b, product),
        // The 16-bit product in plain Rust (NEON is part of the aarch64
        // baseline, which it is compiled for).
        #[cfg(target_arch = "aarch64")]
        Isa::NeonDotprod | Isa::NeonI8mm => gemm_portable(g, a, b, product),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX2 support.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::gemm_avx2(g, a, b, product) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX-512 VNNI support.
        Isa::Avx512Vnni | Isa::Amx => unsafe { x86::gemm_avx512_vnni(g, a, b, product) },
    }
}

/// `product (rows x f_pad) = A (rows x k4, u8) · B (s8, packed by
/// [`pack_b_bytes`] in [`ByteLayout::of`]` (simd, g)`); `i16_quads`
/// as in [`Dot::U8`], at least 1 with AVX2 ([`Simd::runs_u8`]: its
/// 16-bit sums are the only byte product it has).
pub fn gemm_u8(simd: Simd, g: &Gemm, i16_quads: u32, a: &[u8], b: &[i8], product: &mut [i32]) {
    gemm_u8_from(simd, g, i16_quads, a, b, None, product)
}

/// [`gemm_u8`] plus `init` (`f_pad` values, one per filter) in every row:
/// the x86 kernels start their accumulators from it (no pass over the
/// product afterwards), the others add it after the product.
pub fn gemm_u8_from(
    simd: Simd,
    g: &Gemm,
    i16_quads: u32,
    a: &[u8],
    b: &[i8],
    init: Option<&[i32]>,
    product: &mut [i32],
) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = i16_quads; // Only AVX2 sums in 16-bit lanes.
    match simd.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX2 support.
        Isa::Avx2 => unsafe {
            // B in AVX2's panels: only its kernel reads them.
            assert!(i16_quads >= 1, "the AVX2 byte product needs 16-bit sums");
            x86::gemm_u8_avx2(g, i16_quads as usize, a, b, init, product)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX-VNNI support.
        Isa::AvxVnni => unsafe { x86::gemm_u8_avx_vnni(g, a, b, init, product) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AVX-512 VNNI support.
        Isa::Avx512Vnni => unsafe { x86::gemm_u8_avx512_vnni(g, a, b, init, product) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: constructing this Simd value asserted AMX-INT8 support
        // and permission, and AVX-512 VNNI support.
        Isa::Amx => unsafe {
            match amx::suits(g) {
                true => amx::gemm_u8(g, a, b, init, product),
                false => x86::gemm_u8_avx512_vnni(g, a, b, init, product),
            }
        },
        _ => {
            match simd.0 {
                #[cfg(target_arch = "aarch64")]
                // SAFETY: constructing this Simd value asserted dot-product support.
                Isa::NeonDotprod => unsafe { neon::gemm_u8_sdot(g, a, b, product) },
                #[cfg(target_arch = "aarch64")]
                // SAFETY: constructing this Simd value asserted dot-product
                // and int8 matrix support.
                Isa::NeonI8mm => unsafe { neon::gemm_u8_sudot(g, a, b, product) },
                _ => gemm_u8_portable(g, a, b, product),
            }
            if let Some(init) = init {
                for row in product[..g.rows * g.f_pad].chunks_exact_mut(g.f_pad) {
                    for (p, &v) in row.iter_mut().zip(init) {
                        *p = p.wrapping_add(v);
                    }
                }
            }
        }
    }
}

/// The byte product in plain Rust, the definition the SIMD ones are checked
/// against (see [`self_check_u8`]).
pub fn gemm_u8_portable(g: &Gemm, a: &[u8], b: &[i8], product: &mut [i32]) {
    for (a_row, out) in a
        .chunks_exact(g.k4)
        .zip(product.chunks_exact_mut(g.f_pad))
        .take(g.rows)
    {
        out.fill(0);
        for (q, quad) in a_row.chunks_exact(4).enumerate() {
            if quad == [0; 4] {
                continue;
            }
            let a4 = [0, 1, 2, 3].map(|i| quad[i] as i32);
            let b_row = &b[q * g.f_pad * 4..][..g.f_pad * 4];
            for (o, bw) in out.iter_mut().zip(b_row.chunks_exact(4)) {
                *o += a4[0] * bw[0] as i32
                    + a4[1] * bw[1] as i32
                    + a4[2] * bw[2] as i32
                    + a4[3] * bw[3] as i32;
            }
        }
    }
}

/// A start-up check of `simd`'s byte product against [`gemm_u8_portable`]
/// on two small products (full byte ranges, and 4-bit ranges long enough
/// for the AVX2 kernel to widen its 16-bit lanes several times, with odd
/// rows, K and F). A kernel that disagrees must not be used: the host
/// runtime then keeps the 16-bit product (and says so).
pub fn self_check_u8(simd: Simd) -> bool {
    // (rows, k, f, max_a, weight range lo..=hi)
    let cases: [(usize, usize, usize, u32, i32, i32); 2] =
        [(13, 71, 70, 255, -128, 127), (7, 601, 45, 15, -8, 7)];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut ok = true;
    for (rows, k, f, max_a, lo, hi) in cases {
        let g = Gemm::new(rows, k, f);
        let mut a = [0u8; 13 * 604];
        let mut w = [0i8; 601 * 70];
        let mut b = [0i8; 604 * 96];
        for row in a.chunks_exact_mut(g.k4).take(rows) {
            for v in &mut row[..k] {
                *v = (next() % (max_a as u64 + 1)) as u8;
            }
        }
        for v in &mut w[..k * f] {
            *v = (lo as i64 + (next() % (hi - lo + 1) as u64) as i64) as i8;
        }
        pack_b_bytes(ByteLayout::of(simd, &g), &g, &w, &mut b);
        let max_w = lo.abs().max(hi.abs()) as i64;
        let i16_quads = (i16::MAX as i64 / (2 * max_a as i64 * max_w)) as u32;
        if !simd.runs_u8(i16_quads) {
            // A product the plans never give this instruction set.
            continue;
        }
        let (mut want, mut got) = ([0i32; 13 * 96], [0i32; 13 * 96]);
        let n = rows * g.f_pad;
        let mut quads = [0i8; 604 * 96];
        pack_b_u8(&g, &w, &mut quads);
        gemm_u8_portable(&g, &a, &quads, &mut want[..n]);
        got[..n].fill(i32::MIN);
        gemm_u8(simd, &g, i16_quads, &a, &b, &mut got[..n]);
        ok &= want[..n] == got[..n];
    }
    ok
}

fn gemm_portable(g: &Gemm, a: &[i16], b: &[i16], product: &mut [i32]) {
    for (a_row, out) in a
        .chunks_exact(g.k_pad)
        .zip(product.chunks_exact_mut(g.f_pad))
        .take(g.rows)
    {
        out.fill(0);
        for (k2, pair) in a_row.chunks_exact(2).enumerate() {
            let (a0, a1) = (pair[0] as i32, pair[1] as i32);
            if a0 == 0 && a1 == 0 {
                continue;
            }
            let b_row = &b[k2 * g.f_pad * 2..][..g.f_pad * 2];
            for (o, bw) in out.iter_mut().zip(b_row.chunks_exact(2)) {
                *o += a0 * bw[0] as i32 + a1 * bw[1] as i32;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! SIMD micro-kernels: a tile of R rows of A times 32 columns of B,
    //! accumulated in registers over the whole K.
    use super::{ConvShape, Gemm, HighPair, SimdTask, TILE_F};
    use core::arch::x86_64::*;

    /// The high part of the split product ([`super::add_high_part`]) with
    /// AVX-512 VNNI: 64 filters (4 zmm) at a time, `vpdpwssd` per listed
    /// pair, then one shifted add into the row.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI; `pairs` holds B for
    /// every listed pair, `out` `f_pad` (a multiple of 32) cells.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn high_part_avx512(
        f_pad: usize,
        pairs: &[i16],
        list: &[HighPair],
        out: &mut [i32],
    ) {
        assert!(out.len() >= f_pad && f_pad.is_multiple_of(TILE_F));
        let last = list.iter().map(|hp| hp.k2 as usize).max().unwrap_or(0);
        assert!(pairs.len() >= (last + 1) * f_pad * 2);
        let mut f0 = 0;
        while f0 + 64 <= f_pad {
            high_block_avx512::<4>(f_pad, pairs, list, &mut out[f0..], f0);
            f0 += 64;
        }
        if f0 < f_pad {
            high_block_avx512::<2>(f_pad, pairs, list, &mut out[f0..], f0);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn high_block_avx512<const Z: usize>(
        f_pad: usize,
        pairs: &[i16],
        list: &[HighPair],
        out: &mut [i32],
        f0: usize,
    ) {
        let mut acc = [_mm512_setzero_si512(); Z];
        for hp in list {
            let h = _mm512_set1_epi32(hp.h);
            let b = pairs.as_ptr().add((hp.k2 as usize * f_pad + f0) * 2);
            for (z, acc) in acc.iter_mut().enumerate() {
                let bz = _mm512_loadu_si512(b.add(32 * z) as *const _);
                *acc = _mm512_dpwssd_epi32(*acc, h, bz);
            }
        }
        for (z, acc) in acc.iter().enumerate() {
            let o = out.as_mut_ptr().add(16 * z) as *mut __m512i;
            let sum = _mm512_add_epi32(
                _mm512_loadu_si512(o as *const _),
                _mm512_slli_epi32(*acc, 8),
            );
            _mm512_storeu_si512(o as *mut _, sum);
        }
    }

    /// The high part with AVX2: 32 filters (4 ymm) at a time, `vpmaddwd`
    /// and `vpaddd` per listed pair.
    ///
    /// # Safety
    /// The CPU must support AVX2; sizes as in [`high_part_avx512`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn high_part_avx2(f_pad: usize, pairs: &[i16], list: &[HighPair], out: &mut [i32]) {
        assert!(out.len() >= f_pad && f_pad.is_multiple_of(TILE_F));
        let last = list.iter().map(|hp| hp.k2 as usize).max().unwrap_or(0);
        assert!(pairs.len() >= (last + 1) * f_pad * 2);
        for f0 in (0..f_pad).step_by(32) {
            let mut acc = [_mm256_setzero_si256(); 4];
            for hp in list {
                let h = _mm256_set1_epi32(hp.h);
                let b = pairs.as_ptr().add((hp.k2 as usize * f_pad + f0) * 2);
                for (z, acc) in acc.iter_mut().enumerate() {
                    let bz = _mm256_loadu_si256(b.add(16 * z) as *const __m256i);
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(h, bz));
                }
            }
            for (z, acc) in acc.iter().enumerate() {
                let o = out.as_mut_ptr().add(f0 + 8 * z) as *mut __m256i;
                let sum = _mm256_add_epi32(_mm256_loadu_si256(o), _mm256_slli_epi32(*acc, 8));
                _mm256_storeu_si256(o, sum);
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2,fma,bmi1,bmi2")]
    pub unsafe fn with_avx2<T: SimdTask>(task: T) -> T::Output {
        task.run()
    }

    /// # Safety
    /// The CPU must support AVX2 and AVX-VNNI.
    #[target_feature(enable = "avx2,fma,bmi1,bmi2,avxvnni")]
    pub unsafe fn with_avx_vnni<T: SimdTask>(task: T) -> T::Output {
        task.run()
    }

    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx2,fma,bmi1,bmi2,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn with_avx512<T: SimdTask>(task: T) -> T::Output {
        task.run()
    }

    /// Depthwise potentials into A's rows (`k_pad` apart, zero beyond the
    /// channels) with the byte product: an output cell's taps (those inside
    /// the input) in pairs, the two taps' inputs interleaved byte by byte
    /// (`vpunpck[lh]bw`), and so their weights, then multiplied and summed in
    /// pairs (`vpmaddubsw`, u8 x s8) into 16-bit sums, 32 channels a turn.
    /// Exact under
    /// [`super::FastPlan::depthwise_pairs`] (no pair saturates) and
    /// [`super::FastPlan::of`] (no partial sum leaves i16), as the portable
    /// [`super::depthwise_into_a`], which it equals.
    ///
    /// # Safety
    /// The CPU must support AVX2; `s.kernel` has at most
    /// [`super::MAX_PAIRED_TAPS`] taps; slices sized by the layer.
    #[target_feature(enable = "avx2")]
    pub unsafe fn depthwise_pairs_avx2(
        s: &ConvShape,
        w: &[i8],
        input: &[u8],
        k_pad: usize,
        first: usize,
        a: &mut [i16],
    ) {
        depthwise_pairs_cells(s, w, input, k_pad, first, a, |input, taps, row| {
            let c_n = row.len();
            for b in 0..c_n / 32 {
                pairs_block32(input, w, taps, 32 * b, row.as_mut_ptr());
            }
            pairs_rest(input, w, taps, 32 * (c_n / 32), row);
        })
    }

    /// [`depthwise_pairs_avx2`] with AVX-512 BW: 64 channels a turn
    /// (`vpmaddubsw` on zmm), then a block of 32 and the rest as there.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW; as [`depthwise_pairs_avx2`].
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    pub unsafe fn depthwise_pairs_avx512(
        s: &ConvShape,
        w: &[i8],
        input: &[u8],
        k_pad: usize,
        first: usize,
        a: &mut [i16],
    ) {
        depthwise_pairs_cells(s, w, input, k_pad, first, a, |input, taps, row| {
            let c_n = row.len();
            for b in 0..c_n / 64 {
                pairs_block64(input, w, taps, 64 * b, row.as_mut_ptr());
            }
            let mut c0 = 64 * (c_n / 64);
            if c_n - c0 >= 32 {
                pairs_block32(input, w, taps, c0, row.as_mut_ptr());
                c0 += 32;
            }
            pairs_rest(input, w, taps, c0, row);
        })
    }

    /// The output cells of a depthwise layer from cell `first`, each as its
    /// row of A (the
    /// first `c_n` values; zero beyond, up to `k_pad`), the input from the
    /// cell's first tap inside it, and the taps inside the input as (input
    /// offset, weight offset) pairs: what `cell` needs to sum the taps.
    #[inline(always)]
    fn depthwise_pairs_cells(
        s: &ConvShape,
        w: &[i8],
        input: &[u8],
        k_pad: usize,
        first: usize,
        a: &mut [i16],
        mut cell: impl FnMut(&[u8], &[(usize, usize)], &mut [i16]),
    ) {
        let c_n = s.input.channels as usize;
        let (kh, kw) = (s.kernel.rows as usize, s.kernel.cols as usize);
        assert!(kh * kw <= super::MAX_PAIRED_TAPS && w.len() >= kh * kw * c_n);
        let (icols, ocols) = (s.input.cols as usize, s.output.cols as usize);
        // (input offset from the cell's first tap, weight offset) of every
        // tap: the taps of a cell whose kernel lies wholly inside the input.
        let mut whole = [(0usize, 0usize); super::MAX_PAIRED_TAPS];
        for i in 0..kh {
            for j in 0..kw {
                whole[i * kw + j] = ((i * icols + j) * c_n, (i * kw + j) * c_n);
            }
        }
        let whole = &whole[..kh * kw];
        // The taps inside the input of a cell at an edge (input offsets).
        let mut edge = [(0usize, 0usize); super::MAX_PAIRED_TAPS];
        for (p, row) in (first..).zip(a.chunks_exact_mut(k_pad)) {
            let inside = s.taps_inside(p / ocols, p % ocols);
            let (r, c) = inside.first;
            let (base, taps) = if inside.whole(kh, kw) {
                ((r * icols + c) * c_n, whole)
            } else {
                let mut n = 0;
                for i in inside.rows.clone() {
                    for j in inside.cols.clone() {
                        let x =
                            ((r + i - inside.rows.start) * icols + c + j - inside.cols.start) * c_n;
                        edge[n] = (x, (i * kw + j) * c_n);
                        n += 1;
                    }
                }
                (0, &edge[..n])
            };
            if let Some(&(last, _)) = taps.last() {
                // The last tap's input lies furthest in: every load of a
                // block below stays inside `input` (and `w`, checked above).
                assert!(base + last + c_n <= input.len());
            }
            let (sums, pad) = row.split_at_mut(c_n);
            cell(&input[base..], taps, sums);
            pad.fill(0);
        }
    }

    /// Channels `c0..c0 + 32` of a cell into `out[c0..]`: the taps in
    /// pairs, interleaved and multiplied by `vpmaddubsw` (ymm).
    ///
    /// # Safety
    /// The CPU must support AVX2; channels and taps within the slices.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn pairs_block32(
        input: &[u8],
        w: &[i8],
        taps: &[(usize, usize)],
        c0: usize,
        out: *mut i16,
    ) {
        let mut acc = [_mm256_setzero_si256(); 2];
        let (even, odd) = taps.split_at(taps.len() & !1);
        let zero = _mm256_setzero_si256();
        let tap = |&(x, k): &(usize, usize)| (load(input, x + c0), load(w, k + c0));
        for pair in even.chunks_exact(2) {
            let ((xa, wa), (xb, wb)) = (tap(&pair[0]), tap(&pair[1]));
            madd_pair(&mut acc, weave(xa, xb), weave(wa, wb));
        }
        if let [t] = odd {
            let (xa, wa) = tap(t);
            madd_pair(&mut acc, weave(xa, zero), weave(wa, zero));
        }
        // acc[0] holds channels 0-7 and 16-23 of the block, acc[1] 8-15 and 24-31.
        let dst = out.add(c0) as *mut __m256i;
        _mm256_storeu_si256(dst, _mm256_permute2x128_si256(acc[0], acc[1], 0x20));
        _mm256_storeu_si256(dst.add(1), _mm256_permute2x128_si256(acc[0], acc[1], 0x31));
    }

    /// Channels `c0..c0 + 64` of a cell, as [`pairs_block32`] on zmm.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW; channels and taps within the
    /// slices.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn pairs_block64(
        input: &[u8],
        w: &[i8],
        taps: &[(usize, usize)],
        c0: usize,
        out: *mut i16,
    ) {
        let load = |v: *const u8, at: usize| _mm512_loadu_si512(v.add(at) as *const _);
        let tap = |&(x, k): &(usize, usize)| {
            (
                load(input.as_ptr(), x + c0),
                load(w.as_ptr() as *const u8, k + c0),
            )
        };
        let madd = |acc: &mut [__m512i; 2], x: [__m512i; 2], w: [__m512i; 2]| {
            for ((acc, x), w) in acc.iter_mut().zip(x).zip(w) {
                *acc = _mm512_add_epi16(*acc, _mm512_maddubs_epi16(x, w));
            }
        };
        let weave = |a, b| [_mm512_unpacklo_epi8(a, b), _mm512_unpackhi_epi8(a, b)];
        let mut acc = [_mm512_setzero_si512(); 2];
        let (even, odd) = taps.split_at(taps.len() & !1);
        let zero = _mm512_setzero_si512();
        for pair in even.chunks_exact(2) {
            let ((xa, wa), (xb, wb)) = (tap(&pair[0]), tap(&pair[1]));
            madd(&mut acc, weave(xa, xb), weave(wa, wb));
        }
        if let [t] = odd {
            let (xa, wa) = tap(t);
            madd(&mut acc, weave(xa, zero), weave(wa, zero));
        }
        // Per 128-bit lane l, acc[0] holds channels 16 l + 0-7 and acc[1]
        // 16 l + 8-15: the lanes in order, as 64-bit words, are (acc[0] l,
        // acc[1] l) for l = 0..4 (indices 8-15 name acc[1]'s words).
        let first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
        let second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
        let dst = out.add(c0) as *mut __m512i;
        _mm512_storeu_si512(
            dst as *mut _,
            _mm512_permutex2var_epi64(acc[0], first, acc[1]),
        );
        _mm512_storeu_si512(
            dst.add(1) as *mut _,
            _mm512_permutex2var_epi64(acc[0], second, acc[1]),
        );
    }

    /// Channels from `c0` to the end of a cell, one at a time.
    #[inline(always)]
    fn pairs_rest(input: &[u8], w: &[i8], taps: &[(usize, usize)], c0: usize, row: &mut [i16]) {
        for (c, out) in row.iter_mut().enumerate().skip(c0) {
            let mut sum = 0i16;
            for &(x, k) in taps {
                sum = sum.wrapping_add((input[x + c] as i16).wrapping_mul(w[k + c] as i16));
            }
            *out = sum;
        }
    }

    /// 32 bytes of `v` from `at` (in bounds: the caller checks).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load<T>(v: &[T], at: usize) -> __m256i {
        _mm256_loadu_si256(v.as_ptr().add(at) as *const __m256i)
    }

    /// Two taps' bytes interleaved, `[a0, b0, a1, b1, ..]` per 128-bit lane:
    /// channels 0-7 and 16-23, then 8-15 and 24-31.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn weave(a: __m256i, b: __m256i) -> [__m256i; 2] {
        [_mm256_unpacklo_epi8(a, b), _mm256_unpackhi_epi8(a, b)]
    }

    /// `acc += x . w` pair by pair (u8 inputs, s8 weights, 16-bit sums).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn madd_pair(acc: &mut [__m256i; 2], x: [__m256i; 2], w: [__m256i; 2]) {
        for ((acc, x), w) in acc.iter_mut().zip(x).zip(w) {
            *acc = _mm256_add_epi16(*acc, _mm256_maddubs_epi16(x, w));
        }
    }

    /// Rows of A per micro-kernel tile.
    const ROWS: usize = 6;

    /// Filters per ymm tile (two registers of 8 filters).
    pub(super) const YMM_TILE_F: usize = 16;

    /// Stores the accumulators `$acc` (`R` rows of vectors of `$lanes` i32
    /// lanes) into the product at row `$r0`, filter `$f0`, with `$store`.
    macro_rules! store_tile {
        ($acc:ident, $g:ident, $product:ident, $r0:ident, $f0:ident, $lanes:literal, $store:ident) => {{
            let out = $product.as_mut_ptr();
            for (r, acc_r) in $acc.iter().enumerate() {
                let o = out.add(($r0 + r) * $g.f_pad + $f0);
                for (z, &v) in acc_r.iter().enumerate() {
                    $store(o.add($lanes * z) as *mut _, v);
                }
            }
        }};
    }

    /// The filters of a zmm product in tiles (`$f0`: a tile's first filter):
    /// `$four` (64 filters, 4 registers) where they exist, else `$two` (32).
    macro_rules! filter_tiles {
        ($g:ident, |$f0:ident| $four:expr, $two:expr) => {{
            let mut $f0 = 0;
            while $f0 < $g.f_pad {
                if $f0 + 2 * TILE_F <= $g.f_pad {
                    $four;
                    $f0 += 2 * TILE_F;
                } else {
                    $two;
                    $f0 += TILE_F;
                }
            }
        }};
    }

    /// A ymm product in tiles `$tile::<R, 2>($args.., r0, f0)`: the filters
    /// [`YMM_TILE_F`] at a time (two registers), the rows [`ROWS`] at a
    /// time, then one tile of the rows left (`zmm_rows`). Six rows of
    /// sixteen filters load B once per six rows: the AVX2 byte product of
    /// `ds_cnn_cifar10`'s layers (K from 256) went from 76-104 to 94-121 G
    /// MAC/s on one Xeon core against two rows of 32 filters; and a
    /// 16-filter column of B (K x 16 bytes, 8 KiB at K = 512) stays in a
    /// 32 KiB L1 cache while the rows pass.
    macro_rules! ymm_tiles {
        ($g:ident, $tile:ident($($arg:expr),*)) => {
            for f0 in (0..$g.f_pad).step_by(YMM_TILE_F) {
                zmm_rows!($g.rows, |r0, R| $tile::<R, 2>($($arg,)* r0, f0))
            }
        };
    }

    /// The rows of a zmm product (`$r0`: a tile's first row, `$r` its row
    /// count, a constant): tiles of [`ROWS`] rows, then one tile of all the
    /// rows left, so that no row runs alone (a one-row tile loads the
    /// vectors of B for a single row's products: a 4x4-cell layer, 16 rows,
    /// spent more time on its last 4 rows than on its first 12).
    macro_rules! zmm_rows {
        // One tile of `$left` rows, a constant among `$n`.
        (@left $left:expr, |$r:ident| $tile:expr; $($n:literal)*) => {
            match $left {
                $($n => {
                    const $r: usize = $n;
                    $tile
                })*
                _ => unreachable!("fewer rows left than ROWS"),
            }
        };
        ($rows:expr, |$r0:ident, $r:ident| $tile:expr) => {{
            const _: () = assert!(ROWS == 6, "zmm_rows! names the rows left up to 5");
            let mut $r0 = 0;
            while $r0 + ROWS <= $rows {
                const $r: usize = ROWS;
                $tile;
                $r0 += ROWS;
            }
            match $rows - $r0 {
                0 => {}
                left => zmm_rows!(@left left, |$r| $tile; 1 2 3 4 5),
            }
        }};
    }

    /// A zmm product in tiles `$tile::<R, Z>($args.., r0, f0)`: the filters
    /// by [`filter_tiles!`] (`Z` = 4 or 2 registers), the rows by
    /// [`zmm_rows!`] (`R` = [`ROWS`], then the rows left).
    macro_rules! zmm_tiles {
        ($g:ident, $tile:ident($($arg:expr),*)) => {
            filter_tiles!(
                $g,
                |f0| zmm_rows!($g.rows, |r0, R| $tile::<R, 4>($($arg,)* r0, f0)),
                zmm_rows!($g.rows, |r0, R| $tile::<R, 2>($($arg,)* r0, f0))
            )
        };
    }

    /// A micro-kernel tile `$name::<R, ..>`: `R` rows of A from row `r0`
    /// times the filters from `f0`, in `$z` vectors of `$lanes` i32 lanes,
    /// accumulated in registers over the whole K, then stored with
    /// `$store`. K goes in steps of `$step` values (`g.$k` of them per row
    /// of A: 2 for 16-bit pairs in `k_pad`, 4 for byte quads in `k4`); per
    /// step, `$load` reads the vectors of B at `$bp`, `$row` makes row `r`'s
    /// operand from `$at` (its first value of A in the step), and `$madd` is
    /// an accumulator `$acc` plus that operand `$av` times a vector `$bz`;
    /// B is read `in panels` of the tile's filters or `in rows` of K.
    macro_rules! tile {
        // Where a step's vectors of B start: B in panels of the tile's
        // filters (`$width`, [`super::ByteLayout::Panels`]), or in rows of K
        // over all `f_pad` filters.
        (@b panels, $b_ptr:ident, $g:ident, $step_i:ident, $f0:ident, $width:expr, $step:literal, $k:expr) => {
            $b_ptr.add($f0 * $k + $step_i * $width * $step)
        };
        (@b rows, $b_ptr:ident, $g:ident, $step_i:ident, $f0:ident, $width:expr, $step:literal, $k:expr) => {
            $b_ptr.add(($step_i * $g.f_pad + $f0) * $step)
        };
        (
            $(#[$attr:meta])*
            fn $name:ident<$($gen:ident),*>(&[$a:ty], &[$b:ty], $k:ident / $step:literal)
                -> [$zero:expr; $z:expr] x $lanes:literal, $store:ident;
            b in $layout:ident;
            load |$bp:ident| $load:expr;
            row |$at:ident| $row:expr;
            madd |$acc:ident, $av:ident, $bz:ident| $madd:expr;
        ) => {
            $(#[$attr])*
            #[inline]
            unsafe fn $name<$(const $gen: usize),*>(
                g: &Gemm,
                a: &[$a],
                b: &[$b],
                product: &mut [i32],
                init: *const i32,
                r0: usize,
                f0: usize,
            ) {
                let mut acc = [[$zero; $z]; R];
                if !init.is_null() {
                    // Every row starts from the filters' initial values
                    // (vectors as wide as B's).
                    let $bp = init.add(f0);
                    let first = $load;
                    acc = [first; R];
                }
                let a_ptr = a.as_ptr().add(r0 * g.$k);
                let b_ptr = b.as_ptr();
                for step in 0..g.$k / $step {
                    let $bp = tile!(@b $layout, b_ptr, g, step, f0, $z * $lanes, $step, g.$k);
                    let bv = $load;
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let $at = a_ptr.add(r * g.$k + $step * step);
                        let $av = $row;
                        for ($acc, &$bz) in acc_r.iter_mut().zip(&bv) {
                            *$acc = $madd;
                        }
                    }
                }
                store_tile!(acc, g, product, r0, f0, $lanes, $store);
            }
        };
    }

    /// `Z` zmm vectors from `bytes` (64 bytes each).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_zmm<const Z: usize>(bytes: *const u8) -> [__m512i; Z] {
        let mut v = [_mm512_setzero_si512(); Z];
        for (z, v) in v.iter_mut().enumerate() {
            *v = _mm512_loadu_si512(bytes.add(64 * z) as *const _);
        }
        v
    }

    /// `Z` ymm vectors from `bytes` (32 bytes each).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load_ymm<const Z: usize>(bytes: *const u8) -> [__m256i; Z] {
        let mut v = [_mm256_setzero_si256(); Z];
        for (z, v) in v.iter_mut().enumerate() {
            *v = _mm256_loadu_si256(bytes.add(32 * z) as *const _);
        }
        v
    }

    /// Checks the slices of a byte product; the initial values as a
    /// pointer (null for none).
    fn check_u8(g: &Gemm, a: &[u8], b: &[i8], init: Option<&[i32]>, product: &[i32]) -> *const i32 {
        assert!(a.len() >= g.rows * g.k4 && b.len() >= g.k4 * g.f_pad);
        assert!(product.len() >= g.rows * g.f_pad);
        assert!(init.is_none_or(|i| i.len() >= g.f_pad));
        assert!(g.f_pad.is_multiple_of(TILE_F) && g.k4.is_multiple_of(4));
        init.map_or(core::ptr::null(), <[i32]>::as_ptr)
    }

    /// The byte product with AVX2 `vpmaddubsw`: 16-bit lanes summing at most
    /// `i16_quads` quads (proved not to saturate or wrap, see
    /// `FastPlan::with_dot`), then widened into 32-bit sums by `vpmaddwd`
    /// with ones.
    ///
    /// # Safety
    /// The CPU must support AVX2; `i16_quads` proved for the operands.
    #[target_feature(enable = "avx2")]
    pub unsafe fn gemm_u8_avx2(
        g: &Gemm,
        i16_quads: usize,
        a: &[u8],
        b: &[i8],
        init: Option<&[i32]>,
        product: &mut [i32],
    ) {
        let init = check_u8(g, a, b, init, product);
        assert!(i16_quads >= 1);
        ymm_tiles!(g, tile_u8_avx2(g, i16_quads, a, b, product, init))
    }

    /// `R` rows of A times `Z` registers of 8 filters x 4 bytes, the sums
    /// starting at `init` (null: zero).
    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_u8_avx2<const R: usize, const Z: usize>(
        g: &Gemm,
        i16_quads: usize,
        a: &[u8],
        b: &[i8],
        product: &mut [i32],
        init: *const i32,
        r0: usize,
        f0: usize,
    ) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); Z]; R];
        if !init.is_null() {
            acc = [load_ymm::<Z>(init.add(f0) as *const u8); R];
        }
        let a_ptr = a.as_ptr();
        let b_ptr = b.as_ptr();
        let quads = g.k4 / 4;
        let mut q0 = 0;
        while q0 < quads {
            let q1 = quads.min(q0 + i16_quads);
            let mut acc16 = [[_mm256_setzero_si256(); Z]; R];
            // One quad of K: B in panels of the tile's 8 Z filters
            // (ByteLayout::Panels).
            let mut quad_step = |q: usize| {
                let bp = tile!(@b panels, b_ptr, g, q, f0, Z * 8, 4, g.k4);
                let bv = load_ymm::<Z>(bp as *const u8);
                for (r, acc_r) in acc16.iter_mut().enumerate() {
                    let quad = (a_ptr.add((r0 + r) * g.k4 + 4 * q) as *const i32).read_unaligned();
                    let av = _mm256_set1_epi32(quad);
                    for (acc_z, &bz) in acc_r.iter_mut().zip(&bv) {
                        *acc_z = _mm256_add_epi16(*acc_z, _mm256_maddubs_epi16(av, bz));
                    }
                }
            };
            let mut q = q0;
            while q + 2 <= q1 {
                quad_step(q);
                quad_step(q + 1);
                q += 2;
            }
            if q < q1 {
                quad_step(q);
            }
            for (acc_r, acc16_r) in acc.iter_mut().zip(&acc16) {
                for (acc_z, &v) in acc_r.iter_mut().zip(acc16_r) {
                    *acc_z = _mm256_add_epi32(*acc_z, _mm256_madd_epi16(v, ones));
                }
            }
            q0 = q1;
        }
        store_tile!(acc, g, product, r0, f0, 8, _mm256_storeu_si256);
    }

    /// The byte product with AVX-VNNI `vpdpbusd` (ymm): the AVX2 kernel's
    /// tiles, each `vpmaddubsw` + add + widening replaced by one exact
    /// 32-bit `vpdpbusd`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and AVX-VNNI.
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn gemm_u8_avx_vnni(
        g: &Gemm,
        a: &[u8],
        b: &[i8],
        init: Option<&[i32]>,
        product: &mut [i32],
    ) {
        let init = check_u8(g, a, b, init, product);
        ymm_tiles!(g, tile_u8_avx_vnni(g, a, b, product, init))
    }

    tile! {
        #[target_feature(enable = "avx2,avxvnni")]
        fn tile_u8_avx_vnni<R, Z>(&[u8], &[i8], k4 / 4)
            -> [_mm256_setzero_si256(); Z] x 8, _mm256_storeu_si256;
        b in panels;
        load |bp| load_ymm::<Z>(bp as *const u8);
        row |quad| _mm256_set1_epi32((quad as *const i32).read_unaligned());
        // u8 (A) x s8 (B), four products summed into 32 bits.
        madd |acc, av, bz| _mm256_dpbusd_avx_epi32(*acc, av, bz);
    }

    /// The byte product with AVX-512 VNNI `vpdpbusd` (zmm): the tiles of
    /// the 16-bit `vpdpwssd` kernel, quads of bytes in place of pairs of
    /// 16-bit values (both 4 bytes per filter and step).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm_u8_avx512_vnni(
        g: &Gemm,
        a: &[u8],
        b: &[i8],
        init: Option<&[i32]>,
        product: &mut [i32],
    ) {
        let init = check_u8(g, a, b, init, product);
        zmm_tiles!(g, tile_u8_vnni(g, a, b, product, init))
    }

    tile! {
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        fn tile_u8_vnni<R, Z>(&[u8], &[i8], k4 / 4)
            -> [_mm512_setzero_si512(); Z] x 16, _mm512_storeu_si512;
        b in panels;
        load |bp| load_zmm::<Z>(bp as *const u8);
        row |quad| _mm512_set1_epi32((quad as *const i32).read_unaligned());
        // u8 (A) x s8 (B), four products summed into 32 bits.
        madd |acc, av, bz| _mm512_dpbusd_epi32(*acc, av, bz);
    }

    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI; slices sized by `g`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm_avx512_vnni(g: &Gemm, a: &[i16], b: &[i16], product: &mut [i32]) {
        assert!(a.len() >= g.rows * g.k_pad && b.len() >= g.k_pad * g.f_pad);
        assert!(product.len() >= g.rows * g.f_pad);
        zmm_tiles!(g, tile_vnni(g, a, b, product, core::ptr::null()))
    }

    /// `acc += pairs(b) . broadcast(*pair)`, forced as one `vpdpwssd` with an
    /// embedded broadcast (compilers otherwise split it into `vpmaddwd` +
    /// `vpaddd` on generic tuning, halving the throughput).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn dpwssd_bcst(acc: __m512i, b: __m512i, pair: *const i16) -> __m512i {
        let mut acc = acc;
        core::arch::asm!(
            "vpdpwssd {acc}, {b}, dword ptr [{p}]{{1to16}}",
            acc = inout(zmm_reg) acc,
            b = in(zmm_reg) b,
            p = in(reg) pair,
            options(pure, readonly, nostack, preserves_flags),
        );
        acc
    }

    tile! {
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        fn tile_vnni<R, Z>(&[i16], &[i16], k_pad / 2)
            -> [_mm512_setzero_si512(); Z] x 16, _mm512_storeu_si512;
        b in rows;
        load |bp| load_zmm::<Z>(bp as *const u8);
        row |pair| pair;
        madd |acc, av, bz| dpwssd_bcst(*acc, bz, av);
    }

    /// # Safety
    /// The CPU must support AVX2; slices sized by `g`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn gemm_avx2(g: &Gemm, a: &[i16], b: &[i16], product: &mut [i32]) {
        assert!(a.len() >= g.rows * g.k_pad && b.len() >= g.k_pad * g.f_pad);
        assert!(product.len() >= g.rows * g.f_pad);
        ymm_tiles!(g, tile_avx2(g, a, b, product, core::ptr::null()))
    }

    tile! {
        #[target_feature(enable = "avx2")]
        fn tile_avx2<R, Z>(&[i16], &[i16], k_pad / 2)
            -> [_mm256_setzero_si256(); Z] x 8, _mm256_storeu_si256;
        b in rows;
        load |bp| load_ymm::<Z>(bp as *const u8);
        row |pair| _mm256_set1_epi32((pair as *const i32).read_unaligned());
        madd |acc, av, bq| _mm256_add_epi32(*acc, _mm256_madd_epi16(av, bq));
    }
}
