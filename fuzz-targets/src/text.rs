//! Text decoders: InfluxDB line protocol (parse, then ingest's conversion)
//! and PromQL (parse, then evaluation on a small in-memory store).

use std::sync::Arc;
use std::time::Duration;

use strata_ingest::convert::{Converter, LabelLimits};
use strata_query::test_util::MemStore;
use strata_query::{Engine, QueryConfig, QueryError, QueryOptions};
use strata_schemas::TenantId;
use strata_schemas::line_protocol::{parse_lines, write_line};
use strata_schemas::time::Precision;

use crate::ingest::check_batches;

/// Partitions of the ingest log the converters group samples into.
pub(crate) const PARTITIONS: u32 = 4;

pub(crate) fn tenant() -> TenantId {
    TenantId::new("fuzz").expect("\"fuzz\" is a valid tenant id")
}

/// InfluxDB line protocol: `data` is a write body.
///
/// Every line that parses, written back with `write_line`, parses to the
/// same line; the whole body through ingest's `Converter` gives batches
/// that encode and decode to themselves, holding exactly the samples counted.
pub fn line_protocol(data: &[u8]) {
    let mut text = String::new();
    for line in parse_lines(data).flatten() {
        text.clear();
        write_line(&mut text, &line);
        let mut again = parse_lines(text.as_bytes());
        let reparsed = again.next().expect("a written line is not blank").unwrap_or_else(|e| {
            panic!("line {:?} written as {text:?} does not parse: {e}", line.measurement);
        });
        assert!(again.next().is_none(), "a written line {text:?} parses as more than one line");
        let expected = strata_schemas::line_protocol::ParsedLine { line_no: 1, ..line };
        assert_eq!(reparsed, expected, "written as {text:?}");
    }
    let tenant = tenant();
    let converter = Converter {
        tenant: &tenant,
        precision: Precision::Nanoseconds,
        now_ms: 1_700_000_000_000,
        device_label: "device",
        partitions: PARTITIONS,
        cache: None,
        limits: LabelLimits::default(),
    };
    let conversion = converter.convert(data);
    check_batches(&tenant, &conversion.batches, conversion.samples);
}

/// The series the PromQL target queries: a counter, a gauge with gaps and
/// a histogram, over 20 minutes at 1-minute resolution.
const STORE: &str = r#"
http_requests_total{job="api",instance="a",device="d1"} 0+10x20
http_requests_total{job="api",instance="b",device="d2"} 0+7x10 _ 100+3x9
http_requests_total{job="db",instance="a",device="d3"} 5 10 15 _ _ 0 5 10 15 20 25 30
temperature{room="kitchen",device="d1"} 21.5 21.7 22 22.1 NaN 21 Inf -Inf 20 20.5
temperature{room="hall",device="d2"} -3 -2.5 -1 0 1.5 3 _ 2 1
req_duration_bucket{le="0.1",job="api"} 0+1x20
req_duration_bucket{le="1",job="api"} 0+3x20
req_duration_bucket{le="+Inf",job="api"} 0+4x20
up{job="api"} 1x20
"#;

const MINUTE: i64 = 60_000;

fn engine() -> Engine {
    let store = MemStore::new();
    store.load(&tenant(), MINUTE, STORE).expect("the fuzz store's series parse");
    let config = QueryConfig {
        timeout: Duration::from_secs(1),
        max_samples: 200_000,
        max_points_per_series: 1_000,
        ..QueryConfig::default()
    };
    Engine::new(Arc::new(store), config)
}

thread_local! {
    static ENGINE: Engine = engine();
}

/// PromQL: `data` is an expression (UTF-8, else skipped), evaluated as an
/// instant query at minute 15 and as a range query over minutes 5..15 at a
/// 1-minute step, each bounded to 1 s and 200,000 samples.
///
/// No panic, and no `internal` error (the engine's word for a bug).
pub fn promql(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let tenant = tenant();
    let opts = QueryOptions { timeout: Some(Duration::from_secs(1)), ..QueryOptions::default() };
    ENGINE.with(|engine| {
        let instant = engine.query_instant_with(&tenant, query, 15 * MINUTE, &opts);
        let range = engine.query_range_with(&tenant, query, 5 * MINUTE, 15 * MINUTE, MINUTE, &opts);
        for r in [instant.err(), range.err()].into_iter().flatten() {
            assert!(!matches!(r, QueryError::Internal(_)), "internal error for {query:?}: {r}");
        }
    });
}
