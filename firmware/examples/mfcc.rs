//! The keyword-spotting front end on the Cortex-M4F: akida-core's MFCC of
//! every clip of a file, for the host to compare bit for bit
//! (`tests/tests/mfcc_qemu.rs`).
//!
//! Usage (QEMU `-append`): `PCM MFCC FEATURES`. PCM holds N clips of 16,000
//! little-endian i16 samples; MFCC receives N x 49 x 10 float32 (their bits,
//! little-endian), FEATURES N x 490 uint8 model inputs. Exit code 0 on
//! success, 1 on an I/O error.
#![no_std]
#![no_main]

use akida_core::mfcc::{self, CLIP_SAMPLES, COEFFS, FRAMES, INPUT_LEN};
use akida_embedded::io::{c_path, PATH_MAX};
use cortex_m_rt::entry;
// The firmware's panic handler (a defmt report over semihosting).
use defmt_semihosting as _;
use panic_probe as _;
use semihosting::experimental::env;
use semihosting::io::{Read, Write};
use semihosting::{fs, println, process};

fn fail(what: &str) -> ! {
    println!("mfcc: {}", what);
    process::exit(1)
}

/// Reads one clip; `false` at a clean end of file.
fn read_clip(f: &mut fs::File, bytes: &mut [u8; 2 * CLIP_SAMPLES]) -> bool {
    let mut filled = 0;
    while filled < bytes.len() {
        match f.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => fail("cannot read the PCM file"),
        }
    }
    match filled {
        0 => false,
        n if n == bytes.len() => true,
        _ => fail("the PCM file is not a whole number of clips"),
    }
}

#[entry]
fn main() -> ! {
    let args = env::args::<1024>().unwrap_or_else(|_| fail("cannot read arguments"));
    let mut it = (&args).filter_map(Result::ok);
    let _program = it.next();
    let (Some(pcm), Some(mfcc_out), Some(features_out)) = (it.next(), it.next(), it.next()) else {
        fail("usage: PCM MFCC FEATURES")
    };
    let mut b = [[0u8; PATH_MAX]; 3];
    let [b0, b1, b2] = &mut b;
    let open = |p, buf| c_path(p, buf).unwrap_or_else(|| fail("path too long"));
    let mut input = fs::File::open(open(pcm, b0)).unwrap_or_else(|_| fail("cannot open PCM"));
    let mut mfcc_file =
        fs::File::create(open(mfcc_out, b1)).unwrap_or_else(|_| fail("cannot create MFCC"));
    let mut features_file =
        fs::File::create(open(features_out, b2)).unwrap_or_else(|_| fail("cannot create FEATURES"));

    let mut bytes = [0u8; 2 * CLIP_SAMPLES];
    let mut clip = [0i16; CLIP_SAMPLES];
    let mut coefficients = [[0f32; COEFFS]; FRAMES];
    let mut features = [0u8; INPUT_LEN];
    let mut clips = 0usize;
    while read_clip(&mut input, &mut bytes) {
        for (s, b) in clip.iter_mut().zip(bytes.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        mfcc::mfcc(&clip, &mut coefficients);
        mfcc::to_input(&coefficients, &mut features);
        for frame in &coefficients {
            for v in frame {
                mfcc_file
                    .write_all(&v.to_bits().to_le_bytes())
                    .unwrap_or_else(|_| fail("cannot write MFCC"));
            }
        }
        features_file
            .write_all(&features)
            .unwrap_or_else(|_| fail("cannot write FEATURES"));
        clips += 1;
    }
    println!("mfcc: {} clip(s)", clips);
    process::exit(0)
}
