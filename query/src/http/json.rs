//! Prometheus's JSON encoding of results, written by hand so floats and
//! timestamps come out byte-for-byte as Prometheus writes them.

use crate::value::{QueryResult, Value};
use std::fmt::Write;
use strata_schemas::Labels;

/// Prometheus's `jsonutil.MarshalFloat` body (without quotes): `'f'` format,
/// `'e'` below 1e-6 or from 1e21, `NaN`, `+Inf`, `-Inf`.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

/// Prometheus's `jsonutil.MarshalTimestamp`: seconds with the millisecond fraction.
pub fn format_timestamp(out: &mut String, t: i64) {
    let t = if t < 0 {
        out.push('-');
        t.unsigned_abs()
    } else {
        t as u64
    };
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

/// Appends a JSON string literal.
pub fn push_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Appends a label set as a JSON object.
pub fn push_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, lab) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, &lab.name);
        out.push(':');
        push_str(out, &lab.value);
    }
    out.push('}');
}

fn push_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    format_timestamp(out, t);
    out.push_str(",\"");
    out.push_str(&format_float(v));
    out.push_str("\"]");
}

/// Appends `"warnings":[...]` (with a leading comma) when there are any.
pub fn push_warnings(out: &mut String, warnings: &[String]) {
    push_annotations(out, "warnings", warnings);
}

/// Appends `"<key>":[...]` (with a leading comma) when there are any.
pub fn push_annotations(out: &mut String, key: &str, warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":[");
    for (i, w) in warnings.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, w);
    }
    out.push(']');
}

/// The success envelope of `/api/v1/query` and `/api/v1/query_range`.
pub fn query_result(r: &QueryResult) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":");
    match &r.value {
        Value::Scalar { t, v } => {
            out.push_str("\"scalar\",\"result\":");
            push_point(&mut out, *t, *v);
        }
        Value::String { t, v } => {
            out.push_str("\"string\",\"result\":[");
            format_timestamp(&mut out, *t);
            out.push(',');
            push_str(&mut out, v);
            out.push(']');
        }
        Value::Vector(v) => {
            out.push_str("\"vector\",\"result\":[");
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_labels(&mut out, &s.labels);
                out.push_str(",\"value\":");
                push_point(&mut out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(m) => {
            out.push_str("\"matrix\",\"result\":[");
            for (i, s) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_point(&mut out, p.ts, p.value);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    push_warnings(&mut out, &r.warnings);
    push_annotations(&mut out, "infos", &r.infos);
    out.push('}');
    out
}

/// The error envelope.
pub fn error(error_type: &str, msg: &str) -> String {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":");
    push_str(&mut out, error_type);
    out.push_str(",\"error\":");
    push_str(&mut out, msg);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_go() {
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(100.0), "100");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(1e-7), "1e-07");
        assert_eq!(format_float(1.5e21), "1.5e+21");
        assert_eq!(format_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float(-0.0), "-0");
    }

    #[test]
    fn timestamps_match_go() {
        let f = |t| {
            let mut s = String::new();
            format_timestamp(&mut s, t);
            s
        };
        assert_eq!(f(1_700_000_000_500), "1700000000.500");
        assert_eq!(f(1_700_000_000_000), "1700000000");
        assert_eq!(f(1_700_000_000_007), "1700000000.007");
        assert_eq!(f(-1500), "-1.500");
    }
}
