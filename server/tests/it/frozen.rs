//! Frozen server formats read back from committed files (issue 21 point 3):
//! the inter-region wire (`frozen/regions_wire.rs`: the binary raw-series
//! answer and the JSON bodies of the region endpoints) and the JSON-lines
//! audit logs (`frozen/audit_logs.rs`). Fixtures live under
//! `server/tests/fixtures/<format>/v<N>/`, each with a README saying how it
//! was made; generators are `#[ignore]`d tests that also need
//! `STRATA_WRITE_FIXTURES=1`, and old versions are never regenerated. No
//! binary is started: these read the library's decoders directly.

mod audit_logs;
mod regions_wire;

use std::path::{Path, PathBuf};

/// `server/tests/fixtures`.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// `tests/fixtures/<rel>`.
fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

/// The bytes of `tests/fixtures/<rel>`, which must be small.
fn read(rel: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(bytes.len() < 16 * 1024, "keep fixtures small: {rel} is {} bytes", bytes.len());
    bytes
}

/// Whether a generator may write (`STRATA_WRITE_FIXTURES=1`); says how when not.
fn may_write(rel: &str) -> bool {
    let ok = std::env::var("STRATA_WRITE_FIXTURES").is_ok_and(|v| v == "1");
    if !ok {
        eprintln!("not writing tests/fixtures/{rel}: set STRATA_WRITE_FIXTURES=1 (never for a shipped version)");
    }
    ok
}

/// Writes `tests/fixtures/<rel>`.
fn store(rel: &str, bytes: &[u8]) {
    let path = fixture(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}
