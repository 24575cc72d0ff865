//! [`Syncer`]: the partitions' `fdatasync`s started in rounds (group commit
//! across partitions).
//!
//! A write request of many devices has one record per partition it touches
//! (300 IoT lines touch all 8 of the default partitions) and is acknowledged
//! when every one of them is durable. With each partition writer syncing on
//! a schedule of its own, a request's 8 records were written and synced at 8
//! unrelated moments, and the request waited for the slowest of 8
//! independent queues.
//!
//! Now a writer that has written its group asks the syncer for a turn; the
//! syncer's thread lets a **round** of writers go at once — every partition
//! that wrote since the last round — and each of them then calls
//! `fdatasync` on its own file, all at the same moment, so the file system
//! commits them together (on ext4 one journal commit serves concurrent
//! `fdatasync`s; one after the other, each needs its own: measured on this
//! host under other processes' I/O, 8 files synced from one thread took
//! 20–30 ms p50 against 1–1.2 ms for 8 concurrent ones, see
//! docs/benchmarks/2026-12-03-write-latency.md, session 9).
//!
//! **Gathering.** Before a round goes, the syncer waits until every
//! partition that has records handed to it (queued or being written, see
//! [`Syncer::owe`]) has asked for its turn, at most `gather_max` (2 ms by
//! default: a writer thread that did not get a CPU in time). A request's
//! records, handed to their partitions together, so start their syncs in
//! the same round instead of two.
//!
//! **Durability** is unchanged: a writer acknowledges a group only after its
//! own `fdatasync` of its file, called after the group's `write`, returned
//! successfully; an error is that writer's, which rolls back (disk full) or
//! poisons its partition as before. The segment format is unchanged.

use crate::stages::{self, Stage};
use parking_lot::{Condvar, Mutex};
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a round waits at most for partitions that owe records.
pub(crate) const GATHER_MAX: Duration = Duration::from_millis(2);

/// A writer's request for a turn in the next round.
struct Ticket {
    partition: usize,
    go: SyncSender<()>,
}

#[derive(Default)]
struct State {
    /// Tickets for the next round.
    pending: Vec<Ticket>,
    /// `submitted[p]`: partition `p` has a ticket in `pending`.
    submitted: Vec<bool>,
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    /// Per partition: records handed to it and not yet submitted for a sync
    /// (or given up: refused, failed to write).
    owed: Vec<AtomicU64>,
    gather_max: Duration,
    rounds: AtomicU64,
}

/// Handle to the shared round thread of a [`super::LocalLog`] (cheap to clone).
#[derive(Clone)]
pub(crate) struct Syncer(Arc<Inner>);

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("rounds", &self.rounds()).finish()
    }
}

impl Syncer {
    /// Starts the sync thread for `partitions` partitions.
    pub(crate) fn start(partitions: usize, gather_max: Duration) -> io::Result<(Syncer, JoinHandle<()>)> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State { submitted: vec![false; partitions], ..State::default() }),
            wake: Condvar::new(),
            owed: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
            gather_max,
            rounds: AtomicU64::new(0),
        });
        let run = Arc::clone(&inner);
        let thread = std::thread::Builder::new().name("log-rounds".to_owned()).spawn(move || run.run())?;
        Ok((Syncer(inner), thread))
    }

    /// `n` records are being handed to `partition`'s writer: the next round
    /// waits for them (up to the gather bound).
    pub(crate) fn owe(&self, partition: usize, n: u64) {
        if let Some(o) = self.0.owed.get(partition) {
            o.fetch_add(n, Ordering::AcqRel);
        }
    }

    /// `n` records owed by `partition` will not be submitted (refused before
    /// the queue, or their write failed): the round stops waiting for them.
    pub(crate) fn forgive(&self, partition: usize, n: u64) {
        if let Some(o) = self.0.owed.get(partition) {
            o.fetch_sub(n, Ordering::AcqRel);
        }
        let _guard = self.0.state.lock();
        self.0.wake.notify_one();
    }

    /// Waits for the next round that lets `partition` (whose writer has
    /// written the `records` it owed) go, then calls `fdatasync` on `file`.
    /// `go` is the writer's own channel, reused for every sync.
    pub(crate) fn sync(
        &self,
        partition: usize,
        file: &File,
        records: u64,
        go: &(SyncSender<()>, Receiver<()>),
    ) -> io::Result<()> {
        let t0 = Instant::now();
        {
            let mut state = self.0.state.lock();
            if let Some(o) = self.0.owed.get(partition) {
                o.fetch_sub(records, Ordering::AcqRel);
            }
            if !state.closed && partition < state.submitted.len() {
                state.pending.push(Ticket { partition, go: go.0.clone() });
                state.submitted[partition] = true;
                self.0.wake.notify_one();
                drop(state);
                // An error means the round thread is gone (closing): sync anyway.
                let _ = go.1.recv();
            }
        }
        let turn = Instant::now();
        stages::global().observe(Stage::LogRound, turn - t0);
        let synced = file.sync_data();
        stages::global().observe(Stage::LogSync, turn.elapsed());
        synced
    }

    /// Rounds let go so far.
    pub(crate) fn rounds(&self) -> u64 {
        self.0.rounds.load(Ordering::Acquire)
    }

    /// Lets the thread release the pending round and exit (join its handle after).
    pub(crate) fn close(&self) {
        self.0.state.lock().closed = true;
        self.0.wake.notify_one();
    }
}

impl Inner {
    fn run(&self) {
        let mut state = self.state.lock();
        loop {
            if state.pending.is_empty() {
                if state.closed {
                    return;
                }
                self.wake.wait(&mut state);
                continue;
            }
            let deadline = Instant::now() + self.gather_max;
            while !state.closed && !self.gathered(&state) {
                if self.wake.wait_until(&mut state, deadline).timed_out() {
                    break;
                }
            }
            let round = std::mem::take(&mut state.pending);
            for t in &round {
                state.submitted[t.partition] = false;
            }
            parking_lot::MutexGuard::unlocked(&mut state, || self.round(round));
        }
    }

    /// Whether every partition that owes records has submitted.
    fn gathered(&self, state: &State) -> bool {
        self.owed.iter().zip(&state.submitted).all(|(owed, &submitted)| submitted || owed.load(Ordering::Acquire) == 0)
    }

    /// Lets every writer of the round go (each then syncs its own file).
    fn round(&self, round: Vec<Ticket>) {
        self.rounds.fetch_add(1, Ordering::AcqRel);
        for t in round {
            let _ = t.go.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &std::path::Path, name: &str) -> File {
        File::create(dir.join(name)).unwrap()
    }

    /// Waits (without a time bound: a bug shows as a hang) until `partition` has a ticket in the next round.
    fn until_submitted(s: &Syncer, partition: usize) {
        while !s.0.state.lock().submitted[partition] {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_round_waits_for_partitions_owing_records_until_they_submit_or_are_forgiven() {
        let dir = tempfile::tempdir().unwrap();
        let (s, thread) = Syncer::start(3, Duration::from_secs(3600)).unwrap();
        s.owe(0, 1);
        s.owe(1, 2);
        let (f0, f1) = (file(dir.path(), "0"), file(dir.path(), "1"));
        let s1 = s.clone();
        let one = std::thread::spawn(move || s1.sync(1, &f1, 2, &std::sync::mpsc::sync_channel(1)));
        until_submitted(&s, 1);
        assert_eq!(s.rounds(), 0, "partition 0 still owes a record: the round waits for it");
        let s0 = s.clone();
        let zero = std::thread::spawn(move || s0.sync(0, &f0, 1, &std::sync::mpsc::sync_channel(1)));
        one.join().unwrap().unwrap();
        zero.join().unwrap().unwrap();
        assert_eq!(s.rounds(), 1, "both partitions synced by one round");

        // A record that will never be submitted is forgiven, and the round goes.
        s.owe(2, 1);
        s.owe(0, 1);
        let (f0, s0) = (file(dir.path(), "0b"), s.clone());
        let zero = std::thread::spawn(move || s0.sync(0, &f0, 1, &std::sync::mpsc::sync_channel(1)));
        until_submitted(&s, 0);
        assert_eq!(s.rounds(), 1);
        s.forgive(2, 1);
        zero.join().unwrap().unwrap();
        assert_eq!(s.rounds(), 2);
        s.close();
        thread.join().unwrap();
    }

    #[test]
    fn after_close_a_sync_is_done_by_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let (s, thread) = Syncer::start(1, GATHER_MAX).unwrap();
        s.close();
        thread.join().unwrap();
        s.sync(0, &file(dir.path(), "f"), 0, &std::sync::mpsc::sync_channel(1)).unwrap();
        assert_eq!(s.rounds(), 0);
    }
}
