//! Parsing one physical line (see the grammar in the parent module).
//!
//! A [`LineParser`] walks the bytes of a UTF-8-validated line once, left to
//! right. Names and values are sub-slices of the line (borrowed) unless they
//! contain an escape. Every error records the byte column where the problem
//! is and says what was expected there.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use super::escape::{self, HAS_BACKSLASH, KEY, MAYBE_CONTROL, MEASUREMENT, STRING, VALUE};
use super::number::{self, NumError};
use super::{FieldValue, MAX_STRING_LEN, ParseError, ParseErrorKind, ParseOptions, ParsedLine};

/// Parses `line` (without its line ending) into `out`, reusing the capacity of
/// `out.tags` and `out.fields`. `start` is the index of the first byte after
/// the leading whitespace.
pub(super) fn parse_line<'a>(
    line: &'a str,
    start: usize,
    line_no: usize,
    options: ParseOptions,
    out: &mut ParsedLine<'a>,
) -> Result<(), ParseError> {
    out.line_no = line_no;
    out.tags.clear();
    out.fields.clear();
    out.timestamp = None;
    let mut parser = LineParser { line, bytes: line.as_bytes(), pos: start, line_no, options };
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
    options: ParseOptions,
}

impl<'a> LineParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, at: usize, message: String) -> ParseError {
        ParseError { line: self.line_no, column: at + 1, message, kind: ParseErrorKind::Invalid }
    }

    /// Scans a token of `class` from the cursor and unescapes it.
    /// Returns the token, where it started and whether it may hold a
    /// control character (see [`Self::refuse_controls`]; only looked for
    /// with `CONTROLS`).
    // Inlined: called for every token, and out of line it costs ~8 % of the parse.
    #[inline(always)]
    fn token<const CONTROLS: bool>(&mut self, class: u8) -> (Cow<'a, str>, usize, bool) {
        let start = self.pos;
        let (end, flags) = escape::scan::<CONTROLS>(self.bytes, start, class);
        self.pos = end;
        let raw = escape::ascii_slice(self.line, start, end);
        let text = if flags & HAS_BACKSLASH != 0 { escape::unescape(raw, class) } else { Cow::Borrowed(raw) };
        (text, start, flags & MAYBE_CONTROL != 0)
    }

    /// Refuses a control character in the token `start..self.pos` (as
    /// written: escaping never removes one), tab excepted when `allow_tab`.
    /// `what` names the token in the message.
    fn refuse_controls(&self, start: usize, allow_tab: bool, what: impl FnOnce() -> String) -> Result<(), ParseError> {
        let raw = escape::ascii_slice(self.line, start, self.pos);
        match escape::first_control(raw, allow_tab) {
            None => Ok(()),
            Some((at, c)) => {
                let allowed = if allow_tab { " (tab is the only one allowed there)" } else { "" };
                let message = format!(
                    "control character U+{:04X} in {}: control characters are not allowed{allowed}",
                    u32::from(c),
                    what()
                );
                Err(self.error(start + at, message))
            }
        }
    }

    fn too_many(&self, at: usize, kind: ParseErrorKind, message: String) -> ParseError {
        ParseError { line: self.line_no, column: at + 1, message, kind }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn measurement(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let (name, start, control) = self.token::<true>(MEASUREMENT);
        if name.is_empty() {
            return Err(self.error(start, "missing measurement name before ','".into()));
        }
        if control {
            self.refuse_controls(start, false, || "the measurement name".into())?;
        }
        Ok(name)
    }

    /// Parses `(',' key '=' value)*`, rejecting duplicate keys.
    fn tag_set(&mut self, tags: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Result<(), ParseError> {
        let mut seen = KeySet::default();
        while self.peek() == Some(b',') {
            self.pos += 1;
            if tags.len() >= self.options.max_tags {
                let message = format!("more than {} tags on one line", self.options.max_tags);
                return Err(self.too_many(self.pos, ParseErrorKind::TooManyTags, message));
            }
            let (key, key_start, control) = self.token::<true>(KEY);
            if control {
                self.refuse_controls(key_start, false, || "a tag key".into())?;
            }
            self.expect_key(&key, key_start, "tag")?;
            let (value, value_start, control) = self.token::<true>(KEY);
            if control {
                self.refuse_controls(value_start, true, || format!("the value of tag {}", quote(&key)))?;
            }
            if value.is_empty() {
                let message =
                    format!("missing value for tag {} (tag values cannot be empty; omit the tag)", quote(&key));
                return Err(self.error(value_start, message));
            }
            if self.peek() == Some(b'=') {
                let message = format!("unescaped '=' in the value of tag {} (write it as \\=)", quote(&key));
                return Err(self.error(self.pos, message));
            }
            if seen.find(tags, &key).is_some() {
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
        let mut seen = KeySet::default();
        loop {
            let (key, key_start, control) = self.token::<true>(KEY);
            if control {
                self.refuse_controls(key_start, false, || "a field key".into())?;
            }
            self.expect_key(&key, key_start, "field")?;
            let value = self.field_value(&key)?;
            let next = self.peek();
            if !matches!(next, None | Some(b',' | b' ')) {
                // Only a closing quote can be followed by something else.
                let message =
                    format!("expected ',' or ' ' after the value of field {}, found {}", quote(&key), describe(next));
                return Err(self.error(self.pos, message));
            }
            match seen.find(fields, &key) {
                // A repeated key overwrites the earlier value in place.
                Some(i) => {
                    if let Some(slot) = fields.get_mut(i) {
                        slot.1 = value;
                    }
                }
                None if fields.len() >= self.options.max_fields => {
                    let message = format!("more than {} distinct fields on one line", self.options.max_fields);
                    return Err(self.too_many(key_start, ParseErrorKind::TooManyFields, message));
                }
                None => fields.push((key, value)),
            }
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
                let (end, _) = escape::scan::<false>(self.bytes, start, VALUE);
                self.pos = end;
                let token = escape::ascii_slice(self.line, start, end);
                unquoted_value(token, key).map_err(|message| self.error(start, message))
            }
        }
    }

    fn string_value(&mut self, key: &str) -> Result<FieldValue<'a>, ParseError> {
        let quote_at = self.pos;
        self.pos += 1;
        let (text, _, _) = self.token::<false>(STRING);
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
                NumError::Range => format!("timestamp {} out of range for i64", cut(token)),
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
        NumError::Range => format!("integer {} out of range for i64 (field {})", cut(digits), quote(key)),
    })
}

fn unsigned_value<'a>(token: &str, key: &str) -> Result<FieldValue<'a>, String> {
    let digits = token.strip_suffix('u').unwrap_or(token);
    if digits.starts_with('-') {
        return Err(format!("unsigned integer {} for field {} cannot be negative", quote(token), quote(key)));
    }
    number::parse_u64(digits.as_bytes()).map(FieldValue::UInteger).map_err(|e| match e {
        NumError::Syntax => format!("invalid unsigned integer {} for field {}", quote(token), quote(key)),
        NumError::Range => format!("unsigned integer {} out of range for u64 (field {})", cut(digits), quote(key)),
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
        NumError::Range => format!("float {} out of range for f64 (field {})", cut(token), quote(key)),
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

/// The keys seen on one line, to find a repeated key in linear time.
///
/// For the first [`KeySet::SMALL`] keys (the common case) a 64-bit filter,
/// one bit per key picked from its length and outer bytes, proves most keys
/// new, and a possible repeat is confirmed by scanning at most that many keys.
/// Past them the filter would be saturated, and every key would cost a scan
/// of all keys before it (quadratic: seconds for tens of thousands of
/// fields), so the set moves to a hash index: each key's SipHash, with a key
/// drawn at random for the line so a client cannot choose colliding keys,
/// maps to its position.
#[derive(Default)]
struct KeySet {
    filter: u64,
    /// Boxed: the set is built twice per line and is seldom needed.
    index: Option<Box<KeyIndex>>,
}

/// Position of the first key with each hash (keys of one line are distinct).
struct KeyIndex {
    hasher: RandomState,
    first: HashMap<u64, usize, BuildHasherDefault<PassThrough>>,
}

impl KeySet {
    /// Keys handled by the filter and scan before moving to the index.
    const SMALL: usize = 16;

    /// The position of `key` among the distinct keys `items`, if it is there;
    /// otherwise records that `key` will be pushed at `items.len()`.
    #[inline]
    fn find<T>(&mut self, items: &[(Cow<'_, str>, T)], key: &str) -> Option<usize> {
        if items.len() < Self::SMALL {
            if !self.maybe_contains(key) {
                return None;
            }
            return items.iter().position(|(k, _)| k == key);
        }
        self.find_indexed(items, key)
    }

    /// [`Self::find`] past [`Self::SMALL`] keys, out of line: most lines never get here.
    #[cold]
    #[inline(never)]
    fn find_indexed<T>(&mut self, items: &[(Cow<'_, str>, T)], key: &str) -> Option<usize> {
        let index = self.index.get_or_insert_with(|| Box::new(KeyIndex::of(items)));
        let hash = index.hasher.hash_one(key);
        match index.first.get(&hash) {
            None => {
                index.first.insert(hash, items.len());
                None
            }
            Some(&i) if items.get(i).is_some_and(|(k, _)| k == key) => Some(i),
            // Two keys with one 64-bit hash (about never): scan, still correct;
            // a later repeat of `key` takes this path again and finds it.
            Some(_) => items.iter().position(|(k, _)| k == key),
        }
    }

    /// Records `key` in the filter; returns whether it may have been recorded before.
    fn maybe_contains(&mut self, key: &str) -> bool {
        let bytes = key.as_bytes();
        let first = bytes.first().copied().map_or(0, usize::from);
        let last = bytes.last().copied().map_or(0, usize::from);
        let bit = 1u64 << ((bytes.len().wrapping_mul(31) ^ first.wrapping_mul(7) ^ last) % 64);
        let seen = self.filter & bit != 0;
        self.filter |= bit;
        seen
    }
}

impl KeyIndex {
    fn of<T>(items: &[(Cow<'_, str>, T)]) -> Self {
        let hasher = RandomState::new();
        let mut first = HashMap::with_capacity_and_hasher(items.len() * 2, BuildHasherDefault::default());
        for (i, (k, _)) in items.iter().enumerate() {
            first.entry(hasher.hash_one(k.as_ref())).or_insert(i);
        }
        Self { hasher, first }
    }
}

/// The hasher of [`KeyIndex`]'s map, whose keys are already SipHash values.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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

/// The most bytes of a name or token echoed in an error message.
const MAX_ECHO: usize = 64;

/// Quotes a name or token for an error message, cut to a readable length.
fn quote(text: &str) -> String {
    if text.len() <= MAX_ECHO {
        return format!("{text:?}");
    }
    format!("{:?}… ({} bytes)", head(text), text.len())
}

/// A token for an error message, unquoted (numbers), cut like [`quote`].
fn cut(text: &str) -> String {
    if text.len() <= MAX_ECHO {
        return text.to_owned();
    }
    format!("{}… ({} bytes)", head(text), text.len())
}

/// The first [`MAX_ECHO`] bytes of `text`, on a char boundary.
fn head(text: &str) -> &str {
    let mut end = MAX_ECHO.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}
