//! The write batch: what one ingest-log record carries.
//!
//! A batch holds one tenant's samples for one log partition. The encoding is
//! a storage format (records live in the log until the hot store has
//! flushed them), documented in `schemas/FORMAT.md`:
//!
//! ```text
//! u8       version (= 1)
//! str      tenant                        str = uvarint length + UTF-8 bytes
//! uvarint  series count
//! per series:
//!   u64 LE   series id
//!   u64 LE   device hash
//!   uvarint  label count, then per label: str name, str value (sorted by name)
//!   uvarint  sample count, then per sample:
//!            ivarint ts delta (first sample: delta from 0), u64 LE value bits
//! ```

use crate::varint::{get_ivarint, get_uvarint, put_ivarint, put_uvarint};
use crate::{Label, Labels, Sample, SeriesId, TenantId};

/// The only batch encoding version so far.
pub const BATCH_VERSION: u8 = 1;

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
    pub samples: Vec<Sample>,
}

/// One tenant's samples for one log partition.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    /// The tenant the samples belong to.
    pub tenant: TenantId,
    /// Its series.
    pub series: Vec<BatchSeries>,
}

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchDecodeError {
    /// The version byte is not one this build reads.
    #[error("unsupported batch version {found} (supported: {BATCH_VERSION})")]
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

    /// Encodes the batch (appending to `buf`).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(BATCH_VERSION);
        put_str(buf, self.tenant.as_str());
        put_uvarint(buf, self.series.len() as u64);
        for s in &self.series {
            buf.extend_from_slice(&s.id.0.to_le_bytes());
            buf.extend_from_slice(&s.device_hash.to_le_bytes());
            put_uvarint(buf, s.labels.len() as u64);
            for l in s.labels.iter() {
                put_str(buf, &l.name);
                put_str(buf, &l.value);
            }
            put_uvarint(buf, s.samples.len() as u64);
            let mut prev = 0i64;
            for smp in &s.samples {
                put_ivarint(buf, smp.ts.wrapping_sub(prev));
                prev = smp.ts;
                buf.extend_from_slice(&smp.value.to_bits().to_le_bytes());
            }
        }
    }

    /// Encodes the batch into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + self.sample_count() * 10);
        self.encode(&mut buf);
        buf
    }

    /// Decodes a batch. Never panics on arbitrary input.
    pub fn decode(mut buf: &[u8]) -> Result<Self, BatchDecodeError> {
        let b = &mut buf;
        let version = take_u8(b)?;
        if version != BATCH_VERSION {
            return Err(BatchDecodeError::UnsupportedVersion { found: version });
        }
        let tenant = TenantId::new(take_str(b)?).map_err(|_| BatchDecodeError::Malformed("invalid tenant id"))?;
        let n_series = take_len(b, 18)?;
        let mut series = Vec::with_capacity(n_series);
        for _ in 0..n_series {
            let id = SeriesId(take_u64(b)?);
            let device_hash = take_u64(b)?;
            let n_labels = take_len(b, 2)?;
            let mut labels = Vec::with_capacity(n_labels);
            for _ in 0..n_labels {
                let name = take_str(b)?;
                let value = take_str(b)?;
                labels.push(Label { name, value });
            }
            if !labels.windows(2).all(|w| w[0].name < w[1].name) || labels.iter().any(|l| l.value.is_empty()) {
                return Err(BatchDecodeError::Malformed("labels not canonical"));
            }
            let n_samples = take_len(b, 9)?;
            let mut samples = Vec::with_capacity(n_samples);
            let mut prev = 0i64;
            for _ in 0..n_samples {
                let delta = get_ivarint(b).ok_or(BatchDecodeError::Malformed("truncated timestamp"))?;
                prev = prev.wrapping_add(delta);
                samples.push(Sample { ts: prev, value: f64::from_bits(take_u64(b)?) });
            }
            series.push(BatchSeries { id, device_hash, labels: Labels::from_sorted(labels), samples });
        }
        if !b.is_empty() {
            return Err(BatchDecodeError::Malformed("trailing bytes"));
        }
        Ok(WriteBatch { tenant, series })
    }
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
    let (s, rest) = b.split_at(n);
    *b = rest;
    String::from_utf8(s.to_vec()).map_err(|_| BatchDecodeError::Malformed("string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_batch() -> impl Strategy<Value = WriteBatch> {
        let label = ("[a-z_]{1,8}", "[a-zA-Z0-9 ,=\"\\\\é-]{1,12}");
        let sample = (any::<i64>(), any::<f64>()).prop_map(|(ts, v)| Sample::new(ts, v));
        let series =
            (any::<u64>(), any::<u64>(), prop::collection::vec(label, 0..5), prop::collection::vec(sample, 0..20))
                .prop_map(|(id, dh, labels, samples)| BatchSeries {
                    id: SeriesId(id),
                    device_hash: dh,
                    labels: Labels::from_pairs(labels),
                    samples,
                });
        ("[a-z]{1,10}", prop::collection::vec(series, 0..6))
            .prop_map(|(t, series)| WriteBatch { tenant: TenantId::new(t).unwrap(), series })
    }

    proptest! {
        #[test]
        fn round_trips(batch in arb_batch()) {
            let bytes = batch.to_bytes();
            let back = WriteBatch::decode(&bytes).unwrap();
            // Compare bitwise: NaN payloads (staleness markers) must survive.
            prop_assert_eq!(back.tenant, batch.tenant);
            prop_assert_eq!(back.series.len(), batch.series.len());
            for (a, b) in back.series.iter().zip(&batch.series) {
                prop_assert_eq!(&a.labels, &b.labels);
                prop_assert_eq!(a.id, b.id);
                let bits = |s: &[Sample]| s.iter().map(|s| (s.ts, s.value.to_bits())).collect::<Vec<_>>();
                prop_assert_eq!(bits(&a.samples), bits(&b.samples));
            }
        }

        #[test]
        fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = WriteBatch::decode(&bytes);
        }

        #[test]
        fn every_truncation_is_an_error(batch in arb_batch(), cut in any::<prop::sample::Index>()) {
            let bytes = batch.to_bytes();
            let cut = cut.index(bytes.len());
            prop_assert!(WriteBatch::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn rejects_unknown_version() {
        assert_eq!(WriteBatch::decode(&[9]), Err(BatchDecodeError::UnsupportedVersion { found: 9 }));
    }
}
