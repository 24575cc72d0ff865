//! The Iceberg SQL catalog on a real PostgreSQL server (Debian's
//! `postgresql`, installed by scripts/install-test-deps.sh): appends, the
//! `delete`/`replace` snapshots committed by our own compare-and-swap
//! (`$n` placeholders on PostgreSQL), expiry, orphan removal and purge.
//! Fails (never skips) when PostgreSQL is missing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use strata_cold_tier::{ColdTier, ColdTierConfig, CommitSource};
use strata_test_support::postgres::Postgres;

use crate::maintenance::{snapshot_of, three_days};
use crate::util::{runtime, tenant};

#[test]
fn maintenance_commits_through_a_postgresql_catalog() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let config = ColdTierConfig { enabled: true, catalog_url: pg.url(), ..ColdTierConfig::default() };
    let cold = Arc::new(rt.block_on(ColdTier::open(&config, dir.path())).unwrap());
    let t = tenant("acme.eu");
    for (src, data) in three_days(&t) {
        rt.block_on(cold.append(&t, &data, &CommitSource { source: src, segments: String::new() })).unwrap();
    }
    let live = rt.block_on(cold.live_files(&t)).unwrap();
    let day0 = live[0].day;
    let gone: Vec<String> = live.iter().filter(|f| f.day == day0).map(|f| f.path.clone()).collect();
    rt.block_on(cold.delete_files(&t, &gone, HashMap::new())).unwrap();
    let rest: Vec<String> = live.iter().filter(|f| f.day != day0).map(|f| f.path.clone()).collect();
    let merged = rt.block_on(cold.read_files(&t, &rest)).unwrap();
    let written = rt.block_on(cold.write_files(&t, &merged, "merge-pg")).unwrap();
    rt.block_on(cold.replace_files(&t, &rest, written, HashMap::new())).unwrap();
    let after = snapshot_of(&rt, &cold, &t);
    assert_eq!(after.values().map(BTreeMap::len).sum::<usize>(), 80, "day 0 deleted, days 1 and 2 merged");
    let later = strata_schemas::time::now_millis() + 2000;
    let expired = rt.block_on(cold.expire_snapshots(&t, later, Duration::ZERO, &|_| false)).unwrap();
    assert_eq!(expired.retained, 1);
    rt.block_on(cold.remove_orphan_files(&t, later, Duration::ZERO)).unwrap();
    // A second handle (another node) sees the same table through PostgreSQL.
    let other = Arc::new(rt.block_on(ColdTier::open(&config, dir.path())).unwrap());
    assert_eq!(snapshot_of(&rt, &other, &t), after);
    rt.block_on(other.purge(&t)).unwrap();
    assert!(rt.block_on(cold.load_table(&t)).unwrap().is_none());
}

/// An erase through a PostgreSQL catalog (its compare-and-swap with `$n`
/// placeholders, iceberg's expiry commit): the fleet without the covered
/// rows, `verify_erased` all zero, and a second node sees the same.
#[test]
fn erase_commits_through_a_postgresql_catalog() {
    use strata_cold_tier::{EraseOptions, EraseRequest};
    use strata_schemas::Matcher;
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let config = ColdTierConfig { enabled: true, catalog_url: pg.url(), ..ColdTierConfig::default() };
    let cold = Arc::new(rt.block_on(ColdTier::open(&config, dir.path())).unwrap());
    let t = tenant("acme.eu");
    let data = crate::erase::fleet(&t, 8, 2, 600_000);
    crate::erase::roll(&rt, &cold, &t, &data, 6 * 3_600_000);
    let req = EraseRequest {
        selectors: vec![vec![Matcher::equal("device", "dev-02")]],
        start: i64::MIN,
        end: data[0].samples[150].ts,
    };
    let opts = EraseOptions { orphan_grace: Duration::ZERO };
    let report = rt.block_on(cold.erase_with(&t, &req, &opts)).unwrap();
    assert_eq!(report.rows_removed, 151, "{report:?}");
    assert!(report.snapshots_expired > 0 && report.objects_deleted > 0, "{report:?}");
    let v = rt.block_on(cold.verify_erased(&t, &req)).unwrap();
    assert_eq!((v.rows_found, v.rollup_rows_found, v.series_rows_found, v.unreferenced_objects), (0, 0, 0, 0), "{v:?}");
    let other = Arc::new(rt.block_on(ColdTier::open(&config, dir.path())).unwrap());
    let seen = snapshot_of(&rt, &other, &t);
    let victim = seen.iter().find(|(l, _)| l.get("device") == Some("dev-02")).unwrap().1;
    assert_eq!(victim.len(), 288 - 151);
    assert_eq!(seen.values().map(BTreeMap::len).sum::<usize>(), 8 * 288 - 151);
}
