//! Segment files: immutable, sorted series blocks plus an index footer.
//!
//! ```text
//! offset            size  field
//! 0                 4     magic "SHSG"
//! 4                 1     format version (1)
//! 5                 3     reserved, zero
//! 8                 4     u32 LE CRC32 of bytes 0..8 (header checksum)
//! 12                ..    series blocks, contiguous, sorted by (tenant, series id, labels):
//!                           sample block (see `codec`), then u32 LE CRC32 of that sample block
//! index_offset      ..    index section (tenants, then one entry per block, same order)
//! end-28            8     u64 LE index_offset
//! end-20            8     u64 LE index_len
//! end-12            4     u32 LE CRC32 of the index section
//! end-8             4     u32 LE CRC32 of bytes end-28..end-8 (trailer checksum)
//! end-4             4     magic "SHSG"
//! ```
//!
//! Opening a segment reads the header, trailer and index only; sample blocks
//! are read (and their CRC verified) on demand. Files are written under a
//! temporary name, fsynced, renamed, and the directory fsynced before any
//! manifest references them. Full layout: `hot-store/FORMAT.md`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_schemas::{Label, Labels, ReadError, SeriesId, TenantId};

use crate::codec::{Cursor, decode_samples, encode_samples, put_ivarint, put_str, put_uvarint};
use crate::error::{Error, Invalid, Result, check_crc};
use crate::format::{FormatVersion, SEGMENT_MAGIC, TEMP_EXT, segment_file_name};
use crate::index::SeriesKey;

const HEADER_LEN: u64 = 12;
const TRAILER_LEN: u64 = 28;

/// One series to write: its key and samples sorted by ts, unique ts, non-empty.
#[derive(Debug)]
pub(crate) struct SeriesRecord {
    pub(crate) key: Arc<SeriesKey>,
    pub(crate) samples: Vec<(i64, u64)>,
}

/// Where a series block lives and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockMeta {
    /// Position of the block in the file (0-based), for error messages.
    pub(crate) ordinal: u32,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) count: u64,
    pub(crate) offset: u64,
    /// Block length including its trailing CRC.
    pub(crate) len: u64,
}

/// An open segment file.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    file: File,
}

/// The result of writing a segment.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) path: PathBuf,
    pub(crate) series: usize,
    pub(crate) samples: u64,
}

/// Writes segment `id` into `dir` durably: temp file, fsync, rename, fsync dir.
pub(crate) fn write_segment(
    dir: &Path,
    id: u64,
    records: impl Iterator<Item = Result<SeriesRecord>>,
) -> Result<Written> {
    let path = dir.join(segment_file_name(id));
    let tmp = path.with_extension(format!("seg.{TEMP_EXT}"));
    let result = write_to(&tmp, records);
    let (series, samples) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let io = |source| Error::WriteSegment { path: path.clone(), source };
    std::fs::rename(&tmp, &path).map_err(io)?;
    sync_dir(dir).map_err(io)?;
    Ok(Written { path, series, samples })
}

/// Fsyncs a directory so renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_to(tmp: &Path, records: impl Iterator<Item = Result<SeriesRecord>>) -> Result<(usize, u64)> {
    let io = |source| Error::WriteSegment { path: tmp.to_path_buf(), source };
    let file = File::create(tmp).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&header_bytes()).map_err(io)?;
    let mut index = IndexBuilder::default();
    let mut offset = HEADER_LEN;
    let mut block = Vec::new();
    for record in records {
        let record = record?;
        block.clear();
        encode_samples(&record.samples, &mut block);
        block.extend_from_slice(&crc32fast::hash(&block).to_le_bytes());
        w.write_all(&block).map_err(io)?;
        index.push(&record, offset, block.len() as u64);
        offset += block.len() as u64;
    }
    let (series, samples) = (index.entries, index.samples);
    let index_bytes = index.finish();
    w.write_all(&index_bytes).map_err(io)?;
    w.write_all(&trailer_bytes(offset, &index_bytes)).map_err(io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok((series, samples))
}

fn header_bytes() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4] = FormatVersion::CURRENT.as_u8();
    let crc = crc32fast::hash(&h[..8]);
    h[8..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn trailer_bytes(index_offset: u64, index: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(TRAILER_LEN as usize);
    t.extend_from_slice(&index_offset.to_le_bytes());
    t.extend_from_slice(&(index.len() as u64).to_le_bytes());
    t.extend_from_slice(&crc32fast::hash(index).to_le_bytes());
    let crc = crc32fast::hash(&t);
    t.extend_from_slice(&crc.to_le_bytes());
    t.extend_from_slice(&SEGMENT_MAGIC);
    t
}

/// Accumulates the index section: a tenant table, then one entry per block.
#[derive(Debug, Default)]
struct IndexBuilder {
    tenants: Vec<TenantId>,
    body: Vec<u8>,
    entries: usize,
    samples: u64,
}

impl IndexBuilder {
    fn push(&mut self, r: &SeriesRecord, offset: u64, len: u64) {
        if self.tenants.last() != Some(&r.key.tenant) {
            self.tenants.push(r.key.tenant.clone());
        }
        let b = &mut self.body;
        put_uvarint(b, (self.tenants.len() - 1) as u64);
        b.extend_from_slice(&r.key.id.0.to_le_bytes());
        put_uvarint(b, r.key.labels.len() as u64);
        for l in r.key.labels.iter() {
            put_str(b, &l.name);
            put_str(b, &l.value);
        }
        let (min, max) = (r.samples.first().map_or(0, |s| s.0), r.samples.last().map_or(0, |s| s.0));
        put_ivarint(b, min);
        put_ivarint(b, max);
        put_uvarint(b, r.samples.len() as u64);
        put_uvarint(b, offset);
        put_uvarint(b, len);
        self.entries += 1;
        self.samples += r.samples.len() as u64;
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        put_uvarint(&mut out, self.tenants.len() as u64);
        for t in &self.tenants {
            put_str(&mut out, t.as_str());
        }
        put_uvarint(&mut out, self.entries as u64);
        out.extend_from_slice(&self.body);
        out
    }
}

/// Opens the segment at `path`, verifying header, trailer and index checksums,
/// and returns its index (one entry per block, in file order).
pub(crate) fn open_segment(path: &Path) -> Result<(SegmentFile, Vec<(SeriesKey, BlockMeta)>)> {
    let io = |source| Error::OpenSegment { path: path.to_path_buf(), source };
    let file = match File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingSegment { path: path.to_path_buf() });
        }
        other => other.map_err(io)?,
    };
    let size = file.metadata().map_err(io)?.len();
    let entries = read_index(&file, size).map_err(|e| match e {
        ReadIndexError::Io(source) => io(source),
        ReadIndexError::Invalid(inv) => inv.at(path.to_path_buf()),
    })?;
    Ok((SegmentFile { path: path.to_path_buf(), size, file }, entries))
}

#[derive(Debug)]
enum ReadIndexError {
    Io(std::io::Error),
    Invalid(Invalid),
}

impl From<Invalid> for ReadIndexError {
    fn from(e: Invalid) -> Self {
        ReadIndexError::Invalid(e)
    }
}

impl From<&'static str> for ReadIndexError {
    fn from(e: &'static str) -> Self {
        ReadIndexError::Invalid(e.into())
    }
}

fn read_at(file: &File, offset: u64, len: u64) -> Result<Vec<u8>, ReadIndexError> {
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| "length exceeds address space")?];
    file.read_exact_at(&mut buf, offset).map_err(ReadIndexError::Io)?;
    Ok(buf)
}

fn read_index(file: &File, size: u64) -> Result<Vec<(SeriesKey, BlockMeta)>, ReadIndexError> {
    if size < HEADER_LEN + TRAILER_LEN {
        return Err(Invalid::Corrupt(format!("file is {size} bytes, shorter than header + trailer")).into());
    }
    check_header(&read_at(file, 0, HEADER_LEN)?)?;
    let trailer = read_at(file, size - TRAILER_LEN, TRAILER_LEN)?;
    let (index_offset, index_len, index_crc) = parse_trailer(&trailer)?;
    if index_offset < HEADER_LEN || index_offset.checked_add(index_len) != Some(size - TRAILER_LEN) {
        return Err("index position does not match the file size".into());
    }
    let index = read_at(file, index_offset, index_len)?;
    check_crc("index", &index, index_crc)?;
    Ok(parse_index(&index, index_offset)?)
}

fn check_header(h: &[u8]) -> Result<(), Invalid> {
    let mut c = Cursor::new(h);
    if c.bytes(4)? != SEGMENT_MAGIC {
        return Err("bad header magic (not a segment file)".into());
    }
    let version = *c.bytes(4)?.first().ok_or("truncated header")?;
    let stored = u32::from_le_bytes(c.bytes(4)?.try_into().map_err(|_| "truncated header")?);
    check_crc("header", h.get(..8).ok_or("truncated header")?, stored)?;
    FormatVersion::try_from(version).map_err(|e| Invalid::Version(e.found))?;
    Ok(())
}

fn parse_trailer(t: &[u8]) -> Result<(u64, u64, u32), Invalid> {
    let mut c = Cursor::new(t);
    let index_offset = c.u64_le()?;
    let index_len = c.u64_le()?;
    let index_crc = u32_le(&mut c)?;
    let trailer_crc = u32_le(&mut c)?;
    if c.bytes(4)? != SEGMENT_MAGIC {
        return Err("bad trailing magic (torn or truncated segment)".into());
    }
    check_crc("trailer", t.get(..20).ok_or("truncated trailer")?, trailer_crc)?;
    Ok((index_offset, index_len, index_crc))
}

fn u32_le(c: &mut Cursor<'_>) -> Result<u32, Invalid> {
    Ok(u32::from_le_bytes(c.bytes(4)?.try_into().map_err(|_| "truncated u32")?))
}

fn parse_index(buf: &[u8], blocks_end: u64) -> Result<Vec<(SeriesKey, BlockMeta)>, Invalid> {
    let mut c = Cursor::new(buf);
    let n_tenants = c.len(2)?;
    let mut tenants = Vec::with_capacity(n_tenants);
    for _ in 0..n_tenants {
        tenants.push(TenantId::new(c.str()?).map_err(|e| Invalid::Corrupt(format!("index: {e}")))?);
    }
    let n = c.len(14)?;
    let mut out: Vec<(SeriesKey, BlockMeta)> = Vec::with_capacity(n);
    let mut expected_offset = HEADER_LEN;
    for ordinal in 0..n {
        let (key, meta) = parse_entry(&mut c, &tenants, ordinal as u32)?;
        if meta.offset != expected_offset || meta.len < 5 || meta.count == 0 || meta.min_ts > meta.max_ts {
            return Err(Invalid::Corrupt(format!("index entry {ordinal}: invalid block position or range")));
        }
        if out.last().is_some_and(|(prev, _)| *prev >= key) {
            return Err(Invalid::Corrupt(format!("index entry {ordinal}: not sorted by (tenant, series id, labels)")));
        }
        expected_offset = meta.offset.checked_add(meta.len).ok_or("block end overflows")?;
        out.push((key, meta));
    }
    if expected_offset != blocks_end || !c.is_empty() {
        return Err("index does not cover the blocks exactly".into());
    }
    Ok(out)
}

fn parse_entry(c: &mut Cursor<'_>, tenants: &[TenantId], ordinal: u32) -> Result<(SeriesKey, BlockMeta), Invalid> {
    let tenant = tenants.get(c.uvarint()? as usize).ok_or("index: tenant out of range")?.clone();
    let id = SeriesId(c.u64_le()?);
    let n_labels = c.len(2)?;
    let mut labels = Vec::with_capacity(n_labels);
    for _ in 0..n_labels {
        labels.push(Label { name: c.str()?, value: c.str()? });
    }
    if !labels.windows(2).all(|w| w.first().map(|l| &l.name) < w.get(1).map(|l| &l.name))
        || labels.iter().any(|l| l.value.is_empty())
    {
        return Err("index: labels not canonical".into());
    }
    let (min_ts, max_ts) = (c.ivarint()?, c.ivarint()?);
    let (count, offset, len) = (c.uvarint()?, c.uvarint()?, c.uvarint()?);
    let key = SeriesKey { tenant, id, labels: Labels::from_sorted(labels) };
    Ok((key, BlockMeta { ordinal, min_ts, max_ts, count, offset, len }))
}

impl SegmentFile {
    /// Reads and verifies one sample block.
    pub(crate) fn read_block(&self, meta: &BlockMeta) -> Result<Vec<(i64, u64)>, ReadError> {
        let location = || format!("{} block {} at offset {}", self.path.display(), meta.ordinal, meta.offset);
        let corrupted = |detail: String| ReadError::Corrupted { location: location(), detail };
        let len = usize::try_from(meta.len).map_err(|_| corrupted("block length exceeds address space".into()))?;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, meta.offset)
            .map_err(|source| ReadError::Io { location: location(), source })?;
        let (body, crc) = buf.split_at(len.saturating_sub(4));
        let stored = u32::from_le_bytes(crc.try_into().map_err(|_| corrupted("block shorter than its CRC".into()))?);
        let actual = crc32fast::hash(body);
        if stored != actual {
            return Err(corrupted(format!("block checksum mismatch: stored {stored:#010x}, computed {actual:#010x}")));
        }
        let samples = decode_samples(body).map_err(|d| corrupted(d.to_owned()))?;
        let (first, last) = (samples.first().map(|s| s.0), samples.last().map(|s| s.0));
        let sorted = samples.windows(2).all(|w| w.first().map(|s| s.0) < w.get(1).map(|s| s.0));
        if !sorted || samples.len() as u64 != meta.count || first != Some(meta.min_ts) || last != Some(meta.max_ts) {
            return Err(corrupted("block contents disagree with the index".into()));
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests;
