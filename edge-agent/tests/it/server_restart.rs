//! The server killed (`kill -9`) and restarted while the agent sends a steady
//! stream: the agent keeps acknowledging into its queue, and once the server
//! is back every acknowledged sample is stored exactly once — the batches in
//! flight at the kill (stored or not, answered or not) included.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::{Agent, Server, free_port, post};
use crate::{SAMPLES_PER_REQUEST, now_ms, request_body, server_totals, wait_until};

#[test]
fn a_server_killed_mid_send_and_restarted_gets_every_acknowledged_sample_once() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(server_dir.path(), port);
    let agent = Agent::start(agent_dir.path(), &server.base, &[]);
    let base_ms = now_ms() - 300_000;
    // A writer posting one request every 20 ms until told to stop; it counts what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, url) = (Arc::clone(&stop), agent.base.clone());
        std::thread::spawn(move || {
            let (mut count, mut sum, mut r) = (0usize, 0.0, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let (body, s) = request_body(r, base_ms);
                let (status, _, text) = post(&url, "/api/v2/write", body.as_bytes(), &[]).expect("agent answers");
                assert_eq!(status, 204, "{text}");
                count += SAMPLES_PER_REQUEST;
                sum += s;
                r += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (count, sum)
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    drop(server); // kill -9 (SIGKILL) mid-stream
    std::thread::sleep(Duration::from_millis(1_500));
    let server = Server::start(server_dir.path(), port);
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    let (count, sum) = writer.join().unwrap();
    assert!(count >= 20 * SAMPLES_PER_REQUEST, "only {count} samples written");
    wait_until("the queue to drain", Duration::from_secs(60), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    assert_eq!(server_totals(&server, now_ms()), (count as f64, sum), "every acknowledged sample, once");
    assert!(agent.metrics()["strata_edge_send_errors_total"] >= 1.0, "the kill was noticed");
}
