//! Read-your-writes tokens: the log positions a write reached.
//!
//! Every acknowledged write answers with `X-Strata-Write-Token`: for each
//! log partition the write appended to, the offset of its last record. A
//! query that presents the token (`X-Strata-Read-After` header, or the
//! `read_after` URL parameter) is evaluated only once every one of those
//! records is applied on the node that holds its partition (the server's
//! `read_after` module waits, up to a timeout, and otherwise fails the
//! query instead of answering without the write). Tokens of several writes
//! merge by taking the larger offset per partition.
//!
//! ```text
//! token     = "v1:" position ("," position)*
//! position  = partition ":" offset          decimal u32 and u64, partitions ascending, each once
//! e.g.        v1:0:1841,3:77
//! ```
//!
//! A token names positions in one region's log (the embedded log of a
//! node, or the region's Kafka topic); presented to another region it
//! names positions that mean nothing there.

use std::collections::BTreeMap;
use std::fmt;

/// The write answer's header.
pub const WRITE_TOKEN_HEADER: &str = "X-Strata-Write-Token";
/// The query request's header.
pub const READ_AFTER_HEADER: &str = "X-Strata-Read-After";
/// Most positions a token may name (more is not a token this build wrote).
pub const MAX_POSITIONS: usize = 4096;

/// Log positions: partition → offset of the last record written there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteToken {
    positions: BTreeMap<u32, u64>,
}

impl WriteToken {
    /// The token of records appended at `(partition, offset)`.
    pub fn from_positions(positions: impl IntoIterator<Item = (u32, u64)>) -> Self {
        let mut t = Self::default();
        for (p, o) in positions {
            t.note(p, o);
        }
        t
    }

    /// Adds a record at `(partition, offset)`.
    pub fn note(&mut self, partition: u32, offset: u64) {
        let e = self.positions.entry(partition).or_insert(offset);
        *e = (*e).max(offset);
    }

    /// Merges another token (the larger offset per partition).
    pub fn merge(&mut self, other: &WriteToken) {
        for (&p, &o) in &other.positions {
            self.note(p, o);
        }
    }

    /// Partition → offset of the last record written.
    pub fn positions(&self) -> &BTreeMap<u32, u64> {
        &self.positions
    }

    /// True when the token names no position.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Parses a token.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text.trim().strip_prefix("v1:").ok_or_else(|| {
            format!("{:?} is not a write token (v1:<partition>:<offset>,…, from X-Strata-Write-Token)", cut(text))
        })?;
        let mut positions = BTreeMap::new();
        let mut last: Option<u32> = None;
        for (i, pos) in body.split(',').enumerate() {
            if i >= MAX_POSITIONS {
                return Err(format!("write token names more than {MAX_POSITIONS} partitions"));
            }
            let (p, o) = pos
                .split_once(':')
                .ok_or_else(|| format!("write token position {:?} is not <partition>:<offset>", cut(pos)))?;
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let p: u32 = p
                .parse()
                .ok()
                .filter(|_| digits(p))
                .ok_or_else(|| format!("write token partition {:?} is not a number", cut(p)))?;
            let o: u64 = o
                .parse()
                .ok()
                .filter(|_| digits(o))
                .ok_or_else(|| format!("write token offset {:?} is not a number", cut(o)))?;
            if last.is_some_and(|l| l >= p) {
                return Err(format!("write token partitions are not ascending at {p}"));
            }
            last = Some(p);
            positions.insert(p, o);
        }
        Ok(Self { positions })
    }
}

fn cut(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for WriteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v1:")?;
        for (i, (p, o)) in self.positions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}:{o}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn prints_parses_and_merges() {
        let mut t = WriteToken::from_positions([(3, 77), (0, 1841), (3, 12)]);
        assert_eq!(t.to_string(), "v1:0:1841,3:77");
        assert_eq!(WriteToken::parse("v1:0:1841,3:77").unwrap(), t);
        t.merge(&WriteToken::from_positions([(3, 80), (5, 1)]));
        assert_eq!(t.to_string(), "v1:0:1841,3:80,5:1");
        for (bad, why) in [
            ("", "not a write token"),
            ("v2:0:1", "not a write token"),
            ("v1:0", "not <partition>:<offset>"),
            ("v1:x:1", "partition"),
            ("v1:0:-1", "offset"),
            ("v1:3:1,1:1", "ascending"),
            ("v1:1:1,1:2", "ascending"),
        ] {
            assert!(WriteToken::parse(bad).unwrap_err().contains(why), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(positions in proptest::collection::btree_map(0u32..5000, any::<u64>(), 1..50)) {
            let t = WriteToken::from_positions(positions.clone());
            let back = WriteToken::parse(&t.to_string()).unwrap();
            prop_assert_eq!(back.positions(), &positions);
        }

        #[test]
        fn parsing_any_text_never_panics(text in ".{0,200}") {
            let _ = WriteToken::parse(&text);
        }
    }
}
