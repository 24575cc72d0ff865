//! `[hot] kind = "scylla"` through the real binary, on the kassandra CQL
//! server (`$STRATA_KASSANDRA_BIN` or the tools cache, see
//! scripts/install-test-deps.sh): writes answered after the cluster
//! acknowledged them, queried back, served after SIGTERM and after
//! `kill -9` (the log replays from the offsets recorded in the cluster), and
//! by a second node with an empty data dir (the data lives in the cluster,
//! not in the node's embedded hot store).

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct Kassandra(Child, String);

impl Drop for Kassandra {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kassandra() -> Kassandra {
    let bin = std::env::var_os("STRATA_KASSANDRA_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let tools = std::env::var_os("STRATA_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/strata-tools"));
        tools.join("kassandra-0.14.0/bin/kassandra")
    });
    assert!(bin.is_file(), "kassandra missing at {}: run `bash scripts/install-test-deps.sh`", bin.display());
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child =
        Command::new(bin).args(["--addr", &addr]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("kassandra listening"), "{line:?}");
    Kassandra(child, addr)
}

fn env(k: &Kassandra) -> Vec<(&'static str, String)> {
    vec![
        ("STRATA_HOT__KIND", "scylla".to_owned()),
        ("STRATA_HOT__SCYLLA__NODES", format!("[\"{}\"]", k.1)),
        ("STRATA_HOT__SCYLLA__KEYSPACE", "e2e".to_owned()),
        ("STRATA_HOT__SCYLLA__REPLICATION", "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_owned()),
        ("STRATA_HOT__SCYLLA__CONSISTENCY", "one".to_owned()),
        ("STRATA_COLD__ENABLED", "false".to_owned()),
    ]
}

fn start(dir: &std::path::Path, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(dir, &env)
}

async fn count_and_sum(c: &reqwest::Client, s: &Server, at: i64) -> (f64, f64) {
    let n = single_value(&query(c, s, "count(count_over_time(sensors_temp[1h]))", at).await);
    let sum = single_value(&query(c, s, "sum(sum_over_time(sensors_temp[1h]))", at).await);
    (n, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scylla_hot_tier_serves_writes_across_restarts_and_nodes() {
    let k = kassandra();
    let env = env(&k);
    let dir = data_dir();
    let c = client();
    let t0 = now_ms() / 1000 * 1000 - 600_000;
    let mut body = String::new();
    for d in 0..20 {
        for i in 0..10 {
            body.push_str(&format!("sensors,device=d{d},farm=f{} temp={} {}\n", d % 2, d * 10 + i, t0 + i * 1000));
        }
    }
    let at = t0 + 20_000;
    let s = start(dir.path(), &env);
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.clone().into_bytes(), false).await.0, 204);
    let want = (20.0, (0..20).map(|d| (0..10).map(|i| f64::from(d * 10 + i)).sum::<f64>()).sum::<f64>());
    assert_eq!(count_and_sum(&c, &s, at).await, want);
    assert_eq!(single_value(&query(&c, &s, r#"sensors_temp{device="d3"}"#, at).await), 39.0);
    let (status, log) = s.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("ScyllaDB hot tier connected"), "{log}");

    // Restart: served from the cluster; more writes, then kill -9 before any flush.
    let s = start(dir.path(), &env);
    assert_eq!(count_and_sum(&c, &s, at).await, want);
    let late = format!("sensors,device=d99,farm=f9 temp=1000 {}\n", t0 + 15_000);
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", late.into_bytes(), false).await.0, 204);
    s.kill9();
    let s = start(dir.path(), &env);
    let want = (21.0, want.1 + 1000.0);
    assert_eq!(count_and_sum(&c, &s, at).await, want, "after kill -9 and the log's replay");

    // Another node with an empty data dir reads the same cluster.
    let other = data_dir();
    let b = start(other.path(), &env);
    assert_eq!(count_and_sum(&c, &b, at).await, want);
    drop(b);
    drop(s);
}
