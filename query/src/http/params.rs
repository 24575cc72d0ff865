//! Request parameters: form/query decoding, and Prometheus's time and
//! duration formats (`parseTime`, `parseDuration`).

/// Smallest time the API accepts as "unbounded start" (Prometheus's `MinTime`, in ms).
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974;
/// Largest time the API accepts as "unbounded end" (Prometheus's `MaxTime`, in ms).
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974;

/// Request parameters in order of precedence (form body first, then URL query, as Go's `r.Form`).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes the form body (if any) and the URL query.
    pub fn from_parts(body: Option<&[u8]>, query: Option<&str>) -> Self {
        let mut v = Vec::new();
        if let Some(b) = body {
            v.extend(decode_urlencoded(&String::from_utf8_lossy(b)));
        }
        if let Some(q) = query {
            v.extend(decode_urlencoded(q));
        }
        Self(v)
    }

    /// First value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every `(name, value)` pair, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value of `name` (for `match[]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space).
pub fn decode_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c))) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Prometheus's `parseTime`: Unix seconds (float) or RFC 3339, to milliseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let err = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(err());
        }
        let secs = f.trunc();
        let ms = ((f - secs) * 1000.0).round();
        return Ok((secs as i64).saturating_mul(1000).saturating_add(ms as i64));
    }
    match s {
        "-292273086-05-16T16:47:06Z" => return Ok(MIN_TIME_MS),
        "292277026-08-17T07:12:55Z" => return Ok(MAX_TIME_MS),
        _ => {}
    }
    parse_rfc3339(s).ok_or_else(err)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = padded.parse().ok()?;
    }
    let offset_min = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let m = tz[1..3].parse::<i64>().ok()? * 60 + tz[4..6].parse::<i64>().ok()?;
            if tz.starts_with('-') { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Prometheus's `parseDuration`: float seconds or `1y2w3d4h5m6s7ms`, to milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let err = || format!("cannot parse {s:?} to a valid duration");
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        if !ms.is_finite() || ms.abs() >= 9.2e18 {
            return Err(format!("cannot parse {s:?} to a valid duration. It overflows int64"));
        }
        return Ok(ms as i64);
    }
    parse_prom_duration(s).ok_or_else(err)
}

/// Prometheus's `model.ParseDuration` (units y w d h m s ms, in descending order).
pub fn parse_prom_duration(s: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_unit = 0usize;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = if rest.starts_with("ms") { 2 } else { rest.chars().next().map_or(0, char::len_utf8) };
        let unit = &rest[..unit_len];
        let pos = UNITS.iter().position(|(u, _)| *u == unit)?;
        if pos < last_unit || (pos == last_unit && total > 0) {
            return None;
        }
        last_unit = pos;
        total = total.checked_add(n.checked_mul(UNITS[pos].1)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T23:13:20.25+01:00"), Ok(1_700_000_000_250));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("100ms"), Ok(100));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("30m1h").is_err());
    }

    #[test]
    fn decodes_form() {
        let p = Params::from_parts(Some(b"query=up%7Bjob%3D%22a%22%7D+%3E+1"), Some("match[]=a&match[]=b"));
        assert_eq!(p.get("query"), Some("up{job=\"a\"} > 1"));
        assert_eq!(p.all("match[]"), vec!["a", "b"]);
    }
}
