//! Federation tests: what a data region accepts, the combine arithmetic,
//! and a differential test of federated queries against one engine over
//! the union of the data.

use super::*;
use crate::engine::federate::{avg_of, chan_variance};
use crate::test_util::MemStore;
use crate::value::Value;
use crate::{Engine, QueryConfig, QueryError, QueryOptions, QueryResult};
use parking_lot::Mutex;
use proptest::prelude::*;
use std::sync::Arc;
use strata_schemas::{ReadError, Sample, SeriesData};

// ---------------------------------------------------------------- check_pushable

#[test]
fn pushable_accepts_series_local_aggregations() {
    for q in [
        "sum(x)",
        "(sum by (farm) (x))",
        "sum without (device) (rate(x[5m]))",
        "count(x{a=~\"b.*\"} offset 5m)",
        "min(x @ 100)",
        "max by (farm) (max_over_time(x[10m] @ end()))",
        "avg(avg_over_time(x[5m] offset 1m))",
        "group by (farm) (x)",
        "topk(3, rate(x[5m]))",
        "bottomk by (farm) (2, x)",
        "topk(1 + 1, x)",
        "stddev(irate(x[1m]))",
        "stdvar(x * 2)",
        "count_values(\"v\", round(x))",
        "sum(quantile_over_time(0.9, x[5m]))",
        "sum(predict_linear(x[10m], 3600))",
        "sum(-x)",
        "sum(2 - x)",
        "sum(x > bool 3)",
        "count(x >= (2 * 3))",
        "sum(abs(ceil(floor(x))))",
        "sum(clamp(x, -1, 1))",
        "sum(clamp_min(x, 0))",
        "sum(exp(ln(log2(log10(sqrt(sgn(x)))))))",
        "max(timestamp(x))",
        "sum(label_replace(x, \"d\", \"$1\", \"device\", \"(.*)\"))",
        "sum(label_join(x, \"fd\", \"-\", \"farm\", \"device\"))",
        "sum(hour(x))",
        "sum(changes(x[5m]))",
        "sum(resets(x[5m]) * 0)",
        "sum(deriv(x[5m]))",
        "sum(increase(x[1h]))",
        "sum(delta(x[5m]))",
        "sum(idelta(x[5m]))",
        "sum(last_over_time(x[5m]))",
        "sum(present_over_time(x[5m]))",
    ] {
        if let Err(e) = check_pushable(q) {
            panic!("{q} should be pushable: {e}");
        }
    }
}

#[test]
fn pushable_refuses_everything_else() {
    for q in [
        "x",
        "rate(x[5m])",
        "sum(x) + 1",
        "quantile(0.9, x)",
        "limitk(2, x)",
        "limit_ratio(0.5, x)",
        "sum(sum by (farm) (x))",
        "sum(x * y)",
        "sum(x and y)",
        "sum(x or y)",
        "sum(x unless y)",
        "sum(rate(x[5m:1m]))",
        "sum(max_over_time(rate(x[5m])[1h:1m]))",
        "sum(histogram_quantile(0.9, x))",
        "sum(absent(x))",
        "sum(absent_over_time(x[5m]))",
        "sum(vector(1))",
        "sum(scalar(x) * x)",
        "sum(sort(x))",
        "sum(x * time())",
        "topk(scalar(y), x)",
        "count_values(\"v\", sum(x))",
        "sum(hour())",
        "sum(x[5m])",
        "sum(1)",
        "not valid (",
        "sum(x) by (farm) > 2",
        "sum(round(x, scalar(y)))",
        "sum(label_replace(x, \"d\", \"$1\", \"device\", \"(.*)\") * on(farm) y)",
    ] {
        assert!(check_pushable(q).is_err(), "{q} should not be pushable");
    }
    let why = check_pushable("quantile(0.9, x)").unwrap_err();
    assert!(why.contains("quantile") && why.contains("sum, count"), "{why}");
    let why = check_pushable("sum(x * y)").unwrap_err();
    assert!(why.contains("two vectors"), "{why}");
}

#[test]
fn partial_texts_round_trip_and_are_pushable() {
    use crate::engine::federate::{check_agg, partials};
    for q in [
        "avg by (farm) (rate(x{a=\"b\\\"c\"}[5m] offset 1m))",
        "stddev without (device) (x @ start())",
        "topk by (farm) (2, x > 0.5)",
        "count_values(\"v\", round(x, 0.1))",
        "sum(label_replace(x, \"d\", \"$1-\\\\d\", \"device\", \"(.*)\"))",
        "min(x @ 1700000000.5)",
        "max(-x * 1e-7)",
    ] {
        let parsed = promql_parser::parser::parse(q).expect(q);
        let promql_parser::parser::Expr::Aggregate(agg) = &parsed else { panic!("{q}") };
        let split = check_agg(agg).expect(q);
        for p in partials(agg, split) {
            let text = p.to_string();
            check_pushable(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let back = promql_parser::parser::parse(&text).expect(&text);
            assert_eq!(back, promql_parser::parser::Expr::Aggregate(p), "{text}");
        }
    }
}

// ---------------------------------------------------------------- combine arithmetic

fn direct_variance(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64
}

fn part(v: &[f64]) -> [f64; 3] {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    [n, mean, direct_variance(v)]
}

#[test]
fn chan_merge_equals_direct_variance() {
    let a = [1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0];
    let b = [1e9 + 4.0, 1e9 + 5.0];
    let c = [1e9 - 7.0];
    let all: Vec<f64> = a.iter().chain(&b).chain(&c).copied().collect();
    let merged = chan_variance(&[part(&a), part(&b), part(&c)]);
    let direct = direct_variance(&all);
    assert!((merged - direct).abs() <= 1e-9 * direct.abs(), "{merged} vs {direct}");
    // Sum of squares over count minus the squared mean cancels catastrophically here.
    let naive = all.iter().map(|x| x * x).sum::<f64>() / all.len() as f64
        - (all.iter().sum::<f64>() / all.len() as f64).powi(2);
    assert!((naive - direct).abs() > 1e-3 * direct, "the test data should defeat sum of squares");
    assert_eq!(chan_variance(&[[1.0, 5.0, 0.0]]), 0.0);
    assert!(chan_variance(&[[1.0, f64::INFINITY, f64::NAN], [2.0, 1.0, 0.25]]).is_nan());
}

#[test]
fn avg_matches_prometheus_including_overflow_and_infinities() {
    assert_eq!(avg_of(&[[6.0, 3.0, 2.0], [4.0, 1.0, 4.0]]), 2.5);
    // The total sum overflows; the means do not.
    let big = f64::MAX / 2.0;
    let v = avg_of(&[[f64::MAX, 2.0, big], [f64::MAX, 2.0, big]]);
    assert!((v / big - 1.0).abs() < 1e-12, "{v}");
    assert_eq!(avg_of(&[[f64::INFINITY, 1.0, f64::INFINITY], [1.0, 1.0, 1.0]]), f64::INFINITY);
    assert!(avg_of(&[[f64::INFINITY, 1.0, f64::INFINITY], [f64::NEG_INFINITY, 1.0, f64::NEG_INFINITY]]).is_nan());
    assert!(avg_of(&[[f64::NAN, 1.0, f64::NAN], [1.0, 1.0, 1.0]]).is_nan());
}

// ---------------------------------------------------------------- a federated test world

fn tenant() -> TenantId {
    TenantId::new("acme").expect("tenant")
}

/// Several stores read as one: series of the same labels merged, one
/// sample per timestamp (the first store's).
#[derive(Debug)]
struct Union(Vec<Arc<MemStore>>);

impl ReadStore for Union {
    fn reads_locally(&self, _: &TenantId, _: TimeRange) -> bool {
        true
    }

    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        let mut all: Vec<SeriesData> = Vec::new();
        for s in &self.0 {
            for d in s.select(tenant, matchers, range)? {
                match all.iter_mut().find(|x| x.labels == d.labels) {
                    Some(x) => {
                        for p in d.samples {
                            if let Err(i) = x.samples.binary_search_by_key(&p.ts, |q| q.ts) {
                                x.samples.insert(i, p);
                            }
                        }
                    }
                    None => all.push(d),
                }
            }
        }
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(all)
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        Ok(self.select(tenant, matchers, range)?.into_iter().map(|s| s.labels).collect())
    }
}

/// How the test jurisdiction `eu` (aggregates only) behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Eu {
    Answers,
    Down,
    Refuses,
}

/// The world seen from a node in `us`: `us` local, `br`-raw store merged
/// in, `eu` aggregates only (a real engine over its store), `ch` excluded.
#[derive(Debug)]
struct World {
    raw: Arc<Union>,
    eu: Arc<Engine>,
    eu_store: Arc<MemStore>,
    eu_mode: Mutex<Eu>,
    excluded: Vec<String>,
    aggregates: Vec<String>,
    calls: Arc<Mutex<Vec<String>>>,
}

struct Fq {
    world: Arc<World>,
    aggregates: Vec<String>,
}

impl FederatedQuery for Fq {
    fn store(&self) -> &dyn ReadStore {
        self.world.raw.as_ref()
    }

    fn aggregate_jurisdictions(&self) -> &[String] {
        &self.aggregates
    }

    fn excluded_jurisdictions(&self) -> &[String] {
        &self.world.excluded
    }

    fn partials(
        &self,
        jurisdiction: &str,
        exprs: &[String],
        grid: Grid,
        _deadline: Instant,
    ) -> Result<Vec<Vec<PartialSeries>>, RemoteError> {
        if jurisdiction == "eu2" {
            return Err(RemoteError::Unreachable("region eu2-a: timeout".into()));
        }
        assert_eq!(jurisdiction, "eu");
        self.world.calls.lock().push(format!("partials {}", exprs.join(" ; ")));
        for e in exprs {
            check_pushable(e).map_err(RemoteError::Refused)?;
        }
        match *self.world.eu_mode.lock() {
            Eu::Down => return Err(RemoteError::Unreachable("region eu-west: connection refused".into())),
            Eu::Refuses => return Err(RemoteError::Refused("geo-fence: eu refuses tenant acme".into())),
            Eu::Answers => {}
        }
        self.world
            .eu
            .evaluate_partials(&tenant(), exprs, grid, &QueryOptions::default())
            .map_err(|e| RemoteError::Refused(e.to_string()))
    }

    fn count_series(
        &self,
        jurisdiction: &str,
        matchers: &[Matcher],
        range: TimeRange,
        _deadline: Instant,
    ) -> Result<u64, RemoteError> {
        if jurisdiction == "eu2" {
            return Err(RemoteError::Unreachable("region eu2-a: timeout".into()));
        }
        assert_eq!(jurisdiction, "eu");
        self.world.calls.lock().push("count".into());
        match *self.world.eu_mode.lock() {
            Eu::Down => Err(RemoteError::Unreachable("region eu-west: connection refused".into())),
            Eu::Refuses => Err(RemoteError::Refused("geo-fence: eu refuses tenant acme".into())),
            Eu::Answers => Ok(self.world.eu_store.series(&tenant(), matchers, range).map_or(0, |s| s.len() as u64)),
        }
    }

    fn warnings(&self) -> Vec<String> {
        vec!["region br-south answered late".into()]
    }
}

impl Federation for World {
    fn begin(
        &self,
        tenant: &TenantId,
        _query: &str,
        _partial_response: bool,
    ) -> Result<Option<Box<dyn FederatedQuery>>, String> {
        if tenant.as_str() == "blocked" {
            return Err(
                "geo-fence: tenant \"blocked\" may not be queried from region us-east (rule: residency eu)".into()
            );
        }
        Ok(Some(Box::new(Fq { world: Arc::new(self.clone_shallow()), aggregates: self.aggregates.clone() })))
    }
}

impl World {
    fn clone_shallow(&self) -> World {
        World {
            raw: Arc::clone(&self.raw),
            eu: Arc::clone(&self.eu),
            eu_store: Arc::clone(&self.eu_store),
            eu_mode: Mutex::new(*self.eu_mode.lock()),
            excluded: self.excluded.clone(),
            aggregates: self.aggregates.clone(),
            calls: Arc::clone(&self.calls),
        }
    }
}

/// `(oracle over all data, federated engine in us)` for series split into
/// `us` (local), `eu` (aggregates) and `br` (raw).
fn world(
    split: [&[(Labels, Vec<Sample>)]; 3],
    eu_mode: Eu,
    excluded: &[&str],
    config: QueryConfig,
) -> (Engine, Engine) {
    let (oracle, fed, _) = world_calls(split, eu_mode, excluded, config);
    (oracle, fed)
}

/// [`world`], and the log of the calls to `eu`.
#[allow(clippy::type_complexity)]
fn world_calls(
    split: [&[(Labels, Vec<Sample>)]; 3],
    eu_mode: Eu,
    excluded: &[&str],
    config: QueryConfig,
) -> (Engine, Engine, Arc<Mutex<Vec<String>>>) {
    let stores: Vec<Arc<MemStore>> = split
        .iter()
        .map(|series| {
            let s = MemStore::new();
            for (l, samples) in *series {
                s.add(&tenant(), l.clone(), samples);
            }
            Arc::new(s)
        })
        .collect();
    let all = Arc::new(Union(stores.clone()));
    let oracle = Engine::new(all, config.clone());
    let eu = Arc::new(Engine::new(Arc::clone(&stores[1]) as Arc<dyn ReadStore>, config.clone()));
    let w = World {
        raw: Arc::new(Union(vec![Arc::clone(&stores[0]), Arc::clone(&stores[2])])),
        eu,
        eu_store: Arc::clone(&stores[1]),
        eu_mode: Mutex::new(eu_mode),
        excluded: excluded.iter().map(|s| (*s).to_owned()).collect(),
        aggregates: vec!["eu".into()],
        calls: Arc::default(),
    };
    let calls = Arc::clone(&w.calls);
    let w = World { aggregates: AGGREGATES.with(|a| a.borrow().clone()), ..w };
    let fed = Engine::new(Arc::clone(&stores[0]) as Arc<dyn ReadStore>, config).with_federation(Arc::new(w));
    (oracle, fed, calls)
}

thread_local! {
    /// The aggregates-only jurisdictions of the worlds this thread builds.
    static AGGREGATES: std::cell::RefCell<Vec<String>> = std::cell::RefCell::new(vec!["eu".to_owned()]);
}

fn series(name: &str, farm: &str, device: &str, values: &[(i64, f64)]) -> (Labels, Vec<Sample>) {
    let labels = Labels::from_pairs([("__name__", name), ("farm", farm), ("device", device), ("region", "r1")]);
    (labels, values.iter().map(|&(t, v)| Sample::new(t * 1000, v)).collect())
}

fn fixed() -> [Vec<(Labels, Vec<Sample>)>; 3] {
    let ramp = |k: f64| (0..20).map(|i| (i * 30, k * i as f64)).collect::<Vec<_>>();
    [
        vec![
            series("x", "f1", "d1", &ramp(1.0)),
            series("x", "f2", "d2", &ramp(2.0)),
            series("y", "f1", "d1", &ramp(1.0)),
        ],
        vec![series("x", "f1", "d3", &ramp(3.0)), series("x", "f3", "d4", &ramp(4.0))],
        vec![series("x", "f2", "d5", &ramp(5.0))],
    ]
}

fn fixed_world(eu: Eu, excluded: &[&str]) -> (Engine, Engine) {
    let f = fixed();
    world([&f[0], &f[1], &f[2]], eu, excluded, QueryConfig::default())
}

fn run(e: &Engine, q: &str, t: i64, partial: bool) -> crate::Result<QueryResult> {
    let opts = QueryOptions { partial_response: partial, ..QueryOptions::default() };
    e.query_instant_with(&tenant(), q, t, &opts)
}

fn close(a: f64, b: f64) -> bool {
    if OVERFLOW_ANY_NON_FINITE.with(std::cell::Cell::get) && !a.is_finite() && !b.is_finite() {
        return true;
    }
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) + 1e-9
}

thread_local! {
    /// Set while comparing `stddev`/`stdvar`: where the variance overflows
    /// f64, one pass of Welford over the union ends in NaN, +Inf or even
    /// -Inf depending on the order of the values, and the Chan merge of
    /// partials in NaN or +Inf; both are non-finite, which is what is
    /// compared then (see `chan_variance`).
    static OVERFLOW_ANY_NON_FINITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The two values are the same: same series (labels), same timestamps, close values.
fn same(a: &Value, b: &Value) -> Result<(), String> {
    match (a, b) {
        (Value::Vector(x), Value::Vector(y)) => {
            let (mut x, mut y) = (x.clone(), y.clone());
            x.sort_by(|a, b| a.labels.cmp(&b.labels));
            y.sort_by(|a, b| a.labels.cmp(&b.labels));
            if x.len() != y.len() {
                return Err(format!("{} vs {} series:\n{x:?}\n{y:?}", x.len(), y.len()));
            }
            for (p, q) in x.iter().zip(&y) {
                if p.labels != q.labels || p.t != q.t || !close(p.v, q.v) {
                    return Err(format!("{p:?} vs {q:?}"));
                }
            }
            Ok(())
        }
        (Value::Matrix(x), Value::Matrix(y)) => {
            if x.len() != y.len() {
                return Err(format!("{} vs {} series:\n{x:?}\n{y:?}", x.len(), y.len()));
            }
            for (p, q) in x.iter().zip(y) {
                let ok = p.labels == q.labels
                    && p.samples.len() == q.samples.len()
                    && p.samples.iter().zip(&q.samples).all(|(s, r)| s.ts == r.ts && close(s.value, r.value));
                if !ok {
                    return Err(format!("{p:?}\nvs\n{q:?}"));
                }
            }
            Ok(())
        }
        _ => {
            if a == b {
                Ok(())
            } else {
                Err(format!("{a:?} vs {b:?}"))
            }
        }
    }
}

// ---------------------------------------------------------------- planner behaviour

#[test]
fn pushed_aggregations_equal_the_union() {
    let (oracle, fed) = fixed_world(Eu::Answers, &[]);
    for q in [
        "sum(x)",
        "sum by (farm) (rate(x[2m]))",
        "avg without (device) (x)",
        "stddev(x)",
        "topk(2, x)",
        "count_values(\"v\", x)",
        "quantile(0.5, sum by (farm) (x))",
        "sum(x) + count(x)",
        "max_over_time(sum by (farm) (x)[3m:30s])",
    ] {
        let a = run(&oracle, q, 300_000, true).expect(q);
        let b = run(&fed, q, 300_000, true).expect(q);
        same(&a.value, &b.value).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(b.warnings, vec!["region br-south answered late".to_owned()], "{q}");
    }
    for q in [
        "sum(x @ start())",
        "avg by (farm) (x @ end())",
        "max(x offset 1m)",
        "topk by (farm) (1, rate(x[2m]))",
        "stdvar without (device) (x)",
        "max_over_time(sum by (farm) (x)[2m:30s])",
    ] {
        let a = oracle.query_range(&tenant(), q, 60_000, 540_000, 45_000).expect(q);
        let b = fed.query_range(&tenant(), q, 60_000, 540_000, 45_000).expect(q);
        same(&a.value, &b.value).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    // The exact numbers of one: farms f1 = 1+3, f2 = 2+5, f3 = 4 (×10 at t=300).
    let r = run(&fed, "quantile(0.5, sum by (farm) (x))", 300_000, true).expect("quantile");
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].v, 40.0);
}

#[test]
fn raw_read_of_an_aggregates_jurisdiction_is_a_geo_fence_error() {
    let (_, fed) = fixed_world(Eu::Answers, &[]);
    for q in ["x", "rate(x[5m])", "quantile(0.9, x)", "sum(x) / x", "limitk(1, x)"] {
        let e = run(&fed, q, 300_000, true).expect_err(q);
        assert!(matches!(e, QueryError::GeoFence(_)), "{q}: {e:?}");
        assert_eq!((e.http_status(), e.error_type()), (422, "execution"));
        let msg = e.to_string();
        assert!(
            msg.contains("tenant \"acme\"") && msg.contains("jurisdiction eu") && msg.contains("region in eu"),
            "{msg}"
        );
    }
    // `y` lives only in us: a raw read is fine.
    let r = run(&fed, "y", 300_000, true).expect("y");
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v.len(), 1);
}

#[test]
fn unreachable_jurisdiction_is_a_warning_or_an_error() {
    let (_, fed) = fixed_world(Eu::Down, &[]);
    let r = run(&fed, "sum(x)", 300_000, true).expect("partial");
    assert!(r.warnings.iter().any(|w| w.contains("jurisdiction eu unreachable") && w.contains("missing")), "{r:?}");
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v[0].v, 10.0 * (1.0 + 2.0 + 5.0));
    let e = run(&fed, "sum(x)", 300_000, false).expect_err("not partial");
    assert!(matches!(e, QueryError::Unavailable(_)), "{e:?}");
    assert_eq!((e.http_status(), e.error_type()), (503, "unavailable"));
    // A raw read that cannot be checked is a warning too (its data is missing).
    let r = run(&fed, "y", 300_000, true).expect("y");
    assert!(r.warnings.iter().any(|w| w.contains("jurisdiction eu unreachable")));
    assert!(run(&fed, "y", 300_000, false).is_err());
}

#[test]
fn refusals_and_begin_errors_are_geo_fence_errors() {
    let (_, fed) = fixed_world(Eu::Refuses, &[]);
    let e = run(&fed, "sum(x)", 300_000, true).expect_err("refused");
    assert!(matches!(&e, QueryError::GeoFence(m) if m.contains("eu refuses")), "{e:?}");
    let blocked = TenantId::new("blocked").expect("tenant");
    let e = fed.query_instant(&blocked, "sum(x)", 0).expect_err("blocked");
    assert!(matches!(&e, QueryError::GeoFence(m) if m.contains("residency eu")), "{e:?}");
    assert_eq!(e.http_status(), 422);
    let e = fed.try_query_instant_inline(&blocked, "sum(x)", 0, &QueryOptions::default()).expect("answered");
    assert!(matches!(e, Err(QueryError::GeoFence(_))));
    // A federated query never runs inline.
    assert!(fed.try_query_instant_inline(&tenant(), "sum(x)", 0, &QueryOptions::default()).is_none());
    assert!(fed.try_query_range_inline(&tenant(), "sum(x)", (0, 60_000, 15_000), &QueryOptions::default()).is_none());
}

#[test]
fn excluded_jurisdiction_is_an_info_and_empty_answers_fail() {
    let (_, fed) = fixed_world(Eu::Answers, &["ch"]);
    let r = run(&fed, "sum(x)", 300_000, true).expect("sum");
    assert!(
        r.infos.iter().any(|i| i.contains("jurisdiction ch") && i.contains("not part of this result")),
        "{:?}",
        r.infos
    );
    let e = run(&fed, "sum(nothing_here)", 300_000, true).expect_err("empty");
    assert!(
        matches!(&e, QueryError::GeoFence(m) if m.contains("jurisdiction ch") && m.contains("policy keeps")),
        "{e:?}"
    );
    let r = fed.query_range(&tenant(), "sum(x)", 0, 600_000, 60_000).expect("range");
    assert!(!r.infos.is_empty());
    assert!(fed.query_range(&tenant(), "sum(nothing)", 0, 600_000, 60_000).is_err());
}

#[test]
fn evaluate_partials_refuses_what_is_not_pushable() {
    let (oracle, _) = fixed_world(Eu::Answers, &[]);
    let grid = Grid { start: 0, end: 60_000, step: 30_000, query_start: 0, query_end: 60_000 };
    let e = oracle.evaluate_partials(&tenant(), &["quantile(0.5, x)".into()], grid, &QueryOptions::default());
    assert!(matches!(e, Err(QueryError::BadData(_))), "{e:?}");
    let r = oracle
        .evaluate_partials(&tenant(), &["sum by (farm) (x)".into(), "count(y)".into()], grid, &QueryOptions::default())
        .expect("partials");
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].len(), 3);
    assert_eq!(r[1], vec![PartialSeries { labels: Labels::default(), points: vec![Some(1.0), Some(1.0), Some(1.0)] }]);
    let bad = Grid { step: 0, ..grid };
    assert!(oracle.evaluate_partials(&tenant(), &["sum(x)".into()], bad, &QueryOptions::default()).is_err());
}

#[test]
fn delayed_name_removal_keeps_partials_exact() {
    let f = fixed();
    let config = QueryConfig { delayed_name_removal: true, ..QueryConfig::default() };
    let (oracle, fed) = world([&f[0], &f[1], &f[2]], Eu::Answers, &[], config);
    for q in ["topk(2, rate(x[2m]))", "sum by (farm) (rate(x[2m]))", "sum(topk(2, x))", "avg without (device) (x * 2)"]
    {
        let a = run(&oracle, q, 300_000, true).expect(q);
        match run(&fed, q, 300_000, true) {
            Ok(b) => same(&a.value, &b.value).unwrap_or_else(|e| panic!("{q}: {e}")),
            // A topk below the root is not pushed under delayed name removal.
            Err(QueryError::GeoFence(_)) if q.starts_with("sum(topk") => {}
            Err(e) => panic!("{q}: {e}"),
        }
    }
}

// ---------------------------------------------------------------- differential property test

fn arb_series() -> impl Strategy<Value = Vec<(usize, Labels, Vec<Sample>)>> {
    let one = (
        0usize..3,
        0usize..3,
        0usize..2,
        prop::collection::btree_map(
            0i64..1200,
            prop_oneof![
                40 => -1000.0f64..1000.0,
                1 => Just(f64::NAN),
                1 => Just(f64::INFINITY),
                1 => Just(f64::NEG_INFINITY),
                1 => Just(1e308),
            ],
            1..25,
        ),
    );
    prop::collection::vec(one, 1..14).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (jur, farm, region, samples))| {
                let labels = Labels::from_pairs([
                    ("__name__", "x".to_owned()),
                    ("farm", format!("f{farm}")),
                    ("device", format!("d{i}")),
                    ("region", format!("r{region}")),
                ]);
                let samples = samples.into_iter().map(|(t, v)| Sample::new(t * 1000, v)).collect();
                (jur, labels, samples)
            })
            .collect()
    })
}

fn arb_query() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec![
        "sum",
        "count",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "count_values",
    ]);
    let grouping = prop::sample::select(vec![
        "",
        " by (farm)",
        " by (region)",
        " by (farm, region)",
        " without (device)",
        " without (device, region)",
        " without (farm)",
    ]);
    let inner = prop::sample::select(vec![
        "x",
        "rate(x[5m])",
        "avg_over_time(x[5m])",
        "max_over_time(x[3m])",
        "increase(x[5m])",
        "sum_over_time(x[4m])",
        "count_over_time(x[5m])",
        "min_over_time(x[3m])",
        "last_over_time(x[2m])",
        "present_over_time(x[2m])",
        "stddev_over_time(x[5m])",
        "stdvar_over_time(x[5m])",
        "quantile_over_time(0.5, x[5m])",
        "delta(x[5m])",
        "irate(x[3m])",
        "changes(x[5m])",
        "resets(x[5m])",
        "deriv(x[5m])",
        "abs(x)",
        "x * 2",
        "-x",
        "x > 0",
        "round(x / 100)",
    ]);
    (op, grouping, inner, 1usize..4).prop_map(|(op, g, inner, k)| match op {
        "topk" | "bottomk" => format!("{op}{g} ({k}, {inner})"),
        "count_values" => format!("{op}{g} (\"v\", round({inner} / 200))"),
        _ => format!("{op}{g} ({inner})"),
    })
}

proptest! {
    // 200 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(200),
        ..ProptestConfig::default()
    })]

    #[test]
    fn federated_equals_union(
        data in arb_series(),
        q in arb_query(),
        t in 0i64..1500,
        start in 0i64..900,
        steps in 1i64..30,
        step in 10i64..90,
    ) {
        let mut split: [Vec<(Labels, Vec<Sample>)>; 3] = Default::default();
        for (j, l, s) in data {
            split[j].push((l, s));
        }
        let (oracle, fed, calls) =
            world_calls([&split[0], &split[1], &split[2]], Eu::Answers, &[], QueryConfig::default());
        OVERFLOW_ANY_NON_FINITE.with(|f| f.set(q.starts_with("stddev") || q.starts_with("stdvar")));
        let a = run(&oracle, &q, t * 1000, true);
        let b = run(&fed, &q, t * 1000, true);
        match (a, b) {
            (Ok(a), Ok(b)) => prop_assert!(same(&a.value, &b.value).is_ok(), "{q} @ {t}: {:?}", same(&a.value, &b.value)),
            (a, b) => prop_assert!(a.is_err() && b.is_err(), "{q} @ {t}: {a:?} vs {b:?}"),
        }
        let (s, e, st) = (start * 1000, (start + steps * step) * 1000, step * 1000);
        let a = oracle.query_range(&tenant(), &q, s, e, st);
        let b = fed.query_range(&tenant(), &q, s, e, st);
        match (a, b) {
            (Ok(a), Ok(b)) => prop_assert!(same(&a.value, &b.value).is_ok(), "{q} [{s}, {e}, {st}]: {:?}", same(&a.value, &b.value)),
            (a, b) => prop_assert!(a.is_err() && b.is_err(), "{q} range: {a:?} vs {b:?}"),
        }
        // Every query was pushed down (and nothing read eu's raw series).
        let calls = calls.lock();
        prop_assert_eq!(calls.iter().filter(|c| c.starts_with("partials")).count(), 2);
        prop_assert!(!calls.iter().any(|c| c == "count"));
    }
}

#[test]
fn several_aggregates_jurisdictions_are_asked_in_parallel() {
    AGGREGATES.with(|a| *a.borrow_mut() = vec!["eu".to_owned(), "eu2".to_owned()]);
    let (oracle, fed) = fixed_world(Eu::Answers, &[]);
    AGGREGATES.with(|a| *a.borrow_mut() = vec!["eu".to_owned()]);
    let a = run(&oracle, "sum by (farm) (x)", 300_000, true).expect("oracle");
    let b = run(&fed, "sum by (farm) (x)", 300_000, true).expect("federated");
    same(&a.value, &b.value).expect("eu answered, eu2 holds nothing it could add");
    assert!(b.warnings.iter().any(|w| w.contains("jurisdiction eu2 unreachable: region eu2-a: timeout")), "{b:?}");
    assert!(matches!(run(&fed, "sum(x)", 300_000, false), Err(QueryError::Unavailable(m)) if m.contains("eu2")));
}

/// A raw store whose regions refuse (`geo`) or do not answer.
#[derive(Debug)]
struct Failing {
    geo: bool,
}

impl ReadStore for Failing {
    fn select(&self, _: &TenantId, _: &[Matcher], _: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        Err(if self.geo {
            ReadError::GeoFence("geo-fence: region eu-west refuses raw reads of tenant acme".into())
        } else {
            ReadError::Unavailable("region br-south did not answer and partial_response=false".into())
        })
    }

    fn series(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<Labels>, ReadError> {
        self.select(t, m, r).map(|_| Vec::new())
    }
}

struct FailingQuery(Failing);

impl FederatedQuery for FailingQuery {
    fn store(&self) -> &dyn ReadStore {
        &self.0
    }
    fn aggregate_jurisdictions(&self) -> &[String] {
        &[]
    }
    fn excluded_jurisdictions(&self) -> &[String] {
        &[]
    }
    fn partials(&self, _: &str, _: &[String], _: Grid, _: Instant) -> Result<Vec<Vec<PartialSeries>>, RemoteError> {
        Err(RemoteError::Unreachable("unused".into()))
    }
    fn count_series(&self, _: &str, _: &[Matcher], _: TimeRange, _: Instant) -> Result<u64, RemoteError> {
        Err(RemoteError::Unreachable("unused".into()))
    }
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

#[derive(Debug)]
struct FailingFederation {
    geo: bool,
}

impl Federation for FailingFederation {
    fn begin(&self, _: &TenantId, _: &str, _: bool) -> Result<Option<Box<dyn FederatedQuery>>, String> {
        Ok(Some(Box::new(FailingQuery(Failing { geo: self.geo }))))
    }
}

#[test]
fn raw_store_refusals_and_missing_regions_keep_their_error_type() {
    for (geo, status, kind) in [(true, 422, "execution"), (false, 503, "unavailable")] {
        let fed = Engine::new(Arc::new(MemStore::new()), QueryConfig::default())
            .with_federation(Arc::new(FailingFederation { geo }));
        let e = fed.query_instant(&tenant(), "sum(x)", 0).expect_err("fails");
        assert_eq!((e.http_status(), e.error_type()), (status, kind), "{e:?}");
        assert!(matches!(e, QueryError::GeoFence(_) | QueryError::Unavailable(_)), "{e:?}");
        assert!(!e.to_string().starts_with("reading series"), "{e}");
    }
}
