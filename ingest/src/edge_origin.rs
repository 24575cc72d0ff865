//! The edge agent's batch identity on a write request.
//!
//! `strata-edge` sends each queued batch with `X-Strata-Agent-Id` (its id)
//! and `X-Strata-Agent-Seq` (the batch's sequence number in its queue) and
//! re-sends it until it gets an answer. The write path stamps that origin
//! on every log record of the request ([`WriteBatch::origin`]); the hot store
//! applies the first record of a partition with a given origin and skips the
//! rest, so a re-send is acknowledged (204) but stored once.
//!
//! ```text
//!  X-Strata-Agent-Id:     1..=128 bytes of printable ASCII, no space
//!  X-Strata-Agent-Seq:    a u64 in decimal digits
//!                         both or neither; anything else is 400 naming the header
//!  X-Strata-Agent-Hlc:    the agent's hybrid logical clock, <physical ms>.<logical>
//!                         (optional; folded into the node's clock, see below; malformed: 400)
//!  X-Strata-Jurisdiction: the jurisdiction the agent sends to (optional); a node
//!                         of another jurisdiction answers 421 before reading the body
//! answer:
//!  X-Strata-Hlc:          this node's hybrid logical clock after the write (every answer)
//!  X-Strata-Time:         this node's wall clock, ms since the epoch (every answer)
//! ```
//!
//! **Clocks.** The node keeps one hybrid logical clock (`strata_schemas::hlc`)
//! for its process. An agent's clock is folded in unless it is more than
//! [`MAX_AGENT_AHEAD_MS`] ahead of the node's wall clock (then it is left
//! out, counted in `strata_ingest_edge_clock_ahead_total` and logged at most
//! once a minute: one gateway whose clock is hours fast must not drag the
//! node's clock with it); the write is stored either way. The agent folds
//! the answer's `X-Strata-Hlc` into its own clock, and measures its own
//! skew against `X-Strata-Time` (the HLC's physical part can lead the
//! node's wall clock by up to [`MAX_AGENT_AHEAD_MS`], folded in from a
//! slightly fast agent: too coarse to correct timestamps by).
//!
//! **Jurisdictions.** An agent configured for a jurisdiction names it in
//! every batch; a node of another jurisdiction (the `[federation]`
//! jurisdiction, or the region name when none is set) refuses the batch with
//! `421 Misdirected Request`, so a wrong endpoint in an agent's list (or a
//! DNS name moved to another country) never stores raw data across a border:
//! the agent moves on to its next endpoint.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use strata_schemas::{BatchOrigin, Fold, Hlc, HlcTimestamp, WriteBatch};

use crate::http::{Refusal, WriteErrorBody, WriteState, refuse};
use crate::metrics::IngestMetrics;

/// The agent id header.
pub const AGENT_ID_HEADER: &str = "X-Strata-Agent-Id";
/// The sequence number header.
pub const AGENT_SEQ_HEADER: &str = "X-Strata-Agent-Seq";

/// The agent's clock header.
pub const AGENT_HLC_HEADER: &str = "X-Strata-Agent-Hlc";
/// The jurisdiction header.
pub const JURISDICTION_HEADER: &str = "X-Strata-Jurisdiction";
/// The node's clock on every write answer.
pub const NODE_HLC_HEADER: &str = "X-Strata-Hlc";
/// The node's wall clock (ms since the epoch) on every write answer.
pub const NODE_TIME_HEADER: &str = "X-Strata-Time";
/// How far (ms) an agent's clock may be ahead of this node's wall clock and
/// still be folded into the node's clock.
pub const MAX_AGENT_AHEAD_MS: i64 = 5_000;

/// The node's hybrid logical clock (one per process).
static NODE_CLOCK: Mutex<Hlc> = Mutex::new(Hlc::starting_at(HlcTimestamp::new(0, 0)));
/// When (ms) the last "clock too far ahead" line was logged.
static LAST_AHEAD_LOG_MS: AtomicI64 = AtomicI64::new(0);

/// The node's clock after a local event (an answer).
pub fn node_clock_tick() -> HlcTimestamp {
    let now = strata_schemas::time::now_millis();
    NODE_CLOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner).tick(now)
}

/// Sets `X-Strata-Hlc` and `X-Strata-Time` on an answer.
pub(crate) fn stamp_clock(headers: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(&node_clock_tick().to_string()) {
        headers.insert(NODE_HLC_HEADER, v);
    }
    headers.insert(NODE_TIME_HEADER, HeaderValue::from(strata_schemas::time::now_millis()));
}

/// Checks an edge agent's jurisdiction and folds its clock into the node's:
/// 421 when the batch is meant for another jurisdiction, 400 for a malformed header.
pub(crate) fn admit_agent(state: &WriteState, headers: &HeaderMap) -> Result<(), Refusal> {
    let bad = |msg: String| refuse(StatusCode::BAD_REQUEST, WriteErrorBody::simple("invalid", msg));
    if let Some(j) = single(headers, JURISDICTION_HEADER).map_err(bad)? {
        let here = state.regions.local_jurisdiction();
        if j != here.as_bytes() {
            return Err(refuse(
                StatusCode::MISDIRECTED_REQUEST,
                WriteErrorBody::simple(
                    "jurisdiction",
                    format!(
                        "this node (region {}) is in jurisdiction {here:?}, the batch is for jurisdiction {:?}: \
                         nothing was stored; send it to a region of its own jurisdiction",
                        state.regions.local(),
                        String::from_utf8_lossy(j)
                    ),
                ),
            ));
        }
    }
    let Some(text) = single(headers, AGENT_HLC_HEADER).map_err(bad)? else { return Ok(()) };
    let remote = std::str::from_utf8(text)
        .map_err(|_| format!("invalid {AGENT_HLC_HEADER} header: not ASCII"))
        .and_then(|t| HlcTimestamp::parse(t).map_err(|e| format!("invalid {AGENT_HLC_HEADER} header: {e}")))
        .map_err(bad)?;
    let now = strata_schemas::time::now_millis();
    let fold =
        NODE_CLOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner).fold(remote, now, MAX_AGENT_AHEAD_MS);
    if let Fold::TooFarAhead(ahead_ms) = fold {
        IngestMetrics::add(&state.metrics.edge_clock_ahead, 1);
        let last = LAST_AHEAD_LOG_MS.load(Ordering::Relaxed);
        if now - last >= 60_000
            && LAST_AHEAD_LOG_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let agent = headers.get(AGENT_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("?");
            tracing::warn!(
                agent,
                ahead_s = ahead_ms as f64 / 1000.0,
                "an edge agent's clock is ahead of this node's by more than {} s: not folded into the node's clock \
                 (its write is stored; fix the gateway's clock)",
                MAX_AGENT_AHEAD_MS / 1000
            );
        }
    }
    Ok(())
}

/// The request's origin: `None` without the headers, 400 when they are malformed.
pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Option<BatchOrigin>, Refusal> {
    parse(headers).map_err(|msg| refuse(StatusCode::BAD_REQUEST, WriteErrorBody::simple("invalid", msg)))
}

/// Stamps `origin` on every batch of the request.
pub(crate) fn stamp(batches: &mut [(u32, WriteBatch)], origin: Option<BatchOrigin>) {
    if origin.is_some() {
        for (_, b) in batches {
            b.origin.clone_from(&origin);
        }
    }
}

fn parse(headers: &HeaderMap) -> Result<Option<BatchOrigin>, String> {
    let id = single(headers, AGENT_ID_HEADER)?;
    let seq = single(headers, AGENT_SEQ_HEADER)?;
    let (id, seq) = match (id, seq) {
        (None, None) => return Ok(None),
        (Some(id), Some(seq)) => (id, seq),
        (None, Some(_)) => {
            return Err(format!("{AGENT_SEQ_HEADER} needs {AGENT_ID_HEADER}: the {AGENT_ID_HEADER} header is missing"));
        }
        (Some(_), None) => {
            return Err(format!(
                "{AGENT_ID_HEADER} needs {AGENT_SEQ_HEADER}: the {AGENT_SEQ_HEADER} header is missing"
            ));
        }
    };
    let id = std::str::from_utf8(id).map_err(|_| format!("invalid {AGENT_ID_HEADER} header: not ASCII"))?;
    BatchOrigin::check_agent_id(id).map_err(|e| format!("invalid {AGENT_ID_HEADER} header: {e}"))?;
    let seq = std::str::from_utf8(seq)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| {
            format!(
                "invalid {AGENT_SEQ_HEADER} header: {:?} is not an unsigned 64-bit integer",
                String::from_utf8_lossy(seq)
            )
        })?;
    BatchOrigin::new(id, seq).map(Some).map_err(|e| format!("invalid {AGENT_ID_HEADER} header: {e}"))
}

/// The value of `name`, refusing a header given twice.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a [u8]>, String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("the {name} header is given more than once"));
    }
    Ok(first.map(|v| v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for &(k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn parses_both_or_neither() {
        assert_eq!(parse(&headers(&[])), Ok(None));
        let o =
            parse(&headers(&[("x-strata-agent-id", "farm-7/gw:1"), ("X-Strata-Agent-Seq", "18446744073709551615")]))
                .unwrap()
                .unwrap();
        assert_eq!((o.agent_id(), o.seq()), ("farm-7/gw:1", u64::MAX));
    }

    #[test]
    fn malformed_headers_name_the_header() {
        let long = "a".repeat(129);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("X-Strata-Agent-Id", "gw")], AGENT_SEQ_HEADER),
            (&[("X-Strata-Agent-Seq", "1")], AGENT_ID_HEADER),
            (&[("X-Strata-Agent-Id", "gw"), ("X-Strata-Agent-Seq", "")], AGENT_SEQ_HEADER),
            (&[("X-Strata-Agent-Id", "gw"), ("X-Strata-Agent-Seq", "+1")], AGENT_SEQ_HEADER),
            (&[("X-Strata-Agent-Id", "gw"), ("X-Strata-Agent-Seq", " 1")], AGENT_SEQ_HEADER),
            (&[("X-Strata-Agent-Id", "gw"), ("X-Strata-Agent-Seq", "18446744073709551616")], AGENT_SEQ_HEADER),
            (&[("X-Strata-Agent-Id", ""), ("X-Strata-Agent-Seq", "1")], AGENT_ID_HEADER),
            (&[("X-Strata-Agent-Id", "g w"), ("X-Strata-Agent-Seq", "1")], AGENT_ID_HEADER),
            (&[("X-Strata-Agent-Id", &long), ("X-Strata-Agent-Seq", "1")], AGENT_ID_HEADER),
            (&[("X-Strata-Agent-Id", "a"), ("X-Strata-Agent-Id", "b"), ("X-Strata-Agent-Seq", "1")], AGENT_ID_HEADER),
        ];
        for (pairs, named) in cases {
            let err = parse(&headers(pairs)).unwrap_err();
            assert!(err.contains(named), "{pairs:?}: {err}");
        }
        // Not visible ASCII (obs-text): refused, naming the header.
        let mut h = headers(&[("X-Strata-Agent-Seq", "1")]);
        h.insert("X-Strata-Agent-Id", axum::http::HeaderValue::from_bytes(b"gw\xe9").unwrap());
        assert!(parse(&h).unwrap_err().contains(AGENT_ID_HEADER));
    }

    #[test]
    fn stamps_every_batch() {
        let t = strata_schemas::TenantId::new("t").unwrap();
        let mut batches: Vec<(u32, WriteBatch)> =
            (0..3).map(|p| (p, WriteBatch { tenant: t.clone(), series: Vec::new(), origin: None })).collect();
        stamp(&mut batches, None);
        assert!(batches.iter().all(|(_, b)| b.origin.is_none()));
        let o = BatchOrigin::new("gw", 3).unwrap();
        stamp(&mut batches, Some(o.clone()));
        assert!(batches.iter().all(|(_, b)| b.origin.as_ref() == Some(&o)));
    }
}
