//! Allocator settings of the training tools (mimalloc, their global
//! allocator).
//!
//! A training step allocates and frees the same large buffers every time
//! (a `ds_cnn_cifar10` activation of batch 100 is 52 MB). By default
//! mimalloc gives freed memory back to the OS after 10 ms and commits its
//! arenas lazily, so every step faults its buffers in again and the kernel
//! zeroes each page: on a 2-core Xeon, 23 % of a `ds_cnn_cifar10` step was
//! `clear_page_erms`. Keeping freed memory (purge delay -1) and committing
//! arenas eagerly (the environment `MIMALLOC_PURGE_DELAY=-1
//! MIMALLOC_ARENA_EAGER_COMMIT=1`) raised 3-step runs there from 21.8-30.3
//! to 31.9-43.5 images/s; this function, the same options set in code, gave
//! 32.6 and 34.7. The cost is a resident size that stays at the step's peak.

/// mimalloc 3's option numbers (`mi_option_e` in its `mimalloc.h`; the
/// crate's constants stop before these).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory for reuse and commits arenas eagerly (see the module
/// documentation). Call first thing in `main`, before threads start; an
/// option the user set in the environment (`MIMALLOC_*`) wins.
pub fn keep_freed_memory() {
    #[allow(unsafe_code)]
    // SAFETY: plain setters of mimalloc's global options, called before any
    // other thread exists (mi_option_set is not thread safe).
    unsafe {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 1);
        }
    }
}
