//! Integer weights packed at their bit width, and the little-endian arrays
//! (thresholds, act_steps) of a layer.
//!
//! A 4-bit weight takes half a byte, a 2-bit weight a quarter: value `k`
//! occupies bits `k*bits .. (k+1)*bits` of the byte stream, least
//! significant bit first, in two's complement.
//!
//! The arrays are generic over their byte storage `B`: borrowed from a model
//! file (`&[u8]`, what the firmware runs) or owned (`Vec<u8>`, what the host
//! builds and edits). Both have one definition and one encoding.

use serde::{Deserialize, Serialize};

/// Weight bit widths the Akida 1.0 engine runs on every layer kind, and the
/// widths weights are packed at.
pub const WEIGHT_BITS: [u8; 3] = [2, 4, 8];

/// Weight bit widths of an input convolution: any from 2 to 8 (cnn2snn does
/// not check the first layer's `-iq`; the engine holds 3, 5, 6 or 7-bit
/// weights as int8, without a range check).
pub const INPUT_WEIGHT_BITS: core::ops::RangeInclusive<u8> = 2..=8;

/// The width weights of `bits` bits are packed at, as the engine stores
/// them: 2 and 4 bits as such, any other width as int8.
pub const fn storage_bits(bits: u8) -> u8 {
    match bits {
        2 | 4 => bits,
        _ => 8,
    }
}

/// A view of one packed weight tensor: its bits and shape come from the
/// layer's parameters, its bytes from the layer's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedWeights<'a> {
    /// The packing width: 2, 4 or 8 (see [`storage_bits`]).
    pub bits: u8,
    /// The tensor shape as the engine stores it (4-D, C order).
    pub shape: [u32; 4],
    /// `ceil(count * bits / 8)` bytes.
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

/// Number of elements of a 4-D shape, `None` on overflow.
pub fn checked_count(shape: [u32; 4]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
}

impl<'a> PackedWeights<'a> {
    /// Number of weights. Only call on validated weights (the count fits).
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

/// Packs `values` at `bits` per value into `out` (which must be at least
/// `packed_len(values.len(), bits)` long; the rest is untouched).
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
    out[..need].fill(0);
    for (k, &v) in values.iter().enumerate() {
        set_one(out, bits, k, v)?;
    }
    Ok(need)
}

/// Packs `values` into a new byte vector (host).
#[cfg(feature = "std")]
pub fn pack(values: &[i8], bits: u8) -> Result<std::vec::Vec<u8>, PackError> {
    let mut out = std::vec![0u8; packed_len(values.len(), bits)];
    pack_into(values, bits, &mut out)?;
    Ok(out)
}

/// Writes the `k`-th weight of a packed byte stream in place.
pub fn set_one(data: &mut [u8], bits: u8, k: usize, value: i8) -> Result<(), PackError> {
    let (lo, hi) = value_range(bits);
    if value < lo || value > hi {
        return Err(PackError::Range { value, bits });
    }
    let bit = k * bits as usize;
    let mask = (((1u16 << bits) - 1) as u8) << (bit % 8);
    let byte = &mut data[bit / 8];
    *byte = (*byte & !mask) | (((value as u8) << (bit % 8)) & mask);
    Ok(())
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

macro_rules! le_array {
    ($(#[$doc:meta])* $name:ident, $t:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct $name<B>(pub B);

        impl<B: AsRef<[u8]>> $name<B> {
            pub fn len(&self) -> usize {
                self.0.as_ref().len() / 4
            }
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
            #[inline]
            pub fn get(&self, i: usize) -> $t {
                let b = &self.0.as_ref()[4 * i..4 * i + 4];
                <$t>::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            pub fn iter(&self) -> impl Iterator<Item = $t> + '_ {
                (0..self.len()).map(move |i| self.get(i))
            }
            /// The same values borrowed.
            pub fn view(&self) -> $name<&[u8]> {
                $name(self.0.as_ref())
            }
        }

        impl<B: AsMut<[u8]>> $name<B> {
            /// Overwrites the `i`-th value.
            pub fn set(&mut self, i: usize, value: $t) {
                self.0.as_mut()[4 * i..4 * i + 4].copy_from_slice(&value.to_le_bytes());
            }
        }

        #[cfg(feature = "std")]
        impl FromIterator<$t> for $name<std::vec::Vec<u8>> {
            fn from_iter<I: IntoIterator<Item = $t>>(values: I) -> Self {
                $name(values.into_iter().flat_map(<$t>::to_le_bytes).collect())
            }
        }
    };
}

le_array!(
    /// Little-endian `i32` values (one threshold per filter).
    I32Values,
    i32
);
le_array!(
    /// Little-endian `f32` values (one act_step per filter).
    F32Values,
    f32
);

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
    fn set_one_rewrites_a_single_weight() {
        let mut buf = [0u8; 2];
        pack_into(&[1, -1, 0, 1, -2], 2, &mut buf).unwrap();
        set_one(&mut buf, 2, 1, 1).unwrap();
        let w = PackedWeights {
            bits: 2,
            shape: [1, 1, 1, 5],
            data: &buf,
        };
        assert_eq!(
            w.values().collect::<heapless::Vec<i8, 5>>(),
            [1, 1, 0, 1, -2]
        );
        assert_eq!(
            set_one(&mut buf, 2, 0, 2),
            Err(PackError::Range { value: 2, bits: 2 })
        );
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

    #[test]
    fn little_endian_arrays_read_and_write_in_place() {
        let mut bytes = [0u8; 8];
        let mut t = I32Values(&mut bytes[..]);
        t.set(1, -5);
        assert_eq!(t.get(1), -5);
        assert_eq!(
            I32Values(&bytes[..])
                .iter()
                .collect::<heapless::Vec<i32, 2>>(),
            [0, -5]
        );
        let f = F32Values(1.5f32.to_le_bytes());
        assert_eq!(f.get(0), 1.5);
    }
}
