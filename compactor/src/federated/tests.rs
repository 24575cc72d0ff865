use strata_schemas::Sample;

use super::*;

#[derive(Debug)]
struct Fixed(Vec<SeriesData>);

impl ReadStore for Fixed {
    fn reads_locally(&self, _: &TenantId, _: TimeRange) -> bool {
        true
    }

    fn select(&self, _: &TenantId, _: &[Matcher], r: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        Ok(self
            .0
            .iter()
            .map(|s| SeriesData {
                labels: s.labels.clone(),
                samples: s.samples.iter().copied().filter(|x| r.contains(x.ts)).collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }

    fn series(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<Labels>, ReadError> {
        Ok(self.select(t, m, r)?.into_iter().map(|s| s.labels).collect())
    }
}

fn data(ts: &[i64], v: f64) -> Vec<SeriesData> {
    vec![SeriesData {
        labels: Labels::from_pairs([("__name__", "m")]),
        samples: ts.iter().map(|&t| Sample::new(t, v)).collect(),
    }]
}

fn streamed(fed: &FederatedReadStore, t: &TenantId, r: TimeRange) -> Vec<SeriesData> {
    let mut out = Vec::new();
    fed.select_each(t, &[], r, &mut |s| {
        out.push(s);
        Ok(())
    })
    .unwrap();
    out
}

fn newest(fed: &FederatedReadStore, t: &TenantId, r: TimeRange) -> Vec<SeriesData> {
    let mut out = Vec::new();
    fed.select_newest(t, &[], r, &mut |s| {
        out.push(s);
        Ok(())
    })
    .unwrap();
    out
}

proptest::proptest! {
    /// `select_each` hands over exactly what `select` returns, in order,
    /// whatever the series on each side, the watermark and the range.
    #[test]
    fn select_each_streams_what_select_returns(
        cold in proptest::collection::vec((0u8..6, proptest::collection::btree_set(0i64..40, 0..8)), 0..6),
        hot in proptest::collection::vec((0u8..6, proptest::collection::btree_set(0i64..40, 0..8)), 0..6),
        watermark in proptest::option::of(0i64..45),
        start in 0i64..40,
        len in 0i64..45,
    ) {
        let side = |v: &[(u8, std::collections::BTreeSet<i64>)], value: f64| {
            let mut by: std::collections::BTreeMap<u8, std::collections::BTreeSet<i64>> = Default::default();
            for (k, ts) in v {
                by.entry(*k).or_default().extend(ts);
            }
            Fixed(by.into_iter().map(|(k, ts)| {
                let dev = format!("d{k}");
                SeriesData {
                    labels: Labels::from_pairs([("__name__", "m"), ("dev", dev.as_str())]),
                    samples: ts.into_iter().map(|t| Sample::new(t, value + t as f64)).collect(),
                }
            }).collect())
        };
        let fed = FederatedReadStore::new(
            Arc::new(side(&hot, 1000.0)),
            Arc::new(side(&cold, 0.0)),
            Arc::new(move |_: &TenantId| watermark),
        );
        let t = TenantId::new("t").unwrap();
        let r = TimeRange::new(start, start + len);
        proptest::prop_assert_eq!(streamed(&fed, &t, r), fed.select(&t, &[], r).unwrap());
        // And `select_newest` each series' last sample of it.
        let last: Vec<SeriesData> = fed.select(&t, &[], r).unwrap().into_iter().map(keep_newest).collect();
        proptest::prop_assert_eq!(newest(&fed, &t, r), last);
    }
}

#[test]
fn splits_at_the_watermark_without_gap_or_double_count() {
    // Cold holds 0..=10 (10 is above the watermark: committed, watermark not yet moved);
    // hot still holds 5..=20.
    let cold = Arc::new(Fixed(data(&[0, 5, 9, 10], 1.0)));
    let hot = Arc::new(Fixed(data(&[5, 9, 10, 20], 2.0)));
    let t = TenantId::new("t").unwrap();
    let fed = FederatedReadStore::new(
        Arc::clone(&hot) as Arc<dyn ReadStore>,
        Arc::clone(&cold) as Arc<dyn ReadStore>,
        Arc::new(|_: &TenantId| Some(10)),
    );
    let got = fed.select(&t, &[], TimeRange::ALL).unwrap();
    let pts: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.ts, s.value)).collect();
    assert_eq!(pts, vec![(0, 1.0), (5, 1.0), (9, 1.0), (10, 2.0), (20, 2.0)]);
    // Ranges entirely on one side.
    assert_eq!(fed.select(&t, &[], TimeRange::new(0, 5)).unwrap()[0].samples.len(), 2);
    assert_eq!(fed.select(&t, &[], TimeRange::new(10, 30)).unwrap()[0].samples[0].value, 2.0);
    // Reads that reach the cold tier (object store) are never local.
    assert!(fed.reads_locally(&t, TimeRange::new(10, 30)));
    assert!(!fed.reads_locally(&t, TimeRange::new(9, 30)));
    assert!(!fed.reads_locally(&t, TimeRange::ALL));
    let none = FederatedReadStore::new(hot, cold, Arc::new(|_: &TenantId| None));
    assert!(none.reads_locally(&t, TimeRange::ALL), "no watermark: everything is hot");
    assert_eq!(none.select(&t, &[], TimeRange::ALL).unwrap()[0].samples.len(), 4);
    assert_eq!(none.series(&t, &[], TimeRange::ALL).unwrap().len(), 1);
}
