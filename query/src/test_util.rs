//! Test helpers: an in-memory [`ReadStore`] and a parser for the promqltest
//! series notation (`metric{a="b"} 1+2x3 _ stale`).
//!
//! This is a storage fake for testing the engine and the HTTP API, not a store.

use crate::http::params::parse_duration;
use promql_parser::parser::{self, Expr};
use std::collections::HashMap;
use std::sync::RwLock;
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{Labels, METRIC_NAME, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange};

/// An in-memory, multi-tenant [`ReadStore`].
#[derive(Debug, Default)]
pub struct MemStore {
    tenants: RwLock<HashMap<TenantId, Vec<SeriesData>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to a series (created if new); samples stay sorted, later writes win.
    pub fn add(&self, tenant: &TenantId, labels: Labels, samples: &[Sample]) {
        let mut t = self.tenants.write().expect("MemStore lock poisoned");
        let series = t.entry(tenant.clone()).or_default();
        let idx = match series.iter().position(|s| s.labels == labels) {
            Some(i) => i,
            None => {
                series.push(SeriesData { labels, samples: Vec::new() });
                series.len() - 1
            }
        };
        let s = &mut series[idx].samples;
        for &p in samples {
            match s.binary_search_by_key(&p.ts, |x| x.ts) {
                Ok(i) => s[i] = p,
                Err(i) => s.insert(i, p),
            }
        }
    }

    /// Removes every series of every tenant.
    pub fn clear(&self) {
        self.tenants.write().expect("MemStore lock poisoned").clear();
    }

    /// Loads a promqltest `load <interval>` body: one `series values...` per line.
    pub fn load(&self, tenant: &TenantId, interval_ms: i64, body: &str) -> Result<(), String> {
        for line in body.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (labels, values) = parse_series_line(line)?;
            let samples: Vec<Sample> = values
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * interval_ms, v)))
                .collect();
            self.add(tenant, labels, &samples);
        }
        Ok(())
    }

    fn matching(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Vec<SeriesData> {
        let t = self.tenants.read().expect("MemStore lock poisoned");
        let Some(series) = t.get(tenant) else { return Vec::new() };
        let mut out: Vec<SeriesData> = series
            .iter()
            .filter(|s| Matcher::matches_all(matchers, &s.labels))
            .filter_map(|s| {
                let samples: Vec<Sample> = s.samples.iter().copied().filter(|p| range.contains(p.ts)).collect();
                (!samples.is_empty()).then(|| SeriesData { labels: s.labels.clone(), samples })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

impl ReadStore for MemStore {
    /// Memory only.
    fn reads_locally(&self, _tenant: &TenantId, _range: TimeRange) -> bool {
        true
    }

    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        Ok(self.matching(tenant, matchers, range))
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        Ok(self.matching(tenant, matchers, range).into_iter().map(|s| s.labels).collect())
    }
}

/// Parses `metric{a="b"} 1+2x3 _ stale` into labels and one optional value per interval.
pub fn parse_series_line(line: &str) -> Result<(Labels, Vec<Option<f64>>), String> {
    let split = series_desc_end(line);
    let (desc, values) = line.split_at(split);
    let labels = parse_series_desc(desc.trim())?;
    Ok((labels, expand_values(values)?))
}

/// Byte index where a series descriptor at the start of `line` ends (first
/// whitespace outside braces and quotes).
pub fn series_desc_end(line: &str) -> usize {
    let mut in_braces = false;
    let mut in_quote = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' if prev != '\\' => in_quote = !in_quote,
            '{' if !in_quote => in_braces = true,
            '}' if !in_quote => in_braces = false,
            c if c.is_whitespace() && !in_braces && !in_quote => return i,
            _ => {}
        }
        prev = c;
    }
    line.len()
}

/// Parses a series descriptor (`metric{a="b"}` or `{__name__="m"}`) into labels.
pub fn parse_series_desc(desc: &str) -> Result<Labels, String> {
    if desc.replace(' ', "") == "{}" {
        return Ok(Labels::default());
    }
    let Expr::VectorSelector(vs) = parser::parse(desc)? else {
        return Err(format!("not a series descriptor: {desc}"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = vs.name {
        pairs.push((METRIC_NAME.into(), n));
    }
    pairs.extend(vs.matchers.matchers.into_iter().map(|m| (m.name, m.value)));
    Ok(Labels::from_pairs(pairs))
}

/// Expands promqltest value notation: `1 2 _ stale 1+2x3 5-1x2 _x3 1x2`.
pub fn expand_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok.starts_with("{{") {
            return Err("native histograms are not supported".into());
        }
        if let Some((head, n)) = tok.rsplit_once('x').filter(|(h, n)| !h.is_empty() && n.parse::<usize>().is_ok()) {
            let n: usize = n.parse().map_err(|e| format!("{tok}: {e}"))?;
            if head == "_" {
                out.extend(std::iter::repeat_n(None, n));
                continue;
            }
            let (start, delta) = split_start_delta(head)?;
            out.extend((0..=n).map(|k| Some(start + delta * k as f64)));
            continue;
        }
        out.push(match tok {
            "_" => None,
            "stale" => Some(f64::from_bits(STALE_NAN_BITS)),
            v => Some(parse_number(v)?),
        });
    }
    Ok(out)
}

fn split_start_delta(head: &str) -> Result<(f64, f64), String> {
    // The sign of the delta is the last '+' or '-' that is not at the start or after an 'e'.
    let bytes = head.as_bytes();
    for i in (1..bytes.len()).rev() {
        if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
            let start = parse_number(&head[..i])?;
            let delta = parse_number(&head[i + 1..])?;
            return Ok((start, if bytes[i] == b'-' { -delta } else { delta }));
        }
    }
    Ok((parse_number(head)?, 0.0))
}

/// Parses a promqltest number (`Inf`, `-Inf`, `NaN`, floats, hex ints).
pub fn parse_number(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    let (neg, body) = match lower.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
    };
    let v = match body {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        b if b.starts_with("0x") => i64::from_str_radix(&b[2..], 16).map_err(|e| format!("{s}: {e}"))? as f64,
        b => b.parse::<f64>().map_err(|e| format!("{s}: {e}"))?,
    };
    Ok(if neg { -v } else { v })
}

/// Parses a promqltest time (`1m`, `10s`, `0`) to milliseconds.
pub fn parse_test_time(s: &str) -> Result<i64, String> {
    parse_duration(s).map_err(|e| e.to_string())
}
