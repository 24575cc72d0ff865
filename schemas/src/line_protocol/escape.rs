//! Byte classes, token scanning, unescaping and escaping.
//!
//! Every token kind has one byte class. For the escapable kinds the class is
//! both the set of bytes that end the token and the set of bytes a backslash
//! escapes (plus the backslash itself), which keeps scanning and unescaping
//! in lock step:
//!
//! ```text
//! class        ends the token     "\x" means x for x in
//! MEASUREMENT  ','  ' '           ','  ' '  '\'
//! KEY          ','  '='  ' '      ','  '='  ' '  '\'     tag keys, tag values, field keys
//! STRING       '"'                '"'  '\'               string field values (inside the quotes)
//! VALUE        ','  ' '           (none)                 numbers and booleans
//! ```
//!
//! A fifth bit, [`CONTROL`], marks the bytes that may start a control
//! character (C0, DEL, and `0xC2`, the lead byte of the C1 controls
//! U+0080–U+009F, shared with characters like `°`). It never ends a token:
//! [`scan`] only reports that the token holds such a byte, so the caller
//! checks the token precisely only then, and the common case costs nothing
//! more than the table lookup it already does.

use std::borrow::Cow;

/// Measurement names.
pub(super) const MEASUREMENT: u8 = 1;
/// Tag keys, tag values and field keys.
pub(super) const KEY: u8 = 1 << 1;
/// The inside of a double-quoted string field value.
pub(super) const STRING: u8 = 1 << 2;
/// Unquoted field values (numbers and booleans).
pub(super) const VALUE: u8 = 1 << 3;
/// Bytes that may start a control character (see the module doc).
const CONTROL: u8 = 1 << 4;

/// [`scan`] flag: the token contains a backslash, so it may need unescaping.
pub(super) const HAS_BACKSLASH: u8 = 1;
/// [`scan`] flag: the token contains a byte that may start a control character.
pub(super) const MAYBE_CONTROL: u8 = 1 << 1;

/// `CLASSES[b]` holds the class bits of every class byte `b` belongs to.
static CLASSES: [u8; 256] = build_classes();

#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time (a static's initialiser): an index out of range fails the build"
)]
const fn build_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    table[b',' as usize] = MEASUREMENT | KEY | VALUE;
    table[b' ' as usize] = MEASUREMENT | KEY | VALUE;
    table[b'=' as usize] = KEY;
    table[b'"' as usize] = STRING;
    table[b'\\' as usize] = MEASUREMENT | KEY | STRING;
    let mut b = 0;
    while b < 0x20 {
        table[b] = CONTROL;
        b += 1;
    }
    table[0x7F] = CONTROL;
    table[0xC2] = CONTROL;
    table
}

/// The class bits of byte `b` (a `u8` always indexes the 256-entry table:
/// the compiler drops the bounds check and the fallback).
#[inline(always)]
fn class_of(b: u8) -> u8 {
    CLASSES.get(usize::from(b)).copied().unwrap_or(0)
}

/// Whether `b` ends (or, for a backslash, escapes within) a token of `class`.
#[inline(always)]
pub(super) fn in_class(b: u8, class: u8) -> bool {
    class_of(b) & class != 0
}

/// Scans a token of `class` that starts at `start`.
///
/// Returns the index of the first byte that ends the token (or `bytes.len()`)
/// and flags: [`HAS_BACKSLASH`] when the token contains a backslash, i.e. may
/// need unescaping, and [`MAYBE_CONTROL`] when it contains a byte that may
/// start a control character. A backslash always takes the next byte into the
/// token: either that byte is escapable (so it is escaped) or it is an
/// ordinary byte (so the backslash is literal), and every byte that ends an
/// escapable token is escapable. Without `CONTROLS` (tokens that are not
/// checked for control characters), [`MAYBE_CONTROL`] is never set.
#[inline(always)]
pub(super) fn scan<const CONTROLS: bool>(bytes: &[u8], start: usize, class: u8) -> (usize, u8) {
    let stop = if CONTROLS { class | CONTROL } else { class };
    let mut i = start;
    let mut flags = 0;
    while let Some(&b) = bytes.get(i) {
        let c = class_of(b);
        if c & stop != 0 {
            if c & class == 0 {
                flags |= MAYBE_CONTROL;
            } else if b != b'\\' {
                return (i, flags);
            } else {
                flags |= HAS_BACKSLASH;
                i += 1;
                if CONTROLS && bytes.get(i).is_some_and(|&next| class_of(next) & CONTROL != 0) {
                    flags |= MAYBE_CONTROL;
                }
            }
        }
        i += 1;
    }
    (bytes.len(), flags)
}

/// The first control character of `text` (Unicode category Cc: U+0000–U+001F
/// and U+007F–U+009F), tab excepted when `allow_tab`: its byte offset and
/// the character.
pub(super) fn first_control(text: &str, allow_tab: bool) -> Option<(usize, char)> {
    text.char_indices().find(|&(_, c)| c.is_control() && !(allow_tab && c == '\t'))
}

/// Removes the escaping backslashes of `class` from `raw`.
///
/// A backslash followed by a byte of `class` is dropped; any other backslash
/// is literal. Borrows when there was nothing to remove.
pub(super) fn unescape(raw: &str, class: u8) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\'
            && let Some(&next) = bytes.get(i + 1)
            && in_class(next, class)
        {
            out.push_str(ascii_slice(raw, copied, i));
            copied = i + 1; // keep the escaped byte, drop the backslash
            i += 2;
            continue;
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(raw);
    }
    out.push_str(ascii_slice(raw, copied, raw.len()));
    Cow::Owned(out)
}

/// Appends `s` to `out`, escaped for a token of `class`.
///
/// Escapes every byte of `class`, and a backslash only where it would
/// otherwise be read as an escape: before a byte of `class` (which includes a
/// backslash) or at the end of the token. So `a\b` is written unchanged, the
/// way other line-protocol writers do.
pub(super) fn escape_into(out: &mut String, s: &str, class: u8) {
    let bytes = s.as_bytes();
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let needs_escape =
            if b == b'\\' { bytes.get(i + 1).is_none_or(|&next| in_class(next, class)) } else { in_class(b, class) };
        if needs_escape {
            out.push_str(ascii_slice(s, copied, i));
            out.push('\\');
            copied = i;
        }
    }
    out.push_str(ascii_slice(s, copied, s.len()));
}

/// `s[start..end]` where both ends are at ASCII bytes or at the ends of `s`,
/// which are always char boundaries.
#[inline(always)]
pub(super) fn ascii_slice(s: &str, start: usize, end: usize) -> &str {
    debug_assert!(s.is_char_boundary(start) && s.is_char_boundary(end) && start <= end);
    s.get(start..end).unwrap_or_default()
}
