//! # strata — the server binary
//!
//! Owns configuration loading, wiring of the crates into one process, the
//! operational HTTP endpoints and shutdown. It is the only crate that knows
//! every other one:
//!
//! ```text
//!             ┌──────────────────────────── strata serve ─────────────────────────────┐
//!  HTTP ──►   │ ingest::http ─► ingest::LocalLog ───────────────────► hot_store::HotStore │
//!             │   (or ingest::KafkaLog: producer ─► topic ─► consumer ─►) (its LogSink)   │
//!             │ query::http  ─► query::Engine ──(ReadStore)─────────────────┘           │
//!             └───────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * [`cli`]: the `strata` command line.
//! * [`config`]: layered configuration (defaults → file → `STRATA_*` → flags).
//! * [`node`]: opening storage, log replay, background flushes, shutdown.
//! * [`cluster`]: query fan-out to the peers that hold the region's other Kafka partitions.
//! * [`regions`]: sovereign regions: inter-region endpoints, credentials, the federation's wire.
//! * [`audit`]: the append-only audit log of cross-region requests.
//! * [`http`]: the router of a node.
//! * [`error`]: the server's error, its `kind()` and the one mapping of kinds to HTTP statuses.
//! * [`listener`]: the HTTP accept loop (connection cap, timeouts, graceful shutdown).
//! * [`auth`]: static tokens from the configuration.
//! * [`registry`]: the tenant registry (SQLite / PostgreSQL) and token resolution.
//! * [`admin`]: the admin API.
//! * [`admin_audit`]: the audit log of admin actions.
//! * [`tls`]: HTTPS on the listeners (rustls); [`outbound`]: the HTTP(S)
//!   client to peers and regions.
//! * [`startup`]: what a starting node answers (health, readiness with the
//!   replay's progress, 503 + `Retry-After` for the rest).
//! * [`hot_tier`]: `[hot]`, the embedded hot store or the ScyllaDB tier.
//! * [`read_after`]: read-your-writes (write tokens).
//! * [`erasure`]: delete requests and the purge worker.
//! * [`jsonl`]: the fsynced JSON-lines append shared by the audit logs.
//! * [`progress`], [`cardinality`], [`cold_status`]: `/api/v1/status/{tasks,tsdb,cold}`.
//! * [`console`]: the web console at `/`.
//! * [`metrics`]: `GET /metrics`, every crate's families concatenated.
//!
//! Module by module, with paths and "when you change X": `server/README.md`.
//!
//! **Cargo feature `failpoints`** (off by default): the crash tests' hooks,
//! `STRATA_ERASURE_CRASH_AT`/`_AFTER` (`erasure/crash.rs`) and
//! `STRATA_ROLL_CRASH_AT` (`node.rs`), with the storage crates' failpoints
//! they arm. Off, those variables are never read: `cargo build --release -p
//! strata` has no crash hooks. The crate's tests get it through a
//! dev-dependency on the crate itself, so the binary they start
//! (`CARGO_BIN_EXE_strata`) has the hooks; `.ci/failpoints_off.py` checks that
//! the release build does not.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

pub mod admin;
pub mod admin_audit;
pub mod audit;
pub mod auth;
pub mod cardinality;
pub mod cli;
pub mod cluster;
pub mod cold_status;
pub mod config;
pub mod console;
pub mod erasure;
pub mod error;
pub mod hot_tier;
pub mod http;
pub mod jsonl;
pub mod listener;
pub mod metrics;
pub mod node;
pub mod outbound;
pub mod progress;
pub mod read_after;
pub mod regions;
pub mod registry;
pub mod startup;
pub mod tls;
