//! Hostile PromQL queries against the real binary (issue 13): expressions
//! deep enough to overflow a thread stack, subqueries of hundreds of
//! millions of steps, sparse range queries whose step grid outgrows the
//! samples, and `label_replace` output without end. Each must be refused
//! with the limit's name while the node stays up, answers `/-/ready`, and
//! stays under a memory watchdog (the child's VmRSS, polled while the query runs).

use crate::harness::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const GIB: u64 = 1 << 30;

/// Resident set size of `pid` in bytes (None once it is gone).
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Polls the child's RSS every 10 ms; past `limit` it kills the child
/// (`kill -9`) so that a runaway query cannot take the test machine down.
struct Watchdog {
    done: Arc<AtomicBool>,
    tripped: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    limit: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(pid: u32, limit: u64) -> Self {
        let (done, tripped, peak) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (d, t, p) = (Arc::clone(&done), Arc::clone(&tripped), Arc::clone(&peak));
        peak.store(rss(pid).unwrap_or(0), Ordering::Relaxed);
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                let Some(now) = rss(pid) else { return };
                p.fetch_max(now, Ordering::Relaxed);
                if now > limit {
                    t.store(true, Ordering::Relaxed);
                    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { done, tripped, peak, limit, thread: Some(thread) }
    }

    /// Stops polling; fails when the child passed the limit.
    fn finish(mut self, what: &str) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let peak = self.peak.load(Ordering::Relaxed);
        eprintln!("{what}: peak RSS {} MiB", peak >> 20);
        assert!(
            !self.tripped.load(Ordering::Relaxed),
            "{what}: the node's RSS passed {} MiB (peak seen {} MiB); killed",
            self.limit >> 20,
            peak >> 20
        );
    }
}

/// POSTs `params` (form-encoded, as Grafana does) to `path`; status and JSON
/// body. A dropped connection (the node died) is status 0.
async fn post(c: &reqwest::Client, s: &Server, path: &str, params: &[(&str, &str)]) -> (u16, serde_json::Value) {
    match c.post(s.url(path)).form(params).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(serde_json::Value::Null))
        }
        Err(e) => (0, serde_json::Value::String(e.to_string())),
    }
}

/// Runs one hostile request under a watchdog of `limit` bytes, then checks
/// that the node is alive and ready; returns its status and body.
async fn hostile(
    c: &reqwest::Client,
    s: &mut Server,
    limit: u64,
    path: &str,
    params: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let what = format!("{path} {:.60}", params[0].1);
    let dog = Watchdog::start(s.child.id(), limit);
    let out = post(c, s, path, params).await;
    dog.finish(&what);
    assert!(s.child.try_wait().unwrap().is_none(), "{what}: the node died; stderr:\n{}", s.stderr.lock().unwrap());
    assert_eq!(http_status(&s.base, "/-/ready"), Some(200), "{what}: the node does not answer /-/ready");
    out
}

fn assert_refused(out: &(u16, serde_json::Value), status: u16, error_type: &str, names: &str) {
    assert_eq!(out.0, status, "{}", out.1);
    assert_eq!(out.1["status"], "error", "{}", out.1);
    assert_eq!(out.1["errorType"], error_type, "{}", out.1);
    assert!(out.1["error"].as_str().unwrap_or("").contains(names), "{}", out.1);
}

/// Item 1: a ~6 KB query of 3,000 chained or nested terms overflowed a
/// worker's stack and aborted the process, on every endpoint that parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_queries_are_bad_data_and_the_node_survives() {
    let dir = data_dir();
    let mut s = Server::start(dir.path(), &[]);
    let c = client();
    let nest = |open: &str, n: usize, close: &str| format!("{}up{}", open.repeat(n), close.repeat(n));
    let queries = [vec!["1"; 3000].join("+"), nest("abs(", 3000, ")"), nest("sum(", 3000, ")"), nest("(", 10_000, ")")];
    let now = format!("{}", now_ms() / 1000);
    let start = format!("{}", now_ms() / 1000 - 600);
    for q in &queries {
        for (path, extra) in [
            ("/api/v1/query", vec![("time", now.as_str())]),
            ("/api/v1/query_range", vec![("start", start.as_str()), ("end", now.as_str()), ("step", "60")]),
            ("/api/v1/format_query", vec![]),
            ("/api/v1/parse_query", vec![]),
        ] {
            let mut params = vec![("query", q.as_str())];
            params.extend(extra);
            let out = hostile(&c, &mut s, GIB, path, &params).await;
            assert_refused(&out, 400, "bad_data", "nested too deeply");
        }
    }
    // The deepest accepted query of the costliest shape (256 levels of
    // `label_replace`, ~15 KB of stack a level in this debug build) runs on
    // the async worker (instant queries start there) and in the tree
    // translation of `parse_query`.
    let mut deepest = "up".to_owned();
    for _ in 0..255 {
        deepest = format!("label_replace({deepest}, \"b\", \"$1\", \"a\", \"(.*)\")");
    }
    for path in ["/api/v1/query", "/api/v1/format_query", "/api/v1/parse_query"] {
        let out = hostile(&c, &mut s, GIB, path, &[("query", &deepest), ("time", &now)]).await;
        assert_eq!(out.0, 200, "{path}: {}", out.1);
    }
    let out = hostile(&c, &mut s, GIB, "/api/v1/query", &[("query", &format!("abs({deepest})")), ("time", &now)]).await;
    assert_refused(&out, 400, "bad_data", "limit 256");
}

/// Item 3: `count_over_time(vector(1)[10y:1s])` (40 bytes, no data) built
/// 315 million steps in memory (past 6 GB in 12 s); `[1y:1s]` under
/// `max_samples = 100000` was refused only after a 720 MB peak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subquery_steps_are_refused_before_they_are_built() {
    let now = format!("{}", now_ms() / 1000);
    let dir = data_dir();
    let mut s = Server::start(dir.path(), &[]);
    let c = client();
    let q = [("query", "count_over_time(vector(1)[10y:1s])"), ("time", now.as_str())];
    let out = hostile(&c, &mut s, GIB, "/api/v1/query", &q).await;
    assert_refused(&out, 422, "execution", "too many samples");
    drop(s);

    let dir = data_dir();
    let mut s = Server::start(dir.path(), &[("STRATA_QUERY__MAX_SAMPLES", "100000")]);
    let q = [("query", "count_over_time(vector(1)[1y:1s])"), ("time", now.as_str())];
    let out = hostile(&c, &mut s, 512 << 20, "/api/v1/query", &q).await;
    assert_refused(&out, 422, "execution", "too many samples");
}

/// Item 4: every selected series holds a grid of every step (16 bytes a
/// step) whether or not it has data there; 22,000 sparse series over
/// 11,000 steps reached 3.8 GB. The grid is now charged to `max_samples`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_range_query_is_charged_for_its_step_grid() {
    let dir = data_dir();
    // 10 million points: 160 MB of grid at most.
    let mut s = Server::start(dir.path(), &[("STRATA_QUERY__MAX_SAMPLES", "10000000")]);
    let c = client();
    let t = now_ms() / 1000 * 1000 - 3_600_000;
    // 10,000 series with one sample each: 10,000 × 11,001 steps = 1.76 GB of grid.
    let body: String = (0..10_000).map(|i| format!("sparse,i=s{i} v=1 {t}\n")).collect();
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    let (end, step) = (t / 1000 + 3_600, 7_200.0 / 11_000.0);
    let (start, end, step) = ((end - 7_200).to_string(), end.to_string(), format!("{step:.4}"));
    let q = [("query", "sparse_v"), ("start", start.as_str()), ("end", end.as_str()), ("step", step.as_str())];
    let out = hostile(&c, &mut s, GIB, "/api/v1/query_range", &q).await;
    assert_refused(&out, 422, "execution", "too many samples");
    // A narrower query of the same series is answered.
    let q = [("query", "count(sparse_v)"), ("time", &(t / 1000 + 60).to_string())];
    let out = hostile(&c, &mut s, GIB, "/api/v1/query", &q).await;
    assert_eq!(out.1["data"]["result"][0]["value"][1], "10000", "{}", out.1);
}

/// Item 5: a 40 KB `label_replace` replacement over many series built
/// label values without bound (past 6 GB); `max_query_bytes` (default
/// 256 MiB) now stops it, checked before each value is expanded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_replace_output_is_bounded_by_max_query_bytes() {
    let dir = data_dir();
    let mut s = Server::start(dir.path(), &[]);
    let c = client();
    let t = now_ms() / 1000 * 1000 - 60_000;
    // 1,000 series with a 200-byte label value each.
    let body: String = (0..1_000).map(|i| format!("wide,p={i:0>200} v=1 {t}\n")).collect();
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    // 30,000 `$1` references: 6 MB a series, 6 GB in all.
    let q = format!("label_replace(wide_v, \"x\", \"{}\", \"p\", \"(.*)\")", "$1".repeat(30_000));
    let now = (t / 1000 + 30).to_string();
    let out = hostile(&c, &mut s, GIB, "/api/v1/query", &[("query", &q), ("time", &now)]).await;
    assert_refused(&out, 422, "execution", "max_query_bytes");
    let ok = "count(label_replace(wide_v, \"x\", \"$1\", \"p\", \"(.*)\"))";
    let out = hostile(&c, &mut s, GIB, "/api/v1/query", &[("query", ok), ("time", &now)]).await;
    assert_eq!(out.1["data"]["result"][0]["value"][1], "1000", "{}", out.1);
}
