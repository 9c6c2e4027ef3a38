//! akida-embedded on an nRF52840: runs the model embedded at build time
//! (`AKIDA_MODEL`, or the reference ds_cnn_kws) on an all-zero input and
//! logs the output over defmt-rtt. Flash and watch it with
//! `akida flash -m M.akd --target probe --chip nRF52840_xxAA` (probe-rs).
#![no_std]
#![no_main]

use defmt_rtt as _;
use panic_probe as _;

akida_embedded::embedded_model!();

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut device = akida_embedded::device!();
    device.self_test();
    // To serve a host: `device.serve(&mut uart)` with the HAL's UART (any
    // `embedded_io::Read + Write`).
    loop {
        cortex_m::asm::wfi();
    }
}
