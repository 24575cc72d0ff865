//! `GET /api/v1/status/tsdb`: which metrics and labels make a tenant's
//! series count, in Prometheus's shape plus VictoriaMetrics's extensions.
//!
//! | parameter | meaning |
//! |---|---|
//! | `topN` (default 10, at most 1000) | entries per list |
//! | `match[]` (repeatable) | count only series matching one of the selectors |
//! | `date=YYYY-MM-DD` | count only series with samples on that day (UTC) |
//! | `focusLabel` | also `seriesCountByFocusLabelValue` for that label |
//!
//! The answer has Prometheus's `headStats`, `seriesCountByMetricName`,
//! `labelValueCountByLabelName`, `memoryInBytesByLabelName` (bytes of the
//! distinct values), `seriesCountByLabelValuePair`; VictoriaMetrics's
//! `totalSeries`, `totalLabelValuePairs`, `seriesCountByFocusLabelValue`; and
//! `activeSeries` — the tenant's live series against its
//! `max_active_series` limit (`used`, `limit`, `ratio`), the figure to watch
//! before writes start being refused. Counted from this node's hot index
//! (postings cardinalities, `hot_store::cardinality`), except for a `date`
//! that starts below the tenant's cold watermark (a day already rolled, whose
//! series the hot store may have dropped): that day is counted from the
//! series the node's hot and cold tiers hold with samples on it (the cold
//! tier's samples table, pruned to the day; `hot_store::cardinality_of`),
//! deleted series hidden; `minTime`/`maxTime` are then 0. In a Kafka cluster
//! each node holds its partitions' series, so ask each node. The token's
//! tenant only: nothing of another tenant is counted or named.

use std::sync::Arc;

use crate::error::{Error, Result};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use strata_hot_store::{Cardinality, CardinalityRequest, Count, HotStore};
use strata_schemas::{Access, Matcher, ReadStore, TenantId, TenantResolver, TimeRange};

/// Most entries per list.
pub const MAX_TOP_N: usize = 1000;

/// What the handler needs.
#[derive(Debug, Clone)]
pub struct CardinalityState {
    /// The hot store (its index).
    pub hot: Arc<HotStore>,
    /// Token → tenant, and the tenant's limits.
    pub resolver: Arc<dyn TenantResolver>,
    /// Hot and cold split at the cold watermark, deletes hidden (when the
    /// cold tier is on): the series of a rolled day.
    pub store: Option<Arc<dyn ReadStore>>,
}

/// The route.
pub fn router(state: CardinalityState) -> Router {
    Router::new().route("/api/v1/status/tsdb", get(tsdb_status)).with_state(state)
}

async fn tsdb_status(
    State(st): State<CardinalityState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let tenant = st.resolver.resolve(auth, Access::Read)?;
    let req = request(&params).map_err(Error::BadRequest)?;
    let c = count(&st, &tenant, req).await?;
    let limit = st.resolver.limits(&tenant).max_active_series;
    let used = st.hot.tenant_series(&tenant);
    let list = |v: &[Count]| v.iter().map(|c| json!({"name": c.name, "value": c.value})).collect::<Vec<_>>();
    Ok(axum::Json(json!({
        "status": "success",
        "data": {
            "headStats": {
                "numSeries": c.total_series,
                "numLabelPairs": c.total_label_value_pairs,
                "chunkCount": null,
                "minTime": c.min_time,
                "maxTime": c.max_time,
            },
            "seriesCountByMetricName": list(&c.series_count_by_metric_name),
            "labelValueCountByLabelName": list(&c.label_value_count_by_label_name),
            "memoryInBytesByLabelName": list(&c.memory_in_bytes_by_label_name),
            "seriesCountByLabelValuePair": list(&c.series_count_by_label_value_pair),
            "totalSeries": c.total_series,
            "totalLabelValuePairs": c.total_label_value_pairs,
            "seriesCountByFocusLabelValue": list(&c.series_count_by_focus_label_value),
            "activeSeries": {
                "used": used,
                "limit": limit,
                "ratio": if limit == 0 { 0.0 } else { used as f64 / limit as f64 },
            },
        }
    }))
    .into_response())
}

/// The statistics: from the hot index, or for a rolled day from the hot and cold tiers' series.
async fn count(st: &CardinalityState, tenant: &TenantId, req: CardinalityRequest) -> Result<Cardinality> {
    let t = tenant.clone();
    let rolled_day = match (&st.store, req.range) {
        (Some(store), Some((start, end))) if st.hot.cold_watermark(tenant).is_some_and(|w| start < w) => {
            Some((Arc::clone(store), TimeRange::new(start, end)))
        }
        _ => None,
    };
    let Some((store, day)) = rolled_day else {
        let hot = Arc::clone(&st.hot);
        return tokio::task::spawn_blocking(move || hot.cardinality(&t, &req))
            .await
            .map_err(Error::task("cardinality"));
    };
    let matchers = if req.matchers.is_empty() {
        vec![Matcher::regex(strata_schemas::METRIC_NAME, ".+").map_err(|e| Error::Internal(anyhow::anyhow!("{e}")))?]
    } else {
        req.matchers.clone()
    };
    let counted = tokio::task::spawn_blocking(move || {
        store.series(&t, &matchers, day).map(|series| strata_hot_store::cardinality_of(&series, &req))
    })
    .await
    .map_err(Error::task("cardinality"))?;
    counted.map_err(|source| Error::ReadSeries { context: "reading the series of the day from the cold tier", source })
}

/// The request's parameters (see the module doc).
fn request(params: &[(String, String)]) -> Result<CardinalityRequest, String> {
    let mut req = CardinalityRequest { top_n: 10, ..CardinalityRequest::default() };
    let mut selectors: Vec<Vec<Matcher>> = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "topN" => {
                req.top_n =
                    v.parse::<usize>().ok().filter(|n| (1..=MAX_TOP_N).contains(n)).ok_or_else(|| {
                        format!("invalid parameter \"topN\": {v:?} is not a number in 1..={MAX_TOP_N}")
                    })?;
            }
            "date" => {
                req.range = Some(day(v).ok_or_else(|| format!("invalid parameter \"date\": {v:?} is not YYYY-MM-DD"))?)
            }
            "focusLabel" if !v.is_empty() => req.focus_label = Some(v.clone()),
            "match[]" => selectors.push(selector(v)?),
            _ => {}
        }
    }
    match selectors.len() {
        0 => {}
        1 => req.matchers = selectors.remove(0),
        _ => return Err("several match[] selectors are not supported here yet: give one".to_owned()),
    }
    Ok(req)
}

fn selector(text: &str) -> Result<Vec<Matcher>, String> {
    strata_query::engine::prescan::check(text, 4096)
        .map_err(|e| format!("invalid parameter \"match[]\": {e}"))
        .and_then(|()| promql_parser::parser::parse(text).map_err(|e| format!("invalid parameter \"match[]\": {e}")))
        .and_then(|expr| match expr {
            promql_parser::parser::Expr::VectorSelector(vs) => {
                strata_query::engine::selector_matchers(&vs).map_err(|e| format!("invalid parameter \"match[]\": {e}"))
            }
            _ => Err("invalid parameter \"match[]\": it must be a series selector".to_owned()),
        })
}

/// `[start, end]` ms of a UTC day `YYYY-MM-DD`.
fn day(s: &str) -> Option<(i64, i64)> {
    let mut parts = s.split('-');
    let (y, m, d) =
        (parts.next()?.parse::<i64>().ok()?, parts.next()?.parse::<u32>().ok()?, parts.next()?.parse::<u32>().ok()?);
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || s.len() != 10 {
        return None;
    }
    // days from civil (proleptic Gregorian)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let start = days * 86_400_000;
    Some((start, start + 86_399_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day("1970-01-01"), Some((0, 86_399_999)));
        assert_eq!(day("2026-12-02").map(|d| d.0), Some(1_796_169_600_000));
        assert_eq!(day("2000-03-01").map(|d| d.0), Some(951_868_800_000));
        for bad in ["2026-13-01", "2026-1-1x", "yesterday", "2026-12-02-1"] {
            assert_eq!(day(bad), None, "{bad}");
        }
    }

    #[test]
    fn parameters_are_checked() {
        let p = |pairs: &[(&str, &str)]| {
            request(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
        };
        assert_eq!(p(&[]).unwrap().top_n, 10);
        assert!(p(&[("topN", "0")]).unwrap_err().contains("topN"));
        assert!(p(&[("match[]", "rate(x[5m])")]).unwrap_err().contains("series selector"));
        assert_eq!(p(&[("match[]", "{farm=\"f1\"}"), ("focusLabel", "device")]).unwrap().matchers.len(), 1);
    }
}
