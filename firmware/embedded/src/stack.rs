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
