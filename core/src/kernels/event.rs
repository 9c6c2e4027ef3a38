//! Event ("spike") kernels: only non-zero inputs are visited, and each one
//! scatters its contribution to every output it reaches, as the NSoC
//! processes events. Padded cells holding a non-zero `padding_value` (an
//! input shift) are events too.

use super::ConvShape;

/// Calls `visit(tap, cell)` for every kernel tap (`i * kw + j`) through
/// which the padded-frame cell (`pr`, `pc`) feeds an output cell (`oy * cols
/// + ox`).
#[inline(always)]
fn for_each_target(s: &ConvShape, pr: usize, pc: usize, mut visit: impl FnMut(usize, usize)) {
    let kcols = s.kernel.cols as usize;
    for i in 0..s.kernel.rows as usize {
        let Some(oy) = ConvShape::output_of(pr, i, s.stride.rows, s.output.rows) else {
            continue;
        };
        for j in 0..kcols {
            let Some(ox) = ConvShape::output_of(pc, j, s.stride.cols, s.output.cols) else {
                continue;
            };
            visit(i * kcols + j, oy * s.output.cols as usize + ox);
        }
    }
}

/// Adds `value * w[i, j, c, :]` to every output fed by the padded-frame cell
/// (`pr`, `pc`), channel `c`.
#[inline(always)]
fn scatter(s: &ConvShape, w: &[i8], pr: usize, pc: usize, c: usize, value: i32, out: &mut [i32]) {
    let (cin, f) = (s.input.channels as usize, s.output.channels as usize);
    for_each_target(s, pr, pc, |tap, cell| {
        let taps = &w[(tap * cin + c) * f..][..f];
        for (acc, &wk) in out[cell * f..][..f].iter_mut().zip(taps) {
            *acc += value * wk as i32;
        }
    });
}

/// Cross-correlation of an HWC input with a (kh, kw, cin, f) kernel, driven
/// by input events; padded cells holding `pad_value` are events when it is
/// non-zero.
pub fn convolution(s: &ConvShape, w: &[i8], input: &[u8], pad_value: u8, out: &mut [i32]) {
    out.fill(0);
    let cin = s.input.channels as usize;
    for_each_event(s, input, |pr, pc, c, v| scatter(s, w, pr, pc, c, v, out));
    if pad_value != 0 {
        padding_events(s, |pr, pc| {
            for c in 0..cin {
                scatter(s, w, pr, pc, c, pad_value as i32, out);
            }
        });
    }
}

/// Calls `visit(pr, pc, c, value)` for every non-zero input level, at its
/// padded-frame coordinates.
#[inline(always)]
fn for_each_event(s: &ConvShape, input: &[u8], mut visit: impl FnMut(usize, usize, usize, i32)) {
    let cin = s.input.channels as usize;
    let (pt, pl) = s.pads;
    for r in 0..s.input.rows as usize {
        for col in 0..s.input.cols as usize {
            let base = s.input.index(r, col, 0);
            for (c, &v) in input[base..base + cin].iter().enumerate() {
                if v != 0 {
                    visit(r + pt, col + pl, c, v as i32);
                }
            }
        }
    }
}

/// Calls `emit(pr, pc)` for every padded cell that some kernel tap reaches,
/// in padded-frame coordinates.
fn padding_events(s: &ConvShape, mut emit: impl FnMut(usize, usize)) {
    let (pt, pl) = s.pads;
    let rows = (s.output.rows as usize - 1) * s.stride.rows as usize + s.kernel.rows as usize;
    let cols = (s.output.cols as usize - 1) * s.stride.cols as usize + s.kernel.cols as usize;
    let (h, w) = (s.input.rows as usize, s.input.cols as usize);
    for pr in 0..rows {
        let row_inside = pr >= pt && pr < pt + h;
        for pc in 0..cols {
            let inside = row_inside && pc >= pl && pc < pl + w;
            if !inside {
                emit(pr, pc);
            }
        }
    }
}

/// Depthwise cross-correlation with a (kh, kw, c) kernel, driven by input events.
pub fn depthwise(s: &ConvShape, w: &[i8], input: &[u8], out: &mut [i32]) {
    out.fill(0);
    let c_n = s.input.channels as usize;
    for_each_event(s, input, |pr, pc, c, v| {
        for_each_target(s, pr, pc, |tap, cell| {
            out[cell * c_n + c] += v * w[tap * c_n + c] as i32;
        });
    });
}

/// Pointwise product driven by the non-zero depthwise potentials.
pub fn pointwise(depthwise: &[i32], cin: usize, w: &[i8], out: &mut [i32]) {
    out.fill(0);
    let f = w.len() / cin;
    for (cell, row) in depthwise.chunks_exact(cin).enumerate() {
        let acc = &mut out[cell * f..][..f];
        for (c, &d) in row.iter().enumerate() {
            if d == 0 {
                continue;
            }
            for (a, &wk) in acc.iter_mut().zip(&w[c * f..][..f]) {
                *a += d * wk as i32;
            }
        }
    }
}

/// Fully connected product driven by the non-zero inputs (HWC order).
pub fn fully_connected(w: &[i8], input: &[u8], out: &mut [i32]) {
    out.fill(0);
    let units = out.len();
    for (k, &v) in input.iter().enumerate() {
        if v == 0 {
            continue;
        }
        for (a, &wk) in out.iter_mut().zip(&w[k * units..][..units]) {
            *a += v as i32 * wk as i32;
        }
    }
}
