//! The tables are real Iceberg: PyIceberg reads a tenant's table through the
//! same SQLite catalog (venv prepared by `scripts/pyiceberg-env.sh`, pip
//! installing pyiceberg, pyarrow and sqlalchemy on first use).

use std::path::PathBuf;
use std::process::Command;

use strata_cold_tier::{CommitSource, table};

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

    let picks: Vec<serde_json::Value> = [(0usize, 0usize), (7, 49), (19, 13)]
        .iter()
        .map(|&(s, i)| {
            let sd = &data[s];
            let smp = sd.samples[i];
            let labels: serde_json::Map<String, serde_json::Value> =
                sd.labels.iter().map(|l| (l.name.clone(), l.value.clone().into())).collect();
            serde_json::json!({
                "series_id": sd.series_id.0 as i64, "ts_ms": smp.ts, "value": smp.value,
                "metric": sd.labels.metric_name(), "labels": labels,
            })
        })
        .collect();
    let expect = serde_json::json!({
        "catalog_uri": format!("sqlite:///{}", dir.path().join("cold/catalog.db").display()),
        "catalog_name": cold.config().catalog_name,
        "warehouse": cold.warehouse(),
        "table": format!("{}.{}", cold.config().namespace, table::table_name(&t)),
        "rows": 1000,
        "samples": picks,
    });
    let spec = dir.path().join("expect.json");
    std::fs::write(&spec, serde_json::to_vec(&expect).unwrap()).unwrap();

    let env = Command::new("bash").arg(scripts().join("pyiceberg-env.sh")).output().unwrap();
    assert!(env.status.success(), "pyiceberg-env.sh failed: {}", String::from_utf8_lossy(&env.stderr));
    let python = String::from_utf8(env.stdout).unwrap().trim().to_owned();
    let out = Command::new(python).arg(scripts().join("cold_interop_read.py")).arg(&spec).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pyiceberg read failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"rows\": 1000"), "{stdout}");
    assert!(stdout.contains("device_bucket"), "{stdout}");
}
