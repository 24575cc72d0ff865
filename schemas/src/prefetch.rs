//! A hint to the CPU to start loading memory that will be read soon.
//!
//! The write path walks each request's series in order and, for each, reads
//! memory that nothing before it touched: the series' label set (kept by the
//! series cache), its index entry, its memtable chunk. With 100,000 series
//! each of these is a cache miss, one after the other: the CPU waits ~100 ns
//! per miss. Asking for the memory of the series a few positions ahead lets
//! those loads overlap with the work on the current one.

/// Starts loading the cache line at `p` into the caches. Only a hint: it
/// never faults, whatever `p` is, and does nothing on targets without one.
#[inline(always)]
pub fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it does not dereference `p` in the
    // language's sense and cannot fault, even for an invalid address.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_any_address_is_harmless() {
        let v = vec![1u64, 2, 3];
        prefetch_read(v.as_ptr());
        prefetch_read(std::ptr::null::<u64>());
        prefetch_read(usize::MAX as *const u8);
        assert_eq!(v, [1, 2, 3]);
    }
}
