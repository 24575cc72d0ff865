//! The aggregator's state file, version 1 (layout in `aggregate/FORMAT.md`).
//!
//! ```text
//! header (32 bytes): "STEDGAGG" version:u16(1) reserved:u16(0) body_len:u64 body_crc:u32
//!                    reserved:u32(0) header_crc:u32 (of bytes 0..28)
//! body: origin:str folded_through:u64 horizon_ms:i64
//!       n_closed:u32 { measurement:str closed_end_ns:i64 }
//!       n_windows:u32 { measurement:str n_tags:u32 { key:str value:str }
//!                       start_ns:i64 end_ns:i64 emitted_seq:u64 flags:u8(bit 0: dirty)
//!                       n_fields:u32 { name:str min:f64 max:f64 sum:f64 count:u64 last:f64 last_ts_ns:i64 } }
//! str = len:u32 + UTF-8 bytes; integers little-endian; f64 as IEEE-754 bits, little-endian
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{SeriesKey, State, Stats, Window};

/// Magic bytes of the state file.
pub(crate) const MAGIC: &[u8; 8] = b"STEDGAGG";
/// The format version written.
pub(crate) const VERSION: u16 = 1;
/// Header length.
pub(crate) const HEADER_LEN: usize = 32;

/// Errors of the aggregator's state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading the state file failed.
    #[error("reading aggregate state {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing the state file (or its directory) failed.
    #[error("writing aggregate state {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A checksum did not match.
    #[error("aggregate state {path}: {what} checksum mismatch (expected {expected:#010x}, found {actual:#010x})")]
    ChecksumMismatch {
        /// File.
        path: PathBuf,
        /// `header` or `body`.
        what: &'static str,
        /// Stored checksum.
        expected: u32,
        /// Computed checksum.
        actual: u32,
    },
    /// The file names a version this build cannot read.
    #[error("aggregate state {path} has format version {found}, this build reads {supported}")]
    UnsupportedFormatVersion {
        /// File.
        path: PathBuf,
        /// Version found.
        found: u16,
        /// Version read.
        supported: u16,
    },
    /// The bytes do not follow the layout.
    #[error("aggregate state {path} is corrupt: {detail}")]
    Corrupted {
        /// File.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The aggregator stopped (an earlier error, or the agent is shutting down).
    #[error("aggregator stopped: {0}")]
    Stopped(String),
}

impl StateError {
    /// The error's class.
    pub fn kind(&self) -> strata_schemas::ErrorKind {
        use strata_schemas::ErrorKind;
        match self {
            StateError::ChecksumMismatch { .. }
            | StateError::UnsupportedFormatVersion { .. }
            | StateError::Corrupted { .. } => ErrorKind::Corruption,
            StateError::Stopped(_) => ErrorKind::Unavailable,
            StateError::Read { .. } | StateError::Write { .. } => ErrorKind::Internal,
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The bytes of the state file for `state`.
pub(crate) fn encode(state: &State) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, &state.origin);
    body.extend_from_slice(&state.folded_through.to_le_bytes());
    body.extend_from_slice(&state.horizon_ms.to_le_bytes());
    body.extend_from_slice(&(state.closed.len() as u32).to_le_bytes());
    for (m, end) in &state.closed {
        put_str(&mut body, m);
        body.extend_from_slice(&end.to_le_bytes());
    }
    body.extend_from_slice(&(state.windows.len() as u32).to_le_bytes());
    for ((series, end), w) in &state.windows {
        put_str(&mut body, &series.measurement);
        body.extend_from_slice(&(series.tags.len() as u32).to_le_bytes());
        for (k, v) in &series.tags {
            put_str(&mut body, k);
            put_str(&mut body, v);
        }
        body.extend_from_slice(&w.start.to_le_bytes());
        body.extend_from_slice(&end.to_le_bytes());
        body.extend_from_slice(&w.emitted_seq.to_le_bytes());
        body.push(u8::from(w.dirty));
        body.extend_from_slice(&(w.fields.len() as u32).to_le_bytes());
        for (name, s) in &w.fields {
            put_str(&mut body, name);
            for x in [s.min, s.max, s.sum] {
                body.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            body.extend_from_slice(&s.count.to_le_bytes());
            body.extend_from_slice(&s.last.to_bits().to_le_bytes());
            body.extend_from_slice(&s.last_ts.to_le_bytes());
        }
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A cursor over the body; every read checks the bounds.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("body cut short at byte {} (needs {n} more)", self.at))?;
        let out = self.bytes.get(self.at..end).ok_or("out of bounds")?;
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64()?))
    }

    fn str(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("string before byte {} is not UTF-8", self.at))
    }

    /// A count of items of at least `min_size` bytes each (bounded by the bytes left).
    fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() - self.at {
            return Err(format!("count {n} at byte {} exceeds the body", self.at - 4));
        }
        Ok(n)
    }
}

/// Reads a state file (`path` for the errors).
pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<State, StateError> {
    let corrupt = |detail: String| StateError::Corrupted { path: path.to_owned(), detail };
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(corrupt(format!("{} bytes, shorter than the header", bytes.len())));
    };
    if &header[..8] != MAGIC {
        return Err(corrupt("wrong magic bytes".to_owned()));
    }
    let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let (expected, actual) = (word(28), crc32fast::hash(&header[..28]));
    if expected != actual {
        return Err(StateError::ChecksumMismatch { path: path.to_owned(), what: "header", expected, actual });
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != VERSION {
        return Err(StateError::UnsupportedFormatVersion { path: path.to_owned(), found: version, supported: VERSION });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[12..20]);
    let body = &bytes[HEADER_LEN..];
    if u64::from_le_bytes(len) != body.len() as u64 {
        return Err(corrupt(format!("body is {} bytes, the header says {}", body.len(), u64::from_le_bytes(len))));
    }
    let (expected, actual) = (word(20), crc32fast::hash(body));
    if expected != actual {
        return Err(StateError::ChecksumMismatch { path: path.to_owned(), what: "body", expected, actual });
    }
    decode_body(body).map_err(corrupt)
}

fn decode_body(body: &[u8]) -> Result<State, String> {
    let mut r = Reader { bytes: body, at: 0 };
    let mut state = State { origin: r.str()?, folded_through: r.u64()?, horizon_ms: r.i64()?, ..State::default() };
    for _ in 0..r.count(12)? {
        let m = r.str()?;
        let end = r.i64()?;
        state.closed.insert(m, end);
    }
    for _ in 0..r.count(37)? {
        let measurement = r.str()?;
        let mut tags = Vec::new();
        for _ in 0..r.count(8)? {
            tags.push((r.str()?, r.str()?));
        }
        let (start, end, emitted_seq) = (r.i64()?, r.i64()?, r.u64()?);
        let dirty = match r.array::<1>()? {
            [0] => false,
            [1] => true,
            [f] => return Err(format!("unknown window flags {f:#04x}")),
        };
        let mut fields = BTreeMap::new();
        for _ in 0..r.count(52)? {
            let name = r.str()?;
            let s = Stats {
                min: r.f64()?,
                max: r.f64()?,
                sum: r.f64()?,
                count: r.u64()?,
                last: r.f64()?,
                last_ts: r.i64()?,
            };
            fields.insert(name, s);
        }
        if start >= end {
            return Err(format!("window {start}..{end} is empty"));
        }
        state.windows.insert((SeriesKey { measurement, tags }, end), Window { start, emitted_seq, dirty, fields });
    }
    if r.at != body.len() {
        return Err(format!("{} bytes after the last window", body.len() - r.at));
    }
    Ok(state)
}
