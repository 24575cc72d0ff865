//! Network decoders of the write path: Prometheus remote write (snappy +
//! protobuf), OTLP (protobuf and JSON), and request bodies through the
//! decompression limits (gzip, zstd, snappy).

use std::io::Write;

use prost::Message;
use strata_ingest::convert::LabelLimits;
use strata_ingest::http::{gunzip, unzstd};
use strata_ingest::otlp::{json, proto as otlp, translate};
use strata_ingest::remote_write::proto::decompress;
use strata_ingest::remote_write::{DecodeError, SeriesConverter, WriteRequest, decode_request, encode_request};
use strata_schemas::{TenantId, WriteBatch, device_hash, series_id};

use crate::text::{PARTITIONS, tenant};

/// The decompressed-size limit the remote-write target decodes under.
const BODY_LIMIT: usize = 1 << 20;

/// Checks converted batches: each is in the partition of its device hash,
/// its series ids and device hashes are those of their labels, it encodes
/// and decodes to the same batch, and together they hold `samples` samples.
pub(crate) fn check_batches(tenant: &TenantId, batches: &[(u32, WriteBatch)], samples: usize) {
    let mut total = 0;
    for (partition, batch) in batches {
        assert_eq!(&batch.tenant, tenant);
        for s in &batch.series {
            assert_eq!(s.id, series_id(tenant, &s.labels), "series id of {:?}", s.labels);
            assert_eq!(s.device_hash, device_hash(tenant, &s.labels, "device", s.id), "device hash of {:?}", s.labels);
            assert_eq!(*partition, (s.device_hash % u64::from(PARTITIONS)) as u32, "partition of {:?}", s.labels);
        }
        let bytes = batch.to_bytes();
        let decoded = WriteBatch::decode(&bytes).expect("an encoded batch decodes");
        // Compared as bytes: a NaN sample is not equal to itself.
        assert_eq!(decoded.to_bytes(), bytes, "a batch does not survive encode → decode");
        total += batch.sample_count();
    }
    assert_eq!(total, samples, "the batches hold a different number of samples than counted");
}

fn convert(request: &WriteRequest) {
    let tenant = tenant();
    let converter = SeriesConverter {
        tenant: &tenant,
        device_label: "device",
        partitions: PARTITIONS,
        cache: None,
        limits: LabelLimits::default(),
    };
    let c = converter.convert(request);
    check_batches(&tenant, &c.batches, c.samples);
}

/// Prometheus remote write 1.0: `data` both as a request body (a snappy
/// block) and as the protobuf inside a valid snappy block.
///
/// A decoded request encodes (`encode_request`) to a body that decodes to
/// the same request; converted batches hold what they count.
pub fn remote_write(data: &[u8]) {
    remote_write_body(data);
    let block = snap::raw::Encoder::new().compress_vec(data).expect("fuzz inputs are far below snappy's 4 GiB");
    remote_write_body(&block);
}

fn remote_write_body(body: &[u8]) {
    let request = match decode_request(body, BODY_LIMIT) {
        Ok(r) => r,
        Err(DecodeError::TooLarge { size, limit }) => return assert!(size > limit),
        Err(_) => return,
    };
    let encoded = encode_request(&request).expect("a decoded request re-encodes");
    let again = decode_request(&encoded, usize::MAX).expect("an encoded request decodes");
    assert_eq!(again.encode_to_vec(), request.encode_to_vec(), "a request does not survive encode → decode");
    convert(&request);
}

/// The resource attributes promoted to labels in the OTLP targets.
fn promoted() -> Vec<String> {
    vec!["service.name".to_owned(), "host.name".to_owned()]
}

/// OTLP/HTTP metrics, protobuf: `data` is an `ExportMetricsServiceRequest`.
///
/// A decoded request encodes and decodes to itself; its translation
/// converts into batches that hold what they count.
pub fn otlp_protobuf(data: &[u8]) {
    let Ok(request) = otlp::ExportMetricsServiceRequest::decode(data) else { return };
    let bytes = request.encode_to_vec();
    let again = otlp::ExportMetricsServiceRequest::decode(&bytes[..]).expect("an encoded OTLP request decodes");
    assert_eq!(again.encode_to_vec(), bytes, "an OTLP request does not survive encode → decode");
    let translated = translate::translate(&request, &promoted());
    convert(&translated.request);
}

/// OTLP/HTTP metrics, JSON: `data` is an `ExportMetricsServiceRequest` in
/// OTLP/JSON; its translation converts into batches that hold what they count.
pub fn otlp_json(data: &[u8]) {
    let Ok(request) = json::decode(data) else { return };
    let translated = translate::translate(&request, &promoted());
    convert(&translated.request);
}

/// The decompressed-size limits the body target decodes under: one a
/// mutated input easily exceeds, and the size of a real request.
const LIMITS: [usize; 2] = [1 << 10, 1 << 20];

/// Request bodies through the write paths' decompression (gzip and zstd:
/// `Content-Encoding` of line protocol and OTLP; snappy: remote write).
///
/// `data` as a compressed body: never more than the limit comes out, and a
/// refusal is a 400 (invalid) or a 413 (over the limit). `data` compressed
/// by each codec: decodes back to `data`, or is a 413 when `data` is over the limit.
pub fn body_decoding(data: &[u8]) {
    for limit in LIMITS {
        for out in [gunzip(data, limit), unzstd(data, limit)] {
            match out {
                Ok(body) => assert!(body.len() <= limit, "{} bytes out under a limit of {limit}", body.len()),
                Err(resp) => assert!(matches!(resp.status().as_u16(), 400 | 413), "refused with {}", resp.status()),
            }
        }
        match decompress(data, limit) {
            Ok(body) => assert!(body.len() <= limit),
            Err(DecodeError::TooLarge { size, .. }) => assert!(size > limit),
            Err(_) => {}
        }
        let fits = data.len() <= limit;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).expect("writing to a Vec");
        let gz = gz.finish().expect("writing to a Vec");
        let zst = zstd::bulk::compress(data, 1).expect("zstd compresses any bytes");
        for (codec, out) in [("gzip", gunzip(&gz, limit)), ("zstd", unzstd(&zst, limit))] {
            match out {
                Ok(body) => assert!(fits && body[..] == *data, "{codec} round trip differs"),
                Err(resp) => assert!(!fits && resp.status() == 413, "{codec} round trip refused: {}", resp.status()),
            }
        }
        let sn = snap::raw::Encoder::new().compress_vec(data).expect("fuzz inputs are far below snappy's 4 GiB");
        match decompress(&sn, limit) {
            Ok(body) => assert!(fits && body == data, "snappy round trip differs"),
            Err(e) => assert!(!fits && matches!(e, DecodeError::TooLarge { .. }), "snappy round trip refused: {e}"),
        }
    }
}
