//! The keyword-spotting front end: one second of 16 kHz PCM becomes a 49x10
//! MFCC, then the `ds_cnn_kws` model's 49x10x1 uint8 input. One
//! implementation for the host (training, evaluation) and the Cortex-M4F
//! firmware, bit-exact between them.
//!
//! The features are TensorFlow's `audio_spectrogram` + `mfcc` ops, the
//! preprocessing of the ARM "Hello Edge" keyword recipe that akida_models'
//! `ds_cnn_kws` follows:
//!
//! - samples `s / 32768` (what `decode_wav` gives), clips shorter than one
//!   second zero-padded at the end;
//! - frames of 640 samples (40 ms) every 320 samples (20 ms): 49 frames;
//! - a periodic Hann window, zero-padded to a 1024-point FFT, the power
//!   spectrum of its 513 bins (of which the filterbank reads 2 to 256);
//! - TensorFlow's mel filterbank (HTK mel scale `1127 ln(1 + f/700)`, 40
//!   triangular bands between 20 Hz and 4 kHz, DC excluded) applied to the
//!   magnitude (`sqrt` of the power);
//! - `ln(max(band, 1e-12))`, then the first 10 coefficients of the
//!   orthonormal-scaled DCT-II (`sqrt(2/40) cos(pi/40 i (j + 1/2))`).
//!
//! **Bit-exactness.** Everything at run time is IEEE-754 float32 `+ - * /`
//! in a fixed order (Rust never contracts to FMA nor reassociates), the FFT
//! is `microfft`'s radix-2 (tables and plain float32 arithmetic), and square
//! root and logarithm are written out here in float32. Every constant table
//! (window, filterbank, DCT) is computed by `const fn`s in float64 by the
//! compiler, so both targets hold the same bits. Host and Cortex-M4F
//! therefore compute the same float32 MFCC, bit for bit (checked under QEMU
//! by `tests/tests/mfcc_qemu.rs`). Against a float64 MFCC (plain DFT, `std`
//! maths) the float32 result stays within [`F64_TOLERANCE`].
//!
//! **The uint8 mapping** ([`to_input`]) is fixed, per coefficient:
//! `u = clamp(round_half_up((v - INPUT_LOW[c]) * INPUT_SCALE[c]), 0, 255)`,
//! with `[INPUT_LOW, INPUT_HIGH]` chosen once from the 197,617 frames of the
//! training split of the 4,890-clip Speech Commands set (about the 0.1 % and
//! 99.9 % points of each coefficient, rounded outwards; coefficient 0, the
//! log energy, from -80, the 2 % point, since below it frames are silence,
//! whose floor is -247), so that speech uses the whole uint8 range and the
//! model's `Rescaling(1/255)` sees values in `[0, 1]`.

use microfft::Complex32;

/// Sample rate of the clips.
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in one clip (one second).
pub const CLIP_SAMPLES: usize = 16_000;
/// Window length (40 ms).
pub const WINDOW: usize = 640;
/// Hop between frames (20 ms).
pub const HOP: usize = 320;
/// FFT length: the next power of two above the window.
pub const FFT_LEN: usize = 1024;
/// Power-spectrum bins (`FFT_LEN / 2 + 1`).
pub const BINS: usize = FFT_LEN / 2 + 1;
/// Frames in one clip: `1 + (16000 - 640) / 320`.
pub const FRAMES: usize = 1 + (CLIP_SAMPLES - WINDOW) / HOP;
/// Mel bands.
pub const MEL_BANDS: usize = 40;
/// MFCC coefficients kept per frame.
pub const COEFFS: usize = 10;
/// Lowest and highest filterbank frequencies (Hz).
pub const LOWER_HZ: f64 = 20.0;
pub const UPPER_HZ: f64 = 4000.0;
/// Floor of a filterbank output before the logarithm (TensorFlow's).
pub const FILTERBANK_FLOOR: f32 = 1e-12;
/// Largest absolute difference between this float32 MFCC and a float64 one
/// on real speech, noise and silence (`core/tests/mfcc.rs` asserts it).
pub const F64_TOLERANCE: f32 = 1e-3;

/// Per-coefficient lower ends of the uint8 mapping (see the module docs).
pub const INPUT_LOW: [f32; COEFFS] = [
    -80.0, -12.0, -10.0, -9.0, -8.0, -6.0, -5.0, -4.5, -4.0, -4.0,
];
/// Per-coefficient upper ends of the uint8 mapping.
pub const INPUT_HIGH: [f32; COEFFS] = [40.0, 15.0, 11.0, 6.0, 5.0, 4.5, 4.0, 3.5, 3.0, 3.0];
/// Per-coefficient scales of the uint8 mapping: `255 / (high - low)`.
pub const INPUT_SCALE: [f32; COEFFS] = input_scale();

const fn input_scale() -> [f32; COEFFS] {
    let mut s = [0f32; COEFFS];
    let mut i = 0;
    while i < COEFFS {
        s[i] = (255.0 / (INPUT_HIGH[i] as f64 - INPUT_LOW[i] as f64)) as f32;
        i += 1;
    }
    s
}

/// A clip's MFCC, frame by frame.
pub type Mfcc = [[f32; COEFFS]; FRAMES];

/// Length of the model input (49 x 10 x 1).
pub const INPUT_LEN: usize = FRAMES * COEFFS;

// ---------------------------------------------------------------------------
// Compile-time float64 maths for the tables.

const PI: f64 = core::f64::consts::PI;

/// `cos(x)` for `x >= 0`: reduced to `[-pi, pi]`, then its Taylor series.
const fn cos64(x: f64) -> f64 {
    let two_pi = 2.0 * PI;
    let k = (x / two_pi + 0.5) as i64;
    let r = x - k as f64 * two_pi;
    let r2 = r * r;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut n = 1;
    while n <= 30 {
        term = -term * r2 / ((2 * n - 1) as f64 * (2 * n) as f64);
        sum += term;
        n += 1;
    }
    sum
}

/// `ln(x)` for `x > 0`: `x = m 2^e` with `m` in `[0.75, 1.5]`, then
/// `ln m = 2 atanh((m - 1)/(m + 1))` by its series.
const fn ln64(x: f64) -> f64 {
    let mut m = x;
    let mut e = 0i32;
    while m > 1.5 {
        m /= 2.0;
        e += 1;
    }
    while m < 0.75 {
        m *= 2.0;
        e -= 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut power = t;
    let mut sum = 0.0;
    let mut k = 0;
    while k < 40 {
        sum += power / (2 * k + 1) as f64;
        power *= t2;
        k += 1;
    }
    2.0 * sum + e as f64 * core::f64::consts::LN_2
}

/// `sqrt(x)` for `x > 0` by Newton's iteration.
const fn sqrt64(x: f64) -> f64 {
    let mut y = if x > 1.0 { x } else { 1.0 };
    let mut i = 0;
    while i < 100 {
        y = 0.5 * (y + x / y);
        i += 1;
    }
    y
}

/// TensorFlow's (HTK) mel scale.
const fn freq_to_mel(hz: f64) -> f64 {
    1127.0 * ln64(1.0 + hz / 700.0)
}

// ---------------------------------------------------------------------------
// Tables.

/// The periodic Hann window `0.5 - 0.5 cos(2 pi i / 640)` over 32768: `s * HANN_SCALED[i]` is exactly
/// `(s / 32768) * HANN[i]` (scaling by a power of two is exact here), one
/// multiplication instead of two.
static HANN_SCALED: [f32; WINDOW] = hann_scaled();

const fn hann_scaled() -> [f32; WINDOW] {
    let mut w = hann();
    let mut i = 0;
    while i < WINDOW {
        w[i] /= 32768.0;
        i += 1;
    }
    w
}

const fn hann() -> [f32; WINDOW] {
    let mut w = [0f32; WINDOW];
    let mut i = 0;
    while i < WINDOW {
        w[i] = (0.5 - 0.5 * cos64(2.0 * PI * i as f64 / WINDOW as f64)) as f32;
        i += 1;
    }
    w
}

/// Frequency of one power-spectrum bin, as TensorFlow's filterbank takes it.
const HZ_PER_BIN: f64 = 0.5 * SAMPLE_RATE as f64 / (BINS - 1) as f64;
/// First and last bins the filterbank reads (DC is always excluded).
const FIRST_BIN: usize = (1.5 + LOWER_HZ / HZ_PER_BIN) as usize;
const LAST_BIN: usize = (UPPER_HZ / HZ_PER_BIN) as usize;
const USED_BINS: usize = LAST_BIN - FIRST_BIN + 1;

/// TensorFlow's `MfccMelFilterbank`: for each used bin, the band whose
/// falling edge it lies on (-1: none) and its weight there; the rest
/// (`1 - weight`) goes to the rising edge of the next band.
struct Filterbank {
    band: [i8; USED_BINS],
    weight: [f32; USED_BINS],
}

static FILTERBANK: Filterbank = filterbank();

const fn filterbank() -> Filterbank {
    let mel_low = freq_to_mel(LOWER_HZ);
    let mel_high = freq_to_mel(UPPER_HZ);
    let spacing = (mel_high - mel_low) / (MEL_BANDS + 1) as f64;
    let mut centers = [0f64; MEL_BANDS + 1];
    let mut i = 0;
    while i < MEL_BANDS + 1 {
        centers[i] = mel_low + spacing * (i + 1) as f64;
        i += 1;
    }
    let mut band = [0i8; USED_BINS];
    let mut weight = [0f32; USED_BINS];
    let mut channel = 0usize;
    let mut bin = FIRST_BIN;
    while bin <= LAST_BIN {
        let mel = freq_to_mel(bin as f64 * HZ_PER_BIN);
        while channel < MEL_BANDS && centers[channel] < mel {
            channel += 1;
        }
        let b = channel as i64 - 1;
        let w = if b >= 0 {
            let b = b as usize;
            (centers[b + 1] - mel) / (centers[b + 1] - centers[b])
        } else {
            (centers[0] - mel) / (centers[0] - mel_low)
        };
        band[bin - FIRST_BIN] = b as i8;
        weight[bin - FIRST_BIN] = w as f32;
        bin += 1;
    }
    Filterbank { band, weight }
}

/// The mel accumulator's slot of each used bin's falling edge: `band + 1`
/// (slot 0 takes the edge below the first band, slot 41 the one above the
/// last; both are dropped), so the loop over the bins has no branch.
static SLOT: [u8; USED_BINS] = slots();
/// Slots of the mel accumulator (a power of two: `& (MEL_SLOTS - 1)` keeps
/// every index in range without a check).
const MEL_SLOTS: usize = 64;

const fn slots() -> [u8; USED_BINS] {
    let f = filterbank();
    let mut s = [0u8; USED_BINS];
    let mut i = 0;
    while i < USED_BINS {
        s[i] = (f.band[i] + 1) as u8;
        i += 1;
    }
    s
}

/// The twiddles that turn the 512-point complex FFT of the packed real
/// frame into bins `FIRST_BIN..LAST_BIN` of its 1024-point spectrum:
/// `(cos t, -sin t)`, `t = 2 pi k / 1024` (`microfft`'s values).
static TWIDDLE: [[f32; 2]; USED_BINS - 1] = twiddles();

const fn twiddles() -> [[f32; 2]; USED_BINS - 1] {
    let mut t = [[0f32; 2]; USED_BINS - 1];
    let mut i = 0;
    while i < USED_BINS - 1 {
        let angle = 2.0 * PI * (FIRST_BIN + i) as f64 / FFT_LEN as f64;
        t[i] = [cos64(angle) as f32, -cos64(PI / 2.0 - angle) as f32];
        i += 1;
    }
    t
}

/// DCT-II rows: `sqrt(2/40) cos(pi/40 * i * (j + 1/2))`.
static DCT: [[f32; MEL_BANDS]; COEFFS] = dct();

const fn dct() -> [[f32; MEL_BANDS]; COEFFS] {
    let norm = sqrt64(2.0 / MEL_BANDS as f64);
    let arg = PI / MEL_BANDS as f64;
    let mut t = [[0f32; MEL_BANDS]; COEFFS];
    let mut i = 0;
    while i < COEFFS {
        let mut j = 0;
        while j < MEL_BANDS {
            t[i][j] = (norm * cos64(i as f64 * arg * (j as f64 + 0.5))) as f32;
            j += 1;
        }
        i += 1;
    }
    t
}

// ---------------------------------------------------------------------------
// Float32 maths at run time, the same instructions on every target.

/// Square root of `x > 0` (0 for anything else: a power never is),
/// correctly rounded as IEEE 754 requires of every FPU, so the host and
/// the Cortex-M4F agree bit for bit: std's `sqrt` on the host, the M4F's
/// `VSQRT.F32` (one instruction), else [`sqrt_f32_portable`].
#[inline(always)]
pub fn sqrt_f32(x: f32) -> f32 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    sqrt_positive(x)
}

#[cfg(feature = "std")]
#[inline(always)]
fn sqrt_positive(x: f32) -> f32 {
    x.sqrt()
}

#[cfg(all(not(feature = "std"), target_arch = "arm", target_abi = "eabihf"))]
#[inline(always)]
fn sqrt_positive(x: f32) -> f32 {
    vsqrt(x)
}

/// `VSQRT.F32` on the argument register (the hard-float ABI passes and
/// returns an `f32` in `s0`). A naked function because `asm!` operands in
/// FPU registers need a target feature stable Rust cannot name here.
#[cfg(all(not(feature = "std"), target_arch = "arm", target_abi = "eabihf"))]
#[unsafe(naked)]
#[allow(unsafe_code)]
extern "C" fn vsqrt(x: f32) -> f32 {
    core::arch::naked_asm!(".fpu fpv4-sp-d16", "vsqrt.f32 s0, s0", "bx lr")
}

#[cfg(all(
    not(feature = "std"),
    not(all(target_arch = "arm", target_abi = "eabihf"))
))]
#[inline(always)]
fn sqrt_positive(x: f32) -> f32 {
    sqrt_f32_portable(x)
}

/// The correctly rounded square root of `x > 0` in integer arithmetic
/// (fdlibm's `e_sqrtf`, bit by bit), for targets without an FPU square
/// root; 0 for anything not above 0, `x` for infinity.
pub fn sqrt_f32_portable(x: f32) -> f32 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    if x.is_infinite() {
        return x;
    }
    let mut ix = x.to_bits() as i32;
    let mut m = ix >> 23;
    if m == 0 {
        // Subnormal: normalize.
        let mut i = 0;
        while ix & 0x0080_0000 == 0 {
            ix <<= 1;
            i += 1;
        }
        m -= i - 1;
    }
    m -= 127;
    ix = (ix & 0x007f_ffff) | 0x0080_0000;
    if m & 1 != 0 {
        ix += ix;
    }
    m >>= 1;
    ix += ix;
    let (mut q, mut s) = (0i32, 0i32);
    let mut r: i32 = 0x0100_0000;
    while r != 0 {
        let t = s + r;
        if t <= ix {
            s = t + r;
            ix -= t;
            q += r;
        }
        ix += ix;
        r >>= 1;
    }
    if ix != 0 {
        // Round to nearest, ties to even.
        q += q & 1;
    }
    f32::from_bits(((q >> 1) + 0x3f00_0000 + (m << 23)) as u32)
}

/// Natural logarithm of a finite `x > 0` (normal or subnormal): `x = m 2^e`
/// with `m` in `[sqrt(1/2), sqrt(2))`, `ln m = 2 atanh(t)`,
/// `t = (m - 1)/(m + 1)`, by five terms of its series (relative error below
/// 1e-7).
#[inline]
pub fn ln_f32(x: f32) -> f32 {
    let mut bits = x.to_bits();
    let mut e: i32 = 0;
    if bits < 0x0080_0000 {
        // Subnormal: scale by 2^23 first.
        bits = (x * 8_388_608.0).to_bits();
        e -= 23;
    }
    e += ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > core::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 / 9.0))));
    2.0 * series + e as f32 * core::f32::consts::LN_2
}

// ---------------------------------------------------------------------------
// The front end.

/// Scratch of the front end: one frame's 1024 real samples packed in
/// pairs (`x[2n] + i x[2n+1]`), transformed in place.
pub type FftScratch = [Complex32; FFT_LEN / 2];

/// A zeroed [`FftScratch`].
pub const FFT_SCRATCH: FftScratch = [Complex32::new(0.0, 0.0); FFT_LEN / 2];

/// One frame's 10 coefficients from its 640 samples; `fft` is scratch.
///
/// The real 1024-point FFT is `microfft`'s 512-point complex FFT of the
/// packed samples, then the split into real bins, computed here only for
/// the bins the filterbank reads (2 to 256), with `microfft`'s formula.
pub fn frame_mfcc(samples: &[i16; WINDOW], fft: &mut FftScratch) -> [f32; COEFFS] {
    for ((z, s), w) in fft
        .iter_mut()
        .zip(samples.chunks_exact(2))
        .zip(HANN_SCALED.chunks_exact(2))
    {
        *z = Complex32::new(s[0] as f32 * w[0], s[1] as f32 * w[1]);
    }
    fft[WINDOW / 2..].fill(Complex32::new(0.0, 0.0));
    let z = microfft::complex::cfft_512(fft);
    const { assert!(LAST_BIN == FFT_LEN / 4 && FIRST_BIN >= 1) };
    let mut mel = [0f32; MEL_SLOTS];
    let mut add = |i: usize, power: f32| {
        let magnitude = sqrt_f32(power);
        let weighted = magnitude * FILTERBANK.weight[i];
        let slot = SLOT[i] as usize;
        mel[slot & (MEL_SLOTS - 1)] += weighted;
        mel[(slot + 1) & (MEL_SLOTS - 1)] += magnitude - weighted;
    };
    for (i, t) in TWIDDLE.iter().enumerate() {
        let k = FIRST_BIN + i;
        let (a, b) = (z[k], z[FFT_LEN / 2 - k]);
        let (sum_re, sum_im) = ((a.re + b.re) / 2., (a.im + b.im) / 2.);
        let (diff_re, diff_im) = ((a.re - b.re) / 2., (a.im - b.im) / 2.);
        let re = sum_re + t[0] * sum_im + t[1] * diff_re;
        let im = diff_im + t[1] * sum_im - t[0] * diff_re;
        add(i, re * re + im * im);
    }
    // Bin 256, a quarter of the sampling rate, is the middle element.
    let c = z[FFT_LEN / 4];
    add(USED_BINS - 1, c.re * c.re + c.im * c.im);
    let mut log_mel = [0f32; MEL_BANDS];
    for (l, &m) in log_mel.iter_mut().zip(&mel[1..=MEL_BANDS]) {
        *l = ln_f32(if m < FILTERBANK_FLOOR {
            FILTERBANK_FLOOR
        } else {
            m
        });
    }
    let mut out = [0f32; COEFFS];
    for (o, row) in out.iter_mut().zip(DCT.iter()) {
        let mut sum = 0f32;
        for (&m, &d) in log_mel.iter().zip(row) {
            sum += m * d;
        }
        *o = sum;
    }
    out
}

/// The MFCC of one clip. Shorter clips are zero-padded by the caller (see
/// [`pad_clip`]).
pub fn mfcc(pcm: &[i16; CLIP_SAMPLES], out: &mut Mfcc) {
    let mut fft = FFT_SCRATCH;
    for (f, frame) in out.iter_mut().enumerate() {
        let start = f * HOP;
        let mut window = [0i16; WINDOW];
        window.copy_from_slice(&pcm[start..start + WINDOW]);
        *frame = frame_mfcc(&window, &mut fft);
    }
}

/// A clip of any length as exactly one second: cut, or zero-padded at the
/// end (as `decode_wav(desired_samples=16000)` does).
pub fn pad_clip(samples: &[i16]) -> [i16; CLIP_SAMPLES] {
    let mut clip = [0i16; CLIP_SAMPLES];
    let n = samples.len().min(CLIP_SAMPLES);
    clip[..n].copy_from_slice(&samples[..n]);
    clip
}

/// The fixed uint8 mapping of one coefficient (see the module docs).
#[inline]
pub fn quantize_coefficient(value: f32, coefficient: usize) -> u8 {
    let q = (value - INPUT_LOW[coefficient]) * INPUT_SCALE[coefficient];
    if q.is_nan() || q <= 0.0 {
        0
    } else if q >= 254.5 {
        255
    } else {
        (q + 0.5) as u8
    }
}

/// The model input (49 x 10 x 1, frame-major) of an MFCC.
pub fn to_input(mfcc: &Mfcc, out: &mut [u8; INPUT_LEN]) {
    for (frame, row) in mfcc.iter().zip(out.chunks_exact_mut(COEFFS)) {
        for (c, (&v, o)) in frame.iter().zip(row.iter_mut()).enumerate() {
            *o = quantize_coefficient(v, c);
        }
    }
}

/// PCM to model input in one call.
pub fn features(pcm: &[i16; CLIP_SAMPLES], out: &mut [u8; INPUT_LEN]) {
    let mut m = [[0f32; COEFFS]; FRAMES];
    mfcc(pcm, &mut m);
    to_input(&m, out);
}

/// The front end as audio arrives, one hop of [`HOP`] samples at a time:
/// what an always-on device runs while its microphone fills the next hop.
/// After the first two hops every hop completes one frame, whose uint8
/// row is written into the model input; after the fiftieth the input holds
/// exactly what [`features`] gives for the whole clip (the same
/// [`frame_mfcc`] on the same windows). Holds one window and the FFT
/// scratch (about 5.4 KB), not the clip.
pub struct FeatureStream {
    window: [i16; WINDOW],
    hops: usize,
    fft: FftScratch,
}

/// Hops in one clip: `CLIP_SAMPLES / HOP`.
pub const CLIP_HOPS: usize = CLIP_SAMPLES / HOP;

impl Default for FeatureStream {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureStream {
    pub const fn new() -> FeatureStream {
        FeatureStream {
            window: [0; WINDOW],
            hops: 0,
            fft: FFT_SCRATCH,
        }
    }

    /// Adds the next hop; when it completes a frame, writes that frame's
    /// row of `input` and returns its index. Hops after the last frame of
    /// the clip are ignored (`None`).
    pub fn push_hop(&mut self, hop: &[i16; HOP], input: &mut [u8; INPUT_LEN]) -> Option<usize> {
        if self.hops >= CLIP_HOPS {
            return None;
        }
        self.window.copy_within(HOP.., 0);
        self.window[WINDOW - HOP..].copy_from_slice(hop);
        self.hops += 1;
        let frame = self.hops.checked_sub(WINDOW / HOP)?;
        let coefficients = frame_mfcc(&self.window, &mut self.fft);
        let row = &mut input[frame * COEFFS..(frame + 1) * COEFFS];
        for (c, (&v, o)) in coefficients.iter().zip(row.iter_mut()).enumerate() {
            *o = quantize_coefficient(v, c);
        }
        Some(frame)
    }

    /// Frames completed so far.
    pub fn frames(&self) -> usize {
        self.hops.saturating_sub(WINDOW / HOP - 1)
    }

    /// Whether the whole clip's input is written.
    pub fn is_complete(&self) -> bool {
        self.frames() == FRAMES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_recipe() {
        assert_eq!(FRAMES, 49);
        assert_eq!(BINS, 513);
        assert_eq!((FIRST_BIN, LAST_BIN), (2, 256));
        assert_eq!(INPUT_LEN, 490);
    }

    #[test]
    fn compile_time_maths_is_accurate() {
        // Spot values against known constants.
        assert!((cos64(0.0) - 1.0).abs() < 1e-15);
        assert!((cos64(PI) + 1.0).abs() < 1e-12);
        assert!((cos64(2.0 * PI / 3.0) + 0.5).abs() < 1e-12);
        assert!((ln64(10.0) - core::f64::consts::LN_10).abs() < 1e-13);
        assert!((sqrt64(2.0) - core::f64::consts::SQRT_2).abs() < 1e-15);
        assert_eq!(hann()[0], 0.0);
        assert_eq!(hann()[WINDOW / 2], 1.0);
        assert_eq!(HANN_SCALED[WINDOW / 2], 1.0 / 32768.0);
    }

    #[test]
    fn runtime_maths_is_accurate() {
        for &x in &[1e-12f32, 1e-30, 1e-40, 0.3, 1.0, 2.0, 7.5, 1e5, 3.4e38] {
            let l = ln_f32(x) as f64;
            let r = (x as f64).ln();
            assert!(
                (l - r).abs() <= 1e-6 * r.abs().max(1.0),
                "ln {x}: {l} vs {r}"
            );
            let s = sqrt_f32(x) as f64;
            let r = (x as f64).sqrt();
            assert!((s - r).abs() <= 2e-7 * r, "sqrt {x}: {s} vs {r}");
        }
        assert_eq!(sqrt_f32(0.0), 0.0);
        assert_eq!(sqrt_f32(4.0), 2.0);
    }

    #[test]
    fn the_portable_square_root_is_correctly_rounded() {
        // Correct rounding: no float between the result's neighbours is
        // nearer. Checked against the FPU's (IEEE) square root on edge
        // cases and pseudo-random bit patterns of every exponent.
        #[cfg(feature = "std")]
        {
            let mut x = 0x9e37_79b9u32;
            let mut values = [0f32; 20_000];
            for v in values.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *v = f32::from_bits(x & 0x7fff_ffff);
            }
            let edges = [
                f32::MIN_POSITIVE,
                f32::MAX,
                1.0,
                2.0,
                4.0,
                0.25,
                1e-45,
                3e-39,
            ];
            for v in values.iter().chain(&edges).filter(|v| v.is_finite()) {
                let want = if *v > 0.0 { v.sqrt() } else { 0.0 };
                assert_eq!(
                    sqrt_f32_portable(*v).to_bits(),
                    want.to_bits(),
                    "sqrt {v:e}"
                );
                assert_eq!(sqrt_f32(*v).to_bits(), want.to_bits(), "sqrt {v:e}");
            }
        }
        assert_eq!(sqrt_f32_portable(0.0), 0.0);
        assert_eq!(sqrt_f32_portable(-4.0), 0.0);
        assert_eq!(sqrt_f32_portable(f32::NAN), 0.0);
        assert_eq!(sqrt_f32_portable(f32::INFINITY), f32::INFINITY);
        assert_eq!(sqrt_f32_portable(4.0), 2.0);
        assert_eq!(sqrt_f32_portable(2.25), 1.5);
    }

    #[test]
    fn filterbank_weights_are_in_range() {
        for i in 0..USED_BINS {
            let w = FILTERBANK.weight[i];
            assert!((0.0..=1.0).contains(&w), "bin {i}: {w}");
            assert!(FILTERBANK.band[i] >= -1 && FILTERBANK.band[i] < MEL_BANDS as i8);
        }
        // Bands rise monotonically with the bins.
        assert!(FILTERBANK.band.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(FILTERBANK.band[USED_BINS - 1], MEL_BANDS as i8 - 1);
    }

    #[test]
    fn silence_maps_to_the_floor() {
        let pcm = [0i16; CLIP_SAMPLES];
        let mut m = [[0f32; COEFFS]; FRAMES];
        mfcc(&pcm, &mut m);
        // All bands at ln(1e-12): only coefficient 0 is non-zero.
        let c0 = ln_f32(FILTERBANK_FLOOR) * DCT[0].iter().sum::<f32>();
        assert!((m[0][0] - c0).abs() < 1e-3, "{} vs {c0}", m[0][0]);
        assert!(m[0][1..].iter().all(|v| v.abs() < 1e-3));
        let mut input = [0u8; INPUT_LEN];
        to_input(&m, &mut input);
        assert_eq!(input[1], quantize_coefficient(0.0, 1));
    }

    #[test]
    fn the_stream_equals_the_whole_clip() {
        // A deterministic pseudo-random clip (xorshift), loud enough to
        // use every coefficient's range.
        let mut x = 0x2545_f491u32;
        let mut pcm = [0i16; CLIP_SAMPLES];
        for s in pcm.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *s = (x >> 16) as i16 / 4;
        }
        let mut whole = [0u8; INPUT_LEN];
        features(&pcm, &mut whole);
        let mut streamed = [0u8; INPUT_LEN];
        let mut stream = FeatureStream::new();
        let mut done = [false; FRAMES];
        for (h, hop) in pcm.chunks_exact(HOP).enumerate() {
            let frame = stream.push_hop(hop.try_into().unwrap(), &mut streamed);
            assert_eq!(frame, h.checked_sub(1), "hop {h}");
            if let Some(f) = frame {
                done[f] = true;
            }
        }
        assert!(stream.is_complete() && done.iter().all(|d| *d));
        assert_eq!(streamed, whole);
        assert_eq!(stream.push_hop(&[0; HOP], &mut streamed), None);
        assert_eq!(streamed, whole);
    }

    #[test]
    fn the_mapping_rounds_and_saturates() {
        assert_eq!(quantize_coefficient(-1000.0, 0), 0);
        assert_eq!(quantize_coefficient(1000.0, 0), 255);
        assert_eq!(quantize_coefficient(f32::NAN, 3), 0);
        // Low maps to 0, low + 1/scale to 1.
        assert_eq!(quantize_coefficient(INPUT_LOW[2], 2), 0);
        assert_eq!(
            quantize_coefficient(INPUT_LOW[2] + 1.0 / INPUT_SCALE[2], 2),
            1
        );
    }
}
