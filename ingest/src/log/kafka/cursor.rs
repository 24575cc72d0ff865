//! Where the consumer stands in each assigned partition ([`FetchCursor`]),
//! and what becomes of each record the broker hands over: applied, skipped
//! as already applied, or the cause of a re-fetch from further back when
//! the broker skipped offsets the node still needs.
//!
//! ```text
//!  assigned at floor f ──► want = f           (at the beginning: the first record sets it)
//!  record o:  o <  want ──► Skip              (below the floor, or re-delivered by a re-fetch)
//!             o == want ──► Apply; want = o + 1
//!             o >  want ──► offsets want..o are missing:
//!                            deleted from the log (log start > want)      ──► Gap: apply o
//!                            records below want came after the last re-fetch,
//!                            or a re-fetch from 0 or MAX_BACK back did not help ──► Gap: apply o
//!                            otherwise                                    ──► Refetch from want - 1, 2, 4, …
//!  no record for a while, high watermark > want ──► Refetch likewise (the skipped batch was the last)
//! ```
//!
//! Why re-fetch: Kafka stores records in batches, and a fetch at an offset
//! inside a batch must return that whole batch (the client drops the
//! records below the offset). tansu 0.6.0 returns only the batches that
//! *start* at or after the offset (`tansu-storage` 0.6.0, `dynostore.rs`
//! and `slate/storage.rs`, `fetch`). A node that restarts at a flushed
//! offset in the middle of a batch (the producer batches the records of
//! concurrent writes to one partition) would never see that batch's records
//! at and above its floor: acknowledged writes lost on replay. Fetching
//! again from further back reaches the batch's start, and the records below
//! the floor are skipped here. With a broker that keeps the protocol, the
//! first record after positioning is the one asked for and nothing here
//! ever re-fetches; a record that is really gone (deleted by retention or
//! erasure below the node's floor) is reported as a gap, never hidden.

use std::ops::Range;

/// How far below the wanted offset re-fetches go before the gap is taken as
/// real (doubling from 1: 17 re-fetches at most).
pub(super) const MAX_BACK: i64 = 1 << 16;

/// What the consumer does with one record of the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// The partition's next offset: apply it.
    Apply,
    /// Below the next offset (under the floor, or delivered again by a re-fetch): skip it.
    Skip,
    /// Offsets below this record are missing: drop it and fetch again from `from`.
    Refetch {
        /// The offset to fetch from.
        from: i64,
    },
    /// Offsets `missing` are not in the partition: apply this record, past them.
    Gap {
        /// The offsets the broker has no record for.
        missing: Range<i64>,
    },
}

/// The consumer's position in one assigned partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FetchCursor {
    /// The next offset to apply; `None` until the first record when the
    /// partition was positioned at its beginning (the first retained offset
    /// is the broker's to say).
    want: Option<i64>,
    /// How far below `want` the last re-fetch started; 0: none under way.
    back: i64,
    /// Whether a record below `want` came since the last re-fetch.
    below: bool,
}

impl FetchCursor {
    /// A partition positioned at `at` (`None`: its beginning).
    pub(super) fn positioned(at: Option<i64>) -> Self {
        Self { want: at, back: 0, below: false }
    }

    /// The next offset to apply, when known.
    #[cfg(test)]
    pub(super) fn want(&self) -> Option<i64> {
        self.want
    }

    /// Record `offset` arrived. `log_start` asks the broker for the
    /// partition's first retained offset (only when offsets are missing and
    /// no re-fetch is under way; `None` when it does not answer).
    pub(super) fn on_record(&mut self, offset: i64, log_start: impl FnOnce() -> Option<i64>) -> Step {
        let Some(want) = self.want else {
            self.want = Some(offset + 1);
            return Step::Apply;
        };
        if offset < want {
            self.below = true;
            return Step::Skip;
        }
        if offset == want {
            *self = Self::positioned(Some(want + 1));
            return Step::Apply;
        }
        let deleted = self.back == 0 && log_start().is_some_and(|start| start > want);
        // Records below `want` then one above it: the broker has nothing in between.
        let exhausted = self.below || self.back >= MAX_BACK || self.back >= want;
        if deleted || exhausted {
            *self = Self::positioned(Some(offset + 1));
            return Step::Gap { missing: want..offset };
        }
        Step::Refetch { from: self.further_back(want) }
    }

    /// No record came for a while, although the partition's high watermark
    /// `high` lies past the wanted offset: the broker skipped the batch
    /// holding it and has nothing after it yet. The offset to fetch again
    /// from, or `None` (nothing is missing, or the re-fetches are spent).
    pub(super) fn on_idle(&mut self, high: i64) -> Option<i64> {
        let want = self.want?;
        if high <= want || self.back >= MAX_BACK || self.back >= want {
            return None;
        }
        Some(self.further_back(want))
    }

    /// The next re-fetch: twice as far below `want` as the last (1 at first).
    fn further_back(&mut self, want: i64) -> i64 {
        self.back = if self.back == 0 { 1 } else { self.back * 2 };
        self.below = false;
        (want - self.back).max(0)
    }
}

#[cfg(test)]
mod tests;
