//! Decoding one large read on several cores, delivering it in order.
//!
//! A fleet-wide query reads thousands of series; reading and decoding their
//! blocks is most of its CPU, and every series is independent. Above
//! [`PARALLEL_MIN_SERIES`] candidates, [`HotStore::select_each`] splits the
//! sorted candidates into chunks of [`CHUNK_SERIES`]; the querying thread
//! and workers of a small persistent pool claim chunks in order, and the
//! querying thread hands the decoded series to the caller strictly in
//! candidate order. The caller sees exactly the sequence a single-threaded
//! read gives (same series, same samples, same order, the same error after
//! the same series), so answers stay bit-identical. A newest-sample read
//! (`select_newest`) splits the same way.
//!
//! ```text
//!  chunks:     0    1    2    3    4   …      (CHUNK_SERIES candidates each)
//!  claimed by: Q    W    Q    W    Q          (whoever is free; at most LOOKAHEAD
//!  delivered:  0 →  1 →  2 →  3 →  4          ahead of delivery, so memory stays bounded)
//! ```
//!
//! The pool's threads live for the process (a thread per query would cost
//! its creation and a fresh allocator heap each time). When they are busy
//! with another query, the querying thread decodes every chunk itself; a
//! worker that gets to the job late finds nothing left and returns.
//!
//! `STRATA_READ_THREADS` sets the number of workers (default: available
//! cores − 1, at most 3; `0` turns the split off).
//!
//! [`HotStore::select_each`]: crate::HotStore

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};

use strata_schemas::{ReadError, Sample, SeriesData, TimeRange};

use crate::read::{Candidate, LayerError, Want, read_wanted};
use crate::store::Segment;

/// Candidates below which a read stays on the querying thread.
pub(crate) const PARALLEL_MIN_SERIES: usize = 1024;
/// Candidates per chunk.
pub(crate) const CHUNK_SERIES: usize = 256;
/// Chunks decoded but not yet delivered, at most (bounds the memory held).
const LOOKAHEAD: usize = 6;

type Job = Box<dyn FnOnce() + Send>;

/// The persistent workers: a job queue they take turns on.
struct Pool {
    jobs: Mutex<Sender<Job>>,
    workers: usize,
}

static POOL: LazyLock<Option<Pool>> = LazyLock::new(|| {
    let default = std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).min(3);
    let workers = std::env::var("STRATA_READ_THREADS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default);
    if workers == 0 {
        return None;
    }
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for i in 0..workers {
        let rx = Arc::clone(&rx);
        let spawned = std::thread::Builder::new().name(format!("strata-read-{i}")).spawn(move || {
            loop {
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            }
        });
        if spawned.is_ok() {
            started += 1;
        }
    }
    (started > 0).then(|| Pool { jobs: Mutex::new(tx), workers: started })
});

/// Workers available to split a read (0: none).
pub(crate) fn workers() -> usize {
    POOL.as_ref().map_or(0, |p| p.workers)
}

fn submit(job: Job) -> bool {
    POOL.as_ref().and_then(|p| p.jobs.lock().ok().map(|tx| tx.send(job).is_ok())).unwrap_or(false)
}

/// A decoded chunk: its series in order, then the error that stopped it
/// (with the segment to quarantine when a block was corrupt).
type Decoded = (Vec<SeriesData>, Option<LayerError>);

struct Progress {
    /// Candidates of each chunk, taken by whoever claims it.
    todo: Vec<Option<Vec<Candidate>>>,
    /// Decoded chunks waiting for delivery.
    done: Vec<Option<Decoded>>,
    /// First unclaimed chunk.
    next: usize,
    /// Chunks delivered.
    delivered: usize,
    /// The reader gave up (caller error or panic): workers stop claiming.
    stop: bool,
}

struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
    range: TimeRange,
    want: Want,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims the next chunk if it is within the lookahead.
    fn claim(&self, p: &mut Progress) -> Option<(usize, Vec<Candidate>)> {
        if p.stop || p.next >= p.todo.len() || p.next >= p.delivered + LOOKAHEAD {
            return None;
        }
        let i = p.next;
        p.next += 1;
        p.todo.get_mut(i).and_then(Option::take).map(|c| (i, c))
    }

    fn decode_and_store(&self, i: usize, chunk: Vec<Candidate>) {
        // A panic must not leave the reader waiting for this chunk forever.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(chunk, self.range, self.want)))
            .unwrap_or_else(|_| {
                let e = ReadError::Corrupted {
                    location: "hot-store read worker".into(),
                    detail: "decoding a chunk of series panicked".into(),
                };
                (Vec::new(), Some((e, None)))
            });
        if let Some(slot) = self.lock().done.get_mut(i) {
            *slot = Some(decoded);
        }
        self.changed.notify_all();
    }
}

/// Marks the read as abandoned when the reader leaves early (error or unwind).
struct StopOnDrop<'a>(&'a Shared);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.lock().stop = true;
        self.0.changed.notify_all();
    }
}

/// Reads, merges and decodes the candidates of one chunk.
fn decode(chunk: Vec<Candidate>, range: TimeRange, want: Want) -> Decoded {
    let mut scratch = Vec::new();
    let mut out = Vec::with_capacity(chunk.len());
    for c in chunk {
        match read_wanted(c.layers, range, want, &mut scratch) {
            Ok(samples) if samples.is_empty() => {}
            Ok(samples) => {
                let samples = samples.into_iter().map(|(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect();
                out.push(SeriesData { labels: c.labels, samples });
            }
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Hands every candidate's series to `each` in order, decoding chunks on
/// this thread and on the pool's workers. `quarantine` is called (on this
/// thread) for a corrupt block's segment before its error is returned.
pub(crate) fn read_in_order(
    candidates: Vec<Candidate>,
    range: TimeRange,
    want: Want,
    each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    quarantine: &dyn Fn(&Arc<Segment>, &ReadError),
) -> Result<(), ReadError> {
    let mut todo = Vec::with_capacity(candidates.len().div_ceil(CHUNK_SERIES));
    let mut rest = candidates.into_iter();
    loop {
        let chunk: Vec<Candidate> = rest.by_ref().take(CHUNK_SERIES).collect();
        if chunk.is_empty() {
            break;
        }
        todo.push(Some(chunk));
    }
    let n = todo.len();
    let shared = Arc::new(Shared {
        progress: Mutex::new(Progress {
            todo,
            done: std::iter::repeat_with(|| None).take(n).collect(),
            next: 0,
            delivered: 0,
            stop: false,
        }),
        changed: Condvar::new(),
        range,
        want,
    });
    let _stop = StopOnDrop(&shared);
    for _ in 0..workers().min(n.saturating_sub(1)) {
        let shared = Arc::clone(&shared);
        submit(Box::new(move || {
            let mut p = shared.lock();
            loop {
                if p.stop || p.next >= p.todo.len() {
                    return;
                }
                match shared.claim(&mut p) {
                    Some((i, chunk)) => {
                        drop(p);
                        shared.decode_and_store(i, chunk);
                        p = shared.lock();
                    }
                    None => p = shared.changed.wait(p).unwrap_or_else(std::sync::PoisonError::into_inner),
                }
            }
        }));
    }
    let mut p = shared.lock();
    while p.delivered < n {
        let i = p.delivered;
        if let Some((series, err)) = p.done.get_mut(i).and_then(Option::take) {
            drop(p);
            for s in series {
                each(s)?;
            }
            if let Some((e, seg)) = err {
                if let Some(seg) = seg {
                    quarantine(&seg, &e);
                }
                return Err(e);
            }
            p = shared.lock();
            p.delivered += 1;
            shared.changed.notify_all();
        } else if let Some((j, chunk)) = shared.claim(&mut p) {
            drop(p);
            shared.decode_and_store(j, chunk);
            p = shared.lock();
        } else {
            // A worker is decoding the chunk due next.
            p = shared.changed.wait(p).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
