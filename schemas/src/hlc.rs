//! Hybrid logical clocks (Kulkarni et al., "Logical Physical Clocks", 2014),
//! shared by the edge agent and the server's write path.
//!
//! A timestamp is `(physical ms since the epoch, logical counter)`, ordered
//! lexicographically. Every local or send event *ticks* the clock; every
//! received timestamp is *folded* in; so a message's timestamp is always
//! above every timestamp its sender had seen (causality), while the physical
//! part stays within the largest clock error of the system of real time.
//!
//! On the wire (`X-Strata-Agent-Hlc` on an edge agent's write,
//! `X-Strata-Hlc` on the server's answer) a timestamp is written
//! `<physical ms>.<logical>` in decimal, e.g. `1764700000123.4`.
//!
//! A remote timestamp whose physical part is more than `max_ahead` ms ahead
//! of the local wall clock is not folded in (counted by the caller): a
//! gateway whose clock is an hour fast must not drag every clock it talks to
//! an hour into the future. This is the usual HLC bound on clock offset.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))] // a codec: malformed input is an error, never a panic

use std::fmt;

/// One HLC timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HlcTimestamp {
    /// The largest physical time seen (ms since the epoch).
    pub physical_ms: i64,
    /// Orders events within one `physical_ms`.
    pub logical: u32,
}

impl HlcTimestamp {
    /// A timestamp.
    pub const fn new(physical_ms: i64, logical: u32) -> Self {
        Self { physical_ms, logical }
    }

    /// Parses `<physical ms>.<logical>` (both decimal, no sign, no spaces).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an HLC timestamp (<physical ms>.<logical>, e.g. 1764700000123.4)");
        let (p, l) = text.split_once('.').ok_or_else(bad)?;
        let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(p) || !digits(l) {
            return Err(bad());
        }
        let physical_ms = p.parse::<i64>().map_err(|_| bad())?;
        let logical = l.parse::<u32>().map_err(|_| bad())?;
        Ok(Self { physical_ms, logical })
    }
}

impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms, self.logical)
    }
}

/// What [`Hlc::fold`] did with a remote timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Folded in; the clock now reads this.
    Folded(HlcTimestamp),
    /// Not folded: the remote physical time is this many ms ahead of the local wall clock, over the bound.
    TooFarAhead(i64),
}

/// A hybrid logical clock (not synchronised: wrap it in a lock or an atomic
/// owner; the agent and the server each keep one behind a mutex).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hlc {
    last: HlcTimestamp,
}

impl Hlc {
    /// A clock that starts at `last` (e.g. the value persisted before a restart):
    /// it never reads below it.
    pub const fn starting_at(last: HlcTimestamp) -> Self {
        Self { last }
    }

    /// The last timestamp handed out or folded in.
    pub const fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// A local or send event at wall time `now_ms`: a timestamp above every
    /// earlier one of this clock. A wall clock that stepped back does not
    /// move the clock back (the logical part grows instead).
    pub fn tick(&mut self, now_ms: i64) -> HlcTimestamp {
        self.last = if now_ms > self.last.physical_ms { HlcTimestamp::new(now_ms, 0) } else { next_logical(self.last) };
        self.last
    }

    /// A receive event of `remote` at wall time `now_ms`: the clock moves
    /// above both its own last value and `remote`, unless `remote` is more
    /// than `max_ahead_ms` ahead of `now_ms` (then it is left out).
    pub fn fold(&mut self, remote: HlcTimestamp, now_ms: i64, max_ahead_ms: i64) -> Fold {
        let ahead = remote.physical_ms.saturating_sub(now_ms);
        if ahead > max_ahead_ms {
            return Fold::TooFarAhead(ahead);
        }
        let top = self.last.max(remote);
        self.last = if now_ms > top.physical_ms { HlcTimestamp::new(now_ms, 0) } else { next_logical(top) };
        Fold::Folded(self.last)
    }
}

/// The timestamp right after `t` (the logical counter overflowing moves the physical part).
fn next_logical(t: HlcTimestamp) -> HlcTimestamp {
    match t.logical.checked_add(1) {
        Some(l) => HlcTimestamp::new(t.physical_ms, l),
        None => HlcTimestamp::new(t.physical_ms.saturating_add(1), 0),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_and_prints() {
        let t = HlcTimestamp::parse("1764700000123.4").unwrap();
        assert_eq!(t, HlcTimestamp::new(1_764_700_000_123, 4));
        assert_eq!(t.to_string(), "1764700000123.4");
        for bad in ["", "1", "1.", ".1", "-1.0", "1.-0", "1.2.3", " 1.2", "1.99999999999", "x.1"] {
            assert!(HlcTimestamp::parse(bad).unwrap_err().contains("not an HLC timestamp"), "{bad}");
        }
    }

    #[test]
    fn a_wall_clock_step_back_does_not_move_the_clock_back() {
        let mut c = Hlc::default();
        assert_eq!(c.tick(1_000), HlcTimestamp::new(1_000, 0));
        assert_eq!(c.tick(400), HlcTimestamp::new(1_000, 1), "stepped back 600 ms");
        assert_eq!(c.tick(1_000), HlcTimestamp::new(1_000, 2));
        assert_eq!(c.tick(1_001), HlcTimestamp::new(1_001, 0));
    }

    #[test]
    fn folding_moves_above_the_remote_time_within_the_bound() {
        let mut c = Hlc::starting_at(HlcTimestamp::new(1_000, 3));
        assert_eq!(c.fold(HlcTimestamp::new(1_500, 7), 1_200, 60_000), Fold::Folded(HlcTimestamp::new(1_500, 8)));
        assert_eq!(c.fold(HlcTimestamp::new(1_400, 9), 2_000, 60_000), Fold::Folded(HlcTimestamp::new(2_000, 0)));
        assert_eq!(c.fold(HlcTimestamp::new(70_000, 0), 2_000, 60_000), Fold::TooFarAhead(68_000));
        assert_eq!(c.last(), HlcTimestamp::new(2_000, 0), "a timestamp too far ahead is left out");
    }

    proptest! {
        /// Any sequence of ticks and folds, with a wall clock that jumps
        /// both ways: every event's timestamp is above the one before and
        /// above every remote timestamp folded in; the physical part never
        /// leads the largest wall time or folded time.
        #[test]
        fn timestamps_only_grow_and_stay_above_what_was_received(
            events in proptest::collection::vec((0i64..10_000, proptest::option::of((0i64..12_000, 0u32..4))), 1..200),
        ) {
            let mut c = Hlc::default();
            let mut prev = c.last();
            let mut seen_max = 0i64;
            for (now, remote) in events {
                seen_max = seen_max.max(now);
                let t = match remote {
                    None => c.tick(now),
                    Some((p, l)) => match c.fold(HlcTimestamp::new(p, l), now, 1_000) {
                        Fold::Folded(t) => {
                            prop_assert!(t > HlcTimestamp::new(p, l));
                            seen_max = seen_max.max(p);
                            t
                        }
                        Fold::TooFarAhead(a) => {
                            prop_assert!(a > 1_000);
                            continue;
                        }
                    },
                };
                prop_assert!(t > prev, "{t} after {prev}");
                prop_assert!(t.physical_ms <= seen_max);
                prev = t;
            }
        }
    }
}
