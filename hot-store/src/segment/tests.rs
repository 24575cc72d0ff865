use super::*;
use std::collections::BTreeMap;

use crate::error::Error;

fn labels(pairs: &[(&str, &str)]) -> LabelArcs {
    pairs.iter().map(|(n, v)| (Str::from(*n), Str::from(*v))).collect()
}

fn scope() -> SegmentScope {
    SegmentScope { tenant: TenantId::new("a").unwrap(), bucket: 0, bucket_len: 7_200_000 }
}

fn records() -> Vec<SeriesRecord> {
    let samples = |n: i64, base: f64| (0..n).map(|i| (1000 + i * 10, (base + i as f64).to_bits())).collect();
    let rec = |id: u64, dh: u64, l: &[(&str, &str)], samples| SeriesRecord {
        id: SeriesId(id),
        device_hash: dh,
        labels: labels(l),
        samples,
    };
    vec![
        rec(1, 0, &[("__name__", "m"), ("x", "1")], samples(5, 0.5)),
        rec(1, 0, &[("__name__", "m"), ("x", "2")], samples(1, 7.0)),
        rec(0, 9, &[("__name__", "n")], samples(30, -3.0)),
    ]
}

fn write(dir: &Path) -> PathBuf {
    write_segment(dir, 1, &scope(), records().into_iter().map(Ok)).unwrap().path
}

#[test]
fn round_trips_index_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    assert!(!dir.path().join("00000000000000000001.seg.tmp").exists());
    let (file, index) = open_segment(&path).unwrap();
    assert_eq!(file.scope, scope());
    assert_eq!(index.len(), 3);
    for (s, rec) in index.iter().zip(records()) {
        assert_eq!((s.id, s.device_hash, &s.labels), (rec.id, rec.device_hash, &rec.labels));
        let meta = &s.meta;
        assert_eq!(
            (meta.min_ts, meta.max_ts, meta.count),
            (1000, rec.samples.last().unwrap().0, rec.samples.len() as u32)
        );
        assert_eq!(file.read_block(meta).unwrap(), rec.samples);
    }
}

#[test]
fn header_layout_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(write(dir.path())).unwrap();
    assert_eq!(&bytes[..8], b"SHSG\x06\0\0\0");
    assert_eq!(&bytes[bytes.len() - 4..], b"SHSG");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), crc32fast::hash(b"SHSG\x06\0\0\0"));
}

#[test]
fn corrupt_block_byte_is_reported_with_file_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let (_, index) = open_segment(&path).unwrap();
    let target = index[2].meta;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(target.offset + 3) as usize] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (file, _) = open_segment(&path).expect("the index is intact, so open succeeds");
    assert!(file.read_block(&index[0].meta).is_ok());
    match file.read_block(&target) {
        Err(ReadError::Corrupted { location, detail }) => {
            assert!(location.contains(&path.display().to_string()) && location.contains("block 2"), "{location}");
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[test]
fn corrupt_index_byte_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - TRAILER_LEN as usize - 5] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = open_segment(&path).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { what: "index", .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn every_flipped_byte_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let good = std::fs::read(&path).unwrap();
    for i in 0..good.len() {
        let mut bytes = good.clone();
        bytes[i] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let detected = match open_segment(&path) {
            Err(_) => true,
            Ok((file, index)) => index.iter().any(|s| file.read_block(&s.meta).is_err()),
        };
        assert!(detected, "flip at byte {i} went unnoticed");
    }
}

#[test]
fn truncated_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let good = std::fs::read(&path).unwrap();
    for cut in [0, 11, 40, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        let err = open_segment(&path).unwrap_err();
        assert_eq!(err.kind(), strata_schemas::ErrorKind::Corruption, "cut {cut}: {err}");
    }
}

#[test]
fn rejects_unsupported_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4] = 1;
    let crc = crc32fast::hash(&bytes[..8]);
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = open_segment(&path).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormatVersion { found: 1, .. }), "{err}");
}

#[test]
fn missing_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000009.seg");
    assert!(matches!(open_segment(&path), Err(Error::MissingSegment { path: p }) if p == path));
}

#[test]
fn empty_segment_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_segment(dir.path(), 3, &scope(), std::iter::empty()).unwrap();
    let (_, index) = open_segment(&w.path).unwrap();
    assert!(index.is_empty());
}

/// IoT-shaped records: `devices` × 10 metrics, ids and device hashes as
/// ingest computes them, sorted like a flush sorts them.
fn iot_records(devices: usize) -> Vec<SeriesRecord> {
    let tenant = scope().tenant;
    let mut out: Vec<SeriesRecord> = (0..devices)
        .flat_map(|d| {
            let tenant = tenant.clone();
            (0..10).map(move |m| {
                let dev = format!("dev-{d:05}");
                let l = labels(&[
                    ("__name__", &format!("sensors_f{m}")),
                    ("device", &dev),
                    ("farm", &format!("farm-{}", d / 20)),
                    ("region", ["eu", "us", "br"][d % 3]),
                ]);
                let ls = strata_schemas::Labels::from_pairs(l.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                SeriesRecord {
                    id: strata_schemas::series_id(&tenant, &ls),
                    device_hash: strata_schemas::device_hash_of(&tenant, &dev),
                    labels: l,
                    samples: (0..60)
                        .map(|i| (1000 + i * 30_000, ((d * 7 + i as usize) as f64 / 10.0).to_bits()))
                        .collect(),
                }
            })
        })
        .collect();
    out.sort_by_key(|r| (r.device_hash, r.id));
    out
}

#[test]
fn v4_entries_derive_ids_and_reuse_the_previous_entrys_labels() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_segment(dir.path(), 1, &scope(), iot_records(200).into_iter().map(Ok)).unwrap();
    let (file, index) = open_segment(&w.path).unwrap();
    assert_eq!(file.version, FormatVersion::CURRENT);
    assert_eq!(index.len(), 2000);
    for (s, rec) in index.iter().zip(iot_records(200)) {
        assert_eq!((s.id, s.device_hash, &s.labels), (rec.id, rec.device_hash, &rec.labels));
        assert_eq!(file.read_block(&s.meta).unwrap(), rec.samples);
    }
    // Series entries: a flags byte, the device hash once per device, labels
    // as changes to the previous entry, short varints. The whole index
    // (symbols, entries, postings) is ~21 bytes a series; the V3 writer's
    // ~45 bytes of entries alone (16 bytes of ids, every label pair).
    let bytes = std::fs::read(&w.path).unwrap();
    let index_len = u64::from_le_bytes(bytes[bytes.len() - 20..bytes.len() - 12].try_into().unwrap());
    assert!(index_len < 2000 * 24, "index {index_len} bytes for 2000 series");
    let v3 = dir.path().join("v3.seg");
    write_v3(&v3, &scope(), &iot_records(200));
    let v3_bytes = std::fs::read(&v3).unwrap();
    let v3_index = u64::from_le_bytes(v3_bytes[v3_bytes.len() - 20..v3_bytes.len() - 12].try_into().unwrap());
    assert!(index_len * 2 < v3_index, "v4 index {index_len} bytes, v3 {v3_index}");
}

/// The V3 segment writer (series entries with both ids and every label, min
/// ts absolute; blocks with their count and first timestamp), kept to check
/// segments written by earlier builds still open and read.
fn write_v3(path: &Path, scope: &SegmentScope, records: &[SeriesRecord]) {
    let mut file = b"SHSG\x03\0\0\0".to_vec();
    file.extend_from_slice(&crc32fast::hash(&file).to_le_bytes());
    let mut symbols: Vec<&Str> = records.iter().flat_map(|r| r.labels.iter().flat_map(|(n, v)| [n, v])).collect();
    symbols.sort();
    symbols.dedup();
    let sym = |s: &Str| symbols.binary_search(&s).unwrap() as u64;
    let mut entries = Vec::new();
    let mut postings: BTreeMap<(u64, u64), Vec<u32>> = BTreeMap::new();
    for (ordinal, r) in records.iter().enumerate() {
        let mut block = Vec::new();
        put_uvarint(&mut block, r.samples.len() as u64);
        put_ivarint(&mut block, r.samples[0].0);
        crate::codec::encode_samples(&r.samples, &mut block);
        block.extend_from_slice(&crc32fast::hash(&block).to_le_bytes());
        entries.extend_from_slice(&r.id.0.to_le_bytes());
        entries.extend_from_slice(&r.device_hash.to_le_bytes());
        put_uvarint(&mut entries, r.labels.len() as u64);
        for (n, v) in &r.labels {
            put_uvarint(&mut entries, sym(n));
            put_uvarint(&mut entries, sym(v));
            postings.entry((sym(n), sym(v))).or_default().push(ordinal as u32);
        }
        put_ivarint(&mut entries, r.samples[0].0);
        put_uvarint(&mut entries, (r.samples.last().unwrap().0 - r.samples[0].0) as u64);
        put_uvarint(&mut entries, r.samples.len() as u64);
        put_uvarint(&mut entries, block.len() as u64);
        file.extend_from_slice(&block);
    }
    let index_offset = file.len() as u64;
    let mut index = Vec::new();
    put_str(&mut index, scope.tenant.as_str());
    put_ivarint(&mut index, scope.bucket);
    put_uvarint(&mut index, scope.bucket_len as u64);
    put_uvarint(&mut index, symbols.len() as u64);
    for s in &symbols {
        put_str(&mut index, s);
    }
    put_uvarint(&mut index, records.len() as u64);
    index.extend_from_slice(&entries);
    put_uvarint(&mut index, postings.len() as u64);
    for ((n, v), ords) in postings {
        let bytes = Bitmap::of(&ords).serialize::<Portable>();
        put_uvarint(&mut index, n);
        put_uvarint(&mut index, v);
        put_uvarint(&mut index, bytes.len() as u64);
        index.extend_from_slice(&bytes);
    }
    file.extend_from_slice(&index);
    file.extend_from_slice(&trailer_bytes(index_offset, index.len() as u64, crc32fast::hash(&index)));
    std::fs::write(path, file).unwrap();
}

#[test]
fn v3_segments_still_open_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000001.seg");
    // V3 blocks never hold packed decimals: values without a short decimal form.
    let records: Vec<SeriesRecord> = iot_records(3)
        .into_iter()
        .map(|mut r| {
            r.samples.iter_mut().for_each(|s| s.1 = (f64::from_bits(s.1) + 2.0).sqrt().to_bits());
            r
        })
        .collect();
    write_v3(&path, &scope(), &records);
    let (file, index) = open_segment(&path).unwrap();
    assert_eq!(file.version, FormatVersion::V3);
    assert_eq!(index.len(), records.len());
    for (s, rec) in index.iter().zip(&records) {
        assert_eq!((s.id, s.device_hash, &s.labels), (rec.id, rec.device_hash, &rec.labels));
        assert_eq!(file.read_block(&s.meta).unwrap(), rec.samples);
    }
}

/// A memtable of three series: decimal readings in order, odd doubles with
/// a staleness marker in order (Gorilla), and one with a late sample aside.
fn stream_memtable() -> crate::memtable::Memtable {
    use strata_schemas::Sample;
    let stale = f64::from_bits(strata_schemas::labels::STALE_NAN_BITS);
    let mut m = crate::memtable::Memtable::default();
    let dec: Vec<Sample> =
        (0..50).map(|i| Sample::new(1000 + i * 30_000 + i % 3, 20.0 + (i % 7) as f64 * 0.25)).collect();
    m.insert(0, &dec, |_| 0);
    let odd =
        [Sample::new(1000, 0.1 + 0.2), Sample::new(2000, -0.0), Sample::new(3000, stale), Sample::new(4000, 1e308)];
    m.insert(1, &odd, |_| 0);
    // 3000 lies two samples back: aside (one back would be spliced in).
    m.insert(2, &[Sample::new(5000, 1.0), Sample::new(9000, 2.0), Sample::new(3000, 3.0)], |_| 0);
    m
}

/// Records as a flush makes them: stream blocks where the chunk allows.
fn stream_records(m: &crate::memtable::Memtable) -> Vec<BlockRecord<'_>> {
    (0..3u32)
        .map(|r| {
            let chunk = &m.get(r)[0].1;
            let data = match chunk.stream_block() {
                Some(v) => BlockData::Stream(v),
                None => BlockData::Samples(chunk.samples().unwrap()),
            };
            let labels = RecordLabels::Arcs(labels(&[("i", r.to_string().as_str())]));
            BlockRecord { id: SeriesId(u64::from(r)), device_hash: 0, labels, data }
        })
        .collect()
}

fn write_streams(dir: &Path, m: &crate::memtable::Memtable) -> PathBuf {
    write_segment_blocks(dir, 1, &scope(), stream_records(m).into_iter().map(Ok)).unwrap().path
}

#[test]
fn stream_blocks_round_trip_beside_v4_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let m = stream_memtable();
    let path = write_streams(dir.path(), &m);
    let (file, index) = open_segment(&path).unwrap();
    assert_eq!(index.iter().map(|s| s.meta.stream).collect::<Vec<_>>(), [true, true, false]);
    for (r, s) in index.iter().enumerate() {
        let want = m.get(r as u32)[0].1.samples().unwrap();
        assert_eq!(file.read_block(&s.meta).unwrap(), want, "series {r}");
        assert_eq!(
            (s.meta.min_ts, s.meta.max_ts, s.meta.count as usize),
            (want[0].0, want[want.len() - 1].0, want.len())
        );
    }
}

#[test]
fn every_flipped_byte_of_a_stream_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_streams(dir.path(), &stream_memtable());
    let good = std::fs::read(&path).unwrap();
    for i in 0..good.len() {
        let mut bytes = good.clone();
        bytes[i] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let detected = match open_segment(&path) {
            Err(_) => true,
            Ok((file, index)) => index.iter().any(|s| file.read_block(&s.meta).is_err()),
        };
        assert!(detected, "flip at byte {i} went unnoticed");
    }
}

/// The stream flag exists from V6 on: a V5 header over the same index is
/// a corrupt segment, not a misread one.
#[test]
fn a_stream_block_in_a_version_5_segment_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_streams(dir.path(), &stream_memtable());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4] = 5;
    let crc = crc32fast::hash(&bytes[..8]);
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = open_segment(&path).unwrap_err();
    assert!(err.to_string().contains("unknown series entry flags"), "{err}");
}

#[test]
fn a_large_segment_is_synced_as_it_is_written_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let records = iot_records(8_000);
    let (mut seen, mut end) = (Vec::new(), 0);
    let written = write_segment_with(dir.path(), 7, &scope(), records.len(), |w| {
        for r in &records {
            let data = BlockData::Samples(r.samples.clone());
            let labels = RecordLabels::Arcs(r.labels.clone());
            w.push(BlockRecord { id: r.id, device_hash: r.device_hash, labels, data })?;
            // The file holds at least what was synced, and never more than
            // SYNC_EVERY bytes wait unsynced.
            assert!(w.offset - w.synced < SYNC_EVERY, "{} bytes unsynced", w.offset - w.synced);
            assert!(w.w.get_ref().metadata().unwrap().len() >= w.synced);
            seen.push(w.synced);
        }
        end = w.offset;
        Ok(())
    })
    .unwrap();
    seen.dedup();
    assert!(end > 2 * SYNC_EVERY, "the test needs blocks of a few MiB, wrote {end} bytes");
    assert!(seen.len() as u64 > end / SYNC_EVERY, "synced at {seen:?} of {end} bytes of blocks");
    let (file, index) = open_segment(&written.path).unwrap();
    assert_eq!(index.len(), records.len());
    for (s, rec) in index.iter().zip(&records) {
        assert_eq!((s.id, &s.labels), (rec.id, &rec.labels));
        assert_eq!(file.read_block(&s.meta).unwrap(), rec.samples);
    }
}
