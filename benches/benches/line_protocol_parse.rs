//! Line-protocol parsing throughput: the first CPU cost of every ingested point.
//!
//! Measures `strata_schemas::line_protocol` on 10,000 lines shaped like the
//! output of `../shared/peer-bench/gen_iot.py` (1,000 devices × 10 intervals,
//! tags sorted by key, ten float fields at sensor resolution, ns timestamps):
//!
//! ```text
//! sensors,device=dev-0000042,farm=farm-0002,kind=soil,region=eu,tenant=acme ph=6.52,moisture=31.4,temp=18.27,humidity=64.2,nitrogen=40.3,ec=1.204,battery=3.912,rssi=-77,light=20450,wind=3.6 1700000000000000000
//! ```
//!
//! * `iter`: `parse_lines`, one owned `ParsedLine` (two small `Vec`s) per point;
//! * `next_into`: `Lines::next_into`, reusing one `ParsedLine` (no allocation).
//!
//! * `wide_line/<n>`: one line of `n` distinct fields (10k, 100k): the
//!   duplicate-key check must stay linear in keys per line (a quadratic
//!   check took 9.5 s of CPU for 80,000 fields, issue #13); the time per
//!   field should not grow with `n`.
//!
//! Throughput is in input bytes. For scale: InfluxData's `influxdb-line-protocol`
//! crate parses this shape at about 80 MB/s per core on the reference machine.
//!
//! Run: `cargo bench -p strata-benches --bench line_protocol_parse`
//! (append `-- --quick` for a fast, rougher figure).
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_schemas::line_protocol::{ParsedLine, parse_lines};

const DEVICES: u64 = 1_000;
const INTERVALS: u64 = 10;
const DEVICES_PER_FARM: u64 = 20;
const START_NS: i64 = 1_700_000_000_000_000_000;
const INTERVAL_NS: i64 = 30_000_000_000;
const REGIONS: [&str; 3] = ["eu", "us", "br"];
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// gen_iot.py's fields: name, mean, low, high, decimals.
const FIELDS: [(&str, f64, f64, f64, usize); 10] = [
    ("ph", 6.5, 4.5, 8.5, 2),
    ("moisture", 32.0, 5.0, 60.0, 1),
    ("temp", 18.0, -10.0, 45.0, 2),
    ("humidity", 65.0, 10.0, 100.0, 1),
    ("nitrogen", 40.0, 0.0, 200.0, 1),
    ("ec", 1.2, 0.05, 5.0, 3),
    ("battery", 3.9, 3.0, 4.2, 3),
    ("rssi", -78.0, -120.0, -40.0, 0),
    ("light", 20_000.0, 0.0, 100_000.0, 0),
    ("wind", 3.5, 0.0, 30.0, 1),
];

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A value near the field's mean, within its bounds, at its resolution.
fn value(out: &mut String, (_, mean, low, high, decimals): (&str, f64, f64, f64, usize), seed: u64) {
    let unit = (splitmix64(seed) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    let v = (mean + (unit - 0.5) * 0.2 * (high - low)).clamp(low, high);
    let _ = write!(out, "{v:.decimals$}");
}

/// The bench input: every device at t0, then every device at t1, ...
fn iot_lines() -> String {
    let mut out = String::new();
    for t in 0..INTERVALS {
        for device in 0..DEVICES {
            let h = splitmix64(device);
            let kind = match (h >> 8) % 10 {
                0..=6 => "soil",
                7 | 8 => "weather",
                _ => "drone",
            };
            let farm = device / DEVICES_PER_FARM;
            let region = REGIONS[(h % 3) as usize];
            let tenant = TENANTS[(farm % 3) as usize];
            let _ = write!(
                out,
                "sensors,device=dev-{device:07},farm=farm-{farm:04},kind={kind},region={region},tenant={tenant} "
            );
            for (i, field) in FIELDS.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(field.0);
                out.push('=');
                value(&mut out, *field, h ^ (t << 32) ^ i as u64);
            }
            let _ = writeln!(out, " {}", START_NS + t as i64 * INTERVAL_NS);
        }
    }
    out
}

fn bench_parse(c: &mut Criterion) {
    let input = iot_lines();
    let bytes = input.as_bytes();
    let expected_lines = (DEVICES * INTERVALS) as usize;
    assert_eq!(parse_lines(bytes).filter(Result::is_ok).count(), expected_lines, "every bench line must parse");

    let mut group = c.benchmark_group("line_protocol_parse");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("iter", |b| {
        b.iter(|| {
            let mut fields = 0;
            for line in parse_lines(black_box(bytes)).flatten() {
                fields += line.fields.len();
            }
            black_box(fields)
        })
    });
    group.bench_function("next_into", |b| {
        let mut line = ParsedLine::default();
        b.iter(|| {
            let mut fields = 0;
            let mut lines = parse_lines(black_box(bytes));
            while let Some(result) = lines.next_into(&mut line) {
                if result.is_ok() {
                    fields += line.fields.len();
                }
            }
            black_box(fields)
        })
    });
    group.finish();
}

fn bench_wide_line(c: &mut Criterion) {
    let mut group = c.benchmark_group("wide_line");
    group.sample_size(10);
    for n in [10_000usize, 100_000] {
        let mut input = String::from("m ");
        for i in 0..n {
            if i > 0 {
                input.push(',');
            }
            let _ = write!(input, "f{i}=1");
        }
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(n.to_string(), |b| {
            b.iter(|| {
                let line = parse_lines(black_box(input.as_bytes())).next();
                black_box(line.map(|l| l.map(|l| l.fields.len())))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse, bench_wide_line);
criterion_main!(benches);
