//! A damaged ingest log does not take the node down, and a full disk is
//! refused with 507 until space returns, without a restart (issue 13,
//! items 11 to 13).

use crate::harness::*;
use std::path::{Path, PathBuf};

const ADMIN: &str = "log-damage-admin-token-0123456789";

/// One log partition (so every request is one record of one file) and no
/// background flush (so the samples come back from the log on restart).
const ENV: &[(&str, &str)] =
    &[("STRATA_LOG__PARTITIONS", "1"), ("STRATA_HOT_STORE__FLUSH_INTERVAL", "1h"), ("STRATA_ADMIN__TOKEN", ADMIN)];

/// `n` samples of one series, 1 s apart from `t0`, as line protocol.
fn lines(t0: i64, first: usize, n: usize) -> Vec<u8> {
    (first..first + n).map(|i| format!("m,device=d1 v={i} {}\n", t0 + i as i64 * 1000)).collect::<String>().into_bytes()
}

/// Writes 500 samples in 5 requests (5 log records of 100 samples).
async fn write_500(c: &reqwest::Client, s: &Server, t0: i64) {
    for r in 0..5 {
        let (status, body) = write(c, s, "/api/v2/write?bucket=b&precision=ms", lines(t0, r * 100, 100), false).await;
        assert_eq!(status, 204, "{body}");
    }
}

async fn count(c: &reqwest::Client, s: &Server, t0: i64) -> f64 {
    let data = query(c, s, r#"count_over_time(m_v{device="d1"}[1h])"#, t0 + 3_000_000).await;
    if data["result"].as_array().is_some_and(|r| r.is_empty()) {
        return 0.0;
    }
    single_value(&data)
}

fn segment(data: &Path) -> PathBuf {
    data.join("log/p0000/00000000000000000000.seg")
}

/// Byte ranges of the frames of a log segment (25-byte header, 16-byte frame headers).
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 25;
    while pos + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos, pos + 16 + len));
        pos += 16 + len;
    }
    out
}

/// Flips a byte in the payload of record `i` of the segment.
fn flip_record(data: &Path, i: usize, at_end: bool) {
    let path = segment(data);
    let mut bytes = std::fs::read(&path).unwrap();
    let frames = frames(&bytes);
    assert_eq!(frames.len(), 5, "one record per request");
    let (start, end) = frames[i];
    let at = if at_end { end - 1 } else { (start + 16 + end) / 2 };
    bytes[at] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
}

fn quarantined(data: &Path) -> usize {
    std::fs::read_dir(data.join("log/quarantine")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_mid_segment_is_quarantined_and_the_node_keeps_serving() {
    let dir = data_dir();
    let c = client();
    let t0 = now_ms() / 1000 * 1000 - 3_000_000;
    let s = Server::start(dir.path(), ENV);
    write_500(&c, &s, t0).await;
    s.kill9();
    flip_record(dir.path(), 2, false);

    let s = Server::start(dir.path(), ENV);
    assert_eq!(count(&c, &s, t0).await, 400.0, "the records before and after the damaged one are replayed");
    assert_eq!(metric(&c, &s, "strata_ingest_log_quarantined_segments_total").await, 1.0);
    assert!(metric(&c, &s, "strata_ingest_log_quarantined_bytes_total").await > 0.0);
    assert_eq!(metric(&c, &s, "strata_ingest_log_lost_offsets_total").await, 1.0);
    assert_eq!(quarantined(dir.path()), 1);
    let log = s.stderr.lock().unwrap().clone();
    assert!(log.contains("corrupt ingest log segment"), "{log}");
    assert!(log.contains("00000000000000000000.seg"), "the file is named: {log}");

    // New writes get fresh offsets: after another crash, everything is replayed once.
    let (status, body) = write(&c, &s, "/api/v2/write?bucket=b&precision=ms", lines(t0, 500, 100), false).await;
    assert_eq!(status, 204, "{body}");
    s.kill9();
    let s = Server::start(dir.path(), ENV);
    assert_eq!(count(&c, &s, t0).await, 500.0);
    assert_eq!(metric(&c, &s, "strata_ingest_log_quarantined_segments_total").await, 0.0, "the repair was durable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_last_complete_record_is_corruption_not_a_torn_tail() {
    let dir = data_dir();
    let c = client();
    let t0 = now_ms() / 1000 * 1000 - 3_000_000;
    let s = Server::start(dir.path(), ENV);
    write_500(&c, &s, t0).await;
    s.kill9();
    flip_record(dir.path(), 4, true);

    let s = Server::start(dir.path(), ENV);
    assert_eq!(count(&c, &s, t0).await, 400.0);
    let log = s.stderr.lock().unwrap().clone();
    assert!(log.contains("corrupt ingest log segment"), "{log}");
    assert!(log.contains("not a torn write"), "{log}");
    assert!(!log.contains("torn tail"), "acknowledged records are not called unacknowledged: {log}");
    assert_eq!(metric(&c, &s, "strata_ingest_log_quarantined_segments_total").await, 1.0);
    assert_eq!(metric(&c, &s, "strata_ingest_log_lost_offsets_total").await, 1.0, "exactly one record lost");
    assert_eq!(quarantined(dir.path()), 1);
    let (status, body) = write(&c, &s, "/api/v2/write?bucket=b&precision=ms", lines(t0, 400, 100), false).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(count(&c, &s, t0).await, 500.0);
}

/// A small tmpfs mounted on a temporary directory, unmounted on drop.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(bytes: u64) -> Option<SmallFs> {
        let dir = data_dir();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallFs(dir))
    }

    /// Writes a filler file until the file system is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_writes_resume_when_space_returns() {
    let Some(fs) = SmallFs::mount(32 << 20) else {
        eprintln!(
            "\n!!! SKIPPED a_full_disk_answers_507_and_writes_resume_when_space_returns: \
             cannot mount a tmpfs (needs root) !!!\n"
        );
        return;
    };
    let c = client();
    let t0 = now_ms() / 1000 * 1000 - 3_000_000;
    let s = Server::start(fs.0.path(), ENV);
    let url = "/api/v2/write?bucket=b&precision=ms";
    assert_eq!(write(&c, &s, url, lines(t0, 0, 100), false).await.0, 204);
    let filler = fs.fill();

    for attempt in 0..2 {
        let (status, body) = write(&c, &s, url, lines(t0, 100, 2000), false).await;
        assert_eq!(status, 507, "attempt {attempt}: {body}");
        assert!(body.contains("/log/p0000/"), "the message names the path: {body}");
    }
    // A flush while full fails, but must not make durable writes fail later.
    let flush = c.post(s.url("/internal/flush")).bearer_auth(ADMIN).send().await.unwrap();
    assert!(!flush.status().is_success(), "the flush cannot succeed on a full disk");
    assert_eq!(metric(&c, &s, "strata_ingest_log_disk_full_refusals_total").await, 2.0);

    std::fs::remove_file(filler).unwrap();
    let (status, body) = write(&c, &s, url, lines(t0, 100, 2000), false).await;
    assert_eq!(status, 204, "writes resume without a restart: {body}");
    assert_eq!(count(&c, &s, t0).await, 2100.0);
    let flush = c.post(s.url("/internal/flush")).bearer_auth(ADMIN).send().await.unwrap();
    assert!(flush.status().is_success(), "{}", flush.text().await.unwrap());
    let (status, body) = write(&c, &s, url, lines(t0, 2100, 100), false).await;
    assert_eq!(status, 204, "{body}");
    s.kill9();
    let s = Server::start(fs.0.path(), ENV);
    assert_eq!(count(&c, &s, t0).await, 2200.0, "nothing refused was stored, nothing acknowledged was lost");
    drop(s);
}
