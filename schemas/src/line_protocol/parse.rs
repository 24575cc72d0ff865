//! Parsing one physical line (see the grammar in the parent module).
//!
//! A [`LineParser`] walks the bytes of a UTF-8-validated line once, left to
//! right. Names and values are sub-slices of the line (borrowed) unless they
//! contain an escape. Every error records the byte column where the problem
//! is and says what was expected there.

use std::borrow::Cow;

use super::escape::{self, KEY, MEASUREMENT, STRING, VALUE};
use super::number::{self, NumError};
use super::{FieldValue, MAX_STRING_LEN, ParseError, ParsedLine};

/// Parses `line` (without its line ending) into `out`, reusing the capacity of
/// `out.tags` and `out.fields`. `start` is the index of the first byte after
/// the leading whitespace.
pub(super) fn parse_line<'a>(
    line: &'a str,
    start: usize,
    line_no: usize,
    out: &mut ParsedLine<'a>,
) -> Result<(), ParseError> {
    out.line_no = line_no;
    out.tags.clear();
    out.fields.clear();
    out.timestamp = None;
    let mut parser = LineParser { line, bytes: line.as_bytes(), pos: start, line_no };
    out.measurement = parser.measurement()?;
    parser.tag_set(&mut out.tags)?;
    parser.field_separator()?;
    parser.field_set(&mut out.fields)?;
    out.timestamp = parser.timestamp()?;
    Ok(())
}

/// A cursor over one line.
struct LineParser<'a> {
    line: &'a str,
    bytes: &'a [u8],
    /// Index of the next byte to read.
    pos: usize,
    line_no: usize,
}

impl<'a> LineParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, at: usize, message: String) -> ParseError {
        ParseError { line: self.line_no, column: at + 1, message }
    }

    /// Scans a token of `class` from the cursor and unescapes it.
    /// Returns the token and where it started.
    fn token(&mut self, class: u8) -> (Cow<'a, str>, usize) {
        let start = self.pos;
        let (end, backslash) = escape::scan(self.bytes, start, class);
        self.pos = end;
        let raw = escape::ascii_slice(self.line, start, end);
        let text = if backslash { escape::unescape(raw, class) } else { Cow::Borrowed(raw) };
        (text, start)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn measurement(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let (name, start) = self.token(MEASUREMENT);
        if name.is_empty() {
            return Err(self.error(start, "missing measurement name before ','".into()));
        }
        Ok(name)
    }

    /// Parses `(',' key '=' value)*`, rejecting duplicate keys.
    fn tag_set(&mut self, tags: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Result<(), ParseError> {
        let mut seen = KeyFilter::default();
        while self.peek() == Some(b',') {
            self.pos += 1;
            let (key, key_start) = self.token(KEY);
            self.expect_key(&key, key_start, "tag")?;
            let (value, value_start) = self.token(KEY);
            if value.is_empty() {
                let message =
                    format!("missing value for tag {} (tag values cannot be empty; omit the tag)", quote(&key));
                return Err(self.error(value_start, message));
            }
            if self.peek() == Some(b'=') {
                let message = format!("unescaped '=' in the value of tag {} (write it as \\=)", quote(&key));
                return Err(self.error(self.pos, message));
            }
            if seen.maybe_contains(&key) && tags.iter().any(|(k, _)| *k == key) {
                return Err(self.error(key_start, format!("duplicate tag key {}", quote(&key))));
            }
            tags.push((key, value));
        }
        Ok(())
    }

    /// Checks that a tag or field key is non-empty and followed by `=`, and
    /// steps over the `=`.
    fn expect_key(&mut self, key: &str, key_start: usize, what: &str) -> Result<(), ParseError> {
        if key.is_empty() {
            let message = match self.peek() {
                Some(b'=') => format!("empty {what} key before '='"),
                found => format!("expected a {what} key, found {}", describe(found)),
            };
            return Err(self.error(key_start, message));
        }
        if self.peek() != Some(b'=') {
            let found = describe(self.peek());
            return Err(self.error(self.pos, format!("expected '=' after {what} key {}, found {found}", quote(key))));
        }
        self.pos += 1;
        Ok(())
    }

    /// Steps over the space(s) between the series and the field set.
    fn field_separator(&mut self) -> Result<(), ParseError> {
        self.skip_spaces();
        if self.pos >= self.bytes.len() {
            return Err(self.error(self.pos, "missing field set (expected ' ' and then field=value)".into()));
        }
        Ok(())
    }

    /// Parses `key '=' value (',' key '=' value)*`; a repeated key keeps the
    /// position of its first occurrence and the value of its last.
    fn field_set(&mut self, fields: &mut Vec<(Cow<'a, str>, FieldValue<'a>)>) -> Result<(), ParseError> {
        let mut seen = KeyFilter::default();
        loop {
            let (key, key_start) = self.token(KEY);
            self.expect_key(&key, key_start, "field")?;
            let value = self.field_value(&key)?;
            let next = self.peek();
            if !matches!(next, None | Some(b',' | b' ')) {
                // Only a closing quote can be followed by something else.
                let message =
                    format!("expected ',' or ' ' after the value of field {}, found {}", quote(&key), describe(next));
                return Err(self.error(self.pos, message));
            }
            push_field(fields, &mut seen, key, value);
            if next != Some(b',') {
                return Ok(());
            }
            self.pos += 1;
        }
    }

    fn field_value(&mut self, key: &str) -> Result<FieldValue<'a>, ParseError> {
        match self.peek() {
            None | Some(b',' | b' ') => Err(self.error(self.pos, format!("missing value for field {}", quote(key)))),
            Some(b'"') => self.string_value(key),
            Some(_) => {
                let start = self.pos;
                let (end, _) = escape::scan(self.bytes, start, VALUE);
                self.pos = end;
                let token = escape::ascii_slice(self.line, start, end);
                unquoted_value(token, key).map_err(|message| self.error(start, message))
            }
        }
    }

    fn string_value(&mut self, key: &str) -> Result<FieldValue<'a>, ParseError> {
        let quote_at = self.pos;
        self.pos += 1;
        let (text, _) = self.token(STRING);
        if self.peek() != Some(b'"') {
            let message =
                format!("unterminated string for field {} (no closing '\"' before the end of the line)", quote(key));
            return Err(self.error(quote_at, message));
        }
        self.pos += 1;
        if text.len() > MAX_STRING_LEN {
            let message =
                format!("string field {} is {} bytes, over the limit of {MAX_STRING_LEN}", quote(key), text.len());
            return Err(self.error(quote_at, message));
        }
        Ok(FieldValue::String(text))
    }

    /// Parses the optional timestamp and checks that only spaces follow it.
    fn timestamp(&mut self) -> Result<Option<i64>, ParseError> {
        self.skip_spaces();
        let start = self.pos;
        while self.peek().is_some_and(|b| b != b' ') {
            self.pos += 1;
        }
        if start == self.pos {
            return Ok(None);
        }
        let token = escape::ascii_slice(self.line, start, self.pos);
        let timestamp = number::parse_i64(token.as_bytes()).map_err(|e| {
            let message = match e {
                NumError::Syntax => format!("invalid timestamp {} (expected an integer)", quote(token)),
                NumError::Range => format!("timestamp {token} out of range for i64"),
            };
            self.error(start, message)
        })?;
        self.skip_spaces();
        if self.pos < self.bytes.len() {
            let rest = escape::ascii_slice(self.line, self.pos, self.bytes.len());
            return Err(self.error(self.pos, format!("trailing characters after timestamp: {}", quote(rest))));
        }
        Ok(Some(timestamp))
    }
}

/// Adds a field; a repeated key overwrites the earlier value in place.
fn push_field<'a>(
    fields: &mut Vec<(Cow<'a, str>, FieldValue<'a>)>,
    seen: &mut KeyFilter,
    key: Cow<'a, str>,
    value: FieldValue<'a>,
) {
    if seen.maybe_contains(&key)
        && let Some(slot) = fields.iter_mut().find(|(k, _)| *k == key)
    {
        slot.1 = value;
        return;
    }
    fields.push((key, value));
}

/// Classifies and parses a number or boolean token; the error is the message.
fn unquoted_value<'a>(token: &str, key: &str) -> Result<FieldValue<'a>, String> {
    let bytes = token.as_bytes();
    match bytes {
        [b't' | b'T' | b'f' | b'F', ..] => {
            number::parse_bool(bytes).map(FieldValue::Boolean).ok_or_else(|| unrecognized_value(token, key))
        }
        [b'-' | b'.' | b'0'..=b'9', .., b'i'] => integer_value(token, key),
        [b'0'..=b'9', .., b'u'] | [b'-', .., b'u'] => unsigned_value(token, key),
        [b'-' | b'.' | b'0'..=b'9', ..] => float_value(token, key),
        [b'+', ..] if !number::is_nan_or_infinity(token) => {
            Err(format!("invalid number {} for field {}: a leading '+' is not allowed", quote(token), quote(key)))
        }
        _ => Err(unrecognized_value(token, key)),
    }
}

fn integer_value<'a>(token: &str, key: &str) -> Result<FieldValue<'a>, String> {
    let digits = token.strip_suffix('i').unwrap_or(token);
    number::parse_i64(digits.as_bytes()).map(FieldValue::Integer).map_err(|e| match e {
        NumError::Syntax => format!("invalid integer {} for field {}", quote(token), quote(key)),
        NumError::Range => format!("integer {digits} out of range for i64 (field {})", quote(key)),
    })
}

fn unsigned_value<'a>(token: &str, key: &str) -> Result<FieldValue<'a>, String> {
    let digits = token.strip_suffix('u').unwrap_or(token);
    if digits.starts_with('-') {
        return Err(format!("unsigned integer {} for field {} cannot be negative", quote(token), quote(key)));
    }
    number::parse_u64(digits.as_bytes()).map(FieldValue::UInteger).map_err(|e| match e {
        NumError::Syntax => format!("invalid unsigned integer {} for field {}", quote(token), quote(key)),
        NumError::Range => format!("unsigned integer {digits} out of range for u64 (field {})", quote(key)),
    })
}

fn float_value<'a>(token: &str, key: &str) -> Result<FieldValue<'a>, String> {
    number::parse_f64(token.as_bytes()).map(FieldValue::Float).map_err(|e| match e {
        NumError::Syntax if number::is_nan_or_infinity(token) => nan_or_infinity(token, key),
        NumError::Syntax => format!(
            "invalid number {} for field {} (expected a float like -1.5e3, an integer like 12i or an unsigned like 12u)",
            quote(token),
            quote(key)
        ),
        NumError::Range => format!("float {token} out of range for f64 (field {})", quote(key)),
    })
}

fn unrecognized_value(token: &str, key: &str) -> String {
    if number::is_nan_or_infinity(token) {
        return nan_or_infinity(token, key);
    }
    format!(
        "invalid value {} for field {}: expected a number (1.5, 12i, 12u), a boolean (t, T, true, True, TRUE, f, F, \
         false, False, FALSE) or a double-quoted string",
        quote(token),
        quote(key)
    )
}

fn nan_or_infinity(token: &str, key: &str) -> String {
    format!("invalid value {} for field {}: NaN and infinity are not supported", quote(token), quote(key))
}

/// A cheap summary of the keys seen on one line, so that duplicate checks
/// stay linear: one bit per key, picked from its length and outer bytes. A
/// clear bit proves the key is new; a set bit means "compare to be sure".
#[derive(Default)]
struct KeyFilter(u64);

impl KeyFilter {
    /// Records `key`; returns whether it may have been recorded before.
    fn maybe_contains(&mut self, key: &str) -> bool {
        let bytes = key.as_bytes();
        let first = bytes.first().copied().map_or(0, usize::from);
        let last = bytes.last().copied().map_or(0, usize::from);
        let bit = 1u64 << ((bytes.len().wrapping_mul(31) ^ first.wrapping_mul(7) ^ last) % 64);
        let seen = self.0 & bit != 0;
        self.0 |= bit;
        seen
    }
}

/// Describes the byte found where something else was expected.
fn describe(found: Option<u8>) -> String {
    match found {
        None => "the end of the line".into(),
        Some(b' ') => "' '".into(),
        Some(b) if b.is_ascii_graphic() => format!("'{}'", char::from(b)),
        Some(b) => format!("byte 0x{b:02x}"),
    }
}

/// Quotes a name or token for an error message, cut to a readable length.
fn quote(text: &str) -> String {
    const MAX: usize = 64;
    if text.len() <= MAX {
        return format!("{text:?}");
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", text.get(..end).unwrap_or_default(), text.len())
}
