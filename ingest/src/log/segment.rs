//! Segment files of the local ingest log: header, record frames, scanning.
//!
//! ```text
//! segment file  <partition dir>/<base offset, 20 digits>.seg
//!
//! header (25 bytes)
//!   0  [u8; 8]  magic "STRATLOG"
//!   8  u8       format version (1)
//!   9  u32 LE   partition
//!  13  u64 LE   base offset (offset of the first record in this file)
//!  21  u32 LE   CRC-32 (IEEE) of bytes 0..21
//!
//! record frame (16-byte frame header + payload), repeated
//!   0  u32 LE   payload length
//!   4  u32 LE   CRC-32 of (length LE ‖ offset LE ‖ payload)
//!   8  u64 LE   offset (base offset + index of the record in the file)
//!  16  [u8]     payload (a `strata_schemas::WriteBatch`)
//! ```
//!
//! A frame is valid when its length is within limits, its CRC matches and
//! its offset is the next expected one. The first invalid frame ends the
//! readable part of a file; see [`scan_tail`] for how the open path tells a
//! torn tail (truncated) from damage in the middle (refused).

use crate::error::{Error, Result};
use std::path::Path;

/// Magic bytes at the start of every segment.
pub(crate) const MAGIC: [u8; 8] = *b"STRATLOG";
/// Current (and only) segment format version.
pub(crate) const VERSION: u8 = 1;
/// Size of the segment header.
pub(crate) const HEADER_LEN: usize = 25;
/// Size of a record frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 16;
/// Largest payload a frame may carry.
pub(crate) const MAX_RECORD_BYTES: usize = 256 << 20;

/// Encodes a segment header.
pub(crate) fn encode_header(partition: u32, base_offset: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8] = VERSION;
    h[9..13].copy_from_slice(&partition.to_le_bytes());
    h[13..21].copy_from_slice(&base_offset.to_le_bytes());
    let crc = crc32fast::hash(&h[0..21]);
    h[21..25].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes and checks a segment header, returning its base offset.
pub(crate) fn decode_header(path: &Path, bytes: &[u8], partition: u32) -> Result<u64> {
    let corrupt = |detail: &str| Error::Corrupted { path: path.to_owned(), position: 0, detail: detail.to_owned() };
    let h: &[u8; HEADER_LEN] =
        bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or_else(|| corrupt("file shorter than header"))?;
    if h[0..8] != MAGIC {
        return Err(corrupt("bad magic (not an ingest log segment)"));
    }
    let crc = u32::from_le_bytes([h[21], h[22], h[23], h[24]]);
    if crc32fast::hash(&h[0..21]) != crc {
        return Err(corrupt("header checksum mismatch"));
    }
    if h[8] != VERSION {
        return Err(Error::UnsupportedFormatVersion { path: path.to_owned(), found: h[8], supported: VERSION });
    }
    let found_partition = u32::from_le_bytes([h[9], h[10], h[11], h[12]]);
    if found_partition != partition {
        return Err(corrupt(&format!("header says partition {found_partition}, file is in partition {partition}")));
    }
    Ok(u64::from_le_bytes([h[13], h[14], h[15], h[16], h[17], h[18], h[19], h[20]]))
}

/// Appends one record frame to `buf`.
pub(crate) fn encode_frame(buf: &mut Vec<u8>, offset: u64, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    let off = offset.to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(&off);
    h.update(payload);
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.extend_from_slice(&off);
    buf.extend_from_slice(payload);
}

/// One decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// The record's offset.
    pub(crate) offset: u64,
    /// The record's payload.
    pub(crate) payload: &'a [u8],
    /// Total frame size in bytes.
    pub(crate) size: usize,
}

/// Why the bytes at a position are not a valid frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than a complete frame.
    Truncated,
    /// Length, checksum or offset are wrong.
    Invalid(String),
}

/// Decodes the frame at the start of `bytes`, expecting offset `expected`
/// (or any offset `>= expected` when `expected_exact` is false).
pub(crate) fn decode_frame(bytes: &[u8], expected: u64, expected_exact: bool) -> Result<Frame<'_>, FrameError> {
    let head: &[u8; FRAME_HEADER_LEN] =
        bytes.get(..FRAME_HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(FrameError::Truncated)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let offset = u64::from_le_bytes([head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15]]);
    if len > MAX_RECORD_BYTES {
        return Err(FrameError::Invalid(format!("record length {len} exceeds the maximum {MAX_RECORD_BYTES}")));
    }
    let payload = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len).ok_or(FrameError::Truncated)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&head[0..4]);
    h.update(&head[8..16]);
    h.update(payload);
    if h.finalize() != crc {
        return Err(FrameError::Invalid("record checksum mismatch".to_owned()));
    }
    if (expected_exact && offset != expected) || offset < expected {
        return Err(FrameError::Invalid(format!("record offset {offset}, expected {expected}")));
    }
    Ok(Frame { offset, payload, size: FRAME_HEADER_LEN + len })
}

/// Where the valid part of a segment's records ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TailScan {
    /// Byte length of the valid prefix (header included).
    pub(crate) valid_len: u64,
    /// Offset the next appended record gets.
    pub(crate) next_offset: u64,
    /// Bytes after the valid prefix (a torn tail to truncate), and why.
    pub(crate) torn: Option<(u64, String)>,
}

/// Scans the records of the newest segment of a partition.
///
/// The valid prefix ends at the first frame that does not decode. If any
/// valid frame with a later offset starts after that point, the damage is in
/// the middle of acknowledged data and the scan fails with
/// [`Error::Corrupted`]; otherwise the rest is a torn tail (a write cut off
/// by a crash, never acknowledged) that the caller truncates.
pub(crate) fn scan_tail(path: &Path, bytes: &[u8], base_offset: u64) -> Result<TailScan> {
    let mut pos = HEADER_LEN;
    let mut next = base_offset;
    loop {
        let rest = bytes.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(TailScan { valid_len: pos as u64, next_offset: next, torn: None });
        }
        match decode_frame(rest, next, true) {
            Ok(frame) => {
                pos += frame.size;
                next += 1;
            }
            Err(err) => {
                let detail = match err {
                    FrameError::Truncated => "incomplete record".to_owned(),
                    FrameError::Invalid(d) => d,
                };
                if let Some(later) = find_later_frame(bytes, pos + 1, next) {
                    return Err(Error::Corrupted {
                        path: path.to_owned(),
                        position: pos as u64,
                        detail: format!(
                            "{detail} at record offset {next}, but a valid record follows at byte {later}: \
                             refusing to drop acknowledged records (restore the file or move it away)"
                        ),
                    });
                }
                let torn_bytes = (bytes.len() - pos) as u64;
                return Ok(TailScan { valid_len: pos as u64, next_offset: next, torn: Some((torn_bytes, detail)) });
            }
        }
    }
}

/// Searches for any valid frame with offset `>= expected` starting at or after `from`.
fn find_later_frame(bytes: &[u8], from: usize, expected: u64) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME_HEADER_LEN - 1))
        .find(|&p| bytes.get(p..).is_some_and(|rest| decode_frame(rest, expected, false).is_ok()))
}

#[cfg(test)]
mod tests;
