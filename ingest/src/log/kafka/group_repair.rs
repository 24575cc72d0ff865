//! [`GroupRepair`]: the second tansu 0.6.0 group-coordinator workaround (a
//! consumer group whose departed leader blocks every assignment is deleted
//! and joined anew), and [`assigned_partitions`], which reads a member's
//! assignment from the broker's group description.

use super::admin;
use super::rebalance::GroupConsumer;
use super::status::Shared;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The second tansu 0.6.0 group-coordinator workaround: a group whose leader
/// is gone for good.
///
/// When the broker stops answering for longer than the session timeout (a
/// frozen or partitioned broker), librdkafka drops its assignment and joins
/// again under a new member id. tansu, meanwhile, has removed the old member
/// on a missed heartbeat but kept it as the group's *leader*
/// (`tansu-broker` 0.6.0, `coordinator/group/administrator.rs`:
/// `Inner<Formed>::join` moves the group to `Forming` with
/// `leader: Some(self.state.leader)` without checking that the leader is still
/// a member, and `Inner<Forming>::join` only elects a leader when there is
/// none). Every JoinGroup then answers with the departed leader's id, the
/// joining members are followers, nobody sends the assignment, and SyncGroup
/// fails with "rebalance in progress" / "unknown member" forever: no node
/// consumes until the group state is gone. Leaving and rejoining does not
/// help (the leader is group state, not member state), nor does a new
/// consumer.
///
/// So when this consumer has had no assignment at all for `after` (not even
/// an empty one: a member beyond the partition count gets an empty
/// assignment, so the group synced) while the broker answers (ListGroups),
/// and the group's description, when the broker lists the group, shows no
/// member holding a partition either, the group is deleted (DeleteGroups)
/// and joined anew (tansu 0.6.0 lists a group only once it has committed
/// offsets); tansu then starts a fresh group whose first member
/// leads. Nothing is lost: partitions are positioned at the hot store's floor,
/// not at the committed offsets (which the delete removes and the next flush
/// commits again). A broker with a working coordinator (Kafka) never gets
/// here; if it did, its DeleteGroups refuses a group with members
/// (`NON_EMPTY_GROUP`), which is logged and otherwise harmless.
pub(super) struct GroupRepair {
    group: String,
    admin_config: ClientConfig,
    /// How long without any partition (nobody in the group holding one) before the group is reset.
    pub(super) after: Duration,
    unassigned_since: Option<Instant>,
    pub(super) last_attempt: Option<Instant>,
}

impl GroupRepair {
    pub(super) fn new(group: String, admin_config: ClientConfig, session_timeout: Duration) -> Self {
        let after = (session_timeout * 3).max(Duration::from_secs(20));
        Self { group, admin_config, after, unassigned_since: None, last_attempt: None }
    }

    /// Whether the consumer has had no assignment for `after` (and no attempt was made within `after`).
    pub(super) fn due(&mut self, shared: &Shared, now: Instant) -> bool {
        if shared.synced.load(Ordering::Acquire) {
            self.unassigned_since = None;
            return false;
        }
        let since = *self.unassigned_since.get_or_insert(now);
        now.duration_since(since) >= self.after
            && self.last_attempt.is_none_or(|at| now.duration_since(at) >= self.after)
    }

    /// Deletes the group when the broker describes it and no member holds a
    /// partition; true when it was deleted (the caller rejoins).
    pub(super) fn reset_if_stuck(&mut self, consumer: &GroupConsumer) -> bool {
        self.last_attempt = Some(Instant::now());
        let timeout = Duration::from_secs(5);
        self.stuck(consumer, timeout) && admin::delete_group(&self.admin_config, &self.group, timeout)
    }

    /// Whether the broker answers ListGroups and no listed member of the group holds a partition.
    fn stuck(&self, consumer: &GroupConsumer, timeout: Duration) -> bool {
        let list = match consumer.fetch_group_list(Some(&self.group), timeout) {
            Ok(list) => list,
            Err(e) => {
                // The broker does not answer: an outage, not a stuck group.
                tracing::warn!(group = %self.group, error = %e, "no kafka partition assigned, and the group cannot be described");
                return false;
            }
        };
        let group = list.groups().iter().find(|g| g.name() == self.group);
        let holding: usize = group
            .map(|g| g.members().iter().map(|m| assigned_partitions(m.assignment().unwrap_or_default())).sum())
            .unwrap_or(0);
        if holding > 0 {
            tracing::debug!(group = %self.group, holding, "no kafka assignment here; other members hold partitions");
            return false;
        }
        tracing::warn!(
            group = %self.group,
            state = group.map_or("not listed", |g| g.state()),
            members = group.map_or(0, |g| g.members().len()),
            unassigned_for_s = self.unassigned_since.map_or(0, |t| t.elapsed().as_secs()),
            "no member of the kafka consumer group has held a partition for a while although the broker answers \
             (tansu 0.6.0 keeps a departed leader after a session timeout); deleting the group and joining anew"
        );
        true
    }
}

/// Partitions in a consumer-protocol member assignment (version i16, then
/// topics: name (i16 length + bytes) and partitions (i32 count + i32 each);
/// big-endian). 0 when empty or unreadable.
pub(super) fn assigned_partitions(bytes: &[u8]) -> usize {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|x| i16::from_be_bytes([x[0], x[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    let mut b = bytes;
    let mut total = 0usize;
    let parse = |b: &mut &[u8], total: &mut usize| -> Option<()> {
        i16_(b)?;
        let topics = i32_(b)?;
        for _ in 0..topics.max(0) {
            let len = i16_(b)?;
            take(b, usize::try_from(len).unwrap_or(0))?;
            let n = i32_(b)?;
            take(b, 4 * usize::try_from(n).unwrap_or(0))?;
            *total += usize::try_from(n).unwrap_or(0);
        }
        Some(())
    };
    let _ = parse(&mut b, &mut total);
    total
}
