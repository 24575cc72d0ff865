//! # strata-edge — the gateway agent (foundation)
//!
//! Runs next to devices on a gateway with an intermittent uplink: accepts
//! InfluxDB line protocol over HTTP, stores every accepted batch in a
//! durable on-disk queue before it answers, and forwards the queue to a
//! Strata server in order, moving its durable cursor only once a batch is
//! acknowledged.
//!
//! ```text
//! device ──POST /api/v2/write──► intake (parse, canonicalise: explicit ns timestamps)
//!                                   │ append + fsync (group commit) ▲ 204 only after this
//!                                   ▼
//!                               queue/  segments + cursor
//!                                   │ first unacked batch
//!                                   ▼
//!                               forwarder ──gzip, X-Strata-Agent-Id/-Seq──► strata /api/v2/write
//!                                   │ 2xx (or a 400 that retrying cannot fix)
//!                                   ▼
//!                               ack(seq): cursor tmp + fsync + rename + fsync dir
//!                                         (while the next batch is being sent)
//! ```
//!
//! Delivery is at-least-once for now: the server does not yet deduplicate
//! on (agent id, sequence), so a batch sent but whose acknowledgement was
//! lost (the agent died between the server's answer and the cursor write)
//! is sent again after a restart. MQTT intake (`mqtt.rs`) subscribes to a
//! broker and acknowledges a message only once it is queued. Pre-aggregation
//! (`aggregate.rs`) folds configured measurements into windows forwarded as
//! their own series. Not built yet: the hybrid logical clock, zstd.
#![warn(missing_docs)]

pub mod agent;
pub mod aggregate;
pub mod config;
pub mod error;
pub mod forward;
pub mod intake;
pub mod metrics;
pub mod mqtt;
pub mod queue;

pub use error::{Error, Result};
