//! When potentials saturate to 20 bits, on vectors measured with BrainChip's
//! engine (akida 2.19.3, layers built with `akida.Model.add` and
//! `set_variable`, raw potentials read with `forward`):
//!
//! - a convolution without pooling keeps exact 32-bit potentials, whatever
//!   its kind and whether it has an activation;
//! - after a max pooling they saturate, the input convolution's too;
//! - a global average pooling's sum saturates at every cell it adds, in
//!   row-major order;
//! - a fully connected layer's potentials saturate.

use akida_core::inference::{forward, LayerOutput};
use akida_core::{
    Backend, Dims, InputData, LayerKind, LayerParams, OwnedLayer, OwnedModel, Padding, Pooling,
    Simd, ValidModel, Window, WorkspaceBuffers,
};

/// One layer of `filters = 1` without activation behind a 4-bit InputData
/// layer (or alone, for an input convolution).
fn model(
    kind: LayerKind,
    input: Dims,
    kernel: u32,
    pooling: Pooling,
    bits: u8,
    weights: &[i8],
    pw: Option<&[i8]>,
) -> ValidModel<Vec<u8>, String> {
    let fc = kind == LayerKind::FullyConnected;
    let p = LayerParams {
        kind,
        input,
        filters: 1,
        kernel: if fc {
            Window::ONE
        } else {
            Window::new(kernel, kernel)
        },
        stride: Window::ONE,
        padding: if fc { Padding::Valid } else { Padding::Same },
        padding_value: 0,
        pooling,
        activation: false,
        act_bits: 1,
        weights_bits: bits,
    };
    let layer = OwnedLayer::new("l", p, weights, pw, &[0], &[1.0]).unwrap();
    let input_data = (kind != LayerKind::InputConvolutional).then(|| InputData {
        name: "input".into(),
        dims: input,
        bits: 4,
    });
    OwnedModel {
        layers: [layer].into_iter().collect(),
        input_data,
    }
    .validate()
    .unwrap()
}

/// The potentials of every backend, checked equal; returns them.
fn potentials(m: &ValidModel<Vec<u8>, String>, x: &[u8]) -> Vec<i32> {
    let mut all = Vec::new();
    let mut backends = vec![Backend::Reference, Backend::Event];
    backends.extend(Simd::available().into_iter().map(Backend::Fast));
    for backend in backends {
        let mut buffers = WorkspaceBuffers::new(&m.workspace_sizes(true));
        let mut ws = buffers.workspace();
        let LayerOutput::Potentials(p) = forward(m, x, &mut ws, &backend, |_, _| {}).unwrap()
        else {
            panic!("potentials expected");
        };
        all.push(p.to_vec());
    }
    for other in &all[1..] {
        assert_eq!(other, &all[0], "backends differ");
    }
    all.swap_remove(0)
}

/// A 4x4x1000 input of 15s through a 3x3 'same' kernel of 7s: corner cells
/// sum 4 taps (420000), edges 6 (630000), the centre 9 (945000).
#[test]
fn unpooled_convolutions_do_not_saturate_pooled_ones_do() {
    let input = Dims::new(4, 4, 1000);
    let x = vec![15u8; input.len()];
    let w = vec![7i8; 9 * 1000];
    let dw = vec![7i8; 9 * 1000];
    let pw = vec![1i8; 1000];
    let conv = model(
        LayerKind::Convolutional,
        input,
        3,
        Pooling::None,
        4,
        &w,
        None,
    );
    assert_eq!(
        &potentials(&conv, &x)[..4],
        [420000, 630000, 630000, 420000]
    );
    assert_eq!(potentials(&conv, &x)[5], 945000);
    let sep = model(
        LayerKind::SeparableConvolutional,
        input,
        3,
        Pooling::None,
        4,
        &dw,
        Some(&pw),
    );
    assert_eq!(&potentials(&sep, &x)[..4], [420000, 630000, 630000, 420000]);
    let pool = Pooling::Max {
        size: Window::new(2, 2),
        stride: Window::new(2, 2),
    };
    for m in [
        model(LayerKind::Convolutional, input, 3, pool, 4, &w, None),
        model(
            LayerKind::SeparableConvolutional,
            input,
            3,
            pool,
            4,
            &dw,
            Some(&pw),
        ),
    ] {
        assert_eq!(potentials(&m, &x), [524287; 4]);
    }
    let gap = model(
        LayerKind::Convolutional,
        input,
        3,
        Pooling::GlobalAverage,
        4,
        &w,
        None,
    );
    assert_eq!(potentials(&gap, &x), [524287]);
}

/// The input convolution (8-bit weights of 127 on a 4x4x3 image of 255s):
/// 874395 at the centre unpooled, 524287 once max pooled.
#[test]
fn the_input_convolution_saturates_when_pooled() {
    let input = Dims::new(4, 4, 3);
    let x = vec![255u8; input.len()];
    let w = vec![127i8; 27];
    let plain = model(
        LayerKind::InputConvolutional,
        input,
        3,
        Pooling::None,
        8,
        &w,
        None,
    );
    let p = potentials(&plain, &x);
    assert_eq!((p[0], p[1], p[5]), (388620, 582930, 874395));
    let pool = Pooling::Max {
        size: Window::new(2, 2),
        stride: Window::new(2, 2),
    };
    let pooled = model(LayerKind::InputConvolutional, input, 3, pool, 8, &w, None);
    assert_eq!(potentials(&pooled, &x), [524287; 4]);
}

/// A 1x1 kernel over 12000 channels: the first 6000 weigh +7, the others
/// -7, and each cell's input is 15 on `n` channels of one group (`n > 0`:
/// the positive group, else the negative one), so its potential is
/// `105 * n`. The engine's global sum saturates at every cell, row-major.
fn gap_of(rows: u32, cols: u32, cells: &[((u32, u32), i32)]) -> i32 {
    let c = 12000usize;
    let input = Dims::new(rows, cols, c as u32);
    let w: Vec<i8> = (0..c).map(|k| if k < 6000 { 7 } else { -7 }).collect();
    let m = model(
        LayerKind::Convolutional,
        input,
        1,
        Pooling::GlobalAverage,
        4,
        &w,
        None,
    );
    let mut x = vec![0u8; input.len()];
    for &((r, col), n) in cells {
        let base = input.index(r as usize, col as usize, 0);
        let range = if n > 0 {
            0..n as usize
        } else {
            6000..6000 + (-n) as usize
        };
        for k in range {
            x[base + k] = 15;
        }
    }
    potentials(&m, &x)[0]
}

#[test]
fn a_global_sum_saturates_at_every_cell_in_row_major_order() {
    // 630000 then -525000: 524287 - 525000 (the exact sum is 105000).
    assert_eq!(gap_of(1, 2, &[((0, 0), 6000), ((0, 1), -5000)]), -713);
    // (0,0) 630000, (0,1) -525000, (1,0) 399000: row-major gives 398287
    // (column-major would give -713).
    assert_eq!(
        gap_of(2, 2, &[((0, 0), 6000), ((0, 1), -5000), ((1, 0), 3800)]),
        398287
    );
    assert_eq!(
        gap_of(2, 2, &[((0, 1), 6000), ((1, 0), -5000), ((1, 1), 3800)]),
        398287
    );
    assert_eq!(
        gap_of(
            2,
            3,
            &[
                ((0, 0), 5000),
                ((0, 1), 2000),
                ((0, 2), -5000),
                ((1, 0), -2000)
            ]
        ),
        -210713
    );
    // Within one cell the channels add exactly: 630000 - 525000.
    assert_eq!(gap_of(2, 2, &[((0, 0), 6000), ((0, 0), -5000)]), 105000);
    assert_eq!(gap_of(2, 2, &[((0, 0), 6000)]), 524287);
}

/// A fully connected layer saturates; its sum over inputs is exact first.
#[test]
fn fully_connected_potentials_saturate() {
    let n = 12000usize;
    let input = Dims::new(1, 1, n as u32);
    let w: Vec<i8> = (0..n).map(|k| if k < 6000 { 7 } else { -7 }).collect();
    let m = model(
        LayerKind::FullyConnected,
        input,
        1,
        Pooling::None,
        4,
        &w,
        None,
    );
    let mut x = vec![0u8; n];
    x[..11000].fill(15);
    assert_eq!(potentials(&m, &x), [105000]);
    x[6000..].fill(0);
    assert_eq!(potentials(&m, &x), [524287]);
}
