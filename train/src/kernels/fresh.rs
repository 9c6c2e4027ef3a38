//! Output buffers a kernel writes once, without a zeroing pass first.
//!
//! A training step allocates its activations and gradients anew (a
//! `ds_cnn_cifar10` tensor of batch 100 at 32x32x128 is 52 MB), and
//! `vec![0.0; n]` zeroes each one before the kernel overwrites it: on a
//! 2-core Xeon with AMX, 12 % of a `ds_cnn_cifar10` step was mimalloc's
//! zeroing (`_mi_page_malloc_zero`). Kernels that set every element of
//! their output once write it through [`Out`], so that the same loop fills
//! a plain `&mut [f32]` (tests, callers with a buffer) or the uninitialized
//! spare capacity of a new vector ([`fresh`]).
#![allow(unsafe_code)]

use core::mem::MaybeUninit;

/// An element of a kernel's output, set once.
pub trait Out: Send {
    fn set(&mut self, v: f32);
}

impl Out for f32 {
    #[inline(always)]
    fn set(&mut self, v: f32) {
        *self = v;
    }
}

impl Out for MaybeUninit<f32> {
    #[inline(always)]
    fn set(&mut self, v: f32) {
        self.write(v);
    }
}

/// A vector of `n` floats filled by `fill`, with no zeroing pass.
///
/// # Safety
/// `fill` must set every one of the `n` elements it is given ([`Out::set`])
/// before it returns (it may not read them).
pub unsafe fn fresh(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the caller's contract: all `n` elements were written.
    unsafe { v.set_len(n) };
    v
}

/// A vector of `n` floats built a chunk of `chunk` at a time on the rayon
/// pool: each chunk is zeroed just before `fill(i, chunk i)` runs on it,
/// while it is in the core's cache, instead of the whole vector in one
/// pass up front (for kernels that accumulate into their output).
pub fn zeroed_by_chunks(
    n: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    // SAFETY: every chunk is written (zeroed) in full before `fill` sees it
    // as floats, and the chunks cover all `n` elements.
    unsafe {
        fresh(n, |out| {
            out.par_chunks_mut(chunk.max(1))
                .enumerate()
                .for_each(|(i, part)| {
                    for v in part.iter_mut() {
                        v.write(0.0);
                    }
                    // SAFETY: `part` was just initialized in full; `f32`
                    // and `MaybeUninit<f32>` share a layout.
                    let part =
                        core::slice::from_raw_parts_mut(part.as_mut_ptr() as *mut f32, part.len());
                    fill(i, part);
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_vector_holds_what_was_written() {
        // SAFETY: the closure writes all 1,000 elements.
        let v = unsafe {
            fresh(1000, |out| {
                for (i, o) in out.iter_mut().enumerate() {
                    o.set(i as f32 * 0.5);
                }
            })
        };
        assert_eq!(v.len(), 1000);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32 * 0.5));
    }

    #[test]
    fn chunks_start_from_zero_and_cover_the_vector() {
        let v = zeroed_by_chunks(1003, 100, |i, part| {
            for (j, x) in part.iter_mut().enumerate() {
                *x += (i * 100 + j) as f32;
            }
        });
        assert_eq!(v.len(), 1003);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
    }
}
