//! OTLP metrics → Prometheus series, as Prometheus 3 translates them by
//! default (`otlp.translation_strategy: UnderscoreEscapingWithSuffixes`,
//! `storage/remote/otlptranslator/prometheus`):
//!
//! * **Names**: the OTLP name split on characters outside `[a-zA-Z0-9]`,
//!   joined with `_`; the unit appended as a word (`s` → `seconds`, `By` →
//!   `bytes`, `ms` → `milliseconds`, …; `{…}` annotations dropped; `a/b` →
//!   `a_per_b`) unless the name already has it; `_total` for monotonic
//!   cumulative sums (counters); `_ratio` for gauges of unit `1`; a leading
//!   digit gets `_` in front.
//! * **Labels**: data point attributes, names with invalid characters
//!   replaced by `_` (a leading digit: `key_` in front; values of names that
//!   collide joined with `;`); `job` = `service.namespace/service.name` (or
//!   `service.name`), `instance` = `service.instance.id`; the tenant's
//!   promoted resource attributes; and per resource one `target_info` series
//!   (value 1) with the other resource attributes.
//! * **Types**: gauges and sums → one series; explicit-bucket histograms →
//!   `_bucket{le=…}` (cumulative, `+Inf` = count), `_sum`, `_count`;
//!   summaries → `{quantile=…}`, `_sum`, `_count`. A point flagged "no
//!   recorded value" is a staleness marker.
//! * **Refused** (counted, the reason in the answer's partial success):
//!   delta temporality (Prometheus stores cumulative series: set the
//!   exporter's temporality preference to cumulative), exponential
//!   histograms (native histograms are not stored), points without a time.

use std::collections::BTreeMap;

use super::proto::{self, MetricData, NumberValue};
use crate::remote_write::proto as rw;

/// Prometheus's staleness marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// OTLP's `FLAG_NO_RECORDED_VALUE`.
const NO_RECORDED_VALUE: u32 = 1;

/// What the translation produced.
#[derive(Debug, Default)]
pub struct Translated {
    /// The series, as a remote-write request (checked and stored like one).
    pub request: rw::WriteRequest,
    /// Data points refused, and why (the first reasons).
    pub rejected_points: usize,
    /// Distinct reasons, in order of appearance.
    pub reasons: Vec<String>,
    /// Data points translated.
    pub points: usize,
}

impl Translated {
    fn reject(&mut self, n: usize, reason: String) {
        self.rejected_points += n;
        if self.reasons.len() < 8 && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// Label name and value pairs.
type LabelPairs = Vec<(String, String)>;

/// Series being built: labels → samples.
#[derive(Default)]
struct Builder {
    series: BTreeMap<Vec<(String, String)>, Vec<rw::Sample>>,
}

impl Builder {
    fn add(&mut self, name: &str, base: &[(String, String)], extra: Option<(&str, String)>, ts: i64, value: f64) {
        let mut labels: Vec<(String, String)> = Vec::with_capacity(base.len() + 2);
        labels.push(("__name__".to_owned(), name.to_owned()));
        labels.extend(base.iter().cloned());
        if let Some((k, v)) = extra {
            labels.retain(|(n, _)| n != k);
            labels.push((k.to_owned(), v));
        }
        labels.sort();
        self.series.entry(labels).or_default().push(rw::Sample { value, timestamp: ts });
    }

    fn finish(self) -> rw::WriteRequest {
        let timeseries = self
            .series
            .into_iter()
            .map(|(labels, samples)| rw::TimeSeries {
                labels: labels.iter().map(|(n, v)| rw::Label::new(n, v)).collect(),
                samples,
                exemplars: Vec::new(),
                histograms: Vec::new(),
            })
            .collect();
        rw::WriteRequest { timeseries, metadata: Vec::new() }
    }
}

/// Translates a request; `promoted` are the resource attributes copied onto every series.
pub fn translate(req: &proto::ExportMetricsServiceRequest, promoted: &[String]) -> Translated {
    let mut out = Translated::default();
    let mut b = Builder::default();
    for rm in &req.resource_metrics {
        let attrs: &[proto::KeyValue] = rm.resource.as_ref().map_or(&[], |r| &r.attributes[..]);
        let (identity, info) = resource_labels(attrs, promoted);
        let mut newest: Option<i64> = None;
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                metric(m, &identity, &mut b, &mut out, &mut newest);
            }
        }
        if let (Some(ts), false) = (newest, info.is_empty()) {
            let mut labels = identity_only(&identity);
            labels.extend(info);
            b.add("target_info", &labels, None, ts, 1.0);
        }
    }
    out.request = b.finish();
    out
}

/// `(labels every series of the resource gets, the other attributes for target_info)`.
fn resource_labels(attrs: &[proto::KeyValue], promoted: &[String]) -> (LabelPairs, LabelPairs) {
    let get = |k: &str| attrs.iter().find(|kv| kv.key == k).map(|kv| value_text(kv.value.as_ref()));
    let mut identity = Vec::new();
    if let Some(name) = get("service.name") {
        let job = match get("service.namespace") {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name,
        };
        identity.push(("job".to_owned(), job));
    }
    if let Some(instance) = get("service.instance.id") {
        identity.push(("instance".to_owned(), instance));
    }
    let mut info = Vec::new();
    for kv in attrs {
        if matches!(kv.key.as_str(), "service.name" | "service.namespace" | "service.instance.id") {
            continue;
        }
        let pair = (label_name(&kv.key), value_text(kv.value.as_ref()));
        if promoted.iter().any(|p| p == &kv.key) {
            identity.push(pair.clone());
        }
        info.push(pair);
    }
    (identity, info)
}

/// The `job`/`instance` labels of an identity (target_info keeps only those from it).
fn identity_only(identity: &[(String, String)]) -> Vec<(String, String)> {
    identity.iter().filter(|(n, _)| n == "job" || n == "instance").cloned().collect()
}

fn metric(
    m: &proto::Metric,
    identity: &[(String, String)],
    b: &mut Builder,
    out: &mut Translated,
    newest: &mut Option<i64>,
) {
    let mut note = |ts: i64| *newest = Some(newest.map_or(ts, |n: i64| n.max(ts)));
    match &m.data {
        None => out.reject(0, format!("metric {:?} has no data", m.name)),
        Some(MetricData::Gauge(g)) => {
            let name = metric_name(&m.name, &m.unit, Kind::Gauge);
            for p in &g.data_points {
                number_point(&name, p, identity, b, out, &mut note);
            }
        }
        Some(MetricData::Sum(s)) => {
            if s.aggregation_temporality == 1 {
                out.reject(s.data_points.len(), delta(&m.name));
                return;
            }
            let kind = if s.is_monotonic { Kind::Counter } else { Kind::Gauge };
            let name = metric_name(&m.name, &m.unit, kind);
            for p in &s.data_points {
                number_point(&name, p, identity, b, out, &mut note);
            }
        }
        Some(MetricData::Histogram(h)) => {
            if h.aggregation_temporality == 1 {
                out.reject(h.data_points.len(), delta(&m.name));
                return;
            }
            let name = metric_name(&m.name, &m.unit, Kind::Histogram);
            for p in &h.data_points {
                let Some(ts) = time_ms(p.time_unix_nano) else {
                    out.reject(1, format!("a point of {:?} has no time", m.name));
                    continue;
                };
                note(ts);
                let labels = point_labels(&p.attributes, identity);
                let stale = p.flags & NO_RECORDED_VALUE != 0;
                let v = |x: f64| if stale { f64::from_bits(STALE_NAN) } else { x };
                let mut cumulative = 0u64;
                for (i, bound) in p.explicit_bounds.iter().enumerate() {
                    // Saturating: counts are client data, and a sum past u64 must not wrap to a small count.
                    cumulative = cumulative.saturating_add(p.bucket_counts.get(i).copied().unwrap_or(0));
                    b.add(
                        &format!("{name}_bucket"),
                        &labels,
                        Some(("le", float_text(*bound))),
                        ts,
                        v(cumulative as f64),
                    );
                }
                b.add(&format!("{name}_bucket"), &labels, Some(("le", "+Inf".to_owned())), ts, v(p.count as f64));
                if let Some(sum) = p.sum {
                    b.add(&format!("{name}_sum"), &labels, None, ts, v(sum));
                }
                b.add(&format!("{name}_count"), &labels, None, ts, v(p.count as f64));
                out.points += 1;
            }
        }
        Some(MetricData::ExponentialHistogram(e)) => out.reject(
            e.data_points.len(),
            format!(
                "metric {:?} is an exponential histogram: native histograms are not stored; export explicit-bucket \
                 histograms",
                m.name
            ),
        ),
        Some(MetricData::Summary(s)) => {
            let name = metric_name(&m.name, &m.unit, Kind::Summary);
            for p in &s.data_points {
                let Some(ts) = time_ms(p.time_unix_nano) else {
                    out.reject(1, format!("a point of {:?} has no time", m.name));
                    continue;
                };
                note(ts);
                let labels = point_labels(&p.attributes, identity);
                let stale = p.flags & NO_RECORDED_VALUE != 0;
                let v = |x: f64| if stale { f64::from_bits(STALE_NAN) } else { x };
                for q in &p.quantile_values {
                    b.add(&name, &labels, Some(("quantile", float_text(q.quantile))), ts, v(q.value));
                }
                b.add(&format!("{name}_sum"), &labels, None, ts, v(p.sum));
                b.add(&format!("{name}_count"), &labels, None, ts, v(p.count as f64));
                out.points += 1;
            }
        }
    }
}

fn delta(name: &str) -> String {
    format!(
        "metric {name:?} has delta temporality, which Strata does not store (Prometheus series are cumulative): set \
         the exporter's temporality preference to cumulative (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative)"
    )
}

fn number_point(
    name: &str,
    p: &proto::NumberDataPoint,
    identity: &[(String, String)],
    b: &mut Builder,
    out: &mut Translated,
    note: &mut impl FnMut(i64),
) {
    let Some(ts) = time_ms(p.time_unix_nano) else {
        out.reject(1, format!("a point of {name:?} has no time"));
        return;
    };
    let value = if p.flags & NO_RECORDED_VALUE != 0 {
        f64::from_bits(STALE_NAN)
    } else {
        match p.value {
            Some(NumberValue::AsDouble(d)) => d,
            Some(NumberValue::AsInt(i)) => i as f64,
            None => {
                out.reject(1, format!("a point of {name:?} has no value"));
                return;
            }
        }
    };
    note(ts);
    b.add(name, &point_labels(&p.attributes, identity), None, ts, value);
    out.points += 1;
}

/// A point's labels: its attributes (sanitised; colliding names joined with `;`) over the resource's.
fn point_labels(attrs: &[proto::KeyValue], identity: &[(String, String)]) -> Vec<(String, String)> {
    let mut labels: BTreeMap<String, String> = identity.iter().cloned().collect();
    let mut own: BTreeMap<String, String> = BTreeMap::new();
    for kv in attrs {
        let (n, v) = (label_name(&kv.key), value_text(kv.value.as_ref()));
        match own.get_mut(&n) {
            Some(existing) => {
                existing.push(';');
                existing.push_str(&v);
            }
            None => {
                own.insert(n, v);
            }
        }
    }
    labels.extend(own);
    labels.into_iter().collect()
}

fn time_ms(ns: u64) -> Option<i64> {
    (ns > 0).then(|| i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX))
}

/// Prometheus's float formatting of `le` and `quantile` values.
fn float_text(f: f64) -> String {
    if f == f64::INFINITY {
        "+Inf".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{f}")
    }
}

/// An attribute value as label text.
fn value_text(v: Option<&proto::AnyValue>) -> String {
    use proto::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(V::String(s)) => s.clone(),
        Some(V::Bool(b)) => b.to_string(),
        Some(V::Int(i)) => i.to_string(),
        Some(V::Double(d)) => float_text(*d),
        Some(V::Bytes(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(V::Array(a)) => {
            let parts: Vec<String> = a.values.iter().map(|x| format!("{:?}", value_text(Some(x)))).collect();
            format!("[{}]", parts.join(","))
        }
        Some(V::KvList(l)) => {
            let parts: Vec<String> =
                l.values.iter().map(|kv| format!("{:?}:{:?}", kv.key, value_text(kv.value.as_ref()))).collect();
            format!("{{{}}}", parts.join(","))
        }
    }
}

/// A label name: characters outside `[a-zA-Z0-9_]` become `_`; a leading digit gets `key_`.
pub fn label_name(key: &str) -> String {
    let mut s: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() {
        return "key_empty".to_owned();
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "key_");
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

/// UCUM unit → the word Prometheus appends.
fn unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

/// The per-unit word (`/s` → `per_second`).
fn per_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// A unit part without `{…}` annotations, mapped, or cleaned to `[a-zA-Z0-9]` words.
fn unit_tokens(u: &str, map: fn(&str) -> Option<&'static str>) -> Vec<String> {
    let mut bare = String::new();
    let mut depth = 0;
    for c in u.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = (depth - 1).max(0),
            c if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    let bare = bare.trim();
    if bare.is_empty() {
        return Vec::new();
    }
    match map(bare) {
        Some(w) => vec![w.to_owned()],
        None => bare.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
    }
}

/// The Prometheus name of an OTLP metric (see the module doc).
fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> =
        name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_owned).collect();
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    if main.trim() != "1" {
        for t in unit_tokens(main, unit_word) {
            if !tokens.contains(&t) {
                tokens.push(t);
            }
        }
    }
    if let Some(per) = per {
        let words = unit_tokens(per, per_word);
        if !words.is_empty() && !tokens.windows(1 + words.len()).any(|w| w[0] == "per" && w[1..] == words[..]) {
            tokens.push("per".to_owned());
            tokens.extend(words);
        }
    }
    match kind {
        Kind::Counter => {
            tokens.retain(|t| t != "total");
            tokens.push("total".to_owned());
        }
        Kind::Gauge if unit.trim() == "1" && !tokens.iter().any(|t| t == "ratio") => tokens.push("ratio".to_owned()),
        _ => {}
    }
    let mut out = tokens.join("_");
    if out.is_empty() {
        out.push('_');
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests;
