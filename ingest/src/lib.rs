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
//! "Durable" means fsynced by the embedded [`LocalLog`] (`[log] kind =
//! "local"`) or confirmed by the brokers of the region's topic with
//! `acks=all` by [`KafkaLog`] (`kind = "kafka"`), whose consumer side applies
//! the partitions a node is assigned. Record layouts: `ingest/FORMAT.md`.
//!
//! * [`http`]: the InfluxDB-compatible write endpoints.
//! * [`convert`]: line → Prometheus series mapping and per-partition batching.
//! * [`edge_origin`]: an edge agent's `(X-Strata-Agent-Id, X-Strata-Agent-Seq)`, stamped on the request's records.
//! * [`remote_write`]: Prometheus remote write 1.0 (`POST /api/v1/write`, snappy + protobuf).
//! * [`log`]: the ingest log contract, the embedded segment-file log and the Kafka log.
//! * [`series_cache`]: series id → shared label set, so known series cost no allocation.
//! * [`limits`]: per-tenant ingestion rate (token buckets).
//! * [`metrics`]: counters exposed on `/metrics`.
//! * [`stages`]: per-stage latency histograms of the write path (`strata_write_stage_seconds`).
//! * [`otlp`]: OpenTelemetry metrics over OTLP/HTTP (`POST /otlp/v1/metrics`).
//! * [`influx_compat`]: `/ping`, `/health`, `/ready`, `/query` for InfluxDB clients.
//! * [`write_token`]: `X-Strata-Write-Token`, the log positions a write reached.
//! * `batcher`: one `WriteBatch` per log partition, shared by every protocol.
//! * [`config`], [`error`]: `[ingest]` settings; the crate's error and its kind.
//!
//! Module by module, with paths and "when you change X": `ingest/README.md`.
//!
//! Tenant policy (residency, label and size limits, `max_active_series`,
//! cold watermark) is applied in [`http`] before anything reaches the log.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

mod batcher;
pub mod config;
pub mod convert;
pub mod edge_origin;
pub mod error;
pub mod http;
pub mod influx_compat;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod otlp;
pub mod remote_write;
pub mod series_cache;
pub mod stages;
pub mod write_token;

pub use config::IngestConfig;
pub use error::{Error, Result};
pub use log::{
    ApplyError, IngestLog, KafkaLog, KafkaLogConfig, LocalLog, LogConfig, LogKind, LogRecord, LogSink, SyncMode,
};
