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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_to_twenty_bits() {
        assert_eq!(saturate(1 << 19), 524_287);
        assert_eq!(saturate(-(1 << 19) - 1), -524_288);
        assert_eq!(saturate(12), 12);
        assert_eq!(saturate(i64::MIN), POTENTIAL_MIN);
    }
}
