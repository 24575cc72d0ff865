//! The protobuf messages of Prometheus remote write 1.0 (`prometheus.WriteRequest`,
//! from `prompb/remote.proto` and `prompb/types.proto`), written by hand with
//! `prost` derives, and the snappy + protobuf body decoder.
//!
//! Label names and values are declared `bytes` rather than `string`: the
//! wire encoding is identical, but a label that is not UTF-8 then fails only
//! its own series (with a reason) instead of the whole request, and decoding
//! from a [`Bytes`] buffer slices it without copying.
//!
//! Native histograms are not stored: [`Histogram`] is decoded opaquely (its
//! fields are skipped) so the write path can count what it ignores.

use bytes::Bytes;
use prost::Message;

/// `prometheus.WriteRequest`: the body of one remote-write request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series and their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (type, help, unit); accepted and not stored.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`: one label set and its samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, including `__name__`; Prometheus sends them sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars (not stored, counted).
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histogram samples (not stored, counted).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Label name (a protobuf `string` on the wire).
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    /// Label value (a protobuf `string` on the wire).
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

impl Label {
    /// A label from strings.
    pub fn new(name: &str, value: &str) -> Self {
        Self { name: Bytes::copy_from_slice(name.as_bytes()), value: Bytes::copy_from_slice(value.as_bytes()) }
    }
}

/// `prometheus.Sample`: a float value at a millisecond timestamp.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value; NaN bit patterns (staleness markers) are kept exactly.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Exemplar labels (e.g. `trace_id`).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The exemplar's value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.Histogram`, decoded opaquely: only its presence is counted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// `MetricType` enum (counter = 1, gauge = 2, …).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Metric family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Help text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Why a request body is not a remote-write 1.0 request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The snappy block header or data is damaged.
    #[error("invalid snappy block (remote write bodies use snappy block format, not framed): {source}")]
    Snappy {
        /// Cause.
        #[source]
        source: snap::Error,
    },
    /// The decompressed body would exceed the limit.
    #[error("decompressed request body of {size} bytes exceeds max_body_bytes ({limit} bytes)")]
    TooLarge {
        /// Decompressed size announced by the snappy header.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The decompressed bytes are not a `prometheus.WriteRequest`.
    #[error("invalid protobuf WriteRequest: {source}")]
    Protobuf {
        /// Cause.
        #[source]
        source: prost::DecodeError,
    },
}

/// Decompresses a snappy block, refusing before allocating when the
/// announced size exceeds `limit`.
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(|source| DecodeError::Snappy { source })?;
    if size > limit {
        return Err(DecodeError::TooLarge { size, limit });
    }
    snap::raw::Decoder::new().decompress_vec(body).map_err(|source| DecodeError::Snappy { source })
}

/// Decodes a remote-write body: snappy block → protobuf `WriteRequest`.
pub fn decode_request(body: &[u8], limit: usize) -> Result<WriteRequest, DecodeError> {
    let raw = Bytes::from(decompress(body, limit)?);
    WriteRequest::decode(raw).map_err(|source| DecodeError::Protobuf { source })
}

/// Encodes a request the way Prometheus sends it: protobuf, then a snappy
/// block (fails only beyond snappy's 4 GiB block limit).
pub fn encode_request(request: &WriteRequest) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(&request.encode_to_vec())
}
