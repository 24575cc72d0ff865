//! End-to-end tests of the real `strata` binary (one integration target).

mod admin_audit;
mod apply_refusal;
mod cardinality;
mod clients;
mod cold;
mod console;
mod differential;
mod edge_dedup;
mod erasure;
mod erasure_purge;
mod faults;
mod harness;
mod hostile_http;
mod hostile_query;
mod hostile_write;
mod kafka;
mod log_damage;
mod postgres;
mod promtool;
mod read_your_writes;
mod regions;
mod remote_write;
mod residency;
mod tenancy;
mod tls;
mod write_query;
