//! Numbers and booleans as the line protocol spells them.
//!
//! ```text
//! integer   = [ "-" ] digits "i"            i64
//! unsigned  = digits "u"                    u64
//! float     = [ "-" ] ( digits [ "." [ digits ] ] | "." digits ) [ ( "e" | "E" ) [ "+" | "-" ] digits ]
//! timestamp = [ "-" ] digits                i64
//! ```
//!
//! No leading `+`, no `inf` or `NaN`, no `_` separators, no hex. Floats that
//! overflow `f64` are out of range. The functions here get the token without
//! its `i`/`u` suffix.

/// Why a numeric token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumError {
    /// The token does not match the grammar.
    Syntax,
    /// The token is well-formed but its value does not fit the type.
    Range,
}

/// Parses `[-]digits` as an `i64` (integer fields and timestamps).
#[inline]
pub(super) fn parse_i64(token: &[u8]) -> Result<i64, NumError> {
    match token.split_first() {
        Some((b'-', digits)) => {
            let magnitude = parse_digits(digits)?;
            0i64.checked_sub_unsigned(magnitude).ok_or(NumError::Range)
        }
        _ => i64::try_from(parse_digits(token)?).map_err(|_| NumError::Range),
    }
}

/// Parses `digits` as a `u64` (unsigned fields).
pub(super) fn parse_u64(token: &[u8]) -> Result<u64, NumError> {
    parse_digits(token)
}

/// Parses one or more ASCII digits. Overflow is `Range` only when every byte
/// is a digit, so `99999999999999999999x` is a syntax error.
fn parse_digits(digits: &[u8]) -> Result<u64, NumError> {
    if digits.is_empty() {
        return Err(NumError::Syntax);
    }
    let mut value: Option<u64> = Some(0);
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(NumError::Syntax);
        }
        value = value.and_then(|v| v.checked_mul(10)).and_then(|v| v.checked_add(u64::from(b - b'0')));
    }
    value.ok_or(NumError::Range)
}

/// Parses a float field value.
///
/// Validates the grammar itself (Rust's `f64::from_str` also accepts `+1`,
/// `inf` and `NaN`, which the line protocol does not) and, while doing so,
/// collects the decimal mantissa and exponent. Values with at most 53 bits of
/// mantissa and a power of ten up to 22 are computed exactly with one IEEE
/// multiplication or division (Clinger's fast path, which covers sensor
/// readings like `18.27`); the rest go to `f64::from_str`. Both are correctly
/// rounded, so the result does not depend on the path.
pub(super) fn parse_f64(token: &[u8]) -> Result<f64, NumError> {
    let (negative, body) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let decimal = Decimal::scan(body).ok_or(NumError::Syntax)?;
    let magnitude = match decimal.fast_path() {
        Some(value) => value,
        None => parse_with_std(body)?,
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// The digits of a float token, as far as they fit a `u64`.
struct Decimal {
    /// All digits, integer and fraction, as one integer (when `exact`).
    mantissa: u64,
    /// The value is `mantissa * 10^exponent` (when `exact`).
    exponent: i32,
    /// Whether `mantissa` and `exponent` hold the value without loss.
    exact: bool,
}

impl Decimal {
    /// Matches `(digits ["." [digits]] | "." digits) [exponent]` against the
    /// whole of `body`; `None` if it does not match.
    fn scan(body: &[u8]) -> Option<Self> {
        let mut decimal = Decimal { mantissa: 0, exponent: 0, exact: true };
        let mut i = decimal.digits(body, 0, false);
        let mut digit_count = i;
        if body.get(i) == Some(&b'.') {
            let fraction_end = decimal.digits(body, i + 1, true);
            digit_count += fraction_end - (i + 1);
            i = fraction_end;
        }
        if digit_count == 0 {
            return None;
        }
        if matches!(body.get(i), Some(b'e' | b'E')) {
            i = decimal.exponent_part(body, i + 1)?;
        }
        (i == body.len()).then_some(decimal)
    }

    /// Accumulates the digits starting at `start`; returns where they end.
    fn digits(&mut self, body: &[u8], start: usize, fraction: bool) -> usize {
        let mut i = start;
        while let Some(&b) = body.get(i).filter(|b| b.is_ascii_digit()) {
            if self.exact {
                match self.mantissa.checked_mul(10).and_then(|m| m.checked_add(u64::from(b - b'0'))) {
                    Some(m) => {
                        self.mantissa = m;
                        self.exponent -= i32::from(fraction);
                    }
                    None => self.exact = false,
                }
            }
            i += 1;
        }
        i
    }

    /// Parses `[+|-]digits` after the `e`; returns where it ends.
    fn exponent_part(&mut self, body: &[u8], start: usize) -> Option<usize> {
        let (negative, mut i) = match body.get(start) {
            Some(b'-') => (true, start + 1),
            Some(b'+') => (false, start + 1),
            _ => (false, start),
        };
        let digits_start = i;
        let mut value: i32 = 0;
        while let Some(&b) = body.get(i).filter(|b| b.is_ascii_digit()) {
            // Saturates far beyond the range of f64; such values take the slow path.
            value = value.saturating_mul(10).saturating_add(i32::from(b - b'0'));
            i += 1;
        }
        if i == digits_start {
            return None;
        }
        self.exponent = self.exponent.saturating_add(if negative { -value } else { value });
        Some(i)
    }

    /// Clinger's fast path: exact when both factors are exact doubles.
    fn fast_path(&self) -> Option<f64> {
        const MAX_EXACT_MANTISSA: u64 = 1 << 53;
        if !self.exact || self.mantissa > MAX_EXACT_MANTISSA {
            return None;
        }
        let mantissa = self.mantissa as f64; // exact: mantissa <= 2^53
        let power = POWERS_OF_TEN.get(usize::try_from(self.exponent.unsigned_abs()).ok()?)?;
        Some(if self.exponent >= 0 { mantissa * power } else { mantissa / power })
    }
}

/// Powers of ten that are exact doubles.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The general case: a grammar-checked, unsigned ASCII token.
fn parse_with_std(body: &[u8]) -> Result<f64, NumError> {
    let text = std::str::from_utf8(body).map_err(|_| NumError::Syntax)?;
    let value: f64 = text.parse().map_err(|_| NumError::Syntax)?;
    if value.is_finite() { Ok(value) } else { Err(NumError::Range) }
}

/// The boolean spellings of the reference: `t T true True TRUE` and
/// `f F false False FALSE`.
pub(super) fn parse_bool(token: &[u8]) -> Option<bool> {
    match token {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => Some(true),
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => Some(false),
        _ => None,
    }
}

/// Whether `token` looks like an attempt at NaN or infinity (which the line
/// protocol cannot carry), for a clearer error message.
pub(super) fn is_nan_or_infinity(token: &str) -> bool {
    let unsigned = token.strip_prefix(['-', '+']).unwrap_or(token);
    ["nan", "inf", "infinity"].iter().any(|word| unsigned.eq_ignore_ascii_case(word))
}
