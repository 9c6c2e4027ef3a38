//! akida-rs firmware for QEMU's `mps2-an386` (Cortex-M4F): one user of the
//! `akida-embedded` library. It serves the host's framed commands
//! (`akida_core::wire`) over the CMSDK UART0 or over semihosting files:
//! models loaded at run time into a static arena (feature `loader`, on by
//! default) or the model embedded at build time, inferences with the M4
//! kernels. Logs are defmt frames on the semihosting console.
//!
//! QEMU `-append` arguments:
//! - `uart`: the session on UART0 (`-serial stdio` or a chardev);
//! - `semihosting IN OUT`: the session read from host file IN, replies to OUT;
//! - nothing: a self-test of the embedded model on an all-zero input;
//! - `fault`, `panic`: a bus fault or a panic, to test their reports.
//!
//! Exit codes: 0 after `Quit`, 1 when the stream ends or fails without it,
//! 2 on bad arguments, 3 on a HardFault, 101 on a panic (reported first).
#![no_std]
#![no_main]

use akida_embedded::io::{c_path, CmsdkUart, Semihosting, PATH_MAX};
use akida_embedded::{Device, Embedded, End};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use defmt_semihosting as _;
use panic_probe as _;
use semihosting::experimental::env;
use semihosting::process;

akida_embedded::embedded_model!();

#[allow(dead_code)]
mod loader {
    include!(concat!(env!("OUT_DIR"), "/loader.rs"));
}

#[cfg(feature = "loader")]
mod buffers {
    pub const ARENA: usize = super::loader::ARENA;
    pub const WORKSPACE_WORDS: usize = super::loader::WORKSPACE_WORDS;
    pub const INPUT: usize = 64 * 1024;
    pub const LAYERS: usize = akida_embedded::akida_core::MAX_LAYERS;
}

#[cfg(not(feature = "loader"))]
mod buffers {
    pub const ARENA: usize = 0;
    pub const WORKSPACE_WORDS: usize = super::akida_model::WORKSPACE_WORDS;
    pub const INPUT: usize = super::akida_model::INPUT_LEN;
    pub const LAYERS: usize = super::akida_model::LAYER_COUNT;
}

use buffers::*;

static mut WORKSPACE: [u64; WORKSPACE_WORDS] = [0; WORKSPACE_WORDS];
static mut ARENA_BYTES: [u8; ARENA] = [0; ARENA];
static mut INPUT_BYTES: [u8; INPUT] = [0; INPUT];
static mut LAYER_TABLE: heapless::Vec<akida_embedded::akida_core::stream::StreamLayer, LAYERS> =
    heapless::Vec::new();

fn exit_of<E>(end: End<E>) -> i32 {
    match end {
        End::Quit => 0,
        End::Eof => {
            defmt::warn!("the stream ended before Quit");
            1
        }
        End::Io(_) => {
            defmt::error!("transport error");
            1
        }
    }
}

#[entry]
fn main() -> ! {
    // SAFETY: main runs once; each static is borrowed once, here.
    let (workspace, arena, input, layers) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(WORKSPACE),
            &mut *core::ptr::addr_of_mut!(ARENA_BYTES),
            &mut *core::ptr::addr_of_mut!(INPUT_BYTES),
            &mut *core::ptr::addr_of_mut!(LAYER_TABLE),
        )
    };
    let embedded = Embedded {
        bytes: &akida_model::BYTES,
        layers: &akida_model::LAYERS,
    };
    let mut device = Device::new(workspace, input, arena, layers, Some(embedded));
    let args = match env::args::<1024>() {
        Ok(a) => a,
        Err(_) => {
            defmt::error!("cannot read the arguments");
            process::exit(2)
        }
    };
    let mut it = (&args).filter_map(Result::ok);
    let _program = it.next();
    let code = match (it.next(), it.next(), it.next()) {
        (Some("uart"), None, None) => {
            // SAFETY: nothing else drives UART0.
            let mut uart = unsafe { CmsdkUart::new(CmsdkUart::UART0) };
            exit_of(device.serve(&mut uart))
        }
        (Some("semihosting"), Some(i), Some(o)) => {
            let (mut bi, mut bo) = ([0u8; PATH_MAX], [0u8; PATH_MAX]);
            match (c_path(i, &mut bi), c_path(o, &mut bo)) {
                (Some(i), Some(o)) => match Semihosting::open(i, o) {
                    Ok(mut files) => exit_of(device.serve(&mut files)),
                    Err(_) => {
                        defmt::error!("cannot open the session files");
                        2
                    }
                },
                _ => {
                    defmt::error!("path too long");
                    2
                }
            }
        }
        (Some("fault"), None, None) => {
            // SAFETY: deliberately reads unmapped memory: a HardFault.
            let v = unsafe { core::ptr::read_volatile(0x5000_0000 as *const u32) };
            defmt::error!("read {=u32} from unmapped memory", v);
            4
        }
        (Some("panic"), None, None) => {
            let n = core::hint::black_box(3usize);
            let table = [1u8, 2, 3];
            defmt::info!("{=u8}", table[n]);
            4
        }
        (None, _, _) => {
            defmt::info!("self-test of {=str}", akida_model::PATH);
            device.self_test();
            0
        }
        _ => {
            defmt::error!("usage: -append 'uart' | 'semihosting IN OUT' | 'fault' | 'panic' | ''");
            2
        }
    };
    process::exit(code)
}

/// Reports the fault (a panic ends in `udf`, an undefined instruction) and
/// exits with code 101 (panic) or 3 (any other fault).
#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    const CFSR: *const u32 = 0xE000_ED28 as *const u32;
    const HFSR: *const u32 = 0xE000_ED2C as *const u32;
    let (cfsr, hfsr) = (
        core::ptr::read_volatile(CFSR),
        core::ptr::read_volatile(HFSR),
    );
    let panic = cfsr & (1 << 16) != 0;
    if !panic {
        defmt::error!(
            "HardFault at pc {=u32:#010x} (lr {=u32:#010x}), CFSR {=u32:#010x}, HFSR {=u32:#010x}",
            ef.pc(),
            ef.lr(),
            cfsr,
            hfsr
        );
    }
    process::exit(if panic { 101 } else { 3 })
}
