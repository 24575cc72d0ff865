use super::*;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn convert(body: &str, precision: Precision) -> Conversion {
    let t = tenant();
    Converter {
        tenant: &t,
        precision,
        now_ms: 42,
        device_label: "device",
        partitions: 4,
        cache: None,
        limits: LabelLimits::default(),
    }
    .convert(body.as_bytes())
}

fn all_series(c: &Conversion) -> Vec<(String, Vec<Sample>)> {
    let mut v: Vec<_> = c
        .batches
        .iter()
        .flat_map(|(_, b)| b.series.iter())
        .map(|s| (s.labels.to_string(), s.samples.to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn maps_fields_to_measurement_field_metrics() {
    let c = convert("sensors,device=d1,farm=f1 temp=18.5,value=3i,ok=true,n=7u 1700000000000", Precision::Milliseconds);
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert_eq!(c.samples, 4);
    let s = all_series(&c);
    let names: Vec<&str> = s.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            r#"sensors_n{device="d1", farm="f1"}"#,
            r#"sensors_ok{device="d1", farm="f1"}"#,
            r#"sensors_temp{device="d1", farm="f1"}"#,
            r#"sensors{device="d1", farm="f1"}"#,
        ]
    );
    assert_eq!(s[2].1, vec![Sample::new(1_700_000_000_000, 18.5)]);
    assert_eq!(s[1].1, vec![Sample::new(1_700_000_000_000, 1.0)]);
}

#[test]
fn converts_precision_and_defaults_to_server_time() {
    let c = convert("m v=1 1700000000123456789\nm v=2", Precision::Nanoseconds);
    let s = all_series(&c);
    assert_eq!(s[0].1, vec![Sample::new(1_700_000_000_123, 1.0), Sample::new(42, 2.0)]);
}

#[test]
fn a_device_lands_in_one_partition_and_series_merge_across_lines() {
    let c = convert("m,device=a x=1,y=2 1\nm,device=a x=3,y=4 2\nm,device=b x=5 1", Precision::Seconds);
    let partitions_of_a: std::collections::HashSet<u32> = c
        .batches
        .iter()
        .filter(|(_, b)| b.series.iter().any(|s| s.labels.get("device") == Some("a")))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(partitions_of_a.len(), 1);
    let s = all_series(&c);
    assert_eq!(s.iter().find(|(n, _)| n == r#"m_x{device="a"}"#).unwrap().1.len(), 2);
}

#[test]
fn bad_lines_are_reported_and_good_lines_kept() {
    let c = convert("m v=1 1\nm v= 2\nm,__x=1 v=3 3\nm s=\"text\"\nm s=\"t\",v=4 4", Precision::Seconds);
    assert_eq!(c.accepted_lines, 2);
    let lines: Vec<usize> = c.rejected.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 4]);
    assert!(c.rejected[1].reason.contains("reserved prefix"), "{:?}", c.rejected[1]);
    assert!(c.rejected[2].reason.contains("string field"), "{:?}", c.rejected[2]);
    assert_eq!(c.skipped, vec![SkippedField { line: 5, field: "s".into(), reason: c.skipped[0].reason.clone() }]);
    assert_eq!(c.samples, 2);
}

#[test]
fn timestamp_overflow_is_rejected() {
    let c = convert("m v=1 9223372036854775807", Precision::Seconds);
    assert_eq!(c.rejected.len(), 1);
    assert!(c.rejected[0].reason.contains("overflows"));
}

#[test]
fn ids_and_device_hashes_match_the_schemas_definitions() {
    let c = convert("m,device=d1,b=2,a=1 x=1,value=2 1", Precision::Seconds);
    for (_, batch) in &c.batches {
        for s in &batch.series {
            assert_eq!(s.id, strata_schemas::series_id(&tenant(), &s.labels));
            assert_eq!(s.device_hash, strata_schemas::device_hash(&tenant(), &s.labels, "device", s.id));
        }
    }
    let c = convert("m,b=2 x=1 1", Precision::Seconds);
    let s = &c.batches[0].1.series[0];
    assert_eq!(s.device_hash, s.id.0, "no device label: the series id is the device hash");
}

#[test]
fn cached_conversion_equals_uncached() {
    let t = tenant();
    let cache = SeriesCache::new(1024);
    let body = "m,device=d1,farm=f x=1,y=2 1\nm,device=d2,farm=f x=3 1\nn,device=d1 value=4 2\n";
    let conv = |cache| {
        Converter {
            tenant: &t,
            precision: Precision::Seconds,
            now_ms: 0,
            device_label: "device",
            partitions: 4,
            cache,
            limits: LabelLimits::default(),
        }
        .convert(body.as_bytes())
    };
    let plain = conv(None);
    let cold = conv(Some(&cache));
    assert_eq!(cache.len(), 4);
    let warm = conv(Some(&cache));
    assert_eq!(plain.batches, cold.batches);
    assert_eq!(plain.batches, warm.batches);
}

#[test]
fn labels_are_checks_every_part() {
    let l = Labels::from_pairs([("__name__", "m_x"), ("a", "1"), ("b", "2")]);
    assert!(labels_are(&l, &["m", "_", "x"], &[("a", "1"), ("b", "2")]));
    assert!(!labels_are(&l, &["m", "_", "y"], &[("a", "1"), ("b", "2")]));
    assert!(!labels_are(&l, &["m", "", ""], &[("a", "1"), ("b", "2")]));
    assert!(!labels_are(&l, &["m", "_", "x"], &[("a", "1")]));
    assert!(!labels_are(&l, &["m", "_", "x"], &[("a", "1"), ("b", "3")]));
}

#[test]
fn label_limits_reject_the_line_with_the_limit_named() {
    let t = tenant();
    let limits = LabelLimits { max_labels_per_series: 3, max_label_name_length: 5, max_label_value_length: 8 };
    let conv = |body: &str| {
        Converter {
            tenant: &t,
            precision: Precision::Seconds,
            now_ms: 0,
            device_label: "device",
            partitions: 4,
            cache: None,
            limits,
        }
        .convert(body.as_bytes())
    };
    let c = conv("m,a=1,b=2 v=1 1\nm,a=1,b=2,c=3 v=1 1\nm,longname=1 v=1 1\nm,a=123456789 v=1 1\nmeasurement v=1 1\n");
    assert_eq!(c.accepted_lines, 1);
    let reasons: Vec<&str> = c.rejected.iter().map(|e| e.reason.as_str()).collect();
    assert!(
        reasons[0].starts_with("limit max_labels_per_series exceeded: series m_v has 4 labels, the limit is 3"),
        "{reasons:?}"
    );
    assert!(reasons[1].starts_with("limit max_label_name_length exceeded"), "{reasons:?}");
    assert!(
        reasons[2].starts_with("limit max_label_value_length exceeded: value of label \"a\" is 9 bytes"),
        "{reasons:?}"
    );
    assert!(reasons[3].starts_with("limit max_label_value_length exceeded: metric name is 13 bytes"), "{reasons:?}");
}

#[test]
fn line_shapes_serve_known_lines_and_fall_back_exactly() {
    let t = tenant();
    let cache = SeriesCache::new(1024);
    let conv = |body: &str, limits: LabelLimits| {
        Converter {
            tenant: &t,
            precision: Precision::Seconds,
            now_ms: 0,
            device_label: "device",
            partitions: 4,
            cache: Some(&cache),
            limits,
        }
        .convert(body.as_bytes())
    };
    let plain = |body: &str| convert(body, Precision::Seconds);
    let warm_up = "m,device=d1,farm=f x=1,y=2 1\n";
    conv(warm_up, LabelLimits::default());
    // A known shape with a new field, a string field, and reordered fields all match the uncached answer.
    for body in
        ["m,device=d1,farm=f x=3,z=4 2\n", "m,device=d1,farm=f y=5,s=\"t\" 3\n", "m,device=d1,farm=f y=1,x=2 4\n"]
    {
        let (cached, uncached) = (conv(body, LabelLimits::default()), plain(body));
        assert_eq!(cached.batches, uncached.batches, "{body}");
        assert_eq!(cached.skipped, uncached.skipped, "{body}");
    }
    // Tightened limits apply to known shapes too.
    let tight = LabelLimits { max_labels_per_series: 2, ..LabelLimits::default() };
    let c = conv(warm_up, tight);
    assert_eq!(c.rejected.len(), 1);
    assert!(c.rejected[0].reason.starts_with("limit max_labels_per_series exceeded"), "{:?}", c.rejected);
    // Same tags in another order is another shape, same series.
    let reordered = conv("m,farm=f,device=d1 x=9 5\n", LabelLimits::default());
    assert_eq!(reordered.batches, plain("m,farm=f,device=d1 x=9 5\n").batches);
}
