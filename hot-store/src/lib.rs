//! # strata-hot-store — recent samples in memory and in on-disk segments
//!
//! This crate owns the hot tier of Strata: the memtable that absorbs the
//! ingest log, the immutable segment files it is flushed into, the series
//! index that answers label queries, and the manifest that makes flushes
//! atomic and tells the server where to resume log replay. It implements
//! [`strata_schemas::ReadStore`] for the query engine.
//!
//! ```text
//!  write path                       flush path (serialised)                 read path
//!  ──────────                       ─────────────────────────               ─────────
//!  ingest log record                memtable ──swap (short lock)──► frozen  select/series
//!    │ apply(partition, offset)       │                               │     │
//!    │ offset < next? skip            ▼ (no lock held)                │     ▼ read lock: index
//!    ▼                             NNNN.seg.tmp ─fsync─► rename ─fsync dir  │   (tenant → series,
//!  series index (tenant, id,          │                                  │    min/max, labels)
//!   labels → SeriesRef, min/max)      ▼                                  │     │ snapshot layers
//!    │                             MANIFEST.tmp ─fsync─► rename ─fsync dir  │     ▼ unlocked
//!    ▼                              (segments + flushed offsets)         │   segment blocks (CRC)
//!  memtable (append, O(1))            │                                  │   → frozen → memtable
//!                                     ▼                                  │   newest wins per ts
//!                                  install segment, drop frozen ◄────────┘
//! ```
//!
//! **Durability.** The ingest log is the write-ahead log; this crate has no
//! WAL of its own. The manifest records, per log partition, the first offset
//! not yet in segments ([`HotStore::replay_from`]); after a crash the server
//! replays the log from there and [`HotStore::apply`] skips records it already
//! holds. Files not referenced by the manifest are crash leftovers and are
//! deleted on open. A failed flush poisons the store (reads continue, writes
//! are refused) until a restart replays the log. "Latest write wins" across a
//! restart relies on all records of a series living in one log partition
//! (partition = device_hash % P), so replay preserves their order.
//!
//! **Identity and tenancy.** Series are keyed per tenant by
//! [`strata_schemas::SeriesId`]; a second label set with the same id is kept
//! apart (compared by labels, stored in an overflow map), never merged.
//!
//! **Layout.** Time buckets (config `bucket`, default 2 h): the memtable
//! keeps compressed chunks per (series, bucket); a flush writes one segment
//! per (tenant, bucket); [`HotStore::compact`] merges a bucket's segments;
//! [`HotStore::expire`] deletes whole buckets older than the tenant's hot TTL
//! and (if set) below its cold watermark ([`HotStore::set_cold_watermark`]).
//! Matchers resolve through croaring postings. Corrupt segments are
//! quarantined. File layouts: `hot-store/FORMAT.md`.
//!
//! **Erasure** (right to erasure, issue 18). [`HotStore::erase`] physically
//! removes a tenant's samples matching selectors over a time range: it
//! strips them from the memtable, flushes, and rewrites every segment
//! holding some (or drops it when nothing else is in it) through the
//! compaction's write-new-file + manifest-commit protocol; series left
//! without data leave the index. It is idempotent, so a crashed erase is
//! finished by running it again. [`HotStore::verify_erased`] scans the
//! live segment files and the memtable and counts what is still covered
//! (the proof). Details: `erase.rs`.
//!
//! **Cold hand-off.** The compactor asks [`HotStore::sealed_buckets`] for
//! buckets that are old enough and fully flushed, reads one with
//! [`HotStore::read_bucket`], commits it to the cold tier, then calls
//! [`HotStore::set_cold_watermark`] with the bucket's end.
//!
//! **Modules** (details and "when you change X": `hot-store/README.md`):
//!
//! * `store`: [`HotStore`]: open and recovery, `apply` with back-pressure,
//!   flush, stats; the locking scheme.
//! * `sink`: the [`strata_schemas::LogSink`] of the store (errors keep their kind).
//! * `memtable`: compressed chunks per (series, bucket), out-of-order list.
//! * `index`: the series index (interned labels, ids, croaring postings, matchers).
//! * `segment`, `manifest`, `format`, `codec`: the segment files, the
//!   manifest, format versions and magics, the block codecs (`hot-store/FORMAT.md`).
//! * `read`, `read_pool`: the [`strata_schemas::ReadStore`] implementation
//!   and the pool large reads decode on.
//! * `maintenance`: compaction, TTL expiry, quarantine.
//! * `erase`: the right to erasure ([`HotStore::erase`], [`HotStore::verify_erased`]).
//! * `handoff`: sealed buckets for the compactor's roll to the cold tier.
//! * `origins`: edge batches applied once (per agent, per partition).
//! * `parallel`: ordered work on several threads (an explicit flush's block encoding).
//! * `cardinality`: per-tenant series cardinality (`/api/v1/status/tsdb`).
//! * `metrics`: the store's `/metrics` families ([`HotStore::render_metrics`]).
//! * `config`: [`HotStoreConfig`]; `error`: [`Error`] and `kind()`;
//!   `failpoint`: crash points for tests.
//!
//! **Cargo feature `failpoints`** (off by default): compiles in the crash
//! points' arming API (`failpoint::arm`, `arm_nth`, `armed`, `disarm`). Off,
//! each point is an inlined `Ok(())` and the module is private: release
//! builds carry no test hooks. The crate's own tests turn it on through a
//! dev-dependency on the crate itself, so `cargo test -p strata-hot-store`
//! needs no flag; a crate whose tests arm the points does the same
//! (`strata-hot-store = { workspace = true, features = ["failpoints"] }` in
//! its `[dev-dependencies]`).
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

mod cardinality;
mod codec;
mod config;
mod erase;
mod error;
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub mod failpoint;
#[cfg(not(feature = "failpoints"))]
mod failpoint;
mod format;
mod handoff;
mod index;
mod maintenance;
mod manifest;
mod memtable;
mod metrics;
mod origins;
mod parallel;
mod read;
mod read_pool;
mod segment;
mod sink;
mod store;

pub use cardinality::{Cardinality, CardinalityRequest, Count, cardinality_of};
pub use config::HotStoreConfig;
pub use erase::{EraseRequest, HotEraseReport, HotVerifyReport};
pub use error::{Error, Result};
pub use format::{FormatVersion, UnsupportedFormatVersion};
pub use handoff::{BucketSeries, SealedBucket};
pub use maintenance::ExpireOutcome;
pub use store::{CompactOutcome, FlushOutcome, HotStore, HotStoreStats, QuarantinedSegment};

/// Entry points for the criterion benches in `benches/benches/hot_store_*.rs`;
/// not a stable API.
#[doc(hidden)]
pub mod bench {
    /// Encodes one segment sample block (sorted, unique `(ts, value bits)`;
    /// the count and first timestamp go into the index entry, not the block).
    pub fn encode_block(samples: &[(i64, u64)], out: &mut Vec<u8>) {
        crate::codec::encode_samples(samples, out);
    }

    /// Decodes one segment sample block of `count` samples starting at `t0`.
    pub fn decode_block(buf: &[u8], count: usize, t0: i64) -> Result<Vec<(i64, u64)>, &'static str> {
        crate::codec::decode_block(buf, crate::FormatVersion::CURRENT, count, t0)
    }
}

/// Entry points for the fuzz targets in `fuzz-targets/` (manifest and
/// segment decoding as opening a store does it); not a stable API.
#[doc(hidden)]
pub mod fuzz {
    use std::path::Path;

    /// One series of a segment: labels and samples `(ts, value bits)`.
    pub type SeriesSamples = (Vec<(String, String)>, Vec<(i64, u64)>);

    /// Decodes manifest file bytes (magic, version, length, CRC, JSON body);
    /// on success returns the manifest encoded again in the current version.
    pub fn manifest_reencode(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let m = crate::manifest::decode(bytes).map_err(|e| e.at(Path::new("MANIFEST").to_path_buf()).to_string())?;
        Ok(crate::manifest::encode(&m))
    }

    /// Opens the segment file at `path` (header, trailer, index and their
    /// checksums) and returns each sample block's `(offset, length with its CRC)`.
    pub fn segment_blocks(path: &Path) -> crate::Result<Vec<(u64, u64)>> {
        let (_, series) = crate::segment::open_segment(path)?;
        Ok(series.iter().map(|s| (s.meta.offset, s.meta.len)).collect())
    }

    /// Opens the segment file at `path` and reads every sample block (CRC,
    /// decoding, agreement with the index), in file order.
    pub fn segment_read(path: &Path) -> Result<Vec<SeriesSamples>, String> {
        let (file, series) = crate::segment::open_segment(path).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(series.len());
        for s in &series {
            let samples = file.read_block(&s.meta).map_err(|e| e.to_string())?;
            let labels = s.labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            out.push((labels, samples));
        }
        Ok(out)
    }

    /// Reads the segment at `path` and writes what it holds (same tenant and
    /// bucket, current version) as segment 1 of `dir`; returns its path.
    pub fn segment_rewrite(path: &Path, dir: &Path) -> Result<std::path::PathBuf, String> {
        let (file, series) = crate::segment::open_segment(path).map_err(|e| e.to_string())?;
        let mut records = Vec::with_capacity(series.len());
        for s in series {
            let samples = file.read_block(&s.meta).map_err(|e| e.to_string())?;
            records.push(crate::segment::SeriesRecord {
                id: s.id,
                device_hash: s.device_hash,
                labels: s.labels,
                samples,
            });
        }
        records.sort_by(|a, b| (a.device_hash, a.id, &a.labels).cmp(&(b.device_hash, b.id, &b.labels)));
        let written = crate::segment::write_segment(dir, 1, &file.scope, records.into_iter().map(Ok))
            .map_err(|e| e.to_string())?;
        Ok(written.path)
    }
}
