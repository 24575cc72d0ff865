//! Byte-level encodings shared by segments and the manifest: LEB128 varints,
//! a bounds-checked read cursor, and the sample-block codec.
//!
//! A sample block encodes `n >= 1` samples sorted by timestamp with unique
//! timestamps. Since format V4 the count `n` and the first timestamp `t0`
//! live in the block's index entry (they are needed there anyway), so the
//! block holds only what follows them:
//!
//! ```text
//! uvarint  L, then L bytes: bit stream of dod_i for i in 1..n ('0' for a regular interval, see `write_dod`)
//!          dod_i = (t_i - t_{i-1}) - (t_{i-1} - t_{i-2}), with t_{-1} := t_0
//! u8       value encoding: 0 = Gorilla, 1 = decimal, 2 = packed decimal
//!   0: bits     Gorilla XOR stream of the n values (f64 bit patterns, MSB first, zero-padded to a byte)
//!   1: u8       exponent k (0..=9); then n ivarints: m_i - m_{i-1} (m_{-1} := 0), value_i = m_i / 10^k
//!   2: u8       exponent k; ivarint m_0; u8 width w (0..=64); then n - 1 zigzag(m_i - m_{i-1}) of
//!               w bits each, MSB first, zero-padded to a byte
//! ```
//!
//! (V3 blocks start with `uvarint n, ivarint t0` and have no packed
//! decimal; V2 blocks hold one ivarint per delta-of-delta instead of the bit
//! stream. Both are still read.)
//!
//! The encoder writes every applicable value encoding and keeps the smallest.
//! Decimal applies only when every value `v` of the block satisfies
//! `(round(v * 10^k) / 10^k).to_bits() == v.to_bits()` with `|m| <= 2^53`
//! (sensor readings with a fixed resolution, counters); Gorilla handles
//! everything else (NaN, -0.0, arbitrary doubles). IEEE division is correctly
//! rounded, so the decoder's `m / 10^k` reproduces the exact bits. Packed
//! decimal spends the same number of bits on every step of a smooth
//! reading (a pH walking by ±0.02 costs 3 bits a sample instead of a byte).
//!
//! All timestamp arithmetic wraps, so any `i64` round-trips. Values are
//! stored as raw bit patterns, so NaN payloads (staleness markers) survive.
//!
//! The memtable's chunk stream (timestamp dods and values interleaved, the
//! values as decimal mantissa steps or Gorilla XORs) is decoded here too
//! ([`decode_stream`]): since V6 a flush copies it into a segment as a
//! *stream block* (`u8 mode`, then the stream after its first timestamp;
//! [`decode_stream_block`]).

/// Why bytes could not be decoded; the caller adds the file and location.
pub(crate) type DecodeError = &'static str;

pub(crate) use strata_schemas::varint::{put_ivarint, put_uvarint};

/// Appends a string as uvarint length + UTF-8 bytes.
pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// A bounds-checked reader over a byte slice. Never panics.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err("truncated");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let (head, rest) = self.buf.split_first_chunk::<8>().ok_or("truncated u64")?;
        self.buf = rest;
        Ok(u64::from_le_bytes(*head))
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            if shift == 63 && b > 1 {
                return Err("varint overflows u64");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err("varint too long");
            }
        }
    }

    pub(crate) fn ivarint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads a count whose elements need at least `min_elem_bytes` each, so a
    /// corrupt count cannot make us allocate more than the input could hold.
    pub(crate) fn len(&mut self, min_elem_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        if n > (self.buf.len() / min_elem_bytes.max(1)) as u64 {
            return Err("count exceeds remaining bytes");
        }
        Ok(n as usize)
    }

    /// Reads a count of elements that need at least one *bit* each (after a
    /// first one), so a corrupt count cannot allocate more than 8× the input.
    pub(crate) fn len_bits(&mut self) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        if n > (self.buf.len() as u64).saturating_mul(8).saturating_add(1) {
            return Err("count exceeds remaining bits");
        }
        Ok(n as usize)
    }

    pub(crate) fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.len(1)?;
        let bytes = self.bytes(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8")
    }
}

/// MSB-first bit writer.
#[derive(Debug, Default, Clone)]
pub(crate) struct BitWriter {
    pub(crate) buf: Vec<u8>,
    /// Bits used in the last byte (0 = last byte full or no byte).
    used: u32,
}

impl BitWriter {
    /// A writer continuing `buf`, whose last byte has `used` bits in use (0 = full).
    pub(crate) fn resume(buf: Vec<u8>, used: u32) -> Self {
        Self { buf, used: used % 8 }
    }

    /// The bytes and the bits used in the last one.
    pub(crate) fn into_parts(self) -> (Vec<u8>, u32) {
        (self.buf, self.used)
    }

    /// Writes the low `n` bits of `value` (1 <= n <= 64), most significant first.
    pub(crate) fn write_bits(&mut self, value: u64, n: u32) {
        let mut left = n.min(64);
        if self.used != 0 && left > 0 {
            // Fill the partly used last byte.
            let free = 8 - self.used;
            let take = free.min(left);
            let chunk = ((value >> (left - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= chunk << (free - take);
            }
            self.used = (self.used + take) % 8;
            left -= take;
        }
        if left == 0 {
            return;
        }
        // The `left` low bits left-aligned in a word (the bits above them
        // shift out): its first `left / 8` big-endian bytes are the whole
        // bytes, and the next one holds the rest at its top, zeros below.
        let word = (value << (64 - left)).to_be_bytes();
        let len = left.div_ceil(8) as usize;
        self.buf.extend_from_slice(word.get(..len).unwrap_or(&word));
        self.used = left % 8;
    }
}

/// MSB-first bit reader.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// A reader of `buf` from bit `pos` on.
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    pub(crate) fn read_bit(&mut self) -> Result<bool, DecodeError> {
        let byte = self.buf.get(self.pos / 8).ok_or("value bits truncated")?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` bits (0 <= n <= 64): up to 56 bits from one big-endian
    /// 8-byte window (zero-padded past the end of the buffer), more a byte
    /// at a time. Fails when the buffer holds fewer than `n` more bits.
    pub(crate) fn read_bits(&mut self, n: u32) -> Result<u64, DecodeError> {
        if n == 0 || n > 56 {
            return self.read_bits_bytewise(n);
        }
        let end = self.pos.saturating_add(n as usize);
        if end > self.buf.len().saturating_mul(8) {
            return Err("value bits truncated");
        }
        // `pos % 8 + n <= 63`: the window holds every bit asked for.
        let v = self.word() >> (64 - n);
        self.pos = end;
        Ok(v)
    }

    /// The bits from the reading position on, left-aligned in a word (read
    /// big-endian from the byte holding the position, zero-padded past the
    /// end of the buffer), and how many of them are real: at least 57 unless
    /// the buffer ends sooner. Consumes nothing.
    fn window(&self) -> (u64, usize) {
        let left = self.buf.len().saturating_mul(8).saturating_sub(self.pos);
        (self.word(), (64 - self.pos % 8).min(left))
    }

    /// [`Self::window`]'s word alone.
    fn word(&self) -> u64 {
        let at = self.pos / 8;
        let word = match self.buf.get(at..at.saturating_add(8)) {
            Some(w) => <[u8; 8]>::try_from(w).map_or(0, u64::from_be_bytes),
            None => {
                let tail = self.buf.get(at..).unwrap_or_default();
                let mut w = [0u8; 8];
                for (d, s) in w.iter_mut().zip(tail) {
                    *d = *s;
                }
                u64::from_be_bytes(w)
            }
        };
        word << (self.pos % 8)
    }

    /// Consumes the run of 0 bits at the reading position, at most `max` of
    /// them and at most one window's worth (call again for a longer run);
    /// returns how many it consumed (0: the next bit is a 1, or there is none).
    pub(crate) fn skip_zeros(&mut self, max: usize) -> usize {
        let (w, real) = self.window();
        let z = (w.leading_zeros() as usize).min(real).min(max);
        self.pos += z;
        z
    }

    /// A prefix-coded value read from one window: the prefix is the run of
    /// leading 1 bits (`widths[i]` payload bits follow `i` ones and a 0; a
    /// run longer than the table is left to the caller). `None`, with
    /// nothing consumed, when the run is too long or the buffer ends within
    /// the code: the caller then reads it bit by bit (and fails the same way).
    fn read_prefixed(&mut self, widths: &[u32]) -> Option<u64> {
        let (w, real) = self.window();
        let ones = w.leading_ones() as usize;
        let width = *widths.get(ones)?;
        let prefix = ones + 1;
        if prefix + width as usize > real {
            return None;
        }
        let v = if width == 0 { 0 } else { (w << prefix) >> (64 - width) };
        self.pos += prefix + width as usize;
        Some(v)
    }

    /// [`Self::read_bits`] a byte at a time (any `n`, and the reference the
    /// windowed read is tested against).
    pub(crate) fn read_bits_bytewise(&mut self, n: u32) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = u64::from(*self.buf.get(self.pos / 8).ok_or("value bits truncated")?);
            let avail = 8 - (self.pos % 8) as u32;
            let take = avail.min(left);
            let bits = (byte >> (avail - take)) & ((1u64 << take) - 1);
            v = if take == 64 { bits } else { (v << take) | bits };
            left -= take;
            self.pos += take as usize;
        }
        Ok(v)
    }
}

/// Writes a timestamp delta-of-delta as its zigzag encoding `zz` behind a
/// prefix: '0' for 0 (a regular interval), '10'+7 bits, '110'+9, '1110'+14,
/// '11110'+20, '11111'+64. Millisecond jitter of a few hundred ms (typical
/// of device clocks) fits the 9-bit tier.
pub(crate) fn write_dod(bits: &mut BitWriter, dod: i64) {
    let zz = ((dod << 1) ^ (dod >> 63)) as u64;
    match zz {
        0 => bits.write_bits(0, 1),
        _ if zz < 1 << 7 => bits.write_bits((0b10 << 7) | zz, 9),
        _ if zz < 1 << 9 => bits.write_bits((0b110 << 9) | zz, 12),
        _ if zz < 1 << 14 => bits.write_bits((0b1110 << 14) | zz, 18),
        _ if zz < 1 << 20 => bits.write_bits((0b11110 << 20) | zz, 25),
        _ => {
            bits.write_bits(0b11111, 5);
            bits.write_bits(zz, 64);
        }
    }
}

/// Reads what [`write_dod`] wrote.
pub(crate) fn read_dod(r: &mut BitReader<'_>) -> Result<i64, DecodeError> {
    // Prefix and payload from one window when they fit (any code but the
    // 64-bit one); otherwise bit by bit below.
    if let Some(zz) = r.read_prefixed(&[0, 7, 9, 14, 20]) {
        return Ok(unzigzag(zz));
    }
    read_dod_bitwise(r)
}

/// [`read_dod`] a bit at a time (the reference the windowed read is tested against).
pub(crate) fn read_dod_bitwise(r: &mut BitReader<'_>) -> Result<i64, DecodeError> {
    if !r.read_bit()? {
        return Ok(0);
    }
    let width = if !r.read_bit()? {
        7
    } else if !r.read_bit()? {
        9
    } else if !r.read_bit()? {
        14
    } else if !r.read_bit()? {
        20
    } else {
        64
    };
    let zz = r.read_bits(width)?;
    Ok(((zz >> 1) as i64) ^ -((zz & 1) as i64))
}

/// Encodes samples `(ts, value bits)`, sorted by ts with unique ts, appending
/// to `out`, in the current block layout ([`crate::FormatVersion::V4`]): the
/// byte length and bit stream of the timestamps' delta-of-deltas after the
/// first ([`write_dod`]: one bit for a regular interval), then the values.
/// The count and the first timestamp are not written: they go into the
/// block's index entry ([`decode_block`] takes them back).
pub(crate) fn encode_samples(samples: &[(i64, u64)], out: &mut Vec<u8>) {
    let Some(&(t0, v0)) = samples.first() else { return };
    let mut ts_bits = BitWriter::default();
    let (mut prev_ts, mut prev_delta) = (t0, 0i64);
    for &(ts, _) in samples.iter().skip(1) {
        let delta = ts.wrapping_sub(prev_ts);
        write_dod(&mut ts_bits, delta.wrapping_sub(prev_delta));
        (prev_ts, prev_delta) = (ts, delta);
    }
    put_uvarint(out, ts_bits.buf.len() as u64);
    out.extend_from_slice(&ts_bits.buf);
    encode_values(samples, v0, out);
}

/// The value part of a block: a tag byte, then Gorilla XOR bits, decimal
/// varints or packed decimal, whichever is smallest.
fn encode_values(samples: &[(i64, u64)], v0: u64, out: &mut Vec<u8>) {
    let mut bits = BitWriter::default();
    bits.write_bits(v0, 64);
    let mut window: Option<(u32, u32)> = None;
    let mut prev = v0;
    for &(_, v) in samples.iter().skip(1) {
        encode_xor(&mut bits, v ^ prev, &mut window);
        prev = v;
    }
    let gorilla = bits.buf.len();
    let Some((k, mantissas)) = decimal_mantissas(samples) else {
        out.push(VALUES_GORILLA);
        out.extend_from_slice(&bits.buf);
        return;
    };
    let (varint, (width, packed)) = (decimal_varint_len(&mantissas), decimal_packed_len(&mantissas));
    if gorilla <= varint.min(packed) {
        out.push(VALUES_GORILLA);
        out.extend_from_slice(&bits.buf);
    } else if packed < varint {
        out.push(VALUES_PACKED_DECIMAL);
        put_packed_decimal(k, width, &mantissas, out);
    } else {
        out.push(VALUES_DECIMAL);
        out.push(k);
        let mut prev = 0i64;
        for &m in &mantissas {
            put_ivarint(out, m.wrapping_sub(prev));
            prev = m;
        }
    }
}

const VALUES_GORILLA: u8 = 0;
const VALUES_DECIMAL: u8 = 1;
const VALUES_PACKED_DECIMAL: u8 = 2;
const MAX_DECIMAL_EXP: usize = 9;
pub(crate) const POW10: [f64; MAX_DECIMAL_EXP + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

/// The smallest exponent `k` (at most [`MAX_DECIMAL_EXP`]) with an exact
/// decimal form `m / 10^k` of `v`.
pub(crate) fn decimal_exponent(v: f64) -> Option<usize> {
    (0..=MAX_DECIMAL_EXP).find(|&e| POW10.get(e).is_some_and(|&p| decimal_mantissa(v, p).is_some()))
}

/// `m` with `m / 10^k == v` bitwise (`p` = 10^k), if one exists.
pub(crate) fn decimal_mantissa(v: f64, p: f64) -> Option<i64> {
    let m = (v * p).round();
    if m.is_nan() || m.abs() > MAX_EXACT_INT {
        return None;
    }
    let m = m as i64;
    // Check through the integer, exactly as the decoder computes it (-0.0 fails here).
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// The exponent `k` and mantissas `m_i` with `m_i / 10^k == v_i` bitwise, or
/// `None` when some value has no exact decimal form with at most
/// [`MAX_DECIMAL_EXP`] fraction digits.
fn decimal_mantissas(samples: &[(i64, u64)]) -> Option<(u8, Vec<i64>)> {
    let mut k = 0;
    for &(_, bits) in samples {
        let v = f64::from_bits(bits);
        k = k.max(decimal_exponent(v)?);
    }
    let p = *POW10.get(k)?;
    let mantissas =
        samples.iter().map(|&(_, bits)| decimal_mantissa(f64::from_bits(bits), p)).collect::<Option<_>>()?;
    Some((k as u8, mantissas))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(zz: u64) -> i64 {
    ((zz >> 1) as i64) ^ -((zz & 1) as i64)
}

fn ivarint_len(v: i64) -> usize {
    (64 - zigzag(v).leading_zeros()).max(1).div_ceil(7) as usize
}

/// Bytes of the decimal-varint value part (exponent byte included).
fn decimal_varint_len(mantissas: &[i64]) -> usize {
    let mut prev = 0i64;
    1 + mantissas
        .iter()
        .map(|&m| {
            let d = m.wrapping_sub(prev);
            prev = m;
            ivarint_len(d)
        })
        .sum::<usize>()
}

/// The bit width of the packed steps and the bytes of the packed-decimal
/// value part (exponent, first mantissa, width, bits).
fn decimal_packed_len(mantissas: &[i64]) -> (u32, usize) {
    let width = mantissas
        .windows(2)
        .map(|w| match w {
            [a, b] => 64 - zigzag(b.wrapping_sub(*a)).leading_zeros(),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    let steps = mantissas.len().saturating_sub(1) as u64;
    let first = mantissas.first().map_or(1, |&m| ivarint_len(m));
    (width, 2 + first + (steps * u64::from(width)).div_ceil(8) as usize)
}

fn put_packed_decimal(k: u8, width: u32, mantissas: &[i64], out: &mut Vec<u8>) {
    out.push(k);
    put_ivarint(out, mantissas.first().copied().unwrap_or(0));
    out.push(width as u8);
    if width == 0 {
        return;
    }
    let mut bits = BitWriter::default();
    for w in mantissas.windows(2) {
        if let [a, b] = w {
            bits.write_bits(zigzag(b.wrapping_sub(*a)), width);
        }
    }
    out.extend_from_slice(&bits.buf);
}

/// The values of packed decimal mode into `out[i].1` (`out.len()` samples).
fn decode_packed_decimal(buf: &[u8], out: &mut [(i64, u64)]) -> Result<(), DecodeError> {
    let n = out.len();
    let mut cur = Cursor::new(buf);
    let k = *cur.bytes(1)?.first().ok_or("truncated decimal exponent")?;
    let p = *POW10.get(usize::from(k)).ok_or("decimal exponent out of range")?;
    let mut m = cur.ivarint()?;
    let width = u32::from(*cur.bytes(1)?.first().ok_or("truncated packed width")?);
    if width > 64 {
        return Err("packed width exceeds 64 bits");
    }
    let rest = cur.remaining();
    let steps = n.saturating_sub(1) as u64;
    if (steps * u64::from(width)).div_ceil(8) != rest.len() as u64 {
        return Err("packed decimal length disagrees with the count");
    }
    let mut bits = BitReader::new(rest);
    let decimal = |m: i64| {
        if m.unsigned_abs() > 1 << 53 {
            return Err("decimal mantissa exceeds 2^53");
        }
        Ok((m as f64 / p).to_bits())
    };
    let Some((first, tail)) = out.split_first_mut() else { return Ok(()) };
    first.1 = decimal(m)?;
    if (1..=56).contains(&width) {
        // The length check above guarantees every step's bits: each is the
        // top of one window, with no bounds to check per read.
        for slot in tail {
            m = m.wrapping_add(unzigzag(bits.word() >> (64 - width)));
            bits.pos += width as usize;
            slot.1 = decimal(m)?;
        }
        return Ok(());
    }
    for slot in tail {
        m = m.wrapping_add(unzigzag(bits.read_bits(width)?));
        slot.1 = decimal(m)?;
    }
    Ok(())
}

/// The values of decimal mode into `out[i].1` (`out.len()` samples).
fn decode_decimal(buf: &[u8], out: &mut [(i64, u64)]) -> Result<(), DecodeError> {
    let mut cur = Cursor::new(buf);
    let k = *cur.bytes(1)?.first().ok_or("truncated decimal exponent")?;
    let p = *POW10.get(usize::from(k)).ok_or("decimal exponent out of range")?;
    let mut prev = 0i64;
    for slot in out.iter_mut() {
        prev = prev.wrapping_add(cur.ivarint()?);
        if prev.unsigned_abs() > 1 << 53 {
            return Err("decimal mantissa exceeds 2^53");
        }
        slot.1 = (prev as f64 / p).to_bits();
    }
    if !cur.is_empty() {
        return Err("trailing bytes after decimal values");
    }
    Ok(())
}

/// Gorilla XOR control bits: `0` same value; `10` meaningful bits fit the
/// previous (leading, trailing) window; `11` + 5 bits leading + 6 bits
/// (length - 1) + the meaningful bits.
pub(crate) fn encode_xor(bits: &mut BitWriter, x: u64, window: &mut Option<(u32, u32)>) {
    if x == 0 {
        bits.write_bits(0, 1);
        return;
    }
    let (lead, trail) = (x.leading_zeros().min(31), x.trailing_zeros());
    match *window {
        Some((wl, wt)) if lead >= wl && trail >= wt => {
            // '10', then the meaningful bits inside the window.
            bits.write_bits(0b10, 2);
            bits.write_bits(x >> wt, 64 - wl - wt);
        }
        _ => {
            // '11', 5 bits of leading zeros, 6 bits of length - 1, the bits.
            let len = 64 - lead - trail;
            bits.write_bits((0b11 << 11) | (u64::from(lead) << 6) | u64::from(len - 1), 13);
            bits.write_bits(x >> trail, len);
            *window = Some((lead, trail));
        }
    }
}

/// `mode` of a chunk stream whose values are Gorilla XORs (any other mode
/// byte is the decimal exponent `k` of its mantissas).
pub(crate) const STREAM_GORILLA: u8 = u8::MAX;

/// Writes a decimal mantissa step of a chunk stream behind its prefix:
/// zigzag(step) as '0' (0) | '10'+6 | '110'+13 | '1110'+24 | '1111'+64 bits.
pub(crate) fn write_step(bits: &mut BitWriter, step: i64) {
    let zz = zigzag(step);
    match zz {
        0 => bits.write_bits(0, 1),
        _ if zz < 1 << 6 => bits.write_bits((0b10 << 6) | zz, 8),
        _ if zz < 1 << 13 => bits.write_bits((0b110 << 13) | zz, 16),
        _ if zz < 1 << 24 => bits.write_bits((0b1110 << 24) | zz, 28),
        _ => {
            bits.write_bits(0b1111, 4);
            bits.write_bits(zz, 64);
        }
    }
}

/// Reads what [`write_step`] wrote.
pub(crate) fn read_step(r: &mut BitReader<'_>) -> Result<i64, DecodeError> {
    if let Some(zz) = r.read_prefixed(&[0, 6, 13, 24]) {
        return Ok(unzigzag(zz));
    }
    read_step_bitwise(r)
}

/// [`read_step`] a bit at a time (the reference the windowed read is tested against).
pub(crate) fn read_step_bitwise(r: &mut BitReader<'_>) -> Result<i64, DecodeError> {
    let width = if !r.read_bit()? {
        return Ok(0);
    } else if !r.read_bit()? {
        6
    } else if !r.read_bit()? {
        13
    } else if !r.read_bit()? {
        24
    } else {
        64
    };
    Ok(unzigzag(r.read_bits(width)?))
}

/// Decodes the part of a chunk stream after its first timestamp (the
/// memtable's chunk from bit 64 on; a V6 stream block after its mode
/// byte): the first value word (64 bits), then per further sample a
/// timestamp delta-of-delta ([`write_dod`]) and the value (`mode`
/// [`STREAM_GORILLA`]: an XOR, [`encode_xor`]; else a mantissa step at
/// exponent `mode`, [`write_step`]). `n` samples, the first at `t0`.
/// The input must end within its last byte (zero padding only): a
/// chunk's buffer holds no spare bytes, and neither does a block.
pub(crate) fn decode_stream(bits: &[u8], mode: u8, n: usize, t0: i64) -> Result<Vec<(i64, u64)>, DecodeError> {
    let mut out = Vec::with_capacity(n.min(bits.len().saturating_mul(8).saturating_add(1)));
    if n == 0 {
        return if bits.is_empty() { Ok(out) } else { Err("trailing bytes after empty stream") };
    }
    let p = match mode {
        STREAM_GORILLA => None,
        k => Some(*POW10.get(usize::from(k)).ok_or("stream decimal exponent out of range")?),
    };
    let value = |word: u64| match p {
        None => Ok(word),
        Some(p) => {
            let m = word as i64;
            if m.unsigned_abs() > 1 << 53 {
                return Err("decimal mantissa exceeds 2^53");
            }
            Ok((m as f64 / p).to_bits())
        }
    };
    let mut r = BitReader::new(bits);
    let (mut ts, mut word) = (t0, r.read_bits(64)?);
    out.push((ts, value(word)?));
    let (mut delta, mut window) = (0i64, None);
    for _ in 1..n {
        delta = delta.wrapping_add(read_dod(&mut r)?);
        ts = ts.wrapping_add(delta);
        if p.is_none() {
            word ^= decode_xor(&mut r, &mut window)?;
        } else {
            word = (word as i64).wrapping_add(read_step(&mut r)?) as u64;
        }
        out.push((ts, value(word)?));
    }
    if r.pos.div_ceil(8) != bits.len() {
        return Err("trailing bytes after the stream");
    }
    Ok(out)
}

/// Decodes a V6 stream block (`mode` byte, then [`decode_stream`]'s bits)
/// of `count` samples starting at `t0` (both from the block's index entry).
pub(crate) fn decode_stream_block(buf: &[u8], count: usize, t0: i64) -> Result<Vec<(i64, u64)>, DecodeError> {
    let (&mode, bits) = buf.split_first().ok_or("truncated stream mode")?;
    if count == 0 {
        return Err("empty stream block");
    }
    if count - 1 > bits.len().saturating_mul(8) {
        return Err("count exceeds stream bits");
    }
    decode_stream(bits, mode, count, t0)
}

/// Decodes a sample block of `version`. A V4 block takes its sample count
/// and first timestamp from its index entry (`count`, `t0`); older blocks
/// carry both themselves (the arguments are then ignored; the caller checks
/// the result against the index). The whole input must be consumed (up to
/// the zero padding of the last byte).
pub(crate) fn decode_block(
    buf: &[u8],
    version: crate::FormatVersion,
    count: usize,
    t0: i64,
) -> Result<Vec<(i64, u64)>, DecodeError> {
    use crate::FormatVersion as V;
    let mut cur = Cursor::new(buf);
    // V2: each sample needs a timestamp byte. V3: after the first, only a bit
    // of timestamp and one of value (a regular, constant series packs ~4
    // samples a byte).
    let n = match version {
        V::V1 | V::V2 => cur.len(1)?,
        V::V3 => cur.len_bits()?,
        V::V4 | V::V5 | V::V6 => count,
    };
    let mut out = Vec::with_capacity(n.min(buf.len().saturating_mul(8).saturating_add(1)));
    if n == 0 {
        return if cur.is_empty() { Ok(out) } else { Err("trailing bytes after empty block") };
    }
    let t0 = if version >= V::V4 { t0 } else { cur.ivarint()? };
    // Timestamps first, with a value of 0 each; the values are then
    // decoded into place (one vector per block, no zip of two).
    out.push((t0, 0));
    let (mut prev_ts, mut prev_delta) = (t0, 0i64);
    if version >= V::V3 {
        let len = cur.len(1)?;
        let ts_bytes = cur.bytes(len)?;
        if n - 1 > ts_bytes.len().saturating_mul(8) {
            return Err("count exceeds timestamp bits");
        }
        let mut r = BitReader::new(ts_bytes);
        let mut left = n - 1;
        while left > 0 {
            // A run of regular intervals (a 0 bit each: the delta repeats),
            // taken a window at a time; then one other delta-of-delta.
            let regular = r.skip_zeros(left);
            for _ in 0..regular {
                prev_ts = prev_ts.wrapping_add(prev_delta);
                out.push((prev_ts, 0));
            }
            left -= regular;
            if regular == 0 {
                let delta = prev_delta.wrapping_add(read_dod(&mut r)?);
                prev_ts = prev_ts.wrapping_add(delta);
                prev_delta = delta;
                out.push((prev_ts, 0));
                left -= 1;
            }
        }
    } else {
        for _ in 1..n {
            let delta = prev_delta.wrapping_add(cur.ivarint()?);
            prev_ts = prev_ts.wrapping_add(delta);
            prev_delta = delta;
            out.push((prev_ts, 0));
        }
    }
    let tag = *cur.bytes(1)?.first().ok_or("truncated value encoding")?;
    match tag {
        VALUES_GORILLA => decode_gorilla(cur.remaining(), &mut out)?,
        VALUES_DECIMAL => decode_decimal(cur.remaining(), &mut out)?,
        VALUES_PACKED_DECIMAL if version >= V::V4 => decode_packed_decimal(cur.remaining(), &mut out)?,
        _ => return Err("unknown value encoding"),
    }
    Ok(out)
}

/// The values of Gorilla mode into `out[i].1` (`out.len()` samples).
fn decode_gorilla(rest: &[u8], out: &mut [(i64, u64)]) -> Result<(), DecodeError> {
    let mut bits = BitReader::new(rest);
    let mut value = bits.read_bits(64)?;
    let mut window = None;
    for (i, slot) in out.iter_mut().enumerate() {
        if i > 0 {
            value ^= decode_xor(&mut bits, &mut window)?;
        }
        slot.1 = value;
    }
    if bits.pos.div_ceil(8) != rest.len() {
        return Err("trailing bytes after value bits");
    }
    Ok(())
}

pub(crate) fn decode_xor(bits: &mut BitReader<'_>, window: &mut Option<(u32, u32)>) -> Result<u64, DecodeError> {
    if !bits.read_bit()? {
        return Ok(0);
    }
    if bits.read_bit()? {
        let lead = bits.read_bits(5)? as u32;
        let len = bits.read_bits(6)? as u32 + 1;
        if lead + len > 64 {
            return Err("xor window exceeds 64 bits");
        }
        *window = Some((lead, 64 - lead - len));
    }
    let (lead, trail) = window.ok_or("xor reuses a window before one was set")?;
    Ok(bits.read_bits(64 - lead - trail)? << trail)
}

#[cfg(test)]
mod tests;
