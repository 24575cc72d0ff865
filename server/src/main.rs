//! The `strata` binary; see the `strata` library crate.

/// mimalloc instead of glibc's malloc: at a million series the store holds
/// tens of millions of small allocations, which glibc's per-thread arenas
/// fragment (peak RSS ~40% above the live heap in heaptrack measurements).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    strata::cli::main()
}
