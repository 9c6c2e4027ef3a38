//! A safe, bounds-checked front to the `gemm` crate's float32 matrix
//! product (the one burn's `flex` backend uses): `C = A B` or `C += A B`
//! on strided views of slices. The only `unsafe` of the trainer's kernels:
//! `gemm::gemm` takes raw pointers, and every index it can reach is checked
//! to lie in its slice first.
#![allow(unsafe_code)]

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
    assert_eq!(a.rows, c.rows, "matmul: rows of A and C");
    assert_eq!(b.cols, c.cols, "matmul: columns of B and C");
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions");
    assert!(a.fits() && b.fits(), "matmul: a view exceeds its slice");
    assert!(
        c.data.len() >= c.rows * c.cols,
        "matmul: C exceeds its slice"
    );
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.data[..m * n].fill(0.0);
        }
        return;
    }
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::All => Parallelism::Rayon(rayon::current_num_threads()),
    };
    // SAFETY: the assertions above bound every index gemm forms: rows of C
    // below `m`, columns below `n`, inner index below `k`, each within its
    // checked slice; `c` is borrowed mutably and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
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
