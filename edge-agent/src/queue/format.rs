//! Byte layout of segment files and the cursor file (see `FORMAT.md` next to
//! this module for the documented layout).
//!
//! ```text
//! segment  = header frame*
//! header   = "STEDGSEG" version:u16 reserved:u16 first_seq:u64 crc32(previous 20 bytes):u32      24 bytes
//! frame    = len:u32 seq:u64 enqueued_ms:i64 payload_crc:u32 header_crc:u32 payload[len]     28 + len bytes
//!            header_crc = crc32 of the 24 bytes before it; payload_crc = crc32(payload)
//! cursor   = "STEDGCUR" version:u16 reserved:u16 acked_seq:u64 crc32(previous 20 bytes):u32      24 bytes
//! ```
//!
//! All integers are little-endian.

/// Magic of a segment file.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"STEDGSEG";
/// Magic of the cursor file.
pub(crate) const CURSOR_MAGIC: &[u8; 8] = b"STEDGCUR";
/// The format version this build writes and reads.
pub(crate) const VERSION: u16 = 1;
/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 24;
/// Bytes of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 28;
/// Bytes of the cursor file.
pub(crate) const CURSOR_LEN: usize = 24;
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

/// The cursor file's bytes for acknowledged sequence `acked`.
pub(crate) fn encode_cursor(acked: u64) -> [u8; 24] {
    encode_record(CURSOR_MAGIC, acked)
}

/// The acknowledged sequence stored in a cursor file.
pub(crate) fn decode_cursor(b: &[u8; 24]) -> Result<u64, RecordError> {
    decode_record(CURSOR_MAGIC, b)
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
