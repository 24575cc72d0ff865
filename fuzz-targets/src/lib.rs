//! # strata-fuzz-targets — every decoder of network or disk bytes, driven by arbitrary input
//!
//! One function per target, `fn <target>(data: &[u8])`: it feeds `data` to a
//! decoder the way the server (or the edge agent) does and asserts what must
//! hold whatever the bytes — no panic, and where it is cheap a round trip
//! (decode → encode → decode gives the same thing). A failed assertion is a
//! panic, which is what both runners report as a crash.
//!
//! ```text
//!  fuzz/fuzz_targets/<target>.rs ──► libFuzzer (nightly, coverage-guided; scripts/fuzz.sh)
//!                                        │
//!  tests/it (stable, cargo test) ────────┼──► strata_fuzz_targets::<target>(data)
//!    replays corpus/<target>/* and       │         │
//!    regressions/<target>/*, then a      │         ▼
//!    seeded mutation campaign            │    the crate's own decoder entry point
//! ```
//!
//! | target | decoder (entry point) | checked |
//! |---|---|---|
//! | `line_protocol` | `schemas::line_protocol::parse_lines`, `ingest::convert::Converter` | parsed line → `write_line` → parses to the same line; batches re-encode and decode equal; sample counts agree |
//! | `remote_write` | `ingest::remote_write::proto::decode_request` (snappy + protobuf), `SeriesConverter` | the input as a body and as the protobuf inside a valid snappy block; decode → encode → decode equal; batches round-trip |
//! | `otlp_protobuf` | `ingest::otlp::proto::ExportMetricsServiceRequest` (prost), `otlp::translate`, `SeriesConverter` | decode → encode → decode equal; batches round-trip |
//! | `otlp_json` | `ingest::otlp::json::decode`, `otlp::translate`, `SeriesConverter` | batches round-trip |
//! | `body_decoding` | `ingest::http::{gunzip, unzstd}`, `remote_write::proto::decompress` (snappy) under a 1 KiB and a 1 MiB limit | never more than the limit; refusals are 400 or 413; the input compressed by each codec decodes back to itself (or is a 413 when over the limit) |
//! | `write_batch` | `schemas::WriteBatch::decode` (every version) | decode → encode → decode → encode gives the same bytes |
//! | `hot_segment` | `hot_store` segment open (header, trailer, index, postings) and block reads | as is, then with every checksum repaired; a segment that reads, rewritten, reads back the same series |
//! | `hot_manifest` | `hot_store` manifest decode | as is, and as the JSON body of a well-formed file; decode → encode → decode equal |
//! | `ingest_log` | `ingest::LocalLog::open` (segment scan, torn-tail and damage repair, quarantine), `replay` | offsets increase; an append after open reads back; a second open finds no damage and the same records |
//! | `edge_queue` | `strata_edge::queue::Queue::open` (segment frames, cursor v1/v2, torn tail) | unacknowledged batches in order and counted right; an append after open reads back; a reopen sees the same queue |
//! | `promql` | `query::Engine` (promql-parser, then evaluation) on a small in-memory store | instant and 11-step range queries at most 1 s each; no panic |
//!
//! The disk targets take a leading flag byte (see each function) choosing
//! whether checksums are repaired before the bytes are opened: without the
//! repair almost every mutation stops at a CRC; with it, mutations reach the
//! parsers behind the checksums.
//!
//! Seed inputs live in `fuzz-targets/corpus/<target>/`, crashes found become
//! named files in `fuzz-targets/regressions/<target>/`; `tests/it` replays
//! both in CI and runs a short mutation campaign (`STRATA_FUZZ_SECONDS` per
//! target). `scripts/fuzz.sh` runs the libFuzzer binaries of `fuzz/`.
//!
//! Modules: `text` (line protocol, PromQL), `ingest` (remote write, OTLP,
//! body decoding), `storage` (write batch, hot segment and manifest, ingest
//! log, edge queue), `scratch` (per-thread scratch directories, `block_on`).
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

mod ingest;
mod scratch;
mod storage;
mod text;

pub use ingest::{body_decoding, otlp_json, otlp_protobuf, remote_write};
pub use storage::{edge_queue, hot_manifest, hot_segment, ingest_log, write_batch};
pub use text::{line_protocol, promql};

/// A fuzz target: drives one decoder with `data`, panicking when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by name (the name of its `fuzz/fuzz_targets/<name>.rs` and
/// of its `corpus/` and `regressions/` directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("line_protocol", line_protocol),
    ("remote_write", remote_write),
    ("otlp_protobuf", otlp_protobuf),
    ("otlp_json", otlp_json),
    ("body_decoding", body_decoding),
    ("write_batch", write_batch),
    ("hot_segment", hot_segment),
    ("hot_manifest", hot_manifest),
    ("ingest_log", ingest_log),
    ("edge_queue", edge_queue),
    ("promql", promql),
];
