//! InfluxDB line protocol parser. (Being written: see the helper brief.)

use std::borrow::Cow;

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// `1.5`, `1e3`
    Float(f64),
    /// `1i`
    Integer(i64),
    /// `1u`
    UInteger(u64),
    /// `t`, `true`, `F`, ...
    Boolean(bool),
    /// `"text"`
    String(Cow<'a, str>),
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    /// 1-based line number in the input.
    pub line_no: usize,
    /// Measurement name, unescaped.
    pub measurement: Cow<'a, str>,
    /// Tags in input order, unescaped.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields in input order, unescaped.
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// The timestamp as written (in the request's precision), if any.
    pub timestamp: Option<i64>,
}

/// A line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
    /// What was expected or what is wrong.
    pub message: String,
}

/// Iterates the lines of `input`, skipping blank lines and comments.
pub fn parse_lines(input: &[u8]) -> impl Iterator<Item = Result<ParsedLine<'_>, ParseError>> {
    let _ = input;
    std::iter::empty()
}
