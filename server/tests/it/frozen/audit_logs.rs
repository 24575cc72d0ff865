//! The JSON-lines audit logs, format version 1 (`v: 1`), all read back by
//! the server (the admin API's `GET /admin/v1/actions` and `strata admin
//! actions`, `GET /admin/v1/erasure/audit`, `GET /admin/v1/audit`):
//!
//! * `admin-audit/v1/admin.jsonl` (`server/src/admin_audit.rs`),
//! * `erasure-audit/v1/erasure.jsonl` (`server/src/erasure/audit.rs`),
//! * `region-audit/v1/audit-1.jsonl` (`server/src/audit.rs`),
//!
//! each written by this build's writer from fixed input, with a torn line
//! in the middle as a crash leaves it (the next append starts a new line).
//! Tests read each file with its reader and check every record, and write
//! the same input again and compare with the file (times masked for the
//! admin log, whose writer stamps them), which freezes the line format.
//! `corrupt/` files hold a line that is not JSON and a record of an
//! unknown version (`v: 2`): readers skip both, the second with a warning
//! naming the file, the line and the version.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use strata::admin_audit::{AdminAudit, AuditState, layer};
use strata::audit::{AuditLog, Filter, Record};
use strata::erasure::DeleteSpec;
use strata::erasure::audit::ErasureAudit;
use strata::erasure::status::Status;
use strata::erasure::worker::Request as DeleteRequest;
use strata_schemas::TenantId;

use super::{may_write, read, store};

const T0: i64 = 1_764_806_400_000;
/// The torn record a crash left (no newline).
const TORN: &[u8] = b"{\"v\":1,\"time_ms\":1764806405000,\"ten";

/// A copy of `tests/fixtures/<rel>` (a log file) in a new directory, named `file`.
fn copy_log(rel: &str, file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), read(rel)).unwrap();
    dir
}

/// Appends the torn record to `path` as a crash mid-write leaves it.
fn tear(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(TORN).unwrap();
}

/// `"key":<digits>` → `"key":0` in every line (the admin writer stamps times).
fn mask(text: &str, keys: &[&str]) -> String {
    let mut out = text.to_owned();
    for key in keys {
        let pat = format!("\"{key}\":");
        let mut from = 0;
        while let Some(i) = out[from..].find(&pat).map(|i| i + from + pat.len()) {
            let digits = out[i..].bytes().take_while(u8::is_ascii_digit).count();
            out.replace_range(i..i + digits, "0");
            from = i + 1;
        }
    }
    out
}

// ---- admin.jsonl ----

const ADMIN: &str = "admin-secret";

/// The admin routes the fixture's requests hit: each answers 401 without
/// the admin token (as the real admin API does), else a fixed body.
fn admin_app(log: Arc<AdminAudit>) -> Router {
    let statics = BTreeMap::from([("static-secret".to_owned(), "beta".to_owned())]);
    let state = AuditState {
        log,
        admin_token: Arc::from(ADMIN),
        static_tokens: strata::auth::StaticTokens::new(&statics).unwrap(),
    };
    let guarded = |body: Value| {
        move |headers: HeaderMap| {
            let body = body.clone();
            async move {
                let ok = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer admin-secret");
                if ok {
                    axum::Json(body).into_response()
                } else {
                    let err = json!({"status": "error", "errorType": "unauthorized",
                                     "error": "the admin API needs the admin token"});
                    (StatusCode::UNAUTHORIZED, axum::Json(err)).into_response()
                }
            }
        }
    };
    Router::new()
        .route("/admin/v1/tenants/{id}/limits", axum::routing::put(guarded(json!({"status": "success"}))))
        .route(
            "/admin/v1/tenants/{id}/tokens",
            axum::routing::post(guarded(json!({"id": "tok7", "token": "st_tok7_SECRET"}))),
        )
        .route("/admin/v1/tenants", axum::routing::get(guarded(json!({"status": "success", "data": []}))))
        .route_layer(axum::middleware::from_fn_with_state(state, layer))
}

/// The fixture's requests, in order; the torn record goes after the second.
fn admin_requests() -> Vec<Request<Body>> {
    let req = |method: &str, uri: &str, token: Option<&str>, body: &str| {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("user-agent", "strata-admin/0.1.0")
            .header("x-strata-actor", "ops@farm-gw");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if !body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        b.body(Body::from(body.to_owned())).unwrap()
    };
    vec![
        req("PUT", "/admin/v1/tenants/acme/limits", Some(ADMIN), r#"{"ingestion_rate":50000,"max_series":100000}"#),
        req("POST", "/admin/v1/tenants/acme/tokens", Some(ADMIN), r#"{"name":"gateway"}"#),
        req("GET", "/admin/v1/tenants?limit=5", Some("st_tok7_WRONG"), ""),
        req("GET", "/admin/v1/tenants", None, ""),
    ]
}

/// Writes the admin log of [`admin_requests`] in `dir` through the layer.
fn write_admin_log(dir: &Path) {
    let log = Arc::new(AdminAudit::open(dir).unwrap());
    let app = admin_app(Arc::clone(&log));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (i, r) in admin_requests().into_iter().enumerate() {
        if i == 2 {
            tear(log.path());
        }
        rt.block_on(tower::ServiceExt::oneshot(app.clone(), r)).unwrap();
    }
}

#[test]
fn admin_audit_v1_fixture_reads_back_exactly() {
    let dir = copy_log("admin-audit/v1/admin.jsonl", "admin.jsonl");
    let log = AdminAudit::open(dir.path()).unwrap();
    let all = log.list(None, 100).unwrap();
    assert_eq!(all.len(), 4, "the torn line is skipped: {all:?}");
    let field = |r: &Value, k: &str| r[k].clone();
    let who: Vec<Value> = all.iter().map(|r| field(r, "who")).collect();
    assert_eq!(who, vec![json!("admin"), json!("admin"), json!("invalid-token"), json!("none")]);
    let first = &all[0];
    assert_eq!(first["v"], 1);
    assert!(first["time_ms"].as_i64().is_some_and(|t| t > 1_700_000_000_000) && first["duration_ms"].is_u64());
    assert_eq!(
        (first["method"].clone(), first["path"].clone()),
        (json!("PUT"), json!("/admin/v1/tenants/acme/limits"))
    );
    assert_eq!(first["route"], "/admin/v1/tenants/{id}/limits");
    assert_eq!(
        (first["tenant"].clone(), first["status"].clone(), first["result"].clone()),
        (json!("acme"), json!(200), json!("ok"))
    );
    assert_eq!(first["request"], json!({"ingestion_rate": 50000, "max_series": 100000}));
    assert_eq!(
        (first["user_agent"].clone(), first["actor"].clone()),
        (json!("strata-admin/0.1.0"), json!("ops@farm-gw"))
    );
    assert_eq!(first["client"], Value::Null, "no listener in the generator");
    // A token issue keeps the new token's id, never the token.
    assert_eq!(all[1]["token_id"], "tok7");
    assert!(!serde_json::to_string(&all).unwrap().contains("SECRET"));
    // Refusals: status, result and the answer's error text.
    assert_eq!((all[2]["status"].clone(), all[2]["result"].clone()), (json!(401), json!("refused")));
    assert_eq!(all[2]["query"], "limit=5");
    assert_eq!(all[3]["error"], "the admin API needs the admin token");
    // The reader's filter and limit.
    assert_eq!(log.list(Some("acme"), 100).unwrap().len(), 2);
    assert_eq!(log.list(None, 1).unwrap(), vec![all[3].clone()]);
}

#[test]
fn admin_audit_v1_lines_are_what_this_build_writes() {
    let dir = tempfile::tempdir().unwrap();
    write_admin_log(dir.path());
    let written = std::fs::read_to_string(dir.path().join("admin.jsonl")).unwrap();
    let fixture = String::from_utf8(read("admin-audit/v1/admin.jsonl")).unwrap();
    assert_eq!(mask(&written, &["time_ms", "duration_ms"]), mask(&fixture, &["time_ms", "duration_ms"]));
}

// ---- erasure.jsonl ----

/// A completed request's record as `ErasureAudit::record` builds it, at a fixed time.
fn erasure_record(id: &str, tenant: &str, requested_by: &str) -> Value {
    let req = DeleteRequest {
        id: id.to_owned(),
        tenant: TenantId::new(tenant).unwrap(),
        spec: DeleteSpec {
            selectors: vec![r#"temp{device="d1"}"#.to_owned()],
            start: T0 - 86_400_000,
            end: T0,
            requested_by: requested_by.to_owned(),
        },
        selectors: Vec::new(),
        requested_at: T0 + 1_000,
    };
    let status: Status = serde_json::from_value(json!({
        "state": "completed",
        "invisible_at": T0 + 1_000,
        "deadline": T0 + 1_000 + 86_400_000,
        "nodes_expected": 1,
        "nodes": {"node-a": {"steps": {
            "hot": {"state": "done", "files_rewritten": 1, "rows_removed": 120, "bytes_rewritten": 4096,
                    "detail": {"files": ["hot/acme/1764720000000/00000000000000000007.seg"]}},
            "cold": {"state": "done", "files_rewritten": 1, "files_deleted": 1, "rows_removed": 2880, "bytes_rewritten": 9465,
                     "detail": {"files": ["samples_acme/data/ts_day=2025-12-03/device_bucket=3/erase-samples-0001.parquet"]}}
        }}},
        "tiers": {
            "log": {"state": "done", "finished_at": T0 + 2_000},
            "hot": {"state": "done", "files_rewritten": 1, "rows_removed": 120, "bytes_rewritten": 4096, "finished_at": T0 + 3_000},
            "cold": {"state": "done", "files_rewritten": 1, "files_deleted": 1, "rows_removed": 2880, "bytes_rewritten": 9465, "finished_at": T0 + 4_000},
            "verify": {"state": "done", "finished_at": T0 + 5_000}
        },
        "verification": {"at": T0 + 5_000},
        "log_policy": "local: segments rewritten",
        "completed_at": T0 + 5_000,
        "bound_met": true,
        "rows_removed": 3000,
        "bytes_rewritten": 13561,
        "files_touched": 3
    }))
    .unwrap();
    let mut v = ErasureAudit::record(&req, &status);
    v["time_ms"] = json!(T0 + 5_001);
    v
}

fn write_erasure_log(dir: &Path) {
    let log = ErasureAudit::new(dir);
    log.append(&erasure_record("del_01", "acme", "admin")).unwrap();
    tear(&dir.join(strata::erasure::audit::FILE));
    log.append(&erasure_record("del_02", "beta", "token:beta")).unwrap();
}

#[test]
fn erasure_audit_v1_fixture_reads_back_exactly() {
    let dir = copy_log("erasure-audit/v1/erasure.jsonl", "erasure.jsonl");
    let log = ErasureAudit::new(dir.path());
    let all = log.list(None).unwrap();
    assert_eq!(all, vec![erasure_record("del_01", "acme", "admin"), erasure_record("del_02", "beta", "token:beta")]);
    let r = &all[0];
    assert_eq!((r["v"].clone(), r["id"].clone(), r["bound_met"].clone()), (json!(1), json!("del_01"), json!(true)));
    assert_eq!(r["tiers"]["cold"]["rows_removed"], 2880);
    assert!(r["tiers"].get("verify").is_none(), "the verify step is in `verification`");
    assert_eq!(r["files"]["node-a"]["hot"][0], "hot/acme/1764720000000/00000000000000000007.seg");
    assert_eq!(log.list(Some("beta")).unwrap().len(), 1);
}

#[test]
fn erasure_audit_v1_lines_are_what_this_build_writes() {
    let dir = tempfile::tempdir().unwrap();
    write_erasure_log(dir.path());
    assert_eq!(std::fs::read(dir.path().join("erasure.jsonl")).unwrap(), read("erasure-audit/v1/erasure.jsonl"));
}

// ---- audit-<n>.jsonl (cross-region requests) ----

fn region_records() -> Vec<Record> {
    let rec = |side: &str, query: &str, crossed: &str, decision: &str, rule: &str, series: u64, bytes: u64, at: i64| {
        let mut r = Record::new(side, "acme", "us-east", "eu-central", query, crossed, decision, rule.to_owned());
        (r.time_ms, r.series, r.bytes) = (T0 + at, series, bytes);
        r
    };
    vec![
        rec("sent", "sum by (farm) (temp)", "aggregate_series", "allowed", "eu: aggregates", 2, 311, 0),
        rec("received", "sha256:9f86d081884c7d65", "raw_series", "refused", "eu: aggregates (raw refused)", 0, 0, 10),
        rec("received", "count(temp)", "series_count", "allowed", "eu: aggregates", 1, 27, 20),
    ]
}

fn write_region_log(dir: &Path) {
    let log = AuditLog::open(dir).unwrap();
    let recs = region_records();
    log.append(&recs[0]).unwrap();
    tear(&dir.join("audit-1.jsonl"));
    log.append(&recs[1]).unwrap();
    log.append(&recs[2]).unwrap();
}

#[test]
fn region_audit_v1_fixture_reads_back_exactly() {
    let dir = copy_log("region-audit/v1/audit-1.jsonl", "audit-1.jsonl");
    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(log.list(&Filter::default()).unwrap(), region_records());
    let refused = Filter { decision: Some("refused".into()), ..Filter::default() };
    assert_eq!(log.list(&refused).unwrap(), vec![region_records()[1].clone()]);
    let r = &region_records()[0];
    assert_eq!((r.v, r.query_sha256.len()), (1, 16));
}

#[test]
fn region_audit_v1_lines_are_what_this_build_writes() {
    let dir = tempfile::tempdir().unwrap();
    write_region_log(dir.path());
    assert_eq!(std::fs::read(dir.path().join("audit-1.jsonl")).unwrap(), read("region-audit/v1/audit-1.jsonl"));
}

// ---- corrupt lines, unknown versions ----

/// Each log's `corrupt/` file: its first record with `v: 2`, a line that
/// is not JSON, its last record. Readers return the last record only, and
/// warn about each line they skip: the record of an unknown version naming
/// the file, line 1 and version 2 (`server/src/jsonl.rs`, `known_version`),
/// the line that does not parse naming the file and line 2 (`parse_line`).
#[test]
fn audit_logs_skip_lines_that_do_not_parse_and_records_of_unknown_versions_with_a_warning() {
    let unknown =
        |path: &Path| format!("skipping {}:1: a record of format version 2, this node reads 1..=1", path.display());
    let not_json = |path: &Path| format!("skipping {}:2: not one JSON value", path.display());

    let dir = copy_log("admin-audit/v1/corrupt/admin.jsonl", "admin.jsonl");
    let log = AdminAudit::open(dir.path()).unwrap();
    let (admin, warned) = strata_test_support::logs::warnings_of(|| log.list(None, 100).unwrap());
    let good = AdminAudit::open(copy_log("admin-audit/v1/admin.jsonl", "admin.jsonl").path()).unwrap().list(None, 100);
    assert_eq!(admin, vec![good.unwrap().pop().unwrap()]);
    assert!(warned.contains(&unknown(log.path())) && warned.contains(&not_json(log.path())), "{warned}");
    assert_eq!(warned.matches("skipping").count(), 2, "the good last record is not warned about: {warned}");

    let dir = copy_log("erasure-audit/v1/corrupt/erasure.jsonl", "erasure.jsonl");
    let (erasure, warned) =
        strata_test_support::logs::warnings_of(|| ErasureAudit::new(dir.path()).list(None).unwrap());
    assert_eq!(erasure, vec![erasure_record("del_02", "beta", "token:beta")]);
    let path = dir.path().join("erasure.jsonl");
    assert!(warned.contains(&unknown(&path)) && warned.contains(&not_json(&path)), "{warned}");

    let dir = copy_log("region-audit/v1/corrupt/audit-1.jsonl", "audit-1.jsonl");
    let (region, warned) = strata_test_support::logs::warnings_of(|| {
        AuditLog::open(dir.path()).unwrap().list(&Filter::default()).unwrap()
    });
    assert_eq!(region, vec![region_records()[2].clone()]);
    let path = dir.path().join("audit-1.jsonl");
    assert!(warned.contains(&unknown(&path)) && warned.contains(&not_json(&path)), "{warned}");
}

/// Writes the three logs (version 1, the current one) and their corrupt
/// variants with this build:
/// `STRATA_WRITE_FIXTURES=1 cargo test -p strata --test it
/// frozen::audit_logs::regenerate_audit_log_v1_fixtures -- --ignored`.
#[test]
#[ignore = "writes tests/fixtures/{admin,erasure,region}-audit/v1; run by hand only (README)"]
fn regenerate_audit_log_v1_fixtures() {
    if !may_write("{admin,erasure,region}-audit/v1") {
        return;
    }
    // (format directory, file name, writer of a log in a directory)
    type Log = (&'static str, &'static str, fn(&Path));
    let logs: [Log; 3] = [
        ("admin-audit", "admin.jsonl", write_admin_log),
        ("erasure-audit", "erasure.jsonl", write_erasure_log),
        ("region-audit", "audit-1.jsonl", write_region_log),
    ];
    for (format, file, write) in logs {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path());
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        store(&format!("{format}/v1/{file}"), text.as_bytes());
        // The first record as version 2, a line that is not JSON, the last record.
        let lines: Vec<&str> = text.lines().collect();
        let v2 = lines[0].replacen("\"v\":1", "\"v\":2", 1);
        assert_ne!(v2, lines[0], "{file}: no \"v\":1 in {}", lines[0]);
        let corrupt = format!("{v2}\nnot json at all\n{}\n", lines[lines.len() - 1]);
        store(&format!("{format}/v1/corrupt/{file}"), corrupt.as_bytes());
    }
}
