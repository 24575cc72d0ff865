//! Exactness through the real binaries (issue 14, point 5): one all-in-one
//! node against three regions (`us-east`, `eu-central`, `br-south`) holding
//! the same generated fleet, six pushable fleet queries (sum by farm, avg,
//! max by kind, count, sum of rate, a range sum by kind) under three
//! policies (eu `aggregates` + br `raw`; all `raw`; eu and br `aggregates`).
//! The benchmark driver `benches/drivers/regions.py` does the work at a
//! small size: it starts the four processes, writes, queries both setups,
//! and exits 1 when any federated answer differs from the single node's
//! (1e-6 relative, NaN = NaN) or a query fails. Its timings are not looked
//! at here.

use std::path::Path;
use std::process::Command;

#[test]
fn three_regions_answer_like_one_node_holding_all_the_data() {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/drivers/regions.py");
    let out = Command::new("python3")
        .arg(&driver)
        .args(["--strata", env!("CARGO_BIN_EXE_strata")])
        .args(["--series", "600", "--samples", "6", "--repeats", "1", "--warmup", "0"])
        .output()
        .expect("run python3 benches/drivers/regions.py");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}: {}\n{stdout}\n{stderr}", driver.display(), out.status);
    assert!(stdout.contains("ok: every federated answer equals the single node's"), "{stdout}");
    for policy in ["aggregates", "raw", "all-aggregates"] {
        assert!(stdout.contains(&format!("== policy {policy}:")), "policy {policy} not run:\n{stdout}");
    }
}
