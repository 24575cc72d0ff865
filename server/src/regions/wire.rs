//! The binary encoding of raw series crossing between regions: the answer of
//! `POST /internal/v1/region/select` when the request says
//! `Accept: application/x-strata-series` (every node asks for it; without
//! that header the answer is the cluster's JSON `PeerAnswer`, for `curl`).
//!
//! JSON spent most of a federated raw read's time: each sample was two
//! decimal numbers to print and parse, each label two fresh `String`s.
//! Here label strings are sent once per answer and referred to by index
//! (a fleet's label names and most of its values repeat), timestamps are
//! varint deltas, values the f64's 8 bytes (staleness NaNs stay exact).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `SRS1` |
//! | 4 | 1 | version, 1 |
//! | 5 | var | uvarint series count |
//! | … | var | each series: uvarint label count, then per label a *string ref* for the name and one for the value; uvarint sample count; first timestamp (ivarint, ms), each next one as an ivarint delta to the previous; then each value as 8 bytes (little-endian f64 bits) |
//! | … | var | uvarint warning count, each a uvarint byte length and UTF-8 text: what the data region's own read missed (a cluster peer of that region that did not answer) |
//! | end − 4 | 4 | CRC-32 (IEEE, little-endian) of every byte before it |
//!
//! A *string ref* is a uvarint: `0` introduces a new string (uvarint byte
//! length, UTF-8 bytes) which takes the next index of the answer's string
//! table (from 0); `k > 0` is the string at index `k - 1`. Label sets are
//! sent in their canonical order (sorted, unique names, no empty values);
//! the decoder re-checks it. Anything malformed (bad magic, version,
//! checksum, truncated field, out-of-range reference, invalid UTF-8, bytes
//! left over) is an error naming the offset, and the asking node treats
//! the region as not having answered.

use strata_schemas::varint::{get_ivarint, get_uvarint, put_ivarint, put_uvarint};
use strata_schemas::{Label, Labels, Sample, SeriesData, Str};

/// Media type of the encoding.
pub const CONTENT_TYPE: &str = "application/x-strata-series";

const MAGIC: &[u8; 4] = b"SRS1";
const VERSION: u8 = 1;

/// Encodes `series` (label sets canonical, samples in time order) and the
/// warnings of the read that produced them.
pub fn encode(series: &[SeriesData], warnings: &[String]) -> Vec<u8> {
    let samples: usize = series.iter().map(|s| s.samples.len()).sum();
    let mut out = Vec::with_capacity(16 + series.len() * 32 + samples * 10);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    put_uvarint(&mut out, series.len() as u64);
    let mut table: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for s in series {
        put_uvarint(&mut out, s.labels.len() as u64);
        for l in s.labels.iter() {
            put_str(&mut out, l.name.as_str(), &mut table);
            put_str(&mut out, l.value.as_str(), &mut table);
        }
        put_uvarint(&mut out, s.samples.len() as u64);
        let mut prev = 0i64;
        for (i, x) in s.samples.iter().enumerate() {
            put_ivarint(&mut out, if i == 0 { x.ts } else { x.ts.wrapping_sub(prev) });
            prev = x.ts;
        }
        for x in &s.samples {
            out.extend_from_slice(&x.value.to_bits().to_le_bytes());
        }
    }
    put_uvarint(&mut out, warnings.len() as u64);
    for w in warnings {
        put_uvarint(&mut out, w.len() as u64);
        out.extend_from_slice(w.as_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Writes a string reference to `s` (see the module doc), adding it to `table` when new.
fn put_str<'a>(out: &mut Vec<u8>, s: &'a str, table: &mut std::collections::HashMap<&'a str, u64>) {
    let next = table.len() as u64;
    match table.get(s) {
        Some(&i) => put_uvarint(out, i + 1),
        None => {
            table.insert(s, next);
            put_uvarint(out, 0);
            put_uvarint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Decodes an answer of [`encode`]: the series and the warnings.
pub fn decode(bytes: &[u8]) -> Result<(Vec<SeriesData>, Vec<String>), String> {
    if bytes.len() < MAGIC.len() + 1 + 4 {
        return Err(format!("raw series answer of {} bytes is too short", bytes.len()));
    }
    if &bytes[..4] != MAGIC {
        return Err("raw series answer does not start with SRS1".to_owned());
    }
    if bytes[4] != VERSION {
        return Err(format!("raw series answer has version {}, this node reads {VERSION}", bytes[4]));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let (expected, actual) = (u32::from_le_bytes(crc.try_into().expect("4 bytes")), crc32fast::hash(body));
    if expected != actual {
        return Err(format!("raw series answer checksum mismatch: expected {expected:08x}, computed {actual:08x}"));
    }
    let mut r = &body[5..];
    let at = |r: &[u8]| body.len() - r.len();
    let n = get_uvarint(&mut r).ok_or_else(|| format!("truncated series count at offset {}", at(r)))?;
    // Each series takes at least 2 bytes: a count cannot exceed what is left.
    if n > r.len() as u64 {
        return Err(format!("series count {n} exceeds the {} bytes left", r.len()));
    }
    let mut table: Vec<Str> = Vec::new();
    let mut out = Vec::with_capacity(n as usize);
    let get_str = |r: &mut &[u8], table: &mut Vec<Str>| -> Result<Str, String> {
        let pos = at(r);
        let k = get_uvarint(r).ok_or_else(|| format!("truncated string reference at offset {pos}"))?;
        if k > 0 {
            return table
                .get((k - 1) as usize)
                .cloned()
                .ok_or_else(|| format!("string reference {k} at offset {pos} past the {} strings sent", table.len()));
        }
        let len = get_uvarint(r).ok_or_else(|| format!("truncated string length at offset {pos}"))?;
        if len > r.len() as u64 {
            return Err(format!("string of {len} bytes at offset {pos} past the end"));
        }
        let (s, rest) = r.split_at(len as usize);
        let s = std::str::from_utf8(s).map_err(|e| format!("string at offset {pos} is not UTF-8: {e}"))?;
        *r = rest;
        let s = Str::from(s);
        table.push(s.clone());
        Ok(s)
    };
    for _ in 0..n {
        let pos = at(r);
        let nl = get_uvarint(&mut r).ok_or_else(|| format!("truncated label count at offset {pos}"))?;
        if nl > r.len() as u64 {
            return Err(format!("label count {nl} at offset {pos} exceeds the bytes left"));
        }
        let mut labels = Vec::with_capacity(nl as usize);
        for _ in 0..nl {
            let name = get_str(&mut r, &mut table)?;
            let value = get_str(&mut r, &mut table)?;
            labels.push(Label { name, value });
        }
        let canonical = labels.windows(2).all(|w| w[0].name < w[1].name) && labels.iter().all(|l| !l.value.is_empty());
        if !canonical {
            return Err(format!("label set at offset {pos} is not sorted, unique and non-empty"));
        }
        let labels = Labels::from_sorted(labels);
        let pos = at(r);
        let ns = get_uvarint(&mut r).ok_or_else(|| format!("truncated sample count at offset {pos}"))?;
        // Each sample takes at least 9 bytes.
        if ns > (r.len() / 9) as u64 {
            return Err(format!("sample count {ns} at offset {pos} exceeds the bytes left"));
        }
        let mut samples = Vec::with_capacity(ns as usize);
        let mut ts = 0i64;
        for i in 0..ns {
            let d = get_ivarint(&mut r).ok_or_else(|| format!("truncated timestamp at offset {}", at(r)))?;
            ts = if i == 0 { d } else { ts.wrapping_add(d) };
            samples.push(Sample::new(ts, 0.0));
        }
        if r.len() < samples.len() * 8 {
            return Err(format!("values at offset {} past the end", at(r)));
        }
        let (values, rest) = r.split_at(samples.len() * 8);
        for (s, v) in samples.iter_mut().zip(values.chunks_exact(8)) {
            s.value = f64::from_bits(u64::from_le_bytes(v.try_into().expect("8 bytes")));
        }
        r = rest;
        out.push(SeriesData { labels, samples });
    }
    let pos = at(r);
    let nw = get_uvarint(&mut r).ok_or_else(|| format!("truncated warning count at offset {pos}"))?;
    if nw > r.len() as u64 {
        return Err(format!("warning count {nw} at offset {pos} exceeds the bytes left"));
    }
    let mut warnings = Vec::with_capacity(nw as usize);
    for _ in 0..nw {
        let pos = at(r);
        let len = get_uvarint(&mut r).ok_or_else(|| format!("truncated warning at offset {pos}"))?;
        if len > r.len() as u64 {
            return Err(format!("warning of {len} bytes at offset {pos} past the end"));
        }
        let (w, rest) = r.split_at(len as usize);
        warnings.push(String::from_utf8_lossy(w).into_owned());
        r = rest;
    }
    if !r.is_empty() {
        return Err(format!("{} bytes left over after the warnings", r.len()));
    }
    Ok((out, warnings))
}

/// Merges raw series of several sources, the earlier source's sample
/// winning for a timestamp both hold (the local store first, then regions
/// in policy order, like the cluster merge). Each source is usually sorted
/// by labels already (stores answer in label order): the stable sort then
/// only merges runs. The result is sorted by labels.
pub fn merge(sources: Vec<Vec<SeriesData>>) -> Vec<SeriesData> {
    let total = sources.iter().map(Vec::len).sum();
    let mut all: Vec<SeriesData> = Vec::with_capacity(total);
    for s in sources {
        all.extend(s);
    }
    // Stable: among equal label sets the earlier source stays first.
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<SeriesData> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(prev) if prev.labels == s.labels => prev.samples = merge_samples(&prev.samples, &s.samples),
            _ => out.push(s),
        }
    }
    out
}

/// Two time-ordered sample lists as one; `first` wins a shared timestamp.
fn merge_samples(first: &[Sample], second: &[Sample]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(first.len() + second.len());
    let (mut i, mut j) = (0, 0);
    while i < first.len() && j < second.len() {
        match first[i].ts.cmp(&second[j].ts) {
            std::cmp::Ordering::Less => {
                out.push(first[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(second[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(first[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&first[i..]);
    out.extend_from_slice(&second[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesData {
        SeriesData {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
        }
    }

    fn bits(s: &[SeriesData]) -> Vec<(Labels, Vec<(i64, u64)>)> {
        s.iter().map(|s| (s.labels.clone(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect())).collect()
    }

    #[test]
    fn answers_round_trip_bit_exact() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let input = vec![
            series(&[("__name__", "x"), ("device", "d1"), ("farm", "f1")], &[(-5, 1.5), (0, stale), (60_000, -0.0)]),
            series(
                &[("__name__", "x"), ("device", "d2"), ("farm", "f1")],
                &[(i64::MIN, f64::INFINITY), (i64::MAX, 1e308)],
            ),
            series(&[("__name__", "x"), ("device", "é€")], &[]),
            series(&[], &[(1, f64::NAN)]),
        ];
        let warnings = vec!["peer http://b did not answer".to_owned(), String::new()];
        let bytes = encode(&input, &warnings);
        assert_eq!(&bytes[..5], b"SRS1\x01");
        let (series, got) = decode(&bytes).unwrap();
        assert_eq!(bits(&series), bits(&input));
        assert_eq!(got, warnings);
        let (none, no_warnings) = decode(&encode(&[], &[])).unwrap();
        assert!(none.is_empty() && no_warnings.is_empty());
        // Repeated strings are sent once: the second series costs less than the first.
        let one = encode(&input[..1], &[]).len();
        let two = encode(&input[..2], &[]).len();
        assert!(two - one < one, "{one} {two}");
    }

    #[test]
    fn damaged_answers_are_errors_naming_what_is_wrong() {
        let bytes = encode(&[series(&[("__name__", "x"), ("device", "d1")], &[(1, 2.0), (2, 3.0)])], &[]);
        let mut flipped = bytes.clone();
        flipped[12] ^= 0x10;
        assert!(decode(&flipped).unwrap_err().contains("checksum"));
        assert!(decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("checksum"));
        assert!(decode(b"SRS").unwrap_err().contains("too short"));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(decode(&magic).unwrap_err().contains("SRS1"));
        let mut version = bytes.clone();
        version[4] = 9;
        assert!(decode(&version).unwrap_err().contains("version 9"));
        // Well-checksummed but malformed bodies.
        let seal = |body: &[u8]| {
            let mut b = body.to_vec();
            b.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
            b
        };
        let body = &bytes[..bytes.len() - 4];
        // Cut into the values (the warning count 0 is the last byte).
        assert!(decode(&seal(&body[..body.len() - 4])).unwrap_err().contains("exceeds the bytes left"));
        assert!(decode(&seal(&body[..body.len() - 1])).unwrap_err().contains("truncated warning count"));
        let mut extra = body.to_vec();
        extra.push(0);
        assert!(decode(&seal(&extra)).unwrap_err().contains("left over"));
        // A reference to a string never sent: one series, one label, name ref 7.
        let bad_ref = [b"SRS1\x01".as_slice(), &[1, 1, 7, 0, 0]].concat();
        assert!(decode(&seal(&bad_ref)).unwrap_err().contains("string reference 7"));
        // Labels out of order.
        let unsorted = [b"SRS1\x01".as_slice(), &[1, 2, 0, 1, b'b', 0, 1, b'v', 0, 1, b'a', 2, 0, 0]].concat();
        assert!(decode(&seal(&unsorted)).unwrap_err().contains("not sorted"));
    }

    #[test]
    fn merge_keeps_one_sample_per_series_and_timestamp_earlier_source_first() {
        let a = vec![series(&[("d", "1")], &[(1, 1.0), (3, 3.0)]), series(&[("d", "3")], &[(1, 9.0)])];
        let b = vec![series(&[("d", "1")], &[(2, 20.0), (3, 30.0), (4, 40.0)]), series(&[("d", "2")], &[(1, 5.0)])];
        let c = vec![series(&[("d", "1")], &[(4, 400.0), (5, 500.0)])];
        let out = merge(vec![a, b, c]);
        let got: Vec<(String, Vec<(i64, f64)>)> = out
            .iter()
            .map(|s| (s.labels.get("d").unwrap().to_owned(), s.samples.iter().map(|x| (x.ts, x.value)).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("1".to_owned(), vec![(1, 1.0), (2, 20.0), (3, 3.0), (4, 40.0), (5, 500.0)]),
                ("2".to_owned(), vec![(1, 5.0)]),
                ("3".to_owned(), vec![(1, 9.0)]),
            ]
        );
    }
}
