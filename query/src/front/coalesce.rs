//! Coalescing of identical in-flight requests.
//!
//! The first request of a key starts a *flight*: its work runs on its own
//! task, detached from the request, and every request of the same key that
//! arrives while it runs waits for the same answer (errors included). The
//! work is canceled only when every waiting request has gone away. A
//! request does not join a flight that began before a write it may have to
//! see (a write of the tenant, applied since the flight began, meeting what
//! the query reads): it starts a new one.

use super::split::Span;
use crate::engine::CancelToken;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use strata_schemas::TenantId;

/// What a flight's query reads, for the join check: `None` is "anything".
#[derive(Debug, Clone)]
pub struct FlightReads {
    /// Timestamps read.
    pub span: Span,
    /// Metric names read (`None`: any).
    pub names: Option<BTreeSet<String>>,
}

impl FlightReads {
    /// Reads every timestamp of every metric.
    pub fn all() -> Self {
        Self { span: Span::ALL, names: None }
    }
}

pub(super) struct Flight<V> {
    rx: tokio::sync::watch::Receiver<Option<V>>,
    waiters: AtomicUsize,
    cancel: CancelToken,
    pub(super) tenant: TenantId,
    pub(super) seq: u64,
    pub(super) reads: FlightReads,
}

/// The flights in the air, by key.
pub(super) struct Flights<V> {
    map: Arc<parking_lot::Mutex<HashMap<String, Arc<Flight<V>>>>>,
}

impl<V> Default for Flights<V> {
    fn default() -> Self {
        Self { map: Default::default() }
    }
}

/// Decrements a flight's waiters when a request stops waiting; the last one
/// out cancels the work.
struct Waiting<V>(Arc<Flight<V>>);

impl<V> Drop for Waiting<V> {
    fn drop(&mut self) {
        if self.0.waiters.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.cancel.cancel();
        }
    }
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// It started the flight.
    Led,
    /// It waited for a flight another request started.
    Followed,
}

impl<V: Clone + Send + Sync + 'static> Flights<V> {
    /// Answers `key`: joins its flight when `may_join` accepts it, else
    /// starts one running `work` (with `cancel`, the token `work` obeys),
    /// registered with `begin` (`(tenant, seq)`) and finished with `end`.
    /// `None` when the work panicked.
    #[allow(clippy::too_many_arguments)]
    #[expect(
        clippy::disallowed_methods,
        reason = "one evaluation shared by every waiter must not die with the first caller's request future; it is cancelled when the last waiter leaves"
    )]
    pub(super) async fn run<F>(
        &self,
        key: String,
        tenant: &TenantId,
        reads: FlightReads,
        cancel: CancelToken,
        may_join: impl FnOnce(&Flight<V>) -> bool,
        begin: impl FnOnce() -> u64,
        end: impl FnOnce() + Send + 'static,
        work: F,
    ) -> (Option<V>, Joined)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let (flight, joined) = {
            let mut map = self.map.lock();
            match map.get(&key) {
                Some(f) if f.rx.borrow().is_none() && f.rx.has_changed().is_ok() && may_join(f) => {
                    f.waiters.fetch_add(1, Ordering::AcqRel);
                    (Arc::clone(f), Joined::Followed)
                }
                _ => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    let f = Arc::new(Flight {
                        rx,
                        waiters: AtomicUsize::new(1),
                        cancel,
                        tenant: tenant.clone(),
                        seq: begin(),
                        reads,
                    });
                    map.insert(key.clone(), Arc::clone(&f));
                    let (map, key) = (Arc::clone(&self.map), key.clone());
                    tokio::spawn(async move {
                        let v = work.await;
                        let _ = tx.send(Some(v));
                        // A finished flight leaves the map (a newer one under its key stays).
                        let mut map = map.lock();
                        if map.get(&key).is_some_and(|f| f.rx.borrow().is_some()) {
                            map.remove(&key);
                        }
                        drop(map);
                        end();
                    });
                    (f, Joined::Led)
                }
            }
        };
        let waiting = Waiting(Arc::clone(&flight));
        let mut rx = flight.rx.clone();
        let out = rx.wait_for(Option::is_some).await.ok().and_then(|v| v.clone());
        drop(waiting);
        (out, joined)
    }

    /// Flights in the air (finished ones not yet collected included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.lock().len()
    }
}
