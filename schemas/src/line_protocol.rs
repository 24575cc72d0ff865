//! InfluxDB line protocol: the parser on the ingest hot path, and a writer.
//!
//! Follows the InfluxDB v2 line-protocol reference. One point per line:
//!
//! ```text
//! measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//!
//! weather,location=us\ midwest,station=KX-12 temp=82.5,ok=true,count=12i,note="calm, \"dry\"" 1465839830100400200
//! ```
//!
//! # Lines
//!
//! The body is split on `\n`; a `\r` before it is dropped (CRLF). Line numbers
//! count every physical line from 1, so an error points at the line a person
//! sees in their editor. A line that is empty or whitespace (spaces, tabs)
//! only, or whose first non-whitespace byte is `#`, is skipped. Leading
//! whitespace is skipped; trailing spaces are allowed. The three sections
//! (series, fields, timestamp) are separated by one or more spaces.
//!
//! A line is validated as UTF-8 as a whole: invalid UTF-8 is an error for
//! that line only, at the column of the first bad byte. Every error is
//! local to its line: the iterator carries on with the next one.
//!
//! # Grammar
//!
//! ```text
//! line        = measurement { "," tag } " "+ field { "," field } [ " "+ timestamp ] " "*
//! tag         = key "=" key                    both non-empty; keys distinct; at most `max_tags`
//! field       = key "=" field_value            at least one; a repeated key keeps its last value;
//!                                              at most `max_fields` distinct keys
//! field_value = float | integer | unsigned | boolean | string
//! float       = [ "-" ] ( digits [ "." [ digits ] ] | "." digits ) [ ( "e" | "E" ) [ "+" | "-" ] digits ]
//! integer     = [ "-" ] digits "i"             i64
//! unsigned    = digits "u"                     u64
//! boolean     = t | T | true | True | TRUE | f | F | false | False | FALSE
//! string      = '"' { any byte but '"' and '\', or '\' any byte } '"'     at most 64 KiB
//! timestamp   = [ "-" ] digits                 i64, in the request's precision
//! ```
//!
//! Floats may not start with `+`; `NaN` and infinities are rejected, and so
//! are floats that overflow `f64`. Strings cannot span lines: a string still
//! open at the end of the line is unterminated. A repeated field keeps the
//! position of its first occurrence and the value of its last, as InfluxDB
//! does. Naming rules beyond the syntax (such as the reference's reserved `_`
//! prefix) are policy and belong to ingest validation.
//!
//! # Control characters
//!
//! Names (the measurement, tag keys and field keys) may not contain control
//! characters (Unicode category Cc: C0 U+0000–U+001F, DEL U+007F, C1
//! U+0080–U+009F), escaped or not; tag values may not either, except tab.
//! The error points at the offending character. This is stricter than
//! InfluxDB, and than Prometheus for values (it allows any UTF-8 there):
//! names become Prometheus metric and label names, whose rules never allowed
//! control characters; in values a NUL or an escape sequence is never a real
//! device's tag but does cut strings in C-based tools and rewrites terminals
//! that show a label, and refusing them keeps every stored label printable.
//! Tab stays allowed in values as harmless whitespace. String field values
//! are not checked: they are not stored.
//!
//! # Bounds
//!
//! [`ParseOptions`] caps the tags and the distinct fields of one line; the
//! first key over a cap ends the line with an error at that key
//! ([`ParseErrorKind::TooManyTags`], [`ParseErrorKind::TooManyFields`]), so a
//! line of a million fields costs no more than the cap. Finding repeated
//! keys is linear in the keys of the line whatever their number: a 64-bit
//! filter and a short scan for the first few keys, then a hash index
//! (SipHash with a random key, so a client cannot choose colliding keys).
//!
//! # Escaping
//!
//! A backslash escapes the characters that would otherwise end the token, and
//! itself (`\\` reads as one `\`, as the reference specifies). Before any
//! other character a backslash is literal (`a\b` is `a\b`).
//!
//! ```text
//! element                               escapes                unescaped text ends at
//! measurement                           \,  \␠  \\             ,  ␠
//! tag key, tag value, field key         \,  \=  \␠  \\         ,  =  ␠
//! string field value (inside quotes)    \"  \\                 "
//! ```
//!
//! An unescaped `=` in a tag value is an error; in a measurement it is an
//! ordinary character. [`write_line`] escapes accordingly, adding a backslash
//! before a backslash only where the reader would otherwise take it as an
//! escape, so the output stays readable by other line-protocol parsers.
//!
//! # Performance
//!
//! The input is split into lines with a word-at-a-time newline search, each
//! line is UTF-8-validated once (std's ASCII fast path), and then parsed in a
//! single left-to-right pass with a byte-class table. Names and values borrow
//! from the input unless they contain an escape; simple floats are converted
//! without going through `str::parse`. The only allocations per line are the
//! tag and field vectors, sized from the previous line — or none at all with
//! [`Lines::next_into`], which reuses the caller's [`ParsedLine`] — and, on
//! a line of more than 16 tags or fields, the duplicate-key index. The
//! control-character check rides on the byte-class lookup the scan already
//! does: a token is checked character by character only when it holds a byte
//! that may start one.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))] // a codec: malformed input is an error, never a panic

mod escape;
mod number;
mod parse;
mod write;

use std::borrow::Cow;
use std::fmt;

pub use write::write_line;

/// The longest string field value, in bytes (64 KiB, as in the reference).
pub const MAX_STRING_LEN: usize = 64 * 1024;

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// `1.5`, `1e3`, `-2`: always finite.
    Float(f64),
    /// `1i`
    Integer(i64),
    /// `1u`
    UInteger(u64),
    /// `t`, `true`, `F`, ...
    Boolean(bool),
    /// `"text"`, unescaped.
    String(Cow<'a, str>),
}

/// One parsed line.
///
/// Text borrows from the input (`Cow::Borrowed`) unless it had to be
/// unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    /// 1-based line number in the input.
    pub line_no: usize,
    /// Measurement name, unescaped; never empty.
    pub measurement: Cow<'a, str>,
    /// Tags in input order, unescaped; keys distinct, keys and values non-empty.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields in input order, unescaped; at least one, keys distinct.
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// The timestamp as written (in the request's precision), if any.
    pub timestamp: Option<i64>,
}

impl Default for ParsedLine<'_> {
    /// An empty line to pass to [`Lines::next_into`].
    fn default() -> Self {
        ParsedLine { line_no: 0, measurement: Cow::Borrowed(""), tags: Vec::new(), fields: Vec::new(), timestamp: None }
    }
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
    /// Which rule the line broke.
    pub kind: ParseErrorKind,
}

/// What kind of rule a [`ParseError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The syntax, UTF-8, a control character, a value out of range.
    Invalid,
    /// More tags than [`ParseOptions::max_tags`]; the column is the first tag over it.
    TooManyTags,
    /// More distinct fields than [`ParseOptions::max_fields`]; the column is the first field over it.
    TooManyFields,
}

/// Bounds applied while parsing, so that an oversized line costs no more
/// than its allowed part. The default bounds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Most tags on one line.
    pub max_tags: usize,
    /// Most distinct field keys on one line.
    pub max_fields: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self { max_tags: usize::MAX, max_fields: usize::MAX }
    }
}

/// Iterates the lines of `input`, skipping blank lines and comments.
///
/// Yields one result per point line; an error affects only its own line.
pub fn parse_lines(input: &[u8]) -> Lines<'_> {
    parse_lines_with(input, ParseOptions::default())
}

/// [`parse_lines`] with bounds on the tags and fields of a line.
pub fn parse_lines_with(input: &[u8], options: ParseOptions) -> Lines<'_> {
    Lines { rest: input, line_no: 0, tags_hint: 0, fields_hint: 0, options }
}

/// The iterator returned by [`parse_lines`].
#[derive(Clone)]
pub struct Lines<'a> {
    /// The input not yet split off.
    rest: &'a [u8],
    /// Number of the last physical line split off.
    line_no: usize,
    /// Capacity for the next line's vectors: the previous line's counts.
    tags_hint: usize,
    fields_hint: usize,
    /// Bounds of every line.
    options: ParseOptions,
}

impl<'a> Lines<'a> {
    /// Parses the next point line into `out`, reusing its vectors' capacity.
    ///
    /// The allocation-free form of [`Iterator::next`] for the ingest hot path.
    /// Returns `None` at the end of the input. After an error, `out` holds
    /// whatever was parsed before it and should not be used.
    pub fn next_into(&mut self, out: &mut ParsedLine<'a>) -> Option<Result<(), ParseError>> {
        loop {
            let raw = self.next_physical_line()?;
            let start = raw.iter().position(|&b| b != b' ' && b != b'\t');
            match start {
                None => continue,                                 // blank
                Some(i) if raw.get(i) == Some(&b'#') => continue, // comment
                Some(i) => return Some(self.parse_raw(raw, i, out)),
            }
        }
    }

    /// Splits off the next physical line, without its `\n` or `\r\n`.
    fn next_physical_line(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let end = find_newline(self.rest).unwrap_or(self.rest.len());
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or_default();
        self.line_no += 1;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn parse_raw(&self, raw: &'a [u8], start: usize, out: &mut ParsedLine<'a>) -> Result<(), ParseError> {
        match std::str::from_utf8(raw) {
            Ok(line) => parse::parse_line(line, start, self.line_no, self.options, out),
            Err(e) => {
                let at = e.valid_up_to();
                let byte = raw.get(at).copied().unwrap_or_default();
                let message = format!("invalid UTF-8 (byte 0x{byte:02x}); line protocol must be UTF-8");
                Err(ParseError { line: self.line_no, column: at + 1, message, kind: ParseErrorKind::Invalid })
            }
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<ParsedLine<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = ParsedLine {
            tags: Vec::with_capacity(self.tags_hint),
            fields: Vec::with_capacity(self.fields_hint),
            ..ParsedLine::default()
        };
        Some(self.next_into(&mut line)?.map(|()| {
            self.tags_hint = line.tags.len();
            self.fields_hint = line.fields.len();
            line
        }))
    }
}

impl fmt::Debug for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines").field("line_no", &self.line_no).field("remaining_bytes", &self.rest.len()).finish()
    }
}

/// Index of the first `\n` in `bytes`, eight bytes at a time.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let (words, tail) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        // Zero bytes of `x` are the newlines; the lowest set high bit marks the first.
        let x = u64::from_le_bytes(*word) ^ NEWLINES;
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(i * 8 + (zeros.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter().position(|&b| b == b'\n').map(|i| words.len() * 8 + i)
}

#[cfg(test)]
mod tests;
