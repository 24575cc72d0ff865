//! Writing a [`ParsedLine`] back as line protocol.

use std::fmt::{Display, Write as _};

use super::escape::{KEY, MEASUREMENT, STRING, escape_into};
use super::{FieldValue, ParsedLine};

/// Appends `line` to `out` as one line of line protocol, ending in `\n`.
///
/// Names and string values are escaped so that [`super::parse_lines`] reads
/// back exactly `line` (except `line_no`), provided `line` is representable:
///
/// * the measurement, tag keys, tag values and field keys are non-empty,
///   there is at least one field, and tag keys are distinct;
/// * nothing contains `\n` (the line protocol has no escape for it), names
///   contain no control character and tag values none but tab;
/// * the measurement does not start with `#` (it would read as a comment) or
///   with ASCII whitespace other than a space (leading whitespace is skipped);
/// * floats are finite.
///
/// Every line produced by the parser is representable. The writer does not
/// check these conditions; a line that breaks them comes back as a parse
/// error (or, for a leading tab, a different measurement).
///
/// Floats use the shortest text that parses back to the same value, with an
/// exponent only for very large or very small magnitudes. Booleans are written
/// `true`/`false`.
pub fn write_line(out: &mut String, line: &ParsedLine<'_>) {
    escape_into(out, &line.measurement, MEASUREMENT);
    for (key, value) in &line.tags {
        out.push(',');
        escape_into(out, key, KEY);
        out.push('=');
        escape_into(out, value, KEY);
    }
    for (i, (key, value)) in line.fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        escape_into(out, key, KEY);
        out.push('=');
        write_value(out, value);
    }
    if let Some(timestamp) = line.timestamp {
        out.push(' ');
        push_display(out, timestamp);
    }
    out.push('\n');
}

fn write_value(out: &mut String, value: &FieldValue<'_>) {
    match value {
        FieldValue::Float(v) => write_float(out, *v),
        FieldValue::Integer(v) => {
            push_display(out, v);
            out.push('i');
        }
        FieldValue::UInteger(v) => {
            push_display(out, v);
            out.push('u');
        }
        FieldValue::Boolean(v) => out.push_str(if *v { "true" } else { "false" }),
        FieldValue::String(v) => {
            out.push('"');
            escape_into(out, v, STRING);
            out.push('"');
        }
    }
}

/// Rust's `{}` and `{:e}` both print the shortest digits that round-trip;
/// `{}` never uses an exponent, so `1e300` would take 301 characters.
fn write_float(out: &mut String, value: f64) {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
        let _ = write!(out, "{value:e}"); // writing to a String cannot fail
    } else {
        push_display(out, value);
    }
}

fn push_display(out: &mut String, value: impl Display) {
    let _ = write!(out, "{value}"); // writing to a String cannot fail
}
