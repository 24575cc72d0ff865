//! What InfluxDB clients ask besides writes, answered so they run unchanged.
//!
//! | request | who asks | answer |
//! |---|---|---|
//! | `GET`/`HEAD /ping` | InfluxDB 1.x clients, Telegraf, `influxdb-client`'s `ping()` | `204`, `X-Influxdb-Version`, `X-Influxdb-Build` |
//! | `GET /health` | InfluxDB 2 clients (`health()`) | `200` `{"status":"pass",…}` in InfluxDB 2's shape |
//! | `GET /ready` | InfluxDB 2 clients (`ready()`) | `200` `{"status":"ready","started":…,"up":…}` |
//! | `GET`/`POST /query?q=CREATE DATABASE …` | Telegraf's influxdb output at startup | `200` `{"results":[{"statement_id":0}]}`: nothing to create (a bucket or database name does not change where data goes) |
//! | `/query` with any other InfluxQL | — | `400` naming the statement and pointing at PromQL (`/api/v1/query`) |
//!
//! None of these read or change data, so none needs a token; a write still
//! needs one once the node has tenants.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The InfluxDB version these answers imitate (clients check only that it is 1.x or 2.x-shaped).
pub const INFLUXDB_COMPAT_VERSION: &str = "1.8.10";

/// The routes (stateless).
pub fn router() -> Router {
    let started = (SystemTime::now(), Instant::now());
    Router::new()
        .route("/ping", get(ping).head(ping))
        .route("/health", get(health))
        .route("/ready", get(move || ready(started)))
        .route("/query", get(query).post(query_post))
}

async fn ping() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert("X-Influxdb-Version", HeaderValue::from_static(INFLUXDB_COMPAT_VERSION));
    h.insert("X-Influxdb-Build", HeaderValue::from_static("OSS"));
    h.insert("X-Strata-Version", HeaderValue::from_static(env!("CARGO_PKG_VERSION")));
    resp
}

async fn health() -> Response {
    axum::Json(serde_json::json!({
        "name": "strata",
        "message": "ready for queries and writes",
        "status": "pass",
        "checks": [],
        "version": env!("CARGO_PKG_VERSION"),
        "commit": "",
    }))
    .into_response()
}

async fn ready(started: (SystemTime, Instant)) -> Response {
    let since = started.0.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    axum::Json(serde_json::json!({
        "status": "ready",
        "started": rfc3339(since.as_secs()),
        "up": format!("{:.3}s", started.1.elapsed().as_secs_f64()),
    }))
    .into_response()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (civil-from-days, proleptic Gregorian).
fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

async fn query(Query(params): Query<HashMap<String, String>>) -> Response {
    answer(params.get("q").map(String::as_str).unwrap_or(""))
}

async fn query_post(Query(params): Query<HashMap<String, String>>, body: Bytes) -> Response {
    // `q` in the URL or in a form body (InfluxDB 1.x accepts both).
    if let Some(q) = params.get("q") {
        return answer(q);
    }
    let form: HashMap<String, String> = url_form(&body);
    answer(form.get("q").map(String::as_str).unwrap_or(""))
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The answer to an InfluxQL text: every statement must be `CREATE DATABASE`.
fn answer(q: &str) -> Response {
    let statements: Vec<&str> = q.split(';').map(str::trim).filter(|s| !s.is_empty()).collect();
    if statements.is_empty() {
        return refuse("missing required parameter \"q\"".to_owned());
    }
    for (i, s) in statements.iter().enumerate() {
        if !is_create_database(s) {
            let shown: String = s.chars().take(80).collect();
            return refuse(format!(
                "statement {} ({shown:?}) is InfluxQL, which Strata does not run: only CREATE DATABASE is accepted \
                 (as a no-op, for clients that create their database at startup); query with PromQL at /api/v1/query",
                i + 1
            ));
        }
    }
    let results: Vec<serde_json::Value> =
        (0..statements.len()).map(|i| serde_json::json!({ "statement_id": i })).collect();
    axum::Json(serde_json::json!({ "results": results })).into_response()
}

fn is_create_database(s: &str) -> bool {
    let words: Vec<String> = s.split_whitespace().take(2).map(str::to_ascii_uppercase).collect();
    words.len() == 2 && words[0] == "CREATE" && words[1] == "DATABASE" && s.split_whitespace().count() >= 3
}

fn refuse(error: String) -> Response {
    let mut resp = (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "error": error }))).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_700_000), "2025-12-02T18:26:40Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn only_create_database_is_accepted() {
        assert!(is_create_database("CREATE DATABASE \"telegraf\""));
        assert!(is_create_database("create   database telegraf WITH DURATION 1d"));
        assert!(!is_create_database("CREATE DATABASE"));
        assert!(!is_create_database("DROP DATABASE telegraf"));
        assert!(!is_create_database("SELECT * FROM cpu"));
        assert_eq!(answer("CREATE DATABASE a; CREATE DATABASE b").status(), StatusCode::OK);
        assert_eq!(answer("CREATE DATABASE a; SHOW MEASUREMENTS").status(), StatusCode::BAD_REQUEST);
        assert_eq!(answer("").status(), StatusCode::BAD_REQUEST);
        assert_eq!(decode("CREATE+DATABASE+%22telegraf%22"), "CREATE DATABASE \"telegraf\"");
    }
}
