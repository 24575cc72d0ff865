//! The memtable: samples applied since the last flush, per series and time
//! bucket, held as compressed chunks.
//!
//! ```text
//!  Memtable.series[SeriesRef] ──► [(bucket start, Chunk)]   (usually one bucket per series)
//!  Chunk ── bits: in-order samples as one bit stream:
//!              first sample: ts (64 bits), value (64 bits: f64 bits, or the decimal mantissa)
//!              then per sample: ts delta-of-delta (the segment codec's `write_dod` prefix code)
//!                               value: decimal mode: zigzag(m_i - m_{i-1}) behind '0' | '10'+6 | '110'+13 | '1110'+24 | '1111'+64
//!                                      Gorilla mode: XOR previous (the segment codec's control bits)
//!        └─ ooo:  samples whose ts was <= the chunk's last ts (out of order or rewrites), arrival order
//! ```
//!
//! Sensor readings have a fixed decimal resolution: a chunk starts in decimal
//! mode (values as integers `m / 10^k`, stepping by a few units: ~1 byte a
//! sample with its timestamp bit) and falls back to Gorilla (a 2-decimal
//! reading XORs to ~45 meaningful bits) when a value has no such form, by
//! re-encoding itself; a value needing more decimals re-encodes it with the
//! larger `k`. Reading a chunk decodes the stream and applies `ooo` in
//! arrival order on top. That is "latest write wins": a stream sample at `t`
//! was appended when `t` exceeded every earlier sample, so any `ooo` sample
//! with the same `t` arrived later. When `ooo` grows past an eighth of the
//! chunk (and 2 samples), the chunk is re-encoded with it merged.
//!
//! Most disorder is one step deep: concurrent requests of one device land
//! its sample `t` just after `t + 1`. Such a sample (newer than the one
//! before the last) is spliced into the stream instead of set aside: the
//! chunk remembers where the last sample's encoding starts (`tail`), reads
//! the state before it back from those bits, cuts them off and appends the
//! late sample and the last one again (a rewrite of the last timestamp is
//! cut off and appended the same way). The chunk stays one stream that a
//! flush copies as it is;
//! setting the sample aside would cost a decode and re-encode of the whole
//! chunk at the flush.
//!
//! A flush copies a chunk with nothing aside in `ooo` into its segment as a
//! stream block (the stream from bit 64 on, behind a mode byte: format V6,
//! `FORMAT.md` "Stream blocks"), so the stream's layout is persisted: the
//! codec (`codec::decode_stream`, `write_step`) decodes both.

use strata_schemas::{Sample, TimeRange};

use crate::codec::{
    BitReader, BitWriter, DecodeError, POW10, STREAM_GORILLA, decimal_exponent, decimal_mantissa, decode_stream,
    decode_xor, encode_xor, read_dod, read_step, write_dod, write_step,
};
use crate::index::SeriesRef;

/// `Chunk::mode` of a chunk whose values are Gorilla XORs.
const GORILLA: u8 = STREAM_GORILLA;
/// `Chunk::window` before any XOR window was set.
const NO_WINDOW: (u8, u8) = (u8::MAX, u8::MAX);
/// `Chunk::tail` when the last sample's bit position is not known (fewer
/// than two samples, or a stream longer than `u32::MAX` bits).
const NO_TAIL: u32 = u32::MAX;

/// One series' samples within one time bucket (72 bytes plus its stream).
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    bits: Vec<u8>,
    /// Bits used in the last byte of `bits` (0 = full).
    used: u8,
    /// Decimal exponent `k` of the values, or [`GORILLA`].
    mode: u8,
    /// Gorilla XOR window (leading, trailing zeros) of the last value;
    /// [`NO_WINDOW`] before the first.
    window: (u8, u8),
    /// `window` before the last sample was appended.
    prev_window: (u8, u8),
    /// Bit length of the stream before the last sample's encoding, or
    /// [`NO_TAIL`]: where [`Chunk::splice`] cuts.
    tail: u32,
    n: u32,
    last_ts: i64,
    last_delta: i64,
    /// The last value: its f64 bits (Gorilla) or its mantissa (decimal).
    last_val: u64,
    /// Boxed: out-of-order samples are rare, and a chunk per series per
    /// bucket pays 8 bytes for the pointer instead of 24 for a `Vec`.
    #[allow(clippy::box_collection)]
    ooo: Option<Box<Vec<(i64, u64)>>>,
}

impl Default for Chunk {
    fn default() -> Self {
        Chunk {
            bits: Vec::new(),
            used: 0,
            mode: GORILLA,
            window: NO_WINDOW,
            prev_window: NO_WINDOW,
            tail: NO_TAIL,
            n: 0,
            last_ts: 0,
            last_delta: 0,
            last_val: 0,
            ooo: None,
        }
    }
}

/// Out-of-order samples a chunk keeps aside before merging them into its
/// stream: more than this many, and more than an eighth of the stream.
/// Concurrent write requests of one device land samples out of order all
/// the time; raw they cost 16 bytes each (plus the list), merged ~1 (a
/// simulation of peer-bench data with every other timestamp late: memtable
/// 98 MB with 32 and a half, 43 MB with these).
const REBUILD_MIN_OOO: usize = 2;

impl Chunk {
    /// Runs `f` on the stream as a bit writer.
    fn write(&mut self, f: impl FnOnce(&mut BitWriter)) {
        let mut w = BitWriter::resume(std::mem::take(&mut self.bits), u32::from(self.used));
        f(&mut w);
        let (bits, used) = w.into_parts();
        (self.bits, self.used) = (bits, used as u8);
    }

    fn push(&mut self, ts: i64, bits: u64) {
        if self.n == 0 {
            self.mode = decimal_exponent(f64::from_bits(bits)).map_or(GORILLA, |k| k as u8);
            self.push_first(ts, bits);
            return;
        }
        if ts <= self.last_ts {
            if self.splice(ts, bits) {
                return;
            }
            let ooo = self.ooo.get_or_insert_default();
            ooo.push((ts, bits));
            if ooo.len() > REBUILD_MIN_OOO && ooo.len() > self.n as usize / 8 {
                self.rebuild(None);
            }
            return;
        }
        if !self.append(ts, bits) {
            // No decimal form at this chunk's exponent: re-encode everything.
            self.rebuild(Some((ts, bits)));
        }
    }

    /// The first sample of an empty chunk, in its (already chosen) mode.
    fn push_first(&mut self, ts: i64, bits: u64) {
        let first = self.value_word(bits).unwrap_or_else(|| {
            self.mode = GORILLA;
            bits
        });
        self.write(|w| {
            w.write_bits(ts as u64, 64);
            w.write_bits(first, 64);
        });
        (self.last_ts, self.last_delta, self.last_val, self.n) = (ts, 0, first, 1);
    }

    /// Appends a sample after the last one; false when its value does not
    /// fit the chunk's mode (nothing is written then).
    fn append(&mut self, ts: i64, bits: u64) -> bool {
        let Some(word) = self.value_word(bits) else { return false };
        self.append_word(ts, word);
        true
    }

    /// Appends a sample after the last one, its value already a word of
    /// the chunk's mode.
    fn append_word(&mut self, ts: i64, word: u64) {
        let delta = ts.wrapping_sub(self.last_ts);
        let dod = delta.wrapping_sub(self.last_delta);
        let (mode, last) = (self.mode, self.last_val);
        let mut window = (self.window != NO_WINDOW).then(|| (u32::from(self.window.0), u32::from(self.window.1)));
        let tail = self.bit_len();
        self.write(|w| {
            write_dod(w, dod);
            if mode == GORILLA {
                encode_xor(w, word ^ last, &mut window);
            } else {
                write_step(w, (word as i64).wrapping_sub(last as i64));
            }
        });
        self.prev_window = self.window;
        self.window = window.map_or(NO_WINDOW, |(l, t)| (l as u8, t as u8));
        self.tail = u32::try_from(tail).unwrap_or(NO_TAIL);
        (self.last_ts, self.last_delta, self.last_val) = (ts, delta, word);
        self.n += 1;
    }

    /// Bits in the stream.
    fn bit_len(&self) -> usize {
        let full = self.bits.len() * 8;
        if self.used == 0 { full } else { full - (8 - usize::from(self.used)) }
    }

    /// Puts a late sample (`ts <= last_ts`) into the stream when it belongs
    /// just before the last sample, or rewrites the last one: the last
    /// sample's bits are cut off and it is appended again after the late
    /// one. With one sample, the chunk starts over with both. False (and
    /// nothing changed) when the sample lies further back, when its value
    /// does not fit the chunk's mode, or when a sample aside has the same
    /// timestamp (it arrived earlier, and would win on reading).
    fn splice(&mut self, ts: i64, bits: u64) -> bool {
        if self.ooo.as_deref().is_some_and(|o| o.iter().any(|s| s.0 == ts)) {
            return false;
        }
        if self.n == 1 {
            if self.ooo.as_deref().is_some_and(|o| !o.is_empty()) {
                return false;
            }
            let (last_ts, Some(last)) = (self.last_ts, self.last_bits()) else { return false };
            let mut fresh = Chunk::default();
            fresh.push(ts, bits);
            if ts != last_ts {
                fresh.push(last_ts, last);
            }
            *self = fresh;
            return true;
        }
        let prev_ts = self.last_ts.wrapping_sub(self.last_delta);
        if self.n < 2 || self.tail == NO_TAIL || ts <= prev_ts {
            return false;
        }
        let Some(word) = self.value_word(bits) else { return false };
        let Some((prev_delta, prev_val)) = self.state_before_last() else { return false };
        let (last_ts, last_word) = (self.last_ts, self.last_val);
        self.truncate_bits(self.tail as usize);
        (self.last_ts, self.last_delta, self.last_val, self.window) = (prev_ts, prev_delta, prev_val, self.prev_window);
        self.n -= 1;
        self.append_word(ts, word);
        if ts != last_ts {
            self.append_word(last_ts, last_word);
        }
        true
    }

    /// The timestamp delta and the value word of the sample before the
    /// last, read back from the last sample's encoding at `tail`.
    fn state_before_last(&self) -> Option<(i64, u64)> {
        let mut r = BitReader::at(&self.bits, self.tail as usize);
        let dod = read_dod(&mut r).ok()?;
        let prev_val = if self.mode == GORILLA {
            let w = self.prev_window;
            let mut window = (w != NO_WINDOW).then(|| (u32::from(w.0), u32::from(w.1)));
            self.last_val ^ decode_xor(&mut r, &mut window).ok()?
        } else {
            (self.last_val as i64).wrapping_sub(read_step(&mut r).ok()?) as u64
        };
        Some((self.last_delta.wrapping_sub(dod), prev_val))
    }

    /// Cuts the stream to its first `len` bits.
    fn truncate_bits(&mut self, len: usize) {
        self.bits.truncate(len.div_ceil(8));
        let used = len % 8;
        if used != 0
            && let Some(b) = self.bits.last_mut()
        {
            *b &= !(0xFFu8 >> used);
        }
        self.used = used as u8;
    }

    /// What the stream holds for value `bits` in this chunk's mode: the bits
    /// themselves (Gorilla) or the decimal mantissa; `None` when the value
    /// has no decimal form at the chunk's exponent.
    fn value_word(&self, bits: u64) -> Option<u64> {
        match self.mode {
            GORILLA => Some(bits),
            k => decimal_mantissa(f64::from_bits(bits), *POW10.get(usize::from(k))?).map(|m| m as u64),
        }
    }

    /// Re-encodes the chunk with its out-of-order samples (and `extra`, newer
    /// than every stream sample) merged in, in a mode all its values fit:
    /// decimal at the largest exponent they need, else Gorilla.
    fn rebuild(&mut self, extra: Option<(i64, u64)>) {
        let Ok(mut all) = self.samples() else { return };
        all.extend(extra);
        all.sort_by_key(|s| s.0);
        let k = all.iter().try_fold(0usize, |k, &(_, v)| decimal_exponent(f64::from_bits(v)).map(|e| k.max(e)));
        let fits = |k: usize| {
            POW10.get(k).is_some_and(|&p| all.iter().all(|&(_, v)| decimal_mantissa(f64::from_bits(v), p).is_some()))
        };
        let mode = k.filter(|&k| fits(k)).map_or(GORILLA, |k| k as u8);
        // Gorilla takes any value: the second pass cannot fail.
        for mode in [mode, GORILLA] {
            let mut fresh = Chunk { mode, ..Chunk::default() };
            let mut it = all.iter();
            if let Some(&(ts, v)) = it.next() {
                fresh.push_first(ts, v);
            }
            if it.all(|&(ts, v)| fresh.append(ts, v)) {
                *self = fresh;
                return;
            }
        }
    }

    /// Samples sorted by ts, one per ts (the last written wins).
    pub(crate) fn samples(&self) -> Result<Vec<(i64, u64)>, DecodeError> {
        let stream = self.decode_stream()?;
        let Some(ooo) = self.ooo.as_deref().filter(|o| !o.is_empty()) else {
            return Ok(stream);
        };
        let mut late = ooo.clone();
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
        if self.n == 0 {
            return Ok(Vec::new());
        }
        let (t0, rest) = self.bits.split_first_chunk::<8>().ok_or("chunk shorter than its first timestamp")?;
        decode_stream(rest, self.mode, self.n as usize, i64::from_be_bytes(*t0))
    }

    /// The chunk as a segment stream block when it can be copied as is (no
    /// out-of-order samples aside): its mode byte, its stream after the
    /// first timestamp (which the block's index entry carries), the count
    /// and the first and last timestamps. See `FORMAT.md`, "Stream blocks".
    pub(crate) fn stream_block(&self) -> Option<StreamView<'_>> {
        if self.n == 0 || self.ooo.as_deref().is_some_and(|o| !o.is_empty()) {
            return None;
        }
        let (t0, bits) = self.bits.split_first_chunk::<8>()?;
        let min_ts = i64::from_be_bytes(*t0);
        Some(StreamView { mode: self.mode, bits, count: self.n, min_ts, max_ts: self.last_ts })
    }

    /// A copy of the chunk with its out-of-order samples merged into the
    /// stream, in the chunk's own mode (no search for a decimal exponent:
    /// the flush's way to a stream block); `None` when it has none aside,
    /// or when a merged value does not fit the mode (the caller encodes
    /// the samples instead).
    pub(crate) fn merged(&self) -> Option<Chunk> {
        if self.ooo.as_deref().is_none_or(|o| o.is_empty()) {
            return None;
        }
        let all = self.samples().ok()?;
        let mut fresh = Chunk { mode: self.mode, ..Chunk::default() };
        let mut it = all.iter();
        let &(ts, v) = it.next()?;
        fresh.push_first(ts, v);
        if fresh.mode != self.mode {
            return None;
        }
        it.all(|&(ts, v)| fresh.append(ts, v)).then_some(fresh)
    }

    /// The sorted, unique samples within `range`.
    pub(crate) fn in_range(&self, range: TimeRange) -> Result<Vec<(i64, u64)>, DecodeError> {
        if !range.overlaps(self.min_ts(), self.last_ts) {
            return Ok(Vec::new());
        }
        let mut all = self.samples()?;
        all.retain(|&(ts, _)| range.contains(ts));
        Ok(all)
    }

    /// The newest sample within `range` (what [`Chunk::in_range`] would
    /// end with). When the chunk's last timestamp lies in the range, that is
    /// the stream's last sample (kept decoded in the chunk), or the latest
    /// out-of-order rewrite of the same timestamp: nothing is decoded.
    pub(crate) fn newest_in(&self, range: TimeRange) -> Result<Option<(i64, u64)>, DecodeError> {
        if self.n == 0 || !range.overlaps(self.min_ts(), self.last_ts) {
            return Ok(None);
        }
        if self.last_ts > range.end {
            return Ok(self.in_range(range)?.last().copied());
        }
        // Arrival order: the last rewrite of `last_ts` wins over the stream's.
        if let Some(&late) = self.ooo.as_deref().and_then(|o| o.iter().rev().find(|s| s.0 == self.last_ts)) {
            return Ok(Some(late));
        }
        let bits = self.last_bits().ok_or("chunk decimal exponent out of range")?;
        Ok(Some((self.last_ts, bits)))
    }

    /// The stream's last value as f64 bits (kept decoded in the chunk).
    fn last_bits(&self) -> Option<u64> {
        match self.mode {
            GORILLA => Some(self.last_val),
            // As `codec::decode_stream` turns a mantissa into its value.
            k => POW10.get(usize::from(k)).map(|p| (self.last_val as i64 as f64 / p).to_bits()),
        }
    }

    /// Drops the samples with ts in `[start, end]` (erasure), re-encoding
    /// the rest from scratch so no bit of a dropped sample stays in the
    /// stream; returns how many distinct timestamps were dropped.
    pub(crate) fn remove_range(&mut self, start: i64, end: i64) -> Result<usize, DecodeError> {
        if self.n == 0 || end < self.min_ts() || start > self.last_ts {
            return Ok(0);
        }
        let mut kept = self.samples()?;
        let before = kept.len();
        kept.retain(|&(ts, _)| ts < start || ts > end);
        let removed = before - kept.len();
        if removed > 0 {
            let mut fresh = Chunk { ooo: Some(Box::new(kept)), ..Chunk::default() };
            fresh.rebuild(None);
            *self = fresh;
        }
        Ok(removed)
    }

    /// True when the chunk holds no sample.
    pub(crate) fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Smallest and largest timestamp held.
    #[cfg(test)]
    pub(crate) fn bounds(&self) -> (i64, i64) {
        (self.min_ts(), self.last_ts)
    }

    /// The smallest timestamp held: the stream's first, or one aside
    /// (kept nowhere: a chunk per series per bucket saves the 8 bytes).
    fn min_ts(&self) -> i64 {
        let t0 = self.bits.first_chunk::<8>().map_or(0, |b| i64::from_be_bytes(*b));
        self.ooo.as_deref().into_iter().flatten().fold(t0, |m, s| m.min(s.0))
    }

    /// Heap bytes held.
    fn heap_bytes(&self) -> usize {
        self.bits.capacity() + self.ooo.as_ref().map_or(0, |o| 24 + o.capacity() * 16)
    }
}

/// A chunk's in-order samples as they are encoded in memory, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamView<'a> {
    /// Decimal exponent of the mantissas, or `codec::STREAM_GORILLA`.
    pub(crate) mode: u8,
    /// The stream after the first timestamp: first value word, then per sample dod and value.
    pub(crate) bits: &'a [u8],
    pub(crate) count: u32,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
}

/// Buffered samples of every series since the last flush.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    series: Vec<Vec<(i64, Chunk)>>,
    samples: usize,
    active: usize,
}

impl Memtable {
    /// An empty memtable with `slots` series slots already made (see
    /// [`Memtable::slots`]), so inserts up to that series handle do not grow it.
    pub(crate) fn with_slots(slots: usize) -> Self {
        let mut series = Vec::with_capacity(slots);
        series.resize_with(slots, Vec::new);
        Memtable { series, samples: 0, active: 0 }
    }

    /// Series slots: one past the highest series handle ever inserted.
    pub(crate) fn slots(&self) -> usize {
        self.series.len()
    }

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

    /// Asks the CPU to start loading what [`Memtable::insert`] of series `r`
    /// will touch, one level per call: `0` the series' slot, `1` (the slot
    /// loaded) its newest chunk, `2` (the chunk loaded) the end of the
    /// chunk's bits, where the sample is appended. A caller walking many
    /// series asks for level 0 of a series several positions ahead, 1 for a
    /// nearer one and 2 for the next ones, so the three dependent misses of
    /// each series overlap with other series' work (see
    /// [`strata_schemas::prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, r: SeriesRef, level: u8) {
        use strata_schemas::prefetch::prefetch_read;
        let idx = r as usize;
        match level {
            0 => prefetch_read(self.series.as_ptr().wrapping_add(idx)),
            1 => {
                if let Some(c) = self.series.get(idx).and_then(|cs| cs.last()) {
                    prefetch_read(std::ptr::from_ref(c));
                    prefetch_read(std::ptr::from_ref(c).cast::<u8>().wrapping_add(64));
                }
            }
            _ => {
                if let Some((_, c)) = self.series.get(idx).and_then(|cs| cs.last()) {
                    prefetch_read(c.bits.as_ptr().wrapping_add(c.bits.len().saturating_sub(1)));
                }
            }
        }
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

    /// Drops series `r`'s samples with ts in `[start, end]`; returns how many
    /// were dropped. A chunk left empty is freed.
    pub(crate) fn remove_range(&mut self, r: SeriesRef, start: i64, end: i64) -> Result<usize, DecodeError> {
        let Some(cs) = self.series.get_mut(r as usize) else { return Ok(0) };
        if cs.is_empty() {
            return Ok(0);
        }
        let mut removed = 0;
        for (_, c) in cs.iter_mut() {
            removed += c.remove_range(start, end)?;
        }
        cs.retain(|(_, c)| !c.is_empty());
        if cs.is_empty() {
            *cs = Vec::new();
            self.active -= 1;
        }
        self.samples = self.samples.saturating_sub(removed);
        Ok(removed)
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
mod tests;
