//! The Prometheus text exposition format (version 0.0.4), written one way
//! for every crate's `/metrics`.
//!
//! ```text
//! # HELP <name> <help, `\` and newline escaped>
//! # TYPE <name> counter|gauge|summary|histogram|untyped
//! <name>{<label>="<value, `\` `"` newline escaped>",...} <value>
//! ```
//!
//! A family is its `# HELP` and `# TYPE` lines ([`MetricsText::family`])
//! followed by its samples ([`MetricsText::sample`]); [`MetricsText::counter`]
//! and [`MetricsText::gauge`] write a family of one unlabelled sample.
//! Values: integers as decimal, finite floats as Rust's `Display` (shortest
//! text that reads back to the same `f64`: `0.5`, `3`, `1e-7` is `0.0000001`),
//! infinities as `+Inf`/`-Inf` and NaN as `NaN`, as Prometheus parses them.
//!
//! The renderer appends to a caller's `String`, so a `/metrics` handler can
//! collect every crate's families into one body. It does not check that a
//! family is written once or that samples follow their family: callers own
//! the order.
//!
//! Metric and label names are the caller's constants and are not escaped
//! (debug builds assert they are valid names); label values and help text
//! may be anything and are escaped.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))] // a codec: malformed input is an error, never a panic
use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// The `# TYPE` of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that only goes up (reset on restart).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Quantiles (`quantile` label) plus `_sum` and `_count` samples.
    Summary,
    /// Cumulative `_bucket{le=…}` samples plus `_sum` and `_count`.
    Histogram,
    /// No type given.
    Untyped,
}

impl MetricKind {
    /// The word on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Summary => "summary",
            Self::Histogram => "histogram",
            Self::Untyped => "untyped",
        }
    }
}

/// A sample value: integers are written exactly, floats as Prometheus
/// reads them (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricValue {
    /// A count or a size.
    Unsigned(u64),
    /// A signed integer (an offset, a skew in ms).
    Signed(i64),
    /// Anything else.
    Float(f64),
}

impl From<u64> for MetricValue {
    fn from(v: u64) -> Self {
        Self::Unsigned(v)
    }
}

impl From<u32> for MetricValue {
    fn from(v: u32) -> Self {
        Self::Unsigned(u64::from(v))
    }
}

impl From<usize> for MetricValue {
    fn from(v: usize) -> Self {
        Self::Unsigned(v as u64)
    }
}

impl From<i64> for MetricValue {
    fn from(v: i64) -> Self {
        Self::Signed(v)
    }
}

impl From<f64> for MetricValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

/// `true` is 1, `false` 0 (a gauge such as "connected").
impl From<bool> for MetricValue {
    fn from(v: bool) -> Self {
        Self::Unsigned(u64::from(v))
    }
}

impl fmt::Display for MetricValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unsigned(v) => write!(f, "{v}"),
            Self::Signed(v) => write!(f, "{v}"),
            Self::Float(v) if v.is_nan() => f.write_str("NaN"),
            Self::Float(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Self::Float(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Self::Float(v) => write!(f, "{v}"),
        }
    }
}

/// Appends metric families in the text exposition format to a `String`.
#[derive(Debug)]
pub struct MetricsText<'a> {
    out: &'a mut String,
}

impl<'a> MetricsText<'a> {
    /// A renderer appending to `out`.
    pub fn new(out: &'a mut String) -> Self {
        Self { out }
    }

    /// Writes a family's `# HELP` and `# TYPE` lines; its samples follow.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) -> &mut Self {
        debug_assert!(is_metric_name(name), "invalid metric name {name:?}");
        let _ = writeln!(self.out, "# HELP {name} {}\n# TYPE {name} {}", escape_help(help), kind.as_str());
        self
    }

    /// Writes one sample line: `name{labels} value` (no braces without
    /// labels). Label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<MetricValue>) -> &mut Self {
        debug_assert!(is_metric_name(name), "invalid metric name {name:?}");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                debug_assert!(is_label_name(label), "invalid label name {label:?}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value.into());
        self
    }

    /// A counter family of one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: impl Into<MetricValue>) -> &mut Self {
        self.family(name, MetricKind::Counter, help).sample(name, &[], value)
    }

    /// A gauge family of one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Into<MetricValue>) -> &mut Self {
        self.family(name, MetricKind::Gauge, help).sample(name, &[], value)
    }
}

/// Help text as the exposition format wants it: `\` → `\\`, newline → `\n`.
pub fn escape_help(help: &str) -> Cow<'_, str> {
    escape(help, false)
}

/// A label value as the exposition format wants it: `\` → `\\`, `"` →
/// `\"`, newline → `\n`.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    escape(value, true)
}

fn escape(s: &str, quote: bool) -> Cow<'_, str> {
    let needs = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    if !s.contains(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut MetricsText<'_>)) -> String {
        let mut out = String::new();
        f(&mut MetricsText::new(&mut out));
        out
    }

    #[test]
    fn a_counter_and_a_gauge_are_a_help_a_type_and_a_sample_line() {
        let text = render(|m| {
            m.counter("strata_x_total", "Things done.", 3u64).gauge("strata_y", "A level.", 0.5);
        });
        assert_eq!(
            text,
            "# HELP strata_x_total Things done.\n# TYPE strata_x_total counter\nstrata_x_total 3\n\
             # HELP strata_y A level.\n# TYPE strata_y gauge\nstrata_y 0.5\n"
        );
    }

    #[test]
    fn labelled_samples_follow_their_family_in_the_given_label_order() {
        let text = render(|m| {
            m.family("strata_lag", MetricKind::Gauge, "Lag.")
                .sample("strata_lag", &[("topic", "t"), ("partition", "0")], 7u64)
                .sample("strata_lag", &[("topic", "t"), ("partition", "1")], 0u64);
        });
        assert_eq!(
            text,
            "# HELP strata_lag Lag.\n# TYPE strata_lag gauge\n\
             strata_lag{topic=\"t\",partition=\"0\"} 7\nstrata_lag{topic=\"t\",partition=\"1\"} 0\n"
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let text = render(|m| {
            m.sample("m", &[("reason", "a\\b\"c\nd")], 1u64);
        });
        assert_eq!(text, "m{reason=\"a\\\\b\\\"c\\nd\"} 1\n");
        assert!(matches!(escape_label_value("plain value"), Cow::Borrowed("plain value")));
    }

    #[test]
    fn help_escapes_backslash_and_newline_but_not_quotes() {
        let text = render(|m| {
            m.family("m", MetricKind::Counter, "a \"quoted\" c:\\dir\nsecond line");
        });
        assert_eq!(text, "# HELP m a \"quoted\" c:\\\\dir\\nsecond line\n# TYPE m counter\n");
    }

    #[test]
    fn values_are_written_as_prometheus_reads_them() {
        let cases: [(MetricValue, &str); 11] = [
            (0u64.into(), "0"),
            (u64::MAX.into(), "18446744073709551615"),
            ((-5i64).into(), "-5"),
            (0.0.into(), "0"),
            (1.25.into(), "1.25"),
            ((-0.001).into(), "-0.001"),
            (f64::INFINITY.into(), "+Inf"),
            (f64::NEG_INFINITY.into(), "-Inf"),
            (f64::NAN.into(), "NaN"),
            (true.into(), "1"),
            (7usize.into(), "7"),
        ];
        for (v, text) in cases {
            assert_eq!(v.to_string(), text, "{v:?}");
        }
        // Finite floats read back to the same value.
        for x in [0.1, 1e-7, 123_456.789, 1e300, f64::MIN_POSITIVE] {
            let back: f64 = MetricValue::from(x).to_string().parse().unwrap_or(f64::NAN);
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
    }

    #[test]
    fn every_kind_has_its_exposition_word() {
        let words: Vec<&str> =
            [MetricKind::Counter, MetricKind::Gauge, MetricKind::Summary, MetricKind::Histogram, MetricKind::Untyped]
                .iter()
                .map(|k| k.as_str())
                .collect();
        assert_eq!(words, ["counter", "gauge", "summary", "histogram", "untyped"]);
    }

    #[test]
    fn names_are_checked_against_the_exposition_grammar() {
        assert!(is_metric_name("strata_x:rate5m_total"));
        assert!(is_metric_name("_x"));
        assert!(!is_metric_name(""));
        assert!(!is_metric_name("1x"));
        assert!(!is_metric_name("a-b"));
        assert!(is_label_name("le"));
        assert!(!is_label_name("a:b"));
        assert!(!is_label_name("9"));
    }
}
