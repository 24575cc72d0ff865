use super::*;
use proptest::prelude::*;

fn s(ts: i64, v: f64) -> Sample {
    Sample::new(ts, v)
}

fn one_bucket(_: i64) -> i64 {
    0
}

fn all(m: &Memtable, r: SeriesRef) -> Vec<(i64, u64)> {
    m.get(r)[0].1.samples().unwrap()
}

#[test]
fn later_write_wins_on_equal_timestamps() {
    let mut m = Memtable::default();
    m.insert(0, &[s(2, 1.0), s(1, 5.0), s(2, 3.0)], one_bucket);
    m.insert(0, &[s(1, 7.0)], one_bucket);
    assert_eq!(all(&m, 0), vec![(1, 7.0f64.to_bits()), (2, 3.0f64.to_bits())]);
    assert_eq!(m.samples(), 4);
}

#[test]
fn round_trips_any_timestamps_and_values() {
    let mut m = Memtable::default();
    let mut want = std::collections::BTreeMap::new();
    let mut x = 0x1234_5678u64;
    let mut ts = -1_000_000i64;
    for i in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ts += match i % 7 {
            0 => 10_000,
            1 => (x % 200) as i64 - 100,
            2 => (x % 100_000) as i64,
            3 => -((x % 50) as i64),
            4 => (x >> 20) as i64,
            _ => 10_000 + (x % 3) as i64,
        };
        let v = if i % 5 == 0 { f64::from_bits(x) } else { (i % 13) as f64 * 0.25 };
        m.insert(0, &[s(ts, v)], one_bucket);
        want.insert(ts, v.to_bits());
    }
    assert_eq!(all(&m, 0), want.into_iter().collect::<Vec<_>>());
}

#[test]
fn compresses_regular_series() {
    let mut m = Memtable::default();
    for i in 0..1000 {
        m.insert(0, &[s(1_700_000_000_000 + i * 10_000, 20.0 + (i % 10) as f64 * 0.25)], one_bucket);
    }
    let per_sample = m.get(0)[0].1.bits.len() as f64 / 1000.0;
    // A bit of timestamp, a byte of mantissa step (two at the wrap-around).
    assert!(per_sample < 1.5, "{per_sample} bytes/sample");
}

#[test]
fn decimal_readings_cost_about_a_byte() {
    // A 2-decimal temperature walking by up to ±0.05: Gorilla XORs such
    // values to ~45 meaningful bits; as mantissa steps they take 8.
    let mut m = Memtable::default();
    let mut v = 1830i64;
    for i in 0..1000 {
        v += [3, -5, 1, 0, -2, 4, -1][i % 7];
        m.insert(0, &[s(1_700_000_000_000 + i as i64 * 30_000, v as f64 / 100.0)], one_bucket);
    }
    let c = &m.get(0)[0].1;
    assert_eq!(c.mode, 2);
    assert!(std::mem::size_of::<Chunk>() <= 72, "a chunk per series per bucket: keep it small");
    assert!(c.bits.len() < 1200, "{} bytes for 1000 samples", c.bits.len());
    let back = c.samples().unwrap();
    assert_eq!(back.len(), 1000);
    assert!(back.iter().all(|&(_, b)| f64::from_bits(b) == (f64::from_bits(b) * 100.0).round() / 100.0));
}

#[test]
fn a_value_outside_the_decimal_mode_re_encodes_the_chunk() {
    let mut m = Memtable::default();
    let mut want = Vec::new();
    let values = [20.5, 20.0, 21.25, f64::NAN, 3.0, -0.0, 1e300, 0.1 + 0.2, 7.0];
    for (i, v) in values.into_iter().enumerate() {
        m.insert(0, &[s(i as i64 * 1000, v)], one_bucket);
        want.push((i as i64 * 1000, v.to_bits()));
        assert_eq!(all(&m, 0), want, "after {v}");
    }
    assert_eq!(m.get(0)[0].1.mode, GORILLA);
    // A value needing more decimals raises the exponent instead.
    let mut m = Memtable::default();
    for (i, v) in [1.0, 1.5, 1.25, 1.125].into_iter().enumerate() {
        m.insert(0, &[s(i as i64, v)], one_bucket);
    }
    assert_eq!(m.get(0)[0].1.mode, 3);
    assert_eq!(all(&m, 0).iter().map(|&(_, b)| f64::from_bits(b)).collect::<Vec<_>>(), [1.0, 1.5, 1.25, 1.125]);
}

proptest! {
    /// Any mix of decimal readings, odd doubles (NaN payloads, -0.0,
    /// huge values), rewrites and out-of-order samples reads back as the
    /// latest write per timestamp, bit for bit.
    #[test]
    fn chunks_read_back_the_latest_write_per_timestamp(
        writes in proptest::collection::vec((0i64..400, prop_oneof![
            6 => (-5000i64..5000, 0u32..4).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
            1 => any::<u64>().prop_map(f64::from_bits),
            1 => Just(-0.0),
            1 => Just(9.0e15),
        ]), 1..300),
    ) {
        let mut m = Memtable::default();
        let mut want = std::collections::BTreeMap::new();
        for &(ts, v) in &writes {
            m.insert(0, &[s(ts * 1000, v)], one_bucket);
            want.insert(ts * 1000, v.to_bits());
        }
        prop_assert_eq!(all(&m, 0), want.into_iter().collect::<Vec<_>>());
    }
}

proptest! {
    /// Arrivals one step out of order (what concurrent requests of one
    /// device produce), rewrites of the last timestamp and values that
    /// leave the chunk's decimal mode, in either mode: the chunk reads back
    /// the latest write per timestamp, and a late sample newer than the one
    /// before the last never lands aside.
    #[test]
    fn late_samples_one_step_deep_are_spliced_into_the_stream(
        steps in proptest::collection::vec((1i64..40, any::<bool>(), 0u8..8, -3000i64..3000), 1..200),
        gorilla in any::<bool>(),
    ) {
        let mut m = Memtable::default();
        let mut want = std::collections::BTreeMap::new();
        let value = |k: u8, v: i64| match (gorilla, k) {
            (true, _) => (v as f64).sqrt() + f64::from(k),
            (false, 7) => v as f64 / 1000.0, // more decimals: the chunk's mode may not fit
            (false, _) => v as f64 / 10.0,
        };
        let (mut ts, mut held) = (0i64, None::<(i64, f64)>);
        for &(gap, swap, k, v) in &steps {
            ts += gap * 1000;
            let x = value(k, v);
            match (swap, held.take()) {
                // Hold this one back: the next arrives first.
                (true, None) => held = Some((ts, x)),
                (_, Some(h)) => {
                    for (t, y) in [(ts, x), h] {
                        m.insert(0, &[s(t, y)], one_bucket);
                        want.insert(t, y.to_bits());
                    }
                }
                (false, None) => {
                    m.insert(0, &[s(ts, x)], one_bucket);
                    want.insert(ts, x.to_bits());
                    if k == 0 {
                        // A rewrite of the newest timestamp.
                        let y = value(1, v + 1);
                        m.insert(0, &[s(ts, y)], one_bucket);
                        want.insert(ts, y.to_bits());
                    }
                }
            }
        }
        if let Some((t, y)) = held {
            m.insert(0, &[s(t, y)], one_bucket);
            want.insert(t, y.to_bits());
        }
        let chunk = &m.get(0)[0].1;
        prop_assert_eq!(chunk.samples().unwrap(), want.into_iter().collect::<Vec<_>>());
        if !steps.iter().any(|s| s.2 == 7) || gorilla {
            prop_assert!(chunk.stream_block().is_some(), "nothing aside");
        }
    }
}

#[test]
fn a_late_sample_just_before_the_last_is_spliced_and_older_ones_go_aside() {
    let mut m = Memtable::default();
    m.insert(0, &[s(2_000, 2.5)], one_bucket);
    m.insert(0, &[s(1_000, 1.5)], one_bucket);
    assert!(m.get(0)[0].1.stream_block().is_some(), "one sample: started over in order");
    m.insert(0, &[s(4_000, 4.5), s(3_000, 3.5), s(4_000, 4.0)], one_bucket);
    let c = &m.get(0)[0].1;
    let v = c.stream_block().expect("spliced, nothing aside");
    assert_eq!((v.count, v.min_ts, v.max_ts), (4, 1_000, 4_000));
    let want = |x: &[(i64, f64)]| x.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
    assert_eq!(c.samples().unwrap(), want(&[(1_000, 1.5), (2_000, 2.5), (3_000, 3.5), (4_000, 4.0)]));
    // Two steps back: aside, and read back over the stream.
    m.insert(0, &[s(2_500, 9.0)], one_bucket);
    let c = &m.get(0)[0].1;
    assert!(c.stream_block().is_none(), "two steps back goes aside");
    // A sample aside at a timestamp (its value did not fit the decimal
    // mode): a later write of that timestamp is not spliced into the
    // stream, where the one aside would win on reading.
    let mut m = Memtable::default();
    m.insert(0, &[s(1_000, 1.5), s(3_000, 2.5), s(2_000, 2.25), s(2_000, 2.0)], one_bucket);
    assert_eq!(m.get(0)[0].1.samples().unwrap(), want(&[(1_000, 1.5), (2_000, 2.0), (3_000, 2.5)]));
}

#[test]
fn remove_range_drops_only_the_range_and_keeps_the_rest_bit_for_bit() {
    let mut m = Memtable::default();
    let odd = f64::from_bits(0x7ff8_0000_dead_beef);
    m.insert(0, &[s(1, 1.5), s(5, odd), s(3, 2.25), s(9, -0.0), s(3, 7.0)], one_bucket);
    m.insert(1, &[s(4, 1.0)], one_bucket);
    assert_eq!(m.remove_range(0, 3, 5).unwrap(), 2, "ts 3 (rewritten once) and 5");
    assert_eq!(all(&m, 0), vec![(1, 1.5f64.to_bits()), (9, (-0.0f64).to_bits())]);
    assert_eq!(m.samples(), 4);
    m.insert(0, &[s(10, odd), s(2, 3.0)], one_bucket);
    assert_eq!(
        all(&m, 0),
        vec![(1, 1.5f64.to_bits()), (2, 3.0f64.to_bits()), (9, 0x8000_0000_0000_0000), (10, odd.to_bits())]
    );
    assert_eq!(m.remove_range(0, 20, 30).unwrap(), 0);
    assert_eq!(m.remove_range(7, 0, 30).unwrap(), 0, "unknown series");
    assert_eq!(m.series(), 2);
    assert_eq!(m.remove_range(0, i64::MIN, i64::MAX).unwrap(), 4);
    assert_eq!(m.series(), 1, "an emptied series is no longer buffered");
    assert!(m.get(0).is_empty());
    assert_eq!(all(&m, 1), vec![(4, 1.0f64.to_bits())]);
}

#[test]
fn in_range_is_inclusive_on_both_ends() {
    let mut m = Memtable::default();
    m.insert(0, &[s(5, 0.0), s(1, 0.0), s(3, 0.0), s(9, 0.0)], one_bucket);
    let c = &m.get(0)[0].1;
    let ts: Vec<i64> = c.in_range(TimeRange::new(3, 5)).unwrap().iter().map(|x| x.0).collect();
    assert_eq!(ts, vec![3, 5]);
    assert!(c.in_range(TimeRange::new(6, 4)).unwrap().is_empty());
    assert_eq!(c.bounds(), (1, 9));
}

#[test]
fn splits_samples_by_bucket_and_drops_old_buckets() {
    let mut m = Memtable::default();
    assert_eq!(m.insert(0, &[], one_bucket), None);
    assert!(m.is_empty());
    assert_eq!(m.insert(0, &[s(4, 0.0), s(-2, 0.0), s(15, 1.0)], |ts| ts.div_euclid(10) * 10), Some((-2, 15)));
    assert_eq!(m.iter().map(|(_, b, _)| b).collect::<Vec<_>>(), vec![0, -10, 10]);
    m.drop_before(10, |_| true);
    assert_eq!(m.iter().map(|(_, b, _)| b).collect::<Vec<_>>(), vec![10]);
    m.drop_before(20, |_| true);
    assert!(m.is_empty());
}

#[test]
fn merged_folds_late_samples_into_the_stream_in_the_chunks_mode() {
    let mut m = Memtable::default();
    // Two steps back each (one step back is spliced into the stream).
    m.insert(0, &[s(1000, 1.5), s(2000, 2.0), s(3000, 2.5), s(1500, 1.0), s(2000, 3.5)], one_bucket);
    let c = &m.get(0)[0].1;
    assert!(c.stream_block().is_none(), "two samples aside");
    let merged = c.merged().expect("every value fits exponent 1");
    assert_eq!((merged.mode, merged.ooo.is_none()), (c.mode, true));
    assert_eq!(merged.samples().unwrap(), c.samples().unwrap());
    let v = merged.stream_block().expect("a stream block now");
    assert_eq!((v.count, v.min_ts, v.max_ts), (4, 1000, 3000));

    // A late value needing more decimals than the chunk's mode: no merge.
    let mut m = Memtable::default();
    m.insert(0, &[s(1000, 1.5), s(3000, 2.5), s(2000, 2.25)], one_bucket);
    assert!(m.get(0)[0].1.merged().is_none());
    // Nothing aside: nothing to merge.
    let mut m = Memtable::default();
    m.insert(0, &[s(1000, 1.5), s(3000, 2.5)], one_bucket);
    assert!(m.get(0)[0].1.merged().is_none());
}

#[test]
fn prefetching_any_series_at_any_level_changes_nothing() {
    let mut m = Memtable::default();
    m.insert(3, &[s(1, 1.0), s(2, 2.0)], one_bucket);
    // Known series, a slot without chunks, and handles past the end.
    for r in [0, 3, 4, 1_000_000, SeriesRef::MAX] {
        for level in 0..=3 {
            m.prefetch(r, level);
        }
    }
    assert_eq!(all(&m, 3), vec![(1, 1.0f64.to_bits()), (2, 2.0f64.to_bits())]);
    assert!(m.get(0).is_empty());
}
