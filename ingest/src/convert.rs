//! Line protocol → Prometheus series, grouped into one batch per log partition.
//!
//! The mapping is the one VictoriaMetrics and Telegraf use, so the same
//! PromQL works on both:
//!
//! ```text
//! sensors,device=d1,farm=f1 temp=18.5,value=3i 1700000000000000000
//!   → sensors_temp{device="d1",farm="f1"} 18.5 @1700000000000
//!   → sensors{device="d1",farm="f1"}      3    @1700000000000     (field `value` maps to the measurement)
//! ```
//!
//! Integers, unsigned integers and booleans (1/0) become floats. String
//! fields cannot be stored; they are skipped and reported per line, and a
//! line with nothing but string fields is rejected. Timestamps are converted
//! from the request precision to milliseconds; a line without one gets the
//! server time of the request.
//!
//! A hostile or broken client is bounded per line ([`WriteBounds`]): tags by
//! the tenant's `max_labels_per_series` and distinct fields by
//! `ingest.max_fields_per_line`, both while parsing, so an oversized line
//! costs no more than its allowed part; timestamps must fall in a window
//! around the node's clock (`ingest.creation_grace_period` ahead,
//! `ingest.past_grace_period` or the tenant's `hot_ttl` behind). Whatever
//! an answer echoes of the input is cut to [`MAX_ECHO`] bytes per fragment
//! and each reason to [`MAX_REASON`] bytes, so the error list stays small
//! whatever the body held.
//!
//! A tenant with a residency label ([`ResidencyCheck`]) has each line whose
//! value of that label belongs to another jurisdiction than this node's
//! refused (code `residency`), naming the regions that take it; nothing of
//! the line is stored. Without one (or when none of its values leaves this
//! jurisdiction) the check costs nothing.

use crate::batcher::{BatchBuilder, SeriesKey};
use crate::config::IngestConfig;
use crate::series_cache::{LineShape, SeriesCache};
use humantime_serde::re::humantime::format_duration;
use std::collections::HashMap;
use std::time::Duration;
use strata_schemas::line_protocol::{
    FieldValue, ParseError, ParseErrorKind, ParseOptions, ParsedLine, parse_lines_with,
};
use strata_schemas::time::Precision;
use strata_schemas::{Label, Labels, METRIC_NAME, Sample, SeriesId, Str, TenantId, TenantLimits, WriteBatch};
use strata_schemas::{RegionDirectory, TenantPolicy};
use strata_schemas::{device_hash_of, series_id_of};

/// Most bytes of one piece of client input (a name, a value, a token)
/// echoed in an error answer; longer ones are cut and marked with their length.
pub const MAX_ECHO: usize = 64;

/// Most bytes of one reason in an error answer (a safety net: every echoed
/// fragment is already cut to [`MAX_ECHO`]).
pub const MAX_REASON: usize = 1024;

/// `text` quoted for an error message, cut to [`MAX_ECHO`] bytes:
/// `"abc"…(70000 bytes)`.
pub fn quote(text: &str) -> String {
    if text.len() <= MAX_ECHO {
        return format!("{text:?}");
    }
    format!("{:?}…({} bytes)", head(text, MAX_ECHO), text.len())
}

/// `text` unquoted, cut to `max` bytes and marked with its length: `abc…(70000 bytes)`.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…({} bytes)", head(text, max), text.len())
}

/// The first `max` bytes of `text`, on a char boundary.
fn head(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Per-line bounds of a write beyond the tenant's label limits: the node's
/// field bound and the accepted time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBounds {
    /// Most distinct fields on one line (`ingest.max_fields_per_line`).
    pub max_fields_per_line: usize,
    /// Oldest accepted sample timestamp (ms), inclusive.
    pub oldest_ms: i64,
    /// Newest accepted sample timestamp (ms), inclusive.
    pub newest_ms: i64,
    /// How far behind `now` the window reaches, and the setting that says so.
    pub(crate) past: (Duration, &'static str),
    /// How far ahead of `now` the window reaches.
    pub(crate) future: Duration,
}

impl WriteBounds {
    /// No bounds (tests and benches that convert fixed old data).
    pub const NONE: Self = Self {
        max_fields_per_line: usize::MAX,
        oldest_ms: i64::MIN,
        newest_ms: i64::MAX,
        past: (Duration::MAX, "none"),
        future: Duration::MAX,
    };

    /// The bounds of a write at `now_ms` for a tenant with `limits`: samples
    /// from `now − past` to `now + creation_grace_period`, where `past` is
    /// `ingest.past_grace_period`, or the tenant's `hot_ttl` when that is `0s`.
    pub fn new(config: &IngestConfig, limits: &TenantLimits, now_ms: i64) -> Self {
        let past = if config.past_grace_period.is_zero() {
            (limits.hot_ttl, "the tenant's hot_ttl")
        } else {
            (config.past_grace_period, "ingest.past_grace_period")
        };
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            max_fields_per_line: config.max_fields_per_line,
            oldest_ms: now_ms.saturating_sub(ms(past.0)),
            newest_ms: now_ms.saturating_add(ms(config.creation_grace_period)),
            past,
            future: config.creation_grace_period,
        }
    }

    /// Checks a sample timestamp (ms): the refusal's code and reason when outside the window.
    pub fn check(&self, ts: i64) -> Result<(), (&'static str, String)> {
        if ts < self.oldest_ms {
            return Err((
                "sample_too_old",
                format!(
                    "timestamp {ts} ms is older than {} ms, {} before now ({}): it would be deleted before anyone \
                     could read it",
                    self.oldest_ms,
                    format_duration(self.past.0),
                    self.past.1
                ),
            ));
        }
        if ts > self.newest_ms {
            return Err((
                "sample_too_far_in_future",
                format!(
                    "timestamp {ts} ms is more than {} ahead of the server's clock (newest accepted: {} ms, \
                     ingest.creation_grace_period); check the client's clock and the write's precision",
                    format_duration(self.future),
                    self.newest_ms
                ),
            ));
        }
        Ok(())
    }
}

/// The code of a line or series refused by the tenant's residency label.
pub const RESIDENCY: &str = "residency";

/// The tenant's residency label as this node applies it: for each value of
/// the label that places a series in another jurisdiction than this node's,
/// the reason a line or series carrying it is refused here. Built once per
/// request ([`ResidencyCheck::of`]); `None` when the tenant has no residency
/// label or none of its values leaves this jurisdiction, so a write without
/// one pays nothing per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidencyCheck {
    /// The label name.
    label: String,
    /// Label value → reason of the refusal (only values of other jurisdictions).
    refused: HashMap<String, String>,
}

impl ResidencyCheck {
    /// The check of `policy`'s residency label on the node of `regions`
    /// (its local region and jurisdiction), or `None` when nothing is refused.
    pub fn of(policy: &TenantPolicy, regions: &RegionDirectory) -> Option<Self> {
        let residency = policy.residency.as_ref()?;
        let (here, here_j) = (regions.local(), regions.local_jurisdiction());
        let refused: HashMap<String, String> = residency
            .jurisdictions
            .iter()
            .filter(|(_, j)| j.as_str() != here_j)
            .map(|(value, j)| {
                let accepting: Vec<&str> =
                    policy.data_regions().into_iter().filter(|r| regions.jurisdiction_of(r) == Some(j)).collect();
                let send = if accepting.is_empty() {
                    format!(
                        "none of the tenant's data regions is in jurisdiction {j} (its data regions: {})",
                        regions.describe(policy.data_regions())
                    )
                } else {
                    format!("send it to {}", regions.describe(accepting))
                };
                let reason = format!(
                    "label {}={} places this series in jurisdiction {j}; this node is region {here} (jurisdiction \
                     {here_j}): {send}",
                    residency.label,
                    quote(value),
                );
                (value.clone(), cut(&reason, MAX_REASON))
            })
            .collect();
        if refused.is_empty() {
            return None;
        }
        Some(Self { label: residency.label.clone(), refused })
    }

    /// The residency label's name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Checks the value of the residency label: the refusal's code and
    /// reason when it places the series in another jurisdiction.
    pub fn check(&self, value: &str) -> Result<(), (&'static str, String)> {
        match self.refused.get(value) {
            None => Ok(()),
            Some(reason) => Err((RESIDENCY, reason.clone())),
        }
    }

    /// Checks a label set (`(name, value)` pairs): [`Self::check`] on the
    /// value of the residency label, if the set has it.
    pub fn check_labels<'a>(
        &self,
        mut labels: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), (&'static str, String)> {
        match labels.find(|(k, _)| *k == self.label) {
            Some((_, v)) => self.check(v),
            None => Ok(()),
        }
    }
}

/// A line that was not stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineError {
    /// Why, as a short code for counters: `invalid_line`, `string_fields`, or the limit's name.
    #[serde(skip)]
    pub code: &'static str,
    /// 1-based line number in the request body.
    pub line: usize,
    /// 1-based byte column, when the problem has a position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

/// A field that was skipped while the rest of its line was stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedField {
    /// 1-based line number.
    pub line: usize,
    /// Field key.
    pub field: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The outcome of converting one request body.
#[derive(Debug, Default)]
pub struct Conversion {
    /// One batch per partition that received samples: `(partition, batch)`.
    pub batches: Vec<(u32, WriteBatch)>,
    /// Lines that produced samples.
    pub accepted_lines: usize,
    /// Samples produced.
    pub samples: usize,
    /// Lines rejected, in line order.
    pub rejected: Vec<LineError>,
    /// String fields skipped, in line order.
    pub skipped: Vec<SkippedField>,
}

/// Converts request bodies for one tenant.
#[derive(Debug)]
pub struct Converter<'a> {
    /// The tenant of the request.
    pub tenant: &'a TenantId,
    /// Precision of the timestamps in the body.
    pub precision: Precision,
    /// Server time (ms) for lines without a timestamp.
    pub now_ms: i64,
    /// The tenant's device label.
    pub device_label: &'a str,
    /// Number of log partitions.
    pub partitions: u32,
    /// Known series, shared across requests (None: build every label set).
    pub cache: Option<&'a SeriesCache>,
    /// The tenant's label limits.
    pub limits: LabelLimits,
}

/// The label limits a line is checked against (from the tenant's limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelLimits {
    /// `max_labels_per_series` (`__name__` included).
    pub max_labels_per_series: u32,
    /// `max_label_name_length` in bytes.
    pub max_label_name_length: u32,
    /// `max_label_value_length` in bytes (the metric name counts as a value).
    pub max_label_value_length: u32,
}

impl LabelLimits {
    /// The label limits of a tenant's limits.
    pub fn of(l: &strata_schemas::TenantLimits) -> Self {
        Self {
            max_labels_per_series: l.max_labels_per_series,
            max_label_name_length: l.max_label_name_length,
            max_label_value_length: l.max_label_value_length,
        }
    }

    /// Checks one series (tags plus a metric name of `metric_len` bytes).
    fn check(&self, tags: &[(&str, &str)], metric: &[&str; 3]) -> Result<(), (&'static str, String)> {
        let labels = tags.len() + 1;
        if labels > self.max_labels_per_series as usize {
            return Err((
                "max_labels_per_series",
                format!(
                    "limit max_labels_per_series exceeded: series {} has {labels} labels, the limit is {}",
                    cut(&metric.concat(), MAX_ECHO),
                    self.max_labels_per_series
                ),
            ));
        }
        let metric_len: usize = metric.iter().map(|p| p.len()).sum();
        if metric_len > self.max_label_value_length as usize {
            return Err((
                "max_label_value_length",
                format!(
                    "limit max_label_value_length exceeded: metric name is {metric_len} bytes, the limit is {}",
                    self.max_label_value_length
                ),
            ));
        }
        for (k, v) in tags {
            if k.len() > self.max_label_name_length as usize {
                return Err((
                    "max_label_name_length",
                    format!(
                        "limit max_label_name_length exceeded: label name {:?}… is {} bytes, the limit is {}",
                        head(k, 32),
                        k.len(),
                        self.max_label_name_length
                    ),
                ));
            }
            if v.len() > self.max_label_value_length as usize {
                return Err((
                    "max_label_value_length",
                    format!(
                        "limit max_label_value_length exceeded: value of label {} is {} bytes, the limit is {}",
                        quote(k),
                        v.len(),
                        self.max_label_value_length
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Default for LabelLimits {
    fn default() -> Self {
        Self::of(&strata_schemas::TenantLimits::default())
    }
}

impl Converter<'_> {
    /// Parses and converts a whole request body, with no [`WriteBounds`].
    pub fn convert(&self, body: &[u8]) -> Conversion {
        self.convert_within(body, &WriteBounds::NONE)
    }

    /// Parses and converts a whole request body; lines outside `bounds`
    /// are rejected, each with its reason.
    pub fn convert_within(&self, body: &[u8], bounds: &WriteBounds) -> Conversion {
        self.convert_checked(body, bounds, None)
    }

    /// [`Self::convert_within`], also refusing the lines that `residency`
    /// places in another jurisdiction (code `residency`).
    pub fn convert_checked(&self, body: &[u8], bounds: &WriteBounds, residency: Option<&ResidencyCheck>) -> Conversion {
        let mut out = Conversion::default();
        let options = ParseOptions {
            // The series of a line carry its tags plus `__name__`.
            max_tags: (self.limits.max_labels_per_series as usize).saturating_sub(1),
            max_fields: bounds.max_fields_per_line,
        };
        // A line's field (`name=1.5,`) with its share of the tags: ~20 bytes
        // on IoT data; the hint only sizes the builder's tables up front.
        let mut batches = BatchBuilder::new(self.tenant, self.partitions, (body.len() / 24).min(1 << 18));
        let mut key = Vec::with_capacity(256);
        for parsed in parse_lines_with(body, options) {
            let line = match parsed {
                Ok(line) => line,
                Err(e) => {
                    out.rejected.push(self.parse_rejection(e));
                    continue;
                }
            };
            match self.line_samples(&line, bounds, residency, &mut out.skipped, &mut key) {
                Ok(series) => {
                    out.accepted_lines += 1;
                    for (series, sample) in series {
                        out.samples += 1;
                        batches.add_one(series, sample);
                    }
                }
                Err((code, reason)) => {
                    let reason = cut(&reason, MAX_REASON);
                    out.rejected.push(LineError { code, line: line.line_no, column: None, reason });
                }
            }
        }
        out.batches = batches.finish();
        out
    }

    /// The rejection of a line that does not parse, named after the bound it broke.
    fn parse_rejection(&self, e: ParseError) -> LineError {
        let (code, reason) = match e.kind {
            ParseErrorKind::TooManyTags => {
                let limit = self.limits.max_labels_per_series;
                let reason = format!(
                    "limit max_labels_per_series exceeded: the line has more than {} tags, so its series would have \
                     more than {limit} labels (__name__ included), the limit is {limit}",
                    limit.saturating_sub(1)
                );
                ("max_labels_per_series", reason)
            }
            ParseErrorKind::TooManyFields => (
                "max_fields_per_line",
                format!("limit max_fields_per_line exceeded: {} (node setting ingest.max_fields_per_line)", e.message),
            ),
            _ => ("invalid_line", e.message),
        };
        LineError { code, line: e.line, column: Some(e.column), reason: cut(&reason, MAX_REASON) }
    }

    /// The series and sample of each numeric field of one line, or why the line is rejected.
    fn line_samples(
        &self,
        line: &ParsedLine<'_>,
        bounds: &WriteBounds,
        residency: Option<&ResidencyCheck>,
        skipped: &mut Vec<SkippedField>,
        key: &mut Vec<u8>,
    ) -> Result<Vec<(SeriesKey, Sample)>, (&'static str, String)> {
        let invalid = |msg: String| ("invalid_line", msg);
        if let Some(residency) = residency {
            residency.check_labels(line.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))?;
        }
        let ts = match line.timestamp {
            Some(ts) => {
                let ms = self
                    .precision
                    .to_millis(ts)
                    .ok_or_else(|| invalid(format!("timestamp {ts} overflows in precision {:?}", self.precision)))?;
                bounds.check(ms)?;
                ms
            }
            None => self.now_ms,
        };
        let shape = self.cache.map(|cache| {
            line_key(key, self.tenant, line);
            let hash = xxhash_rust::xxh3::xxh3_64(key);
            (cache, hash, cache.line(hash, key))
        });
        if let Some((_, _, Some(shape))) = &shape
            && let Some(out) = self.samples_from_shape(line, shape, ts)
        {
            return Ok(out);
        }
        let out = self.line_samples_slow(line, skipped, ts)?;
        if let Some((cache, hash, _)) = shape {
            let device_hash = out
                .first()
                .map(|(s, _)| s.device_hash)
                .filter(|_| line.tags.iter().any(|(k, _)| k == self.device_label));
            let fields = line
                .fields
                .iter()
                .filter(|(_, v)| !matches!(v, FieldValue::String(_)))
                .zip(&out)
                .map(|((k, _), (s, _))| (Box::from(k.as_ref()), s.id, s.labels.clone(), s.labels.metric_name().len()))
                .collect();
            cache.insert_line(hash, LineShape { key: key.as_slice().into(), device_hash, fields });
        }
        Ok(out)
    }

    /// The fast path: every numeric field of the line is in its cached
    /// shape and the line is within the label limits. `None` otherwise (the
    /// slow path then gives the exact answer or error).
    fn samples_from_shape(
        &self,
        line: &ParsedLine<'_>,
        shape: &LineShape,
        ts: i64,
    ) -> Option<Vec<(SeriesKey, Sample)>> {
        let l = &self.limits;
        let within = line.tags.len() < l.max_labels_per_series as usize
            && line.tags.iter().all(|(k, v)| {
                k.len() <= l.max_label_name_length as usize && v.len() <= l.max_label_value_length as usize
            });
        if !within {
            return None;
        }
        // Each field's label set is cloned below: with many series each is a
        // cache miss, and asked for together they are waited for once.
        for f in &shape.fields {
            f.2.prefetch();
        }
        let mut out = Vec::with_capacity(line.fields.len());
        for (i, (key, value)) in line.fields.iter().enumerate() {
            let value = match value {
                FieldValue::Float(f) => *f,
                FieldValue::Integer(i) => *i as f64,
                FieldValue::UInteger(u) => *u as f64,
                FieldValue::Boolean(b) => f64::from(u8::from(*b)),
                FieldValue::String(_) => return None,
            };
            // A device sends its fields in the same order every time.
            let (_, id, labels, name_len) = match shape.fields.get(i) {
                Some(f) if *f.0 == **key => f,
                _ => shape.fields.iter().find(|f| *f.0 == **key)?,
            };
            if *name_len > l.max_label_value_length as usize {
                return None;
            }
            let series = SeriesKey { id: *id, device_hash: shape.device_hash.unwrap_or(id.0), labels: labels.clone() };
            out.push((series, Sample::new(ts, value)));
        }
        Some(out)
    }

    /// The slow path: sort tags, hash every series, build or fetch its labels.
    fn line_samples_slow(
        &self,
        line: &ParsedLine<'_>,
        skipped: &mut Vec<SkippedField>,
        ts: i64,
    ) -> Result<Vec<(SeriesKey, Sample)>, (&'static str, String)> {
        let invalid = |msg: String| ("invalid_line", msg);
        let mut tags: Vec<(&str, &str)> = Vec::with_capacity(line.tags.len());
        for (k, v) in &line.tags {
            if k.starts_with("__") {
                return Err(invalid(format!("tag key {} uses the reserved prefix \"__\"", quote(k))));
            }
            tags.push((k.as_ref(), v.as_ref()));
        }
        tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let device = tags.iter().find(|(k, _)| *k == self.device_label).map(|(_, v)| device_hash_of(self.tenant, v));
        let measurement = line.measurement.as_ref();
        let mut out = Vec::with_capacity(line.fields.len());
        let mut string_fields = Vec::new();
        // The tag labels of the line, built once and shared by its fields' label sets.
        let mut tag_labels: Option<Vec<Label>> = None;
        for (key, value) in &line.fields {
            let value = match value {
                FieldValue::Float(f) => *f,
                FieldValue::Integer(i) => *i as f64,
                FieldValue::UInteger(u) => *u as f64,
                FieldValue::Boolean(b) => f64::from(u8::from(*b)),
                FieldValue::String(_) => {
                    string_fields.push(key.as_ref());
                    continue;
                }
            };
            let metric: [&str; 3] = if key == "value" { [measurement, "", ""] } else { [measurement, "_", key] };
            self.limits.check(&tags, &metric)?;
            let id = series_id_of(self.tenant, &metric, tags.iter().copied());
            let labels = self.labels_for(id, &metric, &tags, &mut tag_labels);
            out.push((SeriesKey { id, device_hash: device.unwrap_or(id.0), labels }, Sample::new(ts, value)));
        }
        if out.is_empty() {
            return Err((
                "string_fields",
                format!(
                    "no numeric field: string field(s) {} cannot be stored (Strata stores numbers only)",
                    quote_some(&string_fields, 5)
                ),
            ));
        }
        for f in string_fields {
            skipped.push(SkippedField {
                line: line.line_no,
                field: cut(f, MAX_ECHO),
                reason: "string fields are not stored (Strata stores numbers only); the line's other fields were"
                    .to_owned(),
            });
        }
        Ok(out)
    }

    /// The label set of a series: from the cache when known, built otherwise.
    /// `tag_labels` holds the line's tags as labels once built, so the label
    /// sets of one line's fields share the tag strings.
    fn labels_for(
        &self,
        id: SeriesId,
        metric: &[&str; 3],
        tags: &[(&str, &str)],
        tag_labels: &mut Option<Vec<Label>>,
    ) -> Labels {
        static NAME: std::sync::LazyLock<Str> = std::sync::LazyLock::new(|| Str::from(METRIC_NAME));
        if let Some(labels) = self.cache.and_then(|c| c.get(id, |l| labels_are(l, metric, tags))) {
            return labels;
        }
        let name = |n: &str| self.cache.map_or_else(|| Str::from(n), |c| c.name(n));
        let value = |v: &str| self.cache.map_or_else(|| Str::from(v), |c| c.value(v));
        let tag_labels =
            tag_labels.get_or_insert_with(|| tags.iter().map(|(k, v)| Label::new(name(k), value(v))).collect());
        let mut all = Vec::with_capacity(tags.len() + 1);
        all.push(Label::new(NAME.clone(), name(&metric.concat())));
        all.extend(tag_labels.iter().cloned());
        let labels = Labels::new(all);
        if let Some(cache) = self.cache {
            cache.insert(id, labels.clone());
        }
        labels
    }
}

/// The first `max` of `names`, quoted and cut, then how many more there are.
fn quote_some(names: &[&str], max: usize) -> String {
    let mut out = names.iter().take(max).map(|n| quote(n)).collect::<Vec<_>>().join(", ");
    if names.len() > max {
        out.push_str(&format!(" and {} more", names.len() - max));
    }
    out
}

/// The cache key of a line's shape: tenant, measurement and tags in input order.
fn line_key(key: &mut Vec<u8>, tenant: &TenantId, line: &ParsedLine<'_>) {
    key.clear();
    key.extend_from_slice(tenant.as_str().as_bytes());
    key.push(0xFF);
    key.extend_from_slice(line.measurement.as_bytes());
    key.push(0xFF);
    for (k, v) in &line.tags {
        key.extend_from_slice(k.as_bytes());
        key.push(0xFE);
        key.extend_from_slice(v.as_bytes());
        key.push(0xFF);
    }
}

/// True when `labels` is exactly `__name__` = the concatenated `metric`
/// pieces plus the (sorted) `tags`.
fn labels_are(labels: &Labels, metric: &[&str; 3], tags: &[(&str, &str)]) -> bool {
    let mut name = labels.metric_name();
    for piece in metric {
        match name.strip_prefix(piece) {
            Some(rest) => name = rest,
            None => return false,
        }
    }
    if !name.is_empty() || labels.len() != tags.len() + 1 {
        return false;
    }
    let mut rest = labels.iter().filter(|l| l.name != METRIC_NAME);
    tags.iter().all(|(k, v)| rest.next().is_some_and(|l| l.name == *k && l.value == *v))
}

#[cfg(test)]
mod tests;
