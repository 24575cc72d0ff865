//! Byte layout of segment files and the cursor file (see `FORMAT.md` next to
//! this module for the documented layout).
//!
//! ```text
//! segment  = header frame*
//! header   = "STEDGSEG" version:u16 reserved:u16 first_seq:u64 crc32(previous 20 bytes):u32      24 bytes
//! frame    = len:u32 seq:u64 enqueued_ms:i64 payload_crc:u32 header_crc:u32 payload[len]     28 + len bytes
//!            header_crc = crc32 of the 24 bytes before it; payload_crc = crc32(payload)
//! cursor v1 = "STEDGCUR" 1:u16 reserved:u16 acked_seq:u64 crc32(previous 20 bytes):u32          24 bytes (read only)
//! cursor v2 = "STEDGCUR" 2:u16 reserved:u16 acked_seq:u64 n:u32 (first:u64 last:u64)*n crc32(all before):u32
//!                                                                                        28 + 16·n bytes
//! ```
//!
//! All integers are little-endian.

/// Magic of a segment file.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"STEDGSEG";
/// Magic of the cursor file.
pub(crate) const CURSOR_MAGIC: &[u8; 8] = b"STEDGCUR";
/// The version of segment files (their layout is unchanged since version 1).
pub(crate) const VERSION: u16 = 1;
/// The version of the cursor file this build writes (it also reads version 1).
pub(crate) const CURSOR_VERSION: u16 = 2;
/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 24;
/// Bytes of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 28;
/// Bytes of a version 1 cursor file.
pub(crate) const CURSOR_V1_LEN: usize = 24;
/// Bytes of a version 2 cursor file without ranges.
pub(crate) const CURSOR_V2_MIN_LEN: usize = 28;
/// Most ranges a version 2 cursor may declare (more is damage).
pub(crate) const MAX_CURSOR_RANGES: u32 = 1 << 20;
/// The largest payload a frame may declare (a larger length is damage).
pub(crate) const MAX_PAYLOAD_LEN: u32 = 256 << 20;

fn le_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A 24-byte "magic version reserved value crc" record (segment header, cursor).
fn encode_record(magic: &[u8; 8], value: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(magic);
    out[8..10].copy_from_slice(&VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&value.to_le_bytes());
    let crc = crc32fast::hash(&out[..20]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Why a 24-byte record did not decode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// Wrong magic.
    Magic,
    /// Unknown version.
    Version(u16),
    /// Checksum mismatch (stored, computed).
    Checksum(u32, u32),
}

fn decode_record(magic: &[u8; 8], b: &[u8; 24]) -> Result<u64, RecordError> {
    if &b[..8] != magic {
        return Err(RecordError::Magic);
    }
    let stored = le_u32(b, 20);
    let actual = crc32fast::hash(&b[..20]);
    if stored != actual {
        return Err(RecordError::Checksum(stored, actual));
    }
    let version = le_u16(b, 8);
    if version != VERSION {
        return Err(RecordError::Version(version));
    }
    Ok(le_u64(b, 12))
}

/// The header of a segment whose first frame has sequence `first_seq`.
pub(crate) fn encode_segment_header(first_seq: u64) -> [u8; 24] {
    encode_record(SEGMENT_MAGIC, first_seq)
}

/// The first sequence number named by a segment header.
pub(crate) fn decode_segment_header(b: &[u8; 24]) -> Result<u64, RecordError> {
    decode_record(SEGMENT_MAGIC, b)
}

/// The cursor file (version 2): the contiguous acknowledged prefix
/// `acked` and the acknowledged ranges above it (inclusive, ascending,
/// disjoint, not adjacent, all above `acked + 1`).
pub(crate) fn encode_cursor(acked: u64, ranges: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CURSOR_V2_MIN_LEN + 16 * ranges.len());
    out.extend_from_slice(CURSOR_MAGIC);
    out.extend_from_slice(&CURSOR_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&acked.to_le_bytes());
    let n = u32::try_from(ranges.len()).expect("fewer than 2^32 ranges");
    out.extend_from_slice(&n.to_le_bytes());
    for (first, last) in ranges {
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&last.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why a cursor file did not decode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CursorError {
    /// A record error (magic, version, checksum).
    Record(RecordError),
    /// Wrong size or inconsistent ranges.
    Layout(String),
}

/// The contiguous acknowledged prefix and the acknowledged ranges above it,
/// from a version 1 (no ranges) or version 2 cursor file.
pub(crate) fn decode_cursor(b: &[u8]) -> Result<(u64, Vec<(u64, u64)>), CursorError> {
    if b.len() < CURSOR_V1_LEN {
        return Err(CursorError::Layout(format!(
            "cursor file has {} bytes, at least {CURSOR_V1_LEN} expected",
            b.len()
        )));
    }
    if &b[..8] != CURSOR_MAGIC {
        return Err(CursorError::Record(RecordError::Magic));
    }
    match le_u16(b, 8) {
        1 => {
            let record = <&[u8; CURSOR_V1_LEN]>::try_from(b).map_err(|_| {
                CursorError::Layout(format!("version 1 cursor file has {} bytes, expected {CURSOR_V1_LEN}", b.len()))
            })?;
            decode_record(CURSOR_MAGIC, record).map(|acked| (acked, Vec::new())).map_err(CursorError::Record)
        }
        2 => {
            if b.len() < CURSOR_V2_MIN_LEN {
                return Err(CursorError::Layout(format!("version 2 cursor file has {} bytes", b.len())));
            }
            let n = le_u32(b, 20);
            let want = CURSOR_V2_MIN_LEN as u64 + 16 * u64::from(n);
            if n > MAX_CURSOR_RANGES || b.len() as u64 != want {
                return Err(CursorError::Layout(format!(
                    "version 2 cursor file has {} bytes, {want} expected for {n} ranges",
                    b.len()
                )));
            }
            let end = b.len() - 4;
            let stored = le_u32(b, end);
            let actual = crc32fast::hash(&b[..end]);
            if stored != actual {
                return Err(CursorError::Record(RecordError::Checksum(stored, actual)));
            }
            let acked = le_u64(b, 12);
            let mut ranges = Vec::with_capacity(n as usize);
            let mut floor = acked.saturating_add(1);
            for i in 0..n as usize {
                let (first, last) = (le_u64(b, 24 + 16 * i), le_u64(b, 32 + 16 * i));
                if first <= floor || last < first {
                    return Err(CursorError::Layout(format!(
                        "acknowledged range {first}..={last} is not above {floor} (prefix {acked})"
                    )));
                }
                ranges.push((first, last));
                floor = last.saturating_add(1);
            }
            Ok((acked, ranges))
        }
        v => Err(CursorError::Record(RecordError::Version(v))),
    }
}

/// Appends one frame to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, seq: u64, enqueued_ms: i64, payload: &[u8]) {
    let start = out.len();
    let len = u32::try_from(payload.len()).expect("payload length checked against MAX_PAYLOAD_LEN by the caller");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&enqueued_ms.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out[start..start + 24]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Payload length.
    pub(crate) len: u32,
    /// Sequence number.
    pub(crate) seq: u64,
    /// When the batch was queued (ms since the epoch).
    pub(crate) enqueued_ms: i64,
    /// crc32 of the payload.
    pub(crate) payload_crc: u32,
}

/// Decodes a frame header; `Err((stored, computed))` on a checksum mismatch.
pub(crate) fn decode_frame_header(b: &[u8; FRAME_HEADER_LEN]) -> Result<FrameHeader, (u32, u32)> {
    let stored = le_u32(b, 24);
    let actual = crc32fast::hash(&b[..24]);
    if stored != actual {
        return Err((stored, actual));
    }
    Ok(FrameHeader {
        len: le_u32(b, 0),
        seq: le_u64(b, 4),
        enqueued_ms: le_u64(b, 12) as i64,
        payload_crc: le_u32(b, 20),
    })
}
