//! The cold tier through the real binary: sealed hot buckets roll into the
//! tenant's Iceberg table, the hot copy expires, and queries still return
//! every sample exactly once from cold.

use crate::harness::*;

/// `/internal/flush` then `/internal/roll` with the node's generated admin
/// token: the roll's JSON answer (both asserted successful).
async fn flush_and_roll(c: &reqwest::Client, s: &Server, dir: &std::path::Path) -> serde_json::Value {
    flush(c, s, dir).await;
    internal(c, s, &admin_token(dir), "/internal/roll").await
}

async fn flush(c: &reqwest::Client, s: &Server, dir: &std::path::Path) {
    internal(c, s, &admin_token(dir), "/internal/flush").await;
}

fn parquet_files(dir: &std::path::Path) -> usize {
    parquet_files_where(dir, |_| true)
}

/// Parquet files of the samples and rollup tables (not of the series
/// tables, which hold one row per series and no timestamps: retention does
/// not apply to them; a purge removes them).
fn data_parquet_files(dir: &std::path::Path) -> usize {
    parquet_files_where(dir, |p| !p.components().any(|c| c.as_os_str().to_string_lossy().starts_with("series_")))
}

fn parquet_files_where(dir: &std::path::Path, keep: impl Fn(&std::path::Path) -> bool) -> usize {
    strata_test_support::fs::files_ending(dir, ".parquet").iter().filter(|p| keep(p)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_buckets_roll_to_iceberg_and_stay_queryable_after_hot_expiry() {
    let dir = data_dir();
    let env = [
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1h"),
        ("STRATA_HOT_STORE__DEFAULT_HOT_TTL", "1h"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();
    // Ten hours ago: its 2 h bucket is sealed; two devices, 30 samples each.
    let t0 = (now_ms() - 10 * 3_600_000) / 1000 * 1000;
    let body: String = (0..30)
        .flat_map(|i| (0..2).map(move |d| format!("soil,device=d{d} moisture={} {}\n", 10 * d + i, t0 + i * 60_000)))
        .collect();
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    let rolled = flush_and_roll(&c, &s, dir.path()).await;
    assert!(rolled["buckets"].as_u64().unwrap() >= 1, "{rolled}");
    assert_eq!(rolled["samples"], 60, "{rolled}");
    assert!(parquet_files(&dir.path().join("cold")) >= 1, "Parquet data files under <data_dir>/cold");

    // The hot copy expires (1 h TTL, released by the watermark) within the expiry tick.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let m = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if m.lines().any(|l| l == "strata_hot_buckets 0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "hot buckets never expired:\n{m}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let at = t0 + 30 * 60_000;
    let count = query(&c, &s, "sum(count_over_time(soil_moisture[1h]))", at).await;
    assert_eq!(single_value(&count), 60.0, "every sample exactly once, now from cold");
    // The cardinality of that (rolled) day is counted from the cold tier: the hot index holds none of it now.
    let r = c.get(s.url("/api/v1/status/tsdb")).query(&[("date", utc_day(t0).as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"]["totalSeries"], 2, "{v}");
    assert_eq!(v["data"]["seriesCountByMetricName"], serde_json::json!([{"name": "soil_moisture", "value": 2}]), "{v}");
    assert_eq!(
        v["data"]["seriesCountByLabelValuePair"][0],
        serde_json::json!({"name": "__name__=soil_moisture", "value": 2})
    );
    let sum = query(&c, &s, "sum_over_time(soil_moisture{device=\"d1\"}[1h])", at).await;
    assert_eq!(single_value(&sum), (0..30).map(|i| 10 + i).sum::<i64>() as f64);
    let metrics = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("strata_compactor"), "compactor metrics exposed:\n{metrics}");

    // A late sample for the rolled bucket is refused with the reason, not stored where nobody reads it.
    let (status, body) = write(
        &c,
        &s,
        "/api/v2/write?precision=ms",
        format!("soil,device=d0 moisture=999 {}\n", t0 + 90_000).into_bytes(),
        false,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let msg = v["message"].as_str().unwrap();
    assert!(msg.starts_with("1 sample(s) older than") && msg.ends_with("does not accept late writes"), "{msg}");
    let count = query(&c, &s, "sum(count_over_time(soil_moisture[1h]))", at).await;
    assert_eq!(single_value(&count), 60.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_purge_deletes_hot_and_cold_data_of_a_tenant() {
    let dir = data_dir();
    let env = [
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1h"),
        ("STRATA_HOT_STORE__DEFAULT_HOT_TTL", "1d"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();
    // One old bucket (rolled to cold) and one recent sample (stays hot).
    let t0 = (now_ms() - 10 * 3_600_000) / 1000 * 1000;
    let mut body: String =
        (0..20).map(|i| format!("soil,device=d{} moisture={i} {}\n", i % 2, t0 + i * 60_000)).collect();
    let recent = now_ms() - 60_000;
    body.push_str(&format!("soil,device=d0 moisture=7 {recent}\n"));
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    let rolled = flush_and_roll(&c, &s, dir.path()).await;
    assert_eq!(rolled["samples"], 20, "{rolled}");
    assert!(parquet_files(&dir.path().join("cold")) >= 1);
    let count = query(&c, &s, "sum(count_over_time(soil_moisture[1d]))", now_ms()).await;
    assert_eq!(single_value(&count), 21.0, "cold + hot before the purge");
    // Bytes stored per tier, in usage and /metrics.
    let usage: serde_json::Value =
        serde_json::from_str(&admin_ok(&s, dir.path(), &["--json", "usage", "default"])).unwrap();
    assert!(usage["hot_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["cold_bytes"].as_u64().unwrap() > 0, "{usage}");
    let metrics =
        c.get(s.url("/metrics")).bearer_auth(admin_token(dir.path())).send().await.unwrap().text().await.unwrap();
    let cold_line = format!("strata_tenant_cold_bytes{{tenant=\"default\"}} {}", usage["cold_bytes"]);
    assert!(metrics.contains(&cold_line), "{cold_line}\n{metrics}");
    assert!(metrics.contains("strata_tenant_hot_bytes{tenant=\"default\"}"), "{metrics}");

    let stdout = admin_ok(&s, dir.path(), &["tenants", "delete", "default", "--data", "purge"]);
    assert!(stdout.contains("purged:") && stdout.contains("cold file(s)"), "{stdout}");

    assert_eq!(parquet_files(&dir.path().join("cold")), 0, "the tenant's Iceberg files are gone");
    // (Deleting `default` ends open mode, so the hot side is checked through /metrics.)
    let metrics =
        c.get(s.url("/metrics")).bearer_auth(admin_token(dir.path())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "strata_hot_buckets 0"), "the tenant's hot buckets are gone:\n{metrics}");
    assert!(metrics.contains("strata_compactor_tenants_purged_total 1"), "{metrics}");
    assert!(!metrics.contains("strata_tenant_cold_bytes{tenant=\"default\"}"), "{metrics}");
    assert!(!metrics.contains("strata_tenant_hot_bytes{tenant=\"default\"}"), "{metrics}");
    // Purging again is harmless (idempotent), e.g. to finish one that failed half-way.
    admin_ok(&s, dir.path(), &["tenants", "delete", "default", "--data", "purge"]);
}

/// `strata admin … <args>` asserted successful; its stdout.
fn admin_ok(s: &Server, dir: &std::path::Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = admin_cli(s, dir, args);
    assert!(ok, "strata admin {args:?}: {stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_retention_from_the_registry_removes_old_days_from_iceberg() {
    let dir = data_dir();
    let env = [
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1s"),
        ("STRATA_COMPACTOR__MAINTENANCE_INTERVAL", "1s"),
        ("STRATA_COMPACTOR__SNAPSHOT_RETENTION", "0s"),
        ("STRATA_COMPACTOR__ORPHAN_GRACE", "0s"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();
    admin_ok(&s, dir.path(), &["tenants", "create", "acme"]);
    admin_ok(&s, dir.path(), &["limits", "set", "acme", "cold_retention=1d"]);
    let issued = admin_ok(&s, dir.path(), &["tokens", "issue", "acme", "--access", "write"]);
    let token = issued.split_whitespace().find(|w| w.starts_with("st_")).unwrap().to_owned();
    // Three days old: rolled to cold by the compactor loop, then past the retention.
    let t0 = (now_ms() - 3 * 86_400_000) / 1000 * 1000;
    let body: String = (0..10).map(|i| format!("soil,device=d1 moisture={i} {}\n", t0 + i * 60_000)).collect();
    let (status, _, text) = write_as(&c, &s, &token, body).await;
    assert_eq!(status, 204, "{text}");
    flush(&c, &s, dir.path()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let m = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let removed = m.lines().any(|l| l == "strata_compactor_retention_samples_removed_total 10");
        if removed && data_parquet_files(&dir.path().join("cold")) == 0 {
            assert!(m.lines().any(|l| l == "strata_compactor_samples_rolled_total 10"), "{m}");
            break;
        }
        if std::time::Instant::now() >= deadline {
            let log = s.stderr.lock().unwrap().clone();
            let tail: Vec<&str> = log.lines().filter(|l| !l.contains("compactor pass progress")).collect();
            panic!("retention never removed the old day:\n{m}\nserver log:\n{}", tail.join("\n"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `strata_query_rollup_selects_total` from `/metrics`.
async fn rollup_selects(c: &reqwest::Client, s: &Server) -> u64 {
    metric(c, s, "strata_query_rollup_selects_total").await as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_range_functions_answer_from_rollups_once_rolled_and_only_when_aligned() {
    let dir = data_dir();
    let env = [
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1h"),
        ("STRATA_HOT_STORE__DEFAULT_HOT_TTL", "1h"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();
    const H: i64 = 3_600_000;
    // Four hours of a sample a minute (plus one on each hour), ending on an hour at least 3 h ago.
    let h0 = (now_ms() / H - 3) * H;
    let points: Vec<(i64, i64, i64)> = (0..2)
        .flat_map(|d| {
            (0..=4 * 60).map(move |i| (d, h0 - 4 * H + i * 60_000 + i64::from(i % 60 != 0), (i % 17) + 10 * d))
        })
        .collect();
    let body: String = points.iter().map(|(d, t, v)| format!("soil,device=d{d} moisture={v} {t}\n")).collect();
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    let rolled = flush_and_roll(&c, &s, dir.path()).await;
    assert_eq!(rolled["samples"], points.len(), "{rolled}");
    let m = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        m.lines().any(|l| l.starts_with("strata_compactor_rollup_windows_written_total ") && !l.ends_with(" 0")),
        "rollups written:\n{m}"
    );

    // The six functions over (t - 2h, t] of device d1, expected from the data.
    let expect = |f: &str, t: i64| {
        let w: Vec<f64> =
            points.iter().filter(|(d, ts, _)| *d == 1 && *ts > t - 2 * H && *ts <= t).map(|p| p.2 as f64).collect();
        let sum: f64 = w.iter().sum();
        match f {
            "avg_over_time" => sum / w.len() as f64,
            "min_over_time" => w.iter().copied().fold(f64::INFINITY, f64::min),
            "max_over_time" => w.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "sum_over_time" => sum,
            "count_over_time" => w.len() as f64,
            _ => *w.last().unwrap(),
        }
    };
    let funcs =
        ["avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time"];
    for f in funcs {
        let q = format!("{f}(soil_moisture{{device=\"d1\"}}[2h])");
        // Aligned on the hour (the window ending exactly at h0 holds the sample at h0): rollups.
        let before = rollup_selects(&c, &s).await;
        assert_eq!(single_value(&query(&c, &s, &q, h0).await), expect(f, h0), "{q} @ h0");
        assert_eq!(rollup_selects(&c, &s).await, before + 1, "{q} @ h0 answered from rollups");
        // One second later: not aligned, raw samples, same semantics.
        assert_eq!(single_value(&query(&c, &s, &q, h0 + 1000).await), expect(f, h0 + 1000), "{q} @ h0+1s");
        assert_eq!(rollup_selects(&c, &s).await, before + 1, "{q} @ h0+1s from raw samples");
    }
    // Other functions never use rollups.
    let before = rollup_selects(&c, &s).await;
    query(&c, &s, "first_over_time(soil_moisture[2h])", h0).await;
    assert_eq!(rollup_selects(&c, &s).await, before);
}

/// `YYYY-MM-DD` of the UTC day holding `ms`.
fn utc_day(ms: i64) -> String {
    // Civil from days (proleptic Gregorian), Howard Hinnant's algorithm.
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
