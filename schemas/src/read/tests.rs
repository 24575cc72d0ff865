use super::*;

#[test]
fn exact_exp_is_the_weight_of_the_lowest_set_bit() {
    assert_eq!(exact_exp(1.0), Some(0));
    assert_eq!(exact_exp(0.25), Some(-2));
    assert_eq!(exact_exp(-0.75), Some(-2));
    assert_eq!(exact_exp(6.0), Some(1));
    assert_eq!(exact_exp(0.0), Some(EXP_NONE_SET));
    assert_eq!(exact_exp(-0.0), Some(EXP_NONE_SET));
    assert_eq!(exact_exp(f64::from_bits(1)), Some(-1074));
    assert_eq!(exact_exp(f64::MIN_POSITIVE), Some(-1022));
    assert_eq!(exact_exp(f64::MAX), Some(1023 - 52));
    // 0.1 has a full mantissa: its lowest bit weighs 2^-56 × 2 (…9A ends in one zero).
    assert_eq!(exact_exp(0.1), Some(-55));
    assert_eq!(exact_exp(f64::NAN), Some(EXP_NAN));
    assert_eq!(exact_exp(f64::NEG_INFINITY), None);
    assert_eq!(pow2(-1074), f64::from_bits(1));
    assert_eq!(pow2(-1023), f64::MIN_POSITIVE / 2.0);
    assert_eq!(pow2(0), 1.0);
    assert_eq!(pow2(1023), 2f64.powi(1023));
    assert_eq!(pow2(1024), f64::INFINITY);
}

fn window(end: i64, values: &[f64]) -> RollupPoint {
    let s: Vec<Sample> = values.iter().enumerate().map(|(i, &v)| Sample::new(end - 10 + i as i64, v)).collect();
    RollupPoint::of(end, &s).unwrap()
}

#[test]
fn sums_are_exact_only_for_short_multiples_of_a_power_of_two() {
    let a = window(100, &[0.25, -3.5, 1024.0]);
    let b = window(200, &[7.0, 0.0]);
    assert_eq!((a.exp, b.exp), (Some(-2), Some(0)));
    assert!(RollupPoint::sums_exactly(&[a, b]));
    assert!(RollupPoint::sums_exactly(&[window(100, &[0.0, -0.0])]));
    // Decimal fractions are not: their sums round.
    assert!(!RollupPoint::sums_exactly(&[window(100, &[0.1, 0.2])]));
    assert!(!RollupPoint::sums_exactly(&[window(100, &[0.25]), window(200, &[0.1])]));
    // Integers near 2^53 are multiples of 1 but their sum has too many bits.
    assert!(!RollupPoint::sums_exactly(&[window(100, &[2f64.powi(52), 1.0, 3.0])]));
    assert!(RollupPoint::sums_exactly(&[window(100, &[2f64.powi(48), 1.0, 3.0])]));
    assert!(RollupPoint::sums_exactly(&[window(100, &[0.1, f64::NAN]), window(200, &[0.25])]), "NaN both ways");
    assert!(
        !RollupPoint::sums_exactly(&[window(100, &[f64::NAN]), window(200, &[0.1, 0.2])]),
        "a step of the second window alone is not NaN"
    );
    assert_eq!(window(100, &[f64::NAN, 0.5]).exp, Some(EXP_NAN));
    assert!(!RollupPoint::sums_exactly(&[window(100, &[f64::INFINITY])]));
    assert!(!RollupPoint::sums_exactly(&[window(100, &[f64::MAX, f64::MAX])]), "would overflow");
    let mut merged = a;
    merged.merge(&window(100, &[0.125]));
    assert_eq!(merged.exp, Some(-3));
    merged.merge(&RollupPoint { exp: None, ..b });
    assert_eq!(merged.exp, None, "a partial without exp makes the window unknown");
    merged.merge(&window(100, &[f64::NAN]));
    assert_eq!(merged.exp, Some(EXP_NAN), "but a NaN makes it NaN");
}

/// Two series, the second ending with a staleness marker.
#[derive(Debug)]
struct Two;

impl ReadStore for Two {
    fn select(&self, _: &TenantId, _: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        let stale = Sample::new(30, f64::from_bits(crate::labels::STALE_NAN_BITS));
        let all = [
            (Labels::from_pairs([("__name__", "a")]), vec![Sample::new(10, 1.0), Sample::new(20, 2.0)]),
            (Labels::from_pairs([("__name__", "b")]), vec![Sample::new(10, 5.0), stale]),
        ];
        Ok(all
            .into_iter()
            .map(|(labels, samples)| SeriesData {
                labels,
                samples: samples.into_iter().filter(|x| range.contains(x.ts)).collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }

    fn series(&self, _: &TenantId, _: &[Matcher], _: TimeRange) -> Result<Vec<Labels>, ReadError> {
        Ok(Vec::new())
    }
}

fn newest(range: TimeRange) -> Vec<(String, i64, u64)> {
    let mut out = Vec::new();
    let t = TenantId::new("t").unwrap();
    Two.select_newest(&t, &[], range, &mut |s| {
        assert_eq!(s.samples.len(), 1, "{s:?}");
        out.push((s.labels.to_string(), s.samples[0].ts, s.samples[0].value.to_bits()));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn default_select_newest_keeps_each_series_last_sample_stale_markers_included() {
    let stale = crate::labels::STALE_NAN_BITS;
    let (a, b) = ("a{}".to_string(), "b{}".to_string());
    assert_eq!(newest(TimeRange::ALL), vec![(a.clone(), 20, 2f64.to_bits()), (b.clone(), 30, stale)]);
    assert_eq!(newest(TimeRange::new(0, 25)), vec![(a.clone(), 20, 2f64.to_bits()), (b.clone(), 10, 5f64.to_bits())]);
    assert_eq!(newest(TimeRange::new(25, 40)), vec![(b, 30, stale)], "a has nothing in the range");
    assert!(newest(TimeRange::new(31, 40)).is_empty());
    assert_eq!(keep_newest(SeriesData { labels: Labels::default(), samples: Vec::new() }).samples, Vec::new());
}
