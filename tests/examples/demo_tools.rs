//! Small file tools for `scripts/demo_cifar10.sh`:
//!
//! ```text
//! demo_tools cifar10-npy BATCH.bin IMAGES.npy     CIFAR-10 batch -> uint8 NHWC .npy
//! demo_tools npz-extract FILE.npz KEY OUT.npy     one array of an .npz
//! demo_tools compare GOT.npy WANT.npy             every element equal (exit 1 if not)
//! demo_tools top1 PREDICT.npy [LABELS...]         class histogram of the argmax per image
//! ```

use std::path::Path;
use std::process::ExitCode;

use akida_host::datasets::cifar10;
use akida_host::formats::npy::{read_npy, write_npy, Npz, Tensor, TensorData};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo_tools: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["cifar10-npy", batch, out] => {
            let b = cifar10::read_batch(Path::new(batch)).map_err(|e| e.to_string())?;
            let t = Tensor {
                shape: vec![b.len(), 32, 32, 3],
                data: TensorData::U8(b.images),
            };
            write_npy(Path::new(out), &t).map_err(|e| e.to_string())?;
            println!("{out}: {} CIFAR-10 images (32x32x3 uint8)", b.labels.len());
            Ok(())
        }
        ["npz-extract", npz, key, out] => {
            let mut z = Npz::open(Path::new(npz)).map_err(|e| e.to_string())?;
            let t = z.require(key).map_err(|e| e.to_string())?;
            write_npy(Path::new(out), &t).map_err(|e| e.to_string())?;
            println!("{out}: `{key}` {:?} {}", t.shape, t.dtype_name());
            Ok(())
        }
        ["compare", got, want] => {
            let (g, w) = (read(got)?, read(want)?);
            if g.shape != w.shape || g.data != w.data {
                let differ = count_differences(&g.data, &w.data);
                return Err(format!(
                    "{got} and {want} differ ({differ} elements, shapes {:?} {:?})",
                    g.shape, w.shape
                ));
            }
            println!("{got} == {want}: all {} elements equal", g.len());
            Ok(())
        }
        ["top1", predict, classes @ ..] => {
            let p = read(predict)?;
            let Some(v) = p.as_f32() else {
                return Err(format!("{predict}: expected float32 predictions"));
            };
            let k = *p.shape.last().unwrap_or(&1);
            let mut counts = vec![0usize; k];
            for row in v.chunks_exact(k) {
                let best = (0..k).fold(0, |b, i| if row[i] > row[b] { i } else { b });
                counts[best] += 1;
            }
            for (i, c) in counts.iter().enumerate() {
                let name = classes.get(i).copied().unwrap_or("");
                println!("  class {i:>2} {name:<12} {c:>5} image(s)");
            }
            Ok(())
        }
        _ => Err("usage: see the doc comment of tests/examples/demo_tools.rs".into()),
    }
}

fn read(path: &str) -> Result<Tensor, String> {
    read_npy(Path::new(path)).map_err(|e| e.to_string())
}

fn count_differences(a: &TensorData, b: &TensorData) -> usize {
    match (a, b) {
        (TensorData::U8(x), TensorData::U8(y)) => x.iter().zip(y).filter(|(p, q)| p != q).count(),
        (TensorData::I32(x), TensorData::I32(y)) => x.iter().zip(y).filter(|(p, q)| p != q).count(),
        (TensorData::F32(x), TensorData::F32(y)) => x
            .iter()
            .zip(y)
            .filter(|(p, q)| p.to_bits() != q.to_bits())
            .count(),
        _ => usize::MAX,
    }
}
