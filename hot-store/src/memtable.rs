//! The memtable: samples applied since the last flush, per series and time
//! bucket, held as compressed chunks.
//!
//! ```text
//!  Memtable.series[SeriesRef] ──► [(bucket start, Chunk)]   (usually one bucket per series)
//!  Chunk ── bits: in-order samples, Gorilla-style bit stream:
//!              first sample: ts (64 bits), value bits (64 bits)
//!              then per sample: ts delta-of-delta (zigzag)  '0' = 0 | '10'+7 | '110'+14 | '1110'+20 | '1111'+64 bits
//!                               value XOR previous           (the segment codec's Gorilla control bits)
//!        └─ ooo:  samples whose ts was <= the chunk's last ts (out of order or rewrites), arrival order
//! ```
//!
//! A sample costs ~1–3 bytes in the bit stream instead of 16. Reading a chunk
//! decodes the stream and applies `ooo` in arrival order on top. That is
//! "latest write wins": a stream sample at `t` was appended when `t` exceeded
//! every earlier sample, so any `ooo` sample with the same `t` arrived later.
//! When `ooo` grows past half the chunk, the chunk is re-encoded with it merged.

use strata_schemas::{Sample, TimeRange};

use crate::codec::{BitReader, BitWriter, DecodeError, decode_xor, encode_xor, read_dod, write_dod};
use crate::index::SeriesRef;

/// One series' samples within one time bucket.
#[derive(Debug, Default, Clone)]
pub(crate) struct Chunk {
    bits: BitWriter,
    n: u32,
    min_ts: i64,
    last_ts: i64,
    last_delta: i64,
    last_val: u64,
    window: Option<(u32, u32)>,
    ooo: Vec<(i64, u64)>,
}

const REBUILD_MIN_OOO: usize = 32;

impl Chunk {
    fn push(&mut self, ts: i64, bits: u64) {
        if self.n == 0 {
            self.bits.write_bits(ts as u64, 64);
            self.bits.write_bits(bits, 64);
            (self.min_ts, self.last_ts, self.last_delta, self.last_val, self.n) = (ts, ts, 0, bits, 1);
            return;
        }
        if ts <= self.last_ts {
            self.ooo.push((ts, bits));
            self.min_ts = self.min_ts.min(ts);
            if self.ooo.len() > REBUILD_MIN_OOO && self.ooo.len() > self.n as usize / 2 {
                self.rebuild();
            }
            return;
        }
        let delta = ts.wrapping_sub(self.last_ts);
        let dod = delta.wrapping_sub(self.last_delta);
        write_dod(&mut self.bits, dod);
        encode_xor(&mut self.bits, bits ^ self.last_val, &mut self.window);
        (self.last_ts, self.last_delta, self.last_val) = (ts, delta, bits);
        self.n += 1;
    }

    /// Re-encodes the chunk with its out-of-order samples merged in.
    fn rebuild(&mut self) {
        let Ok(all) = self.samples() else { return };
        let mut fresh = Chunk::default();
        for (ts, v) in all {
            fresh.push(ts, v);
        }
        *self = fresh;
    }

    /// Samples sorted by ts, one per ts (the last written wins).
    pub(crate) fn samples(&self) -> Result<Vec<(i64, u64)>, DecodeError> {
        let stream = self.decode_stream()?;
        if self.ooo.is_empty() {
            return Ok(stream);
        }
        let mut late = self.ooo.clone();
        late.sort_by_key(|&(ts, _)| ts); // stable: arrival order kept among equal ts
        let mut out: Vec<(i64, u64)> = Vec::with_capacity(stream.len() + late.len());
        let (mut a, mut b) = (stream.into_iter().peekable(), late.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(x), Some(y)) if x.0 == y.0 => {
                    a.next();
                    b.next()
                }
                (Some(_), None) => a.next(),
                (_, Some(_)) => b.next(),
                (None, None) => break,
            };
            if let Some(s) = next {
                match out.last_mut() {
                    Some(last) if last.0 == s.0 => *last = s,
                    _ => out.push(s),
                }
            }
        }
        Ok(out)
    }

    fn decode_stream(&self) -> Result<Vec<(i64, u64)>, DecodeError> {
        let mut out = Vec::with_capacity(self.n as usize);
        if self.n == 0 {
            return Ok(out);
        }
        let mut r = BitReader::new(&self.bits.buf);
        let (mut ts, mut val) = (r.read_bits(64)? as i64, r.read_bits(64)?);
        out.push((ts, val));
        let (mut delta, mut window) = (0i64, None);
        for _ in 1..self.n {
            delta = delta.wrapping_add(read_dod(&mut r)?);
            ts = ts.wrapping_add(delta);
            val ^= decode_xor(&mut r, &mut window)?;
            out.push((ts, val));
        }
        Ok(out)
    }

    /// The sorted, unique samples within `range`.
    pub(crate) fn in_range(&self, range: TimeRange) -> Result<Vec<(i64, u64)>, DecodeError> {
        if !range.overlaps(self.min_ts, self.last_ts) {
            return Ok(Vec::new());
        }
        let mut all = self.samples()?;
        all.retain(|&(ts, _)| range.contains(ts));
        Ok(all)
    }

    /// Smallest and largest timestamp held.
    #[cfg(test)]
    pub(crate) fn bounds(&self) -> (i64, i64) {
        (self.min_ts, self.last_ts)
    }

    /// Heap bytes held.
    fn heap_bytes(&self) -> usize {
        self.bits.buf.capacity() + self.ooo.capacity() * 16
    }
}

/// Buffered samples of every series since the last flush.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    series: Vec<Vec<(i64, Chunk)>>,
    samples: usize,
    active: usize,
}

impl Memtable {
    /// Appends `samples` (arrival order) to series `r`, each into the chunk of
    /// its bucket (`bucket_of(ts)`); returns their (min, max) ts.
    pub(crate) fn insert(
        &mut self,
        r: SeriesRef,
        samples: &[Sample],
        bucket_of: impl Fn(i64) -> i64,
    ) -> Option<(i64, i64)> {
        let first = samples.first()?;
        let idx = r as usize;
        if self.series.len() <= idx {
            self.series.resize_with(idx + 1, Vec::new);
        }
        let chunks = self.series.get_mut(idx)?;
        if chunks.is_empty() {
            self.active += 1;
        }
        let (mut min, mut max) = (first.ts, first.ts);
        for s in samples {
            let b = bucket_of(s.ts);
            let pos = match chunks.iter().rposition(|(cb, _)| *cb == b) {
                Some(p) => p,
                None => {
                    // Almost every series has one bucket: grow one at a time
                    // (a Vec's first allocation is 4 slots, 3 of them wasted).
                    chunks.reserve_exact(1);
                    chunks.push((b, Chunk::default()));
                    chunks.len() - 1
                }
            };
            if let Some((_, c)) = chunks.get_mut(pos) {
                c.push(s.ts, s.value.to_bits());
            }
            min = min.min(s.ts);
            max = max.max(s.ts);
        }
        self.samples += samples.len();
        Some((min, max))
    }

    /// The chunks of series `r` (bucket start, chunk).
    pub(crate) fn get(&self, r: SeriesRef) -> &[(i64, Chunk)] {
        self.series.get(r as usize).map_or(&[], Vec::as_slice)
    }

    /// Every buffered (series, bucket, chunk).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SeriesRef, i64, &Chunk)> {
        self.series.iter().enumerate().flat_map(|(r, cs)| cs.iter().map(move |(b, c)| (r as SeriesRef, *b, c)))
    }

    /// Drops the chunks of buckets starting before `bound` for the series `keep_tenant` selects.
    pub(crate) fn drop_before(&mut self, bound: i64, in_scope: impl Fn(SeriesRef) -> bool) {
        for (r, cs) in self.series.iter_mut().enumerate() {
            if cs.is_empty() || !in_scope(r as SeriesRef) {
                continue;
            }
            cs.retain(|(b, _)| *b >= bound);
            if cs.is_empty() {
                self.active -= 1;
                *cs = Vec::new();
            }
        }
    }

    /// Samples appended (duplicates included).
    pub(crate) fn samples(&self) -> usize {
        self.samples
    }

    /// Series with buffered samples.
    pub(crate) fn series(&self) -> usize {
        self.active
    }

    /// True when nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.active == 0
    }

    /// Approximate heap bytes held by the chunks.
    pub(crate) fn heap_bytes(&self) -> usize {
        let per_series = self.series.capacity() * std::mem::size_of::<Vec<(i64, Chunk)>>();
        let chunks: usize = self
            .series
            .iter()
            .flat_map(|cs| cs.iter())
            .map(|(_, c)| std::mem::size_of::<(i64, Chunk)>() + c.heap_bytes())
            .sum();
        per_series + chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ts: i64, v: f64) -> Sample {
        Sample::new(ts, v)
    }

    fn one_bucket(_: i64) -> i64 {
        0
    }

    fn all(m: &Memtable, r: SeriesRef) -> Vec<(i64, u64)> {
        m.get(r)[0].1.samples().unwrap()
    }

    #[test]
    fn later_write_wins_on_equal_timestamps() {
        let mut m = Memtable::default();
        m.insert(0, &[s(2, 1.0), s(1, 5.0), s(2, 3.0)], one_bucket);
        m.insert(0, &[s(1, 7.0)], one_bucket);
        assert_eq!(all(&m, 0), vec![(1, 7.0f64.to_bits()), (2, 3.0f64.to_bits())]);
        assert_eq!(m.samples(), 4);
    }

    #[test]
    fn round_trips_any_timestamps_and_values() {
        let mut m = Memtable::default();
        let mut want = std::collections::BTreeMap::new();
        let mut x = 0x1234_5678u64;
        let mut ts = -1_000_000i64;
        for i in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ts += match i % 7 {
                0 => 10_000,
                1 => (x % 200) as i64 - 100,
                2 => (x % 100_000) as i64,
                3 => -((x % 50) as i64),
                4 => (x >> 20) as i64,
                _ => 10_000 + (x % 3) as i64,
            };
            let v = if i % 5 == 0 { f64::from_bits(x) } else { (i % 13) as f64 * 0.25 };
            m.insert(0, &[s(ts, v)], one_bucket);
            want.insert(ts, v.to_bits());
        }
        assert_eq!(all(&m, 0), want.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn compresses_regular_series() {
        let mut m = Memtable::default();
        for i in 0..1000 {
            m.insert(0, &[s(1_700_000_000_000 + i * 10_000, 20.0 + (i % 10) as f64 * 0.25)], one_bucket);
        }
        let per_sample = m.get(0)[0].1.bits.buf.len() as f64 / 1000.0;
        assert!(per_sample < 2.0, "{per_sample} bytes/sample");
    }

    #[test]
    fn in_range_is_inclusive_on_both_ends() {
        let mut m = Memtable::default();
        m.insert(0, &[s(5, 0.0), s(1, 0.0), s(3, 0.0), s(9, 0.0)], one_bucket);
        let c = &m.get(0)[0].1;
        let ts: Vec<i64> = c.in_range(TimeRange::new(3, 5)).unwrap().iter().map(|x| x.0).collect();
        assert_eq!(ts, vec![3, 5]);
        assert!(c.in_range(TimeRange::new(6, 4)).unwrap().is_empty());
        assert_eq!(c.bounds(), (1, 9));
    }

    #[test]
    fn splits_samples_by_bucket_and_drops_old_buckets() {
        let mut m = Memtable::default();
        assert_eq!(m.insert(0, &[], one_bucket), None);
        assert!(m.is_empty());
        assert_eq!(m.insert(0, &[s(4, 0.0), s(-2, 0.0), s(15, 1.0)], |ts| ts.div_euclid(10) * 10), Some((-2, 15)));
        assert_eq!(m.iter().map(|(_, b, _)| b).collect::<Vec<_>>(), vec![0, -10, 10]);
        m.drop_before(10, |_| true);
        assert_eq!(m.iter().map(|(_, b, _)| b).collect::<Vec<_>>(), vec![10]);
        m.drop_before(20, |_| true);
        assert!(m.is_empty());
    }
}
