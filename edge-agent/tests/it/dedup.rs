//! The server applies a batch once: a batch whose answer was lost (the
//! server stored it, the agent never heard) is sent again with the same
//! sequence number and skipped by the server, so the totals are exact.

use crate::harness::{self, Agent, Server, free_port, post};
use crate::{SAMPLES_PER_REQUEST, now_ms, request_body, server_totals, wait_until};
use std::io::Write as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Forwards the agent's requests to a server and, the first time it sees
/// batch `drop_seq`, throws the server's answer away and closes the
/// connection (what a timeout, a network cut or a `kill -9` of the agent
/// between the server's answer and the cursor write look like).
struct LossyProxy {
    base: String,
    /// `X-Strata-Agent-Seq` of every request, and whether its answer was dropped.
    seen: Arc<Mutex<Vec<(String, bool)>>>,
}

impl LossyProxy {
    fn start(server: String, drop_seq: &'static str) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(req) = harness::read_request(&stream) else { continue };
                let path = req.request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let forward: Vec<(&str, &str)> = ["content-encoding", "x-strata-agent-id", "x-strata-agent-seq"]
                    .into_iter()
                    .filter_map(|k| Some((k, req.headers.get(k)?.as_str())))
                    .collect();
                let seq = req.headers.get("x-strata-agent-seq").cloned().unwrap_or_default();
                let answer = post(&server, &path, &req.body, &forward);
                let mut log = log.lock().unwrap();
                let drop_it = seq == drop_seq && !log.iter().any(|(s, _)| s == drop_seq);
                log.push((seq, drop_it));
                drop(log);
                match answer {
                    Some((status, _, body)) if !drop_it => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} Proxied\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    _ => {} // closed without an answer
                }
            }
        });
        LossyProxy { base, seen }
    }
}

#[test]
fn a_batch_whose_answer_was_lost_is_resent_and_applied_once() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server = Server::start(server_dir.path(), free_port());
    let proxy = LossyProxy::start(server.base.clone(), "2");
    let agent = Agent::start(agent_dir.path(), &proxy.base, &[]);
    let base_ms = now_ms() - 120_000;
    let mut expected = (0.0, 0.0);
    for r in 0..3 {
        let (body, sum) = request_body(r, base_ms);
        let (status, _, text) = post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).unwrap();
        assert_eq!(status, 204, "{text}");
        expected.0 += SAMPLES_PER_REQUEST as f64;
        expected.1 += sum;
        // One batch per request: wait for its delivery.
        wait_until("delivery", Duration::from_secs(30), || {
            agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
        });
    }
    // The agent's start-up clock probe (an empty write, no sequence number) aside.
    let seen: Vec<(String, bool)> = proxy.seen.lock().unwrap().iter().filter(|(s, _)| !s.is_empty()).cloned().collect();
    let want = [("1", false), ("2", true), ("2", false), ("3", false)].map(|(s, d)| (s.to_owned(), d));
    assert_eq!(seen, want, "batch 2 was stored, its answer lost, and sent again");
    // The re-send reached the server's write path (counted there) ...
    assert_eq!(server.metric("strata_ingest_samples_total"), 4.0 * SAMPLES_PER_REQUEST as f64);
    // ... and was skipped when applied: once per log partition its batch went to.
    let skipped = server.metric("strata_ingest_edge_duplicates_skipped_total");
    assert!((1.0..=4.0).contains(&skipped), "{skipped} records skipped (4 devices: at most 4 partitions)");
    assert_eq!(server_totals(&server, now_ms()), expected);
    assert!(agent.metrics()["strata_edge_send_errors_total"] >= 1.0);
}
