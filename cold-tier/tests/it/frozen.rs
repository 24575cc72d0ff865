//! Frozen cold directories of the tables beyond the samples table's layout
//! v1 (that one is `fixtures.rs`): rollup tables of layouts 1 and 2
//! (`frozen/rollup.rs`), group rollup tables (`frozen/group.rs`), the series
//! table (`frozen/series.rs`) and the roll state `strata.roll.*`
//! (`frozen/roll_state.rs`), each under `tests/fixtures/<format>/v<N>/`
//! with a README saying how it was made.
//!
//! Every fixture is one roll's worth of one tenant (`acme`), bucket
//! [`BUCKET`], written by this build's public API as the compactor calls it
//! (`compactor/src/roll.rs`, `group.rs`), and read back with exact values
//! written out in the tests, not recomputed. Iceberg metadata, manifest
//! lists, manifests and the catalog row hold absolute paths: each fixture
//! records the directory it was written in (`ROOT`, 64 bytes) and is
//! copied into a new directory whose path has the same length, with that
//! path replaced in every file (`relocate.rs`, shared with `fixtures.rs`).
//!
//! Regeneration is opt-in twice: the generators are `#[ignore]`d tests and
//! refuse to write unless `STRATA_WRITE_FIXTURES=1` is set. Old versions
//! are never regenerated.

mod group;
mod roll_state;
mod rollup;
mod series;

use std::path::{Path, PathBuf};

use strata_cold_tier::SeriesSamples;
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{Labels, Sample, TenantId};

pub(crate) use crate::relocate::root_dir;
use crate::relocate::{copy_relocated, files, replace_all, store_relocatable};

/// `tests/fixtures`.
pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// Start of the hot bucket the fixtures' rolls commit (2023-11-15T00:00Z).
pub(crate) const BUCKET: i64 = 1_700_006_400_000;
/// Hot bucket width (the default 2 h).
pub(crate) const BUCKET_MS: i64 = 7_200_000;
/// The environment variable a generator needs set to `1` to write.
const WRITE_VAR: &str = "STRATA_WRITE_FIXTURES";

/// The fixtures' tenant.
pub(crate) fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// Labels of the fixtures' series: one gateway `gw1` (so one device
/// bucket and few files), sensors on two farms.
pub(crate) fn labels(metric: &str, farm: &str, sensor: &str) -> Labels {
    Labels::from_pairs([("__name__", metric), ("device", "gw1"), ("farm", farm), ("sensor", sensor)])
}

/// The bucket's samples: a sample at exactly the bucket start (its 1 d
/// window ends at midnight, in the earlier day's partition), a staleness
/// marker alone in its 5 m window (no row), an ordinary NaN (`exp` =
/// `EXP_NAN`), decimals (`exp` = −55, sums not provably exact), a second
/// metric.
pub(crate) fn bucket_series() -> Vec<SeriesSamples> {
    let t = acme();
    let stale = f64::from_bits(STALE_NAN_BITS);
    let b = BUCKET;
    let s = |labels: Labels, samples: &[(i64, f64)]| SeriesSamples {
        series_id: strata_schemas::series_id(&t, &labels),
        device_hash: strata_schemas::device_hash_of(&t, "gw1"),
        labels,
        samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
    };
    vec![
        s(
            labels("temp", "a", "s1"),
            &[(b, 20.5), (b + 1_000, 21.0), (b + 61_000, 0.25), (b + 301_000, stale), (b + 3_600_001, 8.0)],
        ),
        s(labels("temp", "a", "s2"), &[(b + 5, -3.25), (b + 120_000, f64::NAN)]),
        s(labels("temp", "b", "s3"), &[(b + 10, 0.1), (b + 20, 0.2)]),
        s(labels("hum", "a", "s1"), &[(b + 30_000, 55.0)]),
    ]
}

/// `tests/fixtures/<rel>`.
pub(crate) fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

/// A fixture copied into a fresh root.
#[derive(Debug)]
pub(crate) struct Copied {
    /// The fixture (`tests/fixtures/<format>/v<N>`).
    pub(crate) from: PathBuf,
    /// The directory it was written in (`ROOT`).
    pub(crate) recorded: String,
    /// The new root; `root/cold` is the cold directory to open.
    pub(crate) root: tempfile::TempDir,
}

impl Copied {
    /// A file of the fixture (e.g. `corrupt/truncated.parquet`) with the
    /// recorded root replaced by the new one.
    pub(crate) fn relocated(&self, rel: &str) -> Vec<u8> {
        let bytes = std::fs::read(self.from.join(rel)).unwrap();
        replace_all(&bytes, self.recorded.as_bytes(), self.root.path().to_str().unwrap().as_bytes()).0
    }
}

/// The local path of a `file://` location.
pub(crate) fn local(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

/// Copies the fixture's `cold/` into a new root, replacing the recorded
/// root in every file (checks that some file held it).
pub(crate) fn copy_fixture(rel: &str) -> Copied {
    let from = fixture(rel);
    let (root, recorded) = copy_relocated(&from);
    Copied { from, recorded, root }
}

/// Whether a generator may write (`STRATA_WRITE_FIXTURES=1`); says how when not.
pub(crate) fn may_write(rel: &str) -> bool {
    let ok = std::env::var(WRITE_VAR).is_ok_and(|v| v == "1");
    if !ok {
        eprintln!("not writing tests/fixtures/{rel}: set {WRITE_VAR}=1 (never for a shipped version)");
    }
    ok
}

/// Replaces `tests/fixtures/<rel>/cold` with `root/cold` and records the
/// root in `ROOT`.
pub(crate) fn store_fixture(root: &Path, rel: &str) {
    store_relocatable(root, &fixture(rel));
}

/// Writes `bytes` as `tests/fixtures/<rel>/<name>` (a corrupt variant).
pub(crate) fn store_file(rel: &str, name: &str, bytes: &[u8]) {
    let path = fixture(rel).join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The one data file under a copied table's `data/` (of `table`, e.g.
/// `rollup5m_acme`), or all of them.
pub(crate) fn data_files(cold: &Path, table: &str) -> Vec<PathBuf> {
    files(&cold.join("warehouse/strata").join(table).join("data"))
}
