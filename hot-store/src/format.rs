//! File-format constants shared by segments and the manifest, and the
//! [`FormatVersion`] both carry. Byte layouts are in `hot-store/FORMAT.md`.

use std::fmt;

/// Magic at the start and end of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 4] = *b"SHSG";
/// Magic at the start of the manifest.
pub(crate) const MANIFEST_MAGIC: [u8; 4] = *b"SHMF";
/// File name of the manifest inside the store directory.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
/// Extension of segment files (`<id:020>.seg`).
pub(crate) const SEGMENT_EXT: &str = "seg";
/// Extension of files being written; never referenced by a manifest.
pub(crate) const TEMP_EXT: &str = "tmp";
/// Sub-directory corrupt segments are moved into.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";

/// The on-disk format version of segments and the manifest.
///
/// Readers accept [`FormatVersion::OLDEST_SUPPORTED`]`..=`[`FormatVersion::CURRENT`].
/// A shipped version is frozen: changes go into a new variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum FormatVersion {
    /// The first format: one segment per flush, all tenants and times. No longer readable.
    V1 = 1,
    /// Time buckets: one segment per (tenant, bucket), symbol table, series
    /// table, croaring postings; manifest entries carry tenant, bucket and seq.
    V2 = 2,
    /// Sample blocks hold the timestamps' delta-of-deltas as a bit stream
    /// (one bit per regular interval) instead of varints (a byte each).
    /// Everything else as V2.
    V3 = 3,
    /// Compact series entries (the series id only when it differs from
    /// `schemas::series_id` of the labels, the device hash only when it
    /// differs from the previous entry's, labels as changes to the previous
    /// entry's, min ts relative to the bucket); sample blocks without their
    /// count and first timestamp (they are in the entry); packed-decimal
    /// values. Manifest unchanged.
    V4 = 4,
    /// The manifest records, per log partition, the edge batches (agent id,
    /// sequence numbers) applied as of its flushed offsets (`edge_origins`).
    /// Segments unchanged (their version byte follows).
    V5 = 5,
    /// Series blocks may be *stream blocks* (series entry flag `STREAM`): a
    /// memtable chunk's bit stream copied as is by a flush (a mode byte,
    /// then the first value and per sample a timestamp delta-of-delta and a
    /// value code), so a flush does not decode and re-encode samples;
    /// compaction rewrites them in the V4 block layout. Manifest unchanged.
    V6 = 6,
}

impl FormatVersion {
    /// The version this build writes.
    pub const CURRENT: FormatVersion = FormatVersion::V6;
    /// The oldest version this build reads.
    pub const OLDEST_SUPPORTED: FormatVersion = FormatVersion::V2;

    /// The byte stored on disk.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A version byte outside the supported range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported format version {found} (supported: {oldest}..={current})", oldest = FormatVersion::OLDEST_SUPPORTED.as_u8(), current = FormatVersion::CURRENT.as_u8())]
pub struct UnsupportedFormatVersion {
    /// The version byte found.
    pub found: u8,
}

impl TryFrom<u8> for FormatVersion {
    type Error = UnsupportedFormatVersion;

    fn try_from(found: u8) -> Result<Self, Self::Error> {
        match found {
            2 => Ok(FormatVersion::V2),
            3 => Ok(FormatVersion::V3),
            4 => Ok(FormatVersion::V4),
            5 => Ok(FormatVersion::V5),
            6 => Ok(FormatVersion::V6),
            _ => Err(UnsupportedFormatVersion { found }),
        }
    }
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.as_u8())
    }
}

/// Name of the segment file with id `id`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("{id:020}.{SEGMENT_EXT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The persisted encodings are frozen: if this fails, the format changed.
    #[test]
    fn persisted_constants_are_stable() {
        assert_eq!(FormatVersion::V1.as_u8(), 1);
        assert_eq!(FormatVersion::V2.as_u8(), 2);
        assert_eq!(FormatVersion::V3.as_u8(), 3);
        assert_eq!(FormatVersion::V4.as_u8(), 4);
        assert_eq!(FormatVersion::V5.as_u8(), 5);
        assert_eq!(FormatVersion::V6.as_u8(), 6);
        assert_eq!(&SEGMENT_MAGIC, b"SHSG");
        assert_eq!(&MANIFEST_MAGIC, b"SHMF");
        assert_eq!(segment_file_name(7), "00000000000000000007.seg");
    }

    #[test]
    fn rejects_unknown_versions() {
        assert_eq!(FormatVersion::try_from(2), Ok(FormatVersion::V2));
        assert_eq!(FormatVersion::try_from(0), Err(UnsupportedFormatVersion { found: 0 }));
        assert_eq!(FormatVersion::try_from(1), Err(UnsupportedFormatVersion { found: 1 }));
        assert_eq!(FormatVersion::try_from(3), Ok(FormatVersion::V3));
        assert_eq!(FormatVersion::try_from(4), Ok(FormatVersion::V4));
        assert_eq!(FormatVersion::try_from(5), Ok(FormatVersion::V5));
        assert_eq!(FormatVersion::try_from(6), Ok(FormatVersion::V6));
        assert_eq!(FormatVersion::try_from(7), Err(UnsupportedFormatVersion { found: 7 }));
    }
}
