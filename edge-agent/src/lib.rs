//! # strata-edge — the gateway agent
//!
//! Will own the agent that runs next to devices: it accepts line protocol
//! (HTTP and MQTT), optionally pre-aggregates, buffers in a bounded disk
//! queue while the uplink is down, and forwards idempotent batches
//! (agent id, sequence) with backoff, losing nothing across restarts.
//!
//! Not implemented yet: this crate holds no behaviour until the edge-agent
//! issue; it has no binary so nobody mistakes it for a working agent.
#![warn(missing_docs)]
