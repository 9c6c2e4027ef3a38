//! The Akida 1.0 step-wise ReLU: potentials become integer levels.
//!
//! `act_step` is held by the engine as an unsigned fixed-point number with 4
//! fractional bits (truncated), so the divisor is `S16 = floor(16 * act_step)`
//! and `level = clip(ceil((p - threshold) * 2^bits / S16), 0, 2^bits - 1)`.
//! Pure integer arithmetic once `S16` is known.

/// Activation bit widths the Akida 1.0 engine runs.
pub const ACT_BITS: [u8; 3] = [1, 2, 4];

/// Smallest act_step the engine accepts (one unit of its 4 fractional bits).
pub const MIN_ACT_STEP: f32 = 1.0 / 16.0;

/// The fixed-point divisor `floor(16 * act_step)`; `act_step * 16` is exact
/// in f32 (a power-of-two scaling), so the truncation is the engine's.
#[inline]
pub fn step_divisor(act_step: f32) -> i64 {
    (act_step * 16.0) as i64
}

/// Highest level of a `bits`-bit activation.
#[inline]
pub fn max_level(bits: u8) -> u8 {
    ((1u16 << bits) - 1) as u8
}

/// The output level of one neuron.
#[inline]
pub fn level(potential: i32, threshold: i32, divisor: i64, bits: u8) -> u8 {
    let d = potential as i64 - threshold as i64;
    if d <= 0 {
        return 0;
    }
    let num = d << bits;
    let lvl = (num + divisor - 1) / divisor; // ceil for positive operands
    lvl.min(max_level(bits) as i64) as u8
}

/// The `k`-th cut (`k` in `0..max_level(bits)`) of the step activation: a
/// potential reaches level `k + 1` or more iff it exceeds
/// `threshold + floor(k * S16 / 2^bits)`. So the level is the number of cuts
/// a potential exceeds, which vectorizes without a division.
#[inline]
pub fn level_cut(threshold: i32, divisor: i64, bits: u8, k: usize) -> i32 {
    let cut = threshold as i64 + ((k as i64 * divisor) >> bits);
    cut.min(i32::MAX as i64) as i32
}

/// A filter's levels by one float multiply instead of a count of cuts:
/// `level = trunc(x * scale + ROUND_UP)` with `x = clamp(p, threshold,
/// top) - threshold`, `scale = f32(2^bits / S16)`, computed as the nearest
/// integer to `x * scale + (ROUND_UP - 1/2)` (adding `1.5 * 2^23`, or
/// `1.5 * 2^52` in double precision, puts it in the low bits of the float:
/// no float-to-integer conversion, whose saturating form does not
/// vectorize). Where it applies ([`LevelScale::of`]: `2^bits <= S16 <=
/// 2^19`, up to 4 bits), it equals [`level`] for every potential:
///
/// - below or at the threshold `x = 0`, and `trunc(ROUND_UP) = 0`;
/// - `top` is the potential of the last cut plus one, where the level
///   reaches `2^bits - 1` (and stays, so clamping there changes nothing;
///   `S16 >= 2^bits` keeps `t = x * 2^bits / S16 <= 2^bits - 1 <= 15` at
///   `top`);
/// - the level is `ceil(t)` for `x >= 1`. `scale` is within `2^-24`
///   relative (and `2^-53` more: rounded to double, then to single), so
///   `x * scale` is within `15 * 2^-24 < 2^-20` of `t`.
///   - [`Precision::Single`], `S16 <= 2^16`: `ROUND_UP = 1 - 2^-17`; the
///     product and the sum are each rounded to single once (at most `2^-21`
///     each below 16), so the computed `t + 1/2 - 2^-17` is within `2^-19`:
///     never a tie; an integer `t` rounds to `t`, and a fraction of `t`, at
///     least `1 / S16 >= 2^-16`, lifts it to `ceil(t)`.
///   - [`Precision::Double`], `S16 <= 2^19`: `ROUND_UP = 1 - 2^-20`, in
///     double precision: `x < 2^20` times the 24-bit `scale` is exact, the
///     sum rounded by at most `2^-49`, so the computed `t + 1/2 - 2^-20` is
///     within `0.94 * 2^-20`: an integer `t` rounds to `t`, and a fraction
///     of at least `1 / S16 >= 2^-19` lifts it to `ceil(t)`.
///
/// The test `scaled_levels_are_the_definition` checks the two potentials
/// around every cut for every such `S16` and bit width; the computed value
/// never decreases as the potential grows, so that covers all potentials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevelScale {
    pub threshold: i32,
    /// The potential from which the level is the highest.
    pub top: i32,
    pub scale: f32,
    pub precision: Precision,
}

/// The float arithmetic of a [`LevelScale`]: single precision (8 lanes to
/// a 256-bit register) where `S16 <= 2^16`, double (4 lanes) up to `2^19`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Single,
    Double,
}

/// The constant added before truncation in single precision: `1 - 2^-17`
/// (see [`LevelScale`]).
pub const ROUND_UP: f32 = 1.0 - 1.0 / 131_072.0;

/// The same in double precision: `1 - 2^-20`.
pub const ROUND_UP_DOUBLE: f64 = 1.0 - 1.0 / 1_048_576.0;

/// `1.5 * 2^23`: a float in `[-2^22, 2^22]` plus this has its nearest
/// integer (ties to even) in the low bits of the sum's mantissa.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `1.5 * 2^52`, the same for doubles in `[-2^51, 2^51]`.
const ROUND_MAGIC_DOUBLE: f64 = 6_755_399_441_055_744.0;

impl LevelScale {
    /// The largest `S16` single precision is exact for.
    pub const MAX_SINGLE: i64 = 1 << 16;
    /// The largest `S16` double precision (with a single `scale`) is exact
    /// for.
    pub const MAX_DOUBLE: i64 = 1 << 19;

    /// The scaled form of a filter's activation, `None` where it is not
    /// exact (`S16` outside `2^bits..=2^19`, more than 4 bits, or a last cut
    /// at `i32::MAX`).
    pub fn of(threshold: i32, divisor: i64, bits: u8) -> Option<LevelScale> {
        if bits > 4 || divisor < 1 << bits || divisor > Self::MAX_DOUBLE {
            return None;
        }
        let last = level_cut(threshold, divisor, bits, max_level(bits) as usize - 1);
        Some(LevelScale {
            threshold,
            top: last.checked_add(1)?,
            scale: ((1u32 << bits) as f64 / divisor as f64) as f32,
            precision: match divisor <= Self::MAX_SINGLE {
                true => Precision::Single,
                false => Precision::Double,
            },
        })
    }

    /// The level of `potential`.
    #[inline(always)]
    pub fn level(&self, potential: i32) -> u8 {
        let (t, h, s) = (self.threshold, self.top, self.scale);
        match self.precision {
            Precision::Single => Self::level_single(potential, t, h, s),
            Precision::Double => Self::level_double(potential, t, h, s),
        }
    }

    /// [`Self::level`] in single precision from the parts (the tail's
    /// vectorized loops read them from rows of filters). `threshold <= top`.
    #[inline(always)]
    pub fn level_single(potential: i32, threshold: i32, top: i32, scale: f32) -> u8 {
        let x = potential.max(threshold).min(top) - threshold;
        let nearest = x as f32 * scale + (ROUND_UP - 0.5) + ROUND_MAGIC;
        // The level (0..=15) is the low byte of the sum's bits.
        nearest.to_bits() as u8
    }

    /// [`Self::level`] in double precision from the parts.
    #[inline(always)]
    pub fn level_double(potential: i32, threshold: i32, top: i32, scale: f32) -> u8 {
        let x = potential.max(threshold).min(top) - threshold;
        let nearest = x as f64 * scale as f64 + (ROUND_UP_DOUBLE - 0.5) + ROUND_MAGIC_DOUBLE;
        nearest.to_bits() as u8
    }
}

/// `predict` of a last layer without activation: `f32(p - threshold) / act_step`,
/// both in float32, exactly as the engine rescales.
#[inline]
pub fn rescale(potential: i32, threshold: i32, act_step: f32) -> f32 {
    (potential as i64 - threshold as i64) as f32 / act_step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn act_step_is_truncated_to_four_fractional_bits() {
        assert_eq!(step_divisor(0.4), 6); // 6.4 -> 6
        assert_eq!(step_divisor(1.0), 16);
        assert_eq!(step_divisor(0.0625), 1);
        assert_eq!(step_divisor(2.99), 47);
    }

    #[test]
    fn levels_ceil_and_clip() {
        // 4 bits, S16 = 16 (act_step 1): level = ceil(16 d / 16) = d, clipped to 15.
        assert_eq!(level(10, 10, 16, 4), 0);
        assert_eq!(level(11, 10, 16, 4), 1);
        assert_eq!(level(24, 10, 16, 4), 14);
        assert_eq!(level(100, 10, 16, 4), 15);
        assert_eq!(level(-100, 10, 16, 4), 0);
        // 1 bit: any potential above threshold fires.
        assert_eq!(level(11, 10, 1000, 1), 1);
        // 2 bits, S16 = 6: d = 2 -> ceil(8 / 6) = 2.
        assert_eq!(level(2, 0, 6, 2), 2);
    }

    #[test]
    fn counting_cuts_gives_the_level() {
        for bits in ACT_BITS {
            for divisor in [1i64, 3, 6, 16, 47, 1000] {
                for threshold in [-20, 0, 13] {
                    for p in -40..200 {
                        let cuts = (0..max_level(bits) as usize)
                            .filter(|&k| p > level_cut(threshold, divisor, bits, k))
                            .count();
                        assert_eq!(
                            cuts as u8,
                            level(p, threshold, divisor, bits),
                            "{bits} {divisor} {threshold} {p}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn scaled_levels_are_the_definition() {
        // Every divisor the float form takes, at every bit width: the two
        // potentials around each cut (where the level changes), and the
        // extremes. The float form is monotone, so this covers every
        // potential (see LevelScale).
        for bits in ACT_BITS {
            for divisor in 1i64 << bits..=LevelScale::MAX_DOUBLE {
                let threshold = (divisor as i32 % 97) - 50;
                let s = LevelScale::of(threshold, divisor, bits).unwrap();
                // Double precision serves every divisor of a layer whose
                // largest needs it, so it is checked on all of them.
                let check = |p: i32| {
                    let expected = level(p, threshold, divisor, bits);
                    let double = LevelScale::level_double(p, threshold, s.top, s.scale);
                    assert_eq!(
                        double, expected,
                        "double: bits {bits} S16 {divisor} potential {p}"
                    );
                    assert_eq!(
                        s.level(p),
                        expected,
                        "bits {bits} S16 {divisor} potential {p}"
                    );
                };
                for k in 0..max_level(bits) as usize {
                    let cut = level_cut(threshold, divisor, bits, k);
                    check(cut);
                    check(cut + 1);
                }
                check(i32::MIN);
                check(i32::MAX);
                check(s.top + 1);
            }
        }
    }

    #[test]
    fn scaled_levels_refuse_what_is_not_exact() {
        assert_eq!(LevelScale::of(0, 15, 4), None);
        assert_eq!(LevelScale::of(0, (1 << 19) + 1, 4), None);
        assert_eq!(
            LevelScale::of(0, 1 << 16, 4).unwrap().precision,
            Precision::Single
        );
        assert_eq!(
            LevelScale::of(0, (1 << 16) + 1, 4).unwrap().precision,
            Precision::Double
        );
        assert_eq!(LevelScale::of(i32::MAX - 10, 1000, 4), None);
        assert!(LevelScale::of(0, 16, 4).is_some());
        assert!(LevelScale::of(0, 2, 1).is_some());
    }

    #[test]
    fn rescale_is_float32() {
        assert_eq!(rescale(7, -3, 0.5), 20.0);
        assert_eq!(rescale(0, 0, 3.0), 0.0);
    }
}
