//! # strata-ingest — the write path
//!
//! Owns everything between a client's write request and a durable record in
//! the ingest log:
//!
//! ```text
//!  POST /api/v2/write, /write ──► auth → tenant ──► gunzip, size limit ──► line protocol parse
//!        (http)                                                               │ (schemas::line_protocol)
//!                                                                             ▼
//!                            per-line errors ◄── validate, map to series (convert)
//!                                                                             │ group by device_hash % P
//!                                                                             ▼
//!                                                   IngestLog::append ──► durable ──► 204 / 400
//! ```
//!
//! * [`http`]: the InfluxDB-compatible write endpoints.
//! * [`convert`]: line → Prometheus series mapping and per-partition batching.
//! * [`log`]: the ingest log contract and the embedded segment-file log.
//! * [`series_cache`]: series id → shared label set, so known series cost no allocation.
//! * [`metrics`]: counters exposed on `/metrics`.
//!
//! Tenant limits and Prometheus remote write arrive in later issues.
#![warn(missing_docs)]

mod batcher;
pub mod config;
pub mod convert;
pub mod error;
pub mod http;
pub mod log;
pub mod metrics;
pub mod series_cache;

pub use config::IngestConfig;
pub use error::{Error, Result};
pub use log::{IngestLog, LocalLog, LogConfig, LogRecord, LogSink};
