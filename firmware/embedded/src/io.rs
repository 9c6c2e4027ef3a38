//! `embedded-io` adapters for the byte stream to the host.

/// A byte stream over two semihosting files (a debugger's or QEMU's host
/// files): the host's commands are read from one, the replies written to
/// the other.
#[cfg(feature = "semihosting")]
pub struct Semihosting {
    input: semihosting::fs::File,
    output: semihosting::fs::File,
}

#[cfg(feature = "semihosting")]
mod semihosting_io {
    use super::Semihosting;
    use semihosting::io::{Read as _, Write as _};

    /// A semihosting call failed.
    #[derive(Debug)]
    pub struct Error;

    impl embedded_io::Error for Error {
        fn kind(&self) -> embedded_io::ErrorKind {
            embedded_io::ErrorKind::Other
        }
    }

    impl Semihosting {
        /// Opens `input` for reading and creates `output`.
        pub fn open(input: &core::ffi::CStr, output: &core::ffi::CStr) -> Result<Self, Error> {
            Ok(Semihosting {
                input: semihosting::fs::File::open(input).map_err(|_| Error)?,
                output: semihosting::fs::File::create(output).map_err(|_| Error)?,
            })
        }
    }

    impl embedded_io::ErrorType for Semihosting {
        type Error = Error;
    }

    impl embedded_io::Read for Semihosting {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
            self.input.read(buf).map_err(|_| Error)
        }
    }

    impl embedded_io::Write for Semihosting {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
            self.output.write(buf).map_err(|_| Error)
        }

        fn flush(&mut self) -> Result<(), Error> {
            Ok(())
        }
    }
}

#[cfg(feature = "semihosting")]
pub use semihosting_io::Error as SemihostingError;

/// Longest path [`c_path`] takes (with its terminating NUL).
pub const PATH_MAX: usize = 256;

/// A NUL-terminated copy of `path` in `buf`, for semihosting calls; `None`
/// when it does not fit.
pub fn c_path<'b>(path: &str, buf: &'b mut [u8; PATH_MAX]) -> Option<&'b core::ffi::CStr> {
    let n = path.len();
    if n + 1 > PATH_MAX {
        return None;
    }
    buf[..n].copy_from_slice(path.as_bytes());
    buf[n] = 0;
    core::ffi::CStr::from_bytes_with_nul(&buf[..=n]).ok()
}

/// The CMSDK APB UART of Arm's MPS2 FPGA images (QEMU `mps2-an386`:
/// UART0 at `0x4000_4000`), polled.
#[cfg(feature = "cmsdk-uart")]
pub struct CmsdkUart {
    base: usize,
}

#[cfg(feature = "cmsdk-uart")]
mod cmsdk {
    use super::CmsdkUart;
    use core::convert::Infallible;

    const DATA: usize = 0x0;
    const STATE: usize = 0x4;
    const CTRL: usize = 0x8;
    const BAUDDIV: usize = 0x10;
    const TX_FULL: u32 = 1;
    const RX_FULL: u32 = 2;
    const TX_EN: u32 = 1;
    const RX_EN: u32 = 2;

    impl CmsdkUart {
        /// UART0 of `mps2-an386`.
        pub const UART0: usize = 0x4000_4000;

        /// Enables the UART at `base` (transmit and receive, polled).
        ///
        /// # Safety
        /// `base` must be a CMSDK UART no one else drives.
        pub unsafe fn new(base: usize) -> Self {
            let u = CmsdkUart { base };
            u.write_reg(BAUDDIV, 16);
            u.write_reg(CTRL, TX_EN | RX_EN);
            u
        }

        fn reg(&self, off: usize) -> u32 {
            // SAFETY: a register of the UART this value owns.
            unsafe { core::ptr::read_volatile((self.base + off) as *const u32) }
        }

        fn write_reg(&self, off: usize, v: u32) {
            // SAFETY: as for `reg`.
            unsafe { core::ptr::write_volatile((self.base + off) as *mut u32, v) }
        }
    }

    impl embedded_io::ErrorType for CmsdkUart {
        type Error = Infallible;
    }

    impl embedded_io::Read for CmsdkUart {
        /// Waits for one byte, then takes what else is there.
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
            if buf.is_empty() {
                return Ok(0);
            }
            while self.reg(STATE) & RX_FULL == 0 {}
            let mut n = 0;
            while n < buf.len() && self.reg(STATE) & RX_FULL != 0 {
                buf[n] = self.reg(DATA) as u8;
                n += 1;
            }
            Ok(n)
        }
    }

    impl embedded_io::Write for CmsdkUart {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            for &b in buf {
                while self.reg(STATE) & TX_FULL != 0 {}
                self.write_reg(DATA, b as u32);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }
}
