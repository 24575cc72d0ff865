//! Edge batches applied once: per log partition, which `(agent id, seq)`
//! origins ([`strata_schemas::BatchOrigin`]) were applied already.
//!
//! ```text
//!  apply(p, offset, batch with origin (a, s)):
//!      s ∈ applied[p][a]  → skip the record (counted), offset consumed
//!      otherwise          → apply the samples, add s to applied[p][a]
//!  flush: the state as of the flushed offsets goes into the manifest (`edge_origins`);
//!  open:  read it back, replay the log from the flushed offsets → the same state
//! ```
//!
//! The decision depends only on the records of the partition in offset
//! order, so replay after a restart, the embedded log and Kafka (each
//! partition's consumer owns its state) all make the same one.
//!
//! Per agent the applied sequence numbers are a set of disjoint inclusive
//! ranges: an agent acknowledges out of order (live lane, backlog lane), so
//! the set is in practice its contiguous prefix plus a few ranges above it.
//!
//! Bounds (both in [`crate::HotStoreConfig`]): at most `edge_dedup_max_ranges`
//! ranges per agent (a gap that never fills, e.g. batches the agent dropped
//! when its queue was full, costs one); past it the lowest range is forgotten
//! (`edge_ranges_dropped`, warning). At most `edge_dedup_max_agents` agents per
//! partition; past it the agent seen least recently (by log offset) is
//! forgotten (`edge_agents_evicted`). Forgetting never marks a sequence number
//! applied that was not, so no batch is ever skipped wrongly; a batch re-sent
//! after its number was forgotten is applied a second time.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use strata_schemas::{BatchOrigin, Str};

/// Disjoint, non-adjacent, inclusive ranges of sequence numbers, ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SeqRanges {
    ranges: Vec<(u64, u64)>,
}

impl SeqRanges {
    /// True when `seq` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, seq: u64) -> bool {
        // The first range starting above `seq`; the one before it may hold `seq`.
        let i = self.ranges.partition_point(|&(lo, _)| lo <= seq);
        i > 0 && self.ranges.get(i - 1).is_some_and(|&(_, hi)| seq <= hi)
    }

    /// Adds `seq`; false when it was there already.
    pub(crate) fn insert(&mut self, seq: u64) -> bool {
        let i = self.ranges.partition_point(|&(lo, _)| lo <= seq);
        // Joins the range before (ending at seq − 1) and/or the one after (starting at seq + 1).
        let before = i.checked_sub(1).and_then(|j| self.ranges.get(j).map(|&r| (j, r)));
        if let Some((_, (_, hi))) = before
            && seq <= hi
        {
            return false;
        }
        let joins_before = before.filter(|&(_, (_, hi))| hi.checked_add(1) == Some(seq)).map(|(j, _)| j);
        let joins_after = self.ranges.get(i).is_some_and(|&(lo, _)| seq.checked_add(1) == Some(lo));
        match (joins_before, joins_after) {
            (Some(j), true) => {
                let hi = self.ranges.get(i).map_or(seq, |r| r.1);
                if let Some(r) = self.ranges.get_mut(j) {
                    r.1 = hi;
                }
                self.ranges.remove(i);
            }
            (Some(j), false) => {
                if let Some(r) = self.ranges.get_mut(j) {
                    r.1 = seq;
                }
            }
            (None, true) => {
                if let Some(r) = self.ranges.get_mut(i) {
                    r.0 = seq;
                }
            }
            (None, false) => self.ranges.insert(i, (seq, seq)),
        }
        true
    }

    /// Number of ranges.
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Forgets the lowest range.
    fn drop_lowest(&mut self) {
        if !self.ranges.is_empty() {
            self.ranges.remove(0);
        }
    }

    /// The ranges, ascending.
    pub(crate) fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }
}

/// What one agent has had applied in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentState {
    pub(crate) applied: SeqRanges,
    /// Offset of the last record of this agent seen in the partition (recency, for eviction).
    pub(crate) last_offset: u64,
}

/// Limits on the state of one partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_agents: usize,
    pub(crate) max_ranges: usize,
}

/// What [`PartitionOrigins::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Admission {
    /// The origin was applied before in this partition: skip the record.
    pub(crate) duplicate: bool,
    /// Agents forgotten to make room (0 or 1).
    pub(crate) agents_evicted: u64,
    /// Ranges forgotten to stay under the per-agent cap.
    pub(crate) ranges_dropped: u64,
}

/// The applied origins of one log partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartitionOrigins {
    agents: HashMap<Str, AgentState>,
    /// `last_offset` → agent: least recently seen first. Offsets of a
    /// partition are unique, and an agent is listed under its last one only.
    by_recency: BTreeMap<u64, Str>,
}

impl PartitionOrigins {
    /// Records that the record at `offset` carries `origin`; says whether it
    /// was applied already (then nothing but its recency changes).
    pub(crate) fn admit(&mut self, origin: &BatchOrigin, offset: u64, limits: Limits) -> Admission {
        let mut out = Admission::default();
        let agent = origin.agent_id();
        let key = match self.agents.get_key_value(agent) {
            Some((k, _)) => k.clone(),
            None => {
                while self.agents.len() >= limits.max_agents.max(1) {
                    let Some((_, oldest)) = self.by_recency.pop_first() else { break };
                    self.agents.remove(&oldest);
                    out.agents_evicted += 1;
                }
                let key = Str::from(agent);
                self.agents.insert(key.clone(), AgentState { applied: SeqRanges::default(), last_offset: offset });
                self.by_recency.insert(offset, key.clone());
                key
            }
        };
        let Some(state) = self.agents.get_mut(&key) else { return out };
        if state.last_offset != offset {
            self.by_recency.remove(&state.last_offset);
            state.last_offset = offset;
            self.by_recency.insert(offset, key);
        }
        if !state.applied.insert(origin.seq()) {
            out.duplicate = true;
            return out;
        }
        while state.applied.len() > limits.max_ranges.max(1) {
            state.applied.drop_lowest();
            out.ranges_dropped += 1;
        }
        out
    }

    /// Agents with state.
    #[cfg(test)]
    pub(crate) fn agents(&self) -> usize {
        self.agents.len()
    }

    /// The state of `agent`, if any.
    #[cfg(test)]
    pub(crate) fn agent(&self, agent: &str) -> Option<&AgentState> {
        self.agents.get(agent)
    }

    /// The manifest form: agent id → `"<lo>[-<hi>],… @<last offset>"`.
    pub(crate) fn to_persisted(&self) -> BTreeMap<String, String> {
        self.agents
            .iter()
            .map(|(agent, s)| {
                let mut v = String::with_capacity(16 + 12 * s.applied.len());
                for (i, &(lo, hi)) in s.applied.ranges().iter().enumerate() {
                    if i > 0 {
                        v.push(',');
                    }
                    let _ = if lo == hi { write!(v, "{lo}") } else { write!(v, "{lo}-{hi}") };
                }
                let _ = write!(v, " @{}", s.last_offset);
                (agent.as_str().to_owned(), v)
            })
            .collect()
    }

    /// Reads the manifest form back (see [`PartitionOrigins::to_persisted`]).
    pub(crate) fn from_persisted(map: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut out = PartitionOrigins::default();
        for (agent, v) in map {
            BatchOrigin::check_agent_id(agent).map_err(|e| format!("edge origin {agent:?}: {e}"))?;
            let bad = || format!("edge origin {agent:?}: malformed state {v:?}");
            let (ranges, last) = v.rsplit_once(" @").ok_or_else(bad)?;
            let last_offset: u64 = last.parse().map_err(|_| bad())?;
            let mut applied = SeqRanges::default();
            for r in ranges.split(',').filter(|r| !r.is_empty()) {
                let (lo, hi) = match r.split_once('-') {
                    Some((lo, hi)) => (lo.parse::<u64>().map_err(|_| bad())?, hi.parse::<u64>().map_err(|_| bad())?),
                    None => {
                        let s = r.parse::<u64>().map_err(|_| bad())?;
                        (s, s)
                    }
                };
                // Ascending, disjoint and non-adjacent: the canonical form only.
                let after_previous =
                    applied.ranges.last().is_none_or(|&(_, prev)| prev.checked_add(1).is_some_and(|p| lo > p));
                if lo > hi || !after_previous {
                    return Err(bad());
                }
                applied.ranges.push((lo, hi));
            }
            if out.by_recency.insert(last_offset, Str::from(agent.as_str())).is_some() {
                return Err(format!("edge origins: two agents last seen at offset {last_offset}"));
            }
            out.agents.insert(Str::from(agent.as_str()), AgentState { applied, last_offset });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
