use super::*;

#[test]
fn names_follow_prometheus_3() {
    assert_eq!(
        metric_name("http.server.request.duration", "s", Kind::Histogram),
        "http_server_request_duration_seconds"
    );
    assert_eq!(metric_name("system.network.io", "By", Kind::Counter), "system_network_io_bytes_total");
    assert_eq!(metric_name("requests.total", "{request}", Kind::Counter), "requests_total");
    assert_eq!(metric_name("cpu.utilization", "1", Kind::Gauge), "cpu_utilization_ratio");
    assert_eq!(metric_name("throughput", "By/s", Kind::Gauge), "throughput_bytes_per_second");
    assert_eq!(metric_name("latency_seconds", "s", Kind::Gauge), "latency_seconds");
    assert_eq!(metric_name("1st.metric", "", Kind::Gauge), "_1st_metric");
    assert_eq!(metric_name("soil.temp", "Cel", Kind::Gauge), "soil_temp_celsius");
}

#[test]
fn label_names_are_sanitised() {
    assert_eq!(label_name("http.method"), "http_method");
    assert_eq!(label_name("2xx"), "key_2xx");
    assert_eq!(label_name("a-b c"), "a_b_c");
}

fn kv(k: &str, v: &str) -> proto::KeyValue {
    proto::KeyValue { key: k.into(), value: Some(proto::AnyValue { value: Some(proto::Value::String(v.into())) }) }
}

fn find<'a>(r: &'a rw::WriteRequest, labels: &[(&str, &str)]) -> Option<&'a rw::TimeSeries> {
    r.timeseries.iter().find(|s| {
        labels.iter().all(|(n, v)| s.labels.iter().any(|l| &l.name[..] == n.as_bytes() && &l.value[..] == v.as_bytes()))
    })
}

#[test]
fn histograms_counters_delta_and_target_info() {
    let resource = proto::Resource {
        attributes: vec![kv("service.name", "gw"), kv("service.instance.id", "i-1"), kv("host.name", "farm7")],
    };
    let counter = proto::Metric {
        name: "packets".into(),
        unit: "1".into(),
        description: String::new(),
        data: Some(MetricData::Sum(proto::Sum {
            data_points: vec![proto::NumberDataPoint {
                attributes: vec![kv("port", "a")],
                time_unix_nano: 5_000_000_000,
                value: Some(NumberValue::AsInt(7)),
                flags: 0,
            }],
            aggregation_temporality: 2,
            is_monotonic: true,
        })),
    };
    let hist = proto::Metric {
        name: "rtt".into(),
        unit: "ms".into(),
        description: String::new(),
        data: Some(MetricData::Histogram(proto::Histogram {
            data_points: vec![proto::HistogramDataPoint {
                attributes: vec![],
                time_unix_nano: 5_000_000_000,
                count: 6,
                sum: Some(42.0),
                bucket_counts: vec![1, 2, 3],
                explicit_bounds: vec![10.0, 100.0],
                flags: 0,
            }],
            aggregation_temporality: 2,
        })),
    };
    let delta = proto::Metric {
        name: "d".into(),
        unit: String::new(),
        description: String::new(),
        data: Some(MetricData::Sum(proto::Sum {
            data_points: vec![proto::NumberDataPoint::default(); 3],
            aggregation_temporality: 1,
            is_monotonic: true,
        })),
    };
    let req = proto::ExportMetricsServiceRequest {
        resource_metrics: vec![proto::ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![proto::ScopeMetrics { metrics: vec![counter, hist, delta] }],
        }],
    };
    let t = translate(&req, &["host.name".to_owned()]);
    let r = &t.request;
    let c = find(
        r,
        &[("__name__", "packets_total"), ("job", "gw"), ("instance", "i-1"), ("port", "a"), ("host_name", "farm7")],
    )
    .unwrap();
    assert_eq!(c.samples, vec![rw::Sample { value: 7.0, timestamp: 5_000 }]);
    let b = |le: &str| find(r, &[("__name__", "rtt_milliseconds_bucket"), ("le", le)]).unwrap().samples[0].value;
    assert_eq!((b("10"), b("100"), b("+Inf")), (1.0, 3.0, 6.0));
    assert_eq!(find(r, &[("__name__", "rtt_milliseconds_sum")]).unwrap().samples[0].value, 42.0);
    assert_eq!(find(r, &[("__name__", "rtt_milliseconds_count")]).unwrap().samples[0].value, 6.0);
    let info = find(r, &[("__name__", "target_info"), ("job", "gw"), ("host_name", "farm7")]).unwrap();
    assert_eq!(info.samples[0].value, 1.0);
    assert_eq!((t.points, t.rejected_points), (2, 3));
    assert!(t.reasons[0].contains("delta temporality"), "{:?}", t.reasons);
}
