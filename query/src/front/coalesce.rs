//! Coalescing of identical in-flight requests.
//!
//! The first request of a key starts a *flight* and runs its work, and
//! every request of the same key that arrives while it runs waits for the
//! same answer (errors included). Should the first request go away while
//! others wait, its work goes on in a task of its own; the work is canceled
//! only when every waiting request has gone away. A
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

type Work<V> = std::pin::Pin<Box<dyn Future<Output = V> + Send>>;

/// The request that started a flight, running its work.
struct Leading<V: Clone + Send + Sync + 'static> {
    /// The work; `None` once it has finished (or panicked).
    work: Option<Work<V>>,
    /// Answers the followers; `None` once it has.
    tx: Option<tokio::sync::watch::Sender<Option<V>>>,
    end: Option<Box<dyn FnOnce() + Send>>,
    map: Arc<parking_lot::Mutex<HashMap<String, Arc<Flight<V>>>>>,
    key: String,
    flight: Arc<Flight<V>>,
}

impl<V: Clone + Send + Sync + 'static> Leading<V> {
    /// Runs the work to its end and answers every follower; `None` when it
    /// panicked (the followers then get `None` too: the sender is dropped).
    async fn lead(&mut self) -> Option<V> {
        let out = caught(self.work.as_mut()?).await;
        self.work = None;
        if let (Some(v), Some(tx)) = (&out, self.tx.take()) {
            let _ = tx.send(Some(v.clone()));
        }
        self.finish();
        out
    }

    /// The flight leaves the map (a newer one under its key stays), its
    /// followers stop waiting (answered, or the sender dropped) and `end` runs.
    fn finish(&mut self) {
        finish(&self.map, &self.key, &self.flight, self.tx.take(), self.end.take());
    }
}

/// Runs `work` to its end; `None` when it panicked.
async fn caught<V>(work: &mut Work<V>) -> Option<V> {
    std::future::poll_fn(|cx| match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.as_mut().poll(cx))) {
        Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
        Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Some(v)),
        Err(_) => std::task::Poll::Ready(None),
    })
    .await
}

fn finish<V>(
    map: &parking_lot::Mutex<HashMap<String, Arc<Flight<V>>>>,
    key: &str,
    flight: &Arc<Flight<V>>,
    tx: Option<tokio::sync::watch::Sender<Option<V>>>,
    end: Option<Box<dyn FnOnce() + Send>>,
) {
    let mut map = map.lock();
    if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
        map.remove(key);
    }
    drop(map);
    drop(tx);
    if let Some(end) = end {
        end();
    }
}

impl<V: Clone + Send + Sync + 'static> Drop for Leading<V> {
    /// The leading request went away before its work finished: if others
    /// wait for it, the work goes on in a task of its own and answers them;
    /// else it stops here (and its token is canceled).
    ///
    /// (An unmanaged task on purpose: a flight's work, shared by every
    /// waiter, must not die with the request that started it while others
    /// wait; it is canceled when the last waiter leaves.)
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        // Under the map's lock no request can join in the meantime.
        let map = Arc::clone(&self.map);
        let guard = map.lock();
        let others = self.flight.waiters.load(Ordering::Acquire) > 1;
        let runtime = tokio::runtime::Handle::try_current();
        match (others, runtime) {
            (true, Ok(rt)) => {
                drop(guard);
                let (tx, end, map, key, flight) = (
                    self.tx.take(),
                    self.end.take(),
                    Arc::clone(&self.map),
                    self.key.clone(),
                    Arc::clone(&self.flight),
                );
                let mut work = work;
                rt.spawn(async move {
                    // A panic drops the sender: the others get `None`.
                    let tx = match caught(&mut work).await {
                        Some(v) => tx.inspect(|tx| {
                            let _ = tx.send(Some(v));
                        }),
                        None => None,
                    };
                    finish(&map, &key, &flight, tx, end);
                });
            }
            _ => {
                // Out of the map before the lock goes: nobody joins a flight
                // whose answer will not come.
                let mut guard = guard;
                if guard.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
                    guard.remove(&self.key);
                }
                drop(guard);
                drop(work);
                self.finish();
            }
        }
        // The leader's own share of the waiters (the last one out cancels).
        drop(Waiting(Arc::clone(&self.flight)));
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
    ///
    /// The request that starts a flight runs its work itself, in its own
    /// future: a task of its own would cost every query a hand-off to
    /// another worker and back (a third of a one-device query's time over
    /// HTTP beyond the round trip itself). Only when that request goes away
    /// while others wait does the work move to a task of its own
    /// ([`Leading`]'s drop), so the others still get their answer.
    #[allow(clippy::too_many_arguments)]
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
        let flight = {
            let mut map = self.map.lock();
            match map.get(&key) {
                Some(f) if f.rx.borrow().is_none() && f.rx.has_changed().is_ok() && may_join(f) => {
                    f.waiters.fetch_add(1, Ordering::AcqRel);
                    Ok(Arc::clone(f))
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
                    Err(Leading {
                        work: Some(Box::pin(work)),
                        tx: Some(tx),
                        end: Some(Box::new(end)),
                        map: Arc::clone(&self.map),
                        key,
                        flight: f,
                    })
                }
            }
        };
        match flight {
            Ok(flight) => {
                let waiting = Waiting(Arc::clone(&flight));
                let mut rx = flight.rx.clone();
                let out = rx.wait_for(Option::is_some).await.ok().and_then(|v| v.clone());
                drop(waiting);
                (out, Joined::Followed)
            }
            Err(mut leading) => (leading.lead().await, Joined::Led),
        }
    }

    /// Flights in the air (finished ones not yet collected included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.lock().len()
    }
}
