//! The `strata` binary; see the `strata` library crate.

/// mimalloc instead of glibc's malloc: at a million series the store holds
/// tens of millions of small allocations, which glibc's per-thread arenas
/// fragment (peak RSS ~40% above the live heap in heaptrack measurements).
/// Built with `no_thp`: with transparent huge pages on `madvise` mimalloc
/// backs its arenas with 2 MiB pages, and partly used ones count in full
/// (peer-bench 100k series: peak RSS 378 → 293 MiB, no measurable CPU cost).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 in the v3 `mi_option_e`
/// enum that libmimalloc-sys builds; the crate does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc v3's default purge delay: the option at [`MI_OPTION_PURGE_DELAY`]
/// is only changed while it reads this, so a future mimalloc with another
/// enum layout is left alone instead of having some other option set.
const MI_DEFAULT_PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// How long mimalloc keeps freed pages before returning them to the OS.
/// Its v3 default (1 s) holds the buffers of the last second of write
/// requests: with four connections at 100k series that was ~50 MB of peak
/// RSS (peer-bench: 235-250 MiB; 10 ms: 197-218 MiB; 0: 183-197 MiB at a
/// few percent more CPU). 10 ms is also mimalloc v2's default.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

// The one `unsafe` of the workspace: an FFI call into the allocator. Options
// are read from the environment when the process loads, before `main`, so
// setting the variable here would come too late.
#[allow(unsafe_code)]
fn main() -> std::process::ExitCode {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: reads and sets a global allocator option (atomic loads and
        // stores in mimalloc), before any other thread exists.
        unsafe {
            if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_DEFAULT_PURGE_DELAY_MS {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
            }
        }
    }
    strata::cli::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index still names the purge delay in the bundled mimalloc
    /// (the test process never runs `main`, so the option has its default).
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_option_index_matches_the_bundled_mimalloc() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: an atomic load of a global allocator option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, MI_DEFAULT_PURGE_DELAY_MS, "mi_option_purge_delay moved: update MI_OPTION_PURGE_DELAY");
    }
}
