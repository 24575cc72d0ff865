use super::*;
use proptest::prelude::*;

use crate::FormatVersion;

/// Decodes a current-layout block of `samples` (count and t0 from the
/// samples, as the index entry hands them over).
fn decode_as(buf: &[u8], samples: &[(i64, u64)]) -> Result<Vec<(i64, u64)>, DecodeError> {
    decode_block(buf, FormatVersion::CURRENT, samples.len(), samples.first().map_or(0, |s| s.0))
}

fn round_trip(samples: &[(i64, u64)]) -> Vec<(i64, u64)> {
    let mut buf = Vec::new();
    encode_samples(samples, &mut buf);
    decode_as(&buf, samples).expect("decodes what it encoded")
}

#[test]
fn round_trips_empty_and_single_sample_blocks() {
    assert_eq!(round_trip(&[]), vec![]);
    assert_eq!(round_trip(&[(-5, f64::NAN.to_bits())]), vec![(-5, f64::NAN.to_bits())]);
}

#[test]
fn round_trips_extreme_timestamps_and_values() {
    let s = vec![(i64::MIN, 0), (-1, u64::MAX), (0, 1), (i64::MAX - 1, 1 << 63), (i64::MAX, 0x7ff0_0000_0000_0002)];
    assert_eq!(round_trip(&s), s);
}

#[test]
fn regular_series_compress_well() {
    let s: Vec<(i64, u64)> = (0..720).map(|i| (1_700_000_000_000 + i * 10_000, 42.0f64.to_bits())).collect();
    let mut buf = Vec::new();
    encode_samples(&s, &mut buf);
    // A bit per timestamp, a constant value packs to nothing.
    assert!(buf.len() < 720 / 8 + 20, "{} bytes", buf.len());
}

#[test]
fn rejects_truncated_blocks() {
    let s: Vec<(i64, u64)> = (0..50).map(|i| (i * 1000, (i as f64 * 1.5).to_bits())).collect();
    let mut buf = Vec::new();
    encode_samples(&s, &mut buf);
    for cut in 0..buf.len() {
        assert!(decode_as(&buf[..cut], &s).is_err(), "cut at {cut}");
    }
}

proptest! {
    #[test]
    fn round_trips_any_sorted_samples(mut ts in prop::collection::btree_set(any::<i64>(), 0..200), vals in prop::collection::vec(any::<u64>(), 200)) {
        let s: Vec<(i64, u64)> = std::mem::take(&mut ts).into_iter().zip(vals).collect();
        prop_assert_eq!(round_trip(&s), s);
    }

    #[test]
    fn round_trips_sensor_like_values(start in any::<i32>(), steps in prop::collection::vec((1i64..20_000, -50i32..50), 1..300)) {
        let mut t = i64::from(start);
        let mut v = 20.0f64;
        let s: Vec<(i64, u64)> = steps.into_iter().map(|(dt, dv)| { t += dt; v += f64::from(dv) / 100.0; (t, v.to_bits()) }).collect();
        prop_assert_eq!(round_trip(&s), s);
    }

    #[test]
    fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200), n in 0usize..2000, t0 in any::<i64>()) {
        for v in [FormatVersion::V2, FormatVersion::V3, FormatVersion::V4] {
            let _ = decode_block(&bytes, v, n, t0);
        }
        let _ = decode_stream_block(&bytes, n, t0);
    }

    /// What `write_step` writes, `read_step` reads, for any step.
    #[test]
    fn mantissa_steps_round_trip(steps in prop::collection::vec(any::<i64>(), 0..100)) {
        let mut w = BitWriter::default();
        for &s in &steps {
            write_step(&mut w, s);
        }
        let mut r = BitReader::new(&w.buf);
        for &s in &steps {
            prop_assert_eq!(read_step(&mut r).unwrap(), s);
        }
    }
}

fn value_encoding(samples: &[(i64, u64)]) -> u8 {
    let mut buf = Vec::new();
    encode_samples(samples, &mut buf);
    // timestamp bits (length-prefixed), then the tag.
    let mut c = Cursor::new(&buf);
    let len = c.len(1).unwrap();
    c.bytes(len).unwrap();
    c.bytes(1).unwrap()[0]
}

#[test]
fn fixed_resolution_values_use_the_decimal_encoding() {
    let temps = [(0, 20.37f64.to_bits()), (10, 20.41f64.to_bits())];
    assert_eq!(value_encoding(&temps), VALUES_DECIMAL);
    assert_eq!(round_trip(&temps), temps);
    let odd = [(0, 0.1f64.to_bits()), (10, (0.1f64 + 0.2).to_bits())];
    assert_eq!(value_encoding(&odd), VALUES_GORILLA, "0.30000000000000004 has no short decimal form");
    let nan = [(0, 1.0f64.to_bits()), (10, f64::NAN.to_bits())];
    assert_eq!(value_encoding(&nan), VALUES_GORILLA);
    let neg_zero = [(0, (-0.0f64).to_bits()), (10, 1.5f64.to_bits())];
    assert_eq!(round_trip(&neg_zero), neg_zero, "-0.0 keeps its sign bit");
}

#[test]
fn smooth_readings_use_packed_decimal() {
    // A pH walking by at most ±0.03: 3 bits a step instead of a varint byte.
    let mut m = 650i64;
    let ph: Vec<(i64, u64)> = (0..60)
        .map(|i| {
            m += [1, -2, 3, 0, -1, 2, -3][i % 7];
            (i as i64 * 30_000, (m as f64 / 100.0).to_bits())
        })
        .collect();
    assert_eq!(value_encoding(&ph), VALUES_PACKED_DECIMAL);
    assert_eq!(round_trip(&ph), ph);
    let mut buf = Vec::new();
    encode_samples(&ph, &mut buf);
    // ts: length byte + 25 bits for the first interval + 58 bits; values:
    // tag, k, m0 (2), width, 59 × 3 bits.
    assert_eq!(buf.len(), 1 + 11 + 1 + 1 + 2 + 1 + 23, "{buf:?}");
    let constant: Vec<(i64, u64)> = (0..60).map(|i| (i * 1000, 3.9f64.to_bits())).collect();
    assert_eq!(value_encoding(&constant), VALUES_PACKED_DECIMAL, "width 0: no bits at all");
    assert_eq!(round_trip(&constant), constant);
}

#[test]
fn packed_decimal_rejects_inconsistent_lengths() {
    let s: Vec<(i64, u64)> = (0..10).map(|i| (i, (f64::from(i as i32) / 10.0).to_bits())).collect();
    let mut buf = Vec::new();
    encode_samples(&s, &mut buf);
    assert_eq!(value_encoding(&s), VALUES_PACKED_DECIMAL);
    assert!(decode_as(&buf, &s).is_ok());
    let more = [s.clone(), (10..14).map(|i| (i, 0)).collect()].concat();
    assert!(decode_as(&buf, &more).is_err(), "a count larger than the packed bits");
    assert!(decode_block(&buf, FormatVersion::V3, s.len(), 0).is_err(), "tag 2 is not a V3 encoding");
}

proptest! {
    #[test]
    fn round_trips_decimal_values(start in any::<i64>(), ms in prop::collection::vec((-10_000_000i64..10_000_000, 0usize..10), 1..100)) {
        let s: Vec<(i64, u64)> = ms.iter().enumerate().map(|(i, &(m, k))| {
            (start.wrapping_add(i as i64), (m as f64 / POW10[k]).to_bits())
        }).collect();
        prop_assert_eq!(round_trip(&s), s);
    }
}

/// The bit-at-a-time writer the byte-wise one replaced: the format's reference.
fn reference_write_bits(buf: &mut Vec<u8>, used: &mut u32, value: u64, n: u32) {
    for i in (0..n).rev() {
        if *used == 0 {
            buf.push(0);
        }
        let bit = ((value >> i) & 1) as u8;
        if let Some(last) = buf.last_mut() {
            *last |= bit << (7 - *used);
        }
        *used = (*used + 1) % 8;
    }
}

proptest! {
    #[test]
    fn bit_writer_matches_the_bit_at_a_time_reference(writes in proptest::collection::vec((any::<u64>(), 1u32..=64), 0..64)) {
        let mut w = BitWriter::default();
        let (mut buf, mut used) = (Vec::new(), 0u32);
        for &(v, n) in &writes {
            w.write_bits(v, n);
            reference_write_bits(&mut buf, &mut used, v, n);
        }
        prop_assert_eq!(w.buf, buf);
    }
}

/// Values as V2/V3 blocks hold them: the smaller of decimal varints (when
/// they apply) and Gorilla.
fn legacy_values(samples: &[(i64, u64)], v0: u64, out: &mut Vec<u8>) {
    let mut bits = BitWriter::default();
    bits.write_bits(v0, 64);
    let (mut window, mut prev) = (None, v0);
    for &(_, v) in samples.iter().skip(1) {
        encode_xor(&mut bits, v ^ prev, &mut window);
        prev = v;
    }
    if let Some((k, ms)) = decimal_mantissas(samples)
        && decimal_varint_len(&ms) < bits.buf.len()
    {
        out.push(VALUES_DECIMAL);
        out.push(k);
        let mut prev = 0i64;
        for m in ms {
            put_ivarint(out, m.wrapping_sub(prev));
            prev = m;
        }
        return;
    }
    out.push(VALUES_GORILLA);
    out.extend_from_slice(&bits.buf);
}

/// The V2 block encoder (varint delta-of-deltas), kept to check V2 blocks
/// written by earlier builds still decode.
fn encode_samples_v2(samples: &[(i64, u64)], out: &mut Vec<u8>) {
    put_uvarint(out, samples.len() as u64);
    let Some(&(t0, v0)) = samples.first() else { return };
    put_ivarint(out, t0);
    let (mut prev_ts, mut prev_delta) = (t0, 0i64);
    for &(ts, _) in samples.iter().skip(1) {
        let delta = ts.wrapping_sub(prev_ts);
        put_ivarint(out, delta.wrapping_sub(prev_delta));
        (prev_ts, prev_delta) = (ts, delta);
    }
    legacy_values(samples, v0, out);
}

/// The V3 block encoder: count and t0 in the block, then the timestamp bit stream.
fn encode_samples_v3(samples: &[(i64, u64)], out: &mut Vec<u8>) {
    put_uvarint(out, samples.len() as u64);
    let Some(&(t0, v0)) = samples.first() else { return };
    put_ivarint(out, t0);
    let mut ts_bits = BitWriter::default();
    let (mut prev_ts, mut prev_delta) = (t0, 0i64);
    for &(ts, _) in samples.iter().skip(1) {
        let delta = ts.wrapping_sub(prev_ts);
        write_dod(&mut ts_bits, delta.wrapping_sub(prev_delta));
        (prev_ts, prev_delta) = (ts, delta);
    }
    put_uvarint(out, ts_bits.buf.len() as u64);
    out.extend_from_slice(&ts_bits.buf);
    legacy_values(samples, v0, out);
}

fn sorted_samples() -> impl Strategy<Value = Vec<(i64, u64)>> {
    proptest::collection::btree_map(any::<i64>(), any::<u64>(), 0..200).prop_map(|m| m.into_iter().collect())
}

fn decimal_samples() -> impl Strategy<Value = Vec<(i64, u64)>> {
    (any::<i32>(), proptest::collection::vec(-500i64..500, 1..200), 0usize..4).prop_map(|(start, steps, k)| {
        let mut m = 0i64;
        steps
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                m += d;
                (i64::from(start) + i as i64 * 1000, (m as f64 / POW10[k]).to_bits())
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn v2_blocks_still_decode(samples in prop_oneof![sorted_samples(), decimal_samples()]) {
        let mut buf = Vec::new();
        encode_samples_v2(&samples, &mut buf);
        prop_assert_eq!(decode_block(&buf, FormatVersion::V2, 0, 0).unwrap(), samples);
    }

    #[test]
    fn v3_blocks_still_decode(samples in prop_oneof![sorted_samples(), decimal_samples()]) {
        let mut buf = Vec::new();
        encode_samples_v3(&samples, &mut buf);
        prop_assert_eq!(decode_block(&buf, FormatVersion::V3, 0, 0).unwrap(), samples);
    }

    #[test]
    fn v4_blocks_round_trip(samples in prop_oneof![sorted_samples(), decimal_samples()]) {
        prop_assert_eq!(round_trip(&samples), samples);
    }

    /// The writer keeps the smallest value encoding: never larger than the
    /// V3 block minus its count and first timestamp.
    #[test]
    fn v4_blocks_are_never_larger_than_v3(samples in prop_oneof![sorted_samples(), decimal_samples()]) {
        let (mut v3, mut v4) = (Vec::new(), Vec::new());
        encode_samples_v3(&samples, &mut v3);
        encode_samples(&samples, &mut v4);
        prop_assert!(v4.len() <= v3.len(), "v4 {} > v3 {}", v4.len(), v3.len());
    }
}

#[test]
fn regular_timestamps_cost_a_bit_each() {
    let samples: Vec<(i64, u64)> = (0..120).map(|i| (1_700_000_000_000 + i * 30_000, 21.5f64.to_bits())).collect();
    let (mut v2, mut v3) = (Vec::new(), Vec::new());
    encode_samples_v2(&samples, &mut v2);
    encode_samples_v3(&samples, &mut v3);
    // V2: the first delta-of-delta (30 000) takes 3 varint bytes, the 118
    // regular ones a byte each: 121 bytes. V3: 24 + 118 bits = 18 bytes plus
    // a length byte.
    assert_eq!(v2.len() - v3.len(), 121 - 19, "v2 {} bytes, v3 {} bytes", v2.len(), v3.len());
    // Fewer bytes than samples: the count's sanity bound must allow that.
    assert!(v3.len() < samples.len());
    assert_eq!(decode_block(&v3, FormatVersion::V3, 0, 0).unwrap(), samples);
    let long: Vec<(i64, u64)> = (0..5000).map(|i| (i * 1000, 0f64.to_bits())).collect();
    let mut buf = Vec::new();
    encode_samples(&long, &mut buf);
    assert!(buf.len() * 3 < long.len(), "{} bytes", buf.len());
    assert_eq!(decode_as(&buf, &long).unwrap(), long);
}

proptest! {
    /// Highly compressible blocks (regular cadence, few distinct values) are
    /// smaller than their sample count; they must decode all the same.
    #[test]
    fn compressible_blocks_round_trip(
        start in any::<i32>(),
        step in 1i64..100_000,
        n in 1usize..3000,
        values in proptest::collection::vec(prop_oneof![Just(0.0f64), Just(1.0), Just(21.5)], 1..4),
    ) {
        let samples: Vec<(i64, u64)> =
            (0..n).map(|i| (i64::from(start) + i as i64 * step, values[i % values.len()].to_bits())).collect();
        let mut buf = Vec::new();
        encode_samples(&samples, &mut buf);
        prop_assert_eq!(decode_as(&buf, &samples).unwrap(), samples);
    }
}

/// A stream block names its own mode; bad modes, a missing mode byte, a
/// count the bits cannot hold and trailing bytes are errors.
#[test]
fn stream_blocks_reject_what_does_not_fit() {
    // mode 0 (integers), m_0 = 5, then 30 s later a step of +1.
    let mut w = BitWriter::default();
    w.write_bits(5, 64);
    write_dod(&mut w, 30_000);
    write_step(&mut w, 1);
    let mut block = vec![0u8];
    block.extend_from_slice(&w.buf);
    assert_eq!(decode_stream_block(&block, 2, 1000).unwrap(), vec![(1000, 5f64.to_bits()), (31_000, 6f64.to_bits())]);
    assert_eq!(decode_stream_block(&[], 1, 0), Err("truncated stream mode"));
    let mut bad = block.clone();
    bad[0] = 10;
    assert_eq!(decode_stream_block(&bad, 2, 1000), Err("stream decimal exponent out of range"));
    let mut long = block.clone();
    long.push(0);
    assert_eq!(decode_stream_block(&long, 2, 1000), Err("trailing bytes after the stream"));
    assert_eq!(decode_stream_block(&block, 1000, 0), Err("count exceeds stream bits"));
    assert_eq!(decode_stream_block(&block, 0, 0), Err("empty stream block"));
}

proptest! {
    /// The windowed `read_bits` reads what the byte-at-a-time read does, for
    /// any widths in any order (unaligned, across the buffer's end, past it:
    /// the same error at the same read), so every decoder built on it
    /// decodes the same samples.
    #[test]
    fn windowed_bit_reads_equal_bytewise_reads(
        buf in prop::collection::vec(any::<u8>(), 0..40),
        widths in prop::collection::vec(0u32..=64, 0..60),
    ) {
        let (mut fast, mut slow) = (BitReader::new(&buf), BitReader::new(&buf));
        for &n in &widths {
            let (a, b) = (fast.read_bits(n), slow.read_bits_bytewise(n));
            prop_assert_eq!(a, b, "width {} at bit {}", n, slow.pos);
            if a.is_err() {
                break;
            }
            prop_assert_eq!(fast.pos, slow.pos);
            // Interleaved single bits keep the two readers on odd offsets too.
            prop_assert_eq!(fast.read_bit(), slow.read_bit());
        }
    }
}

proptest! {
    /// The windowed delta-of-delta and mantissa-step reads (and the run of
    /// regular intervals taken at once) read what the bit-by-bit reads do,
    /// at any offset, across and past the buffer's end: same value, same
    /// position, the same error at the same read.
    #[test]
    fn windowed_prefix_codes_equal_bitwise_reads(
        buf in prop::collection::vec(any::<u8>(), 0..40),
        ops in prop::collection::vec(0u8..4, 0..60),
    ) {
        let (mut fast, mut slow) = (BitReader::new(&buf), BitReader::new(&buf));
        for &op in &ops {
            match op {
                0 => {
                    let (a, b) = (read_dod(&mut fast), read_dod_bitwise(&mut slow));
                    prop_assert_eq!(a, b, "dod at bit {}", slow.pos);
                    if a.is_err() { break; }
                }
                1 => {
                    let (a, b) = (read_step(&mut fast), read_step_bitwise(&mut slow));
                    prop_assert_eq!(a, b, "step at bit {}", slow.pos);
                    if a.is_err() { break; }
                }
                2 => {
                    // skip_zeros(max) consumes what `max` bitwise reads of 0 bits would.
                    let max = ops.len();
                    let z = fast.skip_zeros(max);
                    let (limit, mut zs) = (max.min(64 - slow.pos % 8), 0);
                    while zs < limit {
                        let before = slow.pos;
                        match slow.read_bit() {
                            Ok(false) => zs += 1,
                            _ => {
                                slow.pos = before;
                                break;
                            }
                        }
                    }
                    prop_assert_eq!(z, zs, "zero run at bit {}", fast.pos);
                }
                _ => {
                    prop_assert_eq!(fast.read_bit(), slow.read_bit());
                }
            }
            prop_assert_eq!(fast.pos, slow.pos);
        }
    }

    /// Timestamps with runs of regular intervals broken by jitter, gaps and
    /// every delta-of-delta tier decode exactly (the run fast path).
    #[test]
    fn irregular_cadences_round_trip(
        start in any::<i32>(),
        deltas in prop::collection::vec(prop_oneof![
            8 => Just(0i64),
            1 => -300i64..300,
            1 => -1_000_000i64..1_000_000,
            1 => Just(i64::from(i32::MAX) * 4),
        ], 1..400),
    ) {
        let (mut ts, mut step) = (i64::from(start), 30_000i64);
        let mut samples = vec![(ts, 1f64.to_bits())];
        for (i, d) in deltas.iter().enumerate() {
            step = (step + d).max(1);
            ts += step;
            samples.push((ts, (i as f64 / 4.0).to_bits()));
        }
        let mut buf = Vec::new();
        encode_samples(&samples, &mut buf);
        prop_assert_eq!(decode_as(&buf, &samples).unwrap(), samples);
    }
}
