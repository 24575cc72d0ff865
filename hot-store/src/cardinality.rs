//! Series cardinality statistics of one tenant, from the index's postings:
//! what `/api/v1/status/tsdb` answers (Prometheus's shape plus
//! VictoriaMetrics's extensions) to say which metrics and labels make a
//! tenant's series count.
//!
//! Every count is a postings bitmap's cardinality (an intersection's, with
//! `match[]` or a day), so the cost is one pass over the tenant's label
//! pairs, not over its series: at 1M series it is dominated by the number
//! of distinct label pairs.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use croaring::Bitmap;
use strata_schemas::{Labels, Matcher, TenantId};

use crate::store::HotStore;

/// What to count.
#[derive(Debug, Clone, Default)]
pub struct CardinalityRequest {
    /// Only series matching every one of these (empty: all the tenant's series).
    pub matchers: Vec<Matcher>,
    /// Only series with samples in `[start, end]` ms (e.g. one day).
    pub range: Option<(i64, i64)>,
    /// Entries per top list.
    pub top_n: usize,
    /// Also count series per value of this label.
    pub focus_label: Option<String>,
}

/// A name (or `name=value` pair) and its count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Count {
    /// Metric name, label name or `name=value`.
    pub name: String,
    /// Series (or values, or bytes).
    pub value: u64,
}

/// The statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cardinality {
    /// Series counted.
    pub total_series: u64,
    /// Distinct `name=value` pairs among them.
    pub total_label_value_pairs: u64,
    /// Oldest and newest sample of the series counted (ms; 0 when none).
    pub min_time: i64,
    /// See `min_time`.
    pub max_time: i64,
    /// Series per metric name, largest first.
    pub series_count_by_metric_name: Vec<Count>,
    /// Distinct values per label name.
    pub label_value_count_by_label_name: Vec<Count>,
    /// Bytes of the distinct values per label name.
    pub memory_in_bytes_by_label_name: Vec<Count>,
    /// Series per `name=value` pair.
    pub series_count_by_label_value_pair: Vec<Count>,
    /// Series per value of the focus label.
    pub series_count_by_focus_label_value: Vec<Count>,
}

/// Keeps the `n` largest counts; among equal counts the smallest names (the
/// order the lists are shown in), whatever order they are offered in.
struct Top {
    n: usize,
    /// A min-heap on (count, name descending): its top is the entry to drop next.
    heap: BinaryHeap<Reverse<(u64, Reverse<String>)>>,
}

impl Top {
    fn new(n: usize) -> Self {
        Self { n, heap: BinaryHeap::with_capacity(n + 1) }
    }

    fn offer(&mut self, value: u64, name: impl FnOnce() -> String) {
        if self.n == 0 || value == 0 {
            return;
        }
        let full = self.heap.len() == self.n;
        if full && self.heap.peek().is_some_and(|Reverse((v, _))| *v > value) {
            return;
        }
        let name = name();
        if full && self.heap.peek().is_some_and(|Reverse((v, Reverse(kept)))| *v == value && *kept <= name) {
            return;
        }
        self.heap.push(Reverse((value, Reverse(name))));
        if self.heap.len() > self.n {
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<Count> {
        let mut v: Vec<Count> =
            self.heap.into_iter().map(|Reverse((value, Reverse(name)))| Count { name, value }).collect();
        v.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
        v
    }
}

impl HotStore {
    /// Cardinality statistics of `tenant`'s live series (see the module doc).
    pub fn cardinality(&self, tenant: &TenantId, req: &CardinalityRequest) -> Cardinality {
        let st = self.state.read();
        let index = &st.index;
        let Some((postings, all)) = index.postings_of(tenant) else { return Cardinality::default() };
        let mut scope: Option<Bitmap> = (!req.matchers.is_empty()).then(|| index.select(tenant, &req.matchers));
        let entries = index.entries();
        if let Some((start, end)) = req.range {
            let base = scope.as_ref().unwrap_or(all);
            let mut within = Bitmap::new();
            for r in base.iter() {
                if let Some(e) = entries.get(r as usize)
                    && e.live
                    && e.max_ts >= start
                    && e.min_ts <= end
                {
                    within.add(r);
                }
            }
            scope = Some(within);
        }
        let scope_ref = scope.as_ref().unwrap_or(all);
        let count_in = |b: &Bitmap| if scope.is_some() { b.and_cardinality(scope_ref) } else { b.cardinality() };
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        for r in scope_ref.iter() {
            if let Some(e) = entries.get(r as usize).filter(|e| e.live) {
                min_time = min_time.min(e.min_ts);
                max_time = max_time.max(e.max_ts);
            }
        }
        let name_sym = index.symbols.lookup(strata_schemas::METRIC_NAME);
        let focus_sym = req.focus_label.as_deref().and_then(|f| index.symbols.lookup(f));
        let mut by_metric = Top::new(req.top_n);
        let mut values_by_label = Top::new(req.top_n);
        let mut bytes_by_label = Top::new(req.top_n);
        let mut by_pair = Top::new(req.top_n);
        let mut by_focus = Top::new(req.top_n);
        let mut pairs = 0u64;
        for (&n, values) in postings {
            let name = index.symbols.get(n);
            let (mut distinct, mut bytes) = (0u64, 0u64);
            for (&v, b) in values {
                let c = count_in(b);
                if c == 0 {
                    continue;
                }
                distinct += 1;
                let value = index.symbols.get(v);
                bytes += value.len() as u64;
                if Some(n) == name_sym {
                    by_metric.offer(c, || value.to_string());
                }
                if Some(n) == focus_sym {
                    by_focus.offer(c, || value.to_string());
                }
                by_pair.offer(c, || format!("{name}={value}"));
            }
            pairs += distinct;
            values_by_label.offer(distinct, || name.to_string());
            bytes_by_label.offer(bytes, || name.to_string());
        }
        let total_series = scope_ref.cardinality();
        Cardinality {
            total_series,
            total_label_value_pairs: pairs,
            min_time: if total_series == 0 { 0 } else { min_time },
            max_time: if total_series == 0 { 0 } else { max_time },
            series_count_by_metric_name: by_metric.into_sorted(),
            label_value_count_by_label_name: values_by_label.into_sorted(),
            memory_in_bytes_by_label_name: bytes_by_label.into_sorted(),
            series_count_by_label_value_pair: by_pair.into_sorted(),
            series_count_by_focus_label_value: by_focus.into_sorted(),
        }
    }
}

/// The same statistics over label sets read elsewhere (the series of a past
/// day the cold tier holds): `series` are the tenant's distinct series that
/// already match the request's matchers and day. `min_time` and `max_time`
/// are 0: label sets carry no sample times.
pub fn cardinality_of(series: &[Labels], req: &CardinalityRequest) -> Cardinality {
    // label name → value → series with that pair
    let mut postings: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for labels in series {
        for l in labels.iter() {
            *postings.entry(&*l.name).or_default().entry(&*l.value).or_default() += 1;
        }
    }
    let mut by_metric = Top::new(req.top_n);
    let mut values_by_label = Top::new(req.top_n);
    let mut bytes_by_label = Top::new(req.top_n);
    let mut by_pair = Top::new(req.top_n);
    let mut by_focus = Top::new(req.top_n);
    let mut pairs = 0u64;
    for (&name, values) in &postings {
        let mut bytes = 0u64;
        for (&value, &c) in values {
            bytes += value.len() as u64;
            if name == strata_schemas::METRIC_NAME {
                by_metric.offer(c, || value.to_string());
            }
            if req.focus_label.as_deref() == Some(name) {
                by_focus.offer(c, || value.to_string());
            }
            by_pair.offer(c, || format!("{name}={value}"));
        }
        let distinct = values.len() as u64;
        pairs += distinct;
        values_by_label.offer(distinct, || name.to_string());
        bytes_by_label.offer(bytes, || name.to_string());
    }
    Cardinality {
        total_series: series.len() as u64,
        total_label_value_pairs: pairs,
        min_time: 0,
        max_time: 0,
        series_count_by_metric_name: by_metric.into_sorted(),
        label_value_count_by_label_name: values_by_label.into_sorted(),
        memory_in_bytes_by_label_name: bytes_by_label.into_sorted(),
        series_count_by_label_value_pair: by_pair.into_sorted(),
        series_count_by_focus_label_value: by_focus.into_sorted(),
    }
}

#[cfg(test)]
mod tests;
