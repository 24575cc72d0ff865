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
mod tests;
