//! # strata-edge — the gateway agent
//!
//! Runs next to devices on a gateway with an intermittent uplink: accepts
//! InfluxDB line protocol over HTTP, stores every accepted batch in a
//! durable on-disk queue before it answers, and forwards the queue to a
//! Strata server in order, moving its durable cursor only once a batch is
//! acknowledged.
//!
//! ```text
//! device ──POST /api/v2/write──► intake (parse, canonicalise: explicit ns timestamps;
//!        MQTT (mqtt.rs) ─────────►  a sample without one gets the server-aligned time, clock.rs)
//!                                   │ append + fsync (group commit) ▲ 204 / PUBACK only after this
//!                                   ▼
//!                               queue/  segments + cursor
//!                                   │ live lane first, then the backlog (forward.rs)
//!                                   ▼
//!                               forwarder ──zstd, X-Strata-Agent-Id/-Seq/-Hlc, X-Strata-Jurisdiction──► strata
//!                                   │ 2xx (or a 400 that retrying cannot fix); the answer's clock folded in
//!                                   ▼
//!                               ack(seq): cursor tmp + fsync + rename + fsync dir
//!                                         (while the next batch is being sent)
//! ```
//!
//! Exactly once: the server applies a batch once per (agent id, sequence
//! number), so a batch whose acknowledgement was lost (the agent died
//! between the server's answer and the cursor write) is re-sent and skipped.
//! Every batch carries the agent's hybrid logical clock (`clock.rs`:
//! persisted, never backwards, the server's folded in, the gateway clock's
//! skew measured and corrected for samples without a timestamp). With
//! `forward.jurisdiction` a server of another jurisdiction refuses the batch
//! before storing anything and the agent fails over within its own. MQTT
//! intake (`mqtt.rs`) acknowledges a message only once it is queued.
//! Pre-aggregation (`aggregate.rs`) folds configured measurements into
//! windows forwarded as their own series.
//!
//! Modules: [`intake`] (HTTP), [`mqtt`], [`queue`] (the durable queue and its
//! format), [`forward`], [`clock`], [`aggregate`], [`agent`] (shared state,
//! writer thread, router), [`metrics`] (`/metrics`, `/status`), [`config`],
//! [`error`]. Module by module, with paths and "when you change X":
//! `edge-agent/README.md`.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

pub mod agent;
pub mod aggregate;
pub mod clock;
pub mod config;
pub mod error;
pub mod forward;
pub mod intake;
pub mod metrics;
pub mod mqtt;
pub mod queue;

pub use error::{Error, Result};
