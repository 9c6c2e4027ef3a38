//! Dense reference kernels: each potential is the sum over its receptive
//! field, written as directly as the definition.

use super::ConvShape;

/// Cross-correlation of an HWC input with a (kh, kw, cin, f) kernel; padded
/// cells hold `pad_value`.
pub fn convolution(s: &ConvShape, w: &[i8], input: &[u8], pad_value: u8, out: &mut [i32]) {
    let (cin, f) = (s.input.channels as usize, s.output.channels as usize);
    for oy in 0..s.output.rows as usize {
        for ox in 0..s.output.cols as usize {
            for filter in 0..f {
                let mut acc = 0i32;
                for i in 0..s.kernel.rows as usize {
                    for j in 0..s.kernel.cols as usize {
                        let cell = s.input_cell(oy, ox, i, j);
                        for c in 0..cin {
                            let v = match cell {
                                Some((r, col)) => input[s.input.index(r, col, c)],
                                None => pad_value,
                            };
                            let wk = w[((i * s.kernel.cols as usize + j) * cin + c) * f + filter];
                            acc += v as i32 * wk as i32;
                        }
                    }
                }
                out[s.output.index(oy, ox, filter)] = acc;
            }
        }
    }
}

/// Depthwise cross-correlation with a (kh, kw, c) kernel, zero padding.
pub fn depthwise(s: &ConvShape, w: &[i8], input: &[u8], out: &mut [i32]) {
    let c_n = s.input.channels as usize;
    for oy in 0..s.output.rows as usize {
        for ox in 0..s.output.cols as usize {
            for c in 0..c_n {
                let mut acc = 0i32;
                for i in 0..s.kernel.rows as usize {
                    for j in 0..s.kernel.cols as usize {
                        if let Some((r, col)) = s.input_cell(oy, ox, i, j) {
                            let wk = w[(i * s.kernel.cols as usize + j) * c_n + c];
                            acc += input[s.input.index(r, col, c)] as i32 * wk as i32;
                        }
                    }
                }
                out[s.output.index(oy, ox, c)] = acc;
            }
        }
    }
}

/// Pointwise (1x1) product of depthwise potentials (cells, cin) with a
/// (cin, f) kernel.
pub fn pointwise(depthwise: &[i32], cin: usize, w: &[i8], out: &mut [i32]) {
    let f = w.len() / cin;
    for (cell, row) in depthwise.chunks_exact(cin).enumerate() {
        for filter in 0..f {
            let mut acc = 0i32;
            for (c, &d) in row.iter().enumerate() {
                acc += d * w[c * f + filter] as i32;
            }
            out[cell * f + filter] = acc;
        }
    }
}

/// Fully connected product of an HWC-flattened input with an (inputs, units) kernel.
pub fn fully_connected(w: &[i8], input: &[u8], out: &mut [i32]) {
    let units = out.len();
    for (u, slot) in out.iter_mut().enumerate() {
        let mut acc = 0i32;
        for (k, &v) in input.iter().enumerate() {
            acc += v as i32 * w[k * units + u] as i32;
        }
        *slot = acc;
    }
}
