//! Numeric helpers shared by functions and aggregations, mirroring Prometheus's
//! float behaviour (Kahan–Neumaier sums, quantile interpolation, regression).

use strata_schemas::Sample;

/// One step of Kahan–Neumaier compensated summation.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Compensated sum of an iterator.
pub(crate) fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for v in values {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// Running mean that sums directly while the sum is finite and switches to
/// an incremental mean on overflow (Prometheus's `avg` and `avg_over_time`).
///
/// `sum` holds the mean once `incremental` (the sum is not used after the
/// switch), so the state is a count and two floats: the aggregations'
/// per-(group, step) accumulators keep it in that shape ([`Mean::parts`],
/// [`Mean::from_parts`]) and run this same code on it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mean {
    count: f64,
    sum: f64,
    c: f64,
    incremental: bool,
}

impl Mean {
    pub(crate) fn add(&mut self, v: f64) {
        self.count += 1.0;
        if self.count == 1.0 {
            self.sum = v;
            return;
        }
        if !self.incremental {
            let (s, c) = kahan_inc(v, self.sum, self.c);
            if !s.is_infinite() {
                (self.sum, self.c) = (s, c);
                return;
            }
            self.incremental = true;
            // From here on `sum` is the mean.
            self.sum /= self.count - 1.0;
            self.c /= self.count - 1.0;
        }
        let q = (self.count - 1.0) / self.count;
        (self.sum, self.c) = kahan_inc(v / self.count, q * self.sum, q * self.c);
    }

    pub(crate) fn value(&self) -> f64 {
        if self.incremental { self.sum + self.c } else { self.sum / self.count + self.c / self.count }
    }

    /// The state: values added, the sum (the mean once incremental), the
    /// compensation, whether incremental.
    pub(crate) fn parts(&self) -> (f64, f64, f64, bool) {
        (self.count, self.sum, self.c, self.incremental)
    }

    /// The mean of [`Mean::parts`].
    pub(crate) fn from_parts(count: f64, sum: f64, c: f64, incremental: bool) -> Self {
        Self { count, sum, c, incremental }
    }
}

/// Population variance with compensated Welford updates (`stdvar_over_time`).
pub(crate) fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Prometheus's `quantile`: sorts `values` (NaN first) and interpolates linearly.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Least-squares slope and intercept at `intercept_t` (ms), Prometheus's `linearRegression`.
pub(crate) fn linear_regression(samples: &[Sample], intercept_t: i64) -> (f64, f64) {
    let init_y = samples[0].value;
    let mut const_y = true;
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    for (i, s) in samples.iter().enumerate() {
        if const_y && i > 0 && s.value != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (s.ts - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(s.value, sy, cy);
        (sxy, cxy) = kahan_inc(x * s.value, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov_xy = sxy - sx * sy / n;
    let var_x = sx2 - sx * sx / n;
    let slope = cov_xy / var_x;
    (slope, sy / n - slope * sx / n)
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`, used for label values (`count_values`).
pub(crate) fn format_go_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        assert_eq!(quantile(0.5, &mut [1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(0.0, &mut [3.0, 1.0]), 1.0);
        assert_eq!(quantile(1.5, &mut [3.0, 1.0]), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn mean_survives_overflow() {
        let mut m = Mean::default();
        for v in [f64::MAX, f64::MAX, f64::MAX] {
            m.add(v);
        }
        assert!(m.value().is_finite() && (m.value() / f64::MAX - 1.0).abs() < 1e-12);
    }

    #[test]
    fn kahan_sum_compensates() {
        assert_eq!(kahan_sum([1.0, 1e100, 1.0, -1e100].into_iter()), 2.0);
    }
}
