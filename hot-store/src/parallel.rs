//! Ordered work on several threads: an explicit flush encodes its series
//! blocks on every core it is given, while the segment file is still
//! written in order, on the calling thread.
//!
//! ```text
//!  inputs:     0    1    2    3    4   …    (owned parts, e.g. 4,096 series each)
//!  mapped by:  C    W    C    W    W        (whoever is free: the caller C or a worker W;
//!                                            at most `window` parts ahead of delivery)
//!  delivered:  0 →  1 →  2 →  3 →  4        (to `sink`, on the caller's thread, in input order)
//! ```
//!
//! The workers are scoped threads started for the call (a flush is rare
//! next to its cost, and a worker inherits the caller's CPU priority, so a
//! background flush's workers stay as low as it). Everything `sink` does,
//! the file writes and fsyncs among it, happens on the calling thread, in
//! the order of the inputs: the result is the same as mapping them one
//! after the other there, and the per-thread crash points of
//! `crate::failpoint` keep firing where they did. A `sink` error stops the
//! workers after the part they are mapping; a panicking worker makes the
//! call panic (the scope re-raises it) instead of waiting for its part.

use std::collections::BTreeMap;

use parking_lot::{Condvar, Mutex};

/// The parts not yet claimed and the results not yet delivered.
struct State<I, R> {
    /// Unclaimed inputs, in order; the next one has index `claimed`.
    inputs: std::vec::IntoIter<I>,
    claimed: usize,
    /// Mapped results waiting for their turn, by input index.
    done: BTreeMap<usize, R>,
    /// Results handed to `sink` so far (the next one due has this index).
    delivered: usize,
    /// Set when the caller gave up (a `sink` error) or a worker panicked.
    stop: bool,
}

struct Shared<I, R> {
    state: Mutex<State<I, R>>,
    /// Signalled when a result is stored, a result is delivered, or `stop` is set.
    changed: Condvar,
    window: usize,
    total: usize,
}

impl<I, R> Shared<I, R> {
    /// The next input and its index, if one is unclaimed and within the window.
    fn claim(&self, st: &mut State<I, R>) -> Option<(usize, I)> {
        if st.stop || st.claimed >= st.delivered + self.window {
            return None;
        }
        let input = st.inputs.next()?;
        st.claimed += 1;
        Some((st.claimed - 1, input))
    }

    fn store(&self, index: usize, r: R) {
        self.state.lock().done.insert(index, r);
        self.changed.notify_all();
    }

    fn halt(&self) {
        self.state.lock().stop = true;
        self.changed.notify_all();
    }
}

/// Sets `stop` when its thread unwinds: the caller then does not wait for
/// a worker's part, nor a worker for the caller's delivery.
struct PanicGuard<'s, I, R>(&'s Shared<I, R>);

impl<I, R> Drop for PanicGuard<'_, I, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.halt();
        }
    }
}

/// Maps every input with `map` on up to `threads` threads (the caller's
/// included) and hands the results to `sink` in input order on the calling
/// thread. At most `window` inputs are claimed beyond the last delivered
/// one, which bounds the results held at once. Stops at the first `sink`
/// error and returns it. `threads <= 1`: everything on the calling thread.
pub(crate) fn map_ordered<I: Send, R: Send, E>(
    inputs: Vec<I>,
    threads: usize,
    window: usize,
    map: impl Fn(I) -> R + Sync,
    mut sink: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E> {
    if threads <= 1 || inputs.len() <= 1 {
        return inputs.into_iter().try_for_each(|i| sink(map(i)));
    }
    let total = inputs.len();
    let shared = Shared {
        state: Mutex::new(State {
            inputs: inputs.into_iter(),
            claimed: 0,
            done: BTreeMap::new(),
            delivered: 0,
            stop: false,
        }),
        changed: Condvar::new(),
        window: window.max(1),
        total,
    };
    std::thread::scope(|scope| {
        for n in 1..threads.min(total) {
            let (shared, map) = (&shared, &map);
            let spawned = std::thread::Builder::new()
                .name(format!("strata-flush-{n}"))
                .spawn_scoped(scope, move || work(shared, map));
            if let Err(e) = spawned {
                tracing::debug!(error = %e, "could not start a flush worker; fewer threads encode");
                break;
            }
        }
        // Unwinding out of `map` or `sink` here stops the workers, which
        // the scope then joins.
        let _guard = PanicGuard(&shared);
        let result = deliver(&shared, &map, &mut sink);
        if result.is_err() {
            shared.halt();
        }
        result
    })
}

/// A worker: claims inputs and maps them until none is left or the caller stopped.
fn work<I, R>(shared: &Shared<I, R>, map: &(impl Fn(I) -> R + Sync)) {
    let _guard = PanicGuard(shared);
    loop {
        let mut st = shared.state.lock();
        let (index, input) = loop {
            if st.stop || st.claimed >= shared.total {
                return;
            }
            match shared.claim(&mut st) {
                Some(claimed) => break claimed,
                None => shared.changed.wait(&mut st),
            }
        };
        drop(st);
        shared.store(index, map(input));
    }
}

/// The caller's loop: delivers results in order, mapping inputs itself
/// while the next result is not ready.
fn deliver<I, R, E>(
    shared: &Shared<I, R>,
    map: &impl Fn(I) -> R,
    sink: &mut impl FnMut(R) -> Result<(), E>,
) -> Result<(), E> {
    let mut st = shared.state.lock();
    while st.delivered < shared.total {
        let due = st.delivered;
        if let Some(r) = st.done.remove(&due) {
            st.delivered += 1;
            drop(st);
            shared.changed.notify_all();
            sink(r)?;
            st = shared.state.lock();
        } else if let Some((index, input)) = shared.claim(&mut st) {
            drop(st);
            let r = map(input);
            st = shared.state.lock();
            st.done.insert(index, r);
        } else if st.stop {
            // A worker panicked holding the part that is due: the scope
            // re-raises its panic as it joins the workers.
            return Ok(());
        } else {
            shared.changed.wait(&mut st);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
