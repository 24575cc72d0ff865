//! OTLP/JSON (the protobuf messages' JSON mapping: lowerCamelCase names,
//! 64-bit integers as decimal strings or numbers, enums as numbers, one
//! field per `oneof` case) into the protobuf structs of `proto.rs`.

use serde::Deserialize;

use super::proto;

/// A u64 or i64 given as a JSON number or a decimal string.
#[derive(Debug, Clone, Copy, Default)]
struct Int(i128);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i128),
            F(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Int(n)),
            Raw::F(f) if f.fract() == 0.0 && f.is_finite() => Ok(Int(f as i128)),
            Raw::F(f) => Err(serde::de::Error::custom(format!("{f} is not an integer"))),
            Raw::S(s) => s
                .trim()
                .parse::<i128>()
                .map(Int)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an integer"))),
        }
    }
}

impl Int {
    fn u64(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }
    fn i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(0)
    }
}

/// A double given as a number or as "NaN", "Infinity", "-Infinity".
#[derive(Debug, Clone, Copy, Default)]
struct Double(f64);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            F(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::F(f) => Ok(Double(f)),
            Raw::S(s) => match s.as_str() {
                "NaN" => Ok(Double(f64::NAN)),
                "Infinity" => Ok(Double(f64::INFINITY)),
                "-Infinity" => Ok(Double(f64::NEG_INFINITY)),
                other => {
                    other.parse().map(Double).map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number")))
                }
            },
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Request {
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceMetrics {
    resource: Option<Resource>,
    scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Resource {
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeMetrics {
    metrics: Vec<Metric>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Metric {
    name: String,
    description: String,
    unit: String,
    gauge: Option<Points>,
    sum: Option<Points>,
    histogram: Option<HistogramPoints>,
    exponential_histogram: Option<ExpPoints>,
    summary: Option<SummaryPoints>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Points {
    data_points: Vec<NumberPoint>,
    aggregation_temporality: i32,
    is_monotonic: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct NumberPoint {
    attributes: Vec<KeyValue>,
    time_unix_nano: Int,
    as_double: Option<Double>,
    as_int: Option<Int>,
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct HistogramPoints {
    data_points: Vec<HistogramPoint>,
    aggregation_temporality: i32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct HistogramPoint {
    attributes: Vec<KeyValue>,
    time_unix_nano: Int,
    count: Int,
    sum: Option<Double>,
    bucket_counts: Vec<Int>,
    explicit_bounds: Vec<Double>,
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ExpPoints {
    data_points: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SummaryPoints {
    data_points: Vec<SummaryPoint>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SummaryPoint {
    attributes: Vec<KeyValue>,
    time_unix_nano: Int,
    count: Int,
    sum: Double,
    quantile_values: Vec<Quantile>,
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Quantile {
    quantile: Double,
    value: Double,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct KeyValue {
    key: String,
    value: Option<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<Int>,
    double_value: Option<Double>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KvList>,
    bytes_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ArrayValue {
    values: Vec<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct KvList {
    values: Vec<KeyValue>,
}

/// Parses an OTLP/JSON `ExportMetricsServiceRequest`.
pub fn decode(body: &[u8]) -> Result<proto::ExportMetricsServiceRequest, String> {
    let r: Request = serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON body: {e}"))?;
    Ok(proto::ExportMetricsServiceRequest { resource_metrics: r.resource_metrics.into_iter().map(resource).collect() })
}

fn resource(r: ResourceMetrics) -> proto::ResourceMetrics {
    proto::ResourceMetrics {
        resource: r.resource.map(|r| proto::Resource { attributes: attrs(r.attributes) }),
        scope_metrics: r
            .scope_metrics
            .into_iter()
            .map(|s| proto::ScopeMetrics { metrics: s.metrics.into_iter().map(metric).collect() })
            .collect(),
    }
}

fn metric(m: Metric) -> proto::Metric {
    use proto::MetricData as D;
    let data = if let Some(g) = m.gauge {
        Some(D::Gauge(proto::Gauge { data_points: g.data_points.into_iter().map(number).collect() }))
    } else if let Some(s) = m.sum {
        Some(D::Sum(proto::Sum {
            data_points: s.data_points.into_iter().map(number).collect(),
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        }))
    } else if let Some(h) = m.histogram {
        Some(D::Histogram(proto::Histogram {
            data_points: h
                .data_points
                .into_iter()
                .map(|p| proto::HistogramDataPoint {
                    attributes: attrs(p.attributes),
                    time_unix_nano: p.time_unix_nano.u64(),
                    count: p.count.u64(),
                    sum: p.sum.map(|d| d.0),
                    bucket_counts: p.bucket_counts.into_iter().map(Int::u64).collect(),
                    explicit_bounds: p.explicit_bounds.into_iter().map(|d| d.0).collect(),
                    flags: p.flags,
                })
                .collect(),
            aggregation_temporality: h.aggregation_temporality,
        }))
    } else if let Some(e) = m.exponential_histogram {
        Some(D::ExponentialHistogram(proto::ExponentialHistogram {
            data_points: e.data_points.iter().map(|_| proto::Opaque {}).collect(),
        }))
    } else {
        m.summary.map(|s| {
            D::Summary(proto::Summary {
                data_points: s
                    .data_points
                    .into_iter()
                    .map(|p| proto::SummaryDataPoint {
                        attributes: attrs(p.attributes),
                        time_unix_nano: p.time_unix_nano.u64(),
                        count: p.count.u64(),
                        sum: p.sum.0,
                        quantile_values: p
                            .quantile_values
                            .into_iter()
                            .map(|q| proto::ValueAtQuantile { quantile: q.quantile.0, value: q.value.0 })
                            .collect(),
                        flags: p.flags,
                    })
                    .collect(),
            })
        })
    };
    proto::Metric { name: m.name, description: m.description, unit: m.unit, data }
}

fn number(p: NumberPoint) -> proto::NumberDataPoint {
    let value = match (p.as_double, p.as_int) {
        (Some(d), _) => Some(proto::NumberValue::AsDouble(d.0)),
        (None, Some(i)) => Some(proto::NumberValue::AsInt(i.i64())),
        (None, None) => None,
    };
    proto::NumberDataPoint {
        attributes: attrs(p.attributes),
        time_unix_nano: p.time_unix_nano.u64(),
        value,
        flags: p.flags,
    }
}

fn attrs(kvs: Vec<KeyValue>) -> Vec<proto::KeyValue> {
    kvs.into_iter().map(|kv| proto::KeyValue { key: kv.key, value: kv.value.map(any) }).collect()
}

fn any(v: AnyValue) -> proto::AnyValue {
    use proto::Value as V;
    let value = if let Some(s) = v.string_value {
        Some(V::String(s))
    } else if let Some(b) = v.bool_value {
        Some(V::Bool(b))
    } else if let Some(i) = v.int_value {
        Some(V::Int(i.i64()))
    } else if let Some(d) = v.double_value {
        Some(V::Double(d.0))
    } else if let Some(a) = v.array_value {
        Some(V::Array(proto::ArrayValue { values: a.values.into_iter().map(any).collect() }))
    } else if let Some(l) = v.kvlist_value {
        Some(V::KvList(proto::KeyValueList { values: attrs(l.values) }))
    } else {
        v.bytes_value.map(V::String)
    };
    proto::AnyValue { value }
}
