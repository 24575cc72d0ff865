//! The S3 path for real: a loopback `s3s-fs` server (an S3-compatible
//! server backed by a directory; installed by `scripts/install-s3s.sh`)
//! holds the warehouse. Hot buckets roll into it, read back through the
//! federated store, and maintenance (merge, expiry, orphan removal, purge)
//! works against it. The objects are checked in the server's directory.
//!
//! Fails (never skips) when the binary is missing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use strata_cold_tier::ColdTierConfig;
use strata_compactor::CompactorConfig;
use strata_test_support::s3s::{ACCESS_KEY, S3sFs, SECRET_KEY};

use crate::util::{BASE, BUCKET_MS, Env, tenant};

const BUCKET: &str = "strata-test";
/// The warehouse on an s3s-fs server: its object-store options and the
/// objects in its directory.
trait Warehouse {
    fn cold_config(&self) -> ColdTierConfig;
    fn objects(&self, rel: &str, ext: &str) -> Vec<PathBuf>;
}

impl Warehouse for S3sFs {
    fn cold_config(&self) -> ColdTierConfig {
        let options = BTreeMap::from([
            ("aws_endpoint".to_owned(), self.endpoint()),
            ("aws_access_key_id".to_owned(), ACCESS_KEY.to_owned()),
            ("aws_secret_access_key".to_owned(), SECRET_KEY.to_owned()),
            ("aws_region".to_owned(), "us-east-1".to_owned()),
            ("aws_allow_http".to_owned(), "true".to_owned()),
            ("aws_virtual_hosted_style_request".to_owned(), "false".to_owned()),
        ]);
        ColdTierConfig {
            enabled: true,
            warehouse: format!("s3://{BUCKET}/warehouse"),
            storage_options: options,
            ..ColdTierConfig::default()
        }
    }

    /// Files (objects) under `warehouse/<rel>` in the server's directory.
    fn objects(&self, rel: &str, ext: &str) -> Vec<PathBuf> {
        strata_test_support::fs::files_ending(&self.root().join(BUCKET).join("warehouse").join(rel), ext)
    }
}

#[test]
fn rolls_reads_and_maintains_the_warehouse_on_a_real_s3_server() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3sFs::start(&dir.path().join("s3"), &[BUCKET]);
    let cc = CompactorConfig {
        grace: Some(Duration::ZERO),
        merge_min_files: 2,
        snapshot_retention: Duration::ZERO,
        orphan_grace: Duration::ZERO,
        ..CompactorConfig::default()
    };
    let mut env = Env::open_with_cold(&dir.path().join("node"), cc, s3.cold_config());
    assert!(env.cold.warehouse().starts_with("s3://"));
    for b in 0..3 {
        let t0 = BASE + b * BUCKET_MS;
        env.write(
            "acme",
            "temp",
            "d1",
            &[(t0 + 1, 20.5 + b as f64), (t0 + 1000, f64::from_bits(0x7ff0_0000_0000_0002))],
        );
        env.write("acme", "hum", "d2", &[(t0 + 7, 40.0)]);
    }
    env.hot.flush().unwrap();
    let now = BASE + 3 * BUCKET_MS;
    let rolled = env.rt.block_on(env.compactor.roll_once(now)).unwrap();
    assert_eq!((rolled.buckets, rolled.samples), (3, 9), "{rolled:?}");
    env.hot.expire(now).unwrap();
    env.assert_exactly_once("read back from S3 after hot expiry");

    let table_dir = "strata/samples_acme";
    let parquet = s3.objects(table_dir, ".parquet");
    assert!(parquet.len() >= 3, "data files are objects in the s3s-fs directory: {parquet:?}");
    assert!(!s3.objects(table_dir, ".metadata.json").is_empty(), "metadata in S3 too");
    // The catalog row points into the bucket.
    let table = env.rt.block_on(env.cold.load_table(&tenant("acme"))).unwrap().unwrap();
    assert!(table.metadata_location().unwrap().starts_with(&format!("s3://{BUCKET}/warehouse/{table_dir}/metadata/")));

    // Maintenance over S3: merge, expire, delete replaced files via listing.
    let out = env.rt.block_on(env.compactor.maintain_once(now)).unwrap();
    assert!(out.merges > 0 && out.orphan_files > 0, "{out:?}");
    let live = env.rt.block_on(env.cold.live_files(&tenant("acme"))).unwrap();
    assert_eq!(s3.objects(table_dir, ".parquet").len(), live.len(), "only live files remain in the bucket");
    env.assert_exactly_once("after merge on S3");

    let purged = env.rt.block_on(env.compactor.purge_tenant(&tenant("acme"))).unwrap();
    assert!(purged.cold_files > 0, "{purged:?}");
    assert!(s3.objects(table_dir, "").is_empty(), "purge deleted every object of the table");
}
