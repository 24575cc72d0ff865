//! Engine tests against hand-computed Prometheus results.

use crate::QueryConfig;
use crate::engine::{CancelToken, Engine, QueryOptions};
use crate::error::QueryError;
use crate::test_util::MemStore;
use crate::value::Value;
use std::sync::Arc;
use std::time::Duration;
use strata_schemas::TenantId;

const MIN: i64 = 60_000;

fn engine_with(load: &str, config: QueryConfig) -> Engine {
    let store = MemStore::new();
    store.load(&TenantId::default_tenant(), MIN, load).expect("load");
    Engine::new(Arc::new(store), config)
}

fn engine(load: &str) -> Engine {
    engine_with(load, QueryConfig::default())
}

/// Instant query as `(labels, value)` pairs, labels formatted like PromQL.
fn instant(e: &Engine, q: &str, t: i64) -> Vec<(String, f64)> {
    match e.query_instant(&TenantId::default_tenant(), q, t).expect(q).value {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        Value::Scalar { v, .. } => vec![(String::new(), v)],
        other => panic!("unexpected {other:?}"),
    }
}

fn one(e: &Engine, q: &str, t: i64) -> f64 {
    let v = instant(e, q, t);
    assert_eq!(v.len(), 1, "{q}: {v:?}");
    v[0].1
}

fn err(e: &Engine, q: &str, t: i64) -> QueryError {
    e.query_instant(&TenantId::default_tenant(), q, t).expect_err(q)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn rate_extrapolates_to_window_start_when_samples_are_regular() {
    let e = engine("c 0+60x10");
    assert!(close(one(&e, "rate(c[5m])", 10 * MIN), 1.0));
    assert!(close(one(&e, "increase(c[5m])", 10 * MIN), 300.0));
}

#[test]
fn increase_corrects_counter_resets_and_limits_extrapolation() {
    let e = engine("c 10 20 5 15");
    // result 5 + reset 20 = 25; sampled 180s, start gap 120s > 1.1*60s -> 30s; factor 210/180.
    assert!(close(one(&e, "increase(c[5m])", 3 * MIN), 25.0 * 210.0 / 180.0));
    assert_eq!(one(&e, "resets(c[5m])", 3 * MIN), 1.0);
    assert_eq!(one(&e, "changes(c[5m])", 3 * MIN), 3.0);
}

#[test]
fn counter_extrapolation_stops_at_zero() {
    let e = engine("c _ _ 1 11 21");
    // to_zero = 120s * 1/20 = 6s < 30s half-interval.
    assert!(close(one(&e, "increase(c[5m])", 4 * MIN), 20.0 * 126.0 / 120.0));
}

#[test]
fn delta_extrapolates_gauges_without_zero_rule() {
    let e = engine("g 10 5");
    assert!(close(one(&e, "delta(g[2m])", MIN), -10.0));
    assert!(close(one(&e, "idelta(g[2m])", MIN), -5.0));
}

#[test]
fn irate_uses_last_two_samples_and_handles_reset() {
    let e = engine("c 0 60 120 30");
    assert!(close(one(&e, "irate(c[5m])", 2 * MIN), 1.0));
    assert!(close(one(&e, "irate(c[5m])", 3 * MIN), 0.5));
}

#[test]
fn lookback_is_left_open_and_five_minutes() {
    let e = engine("m 1");
    assert_eq!(one(&e, "m", 5 * MIN - 1), 1.0);
    assert!(instant(&e, "m", 5 * MIN).is_empty());
    let e = engine_with("m 1", QueryConfig { lookback_delta: Duration::from_secs(60), ..QueryConfig::default() });
    assert!(instant(&e, "m", 2 * MIN).is_empty());
}

#[test]
fn staleness_marker_ends_series() {
    let e = engine("m 1 stale 2");
    assert_eq!(one(&e, "m", 30_000), 1.0);
    assert!(instant(&e, "m", MIN).is_empty());
    assert!(instant(&e, "m", 90_000).is_empty());
    assert_eq!(one(&e, "m", 2 * MIN), 2.0);
    // Range windows skip the marker.
    assert_eq!(one(&e, "count_over_time(m[5m])", 2 * MIN), 2.0);
}

#[test]
fn range_windows_are_left_open() {
    let e = engine("m 1 2 3");
    assert_eq!(one(&e, "count_over_time(m[1m])", 2 * MIN), 1.0);
    assert_eq!(one(&e, "sum_over_time(m[2m])", 2 * MIN), 5.0);
}

#[test]
fn offset_shifts_both_ways() {
    let e = engine("m 0+1x10");
    assert_eq!(one(&e, "m offset 2m", 5 * MIN), 3.0);
    assert_eq!(one(&e, "m offset -2m", 5 * MIN), 7.0);
    assert_eq!(one(&e, "m @ 120", 5 * MIN), 2.0);
    assert_eq!(one(&e, "sum_over_time(m[2m] offset 1m)", 5 * MIN), 7.0);
}

#[test]
fn matchers_of_all_four_kinds() {
    let e = engine("m{a=\"x\"} 1\nm{a=\"y\"} 2\nm 3");
    assert_eq!(one(&e, "m{a=\"x\"}", 0), 1.0);
    assert_eq!(instant(&e, "m{a!=\"x\"}", 0).len(), 2);
    assert_eq!(one(&e, "sum(m{a=~\"x|y\"})", 0), 3.0);
    assert_eq!(one(&e, "m{a!~\".+\"}", 0), 3.0);
}

#[test]
fn over_time_family() {
    let e = engine("m 1 2 3 4");
    let t = 3 * MIN;
    assert_eq!(one(&e, "avg_over_time(m[5m])", t), 2.5);
    assert_eq!(one(&e, "min_over_time(m[5m])", t), 1.0);
    assert_eq!(one(&e, "max_over_time(m[5m])", t), 4.0);
    assert_eq!(one(&e, "last_over_time(m[5m])", t), 4.0);
    assert_eq!(one(&e, "present_over_time(m[5m])", t), 1.0);
    assert_eq!(one(&e, "quantile_over_time(0.5, m[5m])", t), 2.5);
    assert!(close(one(&e, "stdvar_over_time(m[5m])", t), 1.25));
    assert!(close(one(&e, "stddev_over_time(m[5m])", t), 1.25f64.sqrt()));
    assert!(close(one(&e, "deriv(m[5m])", t), 1.0 / 60.0));
}

#[test]
fn aggregations_by_and_without() {
    let e = engine("m{job=\"a\",i=\"1\"} 1\nm{job=\"a\",i=\"2\"} 3\nm{job=\"b\",i=\"1\"} 10");
    assert_eq!(instant(&e, "sum by (job) (m)", 0), vec![("{job=\"a\"}".into(), 4.0), ("{job=\"b\"}".into(), 10.0)]);
    assert_eq!(instant(&e, "sum without (i) (m)", 0), vec![("{job=\"a\"}".into(), 4.0), ("{job=\"b\"}".into(), 10.0)]);
    assert_eq!(one(&e, "avg(m)", 0), 14.0 / 3.0);
    assert_eq!(one(&e, "count(m)", 0), 3.0);
    assert_eq!(one(&e, "min(m)", 0), 1.0);
    assert_eq!(one(&e, "max(m)", 0), 10.0);
    assert_eq!(one(&e, "group(m)", 0), 1.0);
    assert_eq!(one(&e, "quantile(0.5, m)", 0), 3.0);
    let top = instant(&e, "topk(2, m)", 0);
    assert_eq!(top.iter().map(|x| x.1).collect::<Vec<_>>(), vec![10.0, 3.0]);
    assert_eq!(instant(&e, "bottomk(1, m)", 0), vec![("m{i=\"1\", job=\"a\"}".into(), 1.0)]);
    let cv = instant(&e, "count_values(\"v\", m)", 0);
    assert!(cv.contains(&("{v=\"10\"}".into(), 1.0)), "{cv:?}");
    assert_eq!(instant(&e, "sum by (__name__) (m)", 0), vec![("m{}".into(), 14.0)]);
}

#[test]
fn vector_matching_and_cardinality_errors() {
    let e = engine("a{x=\"1\",y=\"1\"} 1\na{x=\"1\",y=\"2\"} 2\nb{x=\"1\"} 10");
    let r = instant(&e, "a + on(x) group_left b", 0);
    assert_eq!(r, vec![("{x=\"1\", y=\"1\"}".into(), 11.0), ("{x=\"1\", y=\"2\"}".into(), 12.0)]);
    let msg = err(&e, "a + on(x) b", 0).to_string();
    assert!(msg.contains("many-to-one matching must be explicit"), "{msg}");
    let msg = err(&e, "b + on(x) a", 0).to_string();
    assert!(msg.starts_with("found duplicate series for the match group {x=\"1\"} on the right hand-side"), "{msg}");
    assert_eq!(instant(&e, "b * on(x) group_right a", 0).len(), 2);
    assert_eq!(instant(&e, "a and on(x) b", 0).len(), 2);
    assert!(instant(&e, "a unless on(x) b", 0).is_empty());
    assert_eq!(instant(&e, "b or a", 0).len(), 3);
}

#[test]
fn metric_name_dropping_rules() {
    let e = engine("m 5");
    assert_eq!(instant(&e, "m > 1", 0), vec![("m{}".into(), 5.0)]);
    assert_eq!(instant(&e, "m > bool 1", 0), vec![("{}".into(), 1.0)]);
    assert_eq!(instant(&e, "m + 1", 0), vec![("{}".into(), 6.0)]);
    assert_eq!(instant(&e, "1 < m", 0), vec![("m{}".into(), 5.0)]);
    assert_eq!(instant(&e, "-m", 0), vec![("{}".into(), -5.0)]);
    assert_eq!(instant(&e, "abs(m)", 0), vec![("{}".into(), 5.0)]);
    assert_eq!(instant(&e, "last_over_time(m[1m])", 0), vec![("m{}".into(), 5.0)]);
    assert_eq!(instant(&e, "sort(m)", 0), vec![("m{}".into(), 5.0)]);
}

#[test]
fn scalar_arithmetic_and_functions() {
    let e = engine("m{a=\"1\"} 2.5");
    assert_eq!(one(&e, "1 + 2 * 3", 0), 7.0);
    assert_eq!(one(&e, "2 ^ 3 ^ 2", 0), 512.0);
    assert_eq!(one(&e, "5 % 3", 0), 2.0);
    assert_eq!(one(&e, "1 > bool 2", 0), 0.0);
    assert_eq!(one(&e, "round(m)", 0), 3.0);
    assert_eq!(one(&e, "round(m, 2)", 0), 2.0);
    assert_eq!(one(&e, "clamp(m, 0, 1)", 0), 1.0);
    assert_eq!(one(&e, "scalar(m) * 2", 0), 5.0);
    assert_eq!(one(&e, "time()", 90_000), 90.0);
    assert_eq!(one(&e, "timestamp(m)", 30_000), 0.0);
    assert_eq!(instant(&e, "absent(nope{job=\"x\"})", 0), vec![("{job=\"x\"}".into(), 1.0)]);
    assert!(instant(&e, "absent(m)", 0).is_empty());
    let r = instant(&e, "label_replace(m, \"b\", \"v$1\", \"a\", \"(.*)\")", 0);
    assert_eq!(r, vec![("m{a=\"1\", b=\"v1\"}".into(), 2.5)]);
    let r = instant(&e, "label_join(m, \"b\", \"-\", \"a\", \"a\")", 0);
    assert_eq!(r, vec![("m{a=\"1\", b=\"1-1\"}".into(), 2.5)]);
}

#[test]
fn histogram_quantile_over_classic_buckets() {
    let e = engine("h{le=\"0.1\"} 10\nh{le=\"0.5\"} 30\nh{le=\"+Inf\"} 40");
    assert!(close(one(&e, "histogram_quantile(0.5, h)", 0), 0.3));
}

#[test]
fn subqueries_and_at_start_end() {
    let e = engine("c 0+60x10");
    assert!(close(one(&e, "max_over_time(rate(c[2m])[5m:1m])", 10 * MIN), 1.0));
    let r = e.query_range(&TenantId::default_tenant(), "c @ start()", 0, 2 * MIN, MIN).unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert!(m[0].samples.iter().all(|s| s.value == 0.0));
}

#[test]
fn range_query_returns_matrix_per_step() {
    let e = engine("m 1 2 _ _ _ _ _ _ 9");
    let r = e.query_range(&TenantId::default_tenant(), "m", 0, 8 * MIN, 2 * MIN).unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    let got: Vec<(i64, f64)> = m[0].samples.iter().map(|s| (s.ts, s.value)).collect();
    // 6m: sample at 1m is more than 5m old.
    assert_eq!(got, vec![(0, 1.0), (2 * MIN, 2.0), (4 * MIN, 2.0), (8 * MIN, 9.0)]);
}

#[test]
fn range_query_validation_messages() {
    let e = engine("m 1");
    let t = TenantId::default_tenant();
    let msg = e.query_range(&t, "m", 10, 0, 1).unwrap_err().to_string();
    assert_eq!(msg, "end timestamp must not be before start time");
    assert!(e.query_range(&t, "m", 0, 10, 0).unwrap_err().to_string().starts_with("zero or negative"));
    let msg = e.query_range(&t, "m", 0, 12_000_000, 1000).unwrap_err().to_string();
    assert!(msg.starts_with("exceeded maximum resolution of 11,000 points per timeseries"), "{msg}");
    assert_eq!(e.query_range(&t, "m[5m]", 0, 10, 1).unwrap_err().error_type(), "bad_data");
}

#[test]
fn limits_timeout_and_cancellation() {
    let e = engine_with("m 0+1x100", QueryConfig { max_samples: 10, ..QueryConfig::default() });
    assert!(matches!(err(&e, "sum_over_time(m[1h])", 100 * MIN), QueryError::TooManySamples(_)));
    let e = engine("m 1");
    let t = TenantId::default_tenant();
    let cancel = CancelToken::new();
    cancel.cancel();
    let opts = QueryOptions { timeout: None, cancel: Some(cancel), ..QueryOptions::default() };
    assert!(matches!(e.query_instant_with(&t, "m", 0, &opts), Err(QueryError::Canceled(_))));
    let opts = QueryOptions { timeout: Some(Duration::ZERO), cancel: None, ..QueryOptions::default() };
    let r = e.query_instant_with(&t, "m", 0, &opts);
    assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
}

#[test]
fn unsupported_constructs_are_named() {
    let e = engine("m 1");
    let msg = err(&e, "info(m)", 0).to_string();
    assert!(msg.contains("info()"), "{msg}");
    assert_eq!(err(&e, "sum(", 0).error_type(), "bad_data");
}

#[test]
fn tenants_are_isolated() {
    let store = MemStore::new();
    let a = TenantId::new("a").unwrap();
    let b = TenantId::new("b").unwrap();
    store.load(&a, MIN, "m 1").unwrap();
    let e = Engine::new(Arc::new(store), QueryConfig::default());
    assert!(matches!(e.query_instant(&a, "m", 0).unwrap().value, Value::Vector(v) if v.len() == 1));
    assert!(matches!(e.query_instant(&b, "m", 0).unwrap().value, Value::Vector(v) if v.is_empty()));
}

#[test]
fn duplicate_labelsets_after_name_drop_fail() {
    let e = engine("a{x=\"1\"} 1\nb{x=\"1\"} 2");
    let msg = err(&e, "abs({x=\"1\"})", 0).to_string();
    assert_eq!(msg, "vector cannot contain metrics with the same labelset");
}

fn range(e: &Engine, q: &str, start: i64, end: i64, step: i64) -> Vec<(String, Vec<(i64, f64)>)> {
    match e.query_range(&TenantId::default_tenant(), q, start, end, step).expect(q).value {
        Value::Matrix(m) => {
            m.into_iter().map(|s| (s.labels.to_string(), s.samples.iter().map(|p| (p.ts, p.value)).collect())).collect()
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn subquery_steps_are_aligned_to_absolute_multiples() {
    let e = engine("m 0+1x20");
    // (5m, 10m] holds the inner steps 6m..10m.
    assert_eq!(one(&e, "count_over_time(m[5m:1m])", 10 * MIN), 5.0);
    // At 10m30s the inner steps are still 6m..10m (aligned to multiples of 1m, not to 10m30s).
    assert_eq!(one(&e, "count_over_time(m[5m:1m])", 10 * MIN + 30_000), 5.0);
    assert_eq!(one(&e, "sum_over_time(m[5m:1m])", 10 * MIN + 30_000), 6.0 + 7.0 + 8.0 + 9.0 + 10.0);
    // A 2m step inside a 5m range: 6m, 8m, 10m.
    assert_eq!(one(&e, "sum_over_time(m[5m:2m])", 10 * MIN), 24.0);
    // Without a step the configured default (1m, Prometheus's evaluation interval) is used.
    assert_eq!(one(&e, "count_over_time(m[5m:])", 10 * MIN), 5.0);
}

#[test]
fn subquery_offset_at_and_nesting() {
    let e = engine("m 0+1x20\nc 0+60x20");
    // offset moves the whole window: (2m, 5m] → 3+4+5.
    assert_eq!(one(&e, "sum_over_time(m[3m:1m] offset 5m)", 10 * MIN), 12.0);
    // @ pins the window regardless of the evaluation time.
    for t in [0, 7 * MIN, 20 * MIN] {
        assert_eq!(one(&e, "sum_over_time(m[3m:1m] @ 300)", t), 12.0, "at {t}");
    }
    // @ and offset combine: evaluated at 300 - 60.
    assert_eq!(one(&e, "m @ 300 offset 1m", 15 * MIN), 4.0);
    // @ inside the subquery's inner expression fixes every inner step.
    assert_eq!(one(&e, "max_over_time((m @ 120)[5m:1m])", 10 * MIN), 2.0);
    // Nested subqueries: the rate of a steady counter is 1/s, its derivative 0.
    assert!(close(one(&e, "max_over_time(rate(c[2m])[5m:1m])", 10 * MIN), 1.0));
    assert!(close(one(&e, "max_over_time(deriv(rate(c[2m])[3m:1m])[5m:1m])", 15 * MIN), 0.0));
    // A subquery at the top of an instant query is a range vector of the inner steps.
    let r = e.query_instant(&TenantId::default_tenant(), "m[3m:1m]", 5 * MIN).unwrap();
    let Value::Matrix(m) = r.value else { panic!("{:?}", r.value) };
    let got: Vec<(i64, f64)> = m[0].samples.iter().map(|s| (s.ts, s.value)).collect();
    assert_eq!(got, vec![(3 * MIN, 3.0), (4 * MIN, 4.0), (5 * MIN, 5.0)]);
}

#[test]
fn at_start_and_end_in_range_queries() {
    let e = engine("m 0+1x20");
    let r = range(&e, "m @ end()", 2 * MIN, 6 * MIN, 2 * MIN);
    assert_eq!(r[0].1, vec![(2 * MIN, 6.0), (4 * MIN, 6.0), (6 * MIN, 6.0)]);
    let r = range(&e, "m - m @ start()", 2 * MIN, 6 * MIN, 2 * MIN);
    assert_eq!(r[0].1, vec![(2 * MIN, 0.0), (4 * MIN, 2.0), (6 * MIN, 4.0)]);
    // start()/end() of a subquery are the outer query's, not the subquery's.
    let r = range(&e, "max_over_time((m @ start())[10m:1m])", 5 * MIN, 7 * MIN, MIN);
    assert!(r[0].1.iter().all(|&(_, v)| v == 5.0), "{r:?}");
    // A range selector pinned with @ gives the same window at every step.
    let r = range(&e, "sum_over_time(m[2m] @ 240)", 0, 10 * MIN, 5 * MIN);
    assert!(r[0].1.iter().all(|&(_, v)| v == 7.0), "{r:?}");
}

#[test]
fn subquery_in_range_query_matches_instant_queries() {
    let e = engine("c 0+10x30\nc 0+10x10 0+5x19");
    let q = "max_over_time(irate(c[2m])[4m:30s])";
    let r = range(&e, q, 5 * MIN, 25 * MIN, 90_000);
    for &(t, v) in &r[0].1 {
        assert!(close(one(&e, q, t), v), "{q} at {t}");
    }
}

#[test]
fn delayed_name_removal_keeps_names_for_label_functions() {
    let load = "a_total{env=\"1\"} 0 60 120\nb_total{env=\"1\"} 0 60 120";
    let q = r#"label_replace(rate({env="1"}[2m]), "src", "$1", "__name__", "(.+)")"#;
    // Prometheus's default: rate drops the names first, so both series collide.
    assert!(err(&engine(load), q, 2 * MIN).to_string().contains("same labelset"));
    let e = engine_with(load, QueryConfig { delayed_name_removal: true, ..QueryConfig::default() });
    let got = instant(&e, q, 2 * MIN);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(l, _)| !l.contains("__name__") && l.contains("src=")), "{got:?}");
}

#[test]
fn limitk_and_limit_ratio() {
    let e = engine("m{i=\"1\"} 1\nm{i=\"2\"} 2\nm{i=\"3\"} 3");
    assert_eq!(instant(&e, "limitk(2, m)", 0).len(), 2);
    assert_eq!(one(&e, "count(limit_ratio(0.5, m) or limit_ratio(-0.5, m))", 0), 3.0);
    assert!(instant(&e, "limit_ratio(0.5, m) and limit_ratio(-0.5, m)", 0).is_empty());
    assert_eq!(err(&e, "limitk(NaN, m)", 0).to_string(), "Parameter value is NaN");
}

#[test]
fn range_functions_over_many_series_match_serial_results() {
    // 200 series × 601 steps crosses the parallel threshold of range functions.
    let load: String = (0..200).map(|i| format!("c{{i=\"{i}\"}} 0+{}x700\n", 60 * (i % 7 + 1))).collect();
    let e = engine(&load);
    let r = range(&e, "rate(c[5m])", 10 * MIN, 610 * MIN, MIN);
    assert_eq!(r.len(), 200);
    for (labels, points) in &r {
        let i: i64 = labels.split('"').nth(1).unwrap().parse().unwrap();
        assert_eq!(points.len(), 601, "{labels}");
        assert!(points.iter().all(|&(_, v)| close(v, (i % 7 + 1) as f64)), "{labels}: {points:?}");
    }
    // Canceled before the work starts: the workers stop and the query reports it.
    let cancel = CancelToken::new();
    cancel.cancel();
    let opts = QueryOptions { timeout: None, cancel: Some(cancel), ..QueryOptions::default() };
    let t = TenantId::default_tenant();
    assert!(matches!(
        e.query_range_with(&t, "rate(c[5m])", 10 * MIN, 610 * MIN, MIN, &opts),
        Err(QueryError::Canceled(_))
    ));
}

#[test]
fn small_queries_run_inline_and_large_or_remote_ones_do_not() {
    let load: String = (0..100).map(|i| format!("m{{d=\"{i}\"}} 0+1x10\n")).collect();
    let e = engine(&load);
    let t = TenantId::default_tenant();
    let o = QueryOptions::default();
    for q in ["m{d=\"7\"}", "max_over_time(m{d=\"7\"}[5m]) * 2", "m{d=~\"1|2\"} + on(d) m{d=\"1\"}"] {
        let inline = e.try_query_instant_inline(&t, q, 5 * MIN, &o).expect("a few series run inline");
        assert_eq!(inline.unwrap(), e.query_instant_with(&t, q, 5 * MIN, &o).unwrap(), "{q}");
    }
    let range = e.try_query_range_inline(&t, "m{d=\"7\"}", (0, 10 * MIN, MIN), &o).expect("11 steps run inline");
    assert_eq!(range.unwrap(), e.query_range_with(&t, "m{d=\"7\"}", 0, 10 * MIN, MIN, &o).unwrap());
    assert!(e.try_query_instant_inline(&t, "sum(m)", 5 * MIN, &o).is_none(), "100 series exceed the budget");
    assert!(e.try_query_range_inline(&t, "m{d=\"7\"}", (0, 2000 * MIN, MIN), &o).is_none(), "2,001 steps");
    assert!(
        e.try_query_range_inline(&t, "m{d=\"7\"}[5m]", (0, MIN, MIN), &o).is_none(),
        "errors come from the full run"
    );
    let bad = e.try_query_instant_inline(&t, "m{", 0, &o).expect("a parse error is an answer");
    assert_eq!(bad.unwrap_err().error_type(), "bad_data");
    let samples_before = e.stats().of(&t).1;
    assert!(e.try_query_instant_inline(&t, "count(m)", 5 * MIN, &o).is_none());
    assert_eq!(e.stats().of(&t).1, samples_before, "an abandoned inline run counts nothing");
    // A store whose reads may block (object store, network) is never read inline.
    let store = MemStore::new();
    store.load(&t, MIN, "m{d=\"1\"} 1").unwrap();
    let remote = Engine::new(Arc::new(Counting { inner: store, handed: Default::default() }), QueryConfig::default());
    assert!(remote.try_query_instant_inline(&t, "m", 0, &o).is_none());
    assert_eq!(
        remote.query_instant_with(&t, "m", 0, &o).unwrap().value,
        Value::Vector(vec![crate::value::InstantSample {
            labels: strata_schemas::Labels::from_pairs([("__name__", "m"), ("d", "1")]),
            t: 0,
            v: 1.0
        }])
    );
}

/// A store that streams and counts what it handed over.
#[derive(Debug)]
struct Counting {
    inner: MemStore,
    handed: std::sync::atomic::AtomicUsize,
}

impl strata_schemas::ReadStore for Counting {
    fn select(
        &self,
        t: &TenantId,
        m: &[strata_schemas::Matcher],
        r: strata_schemas::TimeRange,
    ) -> Result<Vec<strata_schemas::SeriesData>, strata_schemas::ReadError> {
        self.inner.select(t, m, r)
    }

    fn select_each(
        &self,
        t: &TenantId,
        m: &[strata_schemas::Matcher],
        r: strata_schemas::TimeRange,
        each: &mut dyn FnMut(strata_schemas::SeriesData) -> Result<(), strata_schemas::ReadError>,
    ) -> Result<(), strata_schemas::ReadError> {
        for s in self.inner.select(t, m, r)? {
            self.handed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            each(s)?;
        }
        Ok(())
    }

    fn series(
        &self,
        t: &TenantId,
        m: &[strata_schemas::Matcher],
        r: strata_schemas::TimeRange,
    ) -> Result<Vec<strata_schemas::Labels>, strata_schemas::ReadError> {
        self.inner.series(t, m, r)
    }
}

#[test]
fn instant_selectors_stream_and_stop_reading_at_the_series_limit() {
    let store = MemStore::new();
    let load: String = (0..10).map(|i| format!("m{{i=\"{i}\"}} 1 2 3\n")).collect();
    store.load(&TenantId::default_tenant(), MIN, &load).unwrap();
    let counting = Arc::new(Counting { inner: store, handed: Default::default() });
    let config = QueryConfig { max_series: 3, ..QueryConfig::default() };
    let e = Engine::new(Arc::clone(&counting) as Arc<dyn strata_schemas::ReadStore>, config);
    let msg = err(&e, "sum(m)", 2 * MIN).to_string();
    assert!(msg.contains("maximum number of series"), "{msg}");
    assert_eq!(counting.handed.load(std::sync::atomic::Ordering::Relaxed), 4, "the read stopped at the 4th series");
    let e = Engine::new(Arc::clone(&counting) as Arc<dyn strata_schemas::ReadStore>, QueryConfig::default());
    assert_eq!(one(&e, "sum(m)", 2 * MIN), 30.0);
}

#[test]
fn range_functions_stream_their_selector_and_stop_at_the_sample_limit() {
    let store = MemStore::new();
    let load: String = (0..10).map(|i| format!("m{{i=\"{i}\"}} 1 2 3\n")).collect();
    store.load(&TenantId::default_tenant(), MIN, &load).unwrap();
    let counting = Arc::new(Counting { inner: store, handed: Default::default() });
    let config = QueryConfig { max_samples: 7, ..QueryConfig::default() };
    let e = Engine::new(Arc::clone(&counting) as Arc<dyn strata_schemas::ReadStore>, config);
    assert!(matches!(err(&e, "sum(max_over_time(m[5m]))", 2 * MIN), QueryError::TooManySamples(_)));
    assert_eq!(counting.handed.load(std::sync::atomic::Ordering::Relaxed), 3, "3 samples a series: stopped at the 3rd");
    let e = Engine::new(Arc::clone(&counting) as Arc<dyn strata_schemas::ReadStore>, QueryConfig::default());
    assert_eq!(one(&e, "sum(max_over_time(m[5m]))", 2 * MIN), 30.0);
    assert_eq!(one(&e, "count(count_over_time(m[5m]))", 2 * MIN), 10.0);
}

/// `n` series `m{i="…"}` with one sample each at minute 0.
fn sparse_engine(n: usize, config: QueryConfig) -> Engine {
    let load: String = (0..n).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
    engine_with(&load, config)
}

#[test]
fn subquery_steps_are_refused_before_they_are_built() {
    // 315 million steps: refused at once, nothing allocated (the old engine built them all, 6+ GB).
    let e = engine("m 1");
    assert!(matches!(err(&e, "count_over_time(vector(1)[10y:1s])", MIN), QueryError::TooManySamples(_)));
    // 31.5 million steps under a 100,000-sample limit: refused before the first grid too.
    let e = engine_with("m 1", QueryConfig { max_samples: 100_000, ..QueryConfig::default() });
    assert!(matches!(err(&e, "count_over_time(vector(1)[1y:1s])", MIN), QueryError::TooManySamples(_)));
    assert!(matches!(err(&e, "count_over_time(m[1y:1s])", MIN), QueryError::TooManySamples(_)));
    assert_eq!(one(&e, "count_over_time(vector(1)[1h:1s])", MIN), 3600.0, "3,600 steps fit");
}

#[test]
fn a_range_query_charges_every_step_of_every_series_it_keeps() {
    // 100 series with one sample each over 1,001 steps: 100 samples and 100
    // points with values, but 100,100 points held (the grid).
    let config = QueryConfig { max_samples: 50_000, ..QueryConfig::default() };
    let e = sparse_engine(100, config.clone());
    let t = TenantId::default_tenant();
    let range = |q: &str| e.query_range(&t, q, 0, 1000 * MIN, MIN);
    for q in ["m", "last_over_time(m[5m])", "m * 2", "label_replace(m, \"j\", \"$1\", \"i\", \"(.*)\")"] {
        assert!(matches!(range(q), Err(QueryError::TooManySamples(_))), "{q}");
    }
    let e = sparse_engine(40, config);
    let t = TenantId::default_tenant();
    assert!(e.query_range(&t, "m", 0, 1000 * MIN, MIN).is_ok(), "40 × 1,001 points fit");
}

#[test]
fn count_values_charges_each_new_series_before_building_it() {
    // 1,001 distinct values over 1,001 steps: up to a million points.
    let e = engine_with("m 0+1x1000", QueryConfig { max_samples: 100_000, ..QueryConfig::default() });
    let t = TenantId::default_tenant();
    let r = e.query_range(&t, "count_values(\"v\", m)", 0, 1000 * MIN, MIN);
    assert!(matches!(r, Err(QueryError::TooManySamples(_))), "{r:?}");
}

#[test]
fn label_functions_stop_at_max_query_bytes() {
    let config = QueryConfig { max_bytes: 10_000, ..QueryConfig::default() };
    let e = sparse_engine(100, config);
    // 100 series × 100 bytes fits; × 200 bytes does not.
    let ok = format!("count(label_replace(m, \"x\", \"{}\", \"i\", \"(.*)\"))", "a".repeat(90));
    assert_eq!(one(&e, &ok, MIN), 100.0);
    let big = format!("label_replace(m, \"x\", \"{}\", \"i\", \"(.*)\")", "a".repeat(200));
    let msg = err(&e, &big, MIN).to_string();
    assert!(msg.contains("max_query_bytes") && msg.contains("10000 bytes"), "{msg}");
    // `$1` references are bounded before they are expanded.
    let refs = format!("label_replace(m, \"x\", \"{}\", \"i\", \"(.*)\")", "$1".repeat(20_000));
    assert!(err(&e, &refs, MIN).to_string().contains("max_query_bytes"));
    let join = format!("label_join(m, \"x\", \"{}\", \"i\", \"i\")", "-".repeat(200));
    assert!(err(&e, &join, MIN).to_string().contains("max_query_bytes"));
    assert_eq!(err(&e, &join, MIN).error_type(), "execution");
}

#[test]
fn too_long_or_too_deep_queries_are_bad_data() {
    let e = engine_with("m 1", QueryConfig { max_query_length: 100, ..QueryConfig::default() });
    let t = TenantId::default_tenant();
    let long = err(&e, &format!("m{{a=\"{}\"}}", "x".repeat(100)), MIN);
    assert_eq!(long.error_type(), "bad_data");
    assert!(long.to_string().contains("query.max_query_length"), "{long}");
    let deep = vec!["1"; 3000].join("+");
    let e = engine("m 1");
    for r in [e.query_instant(&t, &deep, MIN), e.query_range(&t, &deep, 0, MIN, MIN)] {
        let e = r.expect_err("too deep");
        assert_eq!(e.error_type(), "bad_data");
        assert!(e.to_string().contains("nested too deeply"), "{e}");
    }
}

/// Sorted `(labels, value)` of an instant query, for results whose order is unspecified.
fn sorted(e: &Engine, q: &str, t: i64) -> Vec<(String, f64)> {
    let mut v = instant(e, q, t);
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn binop_with_an_empty_side_matches_nothing_before_any_cardinality_check() {
    // Prometheus `VectorBinop`: `if len(lhs) == 0 || len(rhs) == 0 { return nil }` ("Short-circuit:
    // nothing is going to match") comes before the duplicate-series check of the one side.
    let e = engine("a{i=\"1\",g=\"x\"} _x6 1\nb{i=\"1\",g=\"x\"} 1x6\nb{i=\"2\",g=\"x\"} 2x6");
    assert!(instant(&e, "a{i=\"nope\"} + on(g) b", 6 * MIN).is_empty());
    assert!(instant(&e, "b * on(g) group_right a{i=\"nope\"}", 6 * MIN).is_empty());
    assert!(instant(&e, "b == on(g) a{i=\"nope\"}", 6 * MIN).is_empty());
    // Per step: `a` is absent before 6m, so those steps short-circuit; at 6m `b` has two series
    // in the match group and it is an error.
    assert!(range(&e, "a + on(g) b", 0, 5 * MIN, MIN).is_empty());
    let msg = err(&e, "a + on(g) b", 6 * MIN).to_string();
    assert!(msg.starts_with("found duplicate series for the match group {g=\"x\"} on the right hand-side"), "{msg}");
    let r = e.query_range(&TenantId::default_tenant(), "a + on(g) b", 0, 6 * MIN, MIN);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn filter_binop_checks_cardinality_before_filtering() {
    // Prometheus >= 3.9 (commit 4cad87ca, "Fix insufficient cardinality checking for filter ops";
    // operators.test `many_side > on(job) one_side`): the matching checks of `VectorBinop` run for
    // every matched pair, and only then `if !keep && !returnBool` drops the filtered ones. 2.42 and
    // 3.0-3.8 skipped filtered pairs first (`case !keep: continue`) and answered `{g="x"} 2` here.
    let e = engine("a{g=\"x\"} 1\nb{i=\"1\",g=\"x\"} 1\nb{i=\"2\",g=\"x\"} 2");
    for q in ["b > on(g) a", "b >= on(g) a", "b < on(g) a", "b > bool on(g) a"] {
        let msg = err(&e, q, 0).to_string();
        assert!(msg.contains("many-to-one matching must be explicit"), "{q}: {msg}");
    }
    assert_eq!(instant(&e, "b > on(g) group_left a", 0), vec![("b{g=\"x\", i=\"2\"}".into(), 2.0)]);
    // Many-to-one: two many-side series whose result label sets collide (`group_left(x)` copies the
    // one side's `x` over theirs) are an error even when the filter keeps only one of them.
    let e = engine("m{i=\"1\",x=\"a\"} 1\nm{i=\"1\",x=\"b\"} 5\no{i=\"1\",x=\"c\"} 3");
    for q in ["m > on(i) group_left(x) o", "m < on(i) group_left(x) o", "m > bool on(i) group_left(x) o"] {
        let msg = err(&e, q, 0).to_string();
        assert!(msg.contains("grouping labels must ensure unique matches"), "{q}: {msg}");
    }
    // Without the collision the filter works as before, and filtered series leave no trace.
    assert_eq!(instant(&e, "m > on(i) group_left o", 0), vec![("m{i=\"1\", x=\"b\"}".into(), 5.0)]);
    assert_eq!(one(&e, "count(m > on(i) group_left o)", 0), 1.0);
    let r = range(&e, "m > on(i) group_left o", 0, 2 * MIN, MIN);
    assert_eq!(r, vec![("m{i=\"1\", x=\"b\"}".into(), vec![(0, 5.0), (MIN, 5.0), (2 * MIN, 5.0)])]);
}

#[test]
fn count_values_groups_after_setting_the_value_label() {
    // Prometheus `aggregationCountValues`: `lb.Set(valueLabel, value)` first, then
    // `generateGroupingKey` / `generateGroupingLabels` of the relabelled series, with the value
    // label added to a `by` list.
    let e = engine("m{val=\"17\",k=\"a\"} 1\nm{val=\"20\",k=\"a\"} 1\nm{val=\"23\",k=\"b\"} 2");
    let q = |q: &str| sorted(&e, q, 0);
    assert_eq!(
        q("count_values without () (\"val\", m)"),
        vec![("{k=\"a\", val=\"1\"}".into(), 2.0), ("{k=\"b\", val=\"2\"}".into(), 1.0)]
    );
    assert_eq!(
        q("count_values without (k) (\"val\", m)"),
        vec![("{val=\"1\"}".into(), 2.0), ("{val=\"2\"}".into(), 1.0)]
    );
    assert_eq!(q("count_values (\"val\", m)"), vec![("{val=\"1\"}".into(), 2.0), ("{val=\"2\"}".into(), 1.0)]);
    assert_eq!(q("count_values by (val) (\"val\", m)"), vec![("{val=\"1\"}".into(), 2.0), ("{val=\"2\"}".into(), 1.0)]);
    assert_eq!(
        q("count_values by (k, val) (\"val\", m)"),
        vec![("{k=\"a\", val=\"1\"}".into(), 2.0), ("{k=\"b\", val=\"2\"}".into(), 1.0)]
    );
    // `without` the value label: grouped without it, and the result has none.
    assert_eq!(
        q("count_values without (val) (\"val\", m)"),
        vec![("{k=\"a\"}".into(), 2.0), ("{k=\"b\"}".into(), 1.0)]
    );
    assert_eq!(q("count_values without (val, k) (\"val\", m)"), vec![("{}".into(), 3.0)]);
    // A different value label leaves `val` as an ordinary grouping label.
    assert_eq!(q("count_values without () (\"v\", m)").len(), 3);
    // Range query: the relabelled groups are per step.
    let e = engine("m{val=\"1\"} 1 1\nm{val=\"2\"} 1 2");
    let mut r = range(&e, "count_values without () (\"val\", m)", 0, MIN, MIN);
    r.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(r, vec![("{val=\"1\"}".into(), vec![(0, 2.0), (MIN, 1.0)]), ("{val=\"2\"}".into(), vec![(MIN, 1.0)])]);
}

#[test]
fn absent_labels_follow_matcher_order() {
    // Prometheus `createLabelsForAbsentFunction`: matchers in order; the first `=` of a label sets
    // it (the `has` map), any other matcher of that label deletes it.
    let e = engine("present{zone=\"z1\"} 1");
    let q = |q: &str| instant(&e, q, 0);
    assert_eq!(q("absent(nosuch{zone!=\"z2\",zone=\"z2\"})"), vec![("{zone=\"z2\"}".into(), 1.0)]);
    assert_eq!(q("absent(nosuch{zone=\"z2\",zone!=\"z2\"})"), vec![("{}".into(), 1.0)]);
    assert_eq!(q("absent(nosuch{zone=~\".*\",zone=\"z2\"})"), vec![("{zone=\"z2\"}".into(), 1.0)]);
    assert_eq!(q("absent(nosuch{job=\"a\",job=\"b\",foo=\"bar\"})"), vec![("{foo=\"bar\"}".into(), 1.0)]);
    // "arguably wrong", but Prometheus's answer: a repeated equal matcher deletes the label.
    assert_eq!(q("absent(nosuch{job=\"a\",job=\"a\"})"), vec![("{}".into(), 1.0)]);
    assert_eq!(q("absent(nosuch{job=\"a\",zone=\"z1\",zone=\"z2\",zone=\"z3\"})"), vec![("{job=\"a\"}".into(), 1.0)]);
    assert_eq!(q("absent_over_time(nosuch{zone!~\"z1\",zone=\"z2\"}[1m])"), vec![("{zone=\"z2\"}".into(), 1.0)]);
}

#[test]
fn fleet_queries_skip_the_inline_attempt() {
    let load: String = (0..10).map(|i| format!("m{{d=\"{i}\"}} 0+1x10\n")).collect();
    let e = engine(&load);
    let t = TenantId::default_tenant();
    let o = QueryOptions::default();
    // 10 series would fit the inline budget, but no selector names a label
    // value: the caller runs them on a blocking thread, with the same answer.
    for q in ["sum(m)", "count by (d) (m)", "m{d!=\"3\"}", "topk(2, max_over_time(m[5m]))", "m + on(d) m{d=\"1\"}"] {
        assert!(e.try_query_instant_inline(&t, q, 5 * MIN, &o).is_none(), "{q}");
        assert!(e.try_query_range_inline(&t, q, (0, 5 * MIN, MIN), &o).is_none(), "{q}");
        assert!(e.query_instant_with(&t, q, 5 * MIN, &o).is_ok(), "{q}");
    }
    for q in [
        "m{d=\"3\"}",
        "sum(m{d=~\"1|2\"})",
        "absent(m{d=\"x\"})",
        "time()",
        "label_replace(m{d=\"1\"}, \"a\", \"$1\", \"d\", \"(.*)\")",
    ] {
        assert!(e.try_query_instant_inline(&t, q, 5 * MIN, &o).is_some(), "{q}");
    }
}

/// Everything a query answers, values as bits (NaN and -0 included), for
/// bit-for-bit comparisons.
fn exact(r: crate::Result<crate::value::QueryResult>) -> String {
    match r {
        Err(e) => format!("error: {e}"),
        Ok(r) => {
            let rows: Vec<String> = match r.value {
                Value::Vector(v) => v.into_iter().map(|s| format!("{} {:x}", s.labels, s.v.to_bits())).collect(),
                Value::Matrix(m) => m
                    .into_iter()
                    .map(|s| {
                        let pts: Vec<String> =
                            s.samples.iter().map(|p| format!("{}:{:x}", p.ts, p.value.to_bits())).collect();
                        format!("{} {}", s.labels, pts.join(","))
                    })
                    .collect(),
                other => vec![format!("{other:?}")],
            };
            // Annotations without their position: the two spellings compared put the selector elsewhere.
            let unplaced = |v: Vec<String>| -> Vec<String> {
                v.into_iter().map(|m| m.rsplit_once(" (").map_or(m.clone(), |(text, _)| text.to_string())).collect()
            };
            format!("{rows:?} warnings {:?} infos {:?}", unplaced(r.warnings), unplaced(r.infos))
        }
    }
}

/// An aggregation over a range function over a selector naming its metric
/// folds each series into its group as storage streams it; the same query
/// with the name as a regex (`{__name__=~"m"}`, same series) takes the
/// general path (every series' output built, then aggregated). Both must
/// answer the same, bit for bit, with the same annotations and errors.
#[test]
fn aggregations_over_streamed_range_functions_equal_the_general_path() {
    let store = MemStore::new();
    let tenant = TenantId::default_tenant();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..150 {
        let labels = strata_schemas::Labels::from_pairs([
            ("__name__", "m"),
            ("g", &format!("g{}", i % 7)),
            ("h", &format!("h{}", i % 3)),
            ("i", &format!("{i:03}")),
        ]);
        let mut v = 0.0f64;
        let samples: Vec<strata_schemas::Sample> = (0..45)
            .filter_map(|t| {
                let r = next();
                // Gaps, counter resets, a few NaNs and fractional values that round differently by order.
                v = if r % 23 == 0 { 0.0 } else { v + (r % 1000) as f64 / 7.0 };
                let value = match r % 211 {
                    0 | 1 => f64::NAN,
                    2 => 1e308,
                    3 => f64::INFINITY,
                    _ => v + 1.0 / 3.0,
                };
                (r % 11 != 0).then(|| strata_schemas::Sample::new(t * 20_000 + (r % 5000) as i64, value))
            })
            .collect();
        store.add(&tenant, labels, &samples);
    }
    // Another metric the regex must not match either.
    store.add(
        &tenant,
        strata_schemas::Labels::from_pairs([("__name__", "other"), ("g", "g1")]),
        &[strata_schemas::Sample::new(60_000, 5.0)],
    );
    let e = Engine::new(Arc::new(store), QueryConfig::default());
    let small = Engine::new(Arc::clone(e.store()), QueryConfig { max_samples: 2_000, ..QueryConfig::default() });
    let aggs = [
        "sum",
        "avg",
        "count",
        "min",
        "max",
        "group",
        "stddev",
        "stdvar",
        "quantile(0.9,",
        "quantile(0.25,",
        "topk(3,",
        "bottomk(2,",
    ];
    // `by (i)`, `without (g, h)`: a group per series (no accumulators kept, see `GroupRows`).
    let mods = ["", " by (g)", " by (g, h)", " without (i)", " without (i, g)", " by (i)", " without (g, h)"];
    let fns = [
        "avg_over_time",
        "sum_over_time",
        "max_over_time",
        "min_over_time",
        "last_over_time",
        "count_over_time",
        "rate",
        "increase",
        "delta",
        "stddev_over_time",
        "quantile_over_time(0.5,",
    ];
    let mut checked = 0;
    for agg in aggs {
        for m in mods {
            for f in fns {
                let (open, fopen) = (
                    if agg.ends_with(',') { format!("{agg} ") } else { format!("{agg}{m}(") },
                    if f.ends_with(',') { format!("{f} ") } else { format!("{f}(") },
                );
                let (a, b) = (format!("{open}{fopen}m[3m]))"), format!("{open}{fopen}{{__name__=~\"m\"}}[3m]))"));
                // `topk(3, f(m[3m])) by (g)`: the modifier after the arguments.
                let (a, b) = if agg.ends_with(',') { (format!("{a}{m}"), format!("{b}{m}")) } else { (a, b) };
                for t in [7 * MIN, 14 * MIN + 1234] {
                    let want = exact(e.query_instant(&tenant, &b, t));
                    assert_eq!(exact(e.query_instant(&tenant, &a, t)), want, "{a} at {t}");
                }
                // Under a sample limit the range query fails the same way too.
                for eng in [&e, &small] {
                    let want = exact(eng.query_range(&tenant, &b, 2 * MIN, 15 * MIN, 30_000));
                    assert_eq!(exact(eng.query_range(&tenant, &a, 2 * MIN, 15 * MIN, 30_000)), want, "{a} range");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, aggs.len() * mods.len() * fns.len());
}

/// A store that counts which read each selector asked for.
#[derive(Debug, Default)]
struct Which {
    inner: MemStore,
    newest: std::sync::atomic::AtomicUsize,
    each: std::sync::atomic::AtomicUsize,
}

impl Which {
    /// (newest reads, full reads) since the last call.
    fn take(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.newest.swap(0, Relaxed), self.each.swap(0, Relaxed))
    }
}

impl strata_schemas::ReadStore for Which {
    fn select(
        &self,
        t: &TenantId,
        m: &[strata_schemas::Matcher],
        r: strata_schemas::TimeRange,
    ) -> Result<Vec<strata_schemas::SeriesData>, strata_schemas::ReadError> {
        self.each.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.select(t, m, r)
    }

    fn select_newest(
        &self,
        t: &TenantId,
        m: &[strata_schemas::Matcher],
        r: strata_schemas::TimeRange,
        each: &mut dyn FnMut(strata_schemas::SeriesData) -> Result<(), strata_schemas::ReadError>,
    ) -> Result<(), strata_schemas::ReadError> {
        self.newest.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for s in self.inner.select(t, m, r)? {
            each(strata_schemas::read::keep_newest(s))?;
        }
        Ok(())
    }

    fn series(
        &self,
        t: &TenantId,
        m: &[strata_schemas::Matcher],
        r: strata_schemas::TimeRange,
    ) -> Result<Vec<strata_schemas::Labels>, strata_schemas::ReadError> {
        self.inner.series(t, m, r)
    }
}

#[test]
fn instant_selectors_at_one_time_read_only_the_newest_sample() {
    let store = Which::default();
    let load = "m{i=\"a\"} 1 2 3 4\nm{i=\"b\"} 10 20 30 40\nm{i=\"s\"} 5 6 stale\nn 7 _ _ _";
    store.inner.load(&TenantId::default_tenant(), MIN, load).unwrap();
    let store = Arc::new(store);
    let e = Engine::new(Arc::clone(&store) as Arc<dyn strata_schemas::ReadStore>, QueryConfig::default());
    let t = TenantId::default_tenant();
    // Instant queries: aggregations, binary operations, offset, staleness, lookback.
    assert_eq!(one(&e, "sum(m)", 3 * MIN), 44.0, "the stale series is left out");
    assert_eq!(one(&e, "sum(m)", 2 * MIN), 33.0, "3 + 30, the marker hides the third");
    assert_eq!(store.take(), (2, 0));
    assert_eq!(instant(&e, "m - m offset 1m", 3 * MIN), vec![("{i=\"a\"}".into(), 1.0), ("{i=\"b\"}".into(), 10.0)]);
    assert_eq!(store.take(), (2, 0));
    assert_eq!(one(&e, "m{i=\"s\"}", MIN), 6.0);
    assert!(instant(&e, "m{i=\"s\"}", 2 * MIN).is_empty(), "the newest sample is the marker");
    assert_eq!(one(&e, "n", 5 * MIN - 1), 7.0, "within the lookback");
    assert!(instant(&e, "n", 5 * MIN).is_empty(), "older than the lookback");
    assert_eq!(one(&e, "timestamp(n)", 4 * MIN), 0.0);
    assert_eq!(store.take(), (5, 0));
    // `@` pins every step of a range query to one time: newest too.
    let r = e.query_range(&t, "sum(m @ 120)", 0, 3 * MIN, MIN).unwrap();
    match r.value {
        Value::Matrix(m) => assert_eq!(m[0].samples.iter().map(|p| p.value).collect::<Vec<_>>(), vec![33.0; 4]),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.take(), (1, 0));
    // A range query without `@`, and range selectors, read every sample.
    let r = e.query_range(&t, "sum(m)", 0, 3 * MIN, MIN).unwrap();
    match r.value {
        Value::Matrix(m) => {
            assert_eq!(m[0].samples.iter().map(|p| p.value).collect::<Vec<_>>(), vec![16.0, 28.0, 33.0, 44.0])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(one(&e, "sum(max_over_time(m[5m]))", 3 * MIN), 50.0);
    assert_eq!(store.take(), (0, 2));
}

/// `by (one label)` finds a series' group by the address of its value
/// string when a store hands out shared strings (the hot store's interned
/// symbols), and by the text otherwise: series whose values are equal text
/// in separate strings, interleaved with shared ones, land in one group.
#[test]
fn grouping_by_one_label_joins_shared_and_separate_value_strings() {
    use strata_schemas::{Label, Labels, Sample, Str};
    let store = MemStore::new();
    let tenant = TenantId::default_tenant();
    let shared: Vec<Str> = (0..3).map(|g| Str::from(format!("g{g}"))).collect();
    for i in 0..60usize {
        let g = i % 3;
        let value = if i % 2 == 0 { shared[g].clone() } else { Str::from(format!("g{g}")) };
        let labels =
            Labels::new(vec![Label::new("__name__", "m"), Label::new("g", value), Label::new("i", format!("{i:02}"))]);
        store.add(&tenant, labels, &[Sample::new(0, i as f64)]);
    }
    // And one series without the label: its own group, without `g`.
    store.add(&tenant, Labels::from_pairs([("__name__", "m"), ("i", "99")]), &[Sample::new(0, 1000.0)]);
    let e = Engine::new(Arc::new(store), QueryConfig::default());
    let sums = |g: usize| (0..60).filter(|i| i % 3 == g).sum::<usize>() as f64;
    let want = |per: &dyn Fn(usize) -> f64, none: f64| {
        let mut v: Vec<(String, f64)> = (0..3).map(|g| (format!("{{g=\"g{g}\"}}"), per(g))).collect();
        v.push(("{}".to_string(), none));
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    for t in [0, MIN] {
        assert_eq!(sorted(&e, "count by (g) (m)", t), want(&|_| 20.0, 1.0));
        assert_eq!(sorted(&e, "sum by (g) (m)", t), want(&sums, 1000.0));
        assert_eq!(sorted(&e, "max by (g) (last_over_time(m[5m]))", t), want(&|g| (57 + g) as f64, 1000.0));
    }
    assert_eq!(one(&e, "count(m)", MIN), 61.0);
}

#[test]
fn a_range_function_fails_on_equal_label_sets_anywhere_in_the_range() {
    // Two metrics with the same other labels, never at the same step: after
    // max_over_time drops the names, Prometheus's check over the whole output
    // (`mat.ContainsSameLabelset()`) fails, unlike the per-step merge behind
    // other functions (found by the differential driver as
    // `bottomk (1, predict_linear({__name__=~"dg_.*",zone="z2"}[90s], 3600))`).
    let load = "a{x=\"1\"} 1 2 _ _ _ _ _ _ _ _\nb{x=\"1\"} _ _ _ _ _ _ _ _ 5 6";
    let e = engine(load);
    let q = r#"max_over_time({x="1"}[90s])"#;
    let failed = e.query_range(&TenantId::default_tenant(), q, 0, 9 * MIN, MIN).expect_err(q);
    assert_eq!(failed.to_string(), "vector cannot contain metrics with the same labelset");
    // Each step alone has one of them.
    assert_eq!(instant(&e, q, MIN), vec![("{x=\"1\"}".to_owned(), 2.0)]);
    assert_eq!(instant(&e, q, 9 * MIN), vec![("{x=\"1\"}".to_owned(), 6.0)]);
    // last_over_time keeps the names: two series.
    assert_eq!(range(&e, r#"last_over_time({x="1"}[90s])"#, 0, 9 * MIN, MIN).len(), 2);
    // Unary minus merges them (Prometheus's mergeSeriesWithSameLabelset): never both within the lookback.
    assert_eq!(range(&e, r#"-{x="1"}"#, 0, 9 * MIN, MIN).len(), 1);
    // With delayed name removal the names stay until the end, where equal label sets merge per step.
    let delayed = engine_with(load, QueryConfig { delayed_name_removal: true, ..QueryConfig::default() });
    let got = range(&delayed, q, 0, 9 * MIN, MIN);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, vec![(0, 1.0), (MIN, 2.0), (2 * MIN, 2.0), (8 * MIN, 5.0), (9 * MIN, 6.0)]);
}
