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
//!  X-Strata-Agent-Id:  1..=128 bytes of printable ASCII, no space
//!  X-Strata-Agent-Seq: a u64 in decimal digits
//!  both or neither; anything else is 400 naming the header
//! ```

use axum::http::{HeaderMap, StatusCode};
use strata_schemas::{BatchOrigin, WriteBatch};

use crate::http::{Refusal, WriteErrorBody, refuse};

/// The agent id header.
pub const AGENT_ID_HEADER: &str = "X-Strata-Agent-Id";
/// The sequence number header.
pub const AGENT_SEQ_HEADER: &str = "X-Strata-Agent-Seq";

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
