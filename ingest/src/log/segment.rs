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
//! its offset is the next expected one. See [`scan_segment`] for how the
//! open path tells a torn tail (an incomplete last frame: truncated) from
//! damage (a complete frame that fails its checks, or bytes followed by
//! valid frames: quarantined, with the valid frames after it kept).

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

/// A run of consecutive valid frames: bytes `start..end`, offsets `first..next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    /// Byte position of the run's first frame.
    pub(crate) start: usize,
    /// Byte position one past the run's last frame.
    pub(crate) end: usize,
    /// Offset of the run's first record.
    pub(crate) first: u64,
    /// Offset one past the run's last record.
    pub(crate) next: u64,
}

/// Damaged bytes `start..end` that are not a torn tail (acknowledged data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Byte position where the damage starts.
    pub(crate) start: usize,
    /// Byte position where the next valid frame starts (or the file ends).
    pub(crate) end: usize,
    /// Offset of the first record that could not be read.
    pub(crate) first_lost: u64,
    /// Offset of the valid record found after the damage, if any
    /// (`first_lost..resumed_at` are lost).
    pub(crate) resumed_at: Option<u64>,
    /// What is wrong at `start`.
    pub(crate) detail: String,
}

/// What a full scan of a segment's frames found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// Valid runs, in file order (offsets strictly increase).
    pub(crate) runs: Vec<Run>,
    /// Damaged regions between and after the runs.
    pub(crate) damage: Vec<Damage>,
    /// A torn tail: `(byte position, reason)`; everything from there to the
    /// end of the file is an unacknowledged write cut off by a crash.
    pub(crate) torn: Option<(usize, String)>,
}

impl SegmentScan {
    /// Offset one past the last valid record (`base` when there is none).
    pub(crate) fn next_offset(&self, base: u64) -> u64 {
        self.runs.last().map_or(base, |r| r.next)
    }
}

/// Scans every frame of a segment whose header was checked (or is damaged:
/// the frames are scanned from [`HEADER_LEN`] anyway), expecting offsets
/// from `base` and below `limit` (the next segment's base).
///
/// Classification of the first frame that does not decode:
///
/// * **torn tail** (only when `tail_may_tear`, i.e. for the newest segment):
///   the rest of the file is an incomplete frame (shorter than its declared
///   length, and not a complete frame whose length field is damaged) or
///   all zero bytes (space allocated by a write that never reached the
///   disk), and no valid frame follows. Such a write never finished its
///   fsync, so it was never acknowledged.
/// * **damage**, everything else: a complete frame whose checksum or offset
///   is wrong, garbage followed by valid frames, an incomplete frame in an
///   older segment. The scan resynchronises on the next frame whose header,
///   offset and checksum validate (see [`find_resync`]) and goes on from
///   there; without one, the damage runs to the end of the file.
pub(crate) fn scan_segment(bytes: &[u8], base: u64, limit: u64, tail_may_tear: bool) -> SegmentScan {
    let mut scan = SegmentScan::default();
    let mut pos = HEADER_LEN.min(bytes.len());
    let mut next = base;
    let mut run = (pos, next);
    loop {
        let rest = bytes.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let err = match decode_frame(rest, next, true) {
            Ok(frame) if next < limit => {
                pos += frame.size;
                next += 1;
                continue;
            }
            Ok(_) => FrameError::Invalid(format!(
                "record offset {next} is at or past the next segment's base {limit} (left by an interrupted repair)"
            )),
            Err(e) => e,
        };
        if pos > run.0 {
            scan.runs.push(Run { start: run.0, end: pos, first: run.1, next });
        }
        let resync = find_resync(bytes, pos, next, limit);
        if tail_may_tear
            && resync.is_none()
            && let Some(reason) = torn_reason(rest, &err)
        {
            scan.torn = Some((pos, reason));
            return scan;
        }
        let detail = match err {
            FrameError::Truncated => "incomplete record".to_owned(),
            FrameError::Invalid(d) => d,
        };
        match resync {
            Some((at, offset)) => {
                scan.damage.push(Damage { start: pos, end: at, first_lost: next, resumed_at: Some(offset), detail });
                pos = at;
                next = offset;
                run = (pos, next);
            }
            None => {
                scan.damage.push(Damage { start: pos, end: bytes.len(), first_lost: next, resumed_at: None, detail });
                return scan;
            }
        }
    }
    if pos > run.0 {
        scan.runs.push(Run { start: run.0, end: pos, first: run.1, next });
    }
    scan
}

/// Why `rest` (the bytes from the first undecodable frame to the end of the
/// file) is a torn tail, or `None` if it is not one.
fn torn_reason(rest: &[u8], err: &FrameError) -> Option<String> {
    if rest.iter().all(|&b| b == 0) {
        return Some(format!("{} zero bytes (space of a write that never reached the disk)", rest.len()));
    }
    if *err != FrameError::Truncated {
        return None; // a complete frame that fails its checks is damage
    }
    if let Some(head) = rest.get(..FRAME_HEADER_LEN) {
        // A complete last frame whose length field was damaged would pass
        // its checksum with the length the file actually leaves it.
        let real_len = ((rest.len() - FRAME_HEADER_LEN) as u32).to_le_bytes();
        let mut h = crc32fast::Hasher::new();
        h.update(&real_len);
        h.update(&head[8..16]);
        h.update(&rest[FRAME_HEADER_LEN..]);
        if h.finalize().to_le_bytes() == head[4..8] {
            return None;
        }
    }
    Some("incomplete record".to_owned())
}

/// Finds the first position after `damage_start` holding a valid frame whose
/// offset is plausible: at least `expected`, below `limit`, and at most
/// `expected` plus the number of frames (16 bytes or more each) the damaged
/// bytes could have held. Returns `(position, offset)`. The cheap offset and
/// length checks come first, so scanning a large damaged region stays linear.
pub(crate) fn find_resync(bytes: &[u8], damage_start: usize, expected: u64, limit: u64) -> Option<(usize, u64)> {
    let last = bytes.len().checked_sub(FRAME_HEADER_LEN)?;
    (damage_start + 1..=last).find_map(|p| {
        let head = bytes.get(p..p + FRAME_HEADER_LEN)?;
        let offset = u64::from_le_bytes(head[8..16].try_into().ok()?);
        let most = expected.saturating_add(((p - damage_start) / FRAME_HEADER_LEN) as u64);
        if offset < expected || offset > most || offset >= limit {
            return None;
        }
        let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
        if len > MAX_RECORD_BYTES || p + FRAME_HEADER_LEN + len > bytes.len() {
            return None;
        }
        decode_frame(&bytes[p..], offset, true).ok().map(|_| (p, offset))
    })
}

/// True when `bytes` start with an intact segment header (magic and
/// checksum); a header that fails this is damage, while an intact header
/// naming another partition or version is refused.
pub(crate) fn header_intact(bytes: &[u8]) -> bool {
    bytes
        .get(..HEADER_LEN)
        .is_some_and(|h| h[0..8] == MAGIC && crc32fast::hash(&h[0..21]).to_le_bytes() == [h[21], h[22], h[23], h[24]])
}

#[cfg(test)]
mod tests;
