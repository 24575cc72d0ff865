//! Right to erasure, the purge: a fleet written and rolled cold, one
//! device's whole history and another device's hour deleted; invisible at
//! once; the purge worker completes both requests with a clean
//! verification; afterwards no hot segment, log segment or cold file holds
//! the deleted device's id, PyIceberg finds no covered row in any live
//! snapshot of any of the tenant's tables, neighbours' sums and counts are
//! unchanged, and a write after the request is kept. A `kill -9` in the
//! middle of a purge resumes after restart.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;

pub(crate) const ADMIN: &str = "erasure-purge-admin-token-0123";
const H: i64 = 3_600_000;
const DEVICES: usize = 20;

/// The node settings of the erasure tests (also erasure_crash's).
pub(crate) fn env(check: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("STRATA_ADMIN__TOKEN", ADMIN),
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1h"),
        // Rolled buckets stay hot too: both copies must be purged.
        ("STRATA_HOT_STORE__DEFAULT_HOT_TTL", "1d"),
        ("STRATA_ERASURE__CHECK_INTERVAL", check),
        ("STRATA_ERASURE__PURGE_WITHIN", "10m"),
    ]
}

fn device(i: usize) -> String {
    format!("sensor-{i:04}")
}

pub(crate) async fn admin(
    c: &reqwest::Client,
    s: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    admin_api(c, s, ADMIN, method, path, body).await
}

/// `{device: value}` of an instant query grouped by device.
async fn by_device(c: &reqwest::Client, s: &Server, q: &str, at: i64) -> std::collections::BTreeMap<String, f64> {
    let data = query(c, s, q, at).await;
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["metric"]["device"].as_str().unwrap().to_owned(), r["value"][1].as_str().unwrap().parse().unwrap()))
        .collect()
}

/// Old data (10 h to 6 h ago, a sample a minute: rolled cold) and recent data (hot), for every device.
fn fleet(now: i64) -> (String, i64) {
    let old0 = (now - 10 * H) / H * H;
    let mut body = String::new();
    for i in 0..DEVICES {
        for m in 0..240 {
            body.push_str(&format!("soil,device={} temp={} {}\n", device(i), (m % 13) + i as i64, old0 + m * 60_000));
        }
        for m in 0..50 {
            body.push_str(&format!("soil,device={} temp={} {}\n", device(i), m + 100, now - 51 * 60_000 + m * 60_000));
        }
    }
    (body, old0)
}

pub(crate) async fn wait_completed(c: &reqwest::Client, s: &Server, id: &str, limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let (code, st) = admin(c, s, reqwest::Method::GET, &format!("/admin/v1/deletes/{id}"), None).await;
        assert_eq!(code, 200, "{st}");
        if st["status"]["state"] == "completed" {
            return st;
        }
        if Instant::now() >= deadline {
            let log = s.stderr.lock().unwrap().clone();
            let tail: Vec<&str> = log.lines().filter(|l| l.contains("erasure") || l.contains("ERROR")).collect();
            panic!("delete {id} not completed in {limit:?}: {st:#}\nserver log:\n{}", tail.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `strata_query_rollup_selects_total` from `/metrics`.
async fn rollup_selects(c: &reqwest::Client, s: &Server) -> u64 {
    let m = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    m.lines().find_map(|l| l.strip_prefix("strata_query_rollup_selects_total ")).unwrap().parse().unwrap()
}

/// Files under `dir` whose bytes contain `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    strata_test_support::fs::files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)))
        .map(|p| p.display().to_string())
        .collect()
}

pub(crate) fn pyiceberg(dir: &Path, spec: serde_json::Value) -> (bool, serde_json::Value) {
    let mut spec = spec;
    spec["catalog_uri"] = format!("sqlite:///{}", dir.join("cold/catalog.db").display()).into();
    spec["catalog_name"] = "strata".into();
    spec["warehouse"] = format!("file://{}", dir.join("cold/warehouse").display()).into();
    spec["namespace"] = "strata".into();
    spec["tenant"] = "default".into();
    spec["device_label"] = "device".into();
    let path = dir.join("erasure-check.json");
    std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let env = std::process::Command::new("bash").arg(scripts.join("pyiceberg-env.sh")).output().unwrap();
    assert!(env.status.success(), "pyiceberg-env.sh failed: {}", String::from_utf8_lossy(&env.stderr));
    let python = String::from_utf8(env.stdout).unwrap().trim().to_owned();
    let out = std::process::Command::new(python).arg(scripts.join("erasure_check.py")).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("erasure_check.py printed no JSON ({e}):\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_purged_from_log_hot_cold_and_rollups_and_verified() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &env("1s"));
    let c = client();
    let now = now_ms();
    let (body, old0) = fleet(now);
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    internal(&c, &s, ADMIN, "/internal/flush").await;
    let rolled = internal(&c, &s, ADMIN, "/internal/roll").await;
    // (The first recent samples may fall in a sealed bucket too.)
    assert!(rolled["samples"].as_u64().unwrap() >= (DEVICES * 240) as u64, "{rolled}");
    // More recent writes, still in the memtable and the log.
    let extra: String = (0..DEVICES).map(|i| format!("soil,device={} temp=1 {}\n", device(i), now - 30_000)).collect();
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", extra.into_bytes(), false).await.0, 204);

    let at = now;
    let count_q = "sum by (device) (count_over_time(soil_temp[11h]))";
    let sum_q = "sum by (device) (sum_over_time(soil_temp[11h]))";
    let counts_before = by_device(&c, &s, count_q, at).await;
    let sums_before = by_device(&c, &s, sum_q, at).await;
    assert_eq!(counts_before.len(), DEVICES);
    assert!(counts_before.values().all(|&n| n == 291.0), "{counts_before:?}");
    let (ok, cold_before) = pyiceberg(dir.path(), serde_json::json!({"mode": "devices"}));
    assert!(ok, "{cold_before}");
    let ids = |d: &str| cold_before["devices"][d]["series_ids"].clone();
    assert!(cold_before["devices"][device(7)]["rows"].as_u64().unwrap() >= 240, "{cold_before}");

    // The byte scans below can fail: before the delete the device's id is in the hot segments and the log.
    for sub in ["hot", "log"] {
        assert!(!files_containing(&dir.path().join(sub), device(7).as_bytes()).is_empty(), "{sub} holds device 7");
    }
    // Device 7: its whole history. Device 11: the second hour of the old data (60 samples, cold and hot).
    let (gone, part) = (device(7), device(11));
    let (p0, p1) = (old0 + H, old0 + 2 * H - 1);
    let t_request = Instant::now();
    let (code, r7) = admin(
        &c,
        &s,
        reqwest::Method::POST,
        "/admin/v1/tenants/default/delete",
        Some(serde_json::json!({"match": [format!("{{device=\"{gone}\"}}")]})),
    )
    .await;
    assert_eq!(code, 202, "{r7}");
    let counts = by_device(&c, &s, count_q, at).await;
    let invisible_after = t_request.elapsed();
    assert!(!counts.contains_key(&gone), "invisible at once: {counts:?}");
    let (code, r11) = admin(
        &c,
        &s,
        reqwest::Method::POST,
        "/admin/v1/tenants/default/delete",
        Some(serde_json::json!({"match": [format!("soil_temp{{device=\"{part}\"}}")], "start": p0, "end": p1})),
    )
    .await;
    assert_eq!(code, 202, "{r11}");
    assert_eq!(by_device(&c, &s, count_q, at).await[&part], 291.0 - 60.0);
    // A write for the partly deleted series after the request is kept.
    let later = now_ms();
    let w = format!("soil,device={part} temp=5000 {later}\n");
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", w.into_bytes(), false).await.0, 204);

    // Until the requests complete, rollups (which still hold the samples) are not used.
    let h = old0 + 3 * H;
    let rollup_q = format!("sum_over_time(soil_temp{{device=\"{part}\"}}[2h])");
    let expect: i64 = (61..=180).filter(|m| !(60..120).contains(m)).map(|m| (m % 13) + 11).sum();
    let before = rollup_selects(&c, &s).await;
    assert_eq!(single_value(&query(&c, &s, &rollup_q, h).await), expect as f64);
    assert_eq!(rollup_selects(&c, &s).await, before, "raw samples answer while a request is pending");

    let id7 = r7["id"].as_str().unwrap().to_owned();
    let id11 = r11["id"].as_str().unwrap().to_owned();
    let st7 = wait_completed(&c, &s, &id7, Duration::from_secs(120)).await;
    let purged_after = t_request.elapsed();
    let st11 = wait_completed(&c, &s, &id11, Duration::from_secs(120)).await;
    eprintln!("invisible after {invisible_after:?}, purged after {purged_after:?}: {st7:#}");
    for st in [&st7, &st11] {
        let status = &st["status"];
        assert_eq!(status["bound_met"], true, "{st:#}");
        for tier in ["log", "hot", "cold", "verify"] {
            assert_eq!(status["tiers"][tier]["state"], "done", "{tier}: {st:#}");
        }
        let v = &status["verification"];
        for k in ["hot_samples", "hot_series", "cold_rows", "cold_unreferenced_objects", "log_samples"] {
            assert_eq!(v[k], 0, "verification {k}: {st:#}");
        }
        assert!(v["log_records_scanned"].is_u64(), "{st:#}");
        assert!(st["completed_at"].as_i64().unwrap() >= st["requested_at"].as_i64().unwrap());
    }
    assert!(st7["status"]["tiers"]["hot"]["rows_removed"].as_u64().unwrap() >= 291, "{st7:#}");
    assert!(st7["status"]["tiers"]["cold"]["rows_removed"].as_u64().unwrap() >= 240, "{st7:#}");
    assert!(st11["status"]["tiers"]["cold"]["rows_removed"].as_u64().unwrap() >= 60, "{st11:#}");

    // Answers: the deleted device is gone, the other keeps the rest and the later write, neighbours unchanged.
    let counts_after = by_device(&c, &s, count_q, at).await;
    let sums_after = by_device(&c, &s, sum_q, at).await;
    for (d, n) in &counts_before {
        if *d == gone {
            assert!(!counts_after.contains_key(d));
        } else if *d == part {
            assert_eq!(counts_after[d], n - 60.0);
        } else {
            assert_eq!((counts_after[d], sums_after[d]), (*n, sums_before[d]), "neighbour {d} unchanged");
        }
    }
    let kept = query(&c, &s, &format!("soil_temp{{device=\"{part}\"}}"), later + 1).await;
    assert_eq!(single_value(&kept), 5000.0, "the write after the request is kept");

    // Once completed, rollups (recomputed by the cold erase) answer again, with the same value.
    let before = rollup_selects(&c, &s).await;
    assert_eq!(single_value(&query(&c, &s, &rollup_q, h).await), expect as f64, "recomputed rollups");
    assert_eq!(rollup_selects(&c, &s).await, before + 1, "rollups are used again after completion");

    // Bytes: no hot segment, log segment or cold file holds the deleted device's id.
    for sub in ["hot", "log", "cold"] {
        let found = files_containing(&dir.path().join(sub), gone.as_bytes());
        assert!(found.is_empty(), "{sub} still holds {gone}: {found:?}");
    }
    // PyIceberg: every live snapshot of every table of the tenant.
    let checks = serde_json::json!([
        {"series_ids": ids(&gone), "start_ms": null, "end_ms": null},
        {"series_ids": ids(&part), "start_ms": p0, "end_ms": p1},
    ]);
    let (clean, report) = pyiceberg(dir.path(), serde_json::json!({"mode": "check", "checks": checks}));
    assert!(clean, "covered rows in a live snapshot: {report}");
    assert!(report["tables"].as_object().unwrap().len() >= 3, "samples, rollups and series tables read: {report}");
    let (_, cold_after) = pyiceberg(dir.path(), serde_json::json!({"mode": "devices"}));
    for i in (0..DEVICES).filter(|&i| i != 7) {
        let (b, a) = (&cold_before["devices"][device(i)], &cold_after["devices"][device(i)]);
        let expect = b["rows"].as_u64().unwrap() - if i == 11 { 60 } else { 0 };
        assert_eq!(a["rows"], expect, "{}: {a} vs {b}", device(i));
        if i != 11 {
            assert_eq!(a["sum"], b["sum"], "{}", device(i));
        }
    }
    assert!(cold_after["devices"].get(&gone).is_none(), "{cold_after}");

    // The proof in the CLI, the audit log and /metrics.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["admin", "--url", &s.base, "--admin-token", ADMIN, "delete", "status", &id7])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("state completed") && text.contains("bound met"), "{text}");
    assert!(text.contains("hot samples 0, hot series 0, cold rows 0"), "{text}");
    let (code, audit) = admin(&c, &s, reqwest::Method::GET, "/admin/v1/erasure/audit?tenant=default", None).await;
    assert_eq!(code, 200);
    let records = audit["data"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{audit}");
    let rec = records.iter().find(|r| r["id"] == id7.as_str()).unwrap();
    assert_eq!(rec["requested_by"], "admin");
    assert_eq!(rec["selectors"][0], format!("{{device=\"{gone}\"}}"));
    assert!(rec["files_touched"].as_u64().unwrap() > 0, "{rec}");
    let m = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.lines().any(|l| l == "strata_erasure_requests_completed_total 2"), "{m}");
    assert!(m.lines().any(|l| l.starts_with("strata_erasure_samples_removed_total ") && !l.ends_with(" 0")), "{m}");
    assert!(m.contains("strata_erasure_purge_duration_seconds_count"), "{m}");
}

/// Waits for a node that aborts itself (`STRATA_ERASURE_CRASH_AFTER`: the
/// hook says `STRATA_ERASURE_CRASH_AT <point>: aborting`) to die.
fn wait_crashed(mut s: Server, step: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(!status.success(), "the node exited cleanly instead of crashing after {step}");
            let log = s.stderr.lock().unwrap().clone();
            assert!(log.contains("STRATA_ERASURE_CRASH_AT"), "crashed for another reason:\n{log}");
            return;
        }
        if Instant::now() >= deadline {
            panic!("the node never reached the crash point after {step}:\n{}", s.stderr.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_crashed_after_every_step_resumes_and_completes() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &env("1h"));
    let c = client();
    let now = now_ms();
    let (body, _) = fleet(now);
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    internal(&c, &s, ADMIN, "/internal/flush").await;
    internal(&c, &s, ADMIN, "/internal/roll").await;
    let gone = device(3);
    let (code, r) = admin(
        &c,
        &s,
        reqwest::Method::POST,
        "/admin/v1/tenants/default/delete",
        Some(serde_json::json!({"match": [format!("{{device=\"{gone}\"}}")]})),
    )
    .await;
    assert_eq!(code, 202, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    s.kill9();
    // Each start runs the purge after a second and dies right after the next step
    // did its work, before its status was recorded: the step runs again.
    for step in ["log", "hot", "cold", "verify"] {
        let mut e = env("1s");
        e.push(("STRATA_ERASURE_CRASH_AFTER", step));
        let s = Server::start(dir.path(), &e);
        wait_crashed(s, step);
    }
    let s = Server::start(dir.path(), &env("1s"));
    let st = wait_completed(&c, &s, &id, Duration::from_secs(120)).await;
    let status = &st["status"];
    for k in ["hot_samples", "hot_series", "cold_rows", "cold_unreferenced_objects", "log_samples"] {
        assert_eq!(status["verification"][k], 0, "verification {k}: {st:#}");
    }
    assert_eq!(status["bound_met"], true, "{st:#}");
    let counts = by_device(&c, &s, "sum by (device) (count_over_time(soil_temp[11h]))", now).await;
    assert!(!counts.contains_key(&gone));
    assert_eq!(counts.len(), DEVICES - 1, "neighbours intact after the crashes: {counts:?}");
    assert!(counts.values().all(|&n| n == 290.0), "{counts:?}");
    for sub in ["hot", "log", "cold"] {
        let found = files_containing(&dir.path().join(sub), gone.as_bytes());
        assert!(found.is_empty(), "{sub} still holds {gone}: {found:?}");
    }
}
