//! Integer weights packed at their bit width, and the little-endian arrays
//! (thresholds, act_steps) of a layer, all borrowed from the model file.
//!
//! A 4-bit weight takes half a byte in the file, a 2-bit weight a quarter:
//! value `k` occupies bits `k*bits .. (k+1)*bits` of the byte stream, least
//! significant bit first, in two's complement.

use serde::{Deserialize, Serialize};

/// Weight bit widths the Akida 1.0 engine runs.
pub const WEIGHT_BITS: [u8; 3] = [2, 4, 8];

/// Signed integer weights of one tensor, packed at `bits` per value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedWeights<'a> {
    /// 2, 4 or 8.
    pub bits: u8,
    /// The tensor shape as the engine stores it (4-D, C order).
    pub shape: [u32; 4],
    /// `ceil(len * bits / 8)` bytes.
    #[serde(borrow)]
    pub data: &'a [u8],
}

/// Why a weight tensor cannot be packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("weight bit width {0} is not one of 2, 4, 8")]
    Bits(u8),
    #[error("weight value {value} does not fit in {bits} bits")]
    Range { value: i8, bits: u8 },
    #[error("output buffer holds {have} bytes, {need} needed")]
    Buffer { have: usize, need: usize },
}

impl<'a> PackedWeights<'a> {
    /// Number of weights the shape holds, `None` on overflow.
    pub fn checked_count(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
    }

    /// Number of weights. Only call on validated weights.
    pub fn count(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    /// The `k`-th weight, sign-extended.
    #[inline]
    pub fn get(&self, k: usize) -> i8 {
        unpack_one(self.data, self.bits, k)
    }

    /// Iterates over the weights in C order.
    pub fn values(&self) -> impl Iterator<Item = i8> + '_ {
        (0..self.count()).map(move |k| self.get(k))
    }
}

/// Bytes needed to pack `count` values of `bits` bits.
pub fn packed_len(count: usize, bits: u8) -> usize {
    (count * bits as usize).div_ceil(8)
}

/// Smallest and largest value a `bits`-bit two's complement weight holds.
pub fn value_range(bits: u8) -> (i8, i8) {
    if bits >= 8 {
        (i8::MIN, i8::MAX)
    } else {
        let half = 1i16 << (bits - 1);
        (-half as i8, (half - 1) as i8)
    }
}

/// Packs `values` at `bits` per value into `out` (which must be exactly
/// `packed_len(values.len(), bits)` long or longer; the rest is untouched).
pub fn pack_into(values: &[i8], bits: u8, out: &mut [u8]) -> Result<usize, PackError> {
    if !WEIGHT_BITS.contains(&bits) {
        return Err(PackError::Bits(bits));
    }
    let need = packed_len(values.len(), bits);
    if out.len() < need {
        return Err(PackError::Buffer {
            have: out.len(),
            need,
        });
    }
    let (lo, hi) = value_range(bits);
    out[..need].fill(0);
    let mask = ((1u16 << bits) - 1) as u8;
    for (k, &v) in values.iter().enumerate() {
        if v < lo || v > hi {
            return Err(PackError::Range { value: v, bits });
        }
        let bit = k * bits as usize;
        out[bit / 8] |= ((v as u8) & mask) << (bit % 8);
    }
    Ok(need)
}

#[inline(always)]
fn unpack_one(data: &[u8], bits: u8, k: usize) -> i8 {
    match bits {
        8 => data[k] as i8,
        _ => {
            let bit = k * bits as usize;
            let raw = data[bit / 8] >> (bit % 8);
            let shift = 8 - bits;
            ((raw << shift) as i8) >> shift
        }
    }
}

/// Little-endian `i32` values read in place from the model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct I32Slice<'a>(#[serde(borrow)] pub &'a [u8]);

impl<'a> I32Slice<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    pub fn get(&self, i: usize) -> i32 {
        let b = &self.0[4 * i..4 * i + 4];
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

/// Little-endian `f32` values read in place from the model file.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct F32Slice<'a>(#[serde(borrow)] pub &'a [u8]);

impl<'a> F32Slice<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        let b = &self.0[4 * i..4 * i + 4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    pub fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_read_back_every_width() {
        for bits in WEIGHT_BITS {
            let (lo, hi) = value_range(bits);
            let span = hi as i32 - lo as i32 + 1;
            let values: heapless::Vec<i8, 64> =
                (0..37).map(|k| (lo as i32 + k % span) as i8).collect();
            let mut buf = [0u8; 64];
            let n = pack_into(&values, bits, &mut buf).unwrap();
            assert_eq!(n, packed_len(values.len(), bits));
            let w = PackedWeights {
                bits,
                shape: [1, 1, 1, values.len() as u32],
                data: &buf[..n],
            };
            for (k, &v) in values.iter().enumerate() {
                assert_eq!(w.get(k), v, "bits {bits} index {k}");
            }
        }
    }

    #[test]
    fn four_bit_weights_take_half_a_byte() {
        let mut buf = [0u8; 2];
        assert_eq!(pack_into(&[1, -1, 7, -8], 4, &mut buf), Ok(2));
        assert_eq!(buf, [0xF1, 0x87]);
        assert_eq!(pack_into(&[1, -1, 0, 1, -2], 2, &mut buf), Ok(2));
        assert_eq!(buf, [0b0100_1101, 0b10]);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut buf = [0u8; 4];
        assert_eq!(
            pack_into(&[8], 4, &mut buf),
            Err(PackError::Range { value: 8, bits: 4 })
        );
        assert_eq!(pack_into(&[1], 3, &mut buf), Err(PackError::Bits(3)));
    }
}
