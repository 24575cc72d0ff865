use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::erasure::status::{COMPLETED, PURGING};

/// Tiers that record the steps run; fail or find data on demand.
struct Fake {
    id: String,
    nodes: u32,
    cold: bool,
    calls: Arc<Mutex<Vec<String>>>,
    fail_once: Mutex<Option<Step>>,
    dirty_verifications: Mutex<u32>,
    /// Verifications that find covered samples only in Kafka records (waiting for rolls).
    kafka_waiting: Mutex<u32>,
}

impl Fake {
    fn new(id: &str, nodes: u32, calls: &Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            id: id.into(),
            nodes,
            cold: true,
            calls: Arc::clone(calls),
            fail_once: Mutex::new(None),
            dirty_verifications: Mutex::new(0),
            kafka_waiting: Mutex::new(0),
        }
    }
}

impl Tiers for Fake {
    fn node_id(&self) -> &str {
        &self.id
    }
    fn nodes_expected(&self) -> u32 {
        self.nodes
    }
    fn log_policy(&self) -> String {
        "fake".into()
    }
    fn has(&self, step: Step) -> bool {
        step != Step::Cold || self.cold
    }
    fn run<'a>(&'a self, step: Step, _req: &'a Request) -> BoxFuture<'a, anyhow::Result<StepProgress>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!("{}:{}", self.id, step.key()));
            if *self.fail_once.lock().unwrap() == Some(step) {
                *self.fail_once.lock().unwrap() = None;
                anyhow::bail!("injected failure in {}", step.key());
            }
            Ok(StepProgress { rows_removed: 5, files_rewritten: 1, bytes_rewritten: 100, ..Default::default() })
        })
    }
    fn verify<'a>(&'a self, _req: &'a Request) -> BoxFuture<'a, anyhow::Result<Verification>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!("{}:verify", self.id));
            let mut dirty = self.dirty_verifications.lock().unwrap();
            let found = if *dirty > 0 {
                *dirty -= 1;
                2
            } else {
                0
            };
            let mut waiting = self.kafka_waiting.lock().unwrap();
            let kafka_samples = if *waiting > 0 {
                *waiting -= 1;
                3
            } else {
                0
            };
            Ok(Verification { at: 1, hot_samples: found, kafka_samples, ..Default::default() })
        })
    }
}

async fn registry(dir: &std::path::Path) -> Arc<Registry> {
    let url = crate::registry::store::RegistryStore::sqlite_url(dir);
    let tokens = crate::auth::StaticTokens::new(&BTreeMap::new()).unwrap();
    Registry::open(&url, tokens, "local", Default::default()).await.unwrap()
}

async fn request(registry: &Registry, id: &str) {
    let spec =
        DeleteSpec { selectors: vec!["{device=\"d-17\"}".into()], start: 0, end: 100, requested_by: "admin".into() };
    let now = crate::registry::now_ms();
    let status = Status::new(now, 3_600_000);
    let row = DeleteRow {
        id: id.into(),
        tenant_id: "farm".into(),
        request: serde_json::to_string(&spec).unwrap(),
        status: serde_json::to_string(&status).unwrap(),
        requested_at: now,
        completed_at: None,
    };
    registry.store().insert_delete(&row).await.unwrap();
}

async fn status(registry: &Registry, id: &str) -> (Status, Option<i64>) {
    let row = registry.store().delete_request(id).await.unwrap().unwrap();
    (serde_json::from_str(&row.status).unwrap(), row.completed_at)
}

fn worker(registry: &Arc<Registry>, tiers: Arc<dyn Tiers>, completions: &Arc<Mutex<u32>>) -> Worker {
    let c = Arc::clone(completions);
    Worker::new(Arc::clone(registry), tiers, Duration::from_secs(3600), Arc::new(move |_, _| *c.lock().unwrap() += 1))
}

#[tokio::test]
async fn a_request_goes_through_every_step_in_order_and_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    request(&reg, "del_1").await;
    let calls = Arc::default();
    let done = Arc::default();
    let w = worker(&reg, Arc::new(Fake::new("n1", 1, &calls)), &done);
    assert_eq!(w.pass().await.unwrap(), 1);
    assert_eq!(*calls.lock().unwrap(), ["n1:log", "n1:hot", "n1:cold", "n1:verify"]);
    let (s, completed_at) = status(&reg, "del_1").await;
    assert_eq!(s.state, COMPLETED);
    assert_eq!(completed_at, s.completed_at);
    assert_eq!(s.bound_met, Some(true));
    assert_eq!(s.tiers["hot"].rows_removed, 5);
    assert_eq!(s.rows_removed, 15, "log, hot and cold");
    assert!(s.verification.unwrap().clean());
    assert_eq!(*done.lock().unwrap(), 1);
    assert!(reg.tombstones(&TenantId::new("farm").unwrap()).unwrap()[0].purged, "nodes see it purged");
    // Nothing pending: the next pass does nothing.
    assert_eq!(w.pass().await.unwrap(), 0);
    assert_eq!(calls.lock().unwrap().len(), 4);
    assert_eq!(*done.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_failed_step_is_recorded_and_resumed_without_rerunning_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    request(&reg, "del_2").await;
    let calls = Arc::default();
    let fake = Fake::new("n1", 1, &calls);
    *fake.fail_once.lock().unwrap() = Some(Step::Hot);
    let fake = Arc::new(fake);
    let done = Arc::default();
    let w = worker(&reg, Arc::clone(&fake) as Arc<dyn Tiers>, &done);
    assert_eq!(w.pass().await.unwrap(), 0);
    let (s, completed_at) = status(&reg, "del_2").await;
    assert_eq!(completed_at, None);
    assert_eq!(s.state, PURGING);
    let node = &s.nodes["n1"];
    assert_eq!(node.step(Step::Log).state, StepState::Done);
    assert_eq!(node.step(Step::Hot).state, StepState::Running, "as a crash would leave it");
    assert!(node.last_error.as_deref().unwrap().contains("injected failure in hot"), "{node:?}");
    // A new worker (a restarted node) resumes at the hot step.
    let w = worker(&reg, fake, &done);
    assert_eq!(w.pass().await.unwrap(), 1);
    assert_eq!(*calls.lock().unwrap(), ["n1:log", "n1:hot", "n1:hot", "n1:cold", "n1:verify"]);
    assert_eq!(status(&reg, "del_2").await.0.state, COMPLETED);
}

#[tokio::test]
async fn covered_data_found_by_the_verification_is_purged_again() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    request(&reg, "del_3").await;
    let calls = Arc::default();
    let fake = Fake::new("n1", 1, &calls);
    *fake.dirty_verifications.lock().unwrap() = 1;
    let done = Arc::default();
    let w = worker(&reg, Arc::new(fake), &done);
    assert_eq!(w.pass().await.unwrap(), 1);
    assert_eq!(calls.lock().unwrap().len(), 8, "two rounds");
    let (s, _) = status(&reg, "del_3").await;
    assert_eq!(s.nodes["n1"].attempts, 2);
    assert_eq!(s.tiers["hot"].rows_removed, 10, "both rounds counted");
    assert!(s.verification.unwrap().clean());
}

#[tokio::test]
async fn a_cluster_request_completes_once_every_node_purged_its_part() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    request(&reg, "del_4").await;
    let calls = Arc::default();
    let done = Arc::default();
    let mut b = Fake::new("n2", 2, &calls);
    b.cold = false;
    let (wa, wb) = (worker(&reg, Arc::new(Fake::new("n1", 2, &calls)), &done), worker(&reg, Arc::new(b), &done));
    assert_eq!(wa.pass().await.unwrap(), 1, "n1's part is done");
    let (s, completed_at) = status(&reg, "del_4").await;
    assert_eq!((s.state.as_str(), completed_at), (PURGING, None), "n2 has not purged yet");
    assert_eq!(wb.pass().await.unwrap(), 1);
    let (s, completed_at) = status(&reg, "del_4").await;
    assert_eq!(s.state, COMPLETED);
    assert!(completed_at.is_some());
    assert_eq!(s.nodes["n2"].step(Step::Cold).state, StepState::Off);
    assert_eq!(s.tiers["cold"].state, StepState::Done, "done on n1, off on n2");
    assert_eq!(*done.lock().unwrap(), 1, "one audit record");
}

#[tokio::test]
async fn kafka_records_waiting_for_rolls_repeat_only_the_log_step_until_they_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    request(&reg, "del_k").await;
    let calls = Arc::default();
    let done = Arc::default();
    let fake = Fake::new("n1", 1, &calls);
    *fake.kafka_waiting.lock().unwrap() = 2;
    let w = worker(&reg, Arc::new(fake), &done);
    // Each pass: one round, then it waits for the next check.
    assert_eq!(w.pass().await.unwrap(), 0);
    assert_eq!(*calls.lock().unwrap(), ["n1:log", "n1:hot", "n1:cold", "n1:verify"]);
    let (s, completed_at) = status(&reg, "del_k").await;
    assert_eq!((s.state.as_str(), completed_at), (PURGING, None));
    assert_eq!(s.nodes["n1"].verification.as_ref().unwrap().kafka_samples, 3);
    assert_eq!(w.pass().await.unwrap(), 0);
    assert_eq!(w.pass().await.unwrap(), 1);
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls[4..], ["n1:log", "n1:verify", "n1:log", "n1:verify"], "hot and cold are not repeated");
    let (s, _) = status(&reg, "del_k").await;
    assert_eq!(s.state, COMPLETED);
    assert_eq!(s.verification.unwrap().kafka_samples, 0);
    assert_eq!(s.nodes["n1"].attempts, 3);
}

#[tokio::test]
async fn kafka_records_still_waiting_when_the_bound_passes_complete_the_request_and_stay_counted() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    request(&reg, "del_b").await;
    let calls = Arc::default();
    let done: Arc<Mutex<u32>> = Arc::default();
    let fake = Fake::new("n1", 1, &calls);
    *fake.kafka_waiting.lock().unwrap() = 5;
    let c = Arc::clone(&done);
    // A bound already passed when the worker looks.
    let w =
        Worker::new(Arc::clone(&reg), Arc::new(fake), Duration::ZERO, Arc::new(move |_, _| *c.lock().unwrap() += 1));
    assert_eq!(w.pass().await.unwrap(), 1);
    let (s, _) = status(&reg, "del_b").await;
    assert_eq!(s.state, COMPLETED);
    assert_eq!(s.verification.unwrap().kafka_samples, 3, "what is left is shown");
    assert_eq!(*done.lock().unwrap(), 1);
}
