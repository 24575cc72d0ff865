//! Ports for the servers of a test.
//!
//! A port the kernel hands out for `bind(:0)` can be taken by another
//! test's listener or outgoing connection as soon as it is released, so a
//! server restarted on it after a kill (or started after the port was handed
//! to a client) could find it taken or answer the wrong test (seen in CI: one
//! test's fake server recorded another test's agent). [`free_port`] hands out
//! ports below Linux's ephemeral range (32768–60999) from one sequence per
//! test process (tests run as threads of one process), starting at a random
//! point so concurrent test binaries rarely meet.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const BASE: u64 = 20_000;
const SPAN: u64 = 12_000;

/// A loopback port in 20000..32000 that is free now and that no other test
/// of this process is handed.
pub fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(u64::MAX);
    let seed =
        u64::from(std::process::id()) ^ SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let _ = NEXT.compare_exchange(
        u64::MAX,
        seed.wrapping_mul(6_364_136_223_846_793_005) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    (0..SPAN)
        .map(|_| (BASE + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port in 20000..32000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(ports.iter().all(|&p| (20_000..32_000).contains(&p)), "{ports:?}");
        assert!(TcpListener::bind(("127.0.0.1", ports[0])).is_ok());
    }
}
