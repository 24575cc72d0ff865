use super::*;
use crate::auth::StaticTokens;
use axum::body::Body;
use std::collections::BTreeMap;

const ADMIN: &str = "startup-test-admin-token";

async fn gate(dir: &std::path::Path) -> (Arc<Startup>, Router) {
    let registry =
        crate::registry::open_for(None, dir, StaticTokens::new(&BTreeMap::new()).unwrap(), "local", Default::default())
            .await
            .unwrap();
    let startup = Startup::new(4);
    let router = startup.router(TasksState {
        resolver: Arc::clone(&registry) as Arc<dyn strata_schemas::TenantResolver>,
        registry,
        admin_token: ADMIN.into(),
    });
    (startup, router)
}

/// Status, `Retry-After` and body of `method path` sent to `router`.
async fn call(router: &Router, method: &str, path: &str) -> (u16, Option<String>, String) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(router.clone(), req).await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, retry, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn while_starting_only_status_console_and_metrics_answer_and_the_rest_is_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (startup, router) = gate(dir.path()).await;
    startup.set_phase(Phase::Replaying);

    let (status, retry, body) = call(&router, "GET", "/-/ready").await;
    assert_eq!((status, retry.as_deref()), (503, Some("2")), "{body}");
    assert!(body.starts_with("Strata is not ready: replaying the ingest log"), "{body}");
    assert_eq!(call(&router, "GET", "/-/healthy").await.0, 200);
    let (status, _, body) = call(&router, "GET", "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("Strata console"), "{body}");
    let (status, _, body) = call(&router, "GET", "/api/v1/status/tasks").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"]["scope"], "all");
    let (status, _, body) = call(&router, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("\nstrata_ready 0\n") && body.contains("strata_progress_running_tasks{task=\"replay\"}"),
        "{body}"
    );

    // Queries, peers, other regions and the admin API: Prometheus's error shape.
    for (method, path) in [
        ("GET", "/api/v1/query?query=up"),
        ("GET", "/api/v1/labels"),
        ("POST", "/internal/v1/select"),
        ("POST", "/internal/v1/region/select"),
        ("GET", "/admin/v1/tenants"),
        ("GET", "/api/v1/status/ingest"),
    ] {
        let (status, retry, body) = call(&router, method, path).await;
        assert_eq!((status, retry.as_deref()), (503, Some("2")), "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["status"].as_str(), v["errorType"].as_str()), (Some("error"), Some("unavailable")), "{path}");
        assert!(v["error"].as_str().unwrap().starts_with("the node is starting (replaying the ingest log"), "{v}");
    }
    // Writes: the write APIs' shape.
    for path in ["/api/v2/write", "/write", "/api/v1/write", "/otlp/v1/metrics"] {
        let (status, retry, body) = call(&router, "POST", path).await;
        assert_eq!((status, retry.as_deref()), (503, Some("2")), "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "unavailable", "{path}");
        assert!(v["message"].as_str().unwrap().contains("retry in 2 s"), "{v}");
    }
}

#[tokio::test]
async fn once_ready_every_request_goes_to_the_full_app() {
    let dir = tempfile::tempdir().unwrap();
    let (startup, router) = gate(dir.path()).await;
    assert!(!startup.is_ready());
    assert!(call(&router, "GET", "/-/ready").await.2.contains("opening the hot store"));
    startup.set_phase(Phase::Wiring);
    assert!(call(&router, "GET", "/-/ready").await.2.contains("opening the cold tier"));
    let app = Router::new()
        .route("/-/ready", get(|| async { "Strata is Ready.\n" }))
        .route("/api/v1/query", get(|| async { "answered" }));
    startup.ready(app);
    assert!(startup.is_ready());
    assert_eq!(call(&router, "GET", "/-/ready").await, (200, None, "Strata is Ready.\n".to_owned()));
    assert_eq!(call(&router, "GET", "/api/v1/query?query=up").await, (200, None, "answered".to_owned()));
    // The full app's own 404, not the startup 503.
    assert_eq!(call(&router, "GET", "/metrics").await.0, 404);
}

#[test]
fn the_replay_is_described_with_its_partition_progress_rate_and_eta() {
    let registry = progress::Registry::new();
    let task = registry.start(TaskKind::Replay, None, Some(2), "records", Some(3000));
    task.add(1230);
    let snap = registry.running().pop().unwrap();
    let text = describe_replay(&snap, 4);
    assert!(
        text.starts_with("replaying the ingest log: partition 2 (3 of 4), 41.0 % (1230 of 3000 records, "),
        "{text}"
    );
    assert!(text.contains(" records/s") && text.ends_with(')'), "{text}");
    let unknown = registry.start(TaskKind::Replay, None, Some(0), "records", None);
    let snap = registry.running().into_iter().find(|t| t.partition == Some(0)).unwrap();
    let text = describe_replay(&snap, 1);
    assert!(text.starts_with("replaying the ingest log: partition 0 (1 of 1) (0 of ? records, 0 records/s"), "{text}");
    assert!(!text.contains("left"), "no ETA without a total: {text}");
    drop(unknown);
}
