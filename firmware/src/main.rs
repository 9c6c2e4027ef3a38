//! akida-rs firmware: runs the embedded converted model with akida-core's
//! event kernels on a Cortex-M4F, under QEMU (mps2-an386) with semihosting.
//!
//! Usage (QEMU `-append`): `INPUT OUTPUT`. INPUT holds N images of the
//! model's input size (HWC uint8, back to back); OUTPUT receives N outputs,
//! little-endian i32 potentials (or u8 levels when the last layer has an
//! activation). Without arguments it runs one all-zero image and prints the
//! output. Exit code 0 on success, 1 on an I/O error, 2 on a rejected model.
#![no_std]
#![no_main]

use akida_core::inference::{forward, LayerOutput, Workspace};
use akida_core::{Backend, PrepBuffers};
use cortex_m_rt::entry;
use semihosting::experimental::env;
use semihosting::io::{Read, Write};
use semihosting::{fs, print, println, process};

mod sizes {
    include!(concat!(env!("OUT_DIR"), "/sizes.rs"));
}
use sizes::*;

/// The model, embedded in flash at build time.
static MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.akd"));

/// Longest path accepted on the command line.
const PATH_MAX: usize = 256;

/// A NUL-terminated copy of a path for semihosting.
fn c_path<'b>(path: &str, buf: &'b mut [u8; PATH_MAX]) -> Option<&'b core::ffi::CStr> {
    let n = path.len();
    if n + 1 > PATH_MAX {
        return None;
    }
    buf[..n].copy_from_slice(path.as_bytes());
    buf[n] = 0;
    core::ffi::CStr::from_bytes_with_nul(&buf[..=n]).ok()
}

fn fail(code: i32, what: &str) -> ! {
    println!("akida-firmware: {}", what);
    process::exit(code)
}

#[entry]
fn main() -> ! {
    let model = match akida_core::decode(MODEL) {
        Ok(m) => m,
        Err(e) => {
            print!("akida-firmware: model rejected: {}", e);
            let mut cause = core::error::Error::source(&e);
            while let Some(c) = cause {
                print!(": {}", c);
                cause = c.source();
            }
            println!();
            process::exit(2)
        }
    };
    let mut level_a = [0u8; LEVELS];
    let mut level_b = [0u8; LEVELS];
    let mut scratch = [0i32; SCRATCH];
    let mut row = [0i32; ROW];
    let mut weights = [0i8; WEIGHTS];
    let mut potentials = [0i32; POTENTIALS];
    let mut image = [0u8; INPUT_LEN];

    let args = env::args::<1024>().unwrap_or_else(|_| fail(1, "cannot read arguments"));
    let mut it = (&args).filter_map(Result::ok);
    let _program = it.next();
    let (input_path, output_path) = (it.next(), it.next());

    let (mut input, mut output) = match (input_path, output_path) {
        (Some(i), Some(o)) => {
            let (mut bi, mut bo) = ([0u8; PATH_MAX], [0u8; PATH_MAX]);
            let i = c_path(i, &mut bi).unwrap_or_else(|| fail(1, "input path too long"));
            let o = c_path(o, &mut bo).unwrap_or_else(|| fail(1, "output path too long"));
            let input = fs::File::open(i).unwrap_or_else(|_| fail(1, "cannot open input"));
            let output = fs::File::create(o).unwrap_or_else(|_| fail(1, "cannot create output"));
            (Some(input), Some(output))
        }
        _ => (None, None),
    };

    let mut images = 0usize;
    loop {
        match input.as_mut() {
            Some(f) => match read_image(f, &mut image) {
                Ok(true) => {}
                Ok(false) => break,
                Err(()) => fail(1, "input is not a whole number of images"),
            },
            None if images == 0 => {}
            None => break,
        }
        let mut ws = Workspace {
            levels: [&mut level_a, &mut level_b],
            scratch: &mut scratch,
            a: &mut [],
            row: &mut row,
            output: &mut potentials,
            prep: PrepBuffers {
                weights: &mut weights,
                packed: &mut [],
                cuts: &mut [],
            },
        };
        let out = forward(&model, &image, &mut ws, &Backend::Event, |_, _| {})
            .unwrap_or_else(|_| fail(2, "workspace does not fit the model"));
        match output.as_mut() {
            Some(f) => write_output(f, out).unwrap_or_else(|_| fail(1, "cannot write output")),
            None => print_output(out),
        }
        images += 1;
    }
    println!("akida-firmware: {} image(s) through {}", images, MODEL_PATH);
    let _ = OUTPUT_LEN;
    let _ = OUTPUTS_LEVELS;
    process::exit(0)
}

/// Reads one image; `Ok(false)` at a clean end of file.
fn read_image(f: &mut fs::File, image: &mut [u8]) -> Result<bool, ()> {
    let mut filled = 0;
    while filled < image.len() {
        match f.read(&mut image[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return Err(()),
        }
    }
    match filled {
        0 => Ok(false),
        n if n == image.len() => Ok(true),
        _ => Err(()),
    }
}

fn write_output(f: &mut fs::File, out: LayerOutput) -> Result<(), ()> {
    match out {
        LayerOutput::Levels(l) => f.write_all(l).map_err(|_| ()),
        LayerOutput::Potentials(p) => {
            for v in p {
                f.write_all(&v.to_le_bytes()).map_err(|_| ())?;
            }
            Ok(())
        }
    }
}

fn print_output(out: LayerOutput) {
    match out {
        LayerOutput::Levels(l) => println!("levels: {:?}", l),
        LayerOutput::Potentials(p) => println!("potentials: {:?}", p),
    }
}
