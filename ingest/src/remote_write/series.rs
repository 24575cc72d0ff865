//! Remote-write series → validated, canonical label sets → per-partition batches.
//!
//! Each `TimeSeries` of a request is checked on its own; a bad one is
//! reported with its index and reason while the others are stored:
//!
//! * at least one label; names and values valid UTF-8;
//! * label names match `[a-zA-Z_][a-zA-Z0-9_]*` and appear once
//!   (unsorted labels are sorted, duplicates are rejected);
//! * `__name__` present and not empty;
//! * no control character (C0, DEL, C1) in the metric name or a label
//!   value, tab excepted in values — the same rule as for line protocol;
//! * the tenant's label limits (`max_labels_per_series`, `max_label_name_length`,
//!   `max_label_value_length`), with the same messages as for line protocol;
//! * the tenant's residency label ([`ResidencyCheck`]): a series whose value
//!   of it belongs to another jurisdiction than this node's is refused (code
//!   `residency`), with the same message as for line protocol.
//!
//! Samples outside the write's time window ([`WriteBounds`]: the same as
//! for line protocol) are not stored; each series that had some is listed
//! with how many, and counts as rejected when none of its samples remained.
//!
//! Labels with an empty value are dropped, as Prometheus treats them as
//! absent. Series ids, device hashes and partitions are computed exactly as
//! for line protocol, so the same series written through either protocol is
//! the same series.

use super::proto;
use crate::batcher::{BatchBuilder, SeriesKey};
use crate::convert::{LabelLimits, ResidencyCheck, WriteBounds};
use crate::series_cache::SeriesCache;
use std::fmt::Write;
use strata_schemas::{Label, Labels, METRIC_NAME, Sample, SeriesId, TenantId, WriteBatch};
use strata_schemas::{device_hash_of, series_id_of};

/// Longest rendering of a rejected series' labels in an answer.
const MAX_RENDERED: usize = 512;

/// Why one series of a request was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesRejection {
    /// The series has no labels at all.
    #[error("series has no labels")]
    NoLabels,
    /// A label name is not UTF-8.
    #[error("label name {name:?} is not valid UTF-8")]
    NameNotUtf8 {
        /// The name, lossily decoded.
        name: String,
    },
    /// A label value is not UTF-8.
    #[error("value of label {name:?} is not valid UTF-8")]
    ValueNotUtf8 {
        /// The label's name.
        name: String,
    },
    /// A label name is empty or has characters outside `[a-zA-Z0-9_]`.
    #[error("invalid label name {name:?} (must match [a-zA-Z_][a-zA-Z0-9_]*)")]
    InvalidLabelName {
        /// The name.
        name: String,
    },
    /// The metric name or a label value holds a control character.
    #[error(
        "control character U+{code:04X} in the value of label {name:?}: control characters are not allowed (tab excepted in values other than __name__)"
    )]
    ControlCharacter {
        /// The label's name.
        name: String,
        /// The character.
        code: u32,
    },
    /// A label name appears twice.
    #[error("duplicate label name {name:?}")]
    DuplicateLabelName {
        /// The name.
        name: String,
    },
    /// There is no `__name__` label.
    #[error("missing metric name (label __name__)")]
    MissingMetricName,
    /// `__name__` is empty.
    #[error("empty metric name (label __name__ is \"\")")]
    EmptyMetricName,
    /// More labels than the tenant's `max_labels_per_series`.
    #[error("limit max_labels_per_series exceeded: series {metric} has {labels} labels, the limit is {limit}")]
    TooManyLabels {
        /// The metric name.
        metric: String,
        /// Labels of the series (`__name__` included).
        labels: usize,
        /// The limit.
        limit: u32,
    },
    /// The metric name is longer than the tenant's `max_label_value_length`.
    #[error("limit max_label_value_length exceeded: metric name is {len} bytes, the limit is {limit}")]
    MetricNameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: u32,
    },
    /// A label name is longer than the tenant's `max_label_name_length`.
    #[error("limit max_label_name_length exceeded: label name {prefix:?}… is {len} bytes, the limit is {limit}")]
    LabelNameTooLong {
        /// Its first 32 bytes.
        prefix: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: u32,
    },
    /// A label value is longer than the tenant's `max_label_value_length`.
    #[error("limit max_label_value_length exceeded: value of label {name:?} is {len} bytes, the limit is {limit}")]
    LabelValueTooLong {
        /// The label's name.
        name: String,
        /// The value's length in bytes.
        len: usize,
        /// The limit.
        limit: u32,
    },
    /// The tenant's residency label places the series in another jurisdiction.
    #[error("{reason}")]
    Residency {
        /// Which jurisdiction and which regions take it.
        reason: String,
    },
}

impl SeriesRejection {
    /// A short code for the per-tenant rejection counters: the limit's name, or `invalid_series`.
    pub fn code(&self) -> &'static str {
        match self {
            SeriesRejection::TooManyLabels { .. } => "max_labels_per_series",
            SeriesRejection::LabelNameTooLong { .. } => "max_label_name_length",
            SeriesRejection::MetricNameTooLong { .. } | SeriesRejection::LabelValueTooLong { .. } => {
                "max_label_value_length"
            }
            SeriesRejection::Residency { .. } => crate::convert::RESIDENCY,
            _ => "invalid_series",
        }
    }
}

/// A series that was not stored, as listed in a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeriesError {
    /// [`SeriesRejection::code`], for counters.
    #[serde(skip)]
    pub code: &'static str,
    /// 0-based index of the series in the request's `timeseries` (absent
    /// for series refused by `max_active_series`, decided after grouping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Its labels, rendered like PromQL: `metric{a="b", c="d"}`.
    pub series: String,
    /// What is wrong.
    pub reason: String,
}

/// The outcome of converting one request.
#[derive(Debug, Default)]
pub struct RemoteWriteConversion {
    /// One batch per partition that received samples: `(partition, batch)`.
    pub batches: Vec<(u32, WriteBatch)>,
    /// Series that passed validation.
    pub accepted_series: usize,
    /// Float samples of those series.
    pub samples: usize,
    /// Series rejected, in request order.
    pub rejected: Vec<SeriesError>,
    /// Native histogram samples of accepted series that were not stored.
    pub histograms_ignored: usize,
    /// Exemplars of accepted series that were not stored.
    pub exemplars_ignored: usize,
}

/// Converts remote-write requests for one tenant.
#[derive(Debug)]
pub struct SeriesConverter<'a> {
    /// The tenant of the request.
    pub tenant: &'a TenantId,
    /// The tenant's device label.
    pub device_label: &'a str,
    /// Number of log partitions.
    pub partitions: u32,
    /// Known series, shared across requests (None: build every label set).
    pub cache: Option<&'a SeriesCache>,
    /// The tenant's label limits.
    pub limits: LabelLimits,
}

impl SeriesConverter<'_> {
    /// Validates every series of `request` and groups the valid ones into batches.
    pub fn convert(&self, request: &proto::WriteRequest) -> RemoteWriteConversion {
        self.convert_within(request, &WriteBounds::NONE)
    }

    /// [`Self::convert`], storing only the samples inside `bounds`' time window.
    pub fn convert_within(&self, request: &proto::WriteRequest, bounds: &WriteBounds) -> RemoteWriteConversion {
        self.convert_checked(request, bounds, None)
    }

    /// [`Self::convert_within`], also refusing the series that `residency`
    /// places in another jurisdiction (code `residency`).
    pub fn convert_checked(
        &self,
        request: &proto::WriteRequest,
        bounds: &WriteBounds,
        residency: Option<&ResidencyCheck>,
    ) -> RemoteWriteConversion {
        let mut out = RemoteWriteConversion::default();
        let mut batches = BatchBuilder::new(self.tenant, self.partitions, request.timeseries.len());
        for (index, series) in request.timeseries.iter().enumerate() {
            let key = match self.series_key(&series.labels, residency) {
                Ok(key) => key,
                Err(e) => {
                    let (code, series, reason) = (e.code(), render(&series.labels), e.to_string());
                    out.rejected.push(SeriesError { code, index: Some(index), series, reason });
                    continue;
                }
            };
            let inside = |s: &&proto::Sample| bounds.check(s.timestamp).is_ok();
            let kept = series.samples.iter().filter(inside).count();
            if kept < series.samples.len() {
                out.rejected.push(outside_window(index, &series.labels, &series.samples, bounds));
                if kept == 0 {
                    continue;
                }
            }
            out.accepted_series += 1;
            out.histograms_ignored += series.histograms.len();
            out.exemplars_ignored += series.exemplars.len();
            if kept > 0 {
                out.samples += kept;
                batches.add(key, series.samples.iter().filter(inside).map(|s| Sample::new(s.timestamp, s.value)));
            }
        }
        out.batches = batches.finish();
        out
    }

    /// The identity of a series, or why it is invalid.
    fn series_key(
        &self,
        raw: &[proto::Label],
        residency: Option<&ResidencyCheck>,
    ) -> Result<SeriesKey, SeriesRejection> {
        let pairs = label_pairs(raw)?;
        let name = metric_name(&pairs)?;
        if let Some(residency) = residency {
            residency
                .check_labels(pairs.iter().copied())
                .map_err(|(_, reason)| SeriesRejection::Residency { reason })?;
        }
        check_limits(&self.limits, name, &pairs)?;
        let id = series_id_of(self.tenant, &[name], pairs.iter().copied());
        let device = pairs.iter().find(|(k, v)| *k == self.device_label && !v.is_empty());
        let device_hash = device.map_or(id.0, |(_, v)| device_hash_of(self.tenant, v));
        let labels = self.labels_for(id, &pairs);
        Ok(SeriesKey { id, device_hash, labels })
    }

    /// The label set of a series: from the cache when known, built otherwise.
    fn labels_for(&self, id: SeriesId, pairs: &[(&str, &str)]) -> Labels {
        if let Some(labels) = self.cache.and_then(|c| c.get(id, |l| labels_are(l, pairs))) {
            return labels;
        }
        // Names and values shared with every other label set using them (and
        // so with the hot store's index).
        let labels = match self.cache {
            Some(c) => Labels::new(pairs.iter().map(|(n, v)| Label::new(c.name(n), c.value(v))).collect()),
            None => Labels::new(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()),
        };
        if let Some(cache) = self.cache {
            cache.insert(id, labels.clone());
        }
        labels
    }
}

/// The error listing a series' samples outside the window: code and reason of the first one, and the count.
fn outside_window(
    index: usize,
    labels: &[proto::Label],
    samples: &[proto::Sample],
    bounds: &WriteBounds,
) -> SeriesError {
    let mut outside = samples.iter().filter_map(|s| bounds.check(s.timestamp).err());
    let (code, first) = outside.next().unwrap_or(("sample_out_of_window", String::new()));
    let n = 1 + outside.count();
    let reason = format!("{n} of its {} sample(s) not stored; the first: {first}", samples.len());
    SeriesError { code, index: Some(index), series: render(labels), reason }
}

/// The labels as `(name, value)` strings sorted by name, after checking
/// UTF-8, name syntax and uniqueness.
fn label_pairs(raw: &[proto::Label]) -> Result<Vec<(&str, &str)>, SeriesRejection> {
    if raw.is_empty() {
        return Err(SeriesRejection::NoLabels);
    }
    let mut pairs = Vec::with_capacity(raw.len());
    for l in raw {
        let name = std::str::from_utf8(&l.name)
            .map_err(|_| SeriesRejection::NameNotUtf8 { name: echo(&String::from_utf8_lossy(&l.name)) })?;
        if !is_valid_label_name(name) {
            return Err(SeriesRejection::InvalidLabelName { name: echo(name) });
        }
        let value = std::str::from_utf8(&l.value).map_err(|_| SeriesRejection::ValueNotUtf8 { name: echo(name) })?;
        let allow_tab = name != METRIC_NAME;
        if let Some(c) = value.chars().find(|&c| c.is_control() && !(allow_tab && c == '\t')) {
            return Err(SeriesRejection::ControlCharacter { name: echo(name), code: c as u32 });
        }
        pairs.push((name, value));
    }
    // Prometheus sends labels sorted; sort only when a client did not.
    if !pairs.windows(2).all(|w| w[0].0 <= w[1].0) {
        pairs.sort_by(|a, b| a.0.cmp(b.0));
    }
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SeriesRejection::DuplicateLabelName { name: echo(w[0].0) });
    }
    Ok(pairs)
}

/// The value of `__name__` among sorted, unique pairs.
fn metric_name<'a>(pairs: &[(&str, &'a str)]) -> Result<&'a str, SeriesRejection> {
    match pairs.iter().find(|(k, _)| *k == METRIC_NAME) {
        None => Err(SeriesRejection::MissingMetricName),
        Some((_, "")) => Err(SeriesRejection::EmptyMetricName),
        Some((_, v)) => Ok(v),
    }
}

/// Checks the tenant's label limits on sorted, unique pairs (empty values
/// are not stored, so they do not count).
fn check_limits(limits: &LabelLimits, metric: &str, pairs: &[(&str, &str)]) -> Result<(), SeriesRejection> {
    let labels = pairs.iter().filter(|(_, v)| !v.is_empty()).count();
    if labels > limits.max_labels_per_series as usize {
        let (metric, limit) = (echo(metric), limits.max_labels_per_series);
        return Err(SeriesRejection::TooManyLabels { metric, labels, limit });
    }
    let value_limit = limits.max_label_value_length;
    if metric.len() > value_limit as usize {
        return Err(SeriesRejection::MetricNameTooLong { len: metric.len(), limit: value_limit });
    }
    for (name, value) in pairs.iter().filter(|(n, _)| *n != METRIC_NAME) {
        if name.len() > limits.max_label_name_length as usize {
            let (prefix, len, limit) = (prefix(name).to_owned(), name.len(), limits.max_label_name_length);
            return Err(SeriesRejection::LabelNameTooLong { prefix, len, limit });
        }
        if value.len() > value_limit as usize {
            let (name, len) = (echo(name), value.len());
            return Err(SeriesRejection::LabelValueTooLong { name, len, limit: value_limit });
        }
    }
    Ok(())
}

/// A name echoed in a rejection, cut to [`crate::convert::MAX_ECHO`] bytes
/// and marked with its length, so an answer never repeats a huge input.
fn echo(name: &str) -> String {
    crate::convert::cut(name, crate::convert::MAX_ECHO)
}

/// The first 32 bytes of `s` (on a char boundary), for error messages.
fn prefix(s: &str) -> &str {
    let mut end = s.len().min(32);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// True for Prometheus's (legacy) label name syntax `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True when `labels` is exactly the sorted `pairs` without empty values.
fn labels_are(labels: &Labels, pairs: &[(&str, &str)]) -> bool {
    let mut expected = pairs.iter().filter(|(_, v)| !v.is_empty());
    labels.iter().all(|l| expected.next().is_some_and(|(n, v)| l.name == *n && l.value == *v))
        && expected.next().is_none()
}

/// Renders raw labels like PromQL (`metric{a="b", c="d"}`), in received
/// order, lossily for invalid UTF-8, cut at [`MAX_RENDERED`] bytes.
pub(crate) fn render(raw: &[proto::Label]) -> String {
    let mut out = String::new();
    if let Some(l) = raw.iter().find(|l| l.name.as_ref() == METRIC_NAME.as_bytes()) {
        out.push_str(&String::from_utf8_lossy(&l.value));
    }
    out.push('{');
    let mut first = true;
    for l in raw.iter().filter(|l| l.name.as_ref() != METRIC_NAME.as_bytes()) {
        if !first {
            out.push_str(", ");
        }
        first = false;
        let _ = write!(out, "{}={:?}", String::from_utf8_lossy(&l.name), String::from_utf8_lossy(&l.value));
    }
    out.push('}');
    if out.len() > MAX_RENDERED {
        let mut cut = MAX_RENDERED;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}
