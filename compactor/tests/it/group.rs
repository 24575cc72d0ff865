//! Group rollups: the compactor writes one rollup series per declared
//! group (`temp by (farm)`) with each roll, exactly once; the engine answers
//! exactly the matching aggregations from them, bit for bit like raw
//! samples, and everything else as before.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_compactor::FederatedReadStore;
use strata_query::{Engine, QueryConfig, QueryResult, Value};
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{GROUP_LABEL, GroupRollup, Labels, Matcher, ReadStore, TimeRange};

use crate::util::{Env, Lcg, RawOnly, tenant};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// A day boundary after the test epoch.
const T0: i64 = 1_700_006_400_000 / DAY * DAY + DAY;

fn farm_of(dev: usize) -> Option<String> {
    (dev < 12).then(|| format!("f{}", dev / 4))
}

/// A fleet in minutes `[from, to)` after `T0`: three farms of four devices
/// and one device without a farm, metrics `temp` and `hum`, a sample in
/// about one minute of five, quarter values (exact sums), stale markers.
fn fleet(env: &mut Env, rng: &mut Lcg, from: i64, to: i64) {
    fleet_of(env, rng, from, to, &|r| (r % 4000) as f64 / 4.0 + 0.25 - 500.0);
}

/// [`fleet`] with values drawn by `value` from a random number.
fn fleet_of(env: &mut Env, rng: &mut Lcg, from: i64, to: i64, value: &dyn Fn(u64) -> f64) {
    let stale = f64::from_bits(STALE_NAN_BITS);
    for dev in 0..13 {
        let device = format!("d{dev}");
        for metric in ["temp", "hum"] {
            let mut pairs = vec![("__name__", metric.to_owned()), ("device", device.clone())];
            if let Some(f) = farm_of(dev) {
                pairs.push(("farm", f));
            }
            let labels = Labels::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            let mut samples = Vec::new();
            for minute in from..to {
                if minute % 60 != 0 && !rng.next().is_multiple_of(5) {
                    continue;
                }
                let v = match rng.next() % 40 {
                    0 => stale,
                    _ => value(rng.next()),
                };
                samples.push((T0 + minute * MIN + (rng.next() % 1000) as i64, v));
            }
            env.write_series("acme", labels, &device, &samples);
        }
    }
    env.hot.flush().unwrap();
}

fn roll_all(env: &Env, now: i64) {
    loop {
        let out = env.rt.block_on(env.compactor.roll_once(now)).unwrap();
        assert_eq!(out.failed_tenants, 0);
        if out.buckets == 0 {
            break;
        }
    }
}

/// Two-hour buckets (the server's default), so a day rolls in a dozen passes.
fn open_env(dir: &std::path::Path) -> Env {
    use std::time::Duration;
    let hot = strata_hot_store::HotStoreConfig {
        bucket: Duration::from_secs(2 * 3600),
        default_hot_ttl: Duration::from_millis(1),
        ..strata_hot_store::HotStoreConfig::default()
    };
    let cc = strata_compactor::CompactorConfig {
        grace: Some(Duration::ZERO),
        ..strata_compactor::CompactorConfig::default()
    };
    let cold = strata_cold_tier::ColdTierConfig { enabled: true, ..strata_cold_tier::ColdTierConfig::default() };
    Env::open_with_hot(dir, cc, cold, hot)
}

fn temp_by_farm() -> GroupRollup {
    GroupRollup { metric: "temp".into(), by: vec!["farm".into()] }
}

fn declare(env: &Env, decls: Vec<GroupRollup>) {
    env.rt.block_on(env.compactor.set_group_rollups(BTreeMap::from([(tenant("acme"), decls)]))).unwrap();
}

fn federated(env: &Env) -> FederatedReadStore {
    env.federated().with_group_rollups(Arc::clone(&env.cold), env.rt.handle().clone(), env.compactor.group_rollups())
}

fn group_matchers(d: &GroupRollup) -> Vec<Matcher> {
    vec![Matcher::equal("__name__", d.metric.as_str()), Matcher::equal(GROUP_LABEL, format!("{:016x}", d.id()))]
}

/// Per farm (None: no farm) and window end: (min, max, count, sum).
type Groups = BTreeMap<Option<String>, BTreeMap<i64, (f64, f64, u64, f64)>>;

/// Per farm (None: no farm) and window end: (min, max, count, sum) of the
/// model's `temp` samples (stale markers left out), in windows of `w` ending in `ends`.
fn expected(env: &Env, w: i64, ends: TimeRange) -> Groups {
    let mut out: Groups = BTreeMap::new();
    for ((t, labels), samples) in &env.model {
        if t != "acme" || labels.metric_name() != "temp" {
            continue;
        }
        let farm = labels.get("farm").map(str::to_owned);
        for (&ts, &bits) in samples {
            if bits == STALE_NAN_BITS {
                continue;
            }
            let v = f64::from_bits(bits);
            let end = -(-ts).div_euclid(w) * w;
            if !ends.contains(end) {
                continue;
            }
            let e = out.entry(farm.clone()).or_default().entry(end).or_insert((v, v, 0, 0.0));
            e.0 = e.0.min(v);
            e.1 = e.1.max(v);
            e.2 += 1;
            e.3 += v;
        }
    }
    out
}

#[test]
fn a_roll_writes_one_rollup_series_per_declared_group_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = open_env(dir.path());
    declare(&env, vec![temp_by_farm()]);
    let mut rng = Lcg(11);
    fleet(&mut env, &mut rng, 0, 20 * 60);
    roll_all(&env, T0 + 20 * HOUR + 5 * MIN);
    let w = env.hot.cold_watermark(&tenant("acme")).unwrap();
    assert!(w > T0 + 18 * HOUR, "watermark {w}");
    let fed = federated(&env);
    let decl = temp_by_farm();
    let check = |context: &str| {
        for width in [5 * MIN, HOUR] {
            let ends = TimeRange::new(T0 + width, T0 + 18 * HOUR);
            let data = fed
                .select_rollup(&tenant("acme"), &group_matchers(&decl), width, ends)
                .unwrap()
                .unwrap_or_else(|| panic!("{context}: the group table answers {width}"));
            assert_eq!(data.covered_end, ends.end);
            let want = expected(&env, width, ends);
            let got: Groups = data
                .series
                .iter()
                .map(|s| {
                    assert_eq!(s.labels.metric_name(), "temp");
                    assert_eq!(s.labels.get("device"), None, "{context}: {:?}", s.labels);
                    let points = s.points.iter().map(|p| (p.end, (p.min, p.max, p.count, p.sum))).collect();
                    (s.labels.get("farm").map(str::to_owned), points)
                })
                .collect();
            assert_eq!(got.len(), 4, "{context}: three farms and the farmless group");
            assert_eq!(got, want, "{context}: width {width}");
        }
    };
    check("after the roll");
    let written = env.compactor.metrics().group_rollup_rows_written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(written > 0);
    // Undeclared groupings, and the declaration's id under another width's table, are not answered.
    let other = GroupRollup { metric: "temp".into(), by: vec!["device".into()] };
    let none =
        fed.select_rollup(&tenant("acme"), &group_matchers(&other), HOUR, TimeRange::new(T0 + HOUR, T0 + 10 * HOUR));
    assert!(none.unwrap().is_none());
    // A restart and another pass write nothing twice.
    let env = env.reopen(dir.path());
    declare(&env, vec![temp_by_farm()]);
    roll_all(&env, T0 + 20 * HOUR + 5 * MIN);
    let fed = federated(&env);
    let data =
        fed.select_rollup(&tenant("acme"), &group_matchers(&decl), HOUR, TimeRange::new(T0 + HOUR, T0 + 18 * HOUR));
    let rows: usize = data.unwrap().unwrap().series.iter().map(|s| s.points.len()).sum();
    assert_eq!(
        rows,
        expected(&env, HOUR, TimeRange::new(T0 + HOUR, T0 + 18 * HOUR)).values().map(|m| m.len()).sum::<usize>()
    );
    // Removed: no longer answered, though its tables stay.
    declare(&env, vec![]);
    let fed = federated(&env);
    let gone =
        fed.select_rollup(&tenant("acme"), &group_matchers(&decl), HOUR, TimeRange::new(T0 + HOUR, T0 + 10 * HOUR));
    assert!(gone.unwrap().is_none());
}

#[test]
fn a_declaration_made_after_rolls_answers_only_windows_after_its_first_roll() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = open_env(dir.path());
    let mut rng = Lcg(5);
    fleet(&mut env, &mut rng, 0, 6 * 60);
    roll_all(&env, T0 + 6 * HOUR + 5 * MIN);
    declare(&env, vec![temp_by_farm()]);
    fleet(&mut env, &mut rng, 6 * 60 + 5, 12 * 60);
    roll_all(&env, T0 + 12 * HOUR + 5 * MIN);
    let fed = federated(&env);
    let m = group_matchers(&temp_by_farm());
    let early = fed.select_rollup(&tenant("acme"), &m, HOUR, TimeRange::new(T0 + HOUR, T0 + 10 * HOUR)).unwrap();
    assert!(early.is_none(), "windows before the declaration's first roll are not in its table");
    let ends = TimeRange::new(T0 + 8 * HOUR, T0 + 10 * HOUR);
    let later = fed.select_rollup(&tenant("acme"), &m, HOUR, ends).unwrap().expect("windows after it are");
    let got: usize = later.series.iter().map(|s| s.points.len()).sum();
    assert_eq!(got, expected(&env, HOUR, ends).values().map(|m| m.len()).sum::<usize>());
}

fn equal_bits(got: &QueryResult, want: &QueryResult, ctx: &str) {
    let key = |v: &Value| -> Vec<(Labels, Vec<(i64, u64)>)> {
        let mut out: Vec<(Labels, Vec<(i64, u64)>)> = match v {
            Value::Matrix(m) => m
                .iter()
                .map(|s| (s.labels.clone(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
                .collect(),
            Value::Vector(v) => v.iter().map(|s| (s.labels.clone(), vec![(0, s.v.to_bits())])).collect(),
            other => panic!("{ctx}: {other:?}"),
        };
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let (g, w) = (key(&got.value), key(&want.value));
    assert!(!w.is_empty(), "{ctx}: the comparison must see data");
    assert_eq!(g, w, "{ctx}");
}

/// The group rollup counter is process-wide: the tests that read it run one at a time.
static COUNTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `query` as a range and an instant query on both engines; returns
/// whether a group rollup answered.
fn compare(on: &Engine, off: &Engine, query: &str, start: i64, end: i64, step: i64) -> bool {
    let t = tenant("acme");
    let before = on.stats().group_rollup_selects();
    let got = on.query_range(&t, query, start, end, step).unwrap();
    let want = off.query_range(&t, query, start, end, step).unwrap();
    equal_bits(&got, &want, &format!("{query} [{start}, {end}] / {step}"));
    let igot = on.query_instant(&t, query, end).unwrap();
    let iwant = off.query_instant(&t, query, end).unwrap();
    equal_bits(&igot, &iwant, &format!("{query} @ {end}"));
    on.stats().group_rollup_selects() >= before + 2
}

#[test]
fn matching_aggregations_are_answered_from_the_group_rollup_bit_for_bit_and_others_as_before() {
    let _one_at_a_time = COUNTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let mut env = open_env(dir.path());
    declare(&env, vec![temp_by_farm()]);
    let mut rng = Lcg(3);
    fleet(&mut env, &mut rng, -120, 20 * 60);
    roll_all(&env, T0 + 20 * HOUR + 5 * MIN);
    env.hot.expire(T0 + 20 * HOUR + 5 * MIN).unwrap();
    fleet(&mut env, &mut rng, 20 * 60 + 5, 26 * 60);
    let fed: Arc<dyn ReadStore> = Arc::new(federated(&env));
    let on = Engine::new(Arc::clone(&fed), QueryConfig::default());
    let off = Engine::new(Arc::new(RawOnly(fed)), QueryConfig::default());
    let cold_end = T0 + 18 * HOUR;
    for q in [
        "max by (farm) (max_over_time(temp[1h]))",
        "min by (farm) (min_over_time(temp[1h]))",
        "sum by (farm) (count_over_time(temp[2h]))",
        "sum by (farm) (sum_over_time(temp[1h]))",
        "max by (farm) (max_over_time({__name__=\"temp\"}[3h]))",
    ] {
        for (start, step) in [(T0, 5 * MIN), (T0 + 3 * HOUR, HOUR)] {
            assert!(
                compare(&on, &off, q, start, cold_end, step),
                "{q} from {start} by {step}: the group rollup answers"
            );
        }
        // Not aligned with any width, or reaching above the watermark: as before.
        assert!(!compare(&on, &off, q, T0 + 1000, cold_end, 5 * MIN), "{q} misaligned");
        assert!(!compare(&on, &off, q, T0 + 3 * HOUR, T0 + 26 * HOUR, HOUR), "{q} above the watermark");
    }
    for q in [
        "avg by (farm) (avg_over_time(temp[1h]))",
        "max by (farm, device) (max_over_time(temp[1h]))",
        "max by (device) (max_over_time(temp[1h]))",
        "max (max_over_time(temp[1h]))",
        "max without (device) (max_over_time(temp[1h]))",
        "min by (farm) (max_over_time(temp[1h]))",
        "count by (farm) (max_over_time(temp[1h]))",
        "max by (farm) (max_over_time(temp{device=\"d1\"}[1h]))",
        "max by (farm) (max_over_time(temp{farm!=\"\"}[1h]))",
        "max by (farm) (max_over_time(hum[1h]))",
        "max by (farm) (max_over_time(temp[1h] offset 1h))",
        "max by (farm) (last_over_time(temp[1h]))",
    ] {
        assert!(!compare(&on, &off, q, T0 + 3 * HOUR, cold_end, HOUR), "{q} must not use the group rollup");
    }
    // The counter shows in the engine's metrics.
    let mut text = String::new();
    on.stats().render(&mut text);
    assert!(text.contains("strata_query_group_rollup_selects_total"), "{text}");
}

#[test]
fn zeros_of_either_sign_and_nans_are_answered_like_raw_samples_and_refused_where_the_fold_order_shows() {
    let _one_at_a_time = COUNTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let mut env = open_env(dir.path());
    declare(&env, vec![temp_by_farm()]);
    let mut rng = Lcg(23);
    // Mostly ±0 and NaN, a few small negatives: group maxima of 0 from series of either sign.
    let value = |r: u64| match r % 8 {
        0..=2 => 0.0,
        3..=5 => -0.0,
        6 => f64::NAN,
        _ => -((r % 3) as f64) - 1.0,
    };
    fleet_of(&mut env, &mut rng, 0, 12 * 60, &value);
    roll_all(&env, T0 + 12 * HOUR + 5 * MIN);
    let fed: Arc<dyn ReadStore> = Arc::new(federated(&env));
    let on = Engine::new(Arc::clone(&fed), QueryConfig::default());
    let off = Engine::new(Arc::new(RawOnly(fed)), QueryConfig::default());
    let mut refused = 0;
    for q in [
        "max by (farm) (max_over_time(temp[1h]))",
        "min by (farm) (min_over_time(temp[1h]))",
        "sum by (farm) (sum_over_time(temp[1h]))",
        "sum by (farm) (count_over_time(temp[1h]))",
    ] {
        // Equal bit for bit whichever way it is answered.
        if !compare(&on, &off, q, T0 + HOUR, T0 + 10 * HOUR, HOUR) {
            refused += 1;
        }
    }
    assert!(refused >= 1, "a zero or NaN step sends the query to the usual evaluation");
    assert!(compare(&on, &off, "sum by (farm) (count_over_time(temp[1h]))", T0 + HOUR, T0 + 10 * HOUR, HOUR));
}

#[test]
fn purged_group_tables_after_an_erasure_answer_only_windows_rolled_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = open_env(dir.path());
    declare(&env, vec![temp_by_farm()]);
    let mut rng = Lcg(31);
    fleet(&mut env, &mut rng, 0, 6 * 60);
    roll_all(&env, T0 + 6 * HOUR + 5 * MIN);
    let m = group_matchers(&temp_by_farm());
    let fed = federated(&env);
    let all = TimeRange::new(T0 + HOUR, T0 + 4 * HOUR);
    assert!(fed.select_rollup(&tenant("acme"), &m, HOUR, all).unwrap().is_some());
    // What the server's erasure does before its cold erase.
    let files = env.rt.block_on(env.compactor.purge_group_rollups(&tenant("acme"))).unwrap();
    assert!(files > 0);
    assert!(
        fed.select_rollup(&tenant("acme"), &m, HOUR, all).unwrap().is_none(),
        "nothing answered from a purged table"
    );
    fleet(&mut env, &mut rng, 6 * 60 + 5, 12 * 60);
    roll_all(&env, T0 + 12 * HOUR + 5 * MIN);
    assert!(
        fed.select_rollup(&tenant("acme"), &m, HOUR, all).unwrap().is_none(),
        "windows before the purge stay unanswered"
    );
    let later = TimeRange::new(T0 + 8 * HOUR, T0 + 10 * HOUR);
    let data = fed.select_rollup(&tenant("acme"), &m, HOUR, later).unwrap().expect("windows rolled after it are");
    let got: usize = data.series.iter().map(|s| s.points.len()).sum();
    assert_eq!(got, expected(&env, HOUR, later).values().map(|m| m.len()).sum::<usize>());
}
