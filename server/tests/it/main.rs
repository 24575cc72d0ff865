//! End-to-end tests of the real `strata` binary (one integration target).
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod admin_audit;
mod apply_refusal;
mod cardinality;
mod clients;
mod cold;
mod console;
mod differential;
mod edge_dedup;
mod erasure;
mod erasure_crash;
mod erasure_purge;
mod faults;
mod harness;
mod hostile_http;
mod hostile_query;
mod hostile_write;
mod kafka;
mod kafka_cold;
mod limits;
mod log_damage;
mod postgres;
mod progress;
mod promtool;
mod query_front;
mod read_your_writes;
mod regions;
mod regions_differential;
mod regions_edge;
mod regions_kafka;
mod regions_stalled;
mod remote_write;
mod residency;
mod tenancy;
mod tls;
mod write_query;
