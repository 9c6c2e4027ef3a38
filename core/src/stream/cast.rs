//! Views of the `u64` workspace as the element types the engine works in.
//! Every view is of plain integers (any bit pattern is a value) and the
//! workspace is 8-byte aligned, so each cast is sound.

#![allow(unsafe_code)]

pub fn bytes(w: &mut [u64]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirement; same memory span.
    unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u8>(), w.len() * 8) }
}

pub fn words(w: &mut [u64]) -> &mut [u32] {
    // SAFETY: u64 alignment covers u32; any bit pattern is a u32.
    unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u32>(), w.len() * 2) }
}

pub fn halves(w: &mut [u32]) -> &mut [u16] {
    // SAFETY: u32 alignment covers u16; any bit pattern is a u16.
    unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u16>(), w.len() * 2) }
}

pub fn ints(w: &mut [u64]) -> &mut [i32] {
    // SAFETY: u64 alignment covers i32; any bit pattern is an i32.
    unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<i32>(), w.len() * 2) }
}

pub fn longs(w: &mut [u64]) -> &mut [i64] {
    // SAFETY: same size and alignment; any bit pattern is an i64.
    unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<i64>(), w.len()) }
}
