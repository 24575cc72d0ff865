//! The tables are real Iceberg: PyIceberg reads a tenant's table through the
//! same SQLite catalog (venv prepared by `scripts/pyiceberg-env.sh`, pip
//! installing pyiceberg, pyarrow and sqlalchemy on first use).

use std::path::PathBuf;
use std::process::Command;

use strata_cold_tier::CommitSource;

use crate::util::{BASE, open, runtime, series, tenant};

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

#[test]
fn pyiceberg_reads_the_tenant_table_through_the_sqlite_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = open(&rt, dir.path());
    let t = tenant("acme.eu");
    let data: Vec<_> = (0..20)
        .map(|d| {
            let samples: Vec<(i64, f64)> = (0..50).map(|i| (BASE + i * 15_000, d as f64 + i as f64 / 8.0)).collect();
            series(&t, if d % 2 == 0 { "temp" } else { "hum" }, &format!("dev-{d}"), &samples)
        })
        .collect();
    let source = CommitSource { source: "hot:acme.eu:1".into(), segments: String::new() };
    rt.block_on(cold.append(&t, &data, &source)).unwrap();

    let picks: Vec<serde_json::Value> =
        [(0usize, 0usize), (7, 49), (19, 13)].iter().map(|&(s, i)| pick(&data[s], i)).collect();
    let stdout = pyiceberg_read(dir.path(), &cold, &t, 1000, picks);
    assert!(stdout.contains("device_bucket"), "{stdout}");
}

/// A rollup table is real Iceberg too: PyIceberg reads every window row,
/// and every row of the series table.
#[test]
fn pyiceberg_reads_a_rollup_table() {
    use strata_cold_tier::{Rollup, SeriesRollup};
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = open(&rt, dir.path());
    let t = tenant("acme.eu");
    let data: Vec<_> = (0..10)
        .map(|d| {
            let samples: Vec<(i64, f64)> = (0..240).map(|i| (BASE + i * 15_000, d as f64 + i as f64 / 8.0)).collect();
            series(&t, "temp", &format!("dev-{d}"), &samples)
        })
        .collect();
    let source = CommitSource { source: "hot:acme.eu:1".into(), segments: String::new() };
    rt.block_on(cold.append(&t, &data, &source)).unwrap();
    let view = cold.rollup_view(Rollup::FiveMinutes);
    let rolled: Vec<SeriesRollup> = data.iter().map(|s| SeriesRollup::of(s, 300_000)).collect();
    let rows: usize = rolled.iter().map(|s| s.points.len()).sum();
    let written = rt.block_on(view.write_rollup_files(&t, &rolled, i64::MIN, "rollup5m-1")).unwrap();
    assert_eq!(written.rows as usize, rows);
    rt.block_on(view.commit_files(&t, written, &source)).unwrap();
    let stdout = pyiceberg_read(dir.path(), &view, &t, rows, Vec::new());
    assert!(stdout.contains("device_bucket"), "{stdout}");

    // And the series table beside it: one row per series.
    let series = cold.series_view();
    let entries: Vec<strata_cold_tier::SeriesEntry> = data.iter().map(strata_cold_tier::SeriesEntry::from).collect();
    let written = rt.block_on(series.write_series_files(&t, &entries, "series-1")).unwrap();
    rt.block_on(series.commit_series_files(&t, written, &source.source)).unwrap();
    let stdout = pyiceberg_read(dir.path(), &series, &t, entries.len(), Vec::new());
    assert!(stdout.contains("device_bucket"), "{stdout}");
}

/// Runs `cold_interop_read.py` against the tenant's table; returns its output.
fn pyiceberg_read(
    dir: &std::path::Path,
    cold: &strata_cold_tier::ColdTier,
    t: &strata_schemas::TenantId,
    rows: usize,
    picks: Vec<serde_json::Value>,
) -> String {
    pyiceberg_read_with(dir, cold, t, rows, picks, serde_json::Map::new())
}

/// [`pyiceberg_read`] with more checks for the script (`value_sum`, `absent`).
pub(crate) fn pyiceberg_read_with(
    dir: &std::path::Path,
    cold: &strata_cold_tier::ColdTier,
    t: &strata_schemas::TenantId,
    rows: usize,
    picks: Vec<serde_json::Value>,
    extra: serde_json::Map<String, serde_json::Value>,
) -> String {
    let mut expect = serde_json::json!({
        "catalog_uri": format!("sqlite:///{}", dir.join("cold/catalog.db").display()),
        "catalog_name": cold.config().catalog_name,
        "warehouse": cold.warehouse(),
        "table": format!("{}.{}", cold.config().namespace, cold.kind().table_name(t)),
        "rows": rows,
        "samples": picks,
    });
    if let Some(obj) = expect.as_object_mut() {
        obj.extend(extra);
    }
    let spec = dir.join("expect.json");
    std::fs::write(&spec, serde_json::to_vec(&expect).unwrap()).unwrap();

    let env = Command::new("bash").arg(scripts().join("pyiceberg-env.sh")).output().unwrap();
    assert!(env.status.success(), "pyiceberg-env.sh failed: {}", String::from_utf8_lossy(&env.stderr));
    let python = String::from_utf8(env.stdout).unwrap().trim().to_owned();
    let out = Command::new(python).arg(scripts().join("cold_interop_read.py")).arg(&spec).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "pyiceberg read failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("\"rows\": {rows}")), "{stdout}");
    stdout
}

pub(crate) fn pick(s: &strata_cold_tier::SeriesSamples, i: usize) -> serde_json::Value {
    let smp = s.samples[i];
    let labels: serde_json::Map<String, serde_json::Value> =
        s.labels.iter().map(|l| (l.name.to_string(), l.value.to_string().into())).collect();
    serde_json::json!({
        "series_id": s.series_id.0 as i64, "ts_ms": smp.ts, "value": smp.value,
        "metric": s.labels.metric_name(), "labels": labels,
    })
}

/// After a retention delete, a merge (replace), folding the manifests, snapshot
/// expiry and orphan removal, PyIceberg still reads exactly the remaining rows.
#[test]
fn pyiceberg_reads_the_table_after_delete_merge_and_expiry() {
    use std::collections::HashMap;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = open(&rt, dir.path());
    let t = tenant("acme");
    let days = crate::maintenance::three_days(&t);
    for (src, data) in &days {
        rt.block_on(cold.append(&t, data, &CommitSource { source: src.clone(), segments: String::new() })).unwrap();
    }
    // Two more small commits into day 2's partition, then merge that partition.
    let d2 = days[2].1[0].clone();
    for k in 0..2 {
        let mut s = d2.clone();
        for x in &mut s.samples {
            x.ts += 30_000 + k * 1000;
        }
        let src = CommitSource { source: format!("hot:acme:extra{k}"), segments: String::new() };
        rt.block_on(cold.append(&t, &[s], &src)).unwrap();
    }
    let live = rt.block_on(cold.live_files(&t)).unwrap();
    let day0 = live[0].day;
    let gone: Vec<String> = live.iter().filter(|f| f.day == day0).map(|f| f.path.clone()).collect();
    rt.block_on(cold.delete_files(&t, &gone, HashMap::new())).unwrap();
    let last_day = live.iter().map(|f| f.day).max().unwrap();
    let small: Vec<String> = live.iter().filter(|f| f.day == last_day).map(|f| f.path.clone()).collect();
    assert_eq!(small.len(), 3);
    let merged = rt.block_on(cold.read_files(&t, &small)).unwrap();
    let written = rt.block_on(cold.write_files(&t, &merged, "merge-interop")).unwrap();
    rt.block_on(cold.replace_files(&t, &small, written, HashMap::new())).unwrap();
    assert!(rt.block_on(cold.compact_manifests(&t, 1)).unwrap().is_some(), "manifests folded into one");
    let later = strata_schemas::time::now_millis() + 2000;
    rt.block_on(cold.expire_snapshots(&t, later, Duration::ZERO, &|_| false)).unwrap();
    rt.block_on(cold.remove_orphan_files(&t, later, Duration::ZERO)).unwrap();
    // Day 1: 40 rows; day 2: 3 × 40 rows (merged into one file).
    let picks = vec![pick(&days[1].1[0], 7), pick(&merged[0], 0), pick(&merged[0], 119)];
    pyiceberg_read(dir.path(), &cold, &t, 160, picks);
}
