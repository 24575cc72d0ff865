use super::*;
use proptest::prelude::*;

fn arb_batch() -> impl Strategy<Value = WriteBatch> {
    let label = ("[a-z_]{1,8}", "[a-zA-Z0-9 ,=\"\\\\é-]{1,12}");
    let sample = (any::<i64>(), any::<f64>()).prop_map(|(ts, v)| Sample::new(ts, v));
    let series = (any::<u64>(), any::<u64>(), prop::collection::vec(label, 0..5), prop::collection::vec(sample, 0..20))
        .prop_map(|(id, dh, labels, samples)| BatchSeries {
            id: SeriesId(id),
            device_hash: dh,
            labels: Labels::from_pairs(labels),
            samples: samples.into(),
        });
    let origin = prop::option::of(("[!-~]{1,128}", any::<u64>()))
        .prop_map(|o| o.map(|(a, seq)| BatchOrigin::new(&a, seq).unwrap()));
    ("[a-z]{1,10}", prop::collection::vec(series, 0..6), origin).prop_map(|(t, series, origin)| WriteBatch {
        tenant: TenantId::new(t).unwrap(),
        series,
        origin,
    })
}

proptest! {
    #[test]
    fn round_trips(batch in arb_batch()) {
        let bytes = batch.to_bytes();
        let back = WriteBatch::decode(&bytes).unwrap();
        // Compare bitwise: NaN payloads (staleness markers) must survive.
        prop_assert_eq!(back.tenant, batch.tenant);
        prop_assert_eq!(back.origin, batch.origin);
        prop_assert_eq!(back.series.len(), batch.series.len());
        for (a, b) in back.series.iter().zip(&batch.series) {
            prop_assert_eq!(&a.labels, &b.labels);
            prop_assert_eq!(a.id, b.id);
            let bits = |s: &[Sample]| s.iter().map(|s| (s.ts, s.value.to_bits())).collect::<Vec<_>>();
            prop_assert_eq!(bits(&a.samples), bits(&b.samples));
        }
    }

    #[test]
    fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = WriteBatch::decode(&bytes);
    }

    #[test]
    fn every_truncation_is_an_error(batch in arb_batch(), cut in any::<prop::sample::Index>()) {
        let bytes = batch.to_bytes();
        let cut = cut.index(bytes.len());
        prop_assert!(WriteBatch::decode(&bytes[..cut]).is_err());
    }
}

#[test]
fn rejects_unknown_version() {
    assert_eq!(WriteBatch::decode(&[9]), Err(BatchDecodeError::UnsupportedVersion { found: 9 }));
}

/// A version-1 record (labels inline), as written before the string table.
#[test]
fn still_reads_version_1() {
    let v1: &[u8] = &[
        1, 1, b't', // version, tenant "t"
        1,    // one series
        7, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, // id 7, device hash 9
        1, 1, b'a', 1, b'b', // one label a="b"
        1, 4, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // one sample: ts 2, value 1.0
    ];
    let b = WriteBatch::decode(v1).unwrap();
    assert_eq!(b.tenant.as_str(), "t");
    assert_eq!(b.series[0].labels, Labels::from_pairs([("a", "b")]));
    assert_eq!(b.series[0].samples[..], [Sample::new(2, 1.0)]);
}

/// The batch the frozen version-2 and version-3 records below hold
/// (the v3 one with an origin).
fn frozen_batch(origin: Option<BatchOrigin>) -> WriteBatch {
    WriteBatch {
        tenant: TenantId::new("acme").unwrap(),
        series: vec![BatchSeries {
            id: SeriesId(7),
            device_hash: 9,
            labels: Labels::from_pairs([("__name__", "temp"), ("device", "d1")]),
            samples: vec![Sample::new(1000, 1.5), Sample::new(990, 2.0)].into(),
        }],
        origin,
    }
}

/// A version-2 record (string table, no origin), as written before origins.
const FROZEN_V2: &[u8] = &[
    2, 4, b'a', b'c', b'm', b'e', // version, tenant "acme"
    4, 8, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 4, b't', b'e', b'm', b'p', 6, b'd', b'e', b'v', b'i', b'c',
    b'e', 2, b'd', b'1', // string table: __name__, temp, device, d1
    1,    // one series
    7, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, // id 7, device hash 9
    2, 0, 1, 2, 3, // two labels: (0, 1), (2, 3)
    2, 0xd0, 0x0f, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // two samples: ts +1000, 1.5
    0x13, 0, 0, 0, 0, 0, 0, 0, 0x40, // ts −10, 2.0
];

/// The version-3 encoding of `frozen_batch` with origin ("gw-1", 300):
/// what this build writes, byte for byte.
const FROZEN_V3: &[u8] = &[
    3, 4, b'a', b'c', b'm', b'e', // version, tenant "acme"
    1, 4, b'g', b'w', b'-', b'1', 0xac, 0x02, // origin: agent "gw-1", seq 300
    4, 8, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 4, b't', b'e', b'm', b'p', 6, b'd', b'e', b'v', b'i', b'c',
    b'e', 2, b'd', b'1', // string table: __name__, temp, device, d1
    1,    // one series
    7, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, // id 7, device hash 9
    2, 0, 1, 2, 3, // two labels: (0, 1), (2, 3)
    2, 0xd0, 0x0f, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // two samples: ts +1000, 1.5
    0x13, 0, 0, 0, 0, 0, 0, 0, 0x40, // ts −10, 2.0
];

#[test]
fn still_reads_version_2() {
    assert_eq!(WriteBatch::decode(FROZEN_V2).unwrap(), frozen_batch(None));
}

#[test]
fn version_3_is_frozen() {
    let batch = frozen_batch(Some(BatchOrigin::new("gw-1", 300).unwrap()));
    assert_eq!(batch.to_bytes(), FROZEN_V3);
    assert_eq!(WriteBatch::decode(FROZEN_V3).unwrap(), batch);
    // Without an origin: one zero byte where the origin goes.
    let mut none = FROZEN_V3.to_vec();
    none.splice(6..14, [0]);
    assert_eq!(frozen_batch(None).to_bytes(), none);
    assert_eq!(WriteBatch::decode(&none).unwrap(), frozen_batch(None));
}

#[test]
fn rejects_invalid_origins() {
    let with = |origin: &[u8]| {
        let mut b = FROZEN_V3.to_vec();
        b.splice(6..14, origin.iter().copied());
        WriteBatch::decode(&b)
    };
    assert!(with(&[2]).is_err(), "unknown origin kind");
    assert!(with(&[1, 0, 1]).is_err(), "empty agent id");
    assert!(with(&[1, 2, b'a', b' ', 1]).is_err(), "space in the agent id");
    assert!(with(&[1, 2, b'a', 0x7f, 1]).is_err(), "control character");
    let mut long = vec![1, 129, 1];
    long.extend([b'a'; 129]);
    long.push(1);
    assert!(with(&long).is_err(), "129 bytes");
    let mut ok = vec![1, 128, 1];
    ok.extend([b'a'; 128]);
    ok.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    let b = with(&ok).unwrap().origin.unwrap();
    assert_eq!((b.agent_id().len(), b.seq()), (128, u64::MAX));
    assert_eq!(BatchOrigin::new("", 1), Err("agent id is empty"));
    assert!(BatchOrigin::new("gw-1", 0).is_ok());
}

#[test]
fn shared_strings_are_stored_once() {
    let labels = |f: &str| Labels::from_pairs([("__name__", f), ("device", "dev-0000042"), ("farm", "farm-0002")]);
    let series = |f: &str| BatchSeries { id: SeriesId(1), device_hash: 2, labels: labels(f), samples: vec![].into() };
    let batch =
        WriteBatch { tenant: TenantId::new("t").unwrap(), series: vec![series("a"), series("b")], origin: None };
    let bytes = batch.to_bytes();
    assert_eq!(bytes.windows(11).filter(|w| w == b"dev-0000042").count(), 1);
    assert_eq!(WriteBatch::decode(&bytes).unwrap(), batch);
}

proptest! {
    /// Series whose labels share string allocations in any pattern (the
    /// encoder reuses the previous series' string indexes by address):
    /// equal texts in separate allocations, one allocation in several
    /// positions, names reused as values.
    #[test]
    fn round_trips_series_sharing_strings(picks in prop::collection::vec(prop::collection::vec((0usize..6, 0usize..6), 1..4), 1..8)) {
        let pool: Vec<Str> = ["a", "b", "c", "a", "b", "zz"].into_iter().map(Str::from).collect();
        let series: Vec<BatchSeries> = picks
            .iter()
            .enumerate()
            .map(|(i, ls)| BatchSeries {
                id: SeriesId(i as u64),
                device_hash: 0,
                labels: Labels::new(ls.iter().map(|&(n, v)| Label { name: pool[n].clone(), value: pool[v].clone() }).collect()),
                samples: vec![Sample::new(i as i64, 1.0)].into(),
            })
            .collect();
        let batch = WriteBatch { tenant: TenantId::new("t").unwrap(), series, origin: None };
        prop_assert_eq!(WriteBatch::decode(&batch.to_bytes()).unwrap(), batch);
    }
}
