use super::*;
use proptest::prelude::*;

const NEVER: fn() -> Option<i64> = || panic!("the log start is asked only when offsets are missing");

#[test]
fn records_in_order_from_the_floor_are_applied() {
    let mut c = FetchCursor::positioned(Some(10));
    assert_eq!(c.on_record(10, NEVER), Step::Apply);
    assert_eq!(c.on_record(11, NEVER), Step::Apply);
    assert_eq!(c.want(), Some(12));
}

#[test]
fn at_the_beginning_the_first_record_sets_the_position() {
    let mut c = FetchCursor::positioned(None);
    assert_eq!(c.on_record(7, NEVER), Step::Apply);
    assert_eq!(c.on_record(8, NEVER), Step::Apply);
    assert_eq!(c.on_record(9, NEVER), Step::Apply);
}

/// tansu's answer to a fetch inside a batch: the next batch. The cursor
/// fetches again from 1, 2, 4 … below, skips what is below its floor, and
/// applies the floor's record when it comes.
#[test]
fn a_skipped_batch_is_fetched_again_from_further_back() {
    let mut c = FetchCursor::positioned(Some(10));
    assert_eq!(c.on_record(13, || Some(0)), Step::Refetch { from: 9 });
    assert_eq!(c.on_record(13, NEVER), Step::Refetch { from: 8 });
    assert_eq!(c.on_record(13, NEVER), Step::Refetch { from: 6 });
    assert_eq!(c.on_record(7, NEVER), Step::Skip);
    assert_eq!(c.on_record(8, NEVER), Step::Skip);
    assert_eq!(c.on_record(9, NEVER), Step::Skip);
    assert_eq!(c.on_record(10, NEVER), Step::Apply);
    assert_eq!(c.want(), Some(11));
    // A later skip starts again from one back.
    assert_eq!(c.on_record(12, || Some(0)), Step::Refetch { from: 10 });
}

/// The skipped batch was the partition's last: no record comes to show the
/// skip, the high watermark does.
#[test]
fn an_idle_partition_below_its_high_watermark_is_fetched_again() {
    let mut c = FetchCursor::positioned(Some(10));
    assert_eq!(c.on_idle(10), None, "caught up");
    assert_eq!(c.on_idle(9), None, "a watermark that lags");
    assert_eq!(c.on_idle(12), Some(9));
    assert_eq!(c.on_idle(12), Some(8));
    assert_eq!(c.on_record(8, NEVER), Step::Skip);
    assert_eq!(c.on_record(9, NEVER), Step::Skip);
    assert_eq!(c.on_record(10, NEVER), Step::Apply);
    assert_eq!(c.on_idle(12), Some(10), "a new episode starts one back");
    assert_eq!(FetchCursor::positioned(None).on_idle(5), None, "nothing wanted yet");
}

#[test]
fn offsets_deleted_below_the_floor_are_a_gap_at_once() {
    let mut c = FetchCursor::positioned(Some(10));
    assert_eq!(c.on_record(40, || Some(40)), Step::Gap { missing: 10..40 });
    assert_eq!(c.on_record(41, NEVER), Step::Apply);
}

/// Records right below the wanted offset, then one above it: the broker has
/// no record in between, and the cursor says so instead of looping.
#[test]
fn a_hole_the_broker_really_has_is_reported_once_reached_from_below() {
    let mut c = FetchCursor::positioned(Some(10));
    assert_eq!(c.on_record(12, || None), Step::Refetch { from: 9 });
    assert_eq!(c.on_record(9, NEVER), Step::Skip);
    assert_eq!(c.on_record(12, NEVER), Step::Gap { missing: 10..12 });
    assert_eq!(c.on_record(13, NEVER), Step::Apply);
}

#[test]
fn re_fetches_stop_at_offset_zero_and_at_the_bound() {
    let mut c = FetchCursor::positioned(Some(2));
    assert_eq!(c.on_record(5, || Some(0)), Step::Refetch { from: 1 });
    assert_eq!(c.on_record(5, NEVER), Step::Refetch { from: 0 });
    assert_eq!(c.on_record(5, NEVER), Step::Gap { missing: 2..5 });
    let mut c = FetchCursor::positioned(Some(1 << 40));
    let mut refetches = 0;
    let step = loop {
        match c.on_record((1 << 40) + 1, || None) {
            Step::Refetch { .. } => refetches += 1,
            other => break other,
        }
    };
    assert_eq!(step, Step::Gap { missing: (1 << 40)..(1 << 40) + 1 });
    assert_eq!(refetches, 17, "1, 2, 4 … 2^16 back");
}

/// How a broker answers a fetch at `pos`.
#[derive(Debug, Clone, Copy)]
enum Broker {
    /// The protocol: the batch holding `pos` (the client drops the records below it).
    Kafka,
    /// tansu 0.6.0: the batches starting at or after `pos` only.
    Tansu,
}

/// The records a consumer positioned at `pos` receives: the partition's
/// batches (`starts`, then the end) from the one the broker picks on.
fn fetch(broker: Broker, starts: &[i64], end: i64, log_start: i64, pos: i64) -> Vec<i64> {
    // Below the log start: out of range, reset to the earliest (auto.offset.reset).
    let pos = pos.max(log_start);
    let first = match broker {
        Broker::Kafka => starts.iter().rposition(|&s| s <= pos).unwrap_or(0),
        Broker::Tansu => starts.iter().position(|&s| s >= pos).unwrap_or(starts.len()),
    };
    let from = starts.get(first).copied().unwrap_or(end);
    // The client drops the records below its position.
    (from..end).filter(|&o| o >= pos).collect()
}

proptest! {
    /// A consumer at any floor of any batching, on either broker, applies
    /// every retained offset from its floor on, once and in order, and
    /// reports as missing exactly the deleted offsets above its floor.
    #[test]
    fn every_record_from_the_floor_is_applied_once_on_either_broker(
        sizes in proptest::collection::vec(1i64..6, 1..30),
        deleted_batches in 0usize..4,
        floor_pick in 0i64..200,
        tansu in any::<bool>(),
    ) {
        let broker = if tansu { Broker::Tansu } else { Broker::Kafka };
        let mut starts = Vec::new();
        let mut end = 0;
        for s in &sizes {
            starts.push(end);
            end += s;
        }
        let log_start = starts[deleted_batches.min(starts.len() - 1)];
        let floor = floor_pick % (end + 2);
        let mut cursor = FetchCursor::positioned((floor > 0).then_some(floor));
        let mut applied = Vec::new();
        let mut gaps = Vec::new();
        let mut pos = floor;
        let mut fetches = 0;
        'fetch: loop {
            fetches += 1;
            prop_assert!(fetches < 64, "no progress: {applied:?}");
            for o in fetch(broker, &starts, end, log_start, pos) {
                match cursor.on_record(o, || Some(log_start)) {
                    Step::Apply => applied.push(o),
                    Step::Skip => {}
                    Step::Gap { missing } => {
                        gaps.push(missing);
                        applied.push(o);
                    }
                    Step::Refetch { from } => {
                        pos = from;
                        continue 'fetch;
                    }
                }
            }
            // Nothing more comes: the high watermark says whether something should have.
            match cursor.on_idle(end) {
                Some(from) => pos = from,
                None => break,
            }
        }
        let expected: Vec<i64> = (floor.max(log_start)..end).collect();
        prop_assert_eq!(&applied, &expected);
        let expected_gaps: Vec<Range<i64>> = (floor > 0 && floor < log_start).then_some(floor..log_start).into_iter().collect();
        prop_assert_eq!(gaps, expected_gaps);
    }
}
