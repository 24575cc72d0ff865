use super::*;
use axum::body::to_bytes;

fn read_error(kind: ErrorKind) -> ReadError {
    match kind {
        ErrorKind::Corruption => ReadError::Corrupted { location: "seg-1".into(), detail: "bad crc".into() },
        ErrorKind::Unavailable => ReadError::Unavailable("region eu did not answer".into()),
        ErrorKind::QuotaExceeded => ReadError::LimitExceeded {
            tenant: strata_schemas::TenantId::new("acme").expect("valid id"),
            what: "max_query_series",
            limit: 10,
        },
        other => panic!("no read error of kind {other:?} in this test"),
    }
}

/// Every kind has its status, and a new kind must be given one here.
#[test]
fn each_kind_maps_to_one_status() {
    let expected = [
        (ErrorKind::InvalidInput, 400),
        (ErrorKind::NotFound, 404),
        (ErrorKind::QuotaExceeded, 429),
        (ErrorKind::Unavailable, 503),
        (ErrorKind::Corruption, 500),
        (ErrorKind::Internal, 500),
    ];
    for (kind, status) in expected {
        assert_eq!(status_of(kind).as_u16(), status, "{kind:?}");
    }
}

#[test]
fn request_refusals_keep_the_statuses_the_kinds_do_not_name() {
    let cases: [(Error, ErrorKind, u16, &str); 7] = [
        (Error::Unauthenticated("needs the admin token".into()), ErrorKind::InvalidInput, 401, "unauthorized"),
        (Error::Forbidden("read-only token".into()), ErrorKind::InvalidInput, 403, "forbidden"),
        (Error::BadRequest("invalid tenant id".into()), ErrorKind::InvalidInput, 400, "bad_data"),
        (Error::BodyTooLarge("over 1 MiB".into()), ErrorKind::InvalidInput, 413, "bad_data"),
        (Error::NotFound("no tenant \"x\"".into()), ErrorKind::NotFound, 404, "not_found"),
        (Error::Conflict("the cold tier is off".into()), ErrorKind::InvalidInput, 409, "conflict"),
        (Error::ReadAfterTimeout("partition 0: offset 9".into()), ErrorKind::Unavailable, 503, "timeout"),
    ];
    for (e, kind, status, error_type) in cases {
        assert_eq!((e.kind(), e.status().as_u16(), e.error_type()), (kind, status, error_type), "{e}");
    }
}

#[test]
fn a_read_failure_answers_by_the_read_errors_kind() {
    for (kind, status, error_type) in [
        (ErrorKind::Unavailable, 503, "unavailable"),
        (ErrorKind::Corruption, 500, "internal"),
        (ErrorKind::QuotaExceeded, 429, "execution"),
    ] {
        let e = Error::ReadSeries { context: "reading the series of the day", source: read_error(kind) };
        assert_eq!((e.kind(), e.status().as_u16(), e.error_type()), (kind, status, error_type), "{e}");
        assert!(e.to_string().starts_with("reading the series of the day: "), "{e}");
    }
}

#[test]
fn a_roll_failure_answers_by_the_compactors_kind() {
    let lost = strata_compactor::Error::RollLost {
        tenant: strata_schemas::TenantId::new("acme").expect("valid id"),
        partitions: vec![1],
        end: 3_600_000,
    };
    let e = Error::from(lost);
    assert_eq!((e.kind(), e.status().as_u16(), e.error_type()), (ErrorKind::Unavailable, 503, "unavailable"));
    let task = Error::from(strata_compactor::Error::Task { detail: "panicked".into() });
    assert_eq!((task.kind(), task.status().as_u16()), (ErrorKind::Internal, 500));
}

#[test]
fn node_failures_are_internal_or_unavailable_with_their_whole_chain() {
    let chain = anyhow::anyhow!("disk full").context("writing segment 7");
    let internal = Error::from(chain);
    assert_eq!((internal.status().as_u16(), internal.error_type()), (500, "internal"));
    assert_eq!(internal.to_string(), "writing segment 7: disk full");
    let registry = Error::Registry {
        context: "the delete request was not recorded".into(),
        source: anyhow::anyhow!("connection refused").context("postgres"),
    };
    assert_eq!((registry.status().as_u16(), registry.error_type()), (503, "unavailable"));
    assert_eq!(registry.to_string(), "the delete request was not recorded: postgres: connection refused");
    let audit = Error::ReadAudit { log: "admin", source: anyhow::anyhow!("truncated line 3") };
    assert_eq!(
        (audit.status().as_u16(), audit.to_string().as_str()),
        (500, "reading the admin audit log: truncated line 3")
    );
}

#[test]
fn a_token_that_may_not_is_forbidden_and_a_bad_one_unauthenticated() {
    let tenant = strata_schemas::TenantId::new("acme").expect("valid id");
    let forbidden = Error::from(AuthError::Forbidden { tenant, access: strata_schemas::Access::Delete });
    assert_eq!((forbidden.status().as_u16(), forbidden.error_type()), (403, "forbidden"));
    for e in [AuthError::MissingToken, AuthError::Malformed, AuthError::InvalidToken] {
        let e = Error::from(e);
        assert_eq!((e.status().as_u16(), e.error_type()), (401, "unauthorized"), "{e}");
    }
}

#[tokio::test]
async fn the_answer_carries_the_status_error_type_and_message() {
    let resp = Error::Conflict("the cold tier is off ([cold] enabled = false)".into()).into_response();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body = to_bytes(resp.into_body(), 1 << 16).await.expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"status": "error", "errorType": "conflict", "error": "the cold tier is off ([cold] enabled = false)"})
    );
}

#[tokio::test]
async fn a_failed_task_is_an_internal_error_naming_the_task() {
    let join = tokio::task::spawn(async { panic!("boom") }).await.expect_err("the task panics");
    let e = Error::task("audit")(join);
    assert_eq!((e.status().as_u16(), e.kind()), (500, ErrorKind::Internal));
    assert!(e.to_string().starts_with("audit task failed: "), "{e}");
}

/// The inter-region endpoints' refusals: 401 / 403 with `errorType:
/// "geo_fence"` (the asking region reads the status and the message), a
/// refusal whose audit record failed 503.
#[test]
fn inter_region_refusals_are_geo_fence_errors_and_a_failed_audit_record_is_retryable() {
    let cases: [(Error, ErrorKind, u16, &str); 3] = [
        (
            Error::RegionUnauthenticated("region \"mars-1\" is not in the directory".into()),
            ErrorKind::InvalidInput,
            401,
            "geo_fence",
        ),
        (
            Error::GeoFence("geo-fence: tenant \"agro\" lets only aggregates leave".into()),
            ErrorKind::InvalidInput,
            403,
            "geo_fence",
        ),
        (Error::AuditRecord("audit log: disk full".into()), ErrorKind::Unavailable, 503, "unavailable"),
    ];
    for (e, kind, status, error_type) in cases {
        assert_eq!(
            (e.kind(), e.status().as_u16(), e.error_type(), e.retry_after()),
            (kind, status, error_type, None),
            "{e}"
        );
    }
}

/// A partial aggregation that fails answers like the Prometheus query API.
#[test]
fn a_query_error_answers_with_the_query_apis_status_and_error_type() {
    use strata_query::QueryError;
    for (e, kind, status, error_type) in [
        (QueryError::BadData("parse error".into()), ErrorKind::InvalidInput, 400, "bad_data"),
        (QueryError::TooManySamples("sum"), ErrorKind::QuotaExceeded, 422, "execution"),
        (QueryError::Timeout("eval"), ErrorKind::Unavailable, 503, "timeout"),
        (QueryError::Canceled("eval"), ErrorKind::Unavailable, 499, "canceled"),
        (QueryError::Internal("bug".into()), ErrorKind::Internal, 500, "internal"),
    ] {
        let message = e.to_string();
        let e = Error::from(e);
        assert_eq!((e.kind(), e.status().as_u16(), e.error_type()), (kind, status, error_type), "{e}");
        assert_eq!(e.to_string(), message);
    }
}

/// A node that is starting answers 503 with `Retry-After` and says so.
#[tokio::test]
async fn a_starting_node_answers_503_with_retry_after() {
    let e = Error::Starting("the node is starting (replaying the ingest log)".into());
    assert_eq!((e.kind(), e.status().as_u16(), e.error_type()), (ErrorKind::Unavailable, 503, "unavailable"));
    let resp = e.into_response();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry = resp.headers().get(axum::http::header::RETRY_AFTER).map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(retry, Some(crate::startup::RETRY_AFTER_SECS.to_string()));
    let body = to_bytes(resp.into_body(), 1 << 16).await.expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"status": "error", "errorType": "unavailable", "error": "the node is starting (replaying the ingest log)"})
    );
    let other = Error::Conflict("x".into()).into_response();
    assert!(other.headers().get(axum::http::header::RETRY_AFTER).is_none());
}
