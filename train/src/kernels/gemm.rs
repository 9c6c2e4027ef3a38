//! A safe, bounds-checked front to the `gemm` crate's float32 matrix
//! product (the one burn's `flex` backend uses): `C = A B` or `C += A B`
//! on strided views of slices. The only `unsafe` of the trainer's kernels:
//! `gemm::gemm` takes raw pointers, and every index it can reach is checked
//! to lie in its slice first.
#![allow(unsafe_code)]

use core::mem::MaybeUninit;

use gemm::Parallelism;

/// A read-only `rows x cols` view: element `(r, c)` is
/// `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// A mutable row-major `rows x cols` view.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
}

/// Whether a product uses the rayon pool or the calling thread only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// The calling thread (the caller parallelizes around it).
    One,
    /// Every thread of the rayon pool.
    All,
}

/// `c = a b` (`accumulate`: `c += a b`).
///
/// # Panics
/// When the shapes do not agree or a view reaches outside its slice.
pub fn matmul(c: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, threads: Threads) {
    check(c.rows, c.cols, c.data.len(), a, b);
    let (m, n) = (c.rows, c.cols);
    if a.cols == 0 {
        if !accumulate {
            c.data[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: `check` bounds every index gemm forms: rows of C below `m`,
    // columns below `n` (C holds `m * n`), inner index below `k`, each
    // within its checked slice; `c` is borrowed mutably and does not alias
    // `a` or `b`.
    unsafe { product(c.data.as_mut_ptr(), m, n, a, b, accumulate, threads) }
}

/// `c = a b` into `rows x cols` floats not yet initialized (a fresh
/// buffer, see [`super::fresh`]): sets every one of them (gemm does not
/// read C when it does not accumulate).
///
/// # Panics
/// As [`matmul`].
pub fn matmul_fresh(
    c: &mut [MaybeUninit<f32>],
    rows: usize,
    cols: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    threads: Threads,
) {
    check(rows, cols, c.len(), a, b);
    if a.cols == 0 {
        for v in &mut c[..rows * cols] {
            v.write(0.0);
        }
        return;
    }
    // SAFETY: as in `matmul`; gemm only writes C here (it reads C only
    // when accumulating), so its elements need no initial value.
    unsafe { product(c.as_mut_ptr() as *mut f32, rows, cols, a, b, false, threads) }
}

/// The shape and bounds checks of a product into `m x n` floats of a
/// slice of `c_len`.
fn check(m: usize, n: usize, c_len: usize, a: MatRef<'_>, b: MatRef<'_>) {
    assert_eq!(a.rows, m, "matmul: rows of A and C");
    assert_eq!(b.cols, n, "matmul: columns of B and C");
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions");
    assert!(a.fits() && b.fits(), "matmul: a view exceeds its slice");
    assert!(c_len >= m * n, "matmul: C exceeds its slice");
}

/// gemm's product into row-major `m x n` C at `c` (nothing for an empty C).
///
/// # Safety
/// `c` valid for `m * n` writes (and reads when `accumulate`), not
/// aliasing `a` or `b`; the views checked by [`check`]; `a.cols > 0`.
unsafe fn product(
    c: *mut f32,
    m: usize,
    n: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    threads: Threads,
) {
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::All => Parallelism::Rayon(rayon::current_num_threads()),
    };
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            a.cols,
            c,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef, b: MatRef) -> Vec<f32> {
        let mut c = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for k in 0..a.cols {
                    c[i * b.cols + j] += a.data[i * a.row_stride + k * a.col_stride]
                        * b.data[k * b.row_stride + j * b.col_stride];
                }
            }
        }
        c
    }

    #[test]
    fn products_with_transposes_and_accumulation() {
        let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..20).map(|i| (i % 7) as f32 - 3.0).collect();
        let (ar, br) = (MatRef::rows(&a, 3, 4), MatRef::rows(&b, 4, 5));
        let mut c = vec![0f32; 15];
        matmul(
            MatMut {
                data: &mut c,
                rows: 3,
                cols: 5,
            },
            ar,
            br,
            false,
            Threads::All,
        );
        assert_eq!(c, naive(ar, br));
        // (A^T)^T B accumulated onto C.
        let at: Vec<f32> = (0..12).map(|i| a[(i % 3) * 4 + i / 3]).collect();
        let atr = MatRef::rows(&at, 4, 3).t();
        matmul(
            MatMut {
                data: &mut c,
                rows: 3,
                cols: 5,
            },
            atr,
            br,
            true,
            Threads::One,
        );
        let twice: Vec<f32> = naive(ar, br).iter().map(|v| 2.0 * v).collect();
        assert_eq!(c, twice);
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn a_view_outside_its_slice_panics() {
        let a = vec![0f32; 5];
        let mut c = vec![0f32; 4];
        matmul(
            MatMut {
                data: &mut c,
                rows: 2,
                cols: 2,
            },
            MatRef::rows(&a, 2, 3),
            MatRef::rows(&a, 3, 2),
            false,
            Threads::One,
        );
    }
}
