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
    fn rescale_is_float32() {
        assert_eq!(rescale(7, -3, 0.5), 20.0);
        assert_eq!(rescale(0, 0, 3.0), 0.0);
    }
}
