//! The manifest: the single source of truth for which segments are live and
//! up to which log offset each partition is durable in them.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "SHMF"
//! 4       1     format version (6; 2 to 5 still read; V6 changed segments only)
//! 5       3     reserved, zero
//! 8       8     u64 LE body length
//! 16      4     u32 LE CRC32 of the body
//! 20      ..    body: JSON {"generation", "bucket_ms", "segments": [{"id","file","size","tenant","bucket","seq"}],
//!                     "flushed_offsets": {"<partition>": offset}, "expired_before": {..}, "cold_watermarks": {..},
//!                     "edge_origins": {"<partition>": {"<agent id>": "<lo>[-<hi>],… @<last offset>"}}}  (V5)
//! ```
//!
//! Replaced atomically: written to `MANIFEST.tmp`, fsynced, renamed over
//! `MANIFEST`, directory fsynced. A crash leaves either the old or the new
//! manifest; a leftover `MANIFEST.tmp` is deleted on open.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec::Cursor;
use crate::error::{Error, Invalid, Result, check_crc};
use crate::format::{FormatVersion, MANIFEST_FILE, MANIFEST_MAGIC, TEMP_EXT};
use crate::segment::sync_dir;

const HEADER_LEN: usize = 20;

/// The persisted state of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Incremented on every write; for logs and debugging.
    pub(crate) generation: u64,
    /// Bucket length in ms the store was created with (0 = not yet fixed).
    #[serde(default)]
    pub(crate) bucket_ms: i64,
    /// Live segments, ordered by (seq, id): for equal (series, timestamp) a later one wins.
    pub(crate) segments: Vec<SegmentEntry>,
    /// Per log partition: the first offset NOT yet durable in segments.
    pub(crate) flushed_offsets: BTreeMap<u32, u64>,
    /// Per tenant: buckets starting before this (ms) were expired; later writes below it are dropped.
    #[serde(default)]
    pub(crate) expired_before: BTreeMap<String, i64>,
    /// Per tenant: the cold tier holds everything below this timestamp (ms).
    #[serde(default)]
    pub(crate) cold_watermarks: BTreeMap<String, i64>,
    /// Per log partition, per edge agent: the sequence numbers applied in
    /// that partition as of `flushed_offsets` (`crate::origins`); absent
    /// before V5 and when no edge batch was applied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) edge_origins: BTreeMap<u32, BTreeMap<String, String>>,
}

/// One live segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub(crate) id: u64,
    /// File name inside the store directory.
    pub(crate) file: String,
    /// File size in bytes; a different size on open means truncation.
    pub(crate) size: u64,
    /// Tenant of every series in the segment.
    pub(crate) tenant: String,
    /// Start (ms) of the time bucket the segment belongs to.
    pub(crate) bucket: i64,
    /// Age of the data: flush order; a compaction output keeps its newest input's.
    pub(crate) seq: u64,
}

pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_FILE)
}

/// Encodes the manifest file bytes.
pub(crate) fn encode(m: &Manifest) -> Vec<u8> {
    #[allow(clippy::expect_used, reason = "plain structs with integer map keys always serialise")]
    let body = serde_json::to_vec_pretty(m).expect("manifest serialises");
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MANIFEST_MAGIC);
    out.extend_from_slice(&[FormatVersion::CURRENT.as_u8(), 0, 0, 0]);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes manifest file bytes, verifying magic, version and checksum.
pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest, Invalid> {
    let mut c = Cursor::new(bytes);
    if c.bytes(4)? != MANIFEST_MAGIC {
        return Err("bad magic (not a manifest)".into());
    }
    let (version, reserved) = c.bytes(4)?.split_first().ok_or("truncated header")?;
    if reserved.iter().any(|&b| b != 0) {
        return Err("reserved header bytes are not zero".into());
    }
    FormatVersion::try_from(*version).map_err(|e| Invalid::Version(e.found))?;
    let len = c.u64_le()?;
    let crc = u32::from_le_bytes(c.bytes(4)?.try_into().map_err(|_| "truncated header")?);
    let body = c.remaining();
    if body.len() as u64 != len {
        return Err(Invalid::Corrupt(format!("body is {} bytes, header says {len}", body.len())));
    }
    check_crc("manifest body", body, crc)?;
    serde_json::from_slice(body).map_err(|e| Invalid::Corrupt(format!("manifest body: {e}")))
}

/// Loads the manifest of `dir`; `None` when there is none.
pub(crate) fn load(dir: &Path) -> Result<Option<Manifest>> {
    let path = manifest_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some).map_err(|e| e.at(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::ReadManifest { path, source }),
    }
}

/// Atomically replaces the manifest of `dir`: temp file, fsync, rename, fsync dir.
pub(crate) fn store(dir: &Path, m: &Manifest) -> Result<()> {
    let path = manifest_path(dir);
    let tmp = path.with_extension(TEMP_EXT);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&encode(m))?;
        crate::failpoint::hit("manifest.before_fsync")?;
        f.sync_all()
    };
    write().map_err(|source| Error::WriteManifest { path: tmp.clone(), source })?;
    crate::failpoint::hit("manifest.before_rename")
        .map_err(|source| Error::WriteManifest { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &path).map_err(|source| Error::WriteManifest { path: path.clone(), source })?;
    crate::failpoint::hit("manifest.after_rename")
        .map_err(|source| Error::WriteManifest { path: path.clone(), source })?;
    sync_dir(dir).map_err(|source| Error::WriteManifest { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 3,
            bucket_ms: 7_200_000,
            segments: vec![SegmentEntry {
                id: 2,
                file: "00000000000000000002.seg".into(),
                size: 99,
                tenant: "acme".into(),
                bucket: 7_200_000,
                seq: 2,
            }],
            flushed_offsets: BTreeMap::from([(0, 10), (7, 3)]),
            expired_before: BTreeMap::from([("acme".into(), 0)]),
            cold_watermarks: BTreeMap::new(),
            edge_origins: BTreeMap::from([(7, BTreeMap::from([("gw-1".into(), "1-3,9 @2".into())]))]),
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(decode(&encode(&sample())).unwrap(), sample());
    }

    #[test]
    fn header_layout_is_stable() {
        let bytes = encode(&Manifest::default());
        assert_eq!(&bytes[..8], b"SHMF\x06\0\0\0");
        assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize, bytes.len() - 20);
    }

    #[test]
    fn rejects_any_flipped_byte_or_truncation() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(decode(&b).is_err(), "flip at {i}");
            assert!(decode(&bytes[..i]).is_err(), "cut at {i}");
        }
    }

    /// A version-4 manifest (before edge origins), frozen.
    const FROZEN_V4: &[u8] = include_bytes!("../tests/fixtures/manifest/v4/MANIFEST");
    /// A version-5 manifest with edge origins, frozen.
    const FROZEN_V5: &[u8] = include_bytes!("../tests/fixtures/manifest/v5/MANIFEST");
    /// The same manifest in version 6 (segments changed, the manifest body
    /// did not), frozen: what this build writes.
    const FROZEN_V6: &[u8] = include_bytes!("../tests/fixtures/manifest/v6/MANIFEST");

    fn frozen(generation: u64, edge_origins: BTreeMap<u32, BTreeMap<String, String>>) -> Manifest {
        Manifest {
            generation,
            bucket_ms: 7_200_000,
            segments: Vec::new(),
            flushed_offsets: BTreeMap::from([(0, 5), (3, 2)]),
            expired_before: BTreeMap::from([("acme".into(), 0)]),
            cold_watermarks: BTreeMap::new(),
            edge_origins,
        }
    }

    #[test]
    fn still_reads_version_4() {
        assert_eq!(FROZEN_V4[4], 4);
        assert_eq!(decode(FROZEN_V4).unwrap(), frozen(3, BTreeMap::new()));
    }

    fn with_origins() -> Manifest {
        let agents = |v: &[(&str, &str)]| v.iter().map(|&(a, s)| (a.to_owned(), s.to_owned())).collect();
        frozen(
            4,
            BTreeMap::from([
                (0, agents(&[("gw-1", "1-3,9 @4"), ("gw-2", "7 @2")])),
                (3, agents(&[("gw-1", "1-3 @1")])),
            ]),
        )
    }

    #[test]
    fn still_reads_version_5() {
        assert_eq!(FROZEN_V5[4], 5);
        assert_eq!(decode(FROZEN_V5).unwrap(), with_origins());
    }

    #[test]
    fn version_6_is_frozen() {
        let m = with_origins();
        assert_eq!(decode(FROZEN_V6).unwrap(), m);
        assert_eq!(encode(&m), FROZEN_V6);
        // Only the version byte changed from V5.
        assert_eq!((&FROZEN_V6[..4], &FROZEN_V6[5..]), (&FROZEN_V5[..4], &FROZEN_V5[5..]));
        // Without edge origins the body is a version-4 body.
        let v4 = frozen(3, BTreeMap::new());
        assert_eq!(encode(&v4)[20..], FROZEN_V4[20..]);
    }

    #[test]
    fn rejects_future_versions() {
        let mut b = encode(&sample());
        b[4] = 9;
        assert!(matches!(decode(&b), Err(Invalid::Version(9))));
    }

    #[test]
    fn store_then_load_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        store(dir.path(), &Manifest::default()).unwrap();
        store(dir.path(), &sample()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(sample()));
        assert!(!dir.path().join("MANIFEST.tmp").exists());
    }
}
