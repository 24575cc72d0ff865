//! Frozen `WriteBatch` records (the ingest log payload): one committed file
//! per shipped version (`tests/fixtures/batch/v<N>/`) and corrupt variants
//! of the current one, decoded with `WriteBatch::decode`.
//! `tests/fixtures/README.md` says how they were made; old versions are
//! never regenerated.

use std::path::Path;

use strata_schemas::batch::{BATCH_VERSION, BatchDecodeError};
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{BatchOrigin, BatchSeries, Labels, Sample, SeriesId, TenantId, WriteBatch};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/batch");

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(rel)).unwrap()
}

/// A batch with its values as bit patterns (NaN compares equal to itself).
type Bits = (String, Option<BatchOrigin>, Vec<(SeriesId, u64, String, Vec<(i64, u64)>)>);

fn bits(b: &WriteBatch) -> Bits {
    let series = b
        .series
        .iter()
        .map(|s| {
            (s.id, s.device_hash, s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect())
        })
        .collect();
    (b.tenant.as_str().to_owned(), b.origin.clone(), series)
}

fn series(id: u64, device_hash: u64, labels: &[(&str, &str)], samples: &[(i64, u64)]) -> BatchSeries {
    BatchSeries {
        id: SeriesId(id),
        device_hash,
        labels: Labels::from_pairs(labels.iter().copied()),
        samples: samples.iter().map(|&(ts, v)| Sample::new(ts, f64::from_bits(v))).collect(),
    }
}

/// What `batch/v3/record` holds; `record-no-origin` is the same without
/// the origin. Its last series ends in one sample at ts 1 (the corrupt
/// variants' offsets count from the end).
fn v3_batch(origin: bool) -> WriteBatch {
    let t = 1_700_000_000_000;
    WriteBatch {
        tenant: TenantId::new("acme").unwrap(),
        series: vec![
            series(
                7,
                9,
                &[("__name__", "temp"), ("device", "d1"), ("site", "s1")],
                &[(t, 21.5f64.to_bits()), (t - 10, 2.0f64.to_bits()), (t + 30_000, (-0.0f64).to_bits())],
            ),
            series(8, 9, &[("__name__", "hum"), ("device", "d1"), ("site", "s1")], &[(t, STALE_NAN_BITS)]),
            series(u64::MAX, 0, &[("__name__", "x")], &[(1, f64::MIN_POSITIVE.to_bits())]),
        ],
        origin: origin.then(|| BatchOrigin::new("farm-7-gw-1.0123456789abcdef", 300).unwrap()),
    }
}

#[test]
fn batch_v1_fixture_decodes_exactly() {
    let b = WriteBatch::decode(&read("v1/record")).unwrap();
    let want = WriteBatch {
        tenant: TenantId::new("t").unwrap(),
        series: vec![series(7, 9, &[("a", "b")], &[(2, 1.0f64.to_bits())])],
        origin: None,
    };
    assert_eq!(bits(&b), bits(&want));
}

#[test]
fn batch_v2_fixture_decodes_exactly() {
    let b = WriteBatch::decode(&read("v2/record")).unwrap();
    let want = WriteBatch {
        tenant: TenantId::new("acme").unwrap(),
        series: vec![series(
            7,
            9,
            &[("__name__", "temp"), ("device", "d1")],
            &[(1000, 1.5f64.to_bits()), (990, 2.0f64.to_bits())],
        )],
        origin: None,
    };
    assert_eq!(bits(&b), bits(&want));
}

/// The current version: decodes to the batch, and this build still writes
/// exactly these bytes.
#[test]
fn batch_v3_fixtures_decode_exactly_and_are_what_this_build_writes() {
    for (name, origin) in [("v3/record", true), ("v3/record-no-origin", false)] {
        let bytes = read(name);
        assert_eq!(bytes[0], 3);
        let b = WriteBatch::decode(&bytes).unwrap();
        assert_eq!(bits(&b), bits(&v3_batch(origin)), "{name}");
        if BATCH_VERSION == 3 {
            assert_eq!(v3_batch(origin).to_bytes(), bytes, "{name}: the v3 encoding changed: that is version 4");
        }
    }
}

fn decode_variant(name: &str) -> Result<WriteBatch, BatchDecodeError> {
    WriteBatch::decode(&read(&format!("v3/corrupt/{name}")))
}

/// Damaged records are refused with the specific error, never decoded to
/// something else — except where a changed byte still makes a valid
/// record: a batch has no checksum of its own (the ingest log frame's CRC
/// covers it: `ingest/tests/it/fixtures.rs`).
#[test]
fn corrupt_batches_are_refused_with_the_specific_error() {
    let m = |s| Err(BatchDecodeError::Malformed(s));
    assert_eq!(decode_variant("truncated"), m("count exceeds remaining bytes"), "checked before reading");
    assert_eq!(decode_variant("trailing-byte"), m("trailing bytes"));
    assert_eq!(decode_variant("string-index-out-of-range"), m("string index out of range"));
    assert_eq!(decode_variant("origin-kind-3"), m("unknown origin kind"));
    assert_eq!(decode_variant("version-0"), Err(BatchDecodeError::UnsupportedVersion { found: 0 }));
    assert_eq!(decode_variant("version-4"), Err(BatchDecodeError::UnsupportedVersion { found: 4 }));
    // A flipped bit in the middle of a value is a valid record holding another value.
    let flipped = decode_variant("flipped-value-bit").unwrap();
    let mut want = v3_batch(true);
    want.series[2].samples[0].value = f64::from_bits(f64::MIN_POSITIVE.to_bits() ^ (1 << 27));
    assert_eq!(bits(&flipped), bits(&want));
}

/// Writes the current version's fixtures (`batch/v<BATCH_VERSION>/`) and
/// their corrupt variants. Run only when a new version is added, never to
/// refresh an old one:
/// `cargo test -p strata-schemas --test it regenerate_current_fixtures -- --ignored`.
#[test]
#[ignore = "writes tests/fixtures/batch/v<current>; run by hand after a format change"]
fn regenerate_current_fixtures() {
    let out = Path::new(FIXTURES).join(format!("v{BATCH_VERSION}"));
    std::fs::create_dir_all(out.join("corrupt")).unwrap();
    let good = v3_batch(true).to_bytes();
    std::fs::write(out.join("record"), &good).unwrap();
    std::fs::write(out.join("record-no-origin"), v3_batch(false).to_bytes()).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join("corrupt").join(name), bytes).unwrap();
    let n = good.len();
    write("truncated", &good[..n - 3]);
    write("trailing-byte", &[&good[..], &[0]].concat());
    // From the end: value (8 bytes), ts delta (1), sample count (1), then
    // the last series' one label: name index, value index.
    let mut b = good.clone();
    assert_eq!(b[n - 10], 1, "one sample");
    b[n - 11] = 0x7f;
    write("string-index-out-of-range", &b);
    let mut b = good.clone();
    assert_eq!(b[6], 1, "origin kind");
    b[6] = 3;
    write("origin-kind-3", &b);
    for v in [0, BATCH_VERSION + 1] {
        let mut b = good.clone();
        b[0] = v;
        write(&format!("version-{v}"), &b);
    }
    let mut b = good.clone();
    b[n - 8 + 3] ^= 0x08;
    write("flipped-value-bit", &b);
}
