//! `[hot] kind = "scylla"` through the real binary, on the kassandra CQL
//! server (`$STRATA_KASSANDRA_BIN` or the tools cache, see
//! scripts/install-test-deps.sh): writes answered after the cluster
//! acknowledged them, queried back, served after SIGTERM and after
//! `kill -9` (the log replays from the offsets recorded in the cluster), and
//! by a second node with an empty data dir (the data lives in the cluster,
//! not in the node's embedded hot store). With `[cold]` on, sealed buckets
//! roll from the cluster into Iceberg exactly once across a `kill -9` in the
//! middle of a roll.

use crate::harness::*;
use std::process::Command;
pub(crate) use strata_test_support::kassandra::Kassandra;

pub(crate) fn env(k: &Kassandra) -> Vec<(&'static str, String)> {
    vec![
        ("STRATA_HOT__KIND", "scylla".to_owned()),
        ("STRATA_HOT__SCYLLA__NODES", format!("[\"{}\"]", k.addr())),
        ("STRATA_HOT__SCYLLA__KEYSPACE", "e2e".to_owned()),
        ("STRATA_HOT__SCYLLA__REPLICATION", "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_owned()),
        ("STRATA_HOT__SCYLLA__CONSISTENCY", "one".to_owned()),
        ("STRATA_COLD__ENABLED", "false".to_owned()),
    ]
}

fn start(dir: &std::path::Path, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(dir, &env)
}

async fn count_and_sum(c: &reqwest::Client, s: &Server, at: i64) -> (f64, f64) {
    let n = single_value(&query(c, s, "count(count_over_time(sensors_temp[1h]))", at).await);
    let sum = single_value(&query(c, s, "sum(sum_over_time(sensors_temp[1h]))", at).await);
    (n, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scylla_hot_tier_serves_writes_across_restarts_and_nodes() {
    let k = Kassandra::start();
    let env = env(&k);
    let dir = data_dir();
    let c = client();
    let t0 = now_ms() / 1000 * 1000 - 600_000;
    let mut body = String::new();
    for d in 0..20 {
        for i in 0..10 {
            body.push_str(&format!("sensors,device=d{d},farm=f{} temp={} {}\n", d % 2, d * 10 + i, t0 + i * 1000));
        }
    }
    let at = t0 + 20_000;
    let s = start(dir.path(), &env);
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.clone().into_bytes(), false).await.0, 204);
    let want = (20.0, (0..20).map(|d| (0..10).map(|i| f64::from(d * 10 + i)).sum::<f64>()).sum::<f64>());
    assert_eq!(count_and_sum(&c, &s, at).await, want);
    assert_eq!(single_value(&query(&c, &s, r#"sensors_temp{device="d3"}"#, at).await), 39.0);
    let (status, log) = s.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("ScyllaDB hot tier connected"), "{log}");

    // Restart: served from the cluster; more writes, then kill -9 before any flush.
    let s = start(dir.path(), &env);
    assert_eq!(count_and_sum(&c, &s, at).await, want);
    let late = format!("sensors,device=d99,farm=f9 temp=1000 {}\n", t0 + 15_000);
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", late.into_bytes(), false).await.0, 204);
    s.kill9();
    let s = start(dir.path(), &env);
    let want = (21.0, want.1 + 1000.0);
    assert_eq!(count_and_sum(&c, &s, at).await, want, "after kill -9 and the log's replay");

    // Another node with an empty data dir reads the same cluster.
    let other = data_dir();
    let b = start(other.path(), &env);
    assert_eq!(count_and_sum(&c, &b, at).await, want);
    drop(b);
    drop(s);
}

/// Checks the row count (and value sum) of `strata.<table>` read with
/// PyIceberg (`scripts/cold_interop_read.py`) from the SQLite catalog and
/// file warehouse under `dir` (`catalog.db`, `warehouse`); returns what it saw.
pub(crate) fn iceberg_rows(dir: &std::path::Path, table: &str, rows: u64, value_sum: Option<f64>) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "catalog_uri": format!("sqlite:///{}", dir.join("catalog.db").display()),
        "catalog_name": "strata",
        "warehouse": format!("file://{}", dir.join("warehouse").display()),
        "table": format!("strata.{table}"),
        "rows": rows,
        "samples": [],
    });
    if let Some(v) = value_sum {
        spec["value_sum"] = v.into();
    }
    let path = dir.join(format!("check-{table}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let env = Command::new("bash").arg(scripts.join("pyiceberg-env.sh")).output().unwrap();
    assert!(env.status.success(), "pyiceberg-env.sh failed: {}", String::from_utf8_lossy(&env.stderr));
    let python = String::from_utf8(env.stdout).unwrap().trim().to_owned();
    let out = Command::new(python).arg(scripts.join("cold_interop_read.py")).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("cold_interop_read.py printed no JSON ({e}):\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(out.status.success(), "{table}: {v}");
    v
}

/// The queries compared before and after the roll: the old window's
/// aggregates (answered by the 1 h rollups once rolled), a range across a
/// bucket boundary, and one across the hot/cold split (old + recent).
pub(crate) fn queries(t0: i64, now: i64) -> Vec<(String, i64)> {
    let end = t0 + 6 * HOUR;
    vec![
        ("sum(count_over_time(soil_moisture[6h]))".into(), end),
        ("sum(sum_over_time(soil_moisture[6h]))".into(), end),
        ("max_over_time(soil_moisture{device=\"d3\"}[6h])".into(), end),
        ("sum(min_over_time(soil_moisture[2h]))".into(), t0 + 4 * HOUR),
        ("sum(sum_over_time(soil_moisture[90m]))".into(), t0 + 3 * HOUR + 30 * 60_000),
        ("sum(count_over_time(soil_moisture[12h]))".into(), now),
        ("sum(sum_over_time(soil_moisture[12h]))".into(), now),
    ]
}

pub(crate) async fn answers(c: &reqwest::Client, s: &Server, qs: &[(String, i64)]) -> Vec<f64> {
    let mut out = Vec::new();
    for (q, at) in qs {
        out.push(single_value(&query(c, s, q, *at).await));
    }
    out
}

pub(crate) const HOUR: i64 = 3_600_000;

/// Line protocol of `soil_moisture` for `devices`, one sample every 5 min
/// over the six hours from `t0` (one second past each mark), integer values
/// (sums are exact); with the sample count and value sum.
pub(crate) fn old_window(t0: i64, devices: std::ops::Range<i64>) -> (String, u64, f64) {
    let (mut body, mut n, mut sum) = (String::new(), 0u64, 0f64);
    for d in devices {
        for i in 0..72 {
            let v = d * 100 + i;
            body.push_str(&format!("soil,device=d{d} moisture={v} {}\n", t0 + i * 300_000 + 1000));
            n += 1;
            sum += v as f64;
        }
    }
    (body, n, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_buckets_roll_from_the_scylla_tier_to_iceberg_exactly_once_across_a_kill() {
    let k = Kassandra::start();
    let mut env: Vec<(&'static str, String)> =
        env(&k).into_iter().filter(|(name, _)| *name != "STRATA_COLD__ENABLED").collect();
    env.extend([
        ("STRATA_COLD__ENABLED", "true".to_owned()),
        ("STRATA_HOT__SCYLLA__BUCKET", "1h".to_owned()),
        ("STRATA_COMPACTOR__GRACE", "1m".to_owned()),
        ("STRATA_COMPACTOR__INTERVAL", "1h".to_owned()),
    ]);
    let dir = data_dir();
    let c = client();
    // Six sealed 1 h buckets (12 devices, one sample every 5 min, integer
    // values: sums are exact), and a few samples in the current bucket.
    let now = now_ms() / 1000 * 1000;
    let t0 = (now - 10 * HOUR).div_euclid(HOUR) * HOUR;
    let (mut body, rolled_n, rolled_sum) = old_window(t0, 0..12);
    let current = now.div_euclid(HOUR) * HOUR;
    let mut body_recent = 0u64;
    for j in (0..10).filter(|j| now - j * 1000 >= current) {
        body_recent += 1;
        body.push_str(&format!("soil,device=d{} moisture=1 {}\n", j % 12, now - j * 1000));
    }
    let qs = queries(t0, now);

    // First run: the roll aborts the process right after its first bucket's
    // samples commit (rollups and series already committed, watermark not moved).
    let mut crash_env = env.clone();
    crash_env.push(("STRATA_ROLL_CRASH_AT", "after_commit".to_owned()));
    let mut s = start(dir.path(), &crash_env);
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    let before = answers(&c, &s, &qs).await;
    let recent = body_recent;
    assert_eq!(before[0], rolled_n as f64, "{before:?}");
    assert_eq!(before[5], (rolled_n + recent) as f64, "{before:?}");
    assert_eq!(before[1], rolled_sum, "{before:?}");
    assert_eq!(before[2], 371.0, "{before:?}");
    let roll = c.post(s.url("/internal/roll")).bearer_auth(admin_token(dir.path())).send().await;
    assert!(roll.is_err() || !roll.unwrap().status().is_success(), "the roll was to abort the process");
    let status = s.child.wait().unwrap();
    assert!(!status.success(), "aborted at after_commit: {status:?}");
    assert!(s.stderr.lock().unwrap().contains("STRATA_ROLL_CRASH_AT"), "{}", s.stderr.lock().unwrap());
    drop(s);

    // Restart: the same answers whatever the roll state; then every sealed bucket rolls.
    let s = start(dir.path(), &env);
    assert_eq!(answers(&c, &s, &qs).await, before, "after the crash in the roll");
    internal(&c, &s, &admin_token(dir.path()), "/internal/roll").await;
    let rollup_selects = metric(&c, &s, "strata_query_rollup_tier_selects_total").await;
    assert_eq!(answers(&c, &s, &qs).await, before, "after the roll: cold below the watermark, hot above");
    assert!(
        metric(&c, &s, "strata_query_rollup_tier_selects_total").await > rollup_selects,
        "the 6 h aggregates were answered from rollups"
    );
    // The bucket committed before the crash was found committed, not written again.
    assert!(metric(&c, &s, "strata_compactor_duplicate_commits_avoided_total").await >= 1.0);

    // Every acknowledged sample of the sealed buckets exactly once in Iceberg.
    let cold = dir.path().join("cold");
    let v = iceberg_rows(&cold, "samples_default", rolled_n, Some(rolled_sum));
    assert_eq!(v["rows"], rolled_n, "{v}");
    // 1 h rollups: one row per device and hour.
    iceberg_rows(&cold, "rollup1h_default", 12 * 6, None);

    // A late sample for a rolled bucket is refused, not stored where no query reads it.
    let late = format!("soil,device=d0 moisture=999 {}\n", t0 + 90_000);
    let (status, text) = write(&c, &s, "/api/v2/write?precision=ms", late.into_bytes(), false).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("older than"), "{text}");
    assert_eq!(answers(&c, &s, &qs).await, before);
    let (status, log) = s.terminate();
    assert!(status.success(), "{log}");
    // The log line without its ANSI colours.
    let plain: String = log
        .split('\u{1b}')
        .enumerate()
        .map(|(i, part)| if i == 0 { part } else { part.split_once('m').map_or(part, |(_, rest)| rest) })
        .collect();
    assert!(plain.contains("source=\"scylla\""), "{plain}");
}
