//! HTTP API tests through the axum router.

use super::{QueryState, router};
use crate::QueryConfig;
use crate::engine::Engine;
use crate::test_util::MemStore;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use std::sync::Arc;
use strata_schemas::{Access, AuthError, TenantId, TenantResolver};
use tower::ServiceExt;

/// `Bearer a` → tenant a, `Bearer b` → tenant b, `Bearer w` → write-only, none → 401.
#[derive(Debug)]
struct Resolver;

impl TenantResolver for Resolver {
    fn resolve(&self, authorization: Option<&str>, access: Access) -> Result<TenantId, AuthError> {
        let token = strata_schemas::tenant::parse_authorization(authorization.ok_or(AuthError::MissingToken)?)?;
        match token {
            "a" | "b" => Ok(TenantId::new(token).expect("valid")),
            "w" => Err(AuthError::Forbidden { tenant: TenantId::new("w").expect("valid"), access }),
            _ => Err(AuthError::InvalidToken),
        }
    }
}

fn app() -> axum::Router {
    let store = MemStore::new();
    let a = TenantId::new("a").unwrap();
    store.load(&a, 60_000, "up{job=\"x\"} 1 1 0\nreq_total{job=\"x\"} 0+60x10").unwrap();
    store.load(&TenantId::new("b").unwrap(), 60_000, "secret{job=\"y\"} 42").unwrap();
    let engine = Arc::new(Engine::new(Arc::new(store), QueryConfig::default()));
    router(QueryState::new(engine, Arc::new(Resolver)))
}

async fn call(req: Request<Body>) -> (StatusCode, String) {
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(uri: &str, token: &str) -> (StatusCode, String) {
    let req = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap();
    call(req).await
}

#[tokio::test]
async fn instant_query_uses_prometheus_envelope() {
    let (s, body) = get("/api/v1/query?query=up&time=60", "a").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"x"},"value":[60,"1"]}]}}"#
    );
    let (_, body) = get("/api/v1/query?query=1%2F0&time=1.5", "a").await;
    assert_eq!(body, r#"{"status":"success","data":{"resultType":"scalar","result":[1.500,"+Inf"]}}"#);
    let (_, body) = get("/api/v1/query?query=%22hi%22&time=2", "a").await;
    assert_eq!(body, r#"{"status":"success","data":{"resultType":"string","result":[2,"hi"]}}"#);
}

#[tokio::test]
async fn range_query_via_form_post() {
    let req = Request::post("/api/v1/query_range")
        .header(header::AUTHORIZATION, "Bearer a")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("query=rate(req_total%5B5m%5D)&start=600&end=1970-01-01T00:20:00Z&step=5m"))
        .unwrap();
    let (s, body) = call(req).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body.starts_with(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"x"},"values":[[600,"1"]"#
        ),
        "{body}"
    );
}

#[tokio::test]
async fn validation_errors_are_bad_data() {
    let (s, body) = get("/api/v1/query_range?query=up&start=10&end=0&step=1", "a").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"status":"error","errorType":"bad_data","error":"end timestamp must not be before start time"}"#
    );
    let (s, body) = get("/api/v1/query_range?query=up&start=0&end=10&step=x", "a").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#"invalid parameter \"step\": cannot parse \"x\" to a valid duration"#), "{body}");
    let (s, _) = get("/api/v1/query?query=sum(", "a").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, body) = get("/api/v1/query_range?query=up&start=0&end=100000&step=1", "a").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("exceeded maximum resolution of 11,000 points"), "{body}");
}

#[tokio::test]
async fn execution_errors_are_422() {
    let (s, body) = get("/api/v1/query?query=abs(%7Bjob%3D%22x%22%7D)&time=0", "a").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains(r#""errorType":"execution""#));
}

#[tokio::test]
async fn auth_failures_and_tenant_isolation() {
    let (s, _) = call(Request::get("/api/v1/query?query=up").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = get("/api/v1/query?query=up", "w").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, body) = get("/api/v1/query?query=secret&time=0", "a").await;
    assert!(body.contains(r#""result":[]"#), "{body}");
    let (_, body) = get("/api/v1/query?query=secret&time=0", "b").await;
    assert!(body.contains("42"), "{body}");
}

#[tokio::test]
async fn metadata_endpoints() {
    let (s, body) = get("/api/v1/series?match[]=up&start=0&end=600", "a").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, r#"{"status":"success","data":[{"__name__":"up","job":"x"}]}"#);
    let (s, _) = get("/api/v1/series", "a").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, body) = get("/api/v1/labels", "a").await;
    assert_eq!(body, r#"{"status":"success","data":["__name__","job"]}"#);
    let (_, body) = get("/api/v1/label/__name__/values", "a").await;
    assert_eq!(body, r#"{"status":"success","data":["req_total","up"]}"#);
    let (_, body) = get("/api/v1/label/__name__/values?limit=1", "a").await;
    assert_eq!(body, r#"{"status":"success","data":["req_total"],"warnings":["results truncated due to limit"]}"#);
    let (_, body) = get("/api/v1/status/buildinfo", "a").await;
    assert!(body.contains(r#""version":"3.5.0""#), "{body}");
    let (_, body) = get("/api/v1/metadata", "a").await;
    assert_eq!(body, r#"{"status":"success","data":{}}"#);
    let (_, body) = get("/api/v1/query_exemplars?query=up", "a").await;
    assert_eq!(body, r#"{"status":"success","data":[]}"#);
}

#[tokio::test]
async fn format_and_parse_query() {
    let (s, body) = get("/api/v1/format_query?query=sum%20by(job)(rate(req_total%5B5m%5D))", "a").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"status":"success","data":"sum by (job) (rate(req_total[5m]))"}"#);
    let req = Request::post("/api/v1/parse_query")
        .header(header::AUTHORIZATION, "Bearer a")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("query=up%7Bjob%3D%22x%22%7D%20offset%205m"))
        .unwrap();
    let (s, body) = call(req).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["type"], "vectorSelector");
    assert_eq!(v["data"]["name"], "up");
    assert_eq!(v["data"]["offset"], 300_000);
    assert_eq!(v["data"]["matchers"][1]["value"], "x");
    let (s, body) = get("/api/v1/format_query?query=sum(", "a").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""errorType":"bad_data""#), "{body}");
}

#[tokio::test]
async fn infos_are_reported() {
    // `up` does not look like a counter: Prometheus attaches an info annotation to rate(up[5m]).
    let (s, body) = get("/api/v1/query?query=rate(up%5B5m%5D)&time=120", "a").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body.ends_with(r#""infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"]}"#),
        "{body}"
    );
}

#[tokio::test]
async fn tenant_limits_apply() {
    let store = MemStore::new();
    let a = TenantId::new("a").unwrap();
    store.load(&a, 60_000, "m{i=\"1\"} 1 2\nm{i=\"2\"} 1 2\nm{i=\"3\"} 1 2").unwrap();
    let mut config = QueryConfig::default();
    config.tenant_limits.insert(
        "a".into(),
        crate::config::QueryLimits {
            max_series: Some(2),
            max_range: Some(std::time::Duration::from_secs(3600)),
            ..Default::default()
        },
    );
    let engine = Arc::new(Engine::new(Arc::new(store), config));
    let app = router(QueryState::new(engine, Arc::new(Resolver)));
    let req = |uri: &str| Request::get(uri).header(header::AUTHORIZATION, "Bearer a").body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req("/api/v1/query?query=m&time=60")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = String::from_utf8(to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(body.contains("the query exceeded the maximum number of series (limit: 2 series)"), "{body}");
    assert!(body.contains(r#""errorType":"execution""#), "{body}");
    let resp =
        app.oneshot(req("/api/v1/query?query=count_over_time(m%7Bi%3D%221%22%7D%5B2h%5D)&time=60")).await.unwrap();
    let body = String::from_utf8(to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(body.contains("the query time range exceeds the limit (query length: 2h, limit: 1h)"), "{body}");
}

#[tokio::test]
async fn deep_queries_are_refused_with_bad_data_on_every_parsing_endpoint() {
    let deep = format!("{}up{}", "abs(".repeat(3000), ")".repeat(3000));
    let deep = deep.replace('(', "%28").replace(')', "%29");
    for path in [
        format!("/api/v1/query?query={deep}&time=60"),
        format!("/api/v1/query_range?query={deep}&start=0&end=60&step=15"),
        format!("/api/v1/format_query?query={deep}"),
        format!("/api/v1/parse_query?query={deep}"),
        format!("/api/v1/series?match[]={deep}"),
    ] {
        let (s, body) = get(&path, "a").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.starts_with(r#"{"status":"error","errorType":"bad_data","error":"invalid parameter"#), "{body}");
        assert!(body.contains("nested too deeply"), "{body}");
    }
}

/// A federation for tenant `a`: the raw store is the router's own data,
/// `eu` lets only aggregates leave (it holds `up`; its partials answer
/// nothing, or it is down), `br` is excluded.
#[derive(Debug)]
struct Fed {
    store: Arc<MemStore>,
    eu_down: bool,
}

struct FedQuery {
    store: Arc<MemStore>,
    eu_down: bool,
    aggregates: Vec<String>,
    excluded: Vec<String>,
}

impl crate::federation::FederatedQuery for FedQuery {
    fn store(&self) -> &dyn strata_schemas::ReadStore {
        self.store.as_ref()
    }

    fn aggregate_jurisdictions(&self) -> &[String] {
        &self.aggregates
    }

    fn excluded_jurisdictions(&self) -> &[String] {
        &self.excluded
    }

    fn partials(
        &self,
        _: &str,
        exprs: &[String],
        _: crate::federation::Grid,
        _: std::time::Instant,
    ) -> Result<Vec<Vec<crate::federation::PartialSeries>>, crate::federation::RemoteError> {
        if self.eu_down {
            return Err(crate::federation::RemoteError::Unreachable("region eu-west timed out".into()));
        }
        Ok(vec![Vec::new(); exprs.len()])
    }

    fn count_series(
        &self,
        _: &str,
        matchers: &[strata_schemas::Matcher],
        _: strata_schemas::TimeRange,
        _: std::time::Instant,
    ) -> Result<u64, crate::federation::RemoteError> {
        let up = matchers.iter().any(|m| m.name == "__name__" && m.matches("up"));
        Ok(u64::from(up))
    }

    fn warnings(&self) -> Vec<String> {
        vec!["region us-west did not answer; its data is missing".into()]
    }
}

impl crate::federation::Federation for Fed {
    fn begin(
        &self,
        tenant: &TenantId,
        _: &str,
        _: bool,
    ) -> Result<Option<Box<dyn crate::federation::FederatedQuery>>, String> {
        if tenant.as_str() != "a" {
            return Ok(None);
        }
        Ok(Some(Box::new(FedQuery {
            store: Arc::clone(&self.store),
            eu_down: self.eu_down,
            aggregates: vec!["eu".into()],
            excluded: vec!["br".into()],
        })))
    }
}

async fn get_fed(uri: &str, eu_down: bool) -> (StatusCode, serde_json::Value) {
    let store = Arc::new(MemStore::new());
    let a = TenantId::new("a").unwrap();
    store.load(&a, 60_000, "up{job=\"x\"} 1 1 0\nreq_total{job=\"x\"} 0+60x10").unwrap();
    let engine = Engine::new(Arc::clone(&store) as Arc<dyn strata_schemas::ReadStore>, QueryConfig::default())
        .with_federation(Arc::new(Fed { store, eu_down }));
    let app = router(QueryState::new(Arc::new(engine), Arc::new(Resolver)));
    let req = Request::get(uri).header(header::AUTHORIZATION, "Bearer a").body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn federated_queries_report_geo_fence_and_missing_jurisdictions() {
    // A raw read of `up`, which eu holds: 422 geo-fence.
    let (s, v) = get_fed("/api/v1/query?query=up&time=60", false).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert!(v["error"].as_str().unwrap().contains("jurisdiction eu"), "{v}");
    // Pushed down: eu answers nothing here, the local data is summed; br is an info.
    let (s, v) = get_fed("/api/v1/query?query=sum(up)&time=60", false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "1");
    assert!(v["infos"][0].as_str().unwrap().contains("jurisdiction br"), "{v}");
    assert_eq!(v["warnings"][0], "region us-west did not answer; its data is missing");
    // eu down: a warning, or 503 with partial_response=false.
    let (s, v) = get_fed("/api/v1/query_range?query=sum(up)&start=0&end=120&step=60", true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("jurisdiction eu")), "{v}");
    let (s, v) = get_fed("/api/v1/query?query=sum(up)&time=60&partial_response=false", true).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["errorType"], "unavailable");
    let (s, v) = get_fed("/api/v1/query?query=sum(up)&time=60&partial_response=maybe", true).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Metadata: the raw-reachable store, and infos naming what is not shown.
    let (s, v) = get_fed("/api/v1/labels", false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"], serde_json::json!(["__name__", "job"]));
    let infos = v["infos"].as_array().unwrap();
    assert!(
        infos[0].as_str().unwrap().contains("jurisdiction eu") && infos[0].as_str().unwrap().contains("aggregates")
    );
    assert!(infos[1].as_str().unwrap().contains("jurisdiction br"), "{v}");
    assert_eq!(v["warnings"][0], "region us-west did not answer; its data is missing");
    let (_, v) = get_fed("/api/v1/series?match[]=up", false).await;
    assert!(v["infos"][0].as_str().unwrap().starts_with("series of jurisdiction eu"), "{v}");
    let (_, v) = get_fed("/api/v1/label/job/values?partial_response=false", false).await;
    assert_eq!(v["data"], serde_json::json!(["x"]));
    assert_eq!(v["infos"].as_array().unwrap().len(), 2);
}

#[test]
fn metadata_answers_are_cut_by_the_smaller_of_limit_and_max_metadata_results() {
    use super::truncate;
    let v = || (0..10).collect::<Vec<u32>>();
    assert_eq!(truncate(v(), 0, 0), (v(), vec![]), "no bound at all");
    assert_eq!(truncate(v(), 0, 10), (v(), vec![]), "at the bound: whole, no warning");
    let (cut, w) = truncate(v(), 0, 4);
    assert_eq!(cut, [0, 1, 2, 3]);
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("results truncated due to limit") && w[0].contains("query.max_metadata_results (4)"));
    let (cut, w) = truncate(v(), 3, 4);
    assert_eq!((cut.len(), w), (3, vec!["results truncated due to limit".to_owned()]), "the request's smaller limit");
    let (cut, w) = truncate(v(), 8, 4);
    assert_eq!(cut.len(), 4, "a request cannot raise the server's bound");
    assert!(w[0].contains("query.max_metadata_results"), "{w:?}");
}
