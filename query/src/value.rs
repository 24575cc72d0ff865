//! Query results: the four PromQL value types.

use strata_schemas::{Labels, Sample};

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at time `t` (ms).
    Scalar {
        /// Evaluation time in ms.
        t: i64,
        /// The value.
        v: f64,
    },
    /// A string at time `t` (ms).
    String {
        /// Evaluation time in ms.
        t: i64,
        /// The value.
        v: String,
    },
    /// An instant vector.
    Vector(Vec<InstantSample>),
    /// A range vector (range queries, or a range selector in an instant query).
    Matrix(Vec<RangeSeries>),
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// Series labels.
    pub labels: Labels,
    /// Timestamp in ms (the evaluation time).
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// One series of a range vector.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Series labels.
    pub labels: Labels,
    /// Points sorted by time.
    pub samples: Vec<Sample>,
}

/// A value plus the warnings Prometheus would attach to the response.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The result.
    pub value: Value,
    /// Warning annotations (the API's `warnings`).
    pub warnings: Vec<String>,
    /// Info annotations (the API's `infos`).
    pub infos: Vec<String>,
}
