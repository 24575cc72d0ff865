//! `promtool query …` (Debian's `prometheus` package, a Prometheus client
//! nobody here wrote) against a running Strata: instant, range, series and
//! label values all return the data written.

use crate::harness::*;
use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}); install it with scripts/install-test-deps.sh"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_queries_strata() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let t = now_ms() / 1000 * 1000 - 120_000;
    let body: String = (0..3)
        .flat_map(|d| {
            (0..5).map(move |i| format!("sensors,device=d{d},farm=f{} temp={}.5 {}\n", d % 2, 20 + i, t + i * 15_000))
        })
        .collect();
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    let at = format!("{}", (t + 60_000) / 1000);

    let out = promtool(&["query", "instant", "--time", &at, &s.base, "sensors_temp{device=\"d1\"}"]);
    assert!(out.contains("sensors_temp{device=\"d1\", farm=\"f1\"} => 24.5"), "{out}");
    let out = promtool(&["query", "instant", "--time", &at, &s.base, "sum by (farm) (sensors_temp)"]);
    assert!(out.contains("{farm=\"f0\"} => 49") && out.contains("{farm=\"f1\"} => 24.5"), "{out}");
    let (start, end) = (format!("{}", t / 1000), format!("{}", (t + 60_000) / 1000));
    let out = promtool(&[
        "query",
        "range",
        "--start",
        &start,
        "--end",
        &end,
        "--step",
        "15s",
        &s.base,
        "sensors_temp{device=\"d0\"}",
    ]);
    for v in ["20.5 @", "21.5 @", "22.5 @", "23.5 @", "24.5 @"] {
        assert!(out.contains(v), "{v} missing from:\n{out}");
    }
    let out = promtool(&["query", "series", "--match", "sensors_temp{farm=\"f0\"}", &s.base]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("device=\"d0\"") && out.contains("device=\"d2\""), "{out}");
    let out = promtool(&["query", "labels", &s.base, "device"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["d0", "d1", "d2"], "{out}");
}
