use std::sync::atomic::{AtomicUsize, Ordering};

use super::map_ordered;

/// Some work that differs per input, so parts finish out of order.
fn busy(i: usize) -> usize {
    (0..(i % 7) * 1000).fold(i, |a, x| a.wrapping_mul(31).wrapping_add(x)) % 1000 + i * 1000
}

#[test]
fn results_reach_the_sink_in_input_order_on_any_number_of_threads() {
    let want: Vec<usize> = (0..500).map(busy).collect();
    for threads in [0, 1, 2, 3, 8] {
        for window in [1, 2, 5] {
            let mut got = Vec::new();
            let r: Result<(), ()> = map_ordered((0..500).collect(), threads, window, busy, |x| {
                got.push(x);
                Ok(())
            });
            assert!(r.is_ok());
            assert_eq!(got, want, "threads {threads} window {window}");
        }
    }
}

#[test]
fn no_input_is_mapped_more_than_window_parts_ahead_of_the_sink() {
    let sunk = AtomicUsize::new(0);
    let window = 3;
    let r: Result<(), ()> = map_ordered(
        (0..300).collect(),
        4,
        window,
        |i: usize| {
            // `delivered` is counted just before `sink` runs: at most one ahead of `sunk`.
            assert!(i < sunk.load(Ordering::SeqCst) + 1 + window, "input {i} mapped too early");
            busy(i)
        },
        |_| {
            sunk.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    );
    assert!(r.is_ok());
    assert_eq!(sunk.load(Ordering::SeqCst), 300);
}

#[test]
fn a_sink_error_stops_the_work_and_is_returned() {
    let mapped = AtomicUsize::new(0);
    let mut delivered = Vec::new();
    let r = map_ordered(
        (0..1000).collect(),
        3,
        4,
        |i: usize| {
            mapped.fetch_add(1, Ordering::SeqCst);
            i
        },
        |i| {
            if i == 10 {
                return Err(format!("failed at {i}"));
            }
            delivered.push(i);
            Ok(())
        },
    );
    assert_eq!(r, Err("failed at 10".to_owned()));
    assert_eq!(delivered, (0..10).collect::<Vec<_>>());
    // Nothing was claimed past the window after the failing delivery.
    assert!(mapped.load(Ordering::SeqCst) <= 11 + 4, "{} mapped", mapped.load(Ordering::SeqCst));
}

#[test]
fn a_panicking_part_panics_the_call_instead_of_hanging_it() {
    for threads in [1, 2, 4] {
        for bad in [0, 1, 5, 99] {
            let r = std::panic::catch_unwind(|| {
                let _: Result<(), ()> = map_ordered(
                    (0..100).collect(),
                    threads,
                    2,
                    |i: usize| {
                        assert_ne!(i, bad, "part {bad} fails");
                        i
                    },
                    |_| Ok(()),
                );
            });
            assert!(r.is_err(), "threads {threads} bad {bad}");
        }
    }
}
