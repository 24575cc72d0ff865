//! The `strata` binary; see the `strata` library crate.

/// mimalloc instead of glibc's malloc: at a million series the store holds
/// tens of millions of small allocations, which glibc's per-thread arenas
/// fragment (peak RSS ~40% above the live heap in heaptrack measurements).
/// Built with `no_thp`: with transparent huge pages on `madvise` mimalloc
/// backs its arenas with 2 MiB pages, and partly used ones count in full
/// (peer-bench 100k series: peak RSS 378 → 293 MiB, no measurable CPU cost).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    strata::cli::main()
}
