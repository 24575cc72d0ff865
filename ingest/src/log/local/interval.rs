//! [`IntervalSync`]: the background syncs of a log with `sync = "interval"`
//! (see [`crate::log::SyncMode`]).
//!
//! A writer of such a log acknowledges its group once the group's `write`
//! returned and its records were applied, and marks its partition dirty.
//! This thread wakes every `sync_interval` and calls `fdatasync` on the
//! active segment file of each partition written since its last pass, one
//! after the other (a log has one partition per core by default). A writer
//! that rolls to a new segment syncs the old one itself first, and each
//! writer syncs its file once more when the log closes, after which this
//! thread makes a last pass. A slow sync (the disk's stalls) only delays
//! the next pass; no write waits for it.
//!
//! A failed sync poisons its partition: the kernel may have dropped the
//! dirty pages, so a retry could report success for bytes that are gone.
//! The writes it covered were acknowledged and applied: they stay in the
//! hot store's memory and reach disk with its next flush unless the
//! machine goes down first.

use super::Shared;
use crate::stages::{self, Stage};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The background sync thread of an `interval` log.
#[derive(Debug)]
pub(super) struct IntervalSync {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl IntervalSync {
    /// Starts syncing `parts` every `every`.
    pub(super) fn start(parts: Vec<Arc<Shared>>, every: Duration) -> io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("log-interval-sync".to_owned()).spawn(move || {
            loop {
                let last = !matches!(stopped.recv_timeout(every), Err(RecvTimeoutError::Timeout));
                pass(&parts);
                if last {
                    return;
                }
            }
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }

    /// Makes a last pass and joins the thread (call after the writers have
    /// stopped). Idempotent.
    pub(super) fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("ingest log background sync thread panicked");
        }
    }
}

impl Drop for IntervalSync {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Syncs every partition written since the last pass.
fn pass(parts: &[Arc<Shared>]) {
    for s in parts {
        if s.poisoned.load(Ordering::Acquire) || !s.dirty.swap(false, Ordering::AcqRel) {
            continue;
        }
        let Some(file) = s.active.lock().clone() else { continue };
        let t0 = Instant::now();
        let synced = file.sync_data();
        stages::global().observe(Stage::LogSync, t0.elapsed());
        if let Err(error) = synced {
            s.poisoned.store(true, Ordering::Release);
            tracing::error!(
                partition = s.id,
                %error,
                "ingest log background sync failed; partition poisoned until restart (the writes since its \
                 last sync were acknowledged and are in memory: they reach disk with the next flush unless \
                 the machine goes down first)"
            );
        }
    }
}
