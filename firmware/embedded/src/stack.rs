//! Stack use, from cortex-m-rt's painted stack (`paint-stack` feature):
//! everything between `_stack_end` and `_stack_start` holds `0xCCCCCCCC`
//! until the stack reaches it.

const PAINT: u32 = 0xCCCC_CCCC;

extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Deepest stack use so far and the stack size, in bytes (`(0, size)` when
/// the stack was not painted).
pub fn usage() -> (usize, usize) {
    // SAFETY: only the addresses of the linker symbols are taken, then the
    // words between them (the stack region) are read with volatile loads.
    unsafe {
        let start = core::ptr::addr_of!(_stack_start) as usize;
        let end = core::ptr::addr_of!(_stack_end) as usize;
        let size = start.saturating_sub(end);
        let mut p = end;
        while p < start && core::ptr::read_volatile(p as *const u32) == PAINT {
            p += 4;
        }
        (start - p, size)
    }
}

/// Paints the free stack again (below the current stack pointer), so that
/// [`usage`] then measures what runs next (an inference, not the model
/// decoding before it).
#[inline(never)]
pub fn repaint() {
    let sp: usize;
    // SAFETY: reads the stack pointer.
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: the words between the stack's end and 64 bytes below the
    // stack pointer are free (this function's frame lies above them).
    unsafe {
        let end = core::ptr::addr_of!(_stack_end) as usize;
        let mut p = end;
        while p + 64 < sp {
            core::ptr::write_volatile(p as *mut u32, PAINT);
            p += 4;
        }
    }
}
