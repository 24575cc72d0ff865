//! The OTLP metrics messages Strata reads (`opentelemetry/proto/collector/
//! metrics/v1` and `metrics/v1`, `common/v1`, `resource/v1`, v1.x), written
//! by hand with `prost` derives; their JSON form is in `json.rs`.
//!
//! Only what the translation uses is declared: other fields (exemplars,
//! dropped counts, schema URLs, exponential histogram buckets) are skipped
//! by the decoder. Tags and types follow the upstream `.proto` files.

/// `ExportMetricsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceRequest {
    /// Per resource (a process, a device), its metrics.
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// `ExportMetricsServiceResponse` (with its partial success).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceResponse {
    /// Set when some data points were rejected.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportMetricsPartialSuccess>,
}

/// `ExportMetricsPartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsPartialSuccess {
    /// Data points not stored.
    #[prost(int64, tag = "1")]
    pub rejected_data_points: i64,
    /// Why (the first reasons).
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `ResourceMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    /// The resource's attributes (`service.name`, `host.name`, …).
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Metrics per instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// Attributes.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `ScopeMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

/// `Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// Name, e.g. `http.server.duration`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Description (not stored).
    #[prost(string, tag = "2")]
    pub description: String,
    /// UCUM unit, e.g. `ms`, `By`, `1`.
    #[prost(string, tag = "3")]
    pub unit: String,
    /// The data.
    #[prost(oneof = "MetricData", tags = "5, 7, 9, 10, 11")]
    pub data: Option<MetricData>,
}

/// `Metric.data`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetricData {
    /// A gauge.
    #[prost(message, tag = "5")]
    Gauge(Gauge),
    /// A sum (counter when monotonic and cumulative).
    #[prost(message, tag = "7")]
    Sum(Sum),
    /// An explicit-bucket histogram.
    #[prost(message, tag = "9")]
    Histogram(Histogram),
    /// An exponential histogram (not stored: native histograms are not supported).
    #[prost(message, tag = "10")]
    ExponentialHistogram(ExponentialHistogram),
    /// A summary.
    #[prost(message, tag = "11")]
    Summary(Summary),
}

/// `Gauge`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    /// Points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

/// `Sum`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    /// Points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    /// 1 delta, 2 cumulative.
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    /// A counter when true.
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

/// `Histogram`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    /// 1 delta, 2 cumulative.
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// `ExponentialHistogram` (only counted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogram {
    /// Points (their fields are skipped).
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<Opaque>,
}

/// A message whose fields are skipped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Opaque {}

/// `Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// Points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<SummaryDataPoint>,
}

/// `NumberDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    /// Attributes (become labels).
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// Time of the point, ns since the epoch.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// The value.
    #[prost(oneof = "NumberValue", tags = "4, 6")]
    pub value: Option<NumberValue>,
    /// Bit 0: no recorded value (a staleness marker).
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// `NumberDataPoint.value`.
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum NumberValue {
    /// A double.
    #[prost(double, tag = "4")]
    AsDouble(f64),
    /// An integer.
    #[prost(sfixed64, tag = "6")]
    AsInt(i64),
}

/// `HistogramDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramDataPoint {
    /// Attributes.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// Time, ns.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum (absent: not recorded).
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// Per bucket (not cumulative), one more than `explicit_bounds`.
    #[prost(fixed64, repeated, tag = "6")]
    pub bucket_counts: Vec<u64>,
    /// Upper bounds.
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
    /// Bit 0: no recorded value.
    #[prost(uint32, tag = "10")]
    pub flags: u32,
}

/// `SummaryDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryDataPoint {
    /// Attributes.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// Time, ns.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum.
    #[prost(double, tag = "5")]
    pub sum: f64,
    /// Quantiles.
    #[prost(message, repeated, tag = "6")]
    pub quantile_values: Vec<ValueAtQuantile>,
    /// Bit 0: no recorded value.
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// `ValueAtQuantile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueAtQuantile {
    /// In [0, 1].
    #[prost(double, tag = "1")]
    pub quantile: f64,
    /// The value.
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Attribute key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Attribute value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

/// `AnyValue.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// A string.
    #[prost(string, tag = "1")]
    String(String),
    /// A bool.
    #[prost(bool, tag = "2")]
    Bool(bool),
    /// An integer.
    #[prost(int64, tag = "3")]
    Int(i64),
    /// A double.
    #[prost(double, tag = "4")]
    Double(f64),
    /// An array (rendered as JSON).
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    /// A key-value list (rendered as JSON).
    #[prost(message, tag = "6")]
    KvList(KeyValueList),
    /// Bytes (rendered as base64).
    #[prost(bytes = "vec", tag = "7")]
    Bytes(Vec<u8>),
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// Values.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// `KeyValueList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    /// Pairs.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}
