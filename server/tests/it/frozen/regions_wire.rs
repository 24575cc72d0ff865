//! The inter-region wire (`server/src/regions.rs`, `regions/wire.rs`):
//!
//! * `regions-wire/v1/select-answer.srs`: a raw-series answer of
//!   `POST /internal/v1/region/select` in the binary encoding (`SRS1`,
//!   version byte 1), decoded bit for bit and equal to what this build
//!   encodes; `corrupt/*.srs` each fail with the error naming the fault.
//! * `regions-json/v<N>/`: the JSON bodies of the select, partials and
//!   count endpoints (requests and answers). v1 is the shape nodes sent
//!   from 2026-12-02 (no `partial_response`: an older asker is read as
//!   `true`), v2 the current one (what this build writes, byte for byte);
//!   `v2/corrupt/` bodies are refused by serde with the field named.

use strata::cluster::WireMatcher;
use strata::regions::wire;
use strata::regions::{CountAnswer, PartialsAnswer, RegionCount, RegionPartials, RegionSelect, WirePartial};
use strata_query::federation::Grid;
use strata_schemas::{Labels, Sample, SeriesData};

use super::{may_write, read, store};

const T0: i64 = 1_700_006_400_000;
const STALE: u64 = 0x7ff0_0000_0000_0002;

/// The answer's series: staleness marker, negative zero, a plain NaN, the
/// largest finite value, a timestamp before the first, repeated label
/// strings (sent once), a non-ASCII value.
fn answer_series() -> Vec<SeriesData> {
    let s = |device: &str, samples: &[(i64, u64)]| SeriesData {
        labels: Labels::from_pairs([("__name__", "temp"), ("device", device), ("farm", "f1"), ("site", "nord-ø")]),
        samples: samples.iter().map(|&(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect(),
    };
    vec![
        s(
            "d1",
            &[
                (T0, 21.5f64.to_bits()),
                (T0 + 15_000, STALE),
                (T0 + 30_000, (-0.0f64).to_bits()),
                (T0 + 45_000, 22.25f64.to_bits()),
            ],
        ),
        s("d2", &[(T0 - 5, f64::MAX.to_bits()), (T0 + 60_000, f64::NAN.to_bits())]),
    ]
}

fn answer_warnings() -> Vec<String> {
    vec!["cluster peer http://10.0.0.2:9090 of eu-central did not answer".to_owned()]
}

fn bits(series: &[SeriesData]) -> Vec<(String, Vec<(i64, u64)>)> {
    series
        .iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect()
}

#[test]
fn regions_wire_v1_answer_decodes_exactly_and_is_what_this_build_writes() {
    let bytes = read("regions-wire/v1/select-answer.srs");
    assert_eq!(&bytes[..5], b"SRS1\x01");
    let (series, warnings) = wire::decode(&bytes).unwrap();
    assert_eq!(bits(&series), bits(&answer_series()));
    assert_eq!(warnings, answer_warnings());
    assert_eq!(wire::encode(&answer_series(), &answer_warnings()), bytes, "this build's encoding moved");
}

#[test]
fn regions_wire_v1_corrupt_answers_are_errors_naming_the_fault() {
    for (file, needle) in [
        ("bad-magic.srs", "does not start with SRS1"),
        ("version-2.srs", "has version 2, this node reads 1"),
        ("flipped-value.srs", "checksum mismatch"),
        ("truncated.srs", "checksum mismatch"),
        ("too-short.srs", "too short"),
        ("bad-reference.srs", "past the 0 strings sent"),
        ("left-over.srs", "left over after the warnings"),
    ] {
        let bytes = read(&format!("regions-wire/v1/corrupt/{file}"));
        let err = wire::decode(&bytes).expect_err(file);
        assert!(err.contains(needle), "{file}: {err}");
    }
}

/// A body sealed with its CRC-32, as `encode` ends one.
fn seal(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    b.extend_from_slice(&crc32(body).to_le_bytes());
    b
}

/// CRC-32 (IEEE), bitwise: `crc32fast` is not a dependency of the server's tests.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Writes `regions-wire/v1/` (the current binary version) with this build:
/// `STRATA_WRITE_FIXTURES=1 cargo test -p strata --test it
/// frozen::regions_wire::regenerate_regions_wire_v1_fixtures -- --ignored`.
#[test]
#[ignore = "writes tests/fixtures/regions-wire/v1; run by hand only (README)"]
fn regenerate_regions_wire_v1_fixtures() {
    if !may_write("regions-wire/v1") {
        return;
    }
    let bytes = wire::encode(&answer_series(), &answer_warnings());
    assert_eq!(seal(&bytes[..bytes.len() - 4]), bytes, "the test's CRC is the encoder's");
    store("regions-wire/v1/select-answer.srs", &bytes);
    let body = &bytes[..bytes.len() - 4];
    let mut magic = bytes.clone();
    magic[3] = b'2';
    store("regions-wire/v1/corrupt/bad-magic.srs", &magic);
    let mut version = body.to_vec();
    version[4] = 2;
    store("regions-wire/v1/corrupt/version-2.srs", &seal(&version));
    let mut flipped = bytes.clone();
    let at = bytes.len() - 4 - 1 - answer_warnings()[0].len() - 1 - 4;
    flipped[at] ^= 0x01;
    store("regions-wire/v1/corrupt/flipped-value.srs", &flipped);
    store("regions-wire/v1/corrupt/truncated.srs", &bytes[..bytes.len() - 7]);
    store("regions-wire/v1/corrupt/too-short.srs", b"SRS1\x01\x00");
    // One series, one label whose name refers to string 1 of none sent.
    store("regions-wire/v1/corrupt/bad-reference.srs", &seal(&[b"SRS1\x01".as_slice(), &[1, 1, 1, 0, 0]].concat()));
    let mut extra = body.to_vec();
    extra.push(0);
    store("regions-wire/v1/corrupt/left-over.srs", &seal(&extra));
}

fn matchers() -> Vec<WireMatcher> {
    vec![
        WireMatcher { name: "__name__".into(), op: "=".into(), value: "temp".into() },
        WireMatcher { name: "farm".into(), op: "=~".into(), value: "f[12]".into() },
    ]
}

const QUERY: &str = "sha256:9f86d081884c7d65";

fn grid() -> Grid {
    Grid { start: T0, end: T0 + 120_000, step: 60_000, query_start: T0, query_end: T0 + 120_000 }
}

/// The current bodies: `(file, JSON as this build writes it)`.
fn current_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let select = RegionSelect {
        tenant: "acme".into(),
        query: QUERY.into(),
        matchers: matchers(),
        start: T0,
        end: T0 + 3_600_000,
        series_only: false,
        partial_response: false,
    };
    let partials = RegionPartials {
        tenant: "acme".into(),
        query: QUERY.into(),
        exprs: vec!["sum by (farm) (temp)".into(), "count by (farm) (temp)".into()],
        grid: grid(),
        partial_response: true,
    };
    let count = RegionCount {
        tenant: "acme".into(),
        query: QUERY.into(),
        matchers: matchers(),
        start: T0,
        end: T0 + 3_600_000,
        partial_response: true,
    };
    let partials_answer = PartialsAnswer {
        results: vec![
            vec![WirePartial {
                labels: vec![("farm".into(), "f1".into())],
                points: vec![Some(43.75f64.to_bits()), None, Some(f64::NAN.to_bits())],
            }],
            vec![],
        ],
        warnings: answer_warnings(),
    };
    let count_answer = CountAnswer { count: 2, warnings: vec![] };
    vec![
        ("select-request.json", serde_json::to_vec(&select).unwrap()),
        ("partials-request.json", serde_json::to_vec(&partials).unwrap()),
        ("count-request.json", serde_json::to_vec(&count).unwrap()),
        ("partials-answer.json", serde_json::to_vec(&partials_answer).unwrap()),
        ("count-answer.json", serde_json::to_vec(&count_answer).unwrap()),
    ]
}

#[test]
fn regions_json_v2_bodies_parse_exactly_and_are_what_this_build_writes() {
    for (file, written) in current_bodies() {
        let bytes = read(&format!("regions-json/v2/{file}"));
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&written),
            "{file}: this build's JSON moved"
        );
    }
    let select: RegionSelect = serde_json::from_slice(&read("regions-json/v2/select-request.json")).unwrap();
    assert_eq!((select.tenant.as_str(), select.query.as_str()), ("acme", QUERY));
    assert_eq!(
        (select.start, select.end, select.series_only, select.partial_response),
        (T0, T0 + 3_600_000, false, false)
    );
    let m: Vec<(String, String, String)> = select.matchers.into_iter().map(|m| (m.name, m.op, m.value)).collect();
    assert_eq!(m, vec![("__name__".into(), "=".into(), "temp".into()), ("farm".into(), "=~".into(), "f[12]".into())]);
    let partials: RegionPartials = serde_json::from_slice(&read("regions-json/v2/partials-request.json")).unwrap();
    assert_eq!((partials.grid, partials.exprs.len(), partials.partial_response), (grid(), 2, true));
    let count: RegionCount = serde_json::from_slice(&read("regions-json/v2/count-request.json")).unwrap();
    assert_eq!((count.matchers.len(), count.start, count.partial_response), (2, T0, true));
    let answer: PartialsAnswer = serde_json::from_slice(&read("regions-json/v2/partials-answer.json")).unwrap();
    let points = &answer.results[0][0].points;
    assert_eq!(points[0].map(f64::from_bits), Some(43.75));
    assert!(points[1].is_none() && f64::from_bits(points[2].unwrap()).is_nan());
    assert_eq!((answer.results[1].len(), answer.warnings), (0, answer_warnings()));
    let count: CountAnswer = serde_json::from_slice(&read("regions-json/v2/count-answer.json")).unwrap();
    assert_eq!((count.count, count.warnings.len()), (2, 0));
}

/// Requests of a node from before `partial_response` (f74242c, 2026-12-03)
/// are read with `partial_response = true`, the behaviour it expected.
#[test]
fn regions_json_v1_requests_without_partial_response_read_as_partial() {
    let select: RegionSelect = serde_json::from_slice(&read("regions-json/v1/select-request.json")).unwrap();
    assert_eq!((select.tenant.as_str(), select.matchers.len(), select.partial_response), ("acme", 2, true));
    let partials: RegionPartials = serde_json::from_slice(&read("regions-json/v1/partials-request.json")).unwrap();
    assert_eq!((partials.grid, partials.partial_response), (grid(), true));
    let count: RegionCount = serde_json::from_slice(&read("regions-json/v1/count-request.json")).unwrap();
    assert_eq!((count.end, count.partial_response), (T0 + 3_600_000, true));
    // Answers did not change between v1 and v2.
    for file in ["partials-answer.json", "count-answer.json"] {
        assert_eq!(read(&format!("regions-json/v1/{file}")), read(&format!("regions-json/v2/{file}")), "{file}");
    }
}

#[test]
fn regions_json_v2_corrupt_bodies_are_refused_naming_the_field() {
    for (file, needle) in [
        ("select-request-no-tenant.json", "missing field `tenant`"),
        ("count-request-start-text.json", "invalid type: string"),
        ("partials-request-truncated.json", "EOF while parsing"),
    ] {
        let bytes = read(&format!("regions-json/v2/corrupt/{file}"));
        let err = match file {
            "select-request-no-tenant.json" => serde_json::from_slice::<RegionSelect>(&bytes).map(|_| ()),
            "count-request-start-text.json" => serde_json::from_slice::<RegionCount>(&bytes).map(|_| ()),
            _ => serde_json::from_slice::<RegionPartials>(&bytes).map(|_| ()),
        }
        .expect_err(file);
        assert!(err.to_string().contains(needle), "{file}: {err}");
    }
}

/// Writes `regions-json/v2/` (the current bodies) with this build, and
/// `v1/` from them (the requests without `partial_response`, the only
/// change since v1; the answers as they are):
/// `STRATA_WRITE_FIXTURES=1 cargo test -p strata --test it
/// frozen::regions_wire::regenerate_regions_json_fixtures -- --ignored`.
#[test]
#[ignore = "writes tests/fixtures/regions-json; run by hand only (README)"]
fn regenerate_regions_json_fixtures() {
    if !may_write("regions-json") {
        return;
    }
    for (file, bytes) in current_bodies() {
        store(&format!("regions-json/v2/{file}"), &bytes);
        // `partial_response` is each request's last field: v1 is the same
        // text without it (serde writes fields in declaration order).
        let text = String::from_utf8(bytes).unwrap();
        let v1 = text.replace(",\"partial_response\":false}", "}").replace(",\"partial_response\":true}", "}");
        assert_eq!(v1 != text, file.ends_with("-request.json"), "{file}");
        store(&format!("regions-json/v1/{file}"), v1.as_bytes());
    }
    let select = String::from_utf8(current_bodies()[0].1.clone()).unwrap();
    store(
        "regions-json/v2/corrupt/select-request-no-tenant.json",
        select.replace("\"tenant\":\"acme\",", "").as_bytes(),
    );
    let count = String::from_utf8(current_bodies()[2].1.clone()).unwrap();
    let start = format!("\"start\":{T0}");
    assert!(count.contains(&start));
    store(
        "regions-json/v2/corrupt/count-request-start-text.json",
        count.replace(&start, &format!("\"start\":\"{T0}\"")).as_bytes(),
    );
    let partials = &current_bodies()[1].1;
    store("regions-json/v2/corrupt/partials-request-truncated.json", &partials[..partials.len() / 2]);
}
