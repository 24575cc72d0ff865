use strata_schemas::{BatchSeries, Sample, TimeRange, WriteBatch};

use super::*;

fn t(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

/// 3 farms × 4 devices × 2 metrics for `acme`, one series for `other`.
fn store(dir: &std::path::Path) -> HotStore {
    let hot = HotStore::open(dir, crate::HotStoreConfig::default()).unwrap();
    let mut series = Vec::new();
    for metric in ["temp", "moisture"] {
        for farm in 0..3 {
            for dev in 0..4 {
                let labels = Labels::from_pairs([
                    ("__name__", metric),
                    ("farm", &format!("f{farm}")),
                    ("device", &format!("d{farm}{dev}")),
                ]);
                let ts = if farm == 0 { 1_000 } else { 90_000_000 };
                series.push(BatchSeries {
                    id: strata_schemas::series_id(&t("acme"), &labels),
                    device_hash: 0,
                    labels,
                    samples: vec![Sample::new(ts, 1.0)].into(),
                });
            }
        }
    }
    hot.apply(0, 0, &WriteBatch { tenant: t("acme"), series, origin: None }).unwrap();
    let labels = Labels::from_pairs([("__name__", "secret"), ("farm", "x")]);
    let other = BatchSeries {
        id: strata_schemas::series_id(&t("other"), &labels),
        device_hash: 0,
        labels,
        samples: vec![Sample::new(5, 1.0)].into(),
    };
    hot.apply(0, 1, &WriteBatch { tenant: t("other"), series: vec![other], origin: None }).unwrap();
    hot
}

#[test]
fn counts_per_metric_label_and_pair_of_one_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let hot = store(dir.path());
    let c = hot.cardinality(&t("acme"), &CardinalityRequest { top_n: 3, ..Default::default() });
    assert_eq!(c.total_series, 24);
    assert_eq!(c.total_label_value_pairs, 2 + 3 + 12);
    assert_eq!(
        c.series_count_by_metric_name,
        vec![Count { name: "moisture".into(), value: 12 }, Count { name: "temp".into(), value: 12 }]
    );
    let labels: Vec<(&str, u64)> =
        c.label_value_count_by_label_name.iter().map(|c| (c.name.as_str(), c.value)).collect();
    assert_eq!(labels, [("device", 12), ("farm", 3), ("__name__", 2)]);
    assert_eq!(c.series_count_by_label_value_pair.len(), 3, "top 3");
    assert_eq!(c.series_count_by_label_value_pair[0].value, 12);
    assert!(c.series_count_by_metric_name.iter().all(|m| m.name != "secret"), "another tenant's series");
    assert_eq!((c.min_time, c.max_time), (1_000, 90_000_000));
}

#[test]
fn match_focus_label_and_day_narrow_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let hot = store(dir.path());
    let req = CardinalityRequest {
        matchers: vec![Matcher::equal("__name__", "temp")],
        top_n: 10,
        focus_label: Some("farm".into()),
        ..Default::default()
    };
    let c = hot.cardinality(&t("acme"), &req);
    assert_eq!(c.total_series, 12);
    assert_eq!(c.series_count_by_focus_label_value.len(), 3);
    assert!(c.series_count_by_focus_label_value.iter().all(|f| f.value == 4));
    // The first day only: farm f0's series.
    let day = CardinalityRequest { range: Some((0, 86_399_999)), ..req };
    let c = hot.cardinality(&t("acme"), &day);
    assert_eq!(c.total_series, 4);
    assert_eq!(c.series_count_by_focus_label_value, vec![Count { name: "f0".into(), value: 4 }]);
    assert_eq!(hot.cardinality(&t("nobody"), &day), Cardinality::default());
}

#[test]
fn ties_at_the_cut_keep_the_smallest_names_in_any_order() {
    for order in [["b", "a", "c"], ["c", "b", "a"], ["a", "c", "b"]] {
        let mut top = Top::new(2);
        top.offer(9, || "big".into());
        top.offer(1, || "small".into());
        for n in order {
            top.offer(5, || n.to_string());
        }
        let kept: Vec<(String, u64)> = top.into_sorted().into_iter().map(|c| (c.name, c.value)).collect();
        assert_eq!(kept, [("big".to_owned(), 9), ("a".to_owned(), 5)], "{order:?}");
    }
}

#[test]
fn label_sets_give_the_same_counts_as_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let hot = store(dir.path());
    let all = TimeRange::new(i64::MIN, i64::MAX);
    for req in [
        CardinalityRequest { top_n: 3, ..Default::default() },
        CardinalityRequest { top_n: 100, focus_label: Some("farm".into()), ..Default::default() },
        CardinalityRequest {
            matchers: vec![Matcher::equal("farm", "f1")],
            top_n: 5,
            focus_label: Some("device".into()),
            ..Default::default()
        },
    ] {
        let matchers = if req.matchers.is_empty() {
            vec![Matcher::regex("__name__", ".+").unwrap()]
        } else {
            req.matchers.clone()
        };
        let series = strata_schemas::ReadStore::series(&hot, &t("acme"), &matchers, all).unwrap();
        let from_index = hot.cardinality(&t("acme"), &req);
        let from_sets = cardinality_of(&series, &req);
        assert_eq!(Cardinality { min_time: 0, max_time: 0, ..from_index }, from_sets, "{req:?}");
    }
    assert_eq!(cardinality_of(&[], &CardinalityRequest { top_n: 10, ..Default::default() }), Cardinality::default());
}
