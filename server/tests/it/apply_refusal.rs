//! A hot store that refuses writes for now (poisoned by a failed flush)
//! answers a write with 503 and `Retry-After`, through the real write router,
//! embedded log and hot store: the refusal keeps its kind (*Unavailable*)
//! from `hot_store::Error` through `LogSink` and the log to the answer
//! (before the typed sink it was a 500 without `Retry-After`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_ingest::http::WriteState;
use strata_ingest::{IngestLog, LocalLog, LogConfig, LogSink};
use strata_schemas::{Access, AuthError, RegionDirectory, TenantId, TenantPolicy, TenantResolver};
use tower::ServiceExt;

#[derive(Debug)]
struct Everyone;

impl TenantResolver for Everyone {
    fn resolve(&self, _: Option<&str>, _: Access) -> Result<TenantId, AuthError> {
        Ok(TenantId::new("default").unwrap())
    }

    fn policy(&self, tenant: &TenantId) -> Option<Arc<TenantPolicy>> {
        Some(Arc::new(TenantPolicy::new(tenant.clone(), "local")))
    }
}

async fn write(app: &axum::Router, line: &str) -> (u16, Option<String>, String) {
    let req = Request::post("/api/v2/write?precision=ms").body(Body::from(line.to_owned())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, retry, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_store_refusing_writes_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let hot = Arc::new(HotStore::open(&dir.path().join("hot"), HotStoreConfig::default()).unwrap());
    let floor = Arc::clone(&hot);
    let log = LocalLog::open(&dir.path().join("log"), &LogConfig::default(), |p| floor.replay_from(p), {
        Arc::clone(&hot) as Arc<dyn LogSink>
    })
    .unwrap();
    let state = WriteState {
        log: Arc::new(log) as Arc<dyn IngestLog>,
        resolver: Arc::new(Everyone),
        config: Arc::new(strata_ingest::IngestConfig::default()),
        metrics: Arc::default(),
        series_cache: Arc::new(strata_ingest::series_cache::SeriesCache::new(1 << 10)),
        regions: Arc::new(RegionDirectory::single("local", "local", "http://127.0.0.1:9470")),
        rate_limiter: Arc::default(),
        store_view: None,
    };
    let app = strata_ingest::http::router(state);
    let now = strata_schemas::time::now_millis();
    let (status, _, body) = write(&app, &format!("m,device=d1 v=1 {now}")).await;
    assert_eq!(status, 204, "{body}");

    // A flush that fails (not for a full disk) poisons the store: it keeps
    // serving reads and refuses writes until a restart replays the log.
    strata_hot_store::failpoint::arm("segment.before_fsync");
    assert!(hot.flush().is_err());
    strata_hot_store::failpoint::disarm();

    let (status, retry, body) = write(&app, &format!("m,device=d1 v=2 {}", now + 1)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"), "{body}");
    assert!(body.contains("refused") && body.contains("unavailable"), "{body}");
}
