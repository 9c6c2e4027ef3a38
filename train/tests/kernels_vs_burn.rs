//! Our float32 kernels (`akida_train::ops`, NHWC) against burn's own
//! operations (NCHW, autodiff), forward and backward, on random shapes,
//! strides, paddings and values: convolution (the general and the 1x1
//! product), depthwise convolution (burn: a grouped convolution), max
//! pooling, and batch normalization with ReLU / ReLU6 (burn: composed from
//! mean, variance and clamp).

use akida_core::Padding;
use akida_train::kernels::norm::Act;
use akida_train::kernels::Geometry;
use akida_train::ops;
use akida_train::rng::Rng;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{activation, Device, Tensor, TensorData};
use proptest::prelude::*;

fn device() -> Device {
    Device::flex().autodiff()
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
}

fn t4(v: &[f32], s: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v.to_vec(), s), &device()).require_grad()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().as_slice::<f32>().unwrap().to_vec()
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: ours {x}, burn {y}"
        );
    }
}

/// TensorFlow's padding as (before, after) pairs.
fn pads(g: &Geometry) -> [(usize, usize); 2] {
    let total = |n: usize, k: usize, s: usize, o: usize| ((o - 1) * s + k).saturating_sub(n);
    let th = total(g.h, g.kh, g.sh, g.oh);
    let tw = total(g.w, g.kw, g.sw, g.ow);
    [(g.pad_top, th - g.pad_top), (g.pad_left, tw - g.pad_left)]
}

#[derive(Debug, Clone)]
struct Case {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    cout: usize,
    k: [usize; 2],
    s: [usize; 2],
    same: bool,
    seed: u64,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        1usize..3,
        3usize..10,
        3usize..10,
        1usize..9,
        1usize..7,
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(n, h, w, c, cout, k, s, same, seed)| Case {
            n,
            h,
            w,
            c,
            cout,
            k: [k.0, k.1],
            s: [s.0, s.1],
            same,
            seed,
        })
}

impl Case {
    fn geometry(&self) -> Option<Geometry> {
        let padding = if self.same {
            Padding::Same
        } else {
            Padding::Valid
        };
        Geometry::new([self.n, self.h, self.w, self.c], self.k, self.s, padding).ok()
    }
}

/// Gradients of `sum(y * r)` through `f` for ours (NHWC) and burn's (NCHW).
fn check_conv(case: &Case, depthwise: bool) {
    let Some(g) = case.geometry() else { return };
    let mut rng = Rng::new(case.seed);
    let cout = if depthwise { case.c } else { case.cout };
    let x = random(&mut rng, g.n * g.in_image());
    let k = random(
        &mut rng,
        g.kh * g.kw * g.c * if depthwise { 1 } else { cout },
    );
    let r = random(&mut rng, g.n * g.oh * g.ow * cout);
    let kshape = [g.kh, g.kw, g.c, if depthwise { 1 } else { cout }];

    let (xo, ko) = (t4(&x, [g.n, g.h, g.w, g.c]), t4(&k, kshape));
    let yo = if depthwise {
        ops::depthwise(xo.clone(), ko.clone(), &g)
    } else {
        ops::conv2d(xo.clone(), ko.clone(), &g)
    };
    let ro = t4(&r, [g.n, g.oh, g.ow, cout]).detach();
    let grads = (yo.clone() * ro).sum().backward();
    let (dxo, dko) = (xo.grad(&grads).unwrap(), ko.grad(&grads).unwrap());

    let (xb, kb) = (t4(&x, [g.n, g.h, g.w, g.c]), t4(&k, kshape));
    let weight = if depthwise {
        kb.clone().permute([2, 3, 0, 1]) // [c, 1, kh, kw]
    } else {
        kb.clone().permute([3, 2, 0, 1]) // [cout, cin, kh, kw]
    };
    let options = ConvOptions::new_with_padding(
        g_strides(&g),
        pads(&g),
        [1, 1],
        if depthwise { g.c } else { 1 },
    );
    let yb = conv2d(xb.clone().permute([0, 3, 1, 2]), weight, None, options).permute([0, 2, 3, 1]);
    let rb = t4(&r, [g.n, g.oh, g.ow, cout]).detach();
    let grads = (yb.clone() * rb).sum().backward();
    let (dxb, dkb) = (xb.grad(&grads).unwrap(), kb.grad(&grads).unwrap());

    let what = if depthwise { "depthwise" } else { "conv" };
    assert_close(&format!("{what} y"), &values(yo), &values(yb), 1e-5);
    assert_close(&format!("{what} dx"), &values(dxo), &values(dxb), 1e-5);
    assert_close(&format!("{what} dk"), &values(dko), &values(dkb), 1e-4);
}

fn g_strides(g: &Geometry) -> [usize; 2] {
    [g.sh, g.sw]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn convolution_matches_burn(case in cases()) {
        check_conv(&case, false);
    }

    #[test]
    fn depthwise_matches_burn(case in cases()) {
        check_conv(&case, true);
    }

    #[test]
    fn max_pool_matches_burn(case in cases()) {
        let Some(g) = case.geometry() else { return Ok(()) };
        let mut rng = Rng::new(case.seed);
        let x = random(&mut rng, g.n * g.in_image());
        let r = random(&mut rng, g.n * g.oh * g.ow * g.c);
        let xo = t4(&x, [g.n, g.h, g.w, g.c]);
        let yo = ops::max_pool(xo.clone(), &g);
        let grads = (yo.clone() * t4(&r, [g.n, g.oh, g.ow, g.c]).detach()).sum().backward();
        let dxo = xo.grad(&grads).unwrap();

        let xb = t4(&x, [g.n, g.h, g.w, g.c]);
        let mut options = MaxPoolOptions::new([g.kh, g.kw]).with_stride([g.sh, g.sw]);
        options.padding = pads(&g);
        let yb = max_pool2d(xb.clone().permute([0, 3, 1, 2]), options).permute([0, 2, 3, 1]);
        let grads = (yb.clone() * t4(&r, [g.n, g.oh, g.ow, g.c]).detach()).sum().backward();
        let dxb = xb.grad(&grads).unwrap();
        assert_close("max pool y", &values(yo), &values(yb), 0.0);
        assert_close("max pool dx", &values(dxo), &values(dxb), 1e-6);
    }

    #[test]
    fn batch_norm_relu_matches_burn(rows in 2usize..40, c in 1usize..12, act in 0usize..3, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = random(&mut rng, rows * c).iter().map(|v| 3.0 * v).collect();
        let gamma: Vec<f32> = random(&mut rng, c).iter().map(|v| 1.0 + 0.5 * v).collect();
        let beta = random(&mut rng, c);
        let r = random(&mut rng, rows * c);
        let eps = 1e-3;
        let act = [Act::None, Act::Relu, Act::ReluMax(1.0)][act];
        let d = device();
        let t2 = |v: &[f32], s: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), s), &d).require_grad();
        let t1 = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &d).require_grad();

        let (xo, go, bo) = (t2(&x, [rows, c]), t1(&gamma), t1(&beta));
        let stats = ops::batch_stats(xo.clone().detach());
        let yo = ops::batch_norm_act(xo.clone(), go.clone(), bo.clone(), stats, eps, act, true);
        let grads = (yo.clone() * t2(&r, [rows, c]).detach()).sum().backward();
        let ours = [values(yo), values(xo.grad(&grads).unwrap()), values(go.grad(&grads).unwrap()), values(bo.grad(&grads).unwrap())];

        let (xb, gb, bb) = (t2(&x, [rows, c]), t1(&gamma), t1(&beta));
        let mean = xb.clone().mean_dim(0);
        let centered = xb.clone() - mean;
        let var = (centered.clone() * centered.clone()).mean_dim(0);
        let xhat = centered / (var + eps).sqrt();
        let pre = xhat * gb.clone().reshape([1, c]) + bb.clone().reshape([1, c]);
        let yb = match act {
            Act::None => pre,
            Act::Relu => activation::relu(pre),
            Act::ReluMax(m) => activation::relu(pre).clamp_max(m),
        };
        let grads = (yb.clone() * t2(&r, [rows, c]).detach()).sum().backward();
        let theirs = [values(yb), values(xb.grad(&grads).unwrap()), values(gb.grad(&grads).unwrap()), values(bb.grad(&grads).unwrap())];
        for (name, (a, b)) in ["y", "dx", "dgamma", "dbeta"].iter().zip(ours.iter().zip(&theirs)) {
            assert_close(&format!("batch norm {name}"), a, b, 2e-4);
        }
    }
}

#[test]
fn pointwise_product_matches_burn_on_a_real_size() {
    // The 1x1 fast path (one product over the batch) at a ds_cnn size.
    let case = Case {
        n: 4,
        h: 8,
        w: 8,
        c: 64,
        cout: 48,
        k: [1, 1],
        s: [1, 1],
        same: true,
        seed: 3,
    };
    assert!(case.geometry().unwrap().is_pointwise());
    check_conv(&case, false);
}
