//! Segment files (format v6; v2–v5 still read): one tenant, one time bucket; immutable series
//! blocks plus an index footer with a deduplicated symbol table, the series
//! table and croaring postings. A series block is a V4 sample block or
//! (V6, entry flag `STREAM`) a memtable chunk's stream copied by a flush.
//!
//! ```text
//! offset            size  field
//! 0                 4     magic "SHSG"
//! 4                 1     format version (6; 2 to 5 still read)
//! 5                 3     reserved, zero
//! 8                 4     u32 LE CRC32 of bytes 0..8 (header checksum)
//! 12                ..    series blocks, contiguous, sorted by (device_hash, series id, labels):
//!                           sample block (see `codec`), then u32 LE CRC32 of that sample block
//! index_offset      ..    index section: tenant, bucket, symbols, series table, postings
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

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use croaring::{Bitmap, Portable};
use strata_schemas::{METRIC_NAME, ReadError, SeriesId, Str, TenantId, series_id_of};

use crate::codec::{Cursor, decode_block, decode_stream_block, encode_samples, put_ivarint, put_str, put_uvarint};
use crate::error::{Error, Invalid, Result, check_crc};
use crate::format::{FormatVersion, SEGMENT_MAGIC, TEMP_EXT, segment_file_name};
use crate::index::IdMap;
use crate::memtable::{Chunk, StreamView};

const HEADER_LEN: u64 = 12;
const TRAILER_LEN: u64 = 28;

/// V4 series entry flag: the device hash equals the previous entry's (not written).
const ENTRY_SAME_DEVICE: u8 = 1;
/// V4 series entry flag: the series id is written (it differs from
/// `schemas::series_id` of the labels, which readers derive otherwise).
const ENTRY_EXPLICIT_ID: u8 = 2;
/// V6 series entry flag: the block is a stream block (a memtable chunk's
/// stream copied by a flush, `codec::decode_stream_block`), not a V4 block.
const ENTRY_STREAM: u8 = 4;

/// Label pairs as shared strings.
pub(crate) type LabelArcs = Vec<(Str, Str)>;

/// One series to write: samples sorted by ts, unique ts, non-empty.
#[derive(Debug)]
pub(crate) struct SeriesRecord {
    pub(crate) id: SeriesId,
    pub(crate) device_hash: u64,
    pub(crate) labels: LabelArcs,
    pub(crate) samples: Vec<(i64, u64)>,
}

/// What one series block is written from.
#[derive(Debug)]
pub(crate) enum BlockData<'a> {
    /// Samples sorted by ts, unique ts: encoded as a V4 block (the smallest
    /// of its value encodings).
    Samples(Vec<(i64, u64)>),
    /// A memtable chunk's in-order stream, copied as a stream block.
    Stream(StreamView<'a>),
    /// A chunk made for the flush (out-of-order samples merged), written
    /// as a stream block.
    Merged(Box<Chunk>),
}

/// The labels of a series to write.
#[derive(Debug)]
pub(crate) enum RecordLabels<'a> {
    /// As shared strings.
    Arcs(LabelArcs),
    /// As `(name, value)` ids into a symbol table (the store's): a flush of
    /// a million series then hashes each distinct string once, not every
    /// label of every series.
    Symbols(Box<[(u32, u32)]>, &'a [Str]),
}

/// One series to write, from samples or from a memtable chunk's stream.
#[derive(Debug)]
pub(crate) struct BlockRecord<'a> {
    pub(crate) id: SeriesId,
    pub(crate) device_hash: u64,
    pub(crate) labels: RecordLabels<'a>,
    pub(crate) data: BlockData<'a>,
}

impl From<SeriesRecord> for BlockRecord<'static> {
    fn from(r: SeriesRecord) -> Self {
        let labels = RecordLabels::Arcs(r.labels);
        BlockRecord { id: r.id, device_hash: r.device_hash, labels, data: BlockData::Samples(r.samples) }
    }
}

/// What a segment holds: one tenant's samples of one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentScope {
    pub(crate) tenant: TenantId,
    /// Bucket start (ms, inclusive).
    pub(crate) bucket: i64,
    /// Bucket length (ms).
    pub(crate) bucket_len: i64,
}

/// One series of an open segment.
#[derive(Debug)]
pub(crate) struct SegmentSeries {
    pub(crate) id: SeriesId,
    pub(crate) device_hash: u64,
    pub(crate) labels: LabelArcs,
    pub(crate) meta: BlockMeta,
}

/// Where a series block lives and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockMeta {
    /// Position of the block in the file (0-based), for error messages.
    pub(crate) ordinal: u32,
    pub(crate) count: u32,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) offset: u64,
    /// Block length including its trailing CRC.
    pub(crate) len: u64,
    /// A stream block (V6, entry flag `STREAM`) rather than a V2–V4 block.
    pub(crate) stream: bool,
}

/// An open segment file.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) scope: SegmentScope,
    /// Layout of its sample blocks.
    pub(crate) version: FormatVersion,
    file: File,
}

/// The result of writing a segment.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) path: PathBuf,
    pub(crate) series: usize,
    pub(crate) samples: u64,
    /// The segment, open for reading (its index is not parsed again).
    pub(crate) file: SegmentFile,
    /// One entry per written series block, in file order (= the order of
    /// the non-empty records given).
    pub(crate) blocks: Vec<BlockMeta>,
}

/// Writes segment `id` into `dir` durably: temp file, fsync, rename, fsync dir.
/// `records` must be sorted by (device_hash, series id, labels). Every
/// block is encoded in the V4 layout.
pub(crate) fn write_segment(
    dir: &Path,
    id: u64,
    scope: &SegmentScope,
    records: impl Iterator<Item = Result<SeriesRecord>>,
) -> Result<Written> {
    write_segment_blocks(dir, id, scope, records.map(|r| r.map(BlockRecord::from)))
}

/// [`write_segment`] from records whose blocks may be copied memtable
/// streams (a flush).
pub(crate) fn write_segment_blocks<'a>(
    dir: &Path,
    id: u64,
    scope: &SegmentScope,
    records: impl Iterator<Item = Result<BlockRecord<'a>>>,
) -> Result<Written> {
    let hint = records.size_hint().0;
    write_segment_with(dir, id, scope, hint, |w| {
        for record in records {
            w.push(record?)?;
        }
        Ok(())
    })
}

/// Writes segment `id` into `dir` durably from what `fill` pushes into its
/// [`SegmentWriter`] (records sorted by (device_hash, series id, labels)):
/// temp file, blocks, index, fsync, rename, fsync dir. `hint`: the number
/// of series expected. Every file operation runs on the calling thread (the
/// crash points of `failpoint` are per thread). A failure before the rename
/// deletes the temporary file.
pub(crate) fn write_segment_with(
    dir: &Path,
    id: u64,
    scope: &SegmentScope,
    hint: usize,
    fill: impl FnOnce(&mut SegmentWriter) -> Result<()>,
) -> Result<Written> {
    let path = dir.join(segment_file_name(id));
    let tmp = path.with_extension(format!("seg.{TEMP_EXT}"));
    let result = SegmentWriter::create(&tmp, hint).and_then(|mut w| {
        fill(&mut w)?;
        w.finish(scope)
    });
    let (series, samples, blocks) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    crate::failpoint::hit("segment.before_rename")
        .map_err(|source| Error::WriteSegment { path: tmp.clone(), source })?;
    let io = |source| Error::WriteSegment { path: path.clone(), source };
    std::fs::rename(&tmp, &path).map_err(io)?;
    sync_dir(dir).map_err(io)?;
    let open_io = |source| Error::OpenSegment { path: path.clone(), source };
    let f = File::open(&path).map_err(open_io)?;
    let size = f.metadata().map_err(open_io)?.len();
    let file = SegmentFile { path: path.clone(), size, scope: scope.clone(), version: FormatVersion::CURRENT, file: f };
    Ok(Written { path, series, samples, file, blocks })
}

/// Fsyncs a directory so renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How many bytes of a segment may be written before they are synced
/// ([`SegmentWriter`]'s write-behind).
///
/// One `fsync` of a whole segment at its end puts tens to hundreds of MiB in
/// one journal commit of the file system (ext4, `data=ordered`), and every
/// `fdatasync` of the ingest log issued meanwhile waits for that commit: a
/// write acknowledgement waited ~400 ms behind a compaction's 200 MB output
/// at 80 % load (2026-12-05, session 16). Synced as it goes, each commit
/// carries at most this much of the segment, and the log's syncs wait for
/// that at most (measured on this host: a 16 MiB file synced once held a
/// concurrent 60 kB append's `fdatasync` up to 25–32 ms, synced every MiB up
/// to 3–4 ms, the file written in the same time).
pub(crate) const SYNC_EVERY: u64 = 1 << 20;

/// A segment's temporary file being written: the header, then series blocks
/// in file order (each encoded here with [`SegmentWriter::push`], or
/// beforehand on another thread into [`EncodedBlocks`] and appended with
/// [`SegmentWriter::append`]; the bytes are the same either way), then
/// [`SegmentWriter::finish`] writes the index and trailer and fsyncs.
/// Blocks are synced as they are written, every [`SYNC_EVERY`] bytes.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    tmp: PathBuf,
    w: BufWriter<File>,
    index: IndexBuilder,
    /// Where the next block starts.
    offset: u64,
    /// The block being encoded by [`SegmentWriter::push`] (reused).
    block: Vec<u8>,
    /// The bytes before this offset are synced (write-behind, [`SYNC_EVERY`]).
    synced: u64,
}

impl SegmentWriter {
    fn create(tmp: &Path, hint: usize) -> Result<Self> {
        let io = |source| Error::WriteSegment { path: tmp.to_path_buf(), source };
        let file = File::create(tmp).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(&header_bytes()).map_err(io)?;
        let index = IndexBuilder { entries: Vec::with_capacity(hint), ..IndexBuilder::default() };
        Ok(SegmentWriter { tmp: tmp.to_path_buf(), w, index, offset: HEADER_LEN, block: Vec::new(), synced: 0 })
    }

    /// Syncs what was written once [`SYNC_EVERY`] bytes are unsynced.
    fn write_behind(&mut self) -> Result<()> {
        if self.offset - self.synced < SYNC_EVERY {
            return Ok(());
        }
        let io = |source| Error::WriteSegment { path: self.tmp.clone(), source };
        self.w.flush().map_err(io)?;
        self.w.get_ref().sync_data().map_err(io)?;
        self.synced = self.offset;
        Ok(())
    }

    /// Encodes and writes one record's block (nothing for an empty one).
    pub(crate) fn push(&mut self, record: BlockRecord<'_>) -> Result<()> {
        self.block.clear();
        let Some(span) = encode_block(&record.data, &mut self.block) else { return Ok(()) };
        self.block.extend_from_slice(&crc32fast::hash(&self.block).to_le_bytes());
        let tmp = &self.tmp;
        self.w.write_all(&self.block).map_err(|source| Error::WriteSegment { path: tmp.clone(), source })?;
        let len = self.block.len() as u64;
        self.index.push(record.id, record.device_hash, record.labels, span, self.offset, len);
        self.offset += len;
        self.write_behind()
    }

    /// Writes records whose blocks were encoded beforehand, in their order.
    pub(crate) fn append(&mut self, encoded: EncodedBlocks<'_>) -> Result<()> {
        let tmp = &self.tmp;
        self.w.write_all(&encoded.bytes).map_err(|source| Error::WriteSegment { path: tmp.clone(), source })?;
        for (head, span, len) in encoded.blocks {
            self.index.push(head.0, head.1, head.2, span, self.offset, len);
            self.offset += len;
        }
        self.write_behind()
    }

    /// Writes the index and the trailer and fsyncs the file; returns the
    /// series and samples written and where each block is.
    fn finish(self, scope: &SegmentScope) -> Result<(usize, u64, Vec<BlockMeta>)> {
        let SegmentWriter { tmp, mut w, index, offset, .. } = self;
        let io = |source| Error::WriteSegment { path: tmp.clone(), source };
        let (series, samples) = (index.entries.len(), index.samples);
        let blocks = index.block_metas();
        let (index_len, index_crc) = index.finish(scope, &mut w).map_err(&io)?;
        w.write_all(&trailer_bytes(offset, index_len, index_crc)).map_err(&io)?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        crate::failpoint::hit("segment.before_fsync").map_err(&io)?;
        file.sync_all().map_err(&io)?;
        Ok((series, samples, blocks))
    }
}

/// Records with their blocks encoded (CRCs included), for a
/// [`SegmentWriter`] to append: a flush encodes slices of its series on
/// several threads.
#[derive(Debug, Default)]
pub(crate) struct EncodedBlocks<'a> {
    bytes: Vec<u8>,
    /// Per non-empty record in order: its id, device hash and labels, what
    /// its block covers, and the block's length with its CRC.
    blocks: Vec<((SeriesId, u64, RecordLabels<'a>), Span, u64)>,
}

impl<'a> EncodedBlocks<'a> {
    /// Encodes the block of the next record (nothing for an empty one, as
    /// [`SegmentWriter::push`]).
    pub(crate) fn push(&mut self, record: BlockRecord<'a>) {
        let start = self.bytes.len();
        let Some(span) = encode_block(&record.data, &mut self.bytes) else {
            self.bytes.truncate(start);
            return;
        };
        let crc = self.bytes.get(start..).map_or(0, crc32fast::hash);
        self.bytes.extend_from_slice(&crc.to_le_bytes());
        let len = (self.bytes.len() - start) as u64;
        self.blocks.push(((record.id, record.device_hash, record.labels), span, len));
    }
}

fn header_bytes() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4] = FormatVersion::CURRENT.as_u8();
    let crc = crc32fast::hash(&h[..8]);
    h[8..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn trailer_bytes(index_offset: u64, index_len: u64, index_crc: u32) -> Vec<u8> {
    let mut t = Vec::with_capacity(TRAILER_LEN as usize);
    t.extend_from_slice(&index_offset.to_le_bytes());
    t.extend_from_slice(&index_len.to_le_bytes());
    t.extend_from_slice(&index_crc.to_le_bytes());
    let crc = crc32fast::hash(&t);
    t.extend_from_slice(&crc.to_le_bytes());
    t.extend_from_slice(&SEGMENT_MAGIC);
    t
}

/// Encodes a series block (without its CRC) into `block`: samples as a V4
/// block, a memtable stream as a stream block. `None`: nothing to write (no
/// samples, an empty chunk).
fn encode_block(data: &BlockData<'_>, block: &mut Vec<u8>) -> Option<Span> {
    match data {
        BlockData::Samples(samples) => {
            let (Some(first), Some(last)) = (samples.first(), samples.last()) else { return None };
            encode_samples(samples, block);
            Some(Span { min_ts: first.0, max_ts: last.0, count: samples.len() as u64, stream: false })
        }
        BlockData::Stream(v) => Some(stream_block(v, block)),
        BlockData::Merged(c) => c.stream_block().map(|v| stream_block(&v, block)),
    }
}

/// Writes `v` as a stream block (without its CRC) into `block`.
fn stream_block(v: &StreamView<'_>, block: &mut Vec<u8>) -> Span {
    block.push(v.mode);
    block.extend_from_slice(v.bits);
    Span { min_ts: v.min_ts, max_ts: v.max_ts, count: u64::from(v.count), stream: true }
}

/// What a written block covers.
#[derive(Debug, Clone, Copy)]
struct Span {
    min_ts: i64,
    max_ts: i64,
    count: u64,
    stream: bool,
}

/// One series-table entry before symbols are numbered.
#[derive(Debug)]
struct PendingEntry {
    id: SeriesId,
    device_hash: u64,
    /// `(name, value)` as ids into [`IndexBuilder::local`] (8 bytes a label
    /// instead of two shared strings: a flush of a million series keeps
    /// every entry until the index is written).
    labels: Box<[(u32, u32)]>,
    min_ts: i64,
    max_ts: i64,
    count: u64,
    offset: u64,
    len: u64,
    stream: bool,
}

/// Accumulates the index section; symbols are numbered in sorted order at the end.
#[derive(Debug, Default)]
struct IndexBuilder {
    entries: Vec<PendingEntry>,
    /// Distinct strings in first-seen order, and their local ids.
    strings: Vec<Str>,
    local: HashMap<Str, u32>,
    /// Local id of each symbol id of [`RecordLabels::Symbols`] seen so far
    /// (`u32::MAX`: not yet), so each distinct symbol is hashed once.
    by_symbol: Vec<u32>,
    samples: u64,
}

impl IndexBuilder {
    fn local_id(&mut self, s: &Str) -> u32 {
        if let Some(&id) = self.local.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.clone());
        self.local.insert(s.clone(), id);
        id
    }

    /// The local id of symbol `sym` of `symbols`.
    fn symbol_id(&mut self, sym: u32, symbols: &[Str]) -> u32 {
        let i = sym as usize;
        if let Some(&id) = self.by_symbol.get(i).filter(|&&id| id != u32::MAX) {
            return id;
        }
        static EMPTY: std::sync::LazyLock<Str> = std::sync::LazyLock::new(Str::default);
        let id = self.local_id(symbols.get(i).unwrap_or(&EMPTY));
        if self.by_symbol.len() <= i {
            self.by_symbol.resize(i + 1, u32::MAX);
        }
        if let Some(slot) = self.by_symbol.get_mut(i) {
            *slot = id;
        }
        id
    }

    fn push(&mut self, id: SeriesId, device_hash: u64, labels: RecordLabels<'_>, span: Span, offset: u64, len: u64) {
        let labels: Box<[(u32, u32)]> = match labels {
            RecordLabels::Arcs(arcs) => arcs.iter().map(|(n, v)| (self.local_id(n), self.local_id(v))).collect(),
            RecordLabels::Symbols(mut ids, symbols) => {
                for pair in ids.iter_mut() {
                    *pair = (self.symbol_id(pair.0, symbols), self.symbol_id(pair.1, symbols));
                }
                ids
            }
        };
        self.samples += span.count;
        let Span { min_ts, max_ts, count, stream } = span;
        self.entries.push(PendingEntry { id, device_hash, labels, min_ts, max_ts, count, offset, len, stream });
    }

    /// Where each entry's block is, in file order.
    fn block_metas(&self) -> Vec<BlockMeta> {
        self.entries
            .iter()
            .enumerate()
            .map(|(ordinal, e)| BlockMeta {
                ordinal: ordinal as u32,
                count: e.count as u32,
                min_ts: e.min_ts,
                max_ts: e.max_ts,
                offset: e.offset,
                len: e.len,
                stream: e.stream,
            })
            .collect()
    }

    /// Writes the index section to `w` in pieces (a million-series index is
    /// tens of MB; it is never held whole); returns its length and CRC.
    /// In order: the scope (tenant, bucket, bucket length), the symbol
    /// table, the series table, the postings (`hot-store/FORMAT.md`).
    fn finish(self, scope: &SegmentScope, w: &mut impl Write) -> std::io::Result<(u64, u32)> {
        let mut section = IndexSection::new(w);
        put_str(&mut section.out, scope.tenant.as_str());
        put_ivarint(&mut section.out, scope.bucket);
        put_uvarint(&mut section.out, scope.bucket_len as u64);
        let sorted_id = self.write_symbols(&mut section)?;
        let postings = self.write_series_table(scope, &sorted_id, &mut section)?;
        write_postings(postings, &mut section)?;
        section.finish()
    }

    /// The symbol table: every distinct string once, numbered in sorted
    /// order. Returns the sorted id of each local id.
    fn write_symbols(&self, section: &mut IndexSection<'_, impl Write>) -> std::io::Result<Vec<u32>> {
        put_uvarint(&mut section.out, self.strings.len() as u64);
        let mut order: Vec<(&Str, u32)> = self.strings.iter().zip(0u32..).collect();
        order.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut sorted_id = vec![0u32; self.strings.len()];
        for (i, (st, local)) in order.iter().enumerate() {
            put_str(&mut section.out, st);
            if let Some(slot) = sorted_id.get_mut(*local as usize) {
                *slot = i as u32;
            }
            section.spill()?;
        }
        Ok(sorted_id)
    }

    /// The series table, one entry per block in file order, and the
    /// postings of its labels, keyed by `(name << 32 | value)` sorted
    /// symbol ids: collected unsorted and sorted once by [`write_postings`]
    /// (a flush of a million series posts millions of labels: a tree
    /// lookup each cost more than the rest of the index).
    fn write_series_table(
        &self,
        scope: &SegmentScope,
        sorted_id: &[u32],
        section: &mut IndexSection<'_, impl Write>,
    ) -> std::io::Result<IdMap<u64, Vec<u32>>> {
        let sym_of = |local: u32| sorted_id.get(local as usize).copied().unwrap_or(0);
        let mut postings: IdMap<u64, Vec<u32>> = IdMap::default();
        put_uvarint(&mut section.out, self.entries.len() as u64);
        let mut prev: Option<&PendingEntry> = None;
        for (ordinal, e) in self.entries.iter().enumerate() {
            self.write_entry(scope, e, prev, sorted_id, &mut section.out);
            for &(n, v) in e.labels.iter() {
                postings.entry((u64::from(sym_of(n)) << 32) | u64::from(sym_of(v))).or_default().push(ordinal as u32);
            }
            section.spill()?;
            prev = Some(e);
        }
        Ok(postings)
    }

    /// One series-table entry: flags, the device hash (unless the previous
    /// entry's), the series id (unless derived from the labels), the labels
    /// (those equal to the previous entry's at the same position left out,
    /// by mask), the time span, the sample count and the block length.
    fn write_entry(
        &self,
        scope: &SegmentScope,
        e: &PendingEntry,
        prev: Option<&PendingEntry>,
        sorted_id: &[u32],
        out: &mut Vec<u8>,
    ) {
        let text = |local: u32| self.strings.get(local as usize).map_or("", |s| s.as_str());
        let metric = e.labels.iter().find(|&&(n, _)| text(n) == METRIC_NAME).map_or("", |&(_, v)| text(v));
        let derived = series_id_of(&scope.tenant, &[metric], e.labels.iter().map(|&(n, v)| (text(n), text(v))));
        let same_device = prev.is_some_and(|p| p.device_hash == e.device_hash);
        out.push(entry_flags(same_device, derived != e.id, e.stream));
        if !same_device {
            out.extend_from_slice(&e.device_hash.to_le_bytes());
        }
        if derived != e.id {
            out.extend_from_slice(&e.id.0.to_le_bytes());
        }
        put_uvarint(out, e.labels.len() as u64);
        let mask = same_labels_mask(e, prev);
        put_uvarint(out, mask);
        let sym_of = |local: u32| sorted_id.get(local as usize).copied().unwrap_or(0);
        for (i, &(n, v)) in e.labels.iter().enumerate() {
            if i >= 64 || mask & (1u64 << i) == 0 {
                put_uvarint(out, u64::from(sym_of(n)));
                put_uvarint(out, u64::from(sym_of(v)));
            }
        }
        put_uvarint(out, e.min_ts.wrapping_sub(scope.bucket) as u64);
        put_uvarint(out, e.max_ts.wrapping_sub(e.min_ts) as u64);
        put_uvarint(out, e.count);
        put_uvarint(out, e.len);
    }
}

/// The flags byte of a series-table entry.
fn entry_flags(same_device: bool, explicit_id: bool, stream: bool) -> u8 {
    let mut flags = 0u8;
    if same_device {
        flags |= ENTRY_SAME_DEVICE;
    }
    if explicit_id {
        flags |= ENTRY_EXPLICIT_ID;
    }
    if stream {
        flags |= ENTRY_STREAM;
    }
    flags
}

/// Bit `i` set: label `i` of `e` equals label `i` of the previous entry
/// (only when both have the same number of labels, at most 64).
fn same_labels_mask(e: &PendingEntry, prev: Option<&PendingEntry>) -> u64 {
    match prev {
        Some(p) if p.labels.len() == e.labels.len() && e.labels.len() <= 64 => e
            .labels
            .iter()
            .zip(p.labels.iter())
            .enumerate()
            .fold(0u64, |m, (i, (a, b))| if a == b { m | 1u64 << i } else { m }),
        _ => 0,
    }
}

/// The postings: per `(name, value)` pair of sorted symbol ids, in that
/// order, a portable croaring bitmap of the ordinals of the entries with it.
fn write_postings(postings: IdMap<u64, Vec<u32>>, section: &mut IndexSection<'_, impl Write>) -> std::io::Result<()> {
    put_uvarint(&mut section.out, postings.len() as u64);
    let mut postings: Vec<(u64, Vec<u32>)> = postings.into_iter().collect();
    postings.sort_unstable_by_key(|p| p.0);
    for (key, ordinals) in postings {
        let (n, v) = ((key >> 32) as u32, key as u32);
        let mut b = Bitmap::of(&ordinals);
        b.run_optimize();
        let bytes = b.serialize::<Portable>();
        put_uvarint(&mut section.out, u64::from(n));
        put_uvarint(&mut section.out, u64::from(v));
        put_uvarint(&mut section.out, bytes.len() as u64);
        section.out.extend_from_slice(&bytes);
        section.spill()?;
    }
    Ok(())
}

/// The index section on its way to the file: encoded into `out`, handed to
/// the writer a piece of about [`IndexSection::PIECE`] bytes at a time, and
/// summed (length, CRC32) as it goes.
struct IndexSection<'w, W: Write> {
    w: &'w mut W,
    /// Encoded bytes not yet handed to `w`.
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<'w, W: Write> IndexSection<'w, W> {
    const PIECE: usize = 1 << 20;

    fn new(w: &'w mut W) -> Self {
        Self { w, out: Vec::with_capacity(Self::PIECE + 4096), crc: crc32fast::Hasher::new(), len: 0 }
    }

    /// Hands `out` to the writer once it holds a piece.
    fn spill(&mut self) -> std::io::Result<()> {
        self.spill_at(Self::PIECE)
    }

    fn spill_at(&mut self, at_least: usize) -> std::io::Result<()> {
        if self.out.len() >= at_least {
            self.crc.update(&self.out);
            self.len += self.out.len() as u64;
            self.w.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Hands the rest to the writer; the section's length and CRC32.
    fn finish(mut self) -> std::io::Result<(u64, u32)> {
        self.spill_at(0)?;
        Ok((self.len, self.crc.finalize()))
    }
}

/// Opens the segment at `path`, verifying header, trailer and index checksums,
/// and returns its series table (one entry per block, in file order).
pub(crate) fn open_segment(path: &Path) -> Result<(SegmentFile, Vec<SegmentSeries>)> {
    let io = |source| Error::OpenSegment { path: path.to_path_buf(), source };
    let file = match File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingSegment { path: path.to_path_buf() });
        }
        other => other.map_err(io)?,
    };
    let size = file.metadata().map_err(io)?.len();
    let (scope, entries, version) = read_index(&file, size).map_err(|e| match e {
        ReadIndexError::Io(source) => io(source),
        ReadIndexError::Invalid(inv) => inv.at(path.to_path_buf()),
    })?;
    Ok((SegmentFile { path: path.to_path_buf(), size, scope, version, file }, entries))
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

fn read_index(file: &File, size: u64) -> Result<(SegmentScope, Vec<SegmentSeries>, FormatVersion), ReadIndexError> {
    if size < HEADER_LEN + TRAILER_LEN {
        return Err(Invalid::Corrupt(format!("file is {size} bytes, shorter than header + trailer")).into());
    }
    let version = check_header(&read_at(file, 0, HEADER_LEN)?)?;
    let trailer = read_at(file, size - TRAILER_LEN, TRAILER_LEN)?;
    let (index_offset, index_len, index_crc) = parse_trailer(&trailer)?;
    if index_offset < HEADER_LEN || index_offset.checked_add(index_len) != Some(size - TRAILER_LEN) {
        return Err("index position does not match the file size".into());
    }
    let index = read_at(file, index_offset, index_len)?;
    check_crc("index", &index, index_crc)?;
    let (scope, entries) = parse_index(&index, index_offset, version)?;
    Ok((scope, entries, version))
}

fn check_header(h: &[u8]) -> Result<FormatVersion, Invalid> {
    let mut c = Cursor::new(h);
    if c.bytes(4)? != SEGMENT_MAGIC {
        return Err("bad header magic (not a segment file)".into());
    }
    let version = *c.bytes(4)?.first().ok_or("truncated header")?;
    let stored = u32::from_le_bytes(c.bytes(4)?.try_into().map_err(|_| "truncated header")?);
    check_crc("header", h.get(..8).ok_or("truncated header")?, stored)?;
    FormatVersion::try_from(version).map_err(|e| Invalid::Version(e.found))
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

fn parse_index(
    buf: &[u8],
    blocks_end: u64,
    version: FormatVersion,
) -> Result<(SegmentScope, Vec<SegmentSeries>), Invalid> {
    let mut c = Cursor::new(buf);
    let tenant = TenantId::new(c.str()?).map_err(|e| Invalid::Corrupt(format!("index: {e}")))?;
    let (bucket, bucket_len) = (c.ivarint()?, c.uvarint()? as i64);
    if bucket_len <= 0 {
        return Err("index: bucket length is zero".into());
    }
    let scope = SegmentScope { tenant, bucket, bucket_len };
    let n_symbols = c.len(1)?;
    let mut symbols: Vec<Str> = Vec::with_capacity(n_symbols);
    for _ in 0..n_symbols {
        let s = Str::from(c.str()?);
        if symbols.last().is_some_and(|prev| *prev >= s) {
            return Err("index: symbols not strictly sorted".into());
        }
        symbols.push(s);
    }
    let n = c.len(if version >= FormatVersion::V4 { 7 } else { 21 })?;
    let mut out: Vec<SegmentSeries> = Vec::with_capacity(n);
    let mut expected_offset = HEADER_LEN;
    let mut label_refs = 0u64;
    for ordinal in 0..n {
        let s = if version >= FormatVersion::V4 {
            parse_entry_v4(&mut c, version, &symbols, &scope, out.last(), ordinal as u32, expected_offset)?
        } else {
            parse_entry(&mut c, &symbols, ordinal as u32, expected_offset)?
        };
        let m = s.meta;
        if m.len < 5 || m.count == 0 || m.min_ts < bucket || m.max_ts.wrapping_sub(bucket) >= bucket_len {
            return Err(Invalid::Corrupt(format!("index entry {ordinal}: invalid block length or range")));
        }
        if out.last().is_some_and(|p| (p.device_hash, p.id) > (s.device_hash, s.id)) {
            return Err(Invalid::Corrupt(format!("index entry {ordinal}: not sorted by (device_hash, series id)")));
        }
        expected_offset = m.offset.checked_add(m.len).ok_or("block end overflows")?;
        label_refs += s.labels.len() as u64;
        out.push(s);
    }
    if expected_offset != blocks_end {
        return Err("index does not cover the blocks exactly".into());
    }
    check_postings(&mut c, symbols.len(), n, label_refs)?;
    if !c.is_empty() {
        return Err("trailing bytes after the postings".into());
    }
    Ok((scope, out))
}

/// Verifies the postings section: every bitmap decodes, references existing
/// symbols and entries, and the postings cover exactly the series table's labels.
fn check_postings(c: &mut Cursor<'_>, n_symbols: usize, n_entries: usize, label_refs: u64) -> Result<(), Invalid> {
    let n = c.len(3)?;
    let mut total = 0u64;
    for _ in 0..n {
        let (name, value) = (c.uvarint()?, c.uvarint()?);
        let len = c.len(1)?;
        let bytes = c.bytes(len)?;
        if name as usize >= n_symbols || value as usize >= n_symbols {
            return Err("postings: symbol out of range".into());
        }
        let b = Bitmap::try_deserialize::<Portable>(bytes).ok_or("postings: invalid bitmap")?;
        if b.maximum().is_some_and(|m| m as usize >= n_entries) {
            return Err("postings: series ordinal out of range".into());
        }
        total += b.cardinality();
    }
    if total != label_refs {
        return Err("postings do not match the series table".into());
    }
    Ok(())
}

/// A V2/V3 series entry.
fn parse_entry(c: &mut Cursor<'_>, symbols: &[Str], ordinal: u32, offset: u64) -> Result<SegmentSeries, Invalid> {
    let id = SeriesId(c.u64_le()?);
    let device_hash = c.u64_le()?;
    let n_labels = c.len(2)?;
    let mut labels: LabelArcs = Vec::with_capacity(n_labels);
    let sym = |i: u64| symbols.get(i as usize).cloned().ok_or("index: symbol out of range");
    for _ in 0..n_labels {
        let (n, v) = (sym(c.uvarint()?)?, sym(c.uvarint()?)?);
        if v.is_empty() || labels.last().is_some_and(|(prev, _)| *prev >= n) {
            return Err("index: labels not canonical".into());
        }
        labels.push((n, v));
    }
    let min_ts = c.ivarint()?;
    let max_ts = min_ts.wrapping_add(c.uvarint()? as i64);
    let count = u32::try_from(c.uvarint()?).map_err(|_| "index: sample count too large")?;
    let len = c.uvarint()?;
    if max_ts < min_ts {
        return Err("index: max ts before min ts".into());
    }
    let meta = BlockMeta { ordinal, count, min_ts, max_ts, offset, len, stream: false };
    Ok(SegmentSeries { id, device_hash, labels, meta })
}

/// A V4 series entry (see `FORMAT.md`): flags, device hash and series id
/// when not implied, labels as changes to the previous entry's, min ts
/// relative to the bucket.
fn parse_entry_v4(
    c: &mut Cursor<'_>,
    version: FormatVersion,
    symbols: &[Str],
    scope: &SegmentScope,
    prev: Option<&SegmentSeries>,
    ordinal: u32,
    offset: u64,
) -> Result<SegmentSeries, Invalid> {
    let flags = *c.bytes(1)?.first().ok_or("truncated entry flags")?;
    let known = ENTRY_SAME_DEVICE | ENTRY_EXPLICIT_ID | if version >= FormatVersion::V6 { ENTRY_STREAM } else { 0 };
    if flags & !known != 0 {
        return Err("index: unknown series entry flags".into());
    }
    let device_hash = if flags & ENTRY_SAME_DEVICE != 0 {
        prev.ok_or("index: first entry refers to a previous device")?.device_hash
    } else {
        c.u64_le()?
    };
    let explicit_id = if flags & ENTRY_EXPLICIT_ID != 0 { Some(SeriesId(c.u64_le()?)) } else { None };
    let n_labels = c.len(1)?;
    let mask = c.uvarint()?;
    let prev_labels = prev.map_or(&[][..], |p| p.labels.as_slice());
    let fits = prev_labels.len() == n_labels && (n_labels >= 64 || mask >> n_labels == 0) && n_labels <= 64;
    if mask != 0 && !fits {
        return Err("index: label reuse mask does not fit the previous entry".into());
    }
    let mut labels: LabelArcs = Vec::with_capacity(n_labels);
    let sym = |i: u64| symbols.get(i as usize).cloned().ok_or("index: symbol out of range");
    for i in 0..n_labels {
        let (n, v) = if i < 64 && mask & (1u64 << i) != 0 {
            prev_labels.get(i).cloned().ok_or("index: reused label out of range")?
        } else {
            (sym(c.uvarint()?)?, sym(c.uvarint()?)?)
        };
        if v.is_empty() || labels.last().is_some_and(|(prev, _)| *prev >= n) {
            return Err("index: labels not canonical".into());
        }
        labels.push((n, v));
    }
    let min_ts = scope.bucket.wrapping_add(c.uvarint()? as i64);
    let max_ts = min_ts.wrapping_add(c.uvarint()? as i64);
    let count = u32::try_from(c.uvarint()?).map_err(|_| "index: sample count too large")?;
    let len = c.uvarint()?;
    if max_ts < min_ts {
        return Err("index: max ts before min ts".into());
    }
    let id = explicit_id.unwrap_or_else(|| {
        let metric = labels.iter().find(|(n, _)| n.as_str() == METRIC_NAME).map_or("", |(_, v)| v.as_str());
        series_id_of(&scope.tenant, &[metric], labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    });
    let stream = flags & ENTRY_STREAM != 0;
    let meta = BlockMeta { ordinal, count, min_ts, max_ts, offset, len, stream };
    Ok(SegmentSeries { id, device_hash, labels, meta })
}

impl SegmentFile {
    /// Reads and verifies one sample block.
    pub(crate) fn read_block(&self, meta: &BlockMeta) -> Result<Vec<(i64, u64)>, ReadError> {
        self.read_block_with(meta, &mut Vec::new())
    }

    /// [`Self::read_block`] reading the block's bytes into `scratch`, which
    /// only grows: a query reading thousands of blocks allocates (and
    /// zeroes, and faults in) its read buffer once instead of per block.
    pub(crate) fn read_block_with(
        &self,
        meta: &BlockMeta,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<(i64, u64)>, ReadError> {
        let location = || {
            format!(
                "{} (tenant {}, bucket {}) block {} at offset {}",
                self.path.display(),
                self.scope.tenant,
                self.scope.bucket,
                meta.ordinal,
                meta.offset
            )
        };
        let corrupted = |detail: String| ReadError::Corrupted { location: location(), detail };
        let len = usize::try_from(meta.len).map_err(|_| corrupted("block length exceeds address space".into()))?;
        if scratch.len() < len {
            scratch.resize(len, 0);
        }
        let buf = scratch.get_mut(..len).ok_or_else(|| corrupted("block buffer too short".into()))?;
        self.file.read_exact_at(buf, meta.offset).map_err(|source| ReadError::Io { location: location(), source })?;
        let (body, crc) = buf.split_at(len.saturating_sub(4));
        let stored = u32::from_le_bytes(crc.try_into().map_err(|_| corrupted("block shorter than its CRC".into()))?);
        let actual = crc32fast::hash(body);
        if stored != actual {
            return Err(corrupted(format!("block checksum mismatch: stored {stored:#010x}, computed {actual:#010x}")));
        }
        let samples = if meta.stream {
            decode_stream_block(body, meta.count as usize, meta.min_ts)
        } else {
            decode_block(body, self.version, meta.count as usize, meta.min_ts)
        }
        .map_err(|d| corrupted(d.to_owned()))?;
        let (first, last) = (samples.first().map(|s| s.0), samples.last().map(|s| s.0));
        let sorted = samples.windows(2).all(|w| w.first().map(|s| s.0) < w.get(1).map(|s| s.0));
        if !sorted
            || samples.len() as u64 != u64::from(meta.count)
            || first != Some(meta.min_ts)
            || last != Some(meta.max_ts)
        {
            return Err(corrupted("block contents disagree with the index".into()));
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests;
