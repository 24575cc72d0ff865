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
        reasons[0].starts_with(
            "limit max_labels_per_series exceeded: the line has more than 2 tags, so its series would have more \
             than 3 labels"
        ),
        "{reasons:?}"
    );
    assert_eq!((c.rejected[0].code, c.rejected[0].column), ("max_labels_per_series", Some(11)));
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

fn bounded(body: &str, bounds: &WriteBounds) -> Conversion {
    let t = tenant();
    Converter {
        tenant: &t,
        precision: Precision::Milliseconds,
        now_ms: 1_000_000_000,
        device_label: "device",
        partitions: 4,
        cache: None,
        limits: LabelLimits::default(),
    }
    .convert_within(body.as_bytes(), bounds)
}

#[test]
fn write_bounds_take_the_past_from_hot_ttl_unless_a_grace_period_is_set() {
    let config = IngestConfig::default();
    let limits = TenantLimits { hot_ttl: Duration::from_secs(3600), ..TenantLimits::default() };
    let b = WriteBounds::new(&config, &limits, 10_000_000);
    assert_eq!((b.oldest_ms, b.newest_ms), (10_000_000 - 3_600_000, 10_000_000 + 600_000));
    assert_eq!(b.max_fields_per_line, 1000);
    let config = IngestConfig { past_grace_period: Duration::from_secs(60), ..IngestConfig::default() };
    assert_eq!(WriteBounds::new(&config, &limits, 10_000_000).oldest_ms, 10_000_000 - 60_000);
    // Extreme settings saturate instead of overflowing.
    let config = IngestConfig { creation_grace_period: Duration::MAX, ..IngestConfig::default() };
    assert_eq!(WriteBounds::new(&config, &limits, 10).newest_ms, i64::MAX);
}

#[test]
fn samples_outside_the_window_are_refused_per_line() {
    let now = 1_000_000_000;
    let config = IngestConfig::default();
    let limits = TenantLimits { hot_ttl: Duration::from_secs(3600), ..TenantLimits::default() };
    let b = WriteBounds::new(&config, &limits, now);
    let body = format!(
        "m v=1 {}\nm v=2 {}\nm v=3 {}\nm v=4\nm v=5 {}\nm v=6 {}\nm v=7 -9223372036854\n",
        now - 3_600_000,
        now - 3_600_001,
        now + 600_000,
        now + 600_001,
        i64::MAX / 1_000_000
    );
    let c = bounded(&body, &b);
    assert_eq!(c.accepted_lines, 3, "{:?}", c.rejected);
    let got: Vec<(usize, &str)> = c.rejected.iter().map(|e| (e.line, e.code)).collect();
    assert_eq!(
        got,
        [
            (2, "sample_too_old"),
            (5, "sample_too_far_in_future"),
            (6, "sample_too_far_in_future"),
            (7, "sample_too_old")
        ]
    );
    assert!(c.rejected[0].reason.contains("1h before now (the tenant's hot_ttl)"), "{:?}", c.rejected[0]);
    assert!(c.rejected[1].reason.contains("ingest.creation_grace_period"), "{:?}", c.rejected[1]);
    // Without bounds (benches, fixed data) everything is stored.
    assert_eq!(bounded(&body, &WriteBounds::NONE).accepted_lines, 7);
}

#[test]
fn fields_over_the_node_bound_reject_the_line_with_its_column() {
    let b = WriteBounds { max_fields_per_line: 3, ..WriteBounds::NONE };
    let c = bounded("m a=1,b=2,c=3\nm a=1,b=2,c=3,d=4\n", &b);
    assert_eq!(c.accepted_lines, 1);
    let e = &c.rejected[0];
    assert_eq!((e.code, e.line, e.column), ("max_fields_per_line", 2, Some(15)), "{e:?}");
    assert!(e.reason.starts_with("limit max_fields_per_line exceeded: more than 3 distinct fields"), "{e:?}");
}

#[test]
fn control_characters_reject_the_line_with_its_column() {
    let c = convert("m,host=a\0b v=1\nm v=1\n", Precision::Milliseconds);
    assert_eq!(c.accepted_lines, 1);
    let e = &c.rejected[0];
    assert_eq!((e.code, e.line, e.column), ("invalid_line", 1, Some(9)), "{e:?}");
    assert!(e.reason.contains("U+0000"), "{e:?}");
}

#[test]
fn echoed_input_is_cut() {
    let long = "k".repeat(100_000);
    let body = format!("m {long}=\"s\",{long}x=\"t\"\nm,__{long}=1 v=1\nm,a=1 v=1,{long}=\"s\"\n");
    let c = convert(&body, Precision::Milliseconds);
    assert_eq!(c.accepted_lines, 1);
    for e in &c.rejected {
        assert!(e.reason.len() < 400, "{} bytes: {}", e.reason.len(), &e.reason[..200]);
        assert!(e.reason.contains("…(100000 bytes)") || e.reason.contains("…(100002 bytes)"), "{}", e.reason);
    }
    assert_eq!(c.skipped.len(), 1);
    assert_eq!(c.skipped[0].field, format!("{}…(100000 bytes)", &long[..MAX_ECHO]));
    assert_eq!(cut("aé", 2), "a…(3 bytes)", "cut on a char boundary");
}
