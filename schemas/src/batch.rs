//! The write batch: what one ingest-log record carries.
//!
//! A batch holds one tenant's samples for one log partition. The encoding is
//! a storage format (records live in the log until the hot store has
//! flushed them), documented in `schemas/FORMAT.md`:
//!
//! ```text
//! u8       version (= 3; versions 1 and 2 are still read)
//! str      tenant                        str = uvarint length + UTF-8 bytes
//! u8       origin (v3 only): 0 = none; 1 = an edge agent's batch, followed by
//!            str      agent id (1..=128 bytes of printable ASCII, no space)
//!            uvarint  the agent's sequence number of the batch
//! uvarint  string count, then that many str      (v2, v3: every distinct label name and value, once)
//! uvarint  series count
//! per series:
//!   u64 LE   series id
//!   u64 LE   device hash
//!   uvarint  label count, then per label (sorted by name):
//!            v2, v3: uvarint name index, uvarint value index into the string table
//!            v1: str name, str value
//!   uvarint  sample count, then per sample:
//!            ivarint ts delta (first sample: delta from 0), u64 LE value bits
//! ```
//!
//! The string table makes a record of many series of few devices small: a
//! line's tags are shared by all its fields' series, and a device's tags by
//! all its lines.
//!
//! The origin is what makes an edge agent's batch apply once: the server
//! stamps `(X-Strata-Agent-Id, X-Strata-Agent-Seq)` on every record of the
//! request, and the hot store skips a record whose origin it already applied
//! in that partition (a retry after a lost answer is appended again and
//! skipped when applied, deterministically, in log order).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))] // a codec: malformed input is an error, never a panic

use crate::varint::{get_ivarint, get_uvarint, put_ivarint, put_uvarint};
use crate::{Label, Labels, Sample, SeriesId, Str, TenantId};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// How many series ahead [`WriteBatch::encode`] prefetches label sets.
const PREFETCH_AHEAD: usize = 4;

/// The batch encoding version written.
pub const BATCH_VERSION: u8 = 3;
/// The oldest batch encoding version read.
pub const OLDEST_BATCH_VERSION: u8 = 1;

/// A series' samples in a batch: one is held inline, more on the heap.
/// (An IoT request carries one sample per series — a reading per device
/// per field — so a heap allocation for it would cost more than the
/// sample; it would also be one more cache miss per series to encode and
/// apply it.)
pub type Samples = SmallVec<[Sample; 1]>;

/// One series in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSeries {
    /// Series id ([`crate::series_id`] of tenant and labels).
    pub id: SeriesId,
    /// Device hash ([`crate::device_hash`]).
    pub device_hash: u64,
    /// Canonical labels.
    pub labels: Labels,
    /// Samples in arrival order (not necessarily sorted; later wins on equal ts).
    pub samples: Samples,
}

/// One tenant's samples for one log partition.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    /// The tenant the samples belong to.
    pub tenant: TenantId,
    /// Its series.
    pub series: Vec<BatchSeries>,
    /// The edge agent batch this record carries (all records of one request
    /// carry the same), if the writer was an edge agent.
    pub origin: Option<BatchOrigin>,
}

/// Longest agent id an origin may carry, in bytes.
pub const MAX_AGENT_ID_BYTES: usize = 128;

/// Which edge agent batch a record holds: the agent's id and the batch's
/// sequence number in the agent's queue (`X-Strata-Agent-Id`,
/// `X-Strata-Agent-Seq`). Two records with equal origins hold the same
/// batch (a re-send); the hot store applies the first one of a partition only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchOrigin {
    agent_id: Str,
    seq: u64,
}

impl BatchOrigin {
    /// An origin, if `agent_id` is 1..=[`MAX_AGENT_ID_BYTES`] bytes of
    /// printable ASCII without spaces (what the agent's config accepts).
    pub fn new(agent_id: &str, seq: u64) -> Result<Self, &'static str> {
        Self::check_agent_id(agent_id)?;
        Ok(Self { agent_id: Str::from(agent_id), seq })
    }

    /// Why `agent_id` is not a valid agent id, if it is not.
    pub fn check_agent_id(agent_id: &str) -> Result<(), &'static str> {
        if agent_id.is_empty() {
            return Err("agent id is empty");
        }
        if agent_id.len() > MAX_AGENT_ID_BYTES {
            return Err("agent id is longer than 128 bytes");
        }
        if !agent_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("agent id is not printable ASCII (spaces and control characters are not allowed)");
        }
        Ok(())
    }

    /// The agent's id.
    pub fn agent_id(&self) -> &str {
        self.agent_id.as_str()
    }

    /// The batch's sequence number in the agent's queue.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchDecodeError {
    /// The version byte is not one this build reads.
    #[error("unsupported batch version {found} (supported: {OLDEST_BATCH_VERSION}..={BATCH_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// The bytes end early or hold an invalid field.
    #[error("malformed batch: {0}")]
    Malformed(&'static str),
}

impl WriteBatch {
    /// Total number of samples.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// Encodes the batch (appending to `buf`) in the current version.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let mut strings = StringTable::default();
        let mut body = Vec::with_capacity(self.series.len() * 48);
        put_uvarint(&mut body, self.series.len() as u64);
        // The previous series' labels and their string indexes: the series
        // of one line protocol line share every tag string, so most labels
        // are found here by address without a table lookup.
        let mut prev: (&[Label], Vec<(u64, u64)>) = (&[], Vec::new());
        let mut refs: Vec<(u64, u64)> = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            // The label set of a series a few ahead: with many series it is a
            // cache miss that would otherwise stall the loop (see `prefetch`).
            if let Some(ahead) = self.series.get(i + PREFETCH_AHEAD) {
                ahead.labels.prefetch_all();
            }
            body.extend_from_slice(&s.id.0.to_le_bytes());
            body.extend_from_slice(&s.device_hash.to_le_bytes());
            put_uvarint(&mut body, s.labels.len() as u64);
            refs.clear();
            for (i, l) in s.labels.iter().enumerate() {
                let p = prev.0.get(i).zip(prev.1.get(i));
                let n = match p {
                    Some((pl, &(pn, _))) if pl.name.ptr_eq(&l.name) => pn,
                    _ => strings.index_shared(&l.name),
                };
                let v = match p {
                    Some((pl, &(_, pv))) if pl.value.ptr_eq(&l.value) => pv,
                    _ => strings.index_shared(&l.value),
                };
                put_uvarint(&mut body, n);
                put_uvarint(&mut body, v);
                refs.push((n, v));
            }
            prev.0 = s.labels.as_slice();
            std::mem::swap(&mut prev.1, &mut refs);
            put_samples(&mut body, &s.samples);
        }
        buf.push(BATCH_VERSION);
        put_str(buf, self.tenant.as_str());
        match &self.origin {
            None => buf.push(0),
            Some(o) => {
                buf.push(1);
                put_str(buf, o.agent_id());
                put_uvarint(buf, o.seq);
            }
        }
        put_uvarint(buf, strings.order.len() as u64);
        for s in &strings.order {
            put_str(buf, s);
        }
        buf.extend_from_slice(&body);
    }

    /// Encodes the batch into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + self.sample_count() * 10);
        self.encode(&mut buf);
        buf
    }

    /// Decodes a batch of any supported version. Never panics on arbitrary input.
    pub fn decode(mut buf: &[u8]) -> Result<Self, BatchDecodeError> {
        let b = &mut buf;
        let version = take_u8(b)?;
        if !(OLDEST_BATCH_VERSION..=BATCH_VERSION).contains(&version) {
            return Err(BatchDecodeError::UnsupportedVersion { found: version });
        }
        let tenant = TenantId::new(take_str(b)?).map_err(|_| BatchDecodeError::Malformed("invalid tenant id"))?;
        let origin = if version >= 3 { take_origin(b)? } else { None };
        let table = if version >= 2 {
            let n = take_len(b, 1)?;
            (0..n).map(|_| take_str(b).map(Str::from)).collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let n_series = take_len(b, 18)?;
        let mut series = Vec::with_capacity(n_series);
        for _ in 0..n_series {
            let id = SeriesId(take_u64(b)?);
            let device_hash = take_u64(b)?;
            let n_labels = take_len(b, 2)?;
            let mut labels = Vec::with_capacity(n_labels);
            for _ in 0..n_labels {
                let (name, value) = if version >= 2 {
                    (take_ref(b, &table)?, take_ref(b, &table)?)
                } else {
                    (Str::from(take_str(b)?), Str::from(take_str(b)?))
                };
                labels.push(Label { name, value });
            }
            if !labels.is_sorted_by(|a, b| a.name < b.name) || labels.iter().any(|l| l.value.is_empty()) {
                return Err(BatchDecodeError::Malformed("labels not canonical"));
            }
            let samples = take_samples(b)?;
            series.push(BatchSeries { id, device_hash, labels: Labels::from_sorted(labels), samples });
        }
        if !b.is_empty() {
            return Err(BatchDecodeError::Malformed("trailing bytes"));
        }
        Ok(WriteBatch { tenant, series, origin })
    }
}

fn take_origin(b: &mut &[u8]) -> Result<Option<BatchOrigin>, BatchDecodeError> {
    match take_u8(b)? {
        0 => Ok(None),
        1 => {
            let agent = take_str(b)?;
            let seq = get_uvarint(b).ok_or(BatchDecodeError::Malformed("truncated origin sequence number"))?;
            BatchOrigin::new(&agent, seq).map(Some).map_err(BatchDecodeError::Malformed)
        }
        _ => Err(BatchDecodeError::Malformed("unknown origin kind")),
    }
}

/// The distinct strings of a batch in first-use order.
#[derive(Default)]
struct StringTable<'a> {
    index: HashMap<&'a str, u64, BuildHasherDefault<SeededXxh3>>,
    /// Shared strings already seen, by address: label sets built from one
    /// another share their strings, so most lookups skip hashing the text.
    by_ptr: HashMap<(usize, usize), u64, BuildHasherDefault<PtrHasher>>,
    order: Vec<&'a str>,
}

/// Hashes the address and length of a string (already unique while the
/// batch borrows it): one multiply.
#[derive(Default)]
struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0 ^ i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

/// A seeded xxh3 per `write`: several times cheaper than SipHash on short
/// label strings. Keys come from clients, so the seed is random per process
/// (from std's `RandomState`) to keep crafted collisions impractical.
#[derive(Default)]
struct SeededXxh3(u64);

impl Hasher for SeededXxh3 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0 ^ *HASH_SEED);
    }
}

static HASH_SEED: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5354_5241_5441_u64)
});

impl<'a> StringTable<'a> {
    fn index_shared(&mut self, s: &'a Str) -> u64 {
        let key = (s.as_ptr() as usize, s.len());
        if let Some(&i) = self.by_ptr.get(&key) {
            return i;
        }
        let i = self.index(s.as_str());
        self.by_ptr.insert(key, i);
        i
    }

    fn index(&mut self, s: &'a str) -> u64 {
        let next = self.order.len() as u64;
        let idx = *self.index.entry(s).or_insert(next);
        if idx == next {
            self.order.push(s);
        }
        idx
    }
}

fn put_samples(buf: &mut Vec<u8>, samples: &[Sample]) {
    put_uvarint(buf, samples.len() as u64);
    let mut prev = 0i64;
    for smp in samples {
        put_ivarint(buf, smp.ts.wrapping_sub(prev));
        prev = smp.ts;
        buf.extend_from_slice(&smp.value.to_bits().to_le_bytes());
    }
}

fn take_samples(b: &mut &[u8]) -> Result<Samples, BatchDecodeError> {
    let n_samples = take_len(b, 9)?;
    let mut samples = Samples::with_capacity(n_samples);
    let mut prev = 0i64;
    for _ in 0..n_samples {
        let delta = get_ivarint(b).ok_or(BatchDecodeError::Malformed("truncated timestamp"))?;
        prev = prev.wrapping_add(delta);
        samples.push(Sample { ts: prev, value: f64::from_bits(take_u64(b)?) });
    }
    Ok(samples)
}

fn take_ref(b: &mut &[u8], table: &[Str]) -> Result<Str, BatchDecodeError> {
    let idx = get_uvarint(b).ok_or(BatchDecodeError::Malformed("truncated string index"))?;
    usize::try_from(idx)
        .ok()
        .and_then(|i| table.get(i))
        .cloned()
        .ok_or(BatchDecodeError::Malformed("string index out of range"))
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn take_u8(b: &mut &[u8]) -> Result<u8, BatchDecodeError> {
    let (&v, rest) = b.split_first().ok_or(BatchDecodeError::Malformed("truncated"))?;
    *b = rest;
    Ok(v)
}

fn take_u64(b: &mut &[u8]) -> Result<u64, BatchDecodeError> {
    let (head, rest) = b.split_first_chunk::<8>().ok_or(BatchDecodeError::Malformed("truncated u64"))?;
    *b = rest;
    Ok(u64::from_le_bytes(*head))
}

/// Reads a count, rejecting counts that could not fit in the remaining
/// bytes (each element needs at least `min_elem_bytes`), so a hostile length
/// cannot make us allocate gigabytes.
fn take_len(b: &mut &[u8], min_elem_bytes: usize) -> Result<usize, BatchDecodeError> {
    let n = get_uvarint(b).ok_or(BatchDecodeError::Malformed("truncated count"))?;
    if n > (b.len() / min_elem_bytes) as u64 {
        return Err(BatchDecodeError::Malformed("count exceeds remaining bytes"));
    }
    Ok(n as usize)
}

fn take_str(b: &mut &[u8]) -> Result<String, BatchDecodeError> {
    let n = take_len(b, 1)?;
    let (s, rest) = b.split_at_checked(n).ok_or(BatchDecodeError::Malformed("truncated string"))?;
    *b = rest;
    String::from_utf8(s.to_vec()).map_err(|_| BatchDecodeError::Malformed("string is not UTF-8"))
}

#[cfg(test)]
mod tests;
