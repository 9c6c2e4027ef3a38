//! The 20-bit potential range of Akida 1.0 layers: the potentials of a fully
//! connected layer, and of a pooled convolution, saturate to
//! `[-2^19, 2^19 - 1]` (see [`crate::tail`] for when and how).

pub const POTENTIAL_MIN: i32 = -(1 << 19);
pub const POTENTIAL_MAX: i32 = (1 << 19) - 1;

/// Clips a potential to the signed 20-bit range.
#[inline]
pub fn saturate(p: i64) -> i32 {
    p.clamp(POTENTIAL_MIN as i64, POTENTIAL_MAX as i64) as i32
}

/// One step of a saturating sum: `saturate(sum + value)` for a `sum`
/// already in the 20-bit range, in 32-bit arithmetic so that a loop of it
/// vectorizes (32-bit add, min and max; the 64-bit clamp of [`saturate`]
/// has no AVX2 form). A `value` beyond `+-2^20` saturates the step whatever
/// the sum, so clamping it there first changes nothing and keeps the 32-bit
/// add from overflowing.
#[inline(always)]
pub fn saturating_add(sum: i32, value: i32) -> i32 {
    const REACH: i32 = 1 << 20;
    (sum + value.clamp(-REACH, REACH)).clamp(POTENTIAL_MIN, POTENTIAL_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The 32-bit step is the definition's 64-bit one, for any value
        /// (the bounds themselves included) and any sum in range.
        #[test]
        fn saturating_add_is_the_sixty_four_bit_step(
            sum in POTENTIAL_MIN..=POTENTIAL_MAX,
            value in prop_oneof![
                any::<i32>(),
                -(1i32 << 21)..(1 << 21),
                Just(i32::MIN),
                Just(i32::MAX),
                Just(1 << 20),
                Just(-(1 << 20)),
            ],
        ) {
            prop_assert_eq!(saturating_add(sum, value), saturate(sum as i64 + value as i64));
        }
    }

    #[test]
    fn clips_to_twenty_bits() {
        assert_eq!(saturate(1 << 19), 524_287);
        assert_eq!(saturate(-(1 << 19) - 1), -524_288);
        assert_eq!(saturate(12), 12);
        assert_eq!(saturate(i64::MIN), POTENTIAL_MIN);
    }
}
